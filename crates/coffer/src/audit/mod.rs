//! Audit device destinations (files and sockets) and the rules for devices
//! enabled through `sys/audit/:path`. Formatting, HMACs and the hash chain
//! are core's; this module only opens and writes.

mod file;
mod socket;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_core::audit::{AuditFactory, AuditSink, COMMON_OPTIONS, DeviceOptions, DeviceSpec};
use coffer_core::fields::{parse_bool, parse_duration};

pub use file::{FileSink, Target};
pub use socket::{SocketKind, SocketSink};

const FILE_OPTIONS: &[&str] = &["file_path", "mode", "fsync"];
const SOCKET_OPTIONS: &[&str] = &["address", "socket_type", "write_timeout"];

/// The option names a device type takes (besides `description`), or `None`
/// for an unknown type.
pub fn known_options(kind: &str) -> Option<Vec<&'static str>> {
    let own = match kind {
        "file" => FILE_OPTIONS,
        "socket" => SOCKET_OPTIONS,
        _ => return None,
    };
    Some(own.iter().chain(COMMON_OPTIONS).copied().collect())
}

fn check_keys(spec: &DeviceSpec, own: &[&str]) -> Result<(), String> {
    for k in spec.options.keys() {
        if !own.contains(&k.as_str()) && !COMMON_OPTIONS.contains(&k.as_str()) {
            let mut known: Vec<&str> = own.iter().chain(COMMON_OPTIONS).copied().collect();
            known.sort_unstable();
            return Err(format!(
                "unknown option {k:?} for a {} audit device; known options: {}",
                spec.kind,
                known.join(", ")
            ));
        }
    }
    DeviceOptions::parse(&spec.options).map(|_| ())
}

fn parse_mode(options: &BTreeMap<String, String>) -> Result<u32, String> {
    match options.get("mode") {
        None => Ok(0o600),
        Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| format!("option \"mode\" must be octal such as \"0600\" (got {m:?})")),
    }
}

/// Opens a device's destination. `confine` is the audit directory for
/// devices enabled through the API: their files must resolve inside it and
/// be private to the server's user.
pub fn build_sink(spec: &DeviceSpec, confine: Option<&Path>) -> Result<Arc<dyn AuditSink>, String> {
    match spec.kind.as_str() {
        "file" => {
            check_keys(spec, FILE_OPTIONS)?;
            let path = spec
                .options
                .get("file_path")
                .ok_or("a file audit device needs option \"file_path\"")?;
            let mode = parse_mode(&spec.options)?;
            let fsync = match spec.options.get("fsync") {
                None => false,
                Some(v) => parse_bool(v).ok_or("option \"fsync\" must be true or false")?,
            };
            let target = match path.as_str() {
                "stdout" => Target::Stdout,
                "discard" => Target::Discard,
                p => match confine {
                    Some(dir) => Target::Path(confined_path(dir, p, mode)?),
                    None => Target::Path(PathBuf::from(p)),
                },
            };
            Ok(Arc::new(FileSink::open(
                target,
                mode,
                fsync,
                confine.is_some(),
            )?))
        }
        "socket" => {
            check_keys(spec, SOCKET_OPTIONS)?;
            let address = spec
                .options
                .get("address")
                .ok_or("a socket audit device needs option \"address\"")?;
            let kind = match spec.options.get("socket_type").map(String::as_str) {
                None | Some("tcp") => SocketKind::Tcp,
                Some("unix") => SocketKind::Unix,
                Some(other) => {
                    return Err(format!(
                        "option \"socket_type\" must be \"tcp\" or \"unix\" (got {other:?}; udp is not supported)"
                    ));
                }
            };
            let timeout = match spec.options.get("write_timeout") {
                None => 2,
                Some(t) => parse_duration(t).map_err(|_| {
                    format!("option \"write_timeout\" must be a duration (got {t:?})")
                })?,
            };
            Ok(Arc::new(SocketSink::new(
                address.clone(),
                kind,
                Duration::from_secs(timeout.max(1)),
            )))
        }
        other => Err(format!(
            "unknown audit device type {other:?}: coffer has \"file\" and \"socket\""
        )),
    }
}

/// Resolves `file_path` against the audit directory and refuses anything
/// that would land outside it: `..`, symlinked parents or files, and modes
/// that let other users read the log.
fn confined_path(dir: &Path, file_path: &str, mode: u32) -> Result<PathBuf, String> {
    if mode & !0o600 != 0 {
        return Err(format!(
            "option \"mode\" must be 0600 or stricter for devices enabled through the API (got {mode:04o})"
        ));
    }
    let requested = Path::new(file_path);
    if requested
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!(
            "file_path {file_path:?} may not contain '.' or '..'"
        ));
    }
    let joined = if requested.is_absolute() {
        requested.to_path_buf()
    } else {
        dir.join(requested)
    };
    let name = joined
        .file_name()
        .ok_or_else(|| format!("file_path {file_path:?} names no file"))?;
    let parent = joined.parent().unwrap_or(dir);
    let parent = parent
        .canonicalize()
        .map_err(|e| format!("file_path {file_path:?}: its directory cannot be resolved: {e}"))?;
    let root = dir
        .canonicalize()
        .map_err(|e| format!("audit_dir {} cannot be resolved: {e}", dir.display()))?;
    // Component-wise: /var/log/audit-other does not start with /var/log/audit.
    if !parent.starts_with(&root) {
        return Err(format!(
            "file_path {file_path:?} is outside audit_dir {}",
            root.display()
        ));
    }
    let target = parent.join(name);
    if let Ok(meta) = std::fs::symlink_metadata(&target)
        && !meta.file_type().is_file()
    {
        return Err(format!(
            "file_path {file_path:?} exists and is not a regular file (symlinks are refused)"
        ));
    }
    Ok(target)
}

/// The configuration's rules for `sys/audit/:path`.
pub struct ApiFactory {
    /// `audit_dir` when `audit_api = true`; `None` refuses every API device.
    dir: Option<PathBuf>,
}

impl ApiFactory {
    /// `dir` is the audit directory when the configuration opts in.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }
}

impl AuditFactory for ApiFactory {
    fn api_enabled(&self) -> bool {
        self.dir.is_some()
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn AuditSink>, String> {
        let dir = self.dir.as_deref().ok_or(
            "audit devices enabled through the API are not allowed by this server's configuration",
        )?;
        build_sink(spec, Some(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_devices_stay_inside_the_audit_dir() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("audit");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::create_dir(root.path().join("audit-other")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", dir.join("etc")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("pw.log")).expect("symlink");
        let ok = confined_path(&dir, "a.log", 0o600).expect("inside");
        assert!(ok.ends_with("audit/a.log"));
        assert!(confined_path(&dir, dir.join("b.log").to_str().unwrap_or(""), 0o400).is_ok());
        for bad in ["../escape.log", "etc/x.log", "pw.log", "/tmp/x.log"] {
            assert!(
                confined_path(&dir, bad, 0o600).is_err(),
                "{bad} was accepted"
            );
        }
        let sibling = root.path().join("audit-other/x.log");
        assert!(confined_path(&dir, sibling.to_str().unwrap_or(""), 0o600).is_err());
        assert!(confined_path(&dir, "a.log", 0o644).is_err());
    }
}
