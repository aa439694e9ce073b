//! The part of betterleaks' Expr filters coffer reads. A betterleaks filter
//! is code that returns true to drop a candidate; most are a chain of
//! `||`-joined tests, and the common tests have gitleaks equivalents:
//! `entropy(finding["secret"]) < N` (an entropy floor) and
//! `matchesAny(...)`/`containsAny(...)` over the secret, the match, the line
//! or the path (allowlist regexes, stop words, path regexes). Those are
//! translated; any other test (`let` bindings, token efficiency, `&&`
//! chains, function calls) is left out and counted. Leaving out a test that
//! drops candidates can only add findings, never hide one.

/// An allowlist read from a filter.
#[derive(Debug, Default, PartialEq)]
pub struct FilterList {
    /// `secret`, `match`, `line` or `path`.
    pub target: &'static str,
    /// Regexes (for `matchesAny`).
    pub regexes: Vec<String>,
    /// Substrings (for `containsAny`).
    pub words: Vec<String>,
}

/// What a filter translates to.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    /// Candidates whose secret has at most this entropy are dropped.
    pub entropy: Option<f64>,
    /// Candidates any of these match are dropped.
    pub lists: Vec<FilterList>,
    /// Tests left out.
    pub skipped: usize,
}

/// Translates a filter's source.
pub fn translate(source: &str) -> Filter {
    let mut out = Filter::default();
    clauses(&strip_comments(source), &mut out);
    out
}

fn clauses(expr: &str, out: &mut Filter) {
    // `let x = …; let y = …; result`: only the result decides.
    let expr = split_top(expr, ";").pop().unwrap_or_default();
    for clause in split_top(&expr, "||") {
        let c = clause.trim();
        if let Some(inner) = c.strip_prefix('(').and_then(|c| c.strip_suffix(')'))
            && balanced(inner)
        {
            clauses(inner, out);
        } else if !clause_into(c, out) {
            out.skipped += 1;
        }
    }
}

/// One test; false when coffer cannot read it.
fn clause_into(c: &str, out: &mut Filter) -> bool {
    let entropy = [
        "entropy(finding[\"secret\"]) <=",
        "entropy(finding[\"secret\"]) <",
    ];
    for prefix in entropy {
        if let Some(n) = c
            .strip_prefix(prefix)
            .and_then(|n| n.trim().parse::<f64>().ok())
        {
            out.entropy = Some(out.entropy.map_or(n, |e| e.max(n)));
            return true;
        }
    }
    let (is_regex, rest) = if let Some(r) = c.strip_prefix("matchesAny(") {
        (true, r)
    } else if let Some(r) = c.strip_prefix("containsAny(") {
        (false, r)
    } else {
        return false;
    };
    let targets = [
        ("finding[\"secret\"]", "secret"),
        ("finding[\"match\"]", "match"),
        ("finding[\"line\"]", "line"),
        ("attributes[\"path\"]", "path"),
    ];
    let Some((target, rest)) = targets
        .iter()
        .find_map(|(src, name)| rest.strip_prefix(src).map(|r| (*name, r)))
    else {
        return false;
    };
    let Some(list) = rest
        .trim_start()
        .strip_prefix(',')
        .map(str::trim)
        .and_then(|r| r.strip_suffix(')'))
        .map(str::trim)
        .and_then(|r| r.strip_prefix('['))
        .and_then(|r| r.strip_suffix(']'))
    else {
        return false;
    };
    let Some(items) = literals(list) else {
        return false;
    };
    if !is_regex && target == "path" {
        return false;
    }
    let mut l = FilterList {
        target,
        ..FilterList::default()
    };
    if is_regex {
        l.regexes = items;
    } else {
        l.words = items;
    }
    out.lists.push(l);
    true
}

/// A comma-separated list of `"…"` or `` `…` `` literals (a trailing comma
/// allowed); `None` if anything else is in it.
fn literals(list: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let quote = rest.chars().next()?;
        let body = &rest[1..];
        let (item, after) = match quote {
            '`' => {
                let end = body.find('`')?;
                (body[..end].to_owned(), &body[end + 1..])
            }
            '"' => {
                let mut s = String::new();
                let mut chars = body.char_indices();
                let mut end = None;
                while let Some((i, ch)) = chars.next() {
                    match ch {
                        '\\' => s.push(chars.next()?.1),
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => s.push(ch),
                    }
                }
                (s, &body[end? + 1..])
            }
            _ => return None,
        };
        items.push(item);
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(items)
}

/// Splits at `sep` where it is outside strings, brackets and parentheses.
fn split_top(s: &str, sep: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let ch = bytes[i] as char;
        match quote {
            Some(q) => {
                if ch == '\\' && q == '"' {
                    i += 1;
                } else if ch == q {
                    quote = None;
                }
            }
            None => match ch {
                '"' | '`' | '\'' => quote = Some(ch),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ if depth == 0 && s[i..].starts_with(sep) => {
                    parts.push(s[start..i].to_owned());
                    i += sep.len();
                    start = i;
                    continue;
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(s[start..].to_owned());
    parts
}

/// Whether parentheses outside strings balance (so `(a) || (b)` is not
/// taken for one parenthesised test).
fn balanced(s: &str) -> bool {
    {
        let mut depth = 0i32;
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for ch in s.chars() {
            match quote {
                Some(q) if ch == q && prev != '\\' => quote = None,
                Some(_) => {}
                None => match ch {
                    '"' | '`' | '\'' => quote = Some(ch),
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth < 0 {
                            return false;
                        }
                    }
                    _ => {}
                },
            }
            prev = ch;
        }
        depth == 0
    }
}

/// Drops `// …` comments that are outside strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let mut quote: Option<char> = None;
        let mut cut = line.len();
        let mut prev = ' ';
        for (i, ch) in line.char_indices() {
            match quote {
                Some(q) if ch == q && prev != '\\' => quote = None,
                Some(_) => {}
                None => {
                    if ch == '/' && prev == '/' {
                        cut = i - 1;
                        break;
                    }
                    if matches!(ch, '"' | '`') {
                        quote = Some(ch);
                    }
                }
            }
            prev = ch;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_floors_and_lists_are_read_and_the_rest_counted() {
        let f = translate(
            "// comment with || in it\nentropy(finding[\"secret\"]) <= 3.5\n|| failsTokenEfficiency(finding[\"secret\"])\n|| matchesAny(finding[\"secret\"], [\n  `^[a-z]+$`,\n  `^\\$\\{.*}$`,\n])\n|| containsAny(finding[\"secret\"], [\"example\", \"a\\\"b\"])",
        );
        assert_eq!(f.entropy, Some(3.5));
        assert_eq!(f.skipped, 1);
        assert_eq!(f.lists.len(), 2);
        assert_eq!(f.lists[0].target, "secret");
        assert_eq!(f.lists[0].regexes, ["^[a-z]+$", "^\\$\\{.*}$"]);
        assert_eq!(f.lists[1].words, ["example", "a\"b"]);
    }

    #[test]
    fn lets_leave_the_final_expression_and_groups_are_opened() {
        let f = translate(
            "let x = matchesAny(finding[\"secret\"], [`a`]);\nmatchesAny(attributes[\"path\"], [`\\.lock$`]) || (entropy(finding[\"secret\"]) < 3.0 || x) || (a && b)",
        );
        assert_eq!(f.entropy, Some(3.0));
        assert_eq!(f.lists.len(), 1);
        assert_eq!(f.lists[0].target, "path");
        assert_eq!(f.skipped, 2, "x and (a && b)");
    }
}
