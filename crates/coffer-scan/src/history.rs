//! Scanning a git repository's history through gix: every commit reachable
//! from the refs, oldest first; each tree and each blob is read once (a
//! subtree already seen is skipped whole, since its content is), so a blob
//! is scanned in the commit and at the path where it first appears, and a
//! finding is reported once, for the commit that introduced it. Trees are
//! walked on one thread; blobs are inflated and scanned on all of them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use gix::ObjectId;

use crate::{Finding, Origin, Progress, ScanError, Scanner, text};

fn git(e: impl std::fmt::Display) -> ScanError {
    ScanError::Git(e.to_string())
}

/// What a history scan read and found.
#[derive(Debug, Default)]
pub struct HistoryReport {
    /// Findings, oldest commit first.
    pub findings: Vec<Finding>,
    /// Commits walked.
    pub commits: usize,
    /// Distinct blobs scanned.
    pub blobs: usize,
    /// Bytes scanned.
    pub bytes: u64,
}

/// Which commits to walk and which files to read in them.
#[derive(Debug, Clone, Default)]
pub struct Range {
    /// The commits to scan (full ids); `None`: every commit reachable
    /// from any ref.
    pub commits: Option<Vec<String>>,
    /// Only paths these git pathspecs select (none: every path).
    pub paths: Pathspecs,
}

impl Range {
    /// The commits `git rev-list <log_opts>` names in the repository at
    /// `path`, and the pathspecs after a `--`: everything `git log` takes
    /// there works (`A..B`, `--since`, `--first-parent`, `--no-merges`,
    /// `-n 3`, `--all`, `-- src/`).
    pub fn from_log_opts(path: &Path, log_opts: &[String]) -> Result<Self, ScanError> {
        let paths = match log_opts.iter().position(|w| w == "--") {
            Some(at) => Pathspecs::new(&log_opts[at + 1..])?,
            None => Pathspecs::default(),
        };
        // A pathspec is a file filter here, not a commit filter: a commit
        // that adds a secret to a listed path must be met even when git's
        // history simplification would hide it.
        let mut args: Vec<&str> = log_opts
            .iter()
            .take_while(|w| *w != "--")
            .map(String::as_str)
            .collect();
        if args.is_empty() {
            args.push("--all");
        } else if !names_commits(&args) {
            // As `git log`: no revision means HEAD.
            args.push("HEAD");
        }
        let out = std::process::Command::new("git")
            .arg("rev-list")
            .args(&args)
            .current_dir(path)
            .output()
            .map_err(|e| ScanError::Git(format!("running git rev-list: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(ScanError::Git(format!(
                "--log-opts {:?}: {}",
                log_opts.join(" "),
                err.trim()
            )));
        }
        let commits = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self {
            commits: Some(commits),
            paths,
        })
    }
}

/// Whether rev-list words name where to start (a revision, or `--all`,
/// `--branches`...), telling an option's separate value (`-n 3`) from a
/// revision.
fn names_commits(words: &[&str]) -> bool {
    const TAKES_VALUE: [&str; 11] = [
        "-n",
        "--max-count",
        "--skip",
        "--since",
        "--after",
        "--until",
        "--before",
        "--author",
        "--committer",
        "--grep",
        "--min-parents",
    ];
    let mut value_next = false;
    for w in words {
        if value_next {
            value_next = false;
            continue;
        }
        if !w.starts_with('-') {
            return true;
        }
        if [
            "--all",
            "--branches",
            "--tags",
            "--remotes",
            "--glob",
            "--stdin",
        ]
        .iter()
        .any(|o| w == o || w.starts_with(&format!("{o}=")))
        {
            return true;
        }
        value_next = TAKES_VALUE.contains(w);
    }
    false
}

/// Git pathspecs: `dir` (and everything under it), `file`, globs (`*.env`,
/// where `*` crosses `/` as in git), and exclusions (`:!x`, `:(exclude)x`).
#[derive(Debug, Clone, Default)]
pub struct Pathspecs {
    include: Vec<Spec>,
    exclude: Vec<Spec>,
}

#[derive(Debug, Clone)]
struct Spec {
    prefix: String,
    glob: Option<globset::GlobMatcher>,
}

impl Spec {
    fn matches(&self, path: &str) -> bool {
        if let Some(g) = &self.glob {
            return g.is_match(path);
        }
        // `prefix` is kept without a trailing `/` (see Pathspecs::new).
        let p = self.prefix.as_str();
        p.is_empty()
            || p == "."
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl Pathspecs {
    /// Reads pathspecs as `git log -- <specs>` would.
    pub fn new(specs: &[String]) -> Result<Self, ScanError> {
        let mut out = Self::default();
        for raw in specs {
            let (exclude, text) = if let Some(t) = raw.strip_prefix(":(exclude)") {
                (true, t)
            } else if let Some(t) = raw.strip_prefix(":!").or_else(|| raw.strip_prefix(":^")) {
                (true, t)
            } else {
                (false, raw.as_str())
            };
            let text = text.strip_prefix("./").unwrap_or(text);
            let glob = if text.contains(['*', '?', '[']) {
                let g = globset::GlobBuilder::new(text)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| ScanError::Git(format!("pathspec {raw:?}: {e}")))?;
                Some(g.compile_matcher())
            } else {
                None
            };
            let spec = Spec {
                prefix: text.trim_end_matches('/').to_owned(),
                glob,
            };
            if exclude {
                out.exclude.push(spec);
            } else {
                out.include.push(spec);
            }
        }
        Ok(out)
    }

    /// Whether a repository path is selected.
    pub fn matches(&self, path: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|s| s.matches(path)))
            && !self.exclude.iter().any(|s| s.matches(path))
    }
}

/// Scans the history of the repository at `path`.
pub fn scan_history(
    scanner: &Scanner,
    path: &Path,
    range: &Range,
    max_blob_size: u64,
    threads: usize,
    progress: &Progress,
) -> Result<HistoryReport, ScanError> {
    let repo = gix::discover(path).map_err(git)?;
    let listed: Option<HashSet<ObjectId>> = match &range.commits {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|hex| {
                    ObjectId::from_hex(hex.as_bytes())
                        .map_err(|e| ScanError::Git(format!("{hex}: {e}")))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let mut tips: Vec<ObjectId> = Vec::new();
    if let Some(set) = &listed {
        tips.extend(set.iter().copied());
    } else {
        let refs = repo.references().map_err(git)?;
        for r in refs.all().map_err(git)?.peeled().map_err(git)? {
            let r = r.map_err(git)?;
            if let Some(id) = r.try_id() {
                tips.push(id.detach());
            }
        }
    }
    // Every commit, then parents before children (oldest first among those
    // ready), so a blob is met in the commit that added it even when a
    // rebase gave a whole series the same time.
    let mut graph: HashMap<ObjectId, (i64, Vec<ObjectId>)> = HashMap::new();
    let mut add = |id: ObjectId| -> Result<(), ScanError> {
        let c = match repo.find_commit(id) {
            Ok(c) => c,
            Err(_) => return Ok(()), // a ref to something that is not a commit
        };
        let parents = c.parent_ids().map(|p| p.detach()).collect();
        graph.insert(id, (c.time().map_err(git)?.seconds, parents));
        Ok(())
    };
    match &listed {
        Some(set) => set.iter().try_for_each(|id| add(*id))?,
        None => {
            for info in repo.rev_walk(tips).all().map_err(git)? {
                add(info.map_err(git)?.id)?;
            }
        }
    }
    let commits = parents_first(&graph);
    // First the trees, in commit order (cheap, sequential): each blob not
    // seen before becomes a job at the commit and path where it appears.
    let mut seen_trees: HashSet<ObjectId> = HashSet::new();
    let mut seen_blobs: HashSet<ObjectId> = HashSet::new();
    // A range starts from the commits just outside it: what they hold is
    // not the range's doing, so their trees and blobs count as seen, and a
    // file the range changes is judged by the lines it adds to them.
    let boundary: HashSet<ObjectId> = graph
        .values()
        .flat_map(|(_, parents)| parents.iter())
        .filter(|p| !graph.contains_key(*p))
        .copied()
        .collect();
    for id in &boundary {
        let Ok(commit) = repo.find_commit(*id) else {
            continue; // a shallow clone's edge
        };
        let root = commit.tree_id().map_err(git)?.detach();
        let mut stack = vec![root];
        while let Some(tree_id) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            let tree = repo.find_tree(tree_id).map_err(git)?;
            for entry in tree.iter() {
                let entry = entry.map_err(git)?;
                if entry.mode().is_tree() {
                    stack.push(entry.oid().to_owned());
                } else if entry.mode().is_blob() {
                    seen_blobs.insert(entry.oid().to_owned());
                }
            }
        }
    }
    let limited = listed.is_some();
    let mut jobs: Vec<Job> = Vec::new();
    for (index, id) in commits.iter().enumerate() {
        let commit = repo.find_commit(*id).map_err(git)?;
        let root = commit.tree_id().map_err(git)?.detach();
        let parent_tree = match graph.get(id).and_then(|(_, p)| p.first()) {
            Some(p) if limited => repo.find_commit(*p).ok().and_then(|c| c.tree().ok()),
            _ => None,
        };
        let mut stack = vec![(root, String::new())];
        while let Some((tree_id, prefix)) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            let tree = repo.find_tree(tree_id).map_err(git)?;
            for entry in tree.iter() {
                let entry = entry.map_err(git)?;
                let name = entry.filename().to_string();
                let path = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let mode = entry.mode();
                let oid = entry.oid().to_owned();
                if mode.is_tree() {
                    stack.push((oid, path));
                } else if mode.is_blob()
                    && range.paths.matches(&path)
                    && !scanner.skips_path(&path)
                    && seen_blobs.insert(oid)
                {
                    // In a range, a file the parent had is judged by the
                    // lines this commit adds to it.
                    let old = match &parent_tree {
                        Some(t) => t
                            .lookup_entry_by_path(&path)
                            .ok()
                            .flatten()
                            .filter(|e| e.mode().is_blob())
                            .map(|e| e.object_id()),
                        None => None,
                    };
                    jobs.push(Job {
                        blob: oid,
                        old,
                        path,
                        commit: index,
                    });
                }
            }
        }
    }
    // Then the blobs, on every thread: inflating and scanning them is the
    // work.
    progress
        .total
        .store(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let hex: Vec<String> = commits.iter().map(ToString::to_string).collect();
    let shared = repo.into_sync();
    let next = AtomicUsize::new(0);
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        threads
    }
    .min(jobs.len().max(1));
    let outcomes: Vec<Result<Scanned, ScanError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (shared, jobs, next, hex) = (&shared, &jobs, &next, &hex);
                scope.spawn(move || {
                    scan_blobs(scanner, shared, jobs, next, hex, max_blob_size, progress)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(ScanError::Git("a scanning thread panicked".into())))
            })
            .collect()
    });
    let mut report = HistoryReport {
        commits: commits.len(),
        ..HistoryReport::default()
    };
    let mut found: Vec<(usize, Finding)> = Vec::new();
    for outcome in outcomes {
        let scanned = outcome?;
        report.blobs += scanned.blobs;
        report.bytes += scanned.bytes;
        found.extend(scanned.findings);
    }
    // Jobs are in commit order, so the first finding of a secret is in
    // the commit that introduced it; later copies (a secret carried into a
    // new version of a file) are not reported again.
    found.sort_by_key(|(job, f)| (*job, f.start_line, f.start_column));
    let repo = shared.to_thread_local();
    let mut reported: HashSet<(String, String)> = HashSet::new();
    let mut metas: HashMap<usize, CommitMeta> = HashMap::new();
    for (job, mut f) in found {
        if !reported.insert((f.rule_id.clone(), f.secret.clone())) {
            continue;
        }
        let index = jobs[job].commit;
        let meta = match metas.entry(index) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let commit = repo.find_commit(commits[index]).map_err(git)?;
                e.insert(CommitMeta::of(&commit)?)
            }
        };
        meta.fill(&mut f);
        report.findings.push(f);
    }
    Ok(report)
}

/// A blob to scan: where it first appears.
struct Job {
    blob: ObjectId,
    /// The file's version in the commit's parent, when only the lines the
    /// commit adds count.
    old: Option<ObjectId>,
    path: String,
    /// Index of the commit in walk order.
    commit: usize,
}

/// What one thread scanned.
#[derive(Default)]
struct Scanned {
    blobs: usize,
    bytes: u64,
    /// Findings with the index of their job.
    findings: Vec<(usize, Finding)>,
}

/// Takes jobs until none are left.
fn scan_blobs(
    scanner: &Scanner,
    shared: &gix::ThreadSafeRepository,
    jobs: &[Job],
    next: &AtomicUsize,
    hex: &[String],
    max_blob_size: u64,
    progress: &Progress,
) -> Result<Scanned, ScanError> {
    let repo = shared.to_thread_local();
    let mut out = Scanned::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(job) = jobs.get(index) else {
            return Ok(out);
        };
        let blob = repo.find_blob(job.blob).map_err(git)?;
        progress.add(blob.data.len() as u64);
        if max_blob_size > 0 && blob.data.len() as u64 > max_blob_size {
            continue;
        }
        let Some(data) = text::scannable(&blob.data) else {
            continue;
        };
        out.blobs += 1;
        out.bytes += data.len() as u64;
        let origin = Origin {
            path: &job.path,
            commit: Some(&hex[job.commit]),
        };
        let mut found = scanner.scan(&data, origin);
        if let Some(old) = job.old
            && !found.is_empty()
        {
            let old = repo.find_blob(old).map_err(git)?;
            let old = text::scannable(&old.data).unwrap_or_default();
            let added = added_lines(&old, &data);
            found.retain(|f| (f.start_line..=f.end_line).any(|l| added.contains(&l)));
        }
        out.findings.extend(found.into_iter().map(|f| (index, f)));
    }
}

/// The commits ordered so every parent in the set comes before its
/// children; among the commits ready, the oldest first.
fn parents_first(graph: &HashMap<ObjectId, (i64, Vec<ObjectId>)>) -> Vec<ObjectId> {
    let mut waiting: HashMap<ObjectId, usize> = HashMap::new();
    let mut children: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    for (id, (_, parents)) in graph {
        let inside: Vec<&ObjectId> = parents.iter().filter(|p| graph.contains_key(*p)).collect();
        waiting.insert(*id, inside.len());
        for p in inside {
            children.entry(*p).or_default().push(*id);
        }
    }
    let mut ready: BinaryHeap<Reverse<(i64, ObjectId)>> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| Reverse((graph[id].0, *id)))
        .collect();
    let mut out = Vec::with_capacity(graph.len());
    while let Some(Reverse((_, id))) = ready.pop() {
        out.push(id);
        for child in children.get(&id).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(child) {
                *n -= 1;
                if *n == 0 {
                    ready.push(Reverse((graph[child].0, *child)));
                }
            }
        }
    }
    out
}

struct CommitMeta {
    author: String,
    email: String,
    date: String,
    message: String,
}

impl CommitMeta {
    fn of(c: &gix::Commit<'_>) -> Result<Self, ScanError> {
        let author = c.author().map_err(git)?;
        let seconds = c.time().map_err(git)?.seconds;
        let date = time::OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        Ok(Self {
            author: author.name.to_string(),
            email: author.email.to_string(),
            date,
            message: c
                .message_raw_sloppy()
                .to_string()
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        })
    }

    fn fill(&self, f: &mut Finding) {
        f.author = Some(self.author.clone());
        f.email = Some(self.email.clone());
        f.date = Some(self.date.clone());
        f.message = Some(self.message.clone());
    }
}

/// Scans what is staged for the next commit (the index, not the working
/// tree): only findings on lines the index adds to `HEAD`'s version of each
/// file are reported. For pre-commit hooks.
pub fn scan_staged(scanner: &Scanner, path: &Path) -> Result<Vec<Finding>, ScanError> {
    let repo = gix::discover(path).map_err(git)?;
    let index = repo.index_or_empty().map_err(git)?;
    // HEAD's files by path, read once (a lookup per staged path would
    // read the same trees again for every file). A repository without
    // commits yet has none: everything staged is new.
    let mut head: HashMap<Vec<u8>, ObjectId> = HashMap::new();
    if let Ok(tree) = repo.head_tree() {
        let mut stack = vec![(tree.id, Vec::new())];
        while let Some((id, prefix)) = stack.pop() {
            let tree = repo.find_tree(id).map_err(git)?;
            for entry in tree.iter() {
                let entry = entry.map_err(git)?;
                let mut path = prefix.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(entry.filename());
                if entry.mode().is_tree() {
                    stack.push((entry.oid().to_owned(), path));
                } else {
                    head.insert(path, entry.oid().to_owned());
                }
            }
        }
    }
    let committed: HashSet<ObjectId> = head.values().copied().collect();
    let mut findings = Vec::new();
    for entry in index.entries() {
        if !matches!(
            entry.mode,
            gix::index::entry::Mode::FILE | gix::index::entry::Mode::FILE_EXECUTABLE
        ) {
            continue;
        }
        let rela = entry.path(&index).to_string();
        let old = head.get(entry.path(&index).as_ref() as &[u8]).copied();
        // Content HEAD already has, at this path or another (a rename or
        // a copy), adds nothing.
        if committed.contains(&entry.id) || scanner.skips_path(&rela) {
            continue;
        }
        let new = repo.find_blob(entry.id).map_err(git)?;
        let Some(new_text) = text::scannable(&new.data) else {
            continue;
        };
        let old_text = match old.map(|id| repo.find_blob(id)) {
            Some(Ok(b)) => text::scannable(&b.data)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let added = added_lines(&old_text, &new_text);
        findings.extend(
            scanner
                .scan(
                    &new_text,
                    Origin {
                        path: &rela,
                        commit: None,
                    },
                )
                .into_iter()
                .filter(|f| (f.start_line..=f.end_line).any(|l| added.contains(&l))),
        );
    }
    Ok(findings)
}

/// 1-based numbers of the lines of `new` that `old` does not have (each old
/// line accounts for one equal new line).
fn added_lines(old: &[u8], new: &[u8]) -> HashSet<usize> {
    let mut pool: HashMap<&[u8], usize> = HashMap::new();
    for l in old.split(|c| *c == b'\n') {
        *pool.entry(l).or_default() += 1;
    }
    let mut added = HashSet::new();
    for (i, l) in new.split(|c| *c == b'\n').enumerate() {
        match pool.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                added.insert(i + 1);
            }
        }
    }
    added
}
