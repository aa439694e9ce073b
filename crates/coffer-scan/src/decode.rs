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

/// Every encoded run in `data` that decodes to text.
pub fn segments(data: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == b'%' || is_b64(b) {
            let end = percent_run(data, i);
            if end > i {
                if let Some(text) = percent_decode(&data[i..end]).filter(|t| is_text(t)) {
                    out.push(Segment {
                        start: i,
                        end,
                        encoding: "percent",
                        text,
                    });
                }
                i = end;
                continue;
            }
        }
        if !is_b64(b) {
            i += 1;
            continue;
        }
        let start = i;
        while i < data.len() && is_b64(data[i]) {
            i += 1;
        }
        let mut end = i;
        while end < data.len() && end - i < 2 && data[end] == b'=' {
            end += 1;
        }
        let run = &data[start..end];
        let body = &data[start..i];
        if body.len() >= MIN_HEX
            && body.iter().all(u8::is_ascii_hexdigit)
            && body.len().is_multiple_of(2)
        {
            if let Some(text) = hex_decode(body).filter(|t| is_text(t)) {
                out.push(Segment {
                    start,
                    end: i,
                    encoding: "hex",
                    text,
                });
            }
        } else if body.len() >= MIN_BASE64
            && let Some(text) = base64_decode(run).filter(|t| is_text(t))
        {
            out.push(Segment {
                start,
                end,
                encoding: "base64",
                text,
            });
        }
        i = end.max(i);
    }
    out
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
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

fn base64_decode(run: &[u8]) -> Option<Vec<u8>> {
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let body: Vec<u8> = run.iter().copied().take_while(|b| *b != b'=').collect();
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut n = 0u32;
        for (k, b) in chunk.iter().enumerate() {
            n |= value(*b)? << (18 - 6 * k);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn hex_decode(body: &[u8]) -> Option<Vec<u8>> {
    body.chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
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
