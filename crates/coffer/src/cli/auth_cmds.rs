//! `coffer login`, `coffer token ...`, `coffer policy ...`, `coffer auth ...`.

use std::io::Read as _;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::output::{cell, go_duration, structured, table};
use super::{ClientArgs, Format, UsageError, token_file};

/// `coffer login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// token, userpass, approle, jwt or kubernetes.
    #[arg(long, default_value = "token")]
    method: String,
    /// Where the method is mounted (default: the method's name).
    #[arg(long)]
    path: Option<String>,
    /// Do not store the token in ~/.coffer-token.
    #[arg(long)]
    no_store: bool,
    /// The token (method=token), or `key=value` login parameters; `-` reads from stdin.
    args: Vec<String>,
}

fn read_stdin_line() -> anyhow::Result<String> {
    Ok(super::prompt::secret("Value (will be hidden): ")?
        .trim()
        .to_owned())
}

fn kv_args(args: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| UsageError(format!("argument {a:?} must be key=value")))?;
        let v = if v == "-" {
            read_stdin_line()?
        } else if let Some(file) = v.strip_prefix('@') {
            std::fs::read_to_string(file)
                .with_context(|| format!("reading {file} for {k}"))?
                .trim()
                .to_owned()
        } else {
            v.to_owned()
        };
        m.insert(k.to_owned(), Value::String(v));
    }
    Ok(m)
}

fn print_auth(body: &Value, client: &ClientArgs, note: &str) -> anyhow::Result<()> {
    let format = client.format;
    if client.field.is_some() {
        return super::generic::print_field_or_secret(body, client.field.as_deref(), format)
            .map(|_| ());
    }
    if format != Format::Table {
        structured(body, format);
        return Ok(());
    }
    let a = &body["auth"];
    if !note.is_empty() {
        println!("{note}\n");
    }
    let ttl = a["lease_duration"].as_u64().unwrap_or(0);
    table(&[
        ("token".into(), cell(&a["client_token"])),
        ("token_accessor".into(), cell(&a["accessor"])),
        (
            "token_duration".into(),
            if ttl == 0 {
                "∞".into()
            } else {
                go_duration(ttl)
            },
        ),
        ("token_renewable".into(), cell(&a["renewable"])),
        ("token_policies".into(), cell(&a["token_policies"])),
        ("policies".into(), cell(&a["policies"])),
        ("token_meta".into(), cell(&a["metadata"])),
    ]);
    Ok(())
}

/// Posts login parameters; returns the new token and the whole answer.
async fn login_post(
    c: &ClientArgs,
    path: &str,
    params: Map<String, Value>,
) -> anyhow::Result<(String, Value)> {
    let body = c
        .client_with_token(None)?
        .write(path, &Value::Object(params))
        .await?
        .context("login returned nothing")?;
    let token = body["auth"]["client_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((token, body))
}

/// Runs `coffer login`.
pub async fn login(a: LoginArgs) -> anyhow::Result<u8> {
    let c = &a.client;
    let (token, body) = match a.method.as_str() {
        "token" => {
            let t = match a.args.first().map(String::as_str) {
                None | Some("-") => super::prompt::secret("Token (will be hidden): ")?
                    .trim()
                    .to_owned(),
                Some(t) => t.to_owned(),
            };
            let client = c.client_with_token(Some(t.clone()))?;
            let body = client
                .read("auth/token/lookup-self")
                .await?
                .context("token lookup returned nothing")?;
            let auth = json!({"auth": {
                "client_token": t, "accessor": body["data"]["accessor"], "lease_duration": body["data"]["ttl"],
                "renewable": body["data"]["renewable"], "token_policies": body["data"]["policies"],
                "policies": body["data"]["policies"], "metadata": body["data"]["meta"]}});
            (t, auth)
        }
        "userpass" => {
            let mut params = kv_args(&a.args)?;
            let user = params
                .remove("username")
                .and_then(|v| v.as_str().map(String::from))
                .ok_or_else(|| {
                    UsageError(
                        "userpass login needs username=NAME (and password=- to type it on stdin)"
                            .into(),
                    )
                })?;
            if !params.contains_key("password") {
                let pw = super::prompt::secret("Password (will be hidden): ")?;
                params.insert("password".into(), Value::String(pw));
            }
            let mount = a.path.clone().unwrap_or_else(|| "userpass".into());
            login_post(c, &format!("auth/{mount}/login/{user}"), params).await?
        }
        "jwt" => {
            let params = kv_args(&a.args)?;
            if !params.contains_key("jwt") {
                return Err(UsageError(
                    "jwt login needs jwt=@FILE (or jwt=-) and usually role=NAME".into(),
                )
                .into());
            }
            let mount = a.path.clone().unwrap_or_else(|| "jwt".into());
            login_post(c, &format!("auth/{mount}/login"), params).await?
        }
        "kubernetes" => {
            let mut params = kv_args(&a.args)?;
            if !params.contains_key("role") {
                return Err(UsageError(
                    "kubernetes login needs role=NAME (and jwt=@FILE unless the pod's token is mounted)"
                        .into(),
                )
                .into());
            }
            if !params.contains_key("jwt") {
                let dir = std::env::var_os(coffer_auth::kubernetes::SA_DIR_ENV)
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| "/var/run/secrets/kubernetes.io/serviceaccount".into());
                let path = dir.join("token");
                let jwt = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "no jwt=... given and the service-account token {} could not be read",
                        path.display()
                    )
                })?;
                params.insert("jwt".into(), Value::String(jwt.trim().to_owned()));
            }
            let mount = a.path.clone().unwrap_or_else(|| "kubernetes".into());
            login_post(c, &format!("auth/{mount}/login"), params).await?
        }
        "approle" => {
            let params = kv_args(&a.args)?;
            if !params.contains_key("role_id") {
                return Err(
                    UsageError("approle login needs role_id=... secret_id=...".into()).into(),
                );
            }
            let mount = a.path.clone().unwrap_or_else(|| "approle".into());
            login_post(c, &format!("auth/{mount}/login"), params).await?
        }
        m => {
            return Err(UsageError(format!(
                "unknown login method {m:?}: use token, userpass, approle, jwt or kubernetes"
            ))
            .into());
        }
    };
    if token.is_empty() {
        anyhow::bail!("the server returned no token");
    }
    let note = if a.no_store {
        "Success! You are now authenticated (token not stored).".to_string()
    } else {
        let p = token_file::write(&token)?;
        match super::env_token_name() {
            // The environment wins over the stored token: say so, or the
            // next command runs as someone else.
            Some(var) => format!(
                "Success! You are now authenticated. The token is stored in {}, but {var} is set \
                 and later commands use it instead: unset {var} to use the new token.",
                p.display()
            ),
            None => format!(
                "Success! You are now authenticated. The token is stored in {} and used by later commands.",
                p.display()
            ),
        }
    };
    if !a.no_store
        && let Some(var) = super::env_token_name()
    {
        eprintln!(
            "WARNING! {var} is set and takes precedence over the token just stored; unset it to use the new token."
        );
    }
    print_auth(&body, &a.client, &note)?;
    Ok(0)
}

/// `coffer token ...`.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// The capabilities a token has on a path (the client token when only
    /// a path is given).
    Capabilities {
        #[command(flatten)]
        client: ClientArgs,
        /// `[TOKEN] PATH`.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
    },
    /// Create a child token.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// Policies (repeat or comma-separate).
        #[arg(long = "policy", value_delimiter = ',')]
        policies: Vec<String>,
        /// TTL, e.g. 1h.
        #[arg(long)]
        ttl: Option<String>,
        /// Hard cap on the lifetime.
        #[arg(long)]
        explicit_max_ttl: Option<String>,
        /// Periodic token renewing to this period.
        #[arg(long)]
        period: Option<String>,
        /// Uses before it expires (0 = unlimited).
        #[arg(long)]
        use_limit: Option<i64>,
        /// Create an orphan (needs sudo).
        #[arg(long)]
        orphan: bool,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Token role.
        #[arg(long)]
        role: Option<String>,
    },
    /// Look up a token (default: your own); `-accessor` treats the argument as an accessor.
    Lookup {
        #[command(flatten)]
        client: ClientArgs,
        /// The argument is an accessor.
        #[arg(long)]
        accessor: bool,
        /// Token or accessor.
        token: Option<String>,
    },
    /// Renew a token (default: your own).
    Renew {
        #[command(flatten)]
        client: ClientArgs,
        /// Requested TTL.
        #[arg(long)]
        increment: Option<String>,
        /// Token to renew.
        token: Option<String>,
    },
    /// Revoke a token and its children (`-self` for your own).
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        /// Revoke the calling token.
        #[arg(long = "self")]
        own: bool,
        /// The argument is an accessor.
        #[arg(long)]
        accessor: bool,
        /// Token or accessor.
        token: Option<String>,
    },
}

fn print_data(body: &Value, format: Format) {
    if format != Format::Table {
        return structured(body, format);
    }
    let rows: Vec<(String, String)> = body["data"]
        .as_object()
        .map(|d| d.iter().map(|(k, v)| (k.clone(), cell(v))).collect())
        .unwrap_or_default();
    table(&rows);
}

/// Runs `coffer token ...`.
pub async fn token(cmd: TokenCommand) -> anyhow::Result<u8> {
    match cmd {
        TokenCommand::Capabilities { client, args } => {
            let c = client.client()?;
            let (path, answer) = match args.as_slice() {
                [path] => (
                    path,
                    c.write("sys/capabilities-self", &json!({"paths": [path]}))
                        .await?,
                ),
                [token, path] => (
                    path,
                    c.write(
                        "sys/capabilities",
                        &json!({"token": token, "paths": [path]}),
                    )
                    .await?,
                ),
                _ => return Err(UsageError("give [TOKEN] PATH".into()).into()),
            };
            let answer = answer.context("sys/capabilities returned nothing")?;
            if client.format != Format::Table {
                structured(&answer, client.format);
            } else {
                let caps = answer["data"]
                    .get(path.as_str())
                    .or_else(|| answer["data"].get("capabilities"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                println!("{caps}");
            }
        }
        TokenCommand::Create {
            client,
            policies,
            ttl,
            explicit_max_ttl,
            period,
            use_limit,
            orphan,
            display_name,
            role,
        } => {
            let mut body = Map::new();
            if !policies.is_empty() {
                body.insert("policies".into(), json!(policies));
            }
            for (k, v) in [
                ("ttl", ttl),
                ("explicit_max_ttl", explicit_max_ttl),
                ("period", period),
                ("display_name", display_name),
            ] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            if let Some(n) = use_limit {
                body.insert("num_uses".into(), json!(n));
            }
            if orphan {
                body.insert("no_parent".into(), json!(true));
            }
            let path = match role {
                Some(r) => format!("auth/token/create/{r}"),
                None => "auth/token/create".into(),
            };
            let resp = client
                .client()?
                .write(&path, &Value::Object(body))
                .await?
                .context("no token returned")?;
            print_auth(&resp, &client, "")?;
        }
        TokenCommand::Lookup {
            client,
            accessor,
            token,
        } => {
            let c = client.client()?;
            let resp = match (token, accessor) {
                (None, _) => c.read("auth/token/lookup-self").await?,
                (Some(a), true) => {
                    c.write("auth/token/lookup-accessor", &json!({"accessor": a}))
                        .await?
                }
                (Some(t), false) => c.write("auth/token/lookup", &json!({"token": t})).await?,
            }
            .context("lookup returned nothing")?;
            if client.field.is_some() {
                super::generic::print_field_or_secret(
                    &resp,
                    client.field.as_deref(),
                    client.format,
                )?;
            } else {
                print_data(&resp, client.format);
            }
        }
        TokenCommand::Renew {
            client,
            increment,
            token,
        } => {
            let c = client.client()?;
            let mut body = json!({});
            if let Some(i) = increment {
                body["increment"] = json!(i);
            }
            let resp = match token {
                None => c.write("auth/token/renew-self", &body).await?,
                Some(t) => {
                    body["token"] = json!(t);
                    c.write("auth/token/renew", &body).await?
                }
            }
            .context("renew returned nothing")?;
            print_auth(&resp, &client, "")?;
        }
        TokenCommand::Revoke {
            client,
            own,
            accessor,
            token,
        } => {
            let c = client.client()?;
            match (own, token, accessor) {
                (true, _, _) => c.write("auth/token/revoke-self", &json!({})).await?,
                (false, Some(a), true) => {
                    c.write("auth/token/revoke-accessor", &json!({"accessor": a}))
                        .await?
                }
                (false, Some(t), false) => {
                    c.write("auth/token/revoke", &json!({"token": t})).await?
                }
                (false, None, _) => {
                    return Err(UsageError(
                        "give a token (or -accessor ACCESSOR, or -self)".into(),
                    )
                    .into());
                }
            };
            println!("Success! Revoked token (if it existed)");
        }
    }
    Ok(0)
}

/// `coffer policy ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Upload a policy from a file (`-` for stdin).
    Write {
        #[command(flatten)]
        client: ClientArgs,
        /// Policy name.
        name: String,
        /// HCL or JSON file.
        file: String,
    },
    /// Print a policy's text.
    Read {
        #[command(flatten)]
        client: ClientArgs,
        /// Policy name.
        name: String,
    },
    /// List policy names.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Lay out an HCL policy file canonically, in place (comments are kept).
    Fmt {
        /// HCL policy file.
        file: String,
    },
    /// Delete a policy.
    Delete {
        #[command(flatten)]
        client: ClientArgs,
        /// Policy name.
        name: String,
    },
}

/// Runs `coffer policy ...`.
pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<u8> {
    match cmd {
        PolicyCommand::Write { client, name, file } => {
            let text = if file == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            client
                .client()?
                .write(
                    &format!("sys/policies/acl/{name}"),
                    &json!({"policy": text}),
                )
                .await?;
            println!("Success! Uploaded policy: {name}");
        }
        PolicyCommand::Read { client, name } => {
            let Some(body) = client
                .client()?
                .read(&format!("sys/policies/acl/{name}"))
                .await?
            else {
                eprintln!("No policy named: {name}");
                return Ok(2);
            };
            if client.format != Format::Table {
                structured(&body, client.format);
            } else {
                print!("{}", body["data"]["policy"].as_str().unwrap_or_default());
            }
        }
        PolicyCommand::List { client } => {
            let keys = client.client()?.list("sys/policies/acl").await?;
            if client.format != Format::Table {
                structured(&json!(keys), client.format);
            } else {
                keys.iter().for_each(|k| println!("{k}"));
            }
        }
        PolicyCommand::Fmt { file } => {
            let src = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
            let out = coffer_core::policy::format_policy(&src)
                .map_err(|e| UsageError(format!("{file}: {e}")))?;
            if out != src {
                replace_file(std::path::Path::new(&file), out.as_bytes())?;
            }
            println!("Success! Formatted policy: {file}");
        }
        PolicyCommand::Delete { client, name } => {
            client
                .client()?
                .delete(&format!("sys/policies/acl/{name}"))
                .await?;
            println!("Success! Deleted policy: {name}");
        }
    }
    Ok(0)
}

/// Writes `bytes` to a temporary file beside `path` with the same permissions, then renames it over.
fn replace_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(".{}.coffer-fmt.tmp", std::process::id()));
    let perms = std::fs::metadata(path)?.permissions();
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("rewriting {}", path.display()))
}

/// `coffer auth ...`.
#[derive(clap::Subcommand, Debug)]
pub enum AuthCommand {
    /// Enable an auth method.
    Enable {
        #[command(flatten)]
        client: ClientArgs,
        /// Mount path (default: the type).
        #[arg(long)]
        path: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Method type: userpass, approle.
        method: String,
    },
    /// Disable an auth method (revokes its tokens).
    Disable {
        #[command(flatten)]
        client: ClientArgs,
        /// Mount path.
        path: String,
    },
    /// List enabled auth methods.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change an auth method's token TTLs or description.
    Tune {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        tune: super::secrets::TuneArgs,
        /// Mount path.
        path: String,
    },
    /// Move an auth method to a new path (`auth/a` to `auth/b`); its users,
    /// roles and tokens follow.
    Move {
        #[command(flatten)]
        client: ClientArgs,
        /// Current path.
        from: String,
        /// New path.
        to: String,
    },
}

/// Runs `coffer auth ...`.
pub async fn auth(cmd: AuthCommand) -> anyhow::Result<u8> {
    match cmd {
        AuthCommand::Enable {
            client,
            path,
            description,
            method,
        } => {
            let path = path.unwrap_or_else(|| method.clone());
            let p = path.trim_matches('/');
            client
                .client()?
                .write(
                    &format!("sys/auth/{p}"),
                    &json!({"type": method, "description": description.unwrap_or_default()}),
                )
                .await?;
            println!("Success! Enabled {method} auth method at: {p}/");
        }
        AuthCommand::Disable { client, path } => {
            let p = path.trim_matches('/');
            client.client()?.delete(&format!("sys/auth/{p}")).await?;
            println!("Success! Disabled the auth method (if it existed) at: {p}/");
        }
        AuthCommand::Tune { client, tune, path } => {
            let p = path.trim_matches('/');
            let body = tune.body();
            client
                .client()?
                .write(&format!("sys/auth/{p}/tune"), &Value::Object(body))
                .await?;
            println!("Success! Tuned the auth method at: {p}/");
        }
        AuthCommand::Move { client, from, to } => {
            let auth_path = |p: &str| {
                let p = p.trim_matches('/');
                format!("auth/{}/", p.strip_prefix("auth/").unwrap_or(p))
            };
            let (from, to) = (auth_path(&from), auth_path(&to));
            let id = super::secrets::remount(&client, &from, &to).await?;
            println!("Success! Finished moving auth method {from} to {to}, with migration ID {id}");
        }
        AuthCommand::List { client } => {
            let body = client
                .client()?
                .read("sys/auth")
                .await?
                .context("sys/auth returned nothing")?;
            if client.format != Format::Table {
                structured(&body, client.format);
            } else {
                let rows: Vec<(String, String)> = body["data"]
                    .as_object()
                    .map(|d| {
                        d.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    format!("{}    {}", cell(&v["type"]), cell(&v["accessor"])),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                println!("Path    Type    Accessor");
                for (k, v) in rows {
                    println!("{k}    {v}");
                }
            }
        }
    }
    Ok(0)
}
