//! Renders the agent's templates and keeps them current. Each value a
//! template uses (a `Dep`) is fetched once however many templates use it,
//! and has a time when it is next looked at: a renewable lease is renewed
//! at 2/3 of its TTL and fetched anew when renewal stops extending it (a
//! new database user before the old one ends); a non-renewable lease is
//! read again at 90%; a value without a lease at
//! `static_secret_render_interval`, and at once when a change event names
//! it. A template is written only when every value it uses is there and
//! the text changed, then its command runs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use coffer_client::{Client, ClientError};
use coffer_template::Template;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{AgentConfig, TemplateBlock};
use super::events::Changes;
use super::funcs::{Dep, Funcs};
use super::supervisor::Update;
use crate::session::Credentials;

/// How many render passes may discover new values (a path built from
/// another secret's value needs two).
const MAX_PASSES: usize = 8;

/// What is known about one value.
struct Fetched {
    /// The answer as consul-template shows it (`.Data`, `.LeaseID` ...).
    value: Value,
    /// The path actually read (KV v2: with `data/`).
    resolved: String,
    /// Next time to look at it, and what to do then.
    due: Instant,
    next: Next,
    /// The lease's first duration (renewals shorter than it mean max TTL).
    lease_duration: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Next {
    Refetch,
    Renew,
}

struct Tpl {
    block: TemplateBlock,
    parsed: Template,
    /// The last text written (secrets: wiped when replaced or dropped).
    last: Option<zeroize::Zeroizing<String>>,
}

/// The templates and what they use.
pub struct Runner {
    creds: Arc<Credentials>,
    changes: Arc<Changes>,
    templates: Vec<Tpl>,
    fetched: BTreeMap<Dep, Fetched>,
    /// Failed fetches: attempts so far and when to try again.
    failing: BTreeMap<Dep, (u32, Instant, String)>,
    /// KV version per path asked (`sys/internal/ui/mounts`): (mount, version).
    mounts: HashMap<String, Option<(String, u8)>>,
    render_interval: Duration,
    exit_on_retry_failure: bool,
    num_retries: u32,
    /// The supervised command's channel (with `exec`).
    updates: Option<mpsc::Sender<Update>>,
    /// Changes not yet told to the command.
    pending: Pending,
    /// The command was told once (it is running).
    started: bool,
    /// The longest `wait { min }`: quiet time after a change event.
    quiet: Duration,
}

#[derive(Default)]
struct Pending {
    env_changed: bool,
    files_changed: bool,
}

fn secret_shape(answer: &Value) -> Value {
    json!({
        "RequestID": answer["request_id"],
        "LeaseID": answer["lease_id"].as_str().unwrap_or(""),
        "LeaseDuration": answer["lease_duration"].as_u64().unwrap_or(0),
        "Renewable": answer["renewable"].as_bool().unwrap_or(false),
        "Data": answer["data"],
        "Warnings": answer["warnings"],
    })
}

/// Spreads refreshes a little (±5%), as consul-template does, so many
/// agents do not read at the same instant.
fn jitter(d: Duration, fraction: f64) -> Duration {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b)
        .map(|_| u16::from_le_bytes(b) as f64 / 65535.0)
        .unwrap_or(0.5);
    d.mul_f64(fraction - 0.05 + 0.1 * r)
}

impl Runner {
    pub fn new(
        cfg: &AgentConfig,
        creds: Arc<Credentials>,
        changes: Arc<Changes>,
        updates: Option<mpsc::Sender<Update>>,
    ) -> anyhow::Result<Runner> {
        let mut templates = Vec::new();
        for b in &cfg.templates {
            let src = match (&b.contents, &b.source) {
                (Some(c), _) => c.clone(),
                (None, Some(p)) => std::fs::read_to_string(p).with_context(|| {
                    format!("template at line {}: reading {}", b.line, p.display())
                })?,
                (None, None) => {
                    anyhow::bail!("template at line {} has no source or contents", b.line)
                }
            };
            let parsed = Template::parse_with(&src, &b.left_delimiter, &b.right_delimiter)
                .map_err(|e| anyhow::anyhow!("template at line {}: {e}", b.line))?
                .error_on_missing_key(b.error_on_missing_key);
            templates.push(Tpl {
                block: b.clone(),
                parsed,
                last: None,
            });
        }
        Ok(Runner {
            creds,
            changes,
            templates,
            fetched: BTreeMap::new(),
            failing: BTreeMap::new(),
            mounts: HashMap::new(),
            render_interval: cfg.static_secret_render_interval,
            exit_on_retry_failure: cfg.exit_on_retry_failure,
            num_retries: match cfg.vault.num_retries {
                n if n < 0 => 0,
                0 => 12,
                n => n as u32,
            },
            updates,
            pending: Pending::default(),
            started: false,
            quiet: cfg
                .templates
                .iter()
                .map(|t| t.wait_min)
                .max()
                .unwrap_or_default(),
        })
    }

    /// Runs until an unrecoverable error (with `exit_on_retry_failure`).
    pub async fn run(mut self) -> anyhow::Result<()> {
        loop {
            self.apply_changes();
            self.refresh_due().await?;
            self.render_all().await?;
            let wake = self
                .fetched
                .values()
                .map(|f| f.due)
                .chain(self.failing.values().map(|f| f.1))
                .min();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let changed = tokio::select! {
                _ = sleep => false,
                _ = self.changes.notify.notified() => true,
            };
            // `wait { min }`: let a burst of changes settle, then render once.
            if changed && !self.quiet.is_zero() {
                tokio::time::sleep(self.quiet).await;
            }
        }
    }

    /// Marks what change events named as due now.
    fn apply_changes(&mut self) {
        let (all, keys) = self.changes.take();
        let now = Instant::now();
        for (dep, f) in self.fetched.iter_mut() {
            let lease = f.value["LeaseID"].as_str().filter(|l| !l.is_empty());
            let hit = match lease {
                // A leased value (a database user) changes only when its own
                // lease is revoked: another lease of the same path ending
                // says nothing about it, nor does a missed-events notice.
                Some(l) => keys.contains(l),
                None => {
                    all || keys.contains(&f.resolved)
                        || matches!(dep, Dep::List(_))
                            && keys.iter().any(|k| k.starts_with(&list_watch(&f.resolved)))
                }
            };
            if hit {
                f.due = now;
                f.next = Next::Refetch;
            }
        }
    }

    async fn client(&self) -> anyhow::Result<Client> {
        self.creds.client().await.map_err(|e| anyhow::anyhow!(e))
    }

    /// Renews or re-reads whatever is due.
    async fn refresh_due(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let due: Vec<(Dep, Next)> = self
            .fetched
            .iter()
            .filter(|(_, f)| f.due <= now)
            .map(|(d, f)| (d.clone(), f.next))
            .collect();
        for (dep, next) in due {
            if next == Next::Renew && self.renew(&dep).await {
                continue;
            }
            match self.fetch(&dep).await {
                Ok(f) => {
                    self.failing.remove(&dep);
                    self.fetched.insert(dep, f);
                }
                Err(e) => {
                    // Keep the old value (the file stays as it is) and retry.
                    self.note_failure(&dep, e)?;
                    if let Some(f) = self.fetched.get_mut(&dep) {
                        f.due = self.failing.get(&dep).map_or(now, |x| x.1);
                    }
                }
            }
        }
        Ok(())
    }

    fn note_failure(&mut self, dep: &Dep, e: anyhow::Error) -> anyhow::Result<()> {
        let attempts = self.failing.get(dep).map_or(0, |f| f.0) + 1;
        let msg = format!("{e:#}");
        if self.exit_on_retry_failure && attempts > self.num_retries {
            anyhow::bail!(
                "{}: {msg} (gave up after {} retries)",
                dep.path(),
                self.num_retries
            );
        }
        // consul-template's backoff: 250 ms doubling, at most a minute.
        let wait = Duration::from_millis(250)
            .saturating_mul(1 << attempts.min(8))
            .min(Duration::from_secs(60));
        tracing::warn!(path = %dep.path(), attempt = attempts, retry_in = ?wait, error = %msg, "template value could not be fetched");
        self.failing
            .insert(dep.clone(), (attempts, Instant::now() + wait, msg));
        Ok(())
    }

    /// Renews a lease; false means fetch a new value instead.
    async fn renew(&mut self, dep: &Dep) -> bool {
        let Some(f) = self.fetched.get(dep) else {
            return false;
        };
        let lease = f.value["LeaseID"].as_str().unwrap_or("").to_owned();
        let first = f.lease_duration;
        let Ok(client) = self.client().await else {
            return false;
        };
        let r = client
            .write(
                "sys/leases/renew",
                &json!({"lease_id": lease, "increment": first}),
            )
            .await;
        let ttl = match r {
            Ok(Some(a)) => a["lease_duration"].as_u64().unwrap_or(0),
            _ => 0,
        };
        let Some(f) = self.fetched.get_mut(dep) else {
            return false;
        };
        if ttl == 0 {
            tracing::info!(path = %dep.path(), "lease could not be renewed; fetching a new one");
            return false;
        }
        if ttl < first {
            // The max TTL is near: fetch the replacement before this one
            // ends, leaving the application time to switch (half of what
            // is left, up to 30 s, and at least 15%).
            let left = Duration::from_secs(ttl);
            let margin = (left / 2)
                .min(Duration::from_secs(30))
                .max(left.mul_f64(0.15));
            f.next = Next::Refetch;
            f.due = Instant::now() + left.saturating_sub(margin);
        } else {
            f.next = Next::Renew;
            f.due = Instant::now() + Duration::from_secs(ttl * 2 / 3).max(Duration::from_secs(1));
        }
        true
    }

    /// Fetches one value.
    async fn fetch(&mut self, dep: &Dep) -> anyhow::Result<Fetched> {
        let client = self.client().await?;
        let (resolved, answer) = match dep {
            Dep::Read(p) => {
                let resolved = self.shim(&client, p, "data/").await?;
                let answer = raw(&client, "GET", &resolved, None)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no secret exists at {resolved}"))?;
                // A soft-deleted KV v2 version counts as absent.
                let md = &answer["data"]["metadata"];
                if md.is_object() && md.get("deletion_time").is_some_and(|t| t != "") {
                    anyhow::bail!("no secret exists at {resolved} (its latest version is deleted)");
                }
                (resolved, secret_shape(&answer))
            }
            Dep::Write(p, fields) => {
                let answer = raw(&client, "PUT", p, Some(json!(fields)))
                    .await?
                    .unwrap_or(Value::Null);
                (p.clone(), secret_shape(&answer))
            }
            Dep::List(p) => {
                let resolved = self.shim(&client, p, "metadata/").await?;
                let answer = raw(&client, "LIST", &resolved, None).await?;
                let mut keys: Vec<String> = answer
                    .as_ref()
                    .and_then(|a| a["data"]["keys"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                keys.sort();
                (resolved, json!(keys))
            }
        };
        let lease_id = answer["LeaseID"].as_str().unwrap_or("");
        let duration = answer["LeaseDuration"].as_u64().unwrap_or(0);
        let renewable = answer["Renewable"].as_bool().unwrap_or(false);
        let now = Instant::now();
        let (next, due) = if !lease_id.is_empty() && renewable && duration > 0 {
            (
                Next::Renew,
                now + Duration::from_secs(duration * 2 / 3).max(Duration::from_secs(1)),
            )
        } else if duration > 0 {
            (
                Next::Refetch,
                now + jitter(Duration::from_secs(duration), 0.9),
            )
        } else {
            (Next::Refetch, now + jitter(self.render_interval, 0.9))
        };
        Ok(Fetched {
            value: answer,
            resolved,
            due,
            next,
            lease_duration: duration,
        })
    }

    /// KV v2 paths as the template engine shims them: `secret/app` becomes
    /// `secret/data/app` (or `secret/metadata/app` to list).
    async fn shim(&mut self, client: &Client, path: &str, part: &str) -> anyhow::Result<String> {
        if !self.mounts.contains_key(path) {
            let found = match client.read(&format!("sys/internal/ui/mounts/{path}")).await {
                Ok(Some(a)) => {
                    let d = &a["data"];
                    let v2 = d["type"] == "kv" && d["options"]["version"] == "2";
                    d["path"]
                        .as_str()
                        .map(|m| (m.to_owned(), if v2 { 2 } else { 1 }))
                }
                Ok(None) => None,
                Err(e) if matches!(e.status(), Some(404)) => None,
                Err(e) => return Err(e).context(format!("looking up the mount of {path}")),
            };
            self.mounts.insert(path.to_owned(), found);
        }
        Ok(match self.mounts.get(path).cloned().flatten() {
            Some((mount, 2)) => {
                let rest = path.strip_prefix(mount.as_str()).unwrap_or(path);
                if rest.starts_with("data/") || rest.starts_with("metadata/") {
                    path.to_owned()
                } else {
                    format!("{mount}{part}{rest}")
                }
            }
            _ => path.to_owned(),
        })
    }

    /// Renders every template, fetching what is missing, and writes those
    /// whose text changed.
    async fn render_all(&mut self) -> anyhow::Result<()> {
        // One copy of the values for every template, renewed only after a fetch.
        let snapshot = |f: &BTreeMap<Dep, Fetched>| -> BTreeMap<Dep, Value> {
            f.iter()
                .map(|(d, x)| (d.clone(), x.value.clone()))
                .collect()
        };
        let mut values = snapshot(&self.fetched);
        for i in 0..self.templates.len() {
            let mut text = None;
            for _ in 0..MAX_PASSES {
                let mut funcs = Funcs::new(&values);
                let out = self.templates[i].parsed.render(&Value::Null, &mut funcs);
                let missing: Vec<Dep> = funcs
                    .missing
                    .into_iter()
                    .filter(|d| self.failing.get(d).is_none_or(|f| f.1 <= Instant::now()))
                    .collect();
                let blocked = funcs.used.iter().any(|d| !self.fetched.contains_key(d));
                if missing.is_empty() {
                    if !blocked {
                        text = Some(out.map_err(|e| {
                            anyhow::anyhow!(
                                "template at line {}: {e}",
                                self.templates[i].block.line
                            )
                        }));
                    }
                    break;
                }
                for dep in missing {
                    match self.fetch(&dep).await {
                        Ok(f) => {
                            self.failing.remove(&dep);
                            self.fetched.insert(dep, f);
                        }
                        Err(e) => self.note_failure(&dep, e)?,
                    }
                }
                values = snapshot(&self.fetched);
            }
            match text {
                Some(Ok(t)) => {
                    self.write(i, t).await?;
                }
                Some(Err(e)) => tracing::error!(error = %e, "template not rendered"),
                None => {}
            }
        }
        self.announce().await;
        Ok(())
    }

    /// Keeps a rendered text: an `env_template`'s value, or a file
    /// written when it differs. Answers whether something changed.
    async fn write(&mut self, i: usize, text: String) -> anyhow::Result<bool> {
        let t = &mut self.templates[i];
        if t.last.as_deref().map(String::as_str) == Some(text.as_str()) {
            return Ok(false);
        }
        if t.block.env.is_some() {
            let first = t.last.is_none();
            t.last = Some(zeroize::Zeroizing::new(text));
            // The first value is the start, not a change.
            self.pending.env_changed |= !first;
            return Ok(true);
        }
        let dest = t.block.destination.clone();
        let on_disk = std::fs::read(&dest).ok();
        if on_disk.as_deref() != Some(text.as_bytes()) {
            if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty())
                && t.block.create_dest_dirs
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            if t.block.backup && on_disk.is_some() {
                let bak = PathBuf::from(format!("{}.bak", dest.display()));
                std::fs::copy(&dest, &bak)
                    .with_context(|| format!("backing up to {}", bak.display()))?;
            }
            let mode = t
                .block
                .perms
                .unwrap_or_else(|| existing_mode(&dest).unwrap_or(0o600));
            crate::cli::private_file::write_with_mode(&dest, text.as_bytes(), mode)?;
            tracing::info!(destination = %dest.display(), "template rendered");
            if !t.block.command.is_empty() {
                run_command(&t.block.command, t.block.command_timeout).await;
            }
            self.pending.files_changed |= t.last.is_some();
        }
        t.last = Some(zeroize::Zeroizing::new(text));
        Ok(true)
    }

    /// Tells the supervised command, once everything rendered, and again
    /// after each change.
    async fn announce(&mut self) {
        let Some(tx) = &self.updates else {
            return;
        };
        if self.templates.iter().any(|t| t.last.is_none()) {
            return;
        }
        let changed = self.pending.env_changed || self.pending.files_changed;
        if self.started && !changed {
            return;
        }
        let env = self
            .templates
            .iter()
            .filter_map(|t| Some((t.block.env.clone()?, t.last.as_deref()?.clone())))
            .collect();
        let update = Update {
            env,
            env_changed: std::mem::take(&mut self.pending.env_changed),
            files_changed: std::mem::take(&mut self.pending.files_changed),
        };
        self.started = true;
        let _ = tx.send(update).await;
    }
}

/// The prefix of events that change a list: `secret/metadata/dir/` lists
/// what `secret/data/dir/...` writes change.
fn list_watch(resolved: &str) -> String {
    let p = resolved.replacen("/metadata/", "/data/", 1);
    format!("{}/", p.trim_end_matches('/'))
}

fn existing_mode(p: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Option<Value>> {
    let r = client.raw(method, path, body.as_ref()).await?;
    if r.status == 404 {
        return Ok(None);
    }
    Client::judge(method, path, r).map_err(|e: ClientError| anyhow::anyhow!(e))
}

/// A template's command, with its timeout; failures are logged, as the
/// agent's are.
async fn run_command(cmd: &[String], timeout: Duration) {
    let Some((prog, args)) = cmd.split_first() else {
        return;
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(s)) if s.success() => {}
        Ok(Ok(s)) => {
            tracing::error!(command = %cmd.join(" "), status = %s, "template command failed")
        }
        Ok(Err(e)) => {
            tracing::error!(command = %cmd.join(" "), error = %e, "template command could not start")
        }
        Err(_) => {
            tracing::error!(command = %cmd.join(" "), ?timeout, "template command timed out and was killed")
        }
    }
}
