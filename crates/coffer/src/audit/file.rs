//! The `file` audit device: one JSON line per entry, appended with a single
//! write so concurrent writers never interleave; `fsync = true` also syncs
//! each line to disk. `stdout` and `discard` are accepted as Vault does.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use coffer_core::audit::AuditSink;

/// Where a file device writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file, opened for appending.
    Path(PathBuf),
    /// The server's standard output.
    Stdout,
    /// Nowhere (benchmarks; Vault's `discard`).
    Discard,
}

/// A file device's destination.
pub struct FileSink {
    target: Target,
    mode: u32,
    fsync: bool,
    /// Refuse to open through a symlink (devices enabled through the API).
    no_follow: bool,
    file: Mutex<Option<File>>,
}

impl FileSink {
    /// Opens (creating with `mode`) the target now, so a bad path is an error
    /// at start rather than at the first request.
    pub fn open(target: Target, mode: u32, fsync: bool, no_follow: bool) -> Result<Self, String> {
        let sink = Self {
            target,
            mode,
            fsync,
            no_follow,
            file: Mutex::new(None),
        };
        let file = sink.open_file()?;
        if let Ok(mut slot) = sink.file.lock() {
            *slot = file;
        }
        Ok(sink)
    }

    fn open_file(&self) -> Result<Option<File>, String> {
        let Target::Path(path) = &self.target else {
            return Ok(None);
        };
        let mut opts = OpenOptions::new();
        opts.append(true).create(true).mode(self.mode);
        if self.no_follow {
            opts.custom_flags(libc::O_NOFOLLOW);
        }
        let file = opts
            .open(path)
            .map_err(|e| format!("cannot open audit file {}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot stat audit file {}: {e}", path.display()))?;
        // An existing file gets the configured mode, as Vault does; devices
        // such as /dev/null keep theirs.
        if meta.is_file() && self.mode != 0 && meta.permissions().mode() & 0o7777 != self.mode {
            file.set_permissions(std::fs::Permissions::from_mode(self.mode))
                .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
        }
        Ok(Some(file))
    }
}

#[async_trait::async_trait]
impl AuditSink for FileSink {
    async fn write(&self, line: &[u8]) -> Result<(), String> {
        self.write_inline(line)
    }

    fn writes_inline(&self) -> bool {
        true
    }

    fn blocks_long(&self) -> bool {
        self.fsync
    }

    fn write_inline(&self, line: &[u8]) -> Result<(), String> {
        match &self.target {
            Target::Discard => Ok(()),
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line)
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("writing to stdout: {e}"))
            }
            Target::Path(path) => {
                let mut slot = self.file.lock().map_err(|_| "audit file lock poisoned")?;
                if slot.is_none() {
                    *slot = self.open_file()?;
                }
                let Some(file) = slot.as_mut() else {
                    return Err(format!("audit file {} is not open", path.display()));
                };
                let written = file
                    .write_all(line)
                    .and_then(|()| if self.fsync { file.sync_data() } else { Ok(()) });
                written.map_err(|e| {
                    // Reopen on the next line: the file may have been replaced.
                    *slot = None;
                    format!("writing to {}: {e}", path.display())
                })
            }
        }
    }

    async fn reopen(&self) -> Result<(), String> {
        let file = self.open_file()?;
        let mut slot = self.file.lock().map_err(|_| "audit file lock poisoned")?;
        *slot = file;
        Ok(())
    }

    async fn last_line(&self) -> Option<Vec<u8>> {
        let Target::Path(path) = &self.target else {
            return None;
        };
        let mut f = File::open(path).ok()?;
        let len = f.metadata().ok()?.len();
        // A line is far smaller than this unless a response was huge; then the
        // stored head is used instead.
        let window = len.min(1 << 20);
        f.seek(SeekFrom::Start(len - window)).ok()?;
        let mut tail = Vec::with_capacity(window as usize);
        f.read_to_end(&mut tail).ok()?;
        let body = tail.strip_suffix(b"\n")?;
        let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if start == 0 && window < len {
            return None;
        }
        Some(body[start..].to_vec())
    }
}
