//! A long-running client's session with coffer (the KMS plugin, the
//! agent's auto-auth): it logs in with AppRole (role and secret ID files)
//! or reads a token file that something else keeps fresh; either way the
//! token is renewed before it expires, logged in again when renewal stops
//! working, and re-read when its file changes. Every new token is
//! announced, so the agent can write its sinks.

use std::path::PathBuf;
use std::time::Duration;

use coffer_client::{Client, ClientError};
use coffer_core::file_stamp::FileStamp;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// Where the token comes from.
pub enum Source {
    /// A file holding the token (re-read when it changes).
    TokenFile(PathBuf),
    /// `auth/<mount>/login` with a role ID and a secret ID read from files.
    AppRole {
        mount: String,
        role_id_file: PathBuf,
        secret_id_file: PathBuf,
        /// Delete the secret ID file once read (the agent's
        /// `remove_secret_id_file_after_reading`, default true there).
        remove_secret_id: bool,
    },
    /// `auth/<mount>/login` with a role and a JWT read from a file (the
    /// `jwt` and `kubernetes` methods).
    JwtFile {
        mount: String,
        role: String,
        path: PathBuf,
        /// Delete the file once read (the agent's `remove_jwt_after_reading`).
        remove: bool,
    },
    /// A token given once (environment or `~/.coffer-token`).
    Fixed(Zeroizing<String>),
}

/// How long a login may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

fn read_trimmed(path: &PathBuf) -> Result<Zeroizing<String>, String> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    );
    let t = raw.trim();
    if t.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Zeroizing::new(t.to_owned()))
}

struct Current {
    client: Option<Client>,
    file: Option<FileStamp>,
}

/// The plugin's session with coffer.
pub struct Credentials {
    /// A client without a token: address and TLS settings.
    base: Client,
    source: Source,
    current: Mutex<Current>,
    /// The current token, announced at every login.
    token: tokio::sync::watch::Sender<Option<Zeroizing<String>>>,
    /// Who logs in, for log lines.
    who: &'static str,
}

impl Credentials {
    pub fn new(base: Client, source: Source, who: &'static str) -> Credentials {
        Credentials {
            base,
            source,
            current: Mutex::new(Current {
                client: None,
                file: None,
            }),
            token: tokio::sync::watch::Sender::new(None),
            who,
        }
    }

    /// Changes whenever a new token is in use.
    pub fn tokens(&self) -> tokio::sync::watch::Receiver<Option<Zeroizing<String>>> {
        self.token.subscribe()
    }

    async fn login(&self) -> Result<Client, String> {
        let c = self.fresh_login().await?;
        self.token
            .send_replace(c.token().map(|t| Zeroizing::new(t.to_owned())));
        Ok(c)
    }

    async fn fresh_login(&self) -> Result<Client, String> {
        match &self.source {
            Source::Fixed(t) => Ok(self.base.with_token(Some(t.to_string()))),
            Source::TokenFile(p) => Ok(self.base.with_token(Some(read_trimmed(p)?.to_string()))),
            Source::AppRole {
                mount,
                role_id_file,
                secret_id_file,
                remove_secret_id,
            } => {
                let secret_id = match read_trimmed(secret_id_file) {
                    Ok(s) => s,
                    // Removed after an earlier login: this token is all there is.
                    Err(e) if *remove_secret_id && !secret_id_file.exists() => {
                        return Err(format!(
                            "{e}: the secret ID file was removed after the first login, put a new secret ID there"
                        ));
                    }
                    Err(e) => return Err(e),
                };
                let body = json!({
                    "role_id": read_trimmed(role_id_file)?.as_str(),
                    "secret_id": secret_id.as_str(),
                });
                // Bounded: it runs under the session lock every call waits on.
                let answer = tokio::time::timeout(
                    LOGIN_TIMEOUT,
                    self.base.write(&format!("auth/{mount}/login"), &body),
                )
                .await
                .map_err(|_| {
                    format!(
                        "AppRole login at auth/{mount}/login: no answer within {LOGIN_TIMEOUT:?}"
                    )
                })?
                .map_err(|e| format!("AppRole login at auth/{mount}/login: {e}"))?;
                let token = answer
                    .as_ref()
                    .and_then(|a| a["auth"]["client_token"].as_str())
                    .ok_or("the AppRole login answered without a token")?;
                if *remove_secret_id && let Err(e) = std::fs::remove_file(secret_id_file) {
                    tracing::warn!(file = %secret_id_file.display(), error = %e, "could not remove the secret ID file after reading it");
                }
                tracing::info!(mount = %mount, "{} logged in to coffer with AppRole", self.who);
                Ok(self.base.with_token(Some(token.to_owned())))
            }
            Source::JwtFile {
                mount,
                role,
                path,
                remove,
            } => {
                let jwt = read_trimmed(path)?;
                let body = json!({"role": role, "jwt": jwt.as_str()});
                let login = format!("auth/{mount}/login");
                let answer = tokio::time::timeout(LOGIN_TIMEOUT, self.base.write(&login, &body))
                    .await
                    .map_err(|_| format!("login at {login}: no answer within {LOGIN_TIMEOUT:?}"))?
                    .map_err(|e| format!("login at {login}: {e}"))?;
                let token = answer
                    .as_ref()
                    .and_then(|a| a["auth"]["client_token"].as_str())
                    .ok_or_else(|| format!("the login at {login} answered without a token"))?;
                if *remove && let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(file = %path.display(), error = %e, "could not remove the JWT file after reading it");
                }
                tracing::info!(mount = %mount, role = %role, "{} logged in to coffer", self.who);
                Ok(self.base.with_token(Some(token.to_owned())))
            }
        }
    }

    /// A client with a token: the current one, a token file's new content,
    /// or a fresh login when there is none yet.
    pub async fn client(&self) -> Result<Client, String> {
        let mut cur = self.current.lock().await;
        if let Source::TokenFile(p) = &self.source {
            let now = FileStamp::of(p);
            if now != cur.file || cur.client.is_none() {
                let c = self.login().await?;
                cur.client = Some(c);
                cur.file = now;
            }
        }
        if let Some(c) = &cur.client {
            return Ok(c.clone());
        }
        let c = self.login().await?;
        cur.client = Some(c.clone());
        Ok(c)
    }

    /// After a 403: the token is gone (revoked, expired); log in again.
    pub async fn refresh(&self) -> Result<Client, String> {
        let mut cur = self.current.lock().await;
        let c = self.login().await?;
        cur.client = Some(c.clone());
        if let Source::TokenFile(p) = &self.source {
            cur.file = FileStamp::of(p);
        }
        Ok(c)
    }

    /// Renews the token at two thirds of its TTL for as long as the plugin
    /// runs; when renewal fails (or the token reaches its max TTL), logs in
    /// again.
    pub async fn keep_alive(&self) {
        let mut backoff = Duration::from_secs(5);
        loop {
            let wait = match self.renew_once().await {
                Ok(Some(ttl)) => {
                    backoff = Duration::from_secs(5);
                    Duration::from_secs((ttl * 2 / 3).max(1))
                }
                // Does not expire: look again now and then (it may be replaced).
                Ok(None) => Duration::from_secs(300),
                Err(e) => {
                    tracing::warn!(error = %e, "{} could not keep its coffer token alive; retrying", self.who);
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    w
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One look at the token: its remaining TTL after a renewal if it needs
    /// one, `None` if it never expires.
    async fn renew_once(&self) -> Result<Option<u64>, String> {
        let client = self.client().await?;
        let me = match client.read("auth/token/lookup-self").await {
            Ok(Some(v)) => v,
            Ok(None) => return Err("lookup-self answered nothing".into()),
            Err(e) if e.status() == Some(403) => {
                self.refresh().await?;
                return Ok(Some(60));
            }
            Err(e) => return Err(e.to_string()),
        };
        let d = &me["data"];
        let ttl = d["ttl"].as_u64().unwrap_or(0);
        if ttl == 0 {
            return Ok(None);
        }
        if d["renewable"] != Value::Bool(true) {
            // Log in again before it runs out (AppRole); a file is replaced from outside.
            if ttl < 120 {
                self.refresh().await?;
            }
            return Ok(Some(ttl));
        }
        let renewed = client
            .write("auth/token/renew-self", &json!({}))
            .await
            .map_err(|e: ClientError| e.to_string())?;
        let new_ttl = renewed
            .as_ref()
            .and_then(|r| r["auth"]["lease_duration"].as_u64())
            .unwrap_or(ttl);
        if new_ttl < 120 {
            // The max TTL is near: a new login starts a new token.
            self.refresh().await?;
        }
        Ok(Some(new_ttl.max(3)))
    }
}
