//! `username_template`: Vault's user name templates, rendered by
//! `coffer-template` over `.DisplayName` and `.RoleName` with Vault's
//! functions: `printf`, `random N`, `truncate N`, `truncate_sha256 N`,
//! `uppercase`, `lowercase`, `replace OLD NEW`, `sha256`, `base64`,
//! `unix_time`, `unix_time_millis`, `uuid`.

use base64::Engine as _;
use coffer_core::LogicalError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The values a template can read.
pub(super) struct Inputs<'a> {
    pub display_name: &'a str,
    pub role_name: &'a str,
    pub now_millis: i64,
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(format!("username_template: {}", m.into()))
}

/// Vault's user name functions.
struct Funcs {
    now_millis: i64,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn count(name: &str, v: &Value) -> Result<usize, String> {
    v.as_u64()
        .or_else(|| text(v).parse().ok())
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{name} needs a positive number, got {}", text(v)))
}

impl coffer_template::Functions for Funcs {
    fn call(&mut self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("takes {n} argument(s), got {}", args.len()))
            }
        };
        let run = || -> Result<Value, String> {
            Ok(match name {
                "random" => {
                    arity(1)?;
                    let n = count(name, &args[0])?;
                    Value::from(coffer_core::token::random_base62(n).map_err(|e| e.to_string())?)
                }
                "truncate" => {
                    arity(2)?;
                    let n = count(name, &args[0])?;
                    Value::from(text(&args[1]).chars().take(n).collect::<String>())
                }
                "truncate_sha256" => {
                    arity(2)?;
                    let n = count(name, &args[0])?;
                    let s = text(&args[1]);
                    if s.chars().count() <= n {
                        Value::from(s)
                    } else {
                        // Vault keeps n-8 characters and appends 8 of the hash.
                        let keep: String = s.chars().take(n.saturating_sub(8)).collect();
                        let h = hex::encode(Sha256::digest(s.as_bytes()));
                        Value::from(format!("{keep}{}", &h[..8.min(n)]))
                    }
                }
                "uppercase" => {
                    arity(1)?;
                    Value::from(text(&args[0]).to_uppercase())
                }
                "lowercase" => {
                    arity(1)?;
                    Value::from(text(&args[0]).to_lowercase())
                }
                "replace" => {
                    arity(3)?;
                    Value::from(text(&args[2]).replace(&text(&args[0]), &text(&args[1])))
                }
                "sha256" => {
                    arity(1)?;
                    Value::from(hex::encode(Sha256::digest(text(&args[0]).as_bytes())))
                }
                "base64" => {
                    arity(1)?;
                    Value::from(base64::engine::general_purpose::STANDARD.encode(text(&args[0])))
                }
                "unix_time" => {
                    arity(0)?;
                    Value::from(self.now_millis / 1000)
                }
                "unix_time_millis" => {
                    arity(0)?;
                    Value::from(self.now_millis)
                }
                "uuid" => {
                    arity(0)?;
                    Value::from(uuid::Uuid::new_v4().to_string())
                }
                _ => return Err(String::new()),
            })
        };
        Some(run()).filter(|r| !matches!(r, Err(e) if e.is_empty()))
    }

    fn docs(&self) -> &str {
        "Vault's username_template functions"
    }
}

/// Renders a template.
pub(super) fn render(template: &str, input: &Inputs<'_>) -> Result<String, LogicalError> {
    let t = coffer_template::Template::parse(template)
        .map_err(|e| bad(e.to_string()))?
        .error_on_missing_key(true);
    let data = json!({"DisplayName": input.display_name, "RoleName": input.role_name});
    t.render(
        &data,
        &mut Funcs {
            now_millis: input.now_millis,
        },
    )
    .map_err(|e| bad(e.to_string()))
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
            ("{{ .Nope }}", "no entry for key"),
            ("{{ frobnicate 1 }}", "\"frobnicate\""),
            ("{{ .RoleName ", "not closed"),
            ("{{ truncate .RoleName }}", "argument"),
        ] {
            let e = check(t).unwrap_err().to_string();
            assert!(e.contains(needle), "{t}: {e}");
        }
    }
}
