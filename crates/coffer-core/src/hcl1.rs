//! HCL as Vault reads policies and password policies (HCL 1), through
//! hcl-edit (HCL 2). HCL 1 lets attributes and blocks share a line
//! (`length = 12 rule "charset" { charset = "abc" }`); HCL 2 wants a
//! newline after each. Where hcl-edit asks for a newline after a finished
//! item, one is inserted outside any string and the text parsed again, and
//! every position is mapped back to a line of the caller's text.

use hcl_edit::structure::Body;

/// Newlines added at most before the parser's error is given as it is.
const MAX_INSERTED: usize = 512;
/// Longer texts are parsed as HCL 2 only: each added newline costs a parse.
const MAX_LENIENT_LEN: usize = 64 * 1024;

/// The text hcl-edit parsed, and where newlines were added to it.
pub struct Lenient {
    text: String,
    inserted: Vec<usize>,
}

impl Lenient {
    /// The 1-based line of the caller's text holding byte `pos` of the parsed text.
    pub fn line(&self, pos: usize) -> usize {
        let pos = pos.min(self.text.len());
        let newlines = self.text.as_bytes()[..pos]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        newlines - self.inserted.iter().filter(|i| **i < pos).count() + 1
    }

    /// `"line N: "` for a span, or nothing without one.
    pub fn line_prefix(&self, span: Option<std::ops::Range<usize>>) -> String {
        span.map(|r| format!("line {}: ", self.line(r.start)))
            .unwrap_or_default()
    }
}

/// Parses `src` as HCL 1 allows; errors read `line N: <what was expected>`.
pub fn parse_body(src: &str) -> Result<(Body, Lenient), String> {
    let mut lenient = Lenient {
        text: src.to_owned(),
        inserted: Vec::new(),
    };
    loop {
        let err = match hcl_edit::parser::parse_body(&lenient.text) {
            Ok(body) => return Ok((body, lenient)),
            Err(e) => e,
        };
        let at = err.location().offset().min(lenient.text.len());
        let fix = if lenient.inserted.len() >= MAX_INSERTED || src.len() > MAX_LENIENT_LEN {
            None
        } else if err.message() == "expected newline or eof" {
            Some(at)
        } else if err.message().starts_with("invalid block body") {
            // A one-line block holds one attribute in HCL 2: open it up.
            opening_brace(&lenient.text, at).map(|b| b + 1)
        } else {
            None
        };
        match fix {
            Some(i) if in_code(&lenient.text, i) && !lenient.inserted.contains(&i) => {
                lenient.text.insert(i, '\n');
                for p in &mut lenient.inserted {
                    if *p >= i {
                        *p += 1;
                    }
                }
                lenient.inserted.push(i);
            }
            _ => {
                return Err(format!("line {}: {}", lenient.line(at), err.message()));
            }
        }
    }
}

/// The last `{` before `at` that is code, not inside a string or comment.
fn opening_brace(text: &str, at: usize) -> Option<usize> {
    let code = code_map(text);
    text.as_bytes()[..at]
        .iter()
        .enumerate()
        .rev()
        .find(|(i, b)| **b == b'{' && code[*i])
        .map(|(i, _)| i)
}

fn in_code(text: &str, i: usize) -> bool {
    i >= text.len() || code_map(text)[i]
}

/// For each byte: true where it is code (outside strings and comments).
fn code_map(text: &str) -> Vec<bool> {
    let b = text.as_bytes();
    let mut out = vec![true; b.len()];
    let mut i = 0;
    while i < b.len() {
        let (start, end) = match b[i] {
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' && b[j] != b'\n' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                (i, j.min(b.len().saturating_sub(1)))
            }
            b'#' => (i, line_end(b, i)),
            b'/' if b.get(i + 1) == Some(&b'/') => (i, line_end(b, i)),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(b.len() - 1, |k| i + 2 + k + 1);
                (i, end)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        for c in &mut out[start..=end] {
            *c = false;
        }
        i = end + 1;
    }
    out
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|c| *c == b'\n')
        .map_or(b.len() - 1, |k| from + k - 1)
        .max(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> usize {
        parse_body(src)
            .unwrap_or_else(|e| panic!("{src:?}: {e}"))
            .0
            .iter()
            .count()
    }

    #[test]
    fn hcl1_one_liners_parse() {
        assert_eq!(ok("length=12 rule \"charset\" { charset = \"abc\" }"), 2);
        assert_eq!(
            ok("rule \"charset\" { charset = \"abc\" min-chars = 1 } length = 20"),
            2
        );
        assert_eq!(ok("rule \"charset\" { charset = \"abc\"\n}"), 1);
        assert_eq!(
            ok("path \"a\" { capabilities = [\"read\"] } path \"b\" { capabilities = [\"list\"] }"),
            2
        );
    }

    #[test]
    fn strings_are_never_changed() {
        let (body, _) = parse_body("a = \"x { y\" b = \"# z\" // c = 1\n").unwrap();
        let vals: Vec<String> = body
            .iter()
            .filter_map(|s| s.as_attribute())
            .map(|a| a.value.to_string().trim().to_owned())
            .collect();
        assert_eq!(vals, ["\"x { y\"", "\"# z\""]);
    }

    #[test]
    fn errors_name_the_callers_line() {
        let e = parse_body("a = 1 b = 2\nc = 3\n\nd e f").err().unwrap();
        assert!(e.starts_with("line 4:"), "{e}");
        let (_, l) = parse_body("a = 1 b = 2\nc = 3").unwrap();
        assert_eq!(l.line(l.text.find('c').unwrap()), 2);
    }
}
