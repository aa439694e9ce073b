//! Encoded text inside the input (gitleaks' `--max-decode-depth`): runs of
//! base64 (standard or URL-safe), long hex strings and percent-encoded
//! stretches are decoded, and what decodes to text is scanned again. One
//! pass over the bytes with a class table finds the runs, so decoding adds
//! little to a scan; decoded bytes that are not text are dropped.

/// A run of encoded text and what it decodes to.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the run in the input.
    pub start: usize,
    /// Offset just past it.
    pub end: usize,
    /// `base64`, `hex` or `percent`.
    pub encoding: &'static str,
    /// The decoded text.
    pub text: Vec<u8>,
}

/// Shortest base64 run worth decoding (12 bytes of text).
const MIN_BASE64: usize = 16;
/// Shortest hex run worth decoding.
const MIN_HEX: usize = 32;

/// Every encoded run in `data` that decodes to text, in order.
pub fn segments(data: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    // Percent-encoding: from each `%` not yet inside a stretch, back to
    // the start of its word (`token%3Dabc`).
    let mut covered = 0;
    for at in memchr::memchr_iter(b'%', data) {
        if at < covered {
            continue;
        }
        let mut start = at;
        while start > covered && start + 64 > at && is_url_word(data[start - 1]) {
            start -= 1;
        }
        let end = percent_run(data, start);
        if end > start {
            push_percent(data, start, end, &mut out);
            covered = end;
        }
    }
    let percent = out.len();
    b64_runs(data, MIN_BASE64, |start, stop| {
        let body = &data[start..stop];
        if body.len() >= MIN_HEX
            && body.len().is_multiple_of(2)
            && body.iter().all(u8::is_ascii_hexdigit)
        {
            if let Some(text) = hex_text(body) {
                out.push(Segment {
                    start,
                    end: stop,
                    encoding: "hex",
                    text,
                });
            }
            return;
        }
        if let Some(text) = base64_text(body) {
            let mut end = stop;
            while end < data.len() && end - stop < 2 && data[end] == b'=' {
                end += 1;
            }
            out.push(Segment {
                start,
                end,
                encoding: "base64",
                text,
            });
        }
    });
    if percent > 0 && out.len() > percent {
        out.sort_by_key(|s| s.start);
    }
    out
}

/// Calls `each(start, end)` for every run of base64-alphabet bytes at
/// least `min` long. Most of the input is skipped unread: when the byte
/// `min - 1` ahead is not in the alphabet, no long run can start before
/// it.
fn b64_runs(data: &[u8], min: usize, mut each: impl FnMut(usize, usize)) {
    // Invariant: `data[i - 1]` is not in the alphabet (or i is 0).
    let mut i = 0;
    while i + min <= data.len() {
        let probe = i + min - 1;
        if !is_b64(data[probe]) {
            i = probe + 1;
            continue;
        }
        let mut start = probe;
        while start > i && is_b64(data[start - 1]) {
            start -= 1;
        }
        let mut end = probe + 1;
        while end < data.len() && is_b64(data[end]) {
            end += 1;
        }
        if end - start >= min {
            each(start, end);
        }
        i = end + 1;
    }
}

fn is_url_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+".contains(&b)
}

fn push_percent(data: &[u8], start: usize, end: usize, out: &mut Vec<Segment>) {
    if let Some(text) = percent_decode(&data[start..end]).filter(|t| is_text(t)) {
        out.push(Segment {
            start,
            end,
            encoding: "percent",
            text,
        });
    }
}

/// Bytes of the base64 alphabets (standard and URL-safe).
const B64: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'-' || b == b'_';
        i += 1;
    }
    t
};

fn is_b64(b: u8) -> bool {
    B64[usize::from(b)]
}

/// Printable ASCII, or tab, newline, carriage return.
fn printable(b: u8) -> bool {
    (0x20..0x7F).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r')
}

/// Decoded text worth scanning: valid UTF-8, nearly all of it printable.
fn is_text(t: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(t) else {
        return false;
    };
    let printable = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .count();
    !s.is_empty() && printable * 10 >= s.chars().count() * 9
}

/// A base64 run decoded, if it decodes to printable ASCII. Most runs in
/// code (identifiers, hashes) fail in their first bytes, before anything
/// is allocated.
fn base64_text(body: &[u8]) -> Option<Vec<u8>> {
    let value = |b: u8| -> u32 {
        u32::from(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            _ => 63, // `/` or `_`: the run holds nothing else
        })
    };
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    for chunk in body.chunks(4) {
        let mut n = 0u32;
        for (k, b) in chunk.iter().enumerate() {
            n |= value(*b) << (18 - 6 * k);
        }
        let bytes = n.to_be_bytes();
        let got = &bytes[1..chunk.len()];
        if !got.iter().all(|b| printable(*b)) {
            return None;
        }
        if out.is_empty() {
            out.reserve(body.len() * 3 / 4);
        }
        out.extend_from_slice(got);
    }
    Some(out)
}

/// A hex run decoded, if it decodes to printable ASCII.
fn hex_text(body: &[u8]) -> Option<Vec<u8>> {
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    for p in body.chunks(2) {
        let b = digit(p[0])? << 4 | digit(p[1])?;
        if !printable(b) {
            return None;
        }
        out.push(b);
    }
    Some(out)
}

/// The end of a stretch holding at least two `%XX` escapes, or `at`.
fn percent_run(data: &[u8], at: usize) -> usize {
    let escape = |i: usize| {
        data.get(i) == Some(&b'%')
            && data.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && data.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    };
    let mut i = at;
    let mut escapes = 0;
    while i < data.len() {
        if escape(i) {
            escapes += 1;
            i += 3;
        } else if data[i].is_ascii_alphanumeric() || b"-._~+".contains(&data[i]) {
            i += 1;
        } else {
            break;
        }
    }
    if escapes >= 2 { i } else { at }
}

fn percent_decode(run: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(run.len());
    let mut i = 0;
    while i < run.len() {
        if run[i] == b'%' && i + 2 < run.len() + 1 {
            let hex = std::str::from_utf8(run.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(run[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_hex_and_percent_runs_decode_to_text() {
        // "token=ghp_abc123" in each encoding.
        let data = b"a: dG9rZW49Z2hwX2FiYzEyMw==\nb: 746f6b656e3d6768705f616263313233\nc: token%3Dghp%5Fabc123\n";
        let got: Vec<(&str, String)> = segments(data)
            .into_iter()
            .map(|s| (s.encoding, String::from_utf8_lossy(&s.text).into_owned()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("base64", "token=ghp_abc123".to_owned()),
                ("hex", "token=ghp_abc123".to_owned()),
                ("percent", "token=ghp_abc123".to_owned()),
            ]
        );
    }

    #[test]
    fn names_and_binary_payloads_are_not_text() {
        assert!(segments(b"thisIsALongVariableName = 1").is_empty());
        assert!(segments(b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB").is_empty());
    }
}
