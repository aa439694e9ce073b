//! Scanning a directory tree: `.gitignore` respected inside a git work tree
//! (as git and ripgrep read it; a tarball's stray `.gitignore` does not hide
//! the tree), `.ignore` always, `.git` skipped, symlinks not followed, binary files (a NUL in the first 8 KiB)
//! and files over a size limit skipped, files read in parallel.

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

use crate::{Finding, Origin, Progress, Scanner};

/// What a tree scan read and found.
#[derive(Debug, Default)]
pub struct TreeReport {
    /// Findings, sorted by file, line, column and rule.
    pub findings: Vec<Finding>,
    /// Files scanned.
    pub files: usize,
    /// Bytes scanned.
    pub bytes: u64,
    /// Files skipped: binary or too large.
    pub skipped: usize,
    /// Files that could not be read, with the reason.
    pub errors: Vec<String>,
}

/// Scans every file under `root` with `threads` threads (0: one per core).
pub fn scan_tree(
    scanner: &Scanner,
    root: &Path,
    max_file_size: u64,
    threads: usize,
    progress: &Progress,
) -> TreeReport {
    let report = Mutex::new(TreeReport::default());
    let shared = &report;
    WalkBuilder::new(root)
        .hidden(false)
        .follow_links(false)
        .git_global(false)
        .require_git(true)
        .filter_entry(|e| e.file_name() != ".git")
        .threads(threads)
        .build_parallel()
        .run(|| {
            // One read buffer per thread, reused: a fresh allocation per
            // file costs the kernel a page-zeroing per page.
            let mut buf = Vec::new();
            Box::new(move |entry| {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        if let Ok(mut r) = shared.lock() {
                            r.errors.push(e.to_string());
                        }
                        return WalkState::Continue;
                    }
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return WalkState::Continue;
                }
                let path = entry.path();
                let shown = path.strip_prefix(root).unwrap_or(path);
                let outcome = scan_file(
                    scanner,
                    path,
                    &shown.to_string_lossy(),
                    max_file_size,
                    &mut buf,
                );
                if let Ok(mut r) = shared.lock() {
                    match outcome {
                        Ok(Some((bytes, mut f))) => {
                            progress.add(bytes);
                            r.files += 1;
                            r.bytes += bytes;
                            r.findings.append(&mut f);
                        }
                        Ok(None) => r.skipped += 1,
                        Err(e) => r.errors.push(format!("{}: {e}", shown.display())),
                    }
                }
                WalkState::Continue
            })
        });
    let mut report = report.into_inner().unwrap_or_default();
    report.findings.sort_by(|a, b| {
        (&a.file, a.start_line, a.start_column, &a.rule_id).cmp(&(
            &b.file,
            b.start_line,
            b.start_column,
            &b.rule_id,
        ))
    });
    report
}

/// One file: `None` when it is skipped.
fn scan_file(
    scanner: &Scanner,
    path: &Path,
    shown: &str,
    max_file_size: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(u64, Vec<Finding>)>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if max_file_size > 0 && len > max_file_size {
        return Ok(None);
    }
    buf.clear();
    // The size is a hint (the file may change); +1 lets read_to_end see
    // the end without growing the buffer.
    buf.reserve(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.read_to_end(buf)?;
    let data = buf.as_slice();
    if data[..data.len().min(8192)].contains(&0) {
        return Ok(None);
    }
    let found = scanner.scan(
        data,
        Origin {
            path: shown,
            commit: None,
        },
    );
    Ok(Some((data.len() as u64, found)))
}
