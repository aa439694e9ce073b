//! `coffer sops edit` and `exec-file`: the only places plaintext reaches the
//! file system, always inside a private directory (0700, a 0600 file or
//! FIFO) that is removed when the command ends, however it ends short of a
//! kill.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use coffer_sops::document;
use coffer_sops::tree::IvStash;

use super::UsageError;
use super::sops::{
    Fail, FileType, data_key, emit_encrypted, emit_plain, file_type, load, open, parse_plain,
    write_output,
};

/// A directory only the owner can enter, removed with everything in it on
/// drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> anyhow::Result<Self> {
        let mut r = [0u8; 12];
        getrandom::fill(&mut r).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let path = std::env::temp_dir().join(format!("coffer-sops-{}", hex::encode(r)));
        // `create`, not `create_all`: an existing path (planted) is an error.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// A shell command with Ctrl-C back to its default: coffer itself ignores
/// it meanwhile, so it outlives the child and removes the plaintext.
fn shell(command: &str, arg: Option<&Path>) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).arg("sh");
    if let Some(a) = arg {
        cmd.arg(a);
    }
    // SAFETY: signal() is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd
}

/// Runs `cmd` with SIGINT ignored in coffer for as long as it runs.
fn run_guarded(mut cmd: Command) -> std::io::Result<std::process::ExitStatus> {
    // SAFETY: setting a signal disposition; restored right after.
    let previous = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = cmd.status();
    // SAFETY: as above.
    unsafe {
        libc::signal(libc::SIGINT, previous);
    }
    status
}

fn editor() -> String {
    ["SOPS_EDITOR", "EDITOR", "VISUAL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".into())
}

/// `coffer sops edit FILE`: decrypt into a private temporary file, open the
/// editor, and re-encrypt under the same data key only if the text changed
/// (unchanged values keep their ciphertext).
pub async fn edit(a: EditArgs) -> anyhow::Result<u8> {
    let file = a.file.as_path();
    let kind = file_type(file, a.input_type)?;
    if a.show_master_keys && !matches!(kind, FileType::Yaml | FileType::Json) {
        bail!(UsageError(
            "--show-master-keys needs a YAML or JSON file".into()
        ));
    }
    if !file.exists() {
        bail!(UsageError(format!(
            "{} does not exist: write the plaintext and run `coffer sops encrypt` to create it",
            file.display()
        )));
    }
    let (tree, meta) = load(file, kind)?;
    let key = data_key(&meta).await?;
    let mut stash = IvStash::default();
    let plain = document::decrypt_with_key(tree, &meta, &key, Some(&mut stash))?;
    // With --show-master-keys the `sops` block is shown too, to read.
    let shown = if a.show_master_keys {
        document::join(plain, &meta)
    } else {
        plain
    };
    let before = zeroize::Zeroizing::new(emit_plain(kind, &shown, a.indent)?);
    drop(shown);
    let dir = PrivateDir::new()?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.file(&name);
    write_private(&tmp, &before)?;
    let editor = editor();
    let edited = loop {
        let status = run_guarded(shell(&format!("{editor} \"$1\""), Some(&tmp)))
            .map_err(|e| Fail::NoEditor(format!("starting the editor {editor:?}: {e}")))?;
        if status.code() == Some(127) {
            // The shell found no such program.
            return Err(Fail::NoEditor(format!(
                "the editor {editor:?} was not found (set SOPS_EDITOR or EDITOR); {} was not changed",
                file.display()
            ))
            .into());
        }
        if !status.success() {
            bail!(
                "the editor {editor:?} failed ({status}); {} was not changed",
                file.display()
            );
        }
        let after = zeroize::Zeroizing::new(
            std::fs::read(&tmp).with_context(|| format!("reading {}", tmp.display()))?,
        );
        if *after == *before {
            // sops' documented code for "file has not been modified".
            eprintln!("{}: not changed", file.display());
            return Ok(200);
        }
        match parse_plain(kind, after.to_vec()) {
            Ok(mut tree) if a.show_master_keys => {
                if take_sops_block(&mut tree).as_ref() != Some(&meta.to_node()) {
                    bail!(
                        "the sops block was changed; master keys change with updatekeys, rotate or groups; {} was not changed",
                        file.display()
                    );
                }
                break tree;
            }
            Ok(tree) => break tree,
            Err(e) if std::io::stdin().is_terminal() => {
                eprint!(
                    "{e:#}\nPress Enter to correct it in the editor (Ctrl-C gives up the changes) "
                );
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
            }
            Err(e) => bail!(
                "the edited file does not parse ({e:#}); {} was not changed",
                file.display()
            ),
        }
    };
    let enc = document::reseal(edited, meta, &key, Some(&mut stash))?;
    let out = emit_encrypted(kind, &enc, a.indent)?;
    write_output(Some(file), out.as_bytes(), false)?;
    Ok(0)
}

/// Removes the `sops` block from every document of an edited tree; the
/// first one found.
fn take_sops_block(tree: &mut coffer_sops::tree::Node) -> Option<coffer_sops::tree::Node> {
    use coffer_sops::tree::{Item, Node};
    let mut found = None;
    let docs: Vec<&mut Vec<Item>> = match tree {
        Node::Map(items) => vec![items],
        Node::List(docs) => docs
            .iter_mut()
            .filter_map(|d| match d {
                Node::Map(items) => Some(items),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for items in docs {
        if let Some(at) = items
            .iter()
            .position(|i| matches!(i, Item::Pair(k, _) if k == "sops"))
            && let Item::Pair(_, v) = items.remove(at)
            && found.is_none()
        {
            found = Some(v);
        }
    }
    found
}

/// Flags of `coffer sops edit`.
#[derive(clap::Args, Debug)]
pub struct EditArgs {
    /// The encrypted file.
    file: PathBuf,
    /// Input format (default: from the extension).
    #[arg(long, value_enum)]
    input_type: Option<FileType>,
    /// Show the `sops` metadata block in the editor too (changes to it
    /// are refused: master keys change with `updatekeys`, `rotate` and
    /// `groups`).
    #[arg(short = 's', long)]
    show_master_keys: bool,
    /// Spaces per level in YAML and JSON (0: sops' layout).
    #[arg(long, default_value_t = 0)]
    indent: usize,
}

/// Flags of `coffer sops exec-file`.
#[derive(clap::Args, Debug)]
pub struct ExecFileArgs {
    /// The encrypted file.
    file: PathBuf,
    /// The command, run by `sh -c`; `{}` is replaced by the plaintext's path.
    command: String,
    /// Write a regular file (0600, removed afterwards) instead of a FIFO,
    /// for commands that read the file more than once or seek in it.
    #[arg(long)]
    no_fifo: bool,
    /// The plaintext file's name (default: the encrypted file's name).
    #[arg(long)]
    filename: Option<String>,
    /// Input format (default: from the extension).
    #[arg(long, value_enum)]
    input_type: Option<FileType>,
    /// The plaintext's format (default: the input's).
    #[arg(long, value_enum)]
    output_type: Option<FileType>,
}

/// `coffer sops exec-file FILE 'cmd {}'`: the command reads the plaintext
/// from a FIFO in a private directory (nothing is stored on disk), or from a
/// private file with `--no-fifo`; exits with the command's code.
pub async fn exec_file(a: ExecFileArgs) -> anyhow::Result<u8> {
    let kind = file_type(&a.file, a.input_type)?;
    let (plain, _) = open(&a.file, kind).await?;
    let bytes = zeroize::Zeroizing::new(emit_plain(a.output_type.unwrap_or(kind), &plain, 0)?);
    drop(plain);
    let name = match a.filename {
        Some(n) if n.contains('/') || n == ".." || n == "." || n.is_empty() => {
            bail!(UsageError("--filename must be a plain file name".into()))
        }
        Some(n) => n,
        None => a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into()),
    };
    let dir = PrivateDir::new()?;
    let path = dir.file(&name);
    if a.no_fifo {
        write_private(&path, &bytes)?;
    } else {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("creating the FIFO {}", path.display()));
        }
        let fifo = path.clone();
        // The writer thread owns the plaintext: no second copy.
        let data = bytes;
        // Opening blocks until the command opens it for reading; a command
        // that never does leaves this thread blocked until coffer exits.
        std::thread::spawn(move || {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                let _ = f.write_all(&data);
            }
        });
    }
    let quoted = format!("'{}'", path.to_string_lossy().replace('\'', "'\\''"));
    let command = a.command.replace("{}", &quoted);
    let status =
        run_guarded(shell(&command, None)).with_context(|| format!("running {:?}", a.command))?;
    drop(dir);
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}
