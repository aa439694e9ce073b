//! Scanning a directory tree, files read in parallel. As gitleaks does,
//! every file is scanned by default, ignored by git or not (local secrets
//! live in ignored files); with `respect_gitignore` the files git ignores
//! are left out, except `.env*` files, and counted so the summary can say
//! so. `.git` is skipped, symlinks are followed only when asked, binary
//! files (see `text`), files over a size limit and paths an allowlist
//! allows whole are not read.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

use crate::{Finding, Origin, Progress, Scanner, text};

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
    /// Files not read because an allowlist allows their path whole.
    pub allowlisted: usize,
    /// Files left out because git ignores them (`respect_gitignore`).
    pub ignored: usize,
    /// Files that could not be read, with the reason.
    pub errors: Vec<String>,
}

/// How a tree is walked.
#[derive(Debug, Clone, Default)]
pub struct TreeOptions {
    /// Skip files larger than this many bytes (0: no limit).
    pub max_file_size: u64,
    /// Threads (0: one per core).
    pub threads: usize,
    /// Leave out what `.gitignore` (and `.ignore`, `.git/info/exclude`)
    /// ignore inside a git work tree, except `.env*` files.
    pub respect_gitignore: bool,
    /// Follow symbolic links (to files and directories).
    pub follow_symlinks: bool,
}

/// Scans every file under `root`.
pub fn scan_tree(
    scanner: &Scanner,
    root: &Path,
    opts: &TreeOptions,
    progress: &Progress,
) -> TreeReport {
    let report = Mutex::new(TreeReport::default());
    let visited: Mutex<HashSet<PathBuf>> = Mutex::new(HashSet::new());
    let track = opts.respect_gitignore;
    let on_error = |e: String| {
        if let Ok(mut r) = report.lock() {
            r.errors.push(e);
        }
    };
    walk(
        root,
        opts,
        opts.respect_gitignore,
        on_error,
        |path, link, buf| {
            if track && let Ok(mut v) = visited.lock() {
                v.insert(path.to_path_buf());
            }
            scan_one(scanner, root, path, link, opts, buf, progress, &report);
        },
    );
    if track {
        // Everything git ignores: `.env*` files are scanned all the same,
        // the rest counted.
        let visited = visited.into_inner().unwrap_or_default();
        walk(
            root,
            opts,
            false,
            |_| {},
            |path, link, buf| {
                if visited.contains(path) {
                    return;
                }
                let env = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".env"));
                if env {
                    scan_one(scanner, root, path, link, opts, buf, progress, &report);
                } else if let Ok(mut r) = report.lock() {
                    r.ignored += 1;
                }
            },
        );
    }
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

/// Calls `each(path, is_symlink, buffer)` for every regular file (or link
/// to one, when links are followed) under `root`, on `opts.threads`
/// threads, and `on_error` for what cannot be listed.
fn walk(
    root: &Path,
    opts: &TreeOptions,
    gitignore: bool,
    on_error: impl Fn(String) + Sync,
    each: impl Fn(&Path, bool, &mut Vec<u8>) + Sync,
) {
    let mut builder = WalkBuilder::new(root);
    builder
        .standard_filters(false)
        .follow_links(opts.follow_symlinks)
        .filter_entry(|e| e.file_name() != ".git")
        .threads(opts.threads);
    if gitignore {
        builder
            .git_ignore(true)
            .git_exclude(true)
            .ignore(true)
            .parents(true)
            .require_git(true);
    }
    let (each, on_error) = (&each, &on_error);
    builder.build_parallel().run(|| {
        // One read buffer per thread, reused: a fresh allocation per file
        // costs the kernel a page-zeroing per page.
        let mut buf = Vec::new();
        Box::new(move |entry| {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                    each(e.path(), e.path_is_symlink(), &mut buf);
                }
                Ok(_) => {}
                Err(e) => on_error(e.to_string()),
            }
            WalkState::Continue
        })
    });
}

/// Scans one file into the report.
#[allow(clippy::too_many_arguments)]
fn scan_one(
    scanner: &Scanner,
    root: &Path,
    path: &Path,
    link: bool,
    opts: &TreeOptions,
    buf: &mut Vec<u8>,
    progress: &Progress,
    report: &Mutex<TreeReport>,
) {
    let shown = path.strip_prefix(root).unwrap_or(path);
    let shown = if shown.as_os_str().is_empty() {
        path
    } else {
        shown
    };
    let shown = shown.to_string_lossy().into_owned();
    // gitleaks reports a file reached through a link under its real path,
    // and the link as `SymlinkFile`.
    let (file, symlink) = if link {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let base = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let real = real
            .strip_prefix(&base)
            .map_or(real.clone(), Path::to_path_buf);
        (real.to_string_lossy().into_owned(), Some(shown.clone()))
    } else {
        (shown.clone(), None)
    };
    if scanner.skips_path(&file) {
        if let Ok(mut r) = report.lock() {
            r.allowlisted += 1;
        }
        return;
    }
    let outcome = scan_file(scanner, path, &file, opts.max_file_size, buf);
    if let Ok(mut r) = report.lock() {
        match outcome {
            Ok(Some((bytes, mut f))) => {
                progress.add(bytes);
                r.files += 1;
                r.bytes += bytes;
                for x in &mut f {
                    x.symlink_file.clone_from(&symlink);
                }
                r.findings.append(&mut f);
            }
            Ok(None) => r.skipped += 1,
            Err(e) => r.errors.push(format!("{shown}: {e}")),
        }
    }
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
    let Some(data) = text::scannable(buf) else {
        return Ok(None);
    };
    let found = scanner.scan(
        &data,
        Origin {
            path: shown,
            commit: None,
        },
    );
    Ok(Some((data.len() as u64, found)))
}
