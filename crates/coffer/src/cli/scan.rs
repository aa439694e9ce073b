//! `coffer scan dir|stdin`: the leak scanner over a directory tree or
//! standard input, with gitleaks-format rules and reports.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_scan::walk::scan_tree;
use coffer_scan::{Config, Finding, Origin, Scanner, report};

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
    /// Threads reading files (0: one per core).
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
}

/// Runs a scan; the exit code is 0 (clean), `--exit-code` (findings) or 2
/// (bad rules or usage).
pub fn run(cmd: ScanCommand) -> anyhow::Result<u8> {
    let (opts, root) = match &cmd {
        ScanCommand::Dir { path, opts } => (opts, Some(path.as_path())),
        ScanCommand::Stdin { opts, .. } => (opts, None),
    };
    let scanner = match load(opts.config.as_deref(), root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return Ok(2);
        }
    };
    let mut findings = match &cmd {
        ScanCommand::Dir { path, opts } => {
            if !path.exists() {
                eprintln!("Error: {} does not exist", path.display());
                return Ok(2);
            }
            let report = scan_tree(&scanner, path, opts.max_file_size << 20, opts.threads);
            for e in &report.errors {
                eprintln!("warning: {e}");
            }
            if std::io::stderr().is_terminal() {
                eprintln!(
                    "scanned {} files, {:.1} MB ({} skipped)",
                    report.files,
                    report.bytes as f64 / 1e6,
                    report.skipped
                );
            }
            report.findings
        }
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
