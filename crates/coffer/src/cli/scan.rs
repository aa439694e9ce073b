//! `coffer scan dir|stdin`: the leak scanner over a directory tree or
//! standard input, with gitleaks-format rules and reports.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_scan::history::{Range, scan_history, scan_staged};
use coffer_scan::walk::{TreeOptions, scan_tree};
use coffer_scan::{Config, Finding, Origin, Progress, Scanner, report};

/// Scan targets.
#[derive(clap::Subcommand, Debug)]
pub enum ScanCommand {
    /// Scan a directory tree or a file (`.git` and binary files skipped;
    /// files git ignores are scanned too, as gitleaks does, unless
    /// --respect-gitignore).
    Dir {
        /// The directory (or a single file); default `.`.
        path: Option<PathBuf>,
        /// The same as PATH (gitleaks' `--source`).
        #[arg(short = 's', long, conflicts_with = "path")]
        source: Option<PathBuf>,
        /// Follow symbolic links to files and directories (a finding in a
        /// linked file names the link as SymlinkFile).
        #[arg(long)]
        follow_symlinks: bool,
        /// Leave out files `.gitignore` ignores (never `.env*` files); the
        /// summary counts what was left out.
        #[arg(long)]
        respect_gitignore: bool,
        #[command(flatten)]
        opts: ScanOpts,
    },
    /// Scan a git repository's history (each finding reported for the
    /// commit that introduced it), or with --staged what is staged for
    /// the next commit.
    Git {
        /// The repository (or a directory inside it); default `.`.
        path: Option<PathBuf>,
        /// The same as PATH (gitleaks' `--source`).
        #[arg(short = 's', long, conflicts_with = "path")]
        source: Option<PathBuf>,
        /// Which commits, as `git log` takes them: `A..B` (only what the
        /// range's commits introduce), `--since=2024-01-01`,
        /// `--first-parent`, `--no-merges`, `-n 10`, `--all`, `-- paths`
        /// (default: every commit reachable from any ref).
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

/// Flags every scan takes, spelled as gitleaks spells them.
#[derive(clap::Args, Debug)]
pub struct ScanOpts {
    /// A gitleaks-format rule file. Default: $GITLEAKS_CONFIG, then the
    /// rules in $GITLEAKS_CONFIG_TOML, then `.gitleaks.toml` in the scanned
    /// directory (the current one for stdin), else the built-in rules.
    #[arg(short, long, env = "GITLEAKS_CONFIG")]
    config: Option<PathBuf>,
    /// Report format.
    #[arg(short = 'f', long, value_enum, default_value_t = ReportFormat::Table)]
    report_format: ReportFormat,
    /// Write the report here instead of stdout (`-`: stdout).
    #[arg(short = 'r', long)]
    report_path: Option<PathBuf>,
    /// A Go `text/template` file that renders the findings (`-f
    /// template`; the part of Go's templates and sprig's functions reports
    /// use, see docs/scan.md).
    #[arg(long, value_name = "FILE")]
    report_template: Option<PathBuf>,
    /// Hide secrets in the report: all of each (the default, or
    /// `--redact`), or N percent of each (`--redact=N`; 0 shows them).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "100",
          value_parser = clap::value_parser!(u8).range(0..=100), value_name = "N")]
    redact: Option<u8>,
    /// Show secrets in the report (the same as --redact=0).
    #[arg(long, conflicts_with = "redact")]
    no_redact: bool,
    /// Exit code when there are findings.
    #[arg(long, default_value_t = 1)]
    exit_code: u8,
    /// Fingerprints to leave out, one per line: a file, or a directory
    /// holding `.gitleaksignore` (default: `.gitleaksignore` in the scanned
    /// directory if there is one).
    #[arg(
        short = 'i',
        long = "gitleaks-ignore-path",
        visible_alias = "ignore-path"
    )]
    ignore_path: Option<PathBuf>,
    /// A JSON report of an earlier scan: only findings not in it are
    /// reported.
    #[arg(short = 'b', long)]
    baseline_path: Option<PathBuf>,
    /// Skip files larger than this many megabytes (0: no limit).
    #[arg(long, default_value_t = 100)]
    max_file_size: u64,
    /// gitleaks' name for --max-file-size (this one wins when both are set).
    #[arg(long, value_name = "MB")]
    max_target_megabytes: Option<u64>,
    /// Threads reading and scanning files or blobs (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Report only these rules (ids; repeat or separate with commas).
    #[arg(long, value_delimiter = ',', value_name = "RULE_ID")]
    enable_rule: Vec<String>,
    /// Report findings on lines marked `gitleaks:allow` too.
    #[arg(long)]
    ignore_gitleaks_allow: bool,
    /// Decode base64, hex and percent-encoded text this many layers deep
    /// and scan it (0: off).
    #[arg(long, default_value_t = 5)]
    max_decode_depth: usize,
    /// Give up (exit 1) when the scan takes longer than this many seconds
    /// (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    timeout: u64,
    /// Print every finding to stderr as it is reported, whatever the
    /// report's format and destination.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// What goes to stderr: trace and debug add where the rules came from,
    /// info adds the summary, warn only warnings, error and fatal only
    /// errors.
    #[arg(short = 'l', long, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    /// Accepted for gitleaks' scripts: coffer prints no banner.
    #[arg(long)]
    no_banner: bool,
    /// Accepted for gitleaks' scripts: coffer's output has no color.
    #[arg(long)]
    no_color: bool,
    /// Ask the coffer server (COFFER_ADDR/VAULT_ADDR, with the current
    /// token) which findings it holds or handed out, and mark them live.
    #[arg(long)]
    check_store: bool,
    /// With --check-store: what to do with live findings (implies
    /// --check-store). Each step is audited with the finding's fingerprint.
    #[arg(long, value_enum, value_name = "ACTION")]
    respond: Option<super::leak::Respond>,
    /// The coffer server for --check-store (default: $COFFER_ADDR,
    /// $VAULT_ADDR, http://127.0.0.1:8200).
    #[arg(long, value_name = "URL")]
    address: Option<String>,
}

impl ScanOpts {
    fn redact_percent(&self) -> u8 {
        if self.no_redact {
            0
        } else {
            self.redact.unwrap_or(100)
        }
    }

    fn max_bytes(&self) -> u64 {
        self.max_target_megabytes.unwrap_or(self.max_file_size) << 20
    }
}

/// How much goes to stderr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// As debug.
    Trace,
    /// Where the rules came from, and the summary.
    Debug,
    /// The summary and warnings.
    Info,
    /// Warnings only.
    Warn,
    /// Errors only.
    #[value(alias = "err")]
    Error,
    /// Errors only.
    Fatal,
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
    /// The findings through --report-template.
    Template,
}

/// Runs a scan; the exit code is 0 (clean), `--exit-code` (findings) or 1
/// (an error), as gitleaks' are.
pub async fn run(cmd: ScanCommand) -> anyhow::Result<u8> {
    if let ScanCommand::InstallHook { path, force } = &cmd {
        return install_hook(path, *force);
    }
    let dot = PathBuf::from(".");
    let (opts, root) = match &cmd {
        ScanCommand::Dir {
            path, source, opts, ..
        }
        | ScanCommand::Git {
            path, source, opts, ..
        } => (
            opts,
            path.as_ref().or(source.as_ref()).unwrap_or(&dot).clone(),
        ),
        ScanCommand::Stdin { opts, .. } => (opts, dot.clone()),
        // Handled above.
        ScanCommand::InstallHook { .. } => return Ok(0),
    };
    if opts.timeout > 0 {
        let limit = opts.timeout;
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(limit));
            eprintln!("Error: the scan did not finish within {limit} s (--timeout)");
            std::process::exit(1);
        });
    }
    let info = opts.log_level <= LogLevel::Info;
    // A template is read (and its mistakes reported) before the scan.
    let template = match (&opts.report_template, opts.report_format) {
        (Some(p), ReportFormat::Table | ReportFormat::Template) => match std::fs::read_to_string(p)
        {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("Error: reading {}: {e}", p.display());
                return Ok(1);
            }
        },
        (Some(_), f) => {
            eprintln!("Error: --report-template goes with -f template, not -f {f:?}");
            return Ok(1);
        }
        (None, ReportFormat::Template) => {
            eprintln!("Error: -f template needs --report-template FILE");
            return Ok(1);
        }
        (None, _) => None,
    };
    if let Some(t) = &template
        && let Err(e) = coffer_scan::template::check(t)
    {
        eprintln!("Error: {e}");
        return Ok(1);
    }
    let scanner = match load(opts, &root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return Ok(1);
        }
    };
    let started = std::time::Instant::now();
    let mut findings = match &cmd {
        ScanCommand::Dir {
            follow_symlinks,
            respect_gitignore,
            ..
        } => {
            if !root.exists() {
                eprintln!("Error: {} does not exist", root.display());
                return Ok(1);
            }
            let progress = Progress::default();
            let tree = TreeOptions {
                max_file_size: opts.max_bytes(),
                threads: opts.threads,
                respect_gitignore: *respect_gitignore,
                follow_symlinks: *follow_symlinks,
            };
            let report = with_progress("files", &progress, || {
                scan_tree(&scanner, &root, &tree, &progress)
            });
            if opts.log_level <= LogLevel::Warn {
                for e in &report.errors {
                    eprintln!("warning: {e}");
                }
            }
            if info {
                eprintln!("{}", tree_summary(&report, started.elapsed()));
            }
            report.findings
        }
        ScanCommand::Git {
            log_opts, staged, ..
        } => {
            let result = if *staged {
                scan_staged(&scanner, &root)
            } else {
                let range = match log_opts.as_deref().map(split_words) {
                    None => Ok(Range::default()),
                    Some(Ok(words)) => Range::from_log_opts(&root, &words),
                    Some(Err(e)) => Err(coffer_scan::ScanError::Git(e)),
                };
                range.and_then(|range| {
                    let progress = Progress::default();
                    with_progress("blobs", &progress, || {
                        scan_history(
                            &scanner,
                            &root,
                            &range,
                            opts.max_bytes(),
                            opts.threads,
                            &progress,
                        )
                    })
                    .map(|r| {
                        if info {
                            eprintln!(
                                "scanned {} commits, {} distinct blobs, {:.1} MB in {:.2} s",
                                r.commits,
                                r.blobs,
                                r.bytes as f64 / 1e6,
                                started.elapsed().as_secs_f64()
                            );
                        }
                        r.findings
                    })
                })
            };
            match result {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return Ok(1);
                }
            }
        }
        // Handled above.
        ScanCommand::InstallHook { .. } => Vec::new(),
        ScanCommand::Stdin { label, .. } => {
            let mut data = Vec::new();
            std::io::stdin().read_to_end(&mut data)?;
            match coffer_scan::text::scannable(&data) {
                Some(text) => scanner.scan(
                    &text,
                    Origin {
                        path: label,
                        commit: None,
                    },
                ),
                None => Vec::new(),
            }
        }
    };
    let ignore = match &opts.ignore_path {
        Some(p) if p.is_dir() => Some(p.join(".gitleaksignore")).filter(|p| p.is_file()),
        Some(p) => Some(p.clone()),
        None => Some(root.join(".gitleaksignore")).filter(|p| p.is_file()),
    };
    if let Some(p) = ignore {
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Error: reading {}: {e}", p.display());
                return Ok(1);
            }
        };
        report::apply_ignore_file(&mut findings, &text);
    }
    if let Some(p) = &opts.baseline_path {
        let applied = std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                report::apply_baseline(&mut findings, &text).map_err(|e| e.to_string())
            });
        if let Err(e) = applied {
            eprintln!("Error: {}: {e}", p.display());
            return Ok(1);
        }
    }
    let mut response_failed = false;
    if opts.check_store || opts.respond.is_some() {
        match check_store(opts, &mut findings, info).await {
            Ok(failed) => response_failed = failed,
            Err(e) => {
                eprintln!("Error: {e:#}");
                return Ok(1);
            }
        }
    }
    let percent = opts.redact_percent();
    findings.iter_mut().for_each(|f| f.redact(percent));
    let text = match (opts.report_format, &template) {
        (_, Some(t)) => {
            let mut rows: serde_json::Value = serde_json::from_str(&report::json(&findings)?)?;
            // gitleaks' templates may ask for these; coffer has no values.
            for row in rows.as_array_mut().into_iter().flatten() {
                if let Some(o) = row.as_object_mut() {
                    o.entry("Line").or_insert_with(|| "".into());
                    o.entry("Link").or_insert_with(|| "".into());
                }
            }
            match coffer_scan::template::render(t, &rows) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return Ok(1);
                }
            }
        }
        (ReportFormat::Json, _) => report::json(&findings)?,
        (ReportFormat::Csv, _) => report::csv(&findings),
        (ReportFormat::Junit, _) => report::junit(&findings),
        (ReportFormat::Sarif, _) => report::sarif(
            &findings,
            &scanner.config().rules,
            env!("CARGO_PKG_VERSION"),
        )?,
        (ReportFormat::Table | ReportFormat::Template, _) => table(&findings),
    };
    if opts.verbose {
        eprint!("{}", table(&findings));
    }
    let to_stdout = opts
        .report_path
        .as_ref()
        .is_none_or(|p| p.as_os_str() == "-");
    if to_stdout {
        let mut out = std::io::stdout().lock();
        // A reader that stops early (`| head`) is not an error.
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
            _ => {}
        }
    } else if let Some(p) = &opts.report_path
        && let Err(e) = std::fs::write(p, text)
    {
        eprintln!("Error: writing {}: {e}", p.display());
        return Ok(1);
    }
    Ok(if response_failed {
        RESPONSE_FAILED
    } else if findings.is_empty() {
        0
    } else {
        opts.exit_code
    })
}

/// Exit code when a response step failed (a live credential may still work).
const RESPONSE_FAILED: u8 = 2;

/// Marks each finding live or not and, with --respond, acts on the live
/// ones; answers whether any response step failed. What is done goes to
/// stderr, never the secrets.
async fn check_store(
    opts: &ScanOpts,
    findings: &mut Vec<Finding>,
    info: bool,
) -> anyhow::Result<bool> {
    use super::leak::{Respond, check, describe, respond};
    use coffer_scan::engine::BELOW_ENTROPY;
    let client = super::ClientArgs::for_address(opts.address.clone()).client()?;
    let secrets: Vec<&str> = findings.iter().map(|f| f.secret.as_str()).collect();
    let found = check(&client, &secrets).await?;
    let mut live = 0;
    for (f, m) in findings.iter_mut().zip(&found) {
        f.live = Some(!m.is_empty());
        live += usize::from(!m.is_empty());
    }
    // Matches under their rule's entropy floor count only when live.
    let keep: Vec<bool> = findings
        .iter()
        .map(|f| f.live == Some(true) || !f.tags.iter().any(|t| t == BELOW_ENTROPY))
        .collect();
    let found: Vec<_> = found
        .into_iter()
        .zip(&keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect();
    let mut k = keep.iter();
    findings.retain(|_| k.next().copied().unwrap_or(true));
    if info {
        eprintln!(
            "{live} of {} findings {} live in coffer",
            findings.len(),
            if live == 1 { "is" } else { "are" }
        );
    }
    let mode = opts.respond.unwrap_or(Respond::Report);
    if opts.respond.is_none() {
        return Ok(false);
    }
    let mut done: std::collections::HashMap<String, String> = Default::default();
    let mut failed = false;
    for (f, matches) in findings.iter().zip(&found) {
        let fp = f.fingerprint();
        let c = client.with_header(coffer_core::logical::LEAK_FINDING_HEADER, &header_safe(&fp));
        for m in matches {
            let key = describe(m);
            if let Some(earlier) = done.get(&key) {
                eprintln!("{fp}: {key}: handled above ({earlier})");
                continue;
            }
            match respond(&c, m, mode).await {
                Ok(what) => {
                    eprintln!("{fp}: {what}");
                    done.insert(key, "done".into());
                }
                Err(e) => {
                    eprintln!("{fp}: error: {e:#}");
                    done.insert(key, "failed".into());
                    failed = true;
                }
            }
        }
    }
    Ok(failed)
}

/// A fingerprint as a header value: printable ASCII, other bytes (and `%`)
/// percent-encoded, at most 512 bytes.
fn header_safe(fp: &str) -> String {
    let mut out = String::with_capacity(fp.len());
    for b in fp.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        if out.len() > 500 {
            break;
        }
    }
    out
}

/// The line a tree scan ends with: what was read, and what was not and
/// why, naming the flag that changes it.
fn tree_summary(r: &coffer_scan::walk::TreeReport, took: std::time::Duration) -> String {
    let mut out = format!(
        "scanned {} files, {:.1} MB in {:.2} s",
        r.files,
        r.bytes as f64 / 1e6,
        took.as_secs_f64()
    );
    let mut left = Vec::new();
    if r.skipped > 0 {
        left.push(format!("{} binary or over --max-file-size", r.skipped));
    }
    if r.allowlisted > 0 {
        left.push(format!("{} on allowlisted paths", r.allowlisted));
    }
    if r.ignored > 0 {
        left.push(format!(
            "{} ignored by .gitignore (drop --respect-gitignore to scan them)",
            r.ignored
        ));
    }
    if !left.is_empty() {
        out.push_str(&format!("; left out: {}", left.join(", ")));
    }
    out
}

/// Splits `--log-opts` into words as a shell would (quotes kept together).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => word.extend(chars.next()),
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("--log-opts {text:?}: a quote is not closed"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
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

/// The rules, from where gitleaks would look for them, limited to
/// --enable-rule.
fn load(opts: &ScanOpts, root: &Path) -> anyhow::Result<Scanner> {
    let local = Some(root.join(".gitleaks.toml")).filter(|p| p.is_file());
    let inline = std::env::var("GITLEAKS_CONFIG_TOML")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let (mut config, source) = match (&opts.config, inline, &local) {
        (Some(p), _, _) | (None, None, Some(p)) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let name = p.display().to_string();
            (Config::parse(&text, &name)?, name)
        }
        (None, Some(text), _) => (
            Config::parse(&text, "GITLEAKS_CONFIG_TOML")?,
            "GITLEAKS_CONFIG_TOML".to_owned(),
        ),
        (None, None, None) => (Config::defaults()?, "the built-in rules".to_owned()),
    };
    if opts.log_level <= LogLevel::Warn {
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
    }
    if !opts.enable_rule.is_empty() {
        let unknown: Vec<&String> = opts
            .enable_rule
            .iter()
            .filter(|id| !config.rules.iter().any(|r| r.id == **id))
            .collect();
        if !unknown.is_empty() {
            anyhow::bail!(
                "--enable-rule: {} not in {source}",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        config.rules.retain(|r| opts.enable_rule.contains(&r.id));
    }
    if opts.log_level <= LogLevel::Debug {
        eprintln!("using {} rules from {source}", config.rules.len());
    }
    Ok(Scanner::new(config)?
        .obey_inline_allow(!opts.ignore_gitleaks_allow)
        .max_decode_depth(opts.max_decode_depth)
        .keep_low_entropy(opts.check_store || opts.respond.is_some()))
}

fn table(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no leaks found\n".into();
    }
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}:{}  {}  {}\n",
            f.file, f.start_line, f.start_column, f.rule_id, f.description
        ));
        if let Some(link) = &f.symlink_file {
            out.push_str(&format!("    via link {link}\n"));
        }
        if let Some(c) = &f.commit {
            out.push_str(&format!(
                "    commit {} by {} <{}> on {}: {}\n",
                &c[..c.len().min(12)],
                f.author.as_deref().unwrap_or(""),
                f.email.as_deref().unwrap_or(""),
                f.date.as_deref().unwrap_or(""),
                f.message.as_deref().unwrap_or("")
            ));
        }
        out.push_str(&format!("    {}\n", f.matched));
        if f.live == Some(true) {
            out.push_str("    LIVE in coffer\n");
        }
    }
    let n = findings.len();
    out.push_str(&format!(
        "{n} {} found\n",
        if n == 1 { "leak" } else { "leaks" }
    ));
    out
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
        return Ok(1);
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
        return Ok(1);
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
