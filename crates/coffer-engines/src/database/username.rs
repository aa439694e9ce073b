//! `username_template`: the part of Go's template language Vault's user name
//! templates use. Text with `{{ ... }}` actions; an action is a pipeline of
//! commands joined by `|`, each command's value passed as the last argument
//! of the next. Operands: `.DisplayName`, `.RoleName`, "strings", numbers,
//! `( pipeline )`. Functions: `printf` (`%s`, `%d`, `%v`), `random N`,
//! `truncate N`, `truncate_sha256 N`, `uppercase`, `lowercase`,
//! `replace OLD NEW`, `sha256`, `base64`, `unix_time`, `unix_time_millis`,
//! `uuid`.

use base64::Engine as _;
use coffer_core::LogicalError;
use sha2::{Digest, Sha256};

/// The values a template can read.
pub(super) struct Inputs<'a> {
    pub display_name: &'a str,
    pub role_name: &'a str,
    pub now_millis: i64,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Str(String),
    Num(i64),
    Ident(String),
    Pipe,
    Open,
    Close,
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(format!("username_template: {}", m.into()))
}

fn lex(action: &str) -> Result<Vec<Tok>, LogicalError> {
    let b = action.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' => i += 1,
            b'|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            b'(' => {
                out.push(Tok::Open);
                i += 1;
            }
            b')' => {
                out.push(Tok::Close);
                i += 1;
            }
            b'"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(bad("unterminated string")),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let e = b.get(i + 1).ok_or_else(|| bad("unterminated string"))?;
                            s.push(match e {
                                b'n' => '\n',
                                b't' => '\t',
                                other => char::from(*other),
                            });
                            i += 2;
                        }
                        Some(_) => {
                            let rest = &action[i..];
                            let ch = rest.chars().next().ok_or_else(|| bad("bad string"))?;
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push(Tok::Str(s));
                i += 1;
            }
            b'.' => {
                let start = i + 1;
                i = start;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Field(action[start..i].to_owned()));
            }
            b'0'..=b'9' | b'-' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n = action[start..i]
                    .parse()
                    .map_err(|_| bad(format!("bad number {:?}", &action[start..i])))?;
                out.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Ident(action[start..i].to_owned()));
            }
            other => return Err(bad(format!("unexpected {:?}", char::from(other)))),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Num(i64),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Num(n) => n.to_string(),
        }
    }

    fn num(&self, f: &str) -> Result<i64, LogicalError> {
        match self {
            Val::Num(n) => Ok(*n),
            Val::Str(_) => Err(bad(format!("{f} needs a number"))),
        }
    }
}

struct Eval<'a, 'b> {
    toks: &'b [Tok],
    pos: usize,
    input: &'b Inputs<'a>,
}

impl Eval<'_, '_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn pipeline(&mut self) -> Result<Val, LogicalError> {
        let mut v = self.command(None)?;
        while self.peek() == Some(&Tok::Pipe) {
            self.pos += 1;
            v = self.command(Some(v))?;
        }
        Ok(v)
    }

    fn operand(&mut self) -> Result<Option<Val>, LogicalError> {
        let Some(t) = self.peek().cloned() else {
            return Ok(None);
        };
        Ok(Some(match t {
            Tok::Field(f) => {
                self.pos += 1;
                Val::Str(match f.as_str() {
                    "DisplayName" => self.input.display_name.to_owned(),
                    "RoleName" => self.input.role_name.to_owned(),
                    other => return Err(bad(format!("unknown field .{other}"))),
                })
            }
            Tok::Str(s) => {
                self.pos += 1;
                Val::Str(s)
            }
            Tok::Num(n) => {
                self.pos += 1;
                Val::Num(n)
            }
            Tok::Open => {
                self.pos += 1;
                let v = self.pipeline()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(bad("missing )"));
                }
                self.pos += 1;
                v
            }
            Tok::Ident(name)
                if name == "unix_time" || name == "unix_time_millis" || name == "uuid" =>
            {
                self.pos += 1;
                self.call(&name, Vec::new())?
            }
            _ => return Ok(None),
        }))
    }

    fn command(&mut self, piped: Option<Val>) -> Result<Val, LogicalError> {
        match self.peek().cloned() {
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                let mut args = Vec::new();
                while let Some(v) = self.operand()? {
                    args.push(v);
                }
                args.extend(piped);
                self.call(&name, args)
            }
            _ => {
                let v = self.operand()?.ok_or_else(|| bad("expected a value"))?;
                match piped {
                    None => Ok(v),
                    Some(_) => Err(bad("a value cannot follow |; a function must")),
                }
            }
        }
    }

    fn call(&self, name: &str, args: Vec<Val>) -> Result<Val, LogicalError> {
        let arity = |n: usize| -> Result<(), LogicalError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(bad(format!(
                    "{name} takes {n} argument(s), got {}",
                    args.len()
                )))
            }
        };
        Ok(match name {
            "printf" => {
                let (fmt, rest) = args
                    .split_first()
                    .ok_or_else(|| bad("printf needs a format"))?;
                Val::Str(printf(&fmt.text(), rest)?)
            }
            "random" => {
                arity(1)?;
                let n = usize::try_from(args[0].num(name)?)
                    .map_err(|_| bad("random needs a positive number"))?;
                Val::Str(coffer_core::token::random_base62(n)?)
            }
            "truncate" => {
                arity(2)?;
                let n = usize::try_from(args[0].num(name)?)
                    .map_err(|_| bad("truncate needs a positive number"))?;
                Val::Str(args[1].text().chars().take(n).collect())
            }
            "truncate_sha256" => {
                arity(2)?;
                let n = usize::try_from(args[0].num(name)?)
                    .map_err(|_| bad("truncate_sha256 needs a positive number"))?;
                let s = args[1].text();
                if s.chars().count() <= n {
                    Val::Str(s)
                } else {
                    // Vault keeps n-8 characters and appends 8 of the hash.
                    let keep: String = s.chars().take(n.saturating_sub(8)).collect();
                    let h = hex::encode(Sha256::digest(s.as_bytes()));
                    Val::Str(format!("{keep}{}", &h[..8.min(n)]))
                }
            }
            "uppercase" => {
                arity(1)?;
                Val::Str(args[0].text().to_uppercase())
            }
            "lowercase" => {
                arity(1)?;
                Val::Str(args[0].text().to_lowercase())
            }
            "replace" => {
                arity(3)?;
                Val::Str(args[2].text().replace(&args[0].text(), &args[1].text()))
            }
            "sha256" => {
                arity(1)?;
                Val::Str(hex::encode(Sha256::digest(args[0].text().as_bytes())))
            }
            "base64" => {
                arity(1)?;
                Val::Str(base64::engine::general_purpose::STANDARD.encode(args[0].text()))
            }
            "unix_time" => {
                arity(0)?;
                Val::Num(self.input.now_millis / 1000)
            }
            "unix_time_millis" => {
                arity(0)?;
                Val::Num(self.input.now_millis)
            }
            "uuid" => {
                arity(0)?;
                Val::Str(uuid::Uuid::new_v4().to_string())
            }
            other => return Err(bad(format!("unknown function {other:?}"))),
        })
    }
}

fn printf(fmt: &str, args: &[Val]) -> Result<String, LogicalError> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s' | 'd' | 'v') => out.push_str(
                &args
                    .next()
                    .ok_or_else(|| bad("printf has fewer arguments than verbs"))?
                    .text(),
            ),
            other => {
                return Err(bad(format!(
                    "printf verb %{} is not supported",
                    other.unwrap_or(' ')
                )));
            }
        }
    }
    Ok(out)
}

/// Renders a template.
pub(super) fn render(template: &str, input: &Inputs<'_>) -> Result<String, LogicalError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| bad("{{ without }}"))?;
        let action = after[..end].trim_matches('-').trim();
        let toks = lex(action)?;
        let mut e = Eval {
            toks: &toks,
            pos: 0,
            input,
        };
        let v = e.pipeline()?;
        if e.pos != toks.len() {
            return Err(bad(format!("unexpected text in {{{{{action}}}}}")));
        }
        out.push_str(&v.text());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a template when it is configured, so a mistake is a 400 then and
/// not a failed `creds/` later.
pub(super) fn check(template: &str) -> Result<(), LogicalError> {
    render(
        template,
        &Inputs {
            display_name: "token",
            role_name: "role",
            now_millis: 0,
        },
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Inputs<'static> {
        Inputs {
            display_name: "userpass-alice",
            role_name: "readonly-role",
            now_millis: 1_614_294_836_123,
        }
    }

    #[test]
    fn vaults_default_postgres_template() {
        let t = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#;
        let s = render(t, &input()).unwrap();
        assert!(s.starts_with("v-userpass-readonly-"), "{s}");
        assert!(s.ends_with("-1614294836"), "{s}");
        assert_eq!(s.len(), 2 + 8 + 1 + 8 + 1 + 20 + 1 + 10);
    }

    #[test]
    fn functions_and_text() {
        let cases = [
            ("app-{{.RoleName | uppercase}}", "app-READONLY-ROLE"),
            ("{{ .DisplayName | replace \"-\" \"_\" }}", "userpass_alice"),
            ("{{unix_time_millis}}", "1614294836123"),
            ("{{ .RoleName | truncate_sha256 10 }}", "re"),
            ("x{{ printf \"%s.%d\" .RoleName 7 }}", "xreadonly-role.7"),
        ];
        for (t, want) in cases {
            let got = render(t, &input()).unwrap();
            assert!(got.starts_with(want), "{t}: {got}");
        }
        assert_eq!(render("{{ random 12 }}", &input()).unwrap().len(), 12);
        assert_eq!(
            render("{{ .RoleName | truncate_sha256 10 }}", &input())
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (t, needle) in [
            ("{{ .Nope }}", "unknown field"),
            ("{{ frobnicate 1 }}", "unknown function"),
            ("{{ .RoleName ", "without"),
            ("{{ truncate .RoleName }}", "argument"),
        ] {
            let e = check(t).unwrap_err().to_string();
            assert!(e.contains(needle), "{t}: {e}");
        }
    }
}
