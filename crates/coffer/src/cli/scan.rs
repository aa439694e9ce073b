//! `coffer scan dir|stdin`: the leak scanner over a directory tree or
//! standard input, with gitleaks-format rules and reports.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_scan::history::{Range, scan_history, scan_staged};
use coffer_scan::walk::scan_tree;
use coffer_scan::{Config, Finding, Origin, Progress, Scanner, report};

/// Scan targets.
#[derive(clap::Subcommand, Debug)]
pub enum ScanCommand {
    /// Scan a directory tree (`.gitignore` respected, `.git` and binary
    /// files skipped).
    Dir {
        /// The directory (or a single file).
        #[arg(default_value = ".")]
        path: PathBuf,
        #[command(flatten)]
        opts: ScanOpts,
    },
    /// Scan a git repository's history (every blob once, each finding
    /// reported for the commit that introduced it), or with --staged what is
    /// staged for the next commit.
    Git {
        /// The repository (or a directory inside it).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Which commits: revisions (`main`), ranges (`v1..main`),
        /// exclusions (`^v1`), `--all` (the default: every ref).
        #[arg(long, allow_hyphen_values = true)]
        log_opts: Option<String>,
        /// Only the lines staged for the next commit (for pre-commit hooks).
        #[arg(long, conflicts_with = "log_opts")]
        staged: bool,
        #[command(flatten)]
        opts: ScanOpts,
    },
    /// Install a git pre-commit hook that runs `coffer scan git --staged`.
    InstallHook {
        /// The repository (or a directory inside it).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Replace a pre-commit hook that coffer did not install.
        #[arg(long)]
        force: bool,
    },
    /// Scan standard input.
    Stdin {
        /// The name findings are reported under.
        #[arg(long, default_value = "stdin")]
        label: String,
        #[command(flatten)]
        opts: ScanOpts,
    },
}

/// Flags every scan takes.
#[derive(clap::Args, Debug)]
pub struct ScanOpts {
    /// A gitleaks-format rule file (default: `.gitleaks.toml` in the scanned
    /// directory if there is one, else the built-in rules).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Report format.
    #[arg(short = 'f', long, value_enum, default_value_t = ReportFormat::Table)]
    report_format: ReportFormat,
    /// Write the report here instead of stdout.
    #[arg(short = 'r', long)]
    report_path: Option<PathBuf>,
    /// Show secrets in the report (they are redacted by default).
    #[arg(long)]
    no_redact: bool,
    /// Exit code when there are findings.
    #[arg(long, default_value_t = 1)]
    exit_code: u8,
    /// Fingerprints to leave out, one per line (default: `.gitleaksignore`
    /// in the scanned directory if there is one).
    #[arg(short = 'i', long)]
    ignore_path: Option<PathBuf>,
    /// A JSON report of an earlier scan: only findings not in it are
    /// reported.
    #[arg(short = 'b', long)]
    baseline_path: Option<PathBuf>,
    /// Skip files larger than this many megabytes (0: no limit).
    #[arg(long, default_value_t = 100)]
    max_file_size: u64,
    /// Threads reading and scanning files or blobs (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Report formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// A table for people.
    Table,
    /// gitleaks' JSON report.
    Json,
    /// CSV with gitleaks' columns.
    Csv,
    /// JUnit XML, a failed test case per finding.
    Junit,
    /// SARIF 2.1.0, for code-scanning uploads.
    Sarif,
}

/// Runs a scan; the exit code is 0 (clean), `--exit-code` (findings) or 2
/// (bad rules or usage).
pub fn run(cmd: ScanCommand) -> anyhow::Result<u8> {
    if let ScanCommand::InstallHook { path, force } = &cmd {
        return install_hook(path, *force);
    }
    let (opts, root) = match &cmd {
        ScanCommand::Dir { path, opts } | ScanCommand::Git { path, opts, .. } => {
            (opts, Some(path.as_path()))
        }
        ScanCommand::Stdin { opts, .. } => (opts, None),
        // Handled above.
        ScanCommand::InstallHook { .. } => return Ok(0),
    };
    let scanner = match load(opts.config.as_deref(), root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return Ok(2);
        }
    };
    let started = std::time::Instant::now();
    let mut findings = match &cmd {
        ScanCommand::Dir { path, opts } => {
            if !path.exists() {
                eprintln!("Error: {} does not exist", path.display());
                return Ok(2);
            }
            let progress = Progress::default();
            let report = with_progress("files", &progress, || {
                scan_tree(
                    &scanner,
                    path,
                    opts.max_file_size << 20,
                    opts.threads,
                    &progress,
                )
            });
            for e in &report.errors {
                eprintln!("warning: {e}");
            }
            eprintln!(
                "scanned {} files, {:.1} MB in {:.2} s ({} skipped: binary or over the size limit)",
                report.files,
                report.bytes as f64 / 1e6,
                started.elapsed().as_secs_f64(),
                report.skipped
            );
            report.findings
        }
        ScanCommand::Git {
            path,
            log_opts,
            staged,
            opts,
        } => {
            let result = if *staged {
                scan_staged(&scanner, path)
            } else {
                let range = match parse_log_opts(log_opts.as_deref().unwrap_or("")) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("Error: {e}");
                        return Ok(2);
                    }
                };
                let progress = Progress::default();
                with_progress("blobs", &progress, || {
                    scan_history(
                        &scanner,
                        path,
                        &range,
                        opts.max_file_size << 20,
                        opts.threads,
                        &progress,
                    )
                })
                .map(|r| {
                    eprintln!(
                        "scanned {} commits, {} distinct blobs, {:.1} MB in {:.2} s",
                        r.commits,
                        r.blobs,
                        r.bytes as f64 / 1e6,
                        started.elapsed().as_secs_f64()
                    );
                    r.findings
                })
            };
            match result {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return Ok(2);
                }
            }
        }
        // Handled above.
        ScanCommand::InstallHook { .. } => Vec::new(),
        ScanCommand::Stdin { label, .. } => {
            let mut data = Vec::new();
            std::io::stdin().read_to_end(&mut data)?;
            scanner.scan(
                &data,
                Origin {
                    path: label,
                    commit: None,
                },
            )
        }
    };
    let ignore = opts.ignore_path.clone().or_else(|| {
        root.map(|r| r.join(".gitleaksignore"))
            .filter(|p| p.is_file())
    });
    if let Some(p) = ignore {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        report::apply_ignore_file(&mut findings, &text);
    }
    if let Some(p) = &opts.baseline_path {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        if let Err(e) = report::apply_baseline(&mut findings, &text) {
            eprintln!("Error: {}: {e}", p.display());
            return Ok(2);
        }
    }
    if !opts.no_redact {
        findings.iter_mut().for_each(Finding::redact);
    }
    let text = match opts.report_format {
        ReportFormat::Json => report::json(&findings)?,
        ReportFormat::Csv => report::csv(&findings),
        ReportFormat::Junit => report::junit(&findings),
        ReportFormat::Sarif => report::sarif(
            &findings,
            &scanner.config().rules,
            env!("CARGO_PKG_VERSION"),
        )?,
        ReportFormat::Table => table(&findings),
    };
    match &opts.report_path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(if findings.is_empty() {
        0
    } else {
        opts.exit_code
    })
}

/// Runs `scan`, showing its progress on stderr when that is a terminal
/// (a counter of `unit`s and bytes, a bar once the total is known); silent
/// otherwise, so logs and pipes get only the summary.
fn with_progress<T>(unit: &str, progress: &Progress, scan: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    if !std::io::stderr().is_terminal() {
        return scan();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr_with_hz(10),
            );
            let counting = indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {{pos}} {unit}, {{msg}} ({{elapsed}})"
            ));
            let mut measured = indicatif::ProgressStyle::with_template(&format!(
                "[{{bar:30}}] {{pos}}/{{len}} {unit}, {{msg}} ({{eta}} left)"
            ))
            .ok();
            if let Ok(style) = counting {
                bar.set_style(style);
            }
            let mut has_total = false;
            // Nothing is drawn for a scan that ends within a quarter second.
            let mut ticks = 0u32;
            while !done.load(Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(50));
                ticks += 1;
                if ticks < 5 {
                    continue;
                }
                let total = progress.total.load(Relaxed);
                if total > 0 && !has_total {
                    has_total = true;
                    bar.set_length(total);
                    if let Some(style) = measured.take() {
                        bar.set_style(style.progress_chars("=> "));
                    }
                }
                bar.set_position(progress.done.load(Relaxed));
                bar.set_message(format!(
                    "{:.1} MB",
                    progress.bytes.load(Relaxed) as f64 / 1e6
                ));
                bar.tick();
            }
            bar.finish_and_clear();
        });
        let out = scan();
        done.store(true, Relaxed);
        out
    })
}

fn load(config: Option<&Path>, root: Option<&Path>) -> anyhow::Result<Scanner> {
    let local = root
        .map(|r| r.join(".gitleaks.toml"))
        .filter(|p| p.is_file());
    let config = match config.map(Path::to_path_buf).or(local) {
        Some(p) => {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            Config::parse(&text, &p.display().to_string())?
        }
        None => Config::defaults()?,
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Scanner::new(config)?)
}

fn table(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no leaks found\n".into();
    }
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}:{}  {}  {}\n    {}\n",
            f.file, f.start_line, f.start_column, f.rule_id, f.description, f.matched
        ));
    }
    out.push_str(&format!("{} leaks found\n", findings.len()));
    out
}

/// The part of `git log` options a history scan understands: revisions,
/// `A..B`, `^A`, `--all`.
fn parse_log_opts(text: &str) -> Result<Range, String> {
    let mut range = Range::default();
    for word in text.split_whitespace() {
        if word == "--all" {
            continue;
        } else if let Some((from, to)) = word.split_once("..") {
            if from.is_empty() || to.is_empty() || to.starts_with('.') {
                return Err(format!(
                    "--log-opts: {word:?} is not a range coffer understands (A..B)"
                ));
            }
            range.exclude.push(from.to_owned());
            range.tips.push(to.to_owned());
        } else if let Some(x) = word.strip_prefix('^') {
            range.exclude.push(x.to_owned());
        } else if word.starts_with('-') {
            return Err(format!(
                "--log-opts: {word} is not supported (revisions, A..B, ^A and --all are)"
            ));
        } else {
            range.tips.push(word.to_owned());
        }
    }
    Ok(range)
}

const HOOK_MARK: &str = "# installed by coffer scan install-hook";

/// Writes `<git dir>/hooks/pre-commit` (0755) running this coffer on the
/// staged changes; an existing hook that is not coffer's is kept unless
/// `force`.
fn install_hook(path: &Path, force: bool) -> anyhow::Result<u8> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .current_dir(path)
        .output()
        .context("running git to find the hooks directory")?;
    if !output.status.success() {
        eprintln!("Error: {} is not inside a git repository", path.display());
        return Ok(2);
    }
    let hooks = path.join(String::from_utf8_lossy(&output.stdout).trim());
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    let hook = hooks.join("pre-commit");
    if let Ok(existing) = std::fs::read_to_string(&hook)
        && !existing.contains(HOOK_MARK)
        && !force
    {
        eprintln!(
            "Error: {} exists and was not installed by coffer; add `coffer scan git --staged` to it, or pass --force to replace it",
            hook.display()
        );
        return Ok(2);
    }
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.contains('\''))
        .unwrap_or_else(|| "coffer".into());
    let script = format!(
        "#!/bin/sh\n{HOOK_MARK}\n# Finds credentials in the changes being committed; `git commit --no-verify` skips it.\nexec '{exe}' scan git --staged\n"
    );
    std::fs::write(&hook, script).with_context(|| format!("writing {}", hook.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    eprintln!("installed {}", hook.display());
    Ok(0)
}
