//! The `file` audit device: one JSON line per entry, appended with a single
//! write so concurrent writers never interleave; `fsync = true` also syncs
//! each line to disk. `stdout` and `discard` are accepted as Vault does.
//!
//! A write that fails part-way (disk full) is cut back to the last complete
//! line, so the log never holds a torn line that `verify` would take for an
//! edit. A destination that cannot be (re)opened is a failing device: the old
//! descriptor is dropped, every write tries to open the path again, and until
//! one succeeds the device records nothing (requests fail closed unless
//! another device records them).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
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
    file: Mutex<Option<Open>>,
}

/// The open destination and the chain position its first line holds.
struct Open {
    file: File,
    /// `seq` of the file's first line (`None`: empty, or not a chain line).
    first_seq: Option<u64>,
}

/// Longest first line looked at for its sequence number.
const FIRST_LINE_MAX: usize = 4 << 20;

/// The `seq` of the first line of `file`, if it is a complete chain line.
fn first_seq_of(file: &File) -> Option<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut have = 0;
    loop {
        if let Some(end) = buf[..have].iter().position(|b| *b == b'\n') {
            return coffer_core::audit::chain::chain_fields(&buf[..end]).map(|(seq, _)| seq);
        }
        if have == buf.len() {
            if buf.len() >= FIRST_LINE_MAX {
                return None;
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = file.read_at(&mut buf[have..], have as u64).ok()?;
        if n == 0 {
            return None;
        }
        have += n;
    }
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

    fn open_file(&self) -> Result<Option<Open>, String> {
        let Target::Path(path) = &self.target else {
            return Ok(None);
        };
        let mut opts = OpenOptions::new();
        // Readable too: the first line's position in the chain is read back.
        opts.read(true).append(true).create(true).mode(self.mode);
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
        let first_seq = if meta.is_file() && meta.len() > 0 {
            first_seq_of(&file)
        } else {
            None
        };
        Ok(Some(Open { file, first_seq }))
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

    fn read_back(&self) -> Option<Result<Box<dyn std::io::Read + Send>, String>> {
        let Target::Path(path) = &self.target else {
            return None;
        };
        Some(
            std::fs::File::open(path)
                .map(|f| Box::new(f) as Box<dyn std::io::Read + Send>)
                .map_err(|e| format!("reading {}: {e}", path.display())),
        )
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
                let Some(open) = slot.as_mut() else {
                    return Err(format!("audit file {} is not open", path.display()));
                };
                let before = open
                    .file
                    .metadata()
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .map(|m| m.len());
                let written = open.file.write_all(line).and_then(|()| {
                    if self.fsync {
                        open.file.sync_data()
                    } else {
                        Ok(())
                    }
                });
                match written {
                    Ok(()) => {
                        if before == Some(0) {
                            open.first_seq = coffer_core::audit::chain::chain_fields(
                                line.split(|b| *b == b'\n').next().unwrap_or_default(),
                            )
                            .map(|(seq, _)| seq);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        // Cut a torn write back to the last whole line.
                        if let Some(len) = before
                            && let Err(t) = open.file.set_len(len)
                        {
                            tracing::error!(path = %path.display(), error = %t, "could not remove a partly written audit line; verify will report it as truncated");
                        }
                        // Reopen on the next line: the file may have been replaced.
                        *slot = None;
                        Err(format!("writing to {}: {e}", path.display()))
                    }
                }
            }
        }
    }

    async fn reopen(&self) -> Result<(), String> {
        let opened = self.open_file();
        let mut slot = self.file.lock().map_err(|_| "audit file lock poisoned")?;
        match opened {
            Ok(open) => {
                *slot = open;
                Ok(())
            }
            Err(e) => {
                // Never keep writing to the old descriptor (a deleted or
                // moved file): the device fails until the path opens again.
                *slot = None;
                Err(e)
            }
        }
    }

    fn first_seq(&self) -> Option<u64> {
        self.file.lock().ok()?.as_ref()?.first_seq
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
