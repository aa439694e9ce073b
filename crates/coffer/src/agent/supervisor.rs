//! `exec { command }`: the agent's child process. It starts once every
//! template has rendered (`env_template` values are its environment), its
//! stdio is the agent's (or the files `child_process_stdout`/`_stderr`
//! name), and its exit code becomes the agent's. When a rendered value
//! changes it is restarted (stop signal, 30 s, then SIGKILL), only if a
//! value actually changed, and never with `restart_on_secret_changes =
//! "never"`; with coffer's `reload_signal` a change to rendered files is a
//! signal instead (its environment cannot change in place, so an
//! `env_template` change still restarts it).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::config::ExecBlock;

/// How long a stopped child may take before SIGKILL (Vault's agent: 30 s).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What the templates look like now.
#[derive(Debug, Clone)]
pub struct Update {
    /// Every `env_template`'s value.
    pub env: BTreeMap<String, String>,
    /// An `env_template` value changed since the last update.
    pub env_changed: bool,
    /// A rendered file changed since the last update.
    pub files_changed: bool,
}

fn output(path: &Option<std::path::PathBuf>) -> anyhow::Result<Stdio> {
    Ok(match path {
        None => Stdio::inherit(),
        Some(p) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
    })
}

fn start(exec: &ExecBlock, env: &BTreeMap<String, String>) -> anyhow::Result<Child> {
    let (prog, args) = exec
        .command
        .split_first()
        .context("exec has an empty command")?;
    let mut cmd = Command::new(prog);
    for k in &exec.env_remove {
        cmd.env_remove(k);
    }
    let child = cmd
        .args(args)
        .envs(env)
        .stdin(Stdio::inherit())
        .stdout(output(&exec.stdout)?)
        .stderr(output(&exec.stderr)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {prog}"))?;
    tracing::info!(command = %exec.command.join(" "), pid = child.id(), "child process started");
    Ok(child)
}

fn signal(child: &Child, sig: i32) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Stops the child: its stop signal, then SIGKILL after the grace time.
async fn stop(child: &mut Child, sig: i32) {
    signal(child, sig);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("child process ignored its stop signal for 30 s; killing it");
        let _ = child.kill().await;
    }
}

/// The exit code a shell would report.
fn code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(s)) => u8::try_from(128 + s).unwrap_or(1),
        _ => 1,
    }
}

/// Runs the child for as long as it lives; answers its exit code.
pub async fn supervise(exec: ExecBlock, mut updates: mpsc::Receiver<Update>) -> anyhow::Result<u8> {
    let Some(first) = updates.recv().await else {
        anyhow::bail!("the templates stopped before the child could start");
    };
    let mut env = first.env;
    let mut child = start(&exec, &env)?;
    use tokio::signal::unix::{SignalKind, signal as on};
    let mut term = on(SignalKind::terminate())?;
    let mut int = on(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            // Stopping the supervisor stops the child first, with its signal.
            _ = term.recv() => {
                stop(&mut child, exec.stop_signal).await;
                return Ok(0);
            }
            _ = int.recv() => {
                stop(&mut child, libc::SIGINT).await;
                return Ok(0);
            }
            status = child.wait() => {
                let status = status.context("waiting for the child process")?;
                tracing::info!(%status, "child process exited");
                return Ok(code(status));
            }
            update = updates.recv() => {
                let Some(u) = update else {
                    // The agent is stopping: stop the child the same way.
                    stop(&mut child, exec.stop_signal).await;
                    return Ok(0);
                };
                env = u.env;
                let restart = exec.restart
                    && (u.env_changed || (u.files_changed && exec.reload_signal.is_none()));
                if restart {
                    tracing::info!("a rendered value changed; restarting the child process");
                    stop(&mut child, exec.stop_signal).await;
                    child = start(&exec, &env)?;
                } else if u.files_changed && let Some(sig) = exec.reload_signal {
                    tracing::info!(signal = sig, "a rendered file changed; signalling the child process");
                    signal(&child, sig);
                }
            }
        }
    }
}
