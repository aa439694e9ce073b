//! consul-template's functions over `coffer-template`. `secret` and
//! `secrets` never call the server while a template renders: they answer
//! from what was fetched, and note what is missing; the agent fetches that
//! and renders again (consul-template's two-pass way), so a template is
//! written only once every value it uses is there.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde_json::{Map, Value};

/// What a template asks the server for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dep {
    /// `secret "path"`: a read.
    Read(String),
    /// `secret "path" "k=v" ...`: a write with those fields (credentials
    /// that must be requested, such as a PKI certificate).
    Write(String, BTreeMap<String, String>),
    /// `secrets "path"`: a list.
    List(String),
}

impl Dep {
    /// The path as the template gave it.
    pub fn path(&self) -> &str {
        match self {
            Dep::Read(p) | Dep::Write(p, _) | Dep::List(p) => p,
        }
    }
}

/// The values one render may use, and what it missed.
pub struct Funcs<'a> {
    pub fetched: &'a BTreeMap<Dep, Value>,
    pub missing: BTreeSet<Dep>,
    pub used: BTreeSet<Dep>,
}

impl<'a> Funcs<'a> {
    pub fn new(fetched: &'a BTreeMap<Dep, Value>) -> Self {
        Funcs {
            fetched,
            missing: BTreeSet::new(),
            used: BTreeSet::new(),
        }
    }

    fn dep(&mut self, d: Dep) -> Value {
        self.used.insert(d.clone());
        match self.fetched.get(&d) {
            Some(v) => v.clone(),
            None => {
                self.missing.insert(d);
                Value::Null
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn one(args: &[Value]) -> Result<&Value, String> {
    match args {
        [a] => Ok(a),
        _ => Err(format!("takes 1 argument, got {}", args.len())),
    }
}

fn two(args: &[Value]) -> Result<(&Value, &Value), String> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(format!("takes 2 arguments, got {}", args.len())),
    }
}

fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".into()),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| "a string that is not a number".to_owned()),
        // The value may be a secret: never in the message.
        _ => Err("not a number".to_owned()),
    }
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

/// `in LIST VALUE`: a list element, a map key or a substring.
fn contains_value(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::Array(a) => a.iter().any(|x| x == needle || text(x) == text(needle)),
        Value::Object(m) => m.contains_key(&text(needle)),
        Value::String(s) => s.contains(&text(needle)),
        _ => false,
    }
}

impl coffer_template::Functions for Funcs<'_> {
    fn call(&mut self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let b64url = base64::engine::general_purpose::URL_SAFE;
        Some((|| -> Result<Value, String> {
            Ok(match name {
                "secret" => {
                    let (path, rest) = args.split_first().ok_or("needs a path")?;
                    let path = text(path).trim_matches('/').to_owned();
                    if rest.is_empty() {
                        self.dep(Dep::Read(path))
                    } else {
                        let mut fields = BTreeMap::new();
                        for a in rest {
                            let a = text(a);
                            let (k, v) = a
                                .split_once('=')
                                .ok_or_else(|| format!("{a:?} is not key=value"))?;
                            fields.insert(k.to_owned(), v.to_owned());
                        }
                        self.dep(Dep::Write(path, fields))
                    }
                }
                "secrets" => {
                    let path = text(one(args)?).trim_matches('/').to_owned();
                    self.dep(Dep::List(path))
                }
                "env" => Value::from(std::env::var(text(one(args)?)).unwrap_or_default()),
                "mustEnv" => {
                    let k = text(one(args)?);
                    Value::from(std::env::var(&k).map_err(|_| format!("{k} is not set"))?)
                }
                "envOrDefault" => {
                    let (k, d) = two(args)?;
                    Value::from(std::env::var(text(k)).unwrap_or_else(|_| text(d)))
                }
                "file" => {
                    let p = text(one(args)?);
                    Value::from(std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?)
                }
                "toJSON" => {
                    Value::from(serde_json::to_string(one(args)?).map_err(|e| e.to_string())?)
                }
                "toJSONPretty" => Value::from(
                    serde_json::to_string_pretty(one(args)?).map_err(|e| e.to_string())?,
                ),
                "toYAML" => Value::from(
                    serde_norway::to_string(one(args)?)
                        .map_err(|e| e.to_string())?
                        .trim_end()
                        .to_owned(),
                ),
                "parseJSON" => {
                    let s = text(one(args)?);
                    if s.trim().is_empty() {
                        Value::Object(Map::new())
                    } else {
                        serde_json::from_str(&s).map_err(|e| e.to_string())?
                    }
                }
                "base64Encode" => Value::from(b64.encode(text(one(args)?))),
                "base64Decode" => Value::from(
                    String::from_utf8(b64.decode(text(one(args)?)).map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?,
                ),
                "base64URLEncode" => Value::from(b64url.encode(text(one(args)?))),
                "base64URLDecode" => Value::from(
                    String::from_utf8(b64url.decode(text(one(args)?)).map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?,
                ),
                "split" => {
                    let (sep, s) = two(args)?;
                    let (sep, s) = (text(sep), text(s));
                    if s.is_empty() {
                        Value::Array(Vec::new())
                    } else {
                        Value::from(s.split(sep.as_str()).collect::<Vec<_>>())
                    }
                }
                "trimSpace" => Value::from(text(one(args)?).trim().to_owned()),
                "trimPrefix" => {
                    let (p, s) = two(args)?;
                    let s = text(s);
                    Value::from(s.strip_prefix(&text(p)).unwrap_or(&s).to_owned())
                }
                "trimSuffix" => {
                    let (p, s) = two(args)?;
                    let s = text(s);
                    Value::from(s.strip_suffix(&text(p)).unwrap_or(&s).to_owned())
                }
                "toUpper" => Value::from(text(one(args)?).to_uppercase()),
                "toLower" => Value::from(text(one(args)?).to_lowercase()),
                "replaceAll" => match args {
                    [from, to, s] => Value::from(text(s).replace(&text(from), &text(to))),
                    _ => return Err("takes 3 arguments: from, to, string".into()),
                },
                "contains" => {
                    let (needle, haystack) = two(args)?;
                    Value::from(contains_value(haystack, needle))
                }
                "in" => {
                    let (haystack, needle) = two(args)?;
                    Value::from(contains_value(haystack, needle))
                }
                "indent" => {
                    let (n, s) = two(args)?;
                    let pad = " ".repeat(num(n)? as usize);
                    Value::from(
                        text(s)
                            .split('\n')
                            .map(|l| format!("{pad}{l}"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )
                }
                "parseInt" => number(num(one(args)?)?.trunc()),
                "parseFloat" => number(num(one(args)?)?),
                "parseBool" => {
                    let s = text(one(args)?);
                    Value::from(
                        coffer_core::fields::parse_bool(&s).ok_or("a string that is not a bool")?,
                    )
                }
                "add" | "subtract" | "multiply" | "divide" | "modulo" => {
                    // consul-template: `{{ 2 | add 1 }}` is add(1, 2) = 2 + 1.
                    let (b, a) = two(args)?;
                    let (a, b) = (num(a)?, num(b)?);
                    number(match name {
                        "add" => a + b,
                        "subtract" => a - b,
                        "multiply" => a * b,
                        "divide" if b == 0.0 => return Err("division by zero".into()),
                        "divide" => (a / b).trunc(),
                        _ if b == 0.0 => return Err("division by zero".into()),
                        _ => a % b,
                    })
                }
                "timestamp" => {
                    let now = time::OffsetDateTime::now_utc()
                        .format(&time::format_description::well_known::Rfc3339)
                        .map_err(|e| e.to_string())?;
                    match args {
                        [] => Value::from(now),
                        [layout] => Value::from(
                            coffer_template::go_date(&text(layout), &now)
                                .map_err(|e| e.to_string())?,
                        ),
                        _ => return Err("takes 0 or 1 argument".into()),
                    }
                }
                _ => return Err(String::new()),
            })
        })())
        .filter(|r| !matches!(r, Err(e) if e.is_empty()))
    }

    fn docs(&self) -> &str {
        "docs/agent.md"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_template::Template;
    use serde_json::json;

    #[test]
    fn secrets_are_collected_then_rendered() {
        let t = Template::parse(
            r#"{{ with secret "secret/data/app" }}{{ .Data.data.user }}:{{ .Data.data.pw | base64Encode }}{{ end }}"#,
        )
        .expect("parse");
        let none = BTreeMap::new();
        let mut f = Funcs::new(&none);
        assert_eq!(t.render(&Value::Null, &mut f).expect("first pass"), "");
        assert_eq!(
            f.missing.iter().next(),
            Some(&Dep::Read("secret/data/app".into()))
        );
        let mut have = BTreeMap::new();
        have.insert(
            Dep::Read("secret/data/app".into()),
            json!({"Data": {"data": {"user": "app", "pw": "hunter2"}}}),
        );
        let mut f = Funcs::new(&have);
        assert_eq!(
            t.render(&Value::Null, &mut f).expect("render"),
            "app:aHVudGVyMg=="
        );
        assert!(f.missing.is_empty());
    }

    #[test]
    fn consul_templates_helpers() {
        let none = BTreeMap::new();
        let render = |src: &str| {
            Template::parse(src)
                .expect("parse")
                .render(&Value::Null, &mut Funcs::new(&none))
                .expect("render")
        };
        assert_eq!(render(r#"{{ "a,b" | split "," | join ";" }}"#), "a;b");
        assert_eq!(render(r#"{{ "  x " | trimSpace | toUpper }}"#), "X");
        assert_eq!(
            render(r#"{{ if "abc" | contains "b" }}yes{{ end }}"#),
            "yes"
        );
        assert_eq!(render(r#"{{ replaceAll "a" "b" "aXa" }}"#), "bXb");
        assert_eq!(
            render(r#"{{ ("{\"k\":[1,2]}" | parseJSON).k | toJSON }}"#),
            "[1,2]"
        );
        assert_eq!(render(r#"{{ 2 | add 1 }} {{ 10 | subtract 3 }}"#), "3 7");
        assert_eq!(render(r#"{{ printf "%s=%d" "n" 3 }}"#), "n=3");
        assert_eq!(
            render(r#"{{ index (parseJSON "{\"a\":{\"b\":\"c\"}}") "a" "b" }}"#),
            "c"
        );
    }
}
