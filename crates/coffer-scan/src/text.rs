//! Telling text from binary before a scan, and turning UTF-16 text into
//! the UTF-8 the rules read. A few NUL bytes do not make a file binary
//! (logs, config files with a stray NUL, tokens pasted after one); what
//! does is a sample where control bytes are common, as in compressed,
//! compiled or image data.

use std::borrow::Cow;

/// How much of the start of a file decides what it is.
const SAMPLE: usize = 8192;

/// What a file's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text to scan as it is (UTF-8, ASCII, Latin-1...).
    Text,
    /// UTF-16, little-endian (with or without a byte-order mark).
    Utf16Le,
    /// UTF-16, big-endian.
    Utf16Be,
    /// Not text: left out of scans.
    Binary,
}

/// Classifies `data` from its first 8 KiB.
pub fn classify(data: &[u8]) -> Kind {
    let sample = &data[..data.len().min(SAMPLE)];
    if sample.starts_with(&[0xFF, 0xFE]) {
        return Kind::Utf16Le;
    }
    if sample.starts_with(&[0xFE, 0xFF]) {
        return Kind::Utf16Be;
    }
    // One pass: zero bytes at even and odd offsets (UTF-16 without a
    // mark has one in each pair), and control bytes (random bytes are
    // about one in eight; text has almost none besides tab, newline,
    // carriage return, form feed and escape).
    const CONTROL: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 0x20 {
            t[i] = !matches!(i as u8, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B) as u8;
            i += 1;
        }
        t
    };
    let (mut zero_even, mut zero_odd, mut control) = (0usize, 0usize, 0usize);
    let mut pairs = sample.chunks_exact(2);
    for p in &mut pairs {
        zero_even += usize::from(p[0] == 0);
        zero_odd += usize::from(p[1] == 0);
        control +=
            usize::from(CONTROL[usize::from(p[0])]) + usize::from(CONTROL[usize::from(p[1])]);
    }
    if let [last] = pairs.remainder() {
        control += usize::from(CONTROL[usize::from(*last)]);
    }
    let n = sample.len() / 2;
    if sample.len() >= 4 {
        if zero_odd * 10 >= n * 7 && zero_even * 20 <= n {
            return Kind::Utf16Le;
        }
        if zero_even * 10 >= n * 7 && zero_odd * 20 <= n {
            return Kind::Utf16Be;
        }
    }
    // A handful (a stray NUL in a small file) is not enough.
    if control > 16 && control * 20 > sample.len() {
        Kind::Binary
    } else {
        Kind::Text
    }
}

/// The bytes to scan: `None` for binary data, UTF-16 decoded to UTF-8
/// (unpaired surrogates become U+FFFD).
pub fn scannable(data: &[u8]) -> Option<Cow<'_, [u8]>> {
    let units = |big: bool| {
        let body = if data.len() >= 2 && matches!(data[..2], [0xFF, 0xFE] | [0xFE, 0xFF]) {
            &data[2..]
        } else {
            data
        };
        let iter = body.chunks_exact(2).map(move |p| {
            if big {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                u16::from_le_bytes([p[0], p[1]])
            }
        });
        let text: String = char::decode_utf16(iter)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        Cow::Owned(text.into_bytes())
    };
    match classify(data) {
        Kind::Text => Some(Cow::Borrowed(data)),
        Kind::Utf16Le => Some(units(false)),
        Kind::Utf16Be => Some(units(true)),
        Kind::Binary => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    #[test]
    fn a_few_nuls_leave_text_text() {
        let mut data = b"\0\0\0token = q8Zr2LmX0vTk5NwPb7Yc\n".to_vec();
        data.extend(b"more text here\n".repeat(10));
        assert_eq!(classify(&data), Kind::Text);
        assert_eq!(scannable(&data).as_deref(), Some(data.as_slice()));
    }

    #[test]
    fn utf16_is_decoded_with_or_without_a_mark() {
        let text = "$env:TOKEN = \"ghp_x\"\r\nWrite-Host ok\r\n";
        for bom in [true, false] {
            let data = utf16le(text, bom);
            assert_eq!(classify(&data), Kind::Utf16Le);
            assert_eq!(scannable(&data).as_deref(), Some(text.as_bytes()));
        }
        let mut be = vec![0xFE, 0xFF];
        for u in text.encode_utf16() {
            be.extend_from_slice(&u.to_be_bytes());
        }
        assert_eq!(scannable(&be).as_deref(), Some(text.as_bytes()));
    }

    #[test]
    fn compressed_and_compiled_data_is_binary() {
        // A linear congruential stream stands in for compressed bytes.
        let mut x = 7u32;
        let random: Vec<u8> = (0..20_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        assert_eq!(classify(&random), Kind::Binary);
        let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
        elf.extend([0u8; 56]);
        elf.extend(b"\x01\0\0\0\x05\0\0\0".repeat(100));
        assert_eq!(classify(&elf), Kind::Binary);
        assert_eq!(scannable(&elf), None);
    }
}
