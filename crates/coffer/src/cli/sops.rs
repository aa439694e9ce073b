//! `coffer sops …`: SOPS-format files (YAML, JSON, dotenv, INI, whole-file
//! binary) with age or transit keys.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use coffer_sops::config::GroupKeys;
use coffer_sops::document::{self, EncryptOptions};
use coffer_sops::metadata::{KeyGroup, Metadata, Rule, VaultEntry};
use coffer_sops::{DataKey, age_keys, binary, dotenv, ini, json, yaml};
use serde_json::json as js;

use coffer_sops::tree::Node;

use super::{ClientArgs, UsageError};

/// SOPS subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SopsCommand {
    /// Encrypt a file's values (YAML, JSON, dotenv, INI) or the whole file (binary);
    /// prints the encrypted file unless --output is given.
    Encrypt(EncryptArgs),
    /// Decrypt a file and check its MAC; prints the plaintext unless
    /// --output is given.
    Decrypt(DecryptArgs),
    /// Re-encrypt a file under a new data key (all values, a new MAC),
    /// optionally adding or removing age recipients.
    Rotate(RotateArgs),
    /// Run a command with the file's top-level values as environment
    /// variables; nothing is written to disk.
    ExecEnv(ExecEnvArgs),
    /// Run a command that reads the decrypted file through a FIFO (or a
    /// private file with --no-fifo): `exec-file FILE 'cmd {}'`.
    ExecFile(super::sops_files::ExecFileArgs),
    /// Decrypt to a private temporary file, open $SOPS_EDITOR or $EDITOR,
    /// and re-encrypt if it changed (unchanged values keep their ciphertext).
    Edit(super::sops_files::EditArgs),
    /// Set one value in place: `set FILE '["db"]["password"]' '"new"'` (the
    /// value is JSON). Other values keep their ciphertext.
    Set {
        /// The encrypted file.
        file: PathBuf,
        /// The path, e.g. `["db"]["password"]`.
        path: String,
        /// The value as JSON (`'"text"'`, `5`, `{"a": 1}`); with
        /// --value-file a file holding it; absent with --value-stdin.
        #[arg(required_unless_present = "value_stdin")]
        value: Option<String>,
        /// VALUE names a file holding the JSON value (kept out of `ps`).
        #[arg(long, conflicts_with = "value_stdin")]
        value_file: bool,
        /// Read the JSON value from stdin (kept out of `ps`).
        #[arg(long)]
        value_stdin: bool,
        /// Leave the file untouched when the path already holds the value.
        #[arg(long)]
        idempotent: bool,
        /// Input format (default: from the extension).
        #[arg(long, value_enum)]
        input_type: Option<FileType>,
    },
    /// Give the file the master keys its `.sops.yaml` creation rule names
    /// now (the data key is re-wrapped; values, MAC and lastmodified stay).
    Updatekeys {
        /// The encrypted file.
        file: PathBuf,
        /// Creation rules (default: the nearest .sops.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not ask before writing.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Input format (default: from the extension).
        #[arg(long, value_enum)]
        input_type: Option<FileType>,
    },
    /// Whether a file is SOPS-encrypted: prints `{"encrypted":true}` or
    /// `{"encrypted":false}`.
    Filestatus {
        /// The file.
        file: PathBuf,
        /// Input format (default: from the extension).
        #[arg(long, value_enum)]
        input_type: Option<FileType>,
    },
    /// Add or delete key groups (the data key is split anew between them).
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Print a shell completion script for coffer (sops' commands are
    /// under `coffer sops`).
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the version.
    Version,
    /// Remove one value in place.
    Unset {
        /// The encrypted file.
        file: PathBuf,
        /// The path, e.g. `["db"]["password"]`.
        path: String,
        /// Input format (default: from the extension).
        #[arg(long, value_enum)]
        input_type: Option<FileType>,
    },
}

/// `coffer sops groups …`.
#[derive(clap::Subcommand, Debug)]
pub enum GroupsCommand {
    /// Add a key group made of the given keys.
    Add {
        /// The encrypted file.
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// age recipients of the new group (repeat, or comma-separated).
        #[arg(long, value_delimiter = ',')]
        age: Vec<String>,
        /// Transit key URIs of the new group (repeat, or comma-separated).
        #[arg(long, value_delimiter = ',')]
        hc_vault_transit: Vec<String>,
        /// How many groups rebuild the data key (default: the file's, else
        /// all of them).
        #[arg(long)]
        shamir_secret_sharing_threshold: Option<u64>,
        /// Write the result back to the file instead of stdout.
        #[arg(short = 'i', long)]
        in_place: bool,
    },
    /// Delete the key group at INDEX (0 is the first).
    #[command(visible_alias = "remove")]
    Delete {
        /// The encrypted file.
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// The group's index.
        index: usize,
        /// How many groups rebuild the data key (default: the file's, at
        /// most the number of groups left).
        #[arg(long)]
        shamir_secret_sharing_threshold: Option<u64>,
        /// Write the result back to the file instead of stdout.
        #[arg(short = 'i', long)]
        in_place: bool,
    },
}

/// Flags of `coffer sops rotate`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The encrypted file.
    file: PathBuf,
    /// Write the result back to the file (atomically) instead of stdout.
    #[arg(short = 'i', long)]
    in_place: bool,
    /// age recipients to add (comma-separated).
    #[arg(long)]
    add_age: Option<String>,
    /// age recipients to remove (comma-separated).
    #[arg(long)]
    rm_age: Option<String>,
    /// Spaces per level in YAML and JSON output (0: sops' layout).
    #[arg(long, default_value_t = 0)]
    indent: usize,
    /// Input format (default: from the extension).
    #[arg(long, value_enum)]
    input_type: Option<FileType>,
}

/// Flags of `coffer sops exec-env`.
#[derive(clap::Args, Debug)]
pub struct ExecEnvArgs {
    /// The encrypted file (YAML, JSON or dotenv, flat at the top level).
    file: PathBuf,
    /// Start the command with these variables only, not the current
    /// environment.
    #[arg(long)]
    pristine: bool,
    /// Replace coffer with the command (exec) instead of running it as a
    /// child.
    #[arg(long)]
    same_process: bool,
    /// Input format (default: from the extension).
    #[arg(long, value_enum)]
    input_type: Option<FileType>,
    /// The command: `-- cmd args...`, or one string run by `sh -c` as SOPS does.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// File formats coffer reads so far.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// YAML: structure and comments kept, values (and comments) encrypted.
    Yaml,
    /// JSON: structure in clear, values encrypted.
    Json,
    /// `KEY=value` lines.
    Dotenv,
    /// `[section]` and `key = value` lines.
    Ini,
    /// Any file as one value.
    Binary,
}

/// Flags of `coffer sops encrypt`.
#[derive(clap::Args, Debug)]
pub struct EncryptArgs {
    /// The plaintext file ("-" for stdin, which needs --input-type).
    file: PathBuf,
    /// age recipients, comma-separated (default: $SOPS_AGE_RECIPIENTS).
    #[arg(long)]
    age: Option<String>,
    /// Transit keys as https://host:8200/v1/<mount>/keys/<name>,
    /// comma-separated (default: $SOPS_VAULT_URIS); the token is
    /// $COFFER_TOKEN, $VAULT_TOKEN or ~/.vault-token.
    #[arg(long)]
    hc_vault_transit: Option<String>,
    /// Keys ending with this stay in clear (default `_unencrypted`).
    #[arg(long, group = "rule")]
    unencrypted_suffix: Option<String>,
    /// Only keys ending with this are encrypted.
    #[arg(long, group = "rule")]
    encrypted_suffix: Option<String>,
    /// Keys matching this stay in clear.
    #[arg(long, group = "rule")]
    unencrypted_regex: Option<String>,
    /// Only keys matching this are encrypted.
    #[arg(long, group = "rule")]
    encrypted_regex: Option<String>,
    /// Values under a comment matching this stay in clear.
    #[arg(long, group = "rule")]
    unencrypted_comment_regex: Option<String>,
    /// Only values under a comment matching this are encrypted.
    #[arg(long, group = "rule")]
    encrypted_comment_regex: Option<String>,
    /// The MAC covers only encrypted values.
    #[arg(long)]
    mac_only_encrypted: bool,
    /// With key groups (from .sops.yaml): how many groups rebuild the data
    /// key (default: the rule's shamir_threshold, else all).
    #[arg(long)]
    shamir_secret_sharing_threshold: Option<u64>,
    /// Creation rules (default: the nearest .sops.yaml above the current
    /// directory), used when no --age or --hc-vault-transit is given.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the file even if a value that looks like a secret (a password
    /// key, a token prefix, a private key) would stay in clear.
    #[arg(long)]
    allow_plaintext: bool,
    #[command(flatten)]
    formats: Formats,
    /// Write here (atomically, mode 0644) instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Replace FILE with the result (atomically), as `sops -i`.
    #[arg(short = 'i', long, conflicts_with = "output")]
    in_place: bool,
}

/// The formats of `encrypt` and `decrypt`.
#[derive(clap::Args, Debug)]
pub struct Formats {
    /// Input format (default: from the extension: `.yaml`/`.yml`, `.json`,
    /// `.env`, `.ini`; anything else is binary).
    #[arg(long, value_enum)]
    input_type: Option<FileType>,
    /// Output format (default: the input's; `binary` writes a binary
    /// file's bytes, or a document's `data` value).
    #[arg(long, value_enum)]
    output_type: Option<FileType>,
    /// Spaces per level in YAML and JSON output (0: sops' layout).
    #[arg(long, default_value_t = 0)]
    indent: usize,
    /// Use this name, not FILE's, to pick the format (and, to encrypt, the
    /// `.sops.yaml` creation rule): for stdin or temporary files.
    #[arg(long)]
    filename_override: Option<PathBuf>,
}

impl Formats {
    /// The input's format, the output's, and the name rules match.
    fn resolve<'a>(&'a self, file: &'a Path) -> anyhow::Result<(FileType, FileType, &'a Path)> {
        let named = self.filename_override.as_deref().unwrap_or(file);
        let kind = file_type(named, self.input_type)?;
        Ok((kind, self.output_type.unwrap_or(kind), named))
    }
}

/// Flags of `coffer sops decrypt`.
#[derive(clap::Args, Debug)]
pub struct DecryptArgs {
    /// The encrypted file ("-" for stdin).
    file: PathBuf,
    #[command(flatten)]
    formats: Formats,
    /// Decrypt even when the MAC does not match (to recover a file whose
    /// values were edited by hand); says so on stderr.
    #[arg(long)]
    ignore_mac: bool,
    /// Which master keys to try first (`age`, `hc_vault`; comma-separated;
    /// default: $SOPS_DECRYPTION_ORDER, else age first).
    #[arg(long)]
    decryption_order: Option<String>,
    /// Accepted as sops accepts it: decrypting needs no creation rules.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print only this value, e.g. '["db"]["password"]'.
    #[arg(long)]
    extract: Option<String>,
    /// Write here (atomically, mode 0600: it is plaintext) instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Replace FILE with the plaintext (atomically, mode 0600), as `sops -i`.
    #[arg(short = 'i', long, conflicts_with_all = ["output", "extract"])]
    in_place: bool,
}

pub(super) fn file_type(path: &Path, given: Option<FileType>) -> anyhow::Result<FileType> {
    if let Some(t) = given {
        return Ok(t);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".env") || name == ".env" {
        return Ok(FileType::Dotenv);
    }
    Ok(match ext.as_str() {
        "json" => FileType::Json,
        "yaml" | "yml" => FileType::Yaml,
        "ini" => FileType::Ini,
        _ if path == Path::new("-") => {
            bail!(UsageError("reading stdin needs --input-type".into()))
        }
        _ => FileType::Binary,
    })
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b)?;
        return Ok(b);
    }
    std::fs::read(path).map_err(|e| Fail::Read(format!("reading {}: {e}", path.display())).into())
}

/// Where a result goes: FILE itself with `-i`, else `--output`, else stdout.
fn destination<'a>(
    file: &'a Path,
    in_place: bool,
    output: Option<&'a Path>,
) -> anyhow::Result<Option<&'a Path>> {
    if !in_place {
        return Ok(output);
    }
    if file == Path::new("-") {
        bail!(UsageError("-i needs a file, not stdin".into()));
    }
    Ok(Some(file))
}

pub(super) fn write_output(path: Option<&Path>, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    match path {
        Some(p) if private => super::private_file::write(p, bytes),
        _ => stream_output(path, |w| Ok(w.write_all(bytes)?)),
    }
    .map_err(|e| match path {
        Some(p) => Fail::Write(format!("writing {}: {e:#}", p.display())).into(),
        None => e,
    })
}

/// Writes to stdout or, atomically, to a file (through a temporary file
/// beside it) as `write` produces the bytes.
fn stream_output(
    path: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match path {
        None => {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            write(&mut out)?;
            out.flush()?;
            Ok(())
        }
        Some(p) => {
            let tmp = p.with_extension("coffer-tmp");
            let result = (|| {
                let f = std::fs::File::create(&tmp)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
                write(&mut out)?;
                out.flush()?;
                std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
    }
}

/// Failures that have their own exit code in sops.
#[derive(Debug, thiserror::Error)]
pub(super) enum Fail {
    /// The input could not be read (2).
    #[error("{0}")]
    Read(String),
    /// The output could not be written (3).
    #[error("{0}")]
    Write(String),
    /// The configuration could not be read (5).
    #[error("{0}")]
    Config(String),
    /// No master key to encrypt with (111).
    #[error("{0}")]
    NoKey(String),
    /// No master key gave the data key (128).
    #[error("{0}")]
    Retrieve(String),
    /// A path (`["a"][0]`) that does not parse (91).
    #[error("{0}")]
    TreePath(String),
    /// A `set` value that is not JSON (7).
    #[error("{0}")]
    SetValue(String),
    /// No editor could be started (201).
    #[error("{0}")]
    NoEditor(String),
}

/// sops' exit code for an error (its `codes` package); 1 for the rest.
fn exit_code(e: &anyhow::Error) -> u8 {
    use coffer_sops::SopsError as S;
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Fail>() {
            return match f {
                Fail::Read(_) => 2,
                Fail::Write(_) => 3,
                Fail::Config(_) => 5,
                Fail::SetValue(_) => 7,
                Fail::TreePath(_) => 91,
                Fail::NoKey(_) => 111,
                Fail::Retrieve(_) => 128,
                Fail::NoEditor(_) => 201,
            };
        }
        if let Some(s) = cause.downcast_ref::<S>() {
            return match s {
                S::MacUnreadable => 24,
                S::Decrypt { .. } | S::BadType { .. } | S::Unreadable { .. } => 25,
                S::MacMismatch { .. } => 51,
                S::NoMac => 52,
                S::AlreadyEncrypted(_) => 203,
                S::Malformed(_) | S::Random(_) => 1,
            };
        }
    }
    1
}

/// Runs a sops command; errors exit with sops' codes (51 for a MAC
/// mismatch, 128 when no key opens the file, ...), usage errors with 1.
pub async fn run(cmd: SopsCommand) -> anyhow::Result<u8> {
    match run_command(cmd).await {
        Err(e) if e.downcast_ref::<UsageError>().is_none() => {
            eprintln!("Error: {e:#}");
            Ok(exit_code(&e))
        }
        other => other,
    }
}

async fn run_command(cmd: SopsCommand) -> anyhow::Result<u8> {
    match cmd {
        SopsCommand::Encrypt(a) => encrypt(a).await,
        SopsCommand::Decrypt(a) => decrypt(a).await,
        SopsCommand::Rotate(a) => rotate(a).await,
        SopsCommand::ExecEnv(a) => exec_env(a).await,
        SopsCommand::ExecFile(a) => super::sops_files::exec_file(a).await,
        SopsCommand::Edit(a) => super::sops_files::edit(a).await,
        SopsCommand::Set {
            file,
            path,
            value,
            value_file,
            value_stdin,
            idempotent,
            input_type,
        } => {
            let kind = file_type(&file, input_type)?;
            let steps =
                coffer_sops::path::parse(&path).map_err(|e| Fail::TreePath(e.to_string()))?;
            let text = zeroize::Zeroizing::new(match (value, value_file, value_stdin) {
                (Some(_), _, true) => {
                    bail!(UsageError(
                        "give the value on stdin or as an argument, not both".into()
                    ))
                }
                (None, _, true) => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
                (Some(f), true, false) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading the value from {f}"))?,
                (Some(v), false, false) => v,
                (None, _, false) => bail!(UsageError("no value given".into())),
            });
            let value = json::parse_value(text.trim_end()).map_err(|e| {
                Fail::SetValue(format!(
                    "the value must be JSON (a string is '\"text\"'): {e}"
                ))
            })?;
            change(&file, kind, |t| {
                if idempotent && coffer_sops::path::get(t, &steps).is_ok_and(|v| *v == value) {
                    return Ok(false);
                }
                coffer_sops::path::set(t, &steps, value)?;
                Ok(true)
            })
            .await
        }
        SopsCommand::Filestatus { file, input_type } => {
            let kind = file_type(&file, input_type)?;
            let encrypted = match load(&file, kind) {
                Ok(_) => true,
                Err(e) if e.chain().any(|c| c.downcast_ref::<Fail>().is_some()) => return Err(e),
                Err(_) => false,
            };
            println!("{{\"encrypted\":{encrypted}}}");
            Ok(0)
        }
        SopsCommand::Groups(g) => groups(g).await,
        // The binary prints it: only it knows the whole command line.
        SopsCommand::Completion { .. } => bail!("completion is printed by the coffer binary"),
        SopsCommand::Version => {
            println!(
                "coffer sops {} (the SOPS file format of sops 3.11)",
                env!("CARGO_PKG_VERSION")
            );
            Ok(0)
        }
        SopsCommand::Updatekeys {
            file,
            config,
            yes,
            input_type,
        } => updatekeys(file, config, yes, input_type).await,
        SopsCommand::Unset {
            file,
            path,
            input_type,
        } => {
            let kind = file_type(&file, input_type)?;
            let steps =
                coffer_sops::path::parse(&path).map_err(|e| Fail::TreePath(e.to_string()))?;
            change(&file, kind, |t| {
                coffer_sops::path::unset(t, &steps)?;
                Ok(true)
            })
            .await
        }
    }
}

/// The creation rules in force: `--config`, else $SOPS_CONFIG, else the
/// nearest `.sops.yaml` above the current directory (none: `None`).
fn sops_config(
    flag: Option<&Path>,
) -> anyhow::Result<Option<(PathBuf, coffer_sops::config::Config)>> {
    let path = match flag {
        Some(p) => Some(p.to_path_buf()),
        None => match std::env::var_os("SOPS_CONFIG").filter(|v| !v.is_empty()) {
            Some(p) => Some(PathBuf::from(p)),
            None => coffer_sops::config::find(&std::env::current_dir()?),
        },
    };
    match path {
        None => Ok(None),
        Some(p) => {
            let config =
                coffer_sops::config::Config::load(&p).map_err(|e| Fail::Config(e.to_string()))?;
            Ok(Some((p, config)))
        }
    }
}

/// A comma-separated flag, else the environment variable.
fn list(flag: Option<String>, env: &str) -> Vec<String> {
    split(&flag.or_else(|| std::env::var(env).ok()).unwrap_or_default())
}

fn split(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A client for the transit server named by an entry (the address comes
/// from the key, never from VAULT_ADDR, as in SOPS).
fn transit_client(e: &VaultEntry) -> anyhow::Result<coffer_client::Client> {
    let args = ClientArgs::for_address(Some(e.vault_address.clone()));
    let env_token = ["COFFER_TOKEN", "VAULT_TOKEN"]
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()));
    let token = env_token.or_else(|| {
        let home = std::env::var_os("HOME")?;
        std::fs::read_to_string(Path::new(&home).join(".vault-token"))
            .ok()
            .map(|t| t.trim().to_owned())
    });
    match token {
        Some(t) => args.client_with_token(Some(t)),
        None => args.client(),
    }
}

async fn transit_wrap(e: &VaultEntry, part: &[u8]) -> anyhow::Result<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = transit_client(e)?
        .write(
            &format!("{}/encrypt/{}", e.engine_path, e.key_name),
            &js!({ "plaintext": b64.encode(part) }),
        )
        .await
        .with_context(|| {
            format!(
                "transit key {}/{} at {}",
                e.engine_path, e.key_name, e.vault_address
            )
        })?
        .context("transit encrypt returned nothing")?;
    body["data"]["ciphertext"]
        .as_str()
        .map(str::to_owned)
        .context("transit encrypt returned no ciphertext")
}

async fn transit_unwrap(e: &VaultEntry) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let body = transit_client(e)?
        .write(
            &format!("{}/decrypt/{}", e.engine_path, e.key_name),
            &js!({ "ciphertext": e.enc }),
        )
        .await?
        .context("transit decrypt returned nothing")?;
    let plain = body["data"]["plaintext"]
        .as_str()
        .context("transit decrypt returned no plaintext")?;
    Ok(zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(plain)
            .context("transit plaintext is not base64")?,
    ))
}

/// The data key: each key group's part from an age identity or a transit
/// server (the first key of the group that works, age first unless
/// $SOPS_DECRYPTION_ORDER says otherwise), combined when the file has
/// several groups.
pub(super) async fn data_key(meta: &Metadata) -> anyhow::Result<DataKey> {
    data_key_in_order(meta, &decryption_order(None)).await
}

/// [`data_key`] trying key types in `order` (`age`, `hc_vault`).
async fn data_key_in_order(meta: &Metadata, order: &[String]) -> anyhow::Result<DataKey> {
    let vault_first =
        order.iter().position(|o| o == "hc_vault") < order.iter().position(|o| o == "age");
    let identities = age_keys::load_identities()?;
    let mut parts = Vec::new();
    let mut errors = Vec::new();
    let grouped = meta.groups.len() > 1;
    for (i, g) in meta.groups.iter().enumerate() {
        let label = if grouped {
            format!("key group {}: ", i + 1)
        } else {
            String::new()
        };
        let mut part = None;
        if vault_first {
            part = transit_part(g, &label, &mut errors).await;
        }
        if part.is_none() {
            part = document::age_part(g, &identities);
        }
        if part.is_none() && !g.age.is_empty() {
            errors.push(format!(
                "{label}no age identity found (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, ~/.config/sops/age/keys.txt, SOPS_AGE_SSH_PRIVATE_KEY_FILE, ~/.ssh/id_ed25519, ~/.ssh/id_rsa) opens it; it is for {}",
                g.age.iter().map(|a| a.recipient.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if part.is_none() && !vault_first {
            part = transit_part(g, &label, &mut errors).await;
        }
        parts.push(part);
    }
    if parts.iter().all(Option::is_none) {
        if errors.is_empty() {
            return Err(Fail::Retrieve(
                "the file has no age or transit master key coffer can use".into(),
            )
            .into());
        }
        return Err(Fail::Retrieve(format!(
            "no master key could decrypt the data key:\n  {}",
            errors.join("\n  ")
        ))
        .into());
    }
    document::assemble_key(meta, parts).map_err(|e| {
        if errors.is_empty() {
            Fail::Retrieve(e.to_string()).into()
        } else {
            Fail::Retrieve(format!("{e}:\n  {}", errors.join("\n  "))).into()
        }
    })
}

/// A group's part from the first of its transit keys that answers.
async fn transit_part(
    g: &KeyGroup,
    label: &str,
    errors: &mut Vec<String>,
) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    for e in &g.hc_vault {
        match transit_unwrap(e).await {
            Ok(p) => return Some(p),
            Err(err) => errors.push(format!("{label}transit key {}: {err:#}", e.uri())),
        }
    }
    None
}

/// The data key's parts wrapped for each group's keys (transit keys are
/// asked to encrypt theirs).
async fn wrap_groups(
    key: &DataKey,
    groups: &[GroupKeys],
    threshold: Option<u64>,
) -> anyhow::Result<Vec<KeyGroup>> {
    let parts = document::key_parts(key, groups.len(), threshold)?;
    let mut out = Vec::new();
    for (g, part) in groups.iter().zip(&parts) {
        let mut hc_vault = Vec::new();
        for uri in &g.hc_vault {
            let mut e = VaultEntry::from_uri(uri)?;
            e.enc = transit_wrap(&e, part).await?;
            e.created_at = document::now_rfc3339()?;
            hc_vault.push(e);
        }
        out.push(KeyGroup {
            age: document::age_entries(part, &g.age)?,
            hc_vault,
            other: Vec::new(),
        });
    }
    Ok(out)
}

async fn encrypt(a: EncryptArgs) -> anyhow::Result<u8> {
    let (kind, out_kind, named) = a.formats.resolve(&a.file)?;
    let dest = destination(&a.file, a.in_place, a.output.as_deref())?;
    let mut groups = vec![GroupKeys {
        age: list(a.age.clone(), "SOPS_AGE_RECIPIENTS"),
        hc_vault: list(a.hc_vault_transit.clone(), "SOPS_VAULT_URIS"),
    }];
    let mut from_config: Option<coffer_sops::config::Creation> = None;
    let config = if groups[0].is_empty() {
        sops_config(a.config.as_deref())?
    } else {
        None
    };
    if let Some((path, config)) = config {
        let Some(choice) = config.choose(named)? else {
            return Err(Fail::Config(format!(
                "{}: no creation rule matches {}",
                path.display(),
                named.display()
            ))
            .into());
        };
        if !choice.also_matched.is_empty() {
            let others: Vec<String> = choice
                .also_matched
                .iter()
                .map(|i| (i + 1).to_string())
                .collect();
            eprintln!(
                "warning: {}: creation rules {} also match {}; rule {} is used, as SOPS uses the first match",
                path.display(),
                others.join(", "),
                named.display(),
                choice.index + 1
            );
        }
        groups = choice.creation.groups.clone();
        from_config = Some(choice.creation);
    }
    if groups.iter().all(GroupKeys::is_empty) {
        return Err(Fail::NoKey(
            "no master key: give --age age1… or --hc-vault-transit https://host:8200/v1/transit/keys/name (comma-separated), or set SOPS_AGE_RECIPIENTS / SOPS_VAULT_URIS, or a .sops.yaml creation rule".into()
        ).into());
    }
    let given = [
        a.unencrypted_suffix.map(Rule::UnencryptedSuffix),
        a.encrypted_suffix.map(Rule::EncryptedSuffix),
        a.unencrypted_regex.map(Rule::UnencryptedRegex),
        a.encrypted_regex.map(Rule::EncryptedRegex),
        a.unencrypted_comment_regex
            .map(Rule::UnencryptedCommentRegex),
        a.encrypted_comment_regex.map(Rule::EncryptedCommentRegex),
    ]
    .into_iter()
    .flatten()
    .next();
    let rule = match given {
        Some(r) => r,
        None => from_config
            .as_ref()
            .and_then(|c| c.rule.clone())
            .unwrap_or_default(),
    };
    let mac_only_encrypted =
        a.mac_only_encrypted || from_config.as_ref().is_some_and(|c| c.mac_only_encrypted);
    if kind == FileType::Binary && matches!(out_kind, FileType::Binary | FileType::Json) {
        // A whole file is encrypted while it is read, never held whole.
        let key = DataKey::random()?;
        let groups = wrap_groups(&key, &groups, a.shamir_secret_sharing_threshold).await?;
        let opts = EncryptOptions {
            shamir_threshold: a.shamir_secret_sharing_threshold,
            ..EncryptOptions::default()
        };
        let input: Box<dyn Read> = if a.file == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(
                std::fs::File::open(&a.file)
                    .with_context(|| format!("reading {}", a.file.display()))?,
            )
        };
        stream_output(dest, |w| {
            Ok(binary::encrypt_stream(input, w, &key, groups, &opts)?)
        })?;
        return Ok(0);
    }
    let tree = parse_plain(kind, read_input(&a.file)?)?;
    let plan = Plan {
        shamir_threshold: a
            .shamir_secret_sharing_threshold
            .or_else(|| from_config.as_ref().and_then(|c| c.shamir_threshold)),
        groups,
        rule,
        mac_only_encrypted,
        indent: a.formats.indent,
    };
    let text = seal(kind, out_kind, tree, plan, a.allow_plaintext, &a.file).await?;
    write_output(dest, text.as_bytes(), false)?;
    Ok(0)
}

/// A plaintext file's tree.
pub(super) fn parse_plain(kind: FileType, input: Vec<u8>) -> anyhow::Result<Node> {
    // The plaintext is parsed where it lies and wiped afterwards.
    let mut input = zeroize::Zeroizing::new(input);
    fn text(b: &[u8]) -> anyhow::Result<&str> {
        std::str::from_utf8(b).context("the file is not UTF-8")
    }
    Ok(match kind {
        FileType::Binary => binary::parse(std::mem::take(&mut *input)),
        FileType::Yaml => yaml::parse(text(&input)?)?,
        FileType::Json => json::parse(text(&input)?)?,
        FileType::Dotenv => {
            let t = dotenv::parse(text(&input)?)?;
            dotenv::check_plain(&t)?;
            t
        }
        FileType::Ini => ini::parse(text(&input)?)?,
    })
}

/// A decrypted tree in its file's format; `indent` spaces per level for
/// YAML and JSON (0: sops' layout, 4 spaces and tabs).
pub(super) fn emit_plain(kind: FileType, plain: &Node, indent: usize) -> anyhow::Result<Vec<u8>> {
    Ok(match kind {
        FileType::Yaml => yaml_text(plain, indent)?.into_bytes(),
        FileType::Json => json::emit_indented(plain, indent).into_bytes(),
        FileType::Dotenv => dotenv::emit(plain)?.into_bytes(),
        FileType::Ini => ini::emit(plain)?.into_bytes(),
        FileType::Binary => binary::emit(plain)?,
    })
}

/// Which keys and rule a file is encrypted with.
struct Plan {
    groups: Vec<GroupKeys>,
    shamir_threshold: Option<u64>,
    rule: Rule,
    mac_only_encrypted: bool,
    /// Output indentation (0: sops' default).
    indent: usize,
}

/// Encrypts a plain tree (read as `kind`) under a fresh data key for the
/// plan's keys and writes it as `out_kind`.
async fn seal(
    kind: FileType,
    out_kind: FileType,
    tree: Node,
    plan: Plan,
    allow_plaintext: bool,
    file: &Path,
) -> anyhow::Result<String> {
    let key = DataKey::random()?;
    let groups = wrap_groups(&key, &plan.groups, plan.shamir_threshold).await?;
    let opts = match kind {
        FileType::Yaml | FileType::Json | FileType::Dotenv | FileType::Ini => EncryptOptions {
            rule: plan.rule,
            mac_only_encrypted: plan.mac_only_encrypted,
            shamir_threshold: plan.shamir_threshold,
        },
        // SOPS applies no rule to binary files.
        FileType::Binary => EncryptOptions {
            shamir_threshold: plan.shamir_threshold,
            ..EncryptOptions::default()
        },
    };
    if !allow_plaintext {
        let exposed =
            coffer_sops::guard::exposed_secrets(&tree, &opts.rule.rules(opts.mac_only_encrypted)?);
        if !exposed.is_empty() {
            bail!(UsageError(format!(
                "refusing to write {}: these values look like secrets but would stay in clear under the rule {:?}: {}; fix the rule, or pass --allow-plaintext",
                file.display(),
                opts.rule,
                exposed.join(", ")
            )));
        }
    }
    let enc = document::encrypt_with_key(tree, &opts, groups, &key, None)?;
    emit_encrypted(out_kind, &enc, plan.indent)
}

/// Reads an encrypted file: its (still encrypted) tree and its metadata.
pub(super) fn load(file: &Path, kind: FileType) -> anyhow::Result<(Node, Metadata)> {
    let input = read_input(file)?;
    let text = std::str::from_utf8(&input).context("the encrypted file is not UTF-8")?;
    let parsed = match kind {
        FileType::Yaml => yaml::parse(text)?,
        FileType::Dotenv => dotenv::parse(text)?,
        FileType::Ini => ini::parse(text)?,
        FileType::Json | FileType::Binary => json::parse(text)?,
    };
    Ok(document::split(parsed)?)
}

/// An encrypted tree in its file's format (`indent` as for [`emit_plain`]).
pub(super) fn emit_encrypted(kind: FileType, enc: &Node, indent: usize) -> anyhow::Result<String> {
    Ok(match kind {
        FileType::Yaml => yaml_text(enc, indent)?,
        FileType::Dotenv => dotenv::emit(enc)?,
        FileType::Ini => ini::emit(enc)?,
        FileType::Json | FileType::Binary => json::emit_indented(enc, indent),
    })
}

fn yaml_text(tree: &Node, indent: usize) -> anyhow::Result<String> {
    Ok(if indent == 0 {
        yaml::emit(tree)?
    } else {
        yaml::emit_indented(tree, indent)?
    })
}

/// Reads, decrypts and checks an encrypted file: the plain tree and its metadata.
pub(super) async fn open(file: &Path, kind: FileType) -> anyhow::Result<(Node, Metadata)> {
    let (tree, meta) = load(file, kind)?;
    let key = data_key(&meta).await?;
    let plain = document::decrypt_with_key(tree, &meta, &key, None)?;
    Ok((plain, meta))
}

async fn updatekeys(
    file: PathBuf,
    config: Option<PathBuf>,
    yes: bool,
    input_type: Option<FileType>,
) -> anyhow::Result<u8> {
    let kind = file_type(&file, input_type)?;
    let Some((path, config)) = sops_config(config.as_deref())? else {
        return Err(Fail::Config(
            "no .sops.yaml found above the current directory (give --config or SOPS_CONFIG)".into(),
        )
        .into());
    };
    let choice = config.choose(&file)?.with_context(|| {
        format!(
            "{}: no creation rule matches {}",
            path.display(),
            file.display()
        )
    })?;
    let (tree, mut meta) = load(&file, kind)?;
    let key = data_key(&meta).await?;
    document::check_key(&meta, &key)?;
    let old: Vec<String> = meta.groups.iter().flat_map(KeyGroup::names).collect();
    let new: Vec<String> = choice
        .creation
        .groups
        .iter()
        .flat_map(GroupKeys::names)
        .collect();
    let old_shape: Vec<usize> = meta.groups.iter().map(|g| g.names().len()).collect();
    let new_shape: Vec<usize> = choice
        .creation
        .groups
        .iter()
        .map(|g| g.names().len())
        .collect();
    let threshold = choice
        .creation
        .shamir_threshold
        .or(meta.shamir_threshold)
        .map(|t| t.min(choice.creation.groups.len() as u64));
    let added: Vec<&String> = new.iter().filter(|k| !old.contains(k)).collect();
    let removed: Vec<&String> = old.iter().filter(|k| !new.contains(k)).collect();
    let regrouped =
        old_shape != new_shape || (meta.groups.len() > 1 && threshold != meta.shamir_threshold);
    if added.is_empty() && removed.is_empty() && !regrouped {
        eprintln!("{}: already up to date", file.display());
        return Ok(0);
    }
    for k in &added {
        eprintln!("+ {k}");
    }
    for k in &removed {
        eprintln!("- {k}");
    }
    if regrouped {
        eprintln!(
            "key groups: {} -> {} (threshold {})",
            meta.groups.len(),
            choice.creation.groups.len(),
            threshold.map_or("-".into(), |t| t.to_string())
        );
    }
    if new.is_empty() {
        bail!(UsageError(
            "the creation rule names no master key coffer supports".into()
        ));
    }
    use std::io::IsTerminal;
    if !yes && std::io::stdin().is_terminal() {
        eprint!("Apply these changes to {}? [y/N] ", file.display());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("not changed");
            return Ok(1);
        }
    }
    // The same data key, split anew when there are several groups.
    meta.groups = wrap_groups(&key, &choice.creation.groups, threshold).await?;
    meta.shamir_threshold = if meta.groups.len() > 1 {
        Some(threshold.unwrap_or(meta.groups.len() as u64))
    } else {
        None
    };
    let out = emit_encrypted(kind, &document::join(tree, &meta), 0)?;
    write_output(Some(&file), out.as_bytes(), false)?;
    eprintln!("{}: master keys updated", file.display());
    Ok(0)
}

/// `groups add|delete`: the data key split anew between the groups the
/// file will have; values, MAC and lastmodified stay.
async fn groups(cmd: GroupsCommand) -> anyhow::Result<u8> {
    let (file, in_place, threshold) = match &cmd {
        GroupsCommand::Add {
            file,
            in_place,
            shamir_secret_sharing_threshold,
            ..
        }
        | GroupsCommand::Delete {
            file,
            in_place,
            shamir_secret_sharing_threshold,
            ..
        } => (file.clone(), *in_place, *shamir_secret_sharing_threshold),
    };
    let kind = file_type(&file, None)?;
    let (tree, mut meta) = load(&file, kind)?;
    let key = data_key(&meta).await?;
    document::check_key(&meta, &key)?;
    let mut groups: Vec<GroupKeys> = meta
        .groups
        .iter()
        .map(|g| GroupKeys {
            age: g.age.iter().map(|e| e.recipient.clone()).collect(),
            hc_vault: g.hc_vault.iter().map(VaultEntry::uri).collect(),
        })
        .collect();
    if meta.groups.iter().any(|g| !g.other.is_empty()) {
        bail!(UsageError(
            "the file has master keys coffer cannot wrap a data key for (PGP or cloud KMS); change its groups with sops".into()
        ));
    }
    match cmd {
        GroupsCommand::Add {
            age,
            hc_vault_transit,
            ..
        } => {
            let new = GroupKeys {
                age: age.into_iter().filter(|a| !a.trim().is_empty()).collect(),
                hc_vault: hc_vault_transit
                    .into_iter()
                    .filter(|a| !a.trim().is_empty())
                    .collect(),
            };
            if new.is_empty() {
                bail!(UsageError(
                    "the new group needs at least one key: --age or --hc-vault-transit".into()
                ));
            }
            groups.push(new);
        }
        GroupsCommand::Delete { index, .. } => {
            if index >= groups.len() {
                bail!(UsageError(format!(
                    "the file has {} key group(s); index {index} is not one of them (0 is the first)",
                    groups.len()
                )));
            }
            if groups.len() == 1 {
                bail!(UsageError(
                    "the file's only key group cannot be deleted".into()
                ));
            }
            groups.remove(index);
        }
    }
    let n = groups.len() as u64;
    let threshold = threshold.or(meta.shamir_threshold).map(|t| t.min(n));
    meta.groups = wrap_groups(&key, &groups, threshold).await?;
    meta.shamir_threshold = (n > 1).then(|| threshold.unwrap_or(n));
    let out = emit_encrypted(kind, &document::join(tree, &meta), 0)?;
    write_output(in_place.then_some(file.as_path()), out.as_bytes(), false)?;
    Ok(0)
}

/// `set`/`unset`: decrypt, change one path, re-encrypt under the same data
/// key; values that did not change keep their ciphertext.
async fn change(
    file: &Path,
    kind: FileType,
    edit: impl FnOnce(&mut Node) -> anyhow::Result<bool>,
) -> anyhow::Result<u8> {
    if kind == FileType::Binary {
        bail!(UsageError(
            "set and unset need a YAML, JSON or dotenv file".into()
        ));
    }
    let (tree, meta) = load(file, kind)?;
    let key = data_key(&meta).await?;
    let mut stash = coffer_sops::tree::IvStash::default();
    let mut plain = document::decrypt_with_key(tree, &meta, &key, Some(&mut stash))?;
    if !edit(&mut plain)? {
        // Nothing to change: not even lastmodified moves.
        return Ok(0);
    }
    let enc = document::reseal(plain, meta, &key, Some(&mut stash))?;
    let out = emit_encrypted(kind, &enc, 0)?;
    write_output(Some(file), out.as_bytes(), false)?;
    Ok(0)
}

async fn decrypt(a: DecryptArgs) -> anyhow::Result<u8> {
    let (kind, out_kind, _) = a.formats.resolve(&a.file)?;
    let dest = destination(&a.file, a.in_place, a.output.as_deref())?;
    if let Some(c) = &a.config {
        // Decrypting needs no creation rule, but a broken file is still
        // an error, as in sops.
        coffer_sops::config::Config::load(c).map_err(|e| Fail::Config(e.to_string()))?;
    }
    let order = decryption_order(a.decryption_order.as_deref());
    if kind == FileType::Binary
        && out_kind == FileType::Binary
        && a.extract.is_none()
        && !a.ignore_mac
    {
        // A whole file is decoded, decrypted and hashed piece by piece into
        // one buffer, checked, then written.
        let input = read_input(&a.file)?;
        let text = std::str::from_utf8(&input).context("the encrypted file is not UTF-8")?;
        if let Some((value, rest)) = binary::split_encrypted(text) {
            let (_, meta) = document::split(rest)?;
            let key = data_key_in_order(&meta, &order).await?;
            let plain = binary::decrypt_data(value, &meta, &key)?;
            write_output(dest, &plain, true)?;
            return Ok(0);
        }
    }
    let (tree, meta) = load(&a.file, kind)?;
    let key = data_key_in_order(&meta, &order).await?;
    let plain = if a.ignore_mac {
        let (plain, mac) = document::decrypt_ignoring_mac(tree, &meta, &key)?;
        if let Some(e) = mac {
            eprintln!("warning: --ignore-mac: {e}");
        }
        plain
    } else {
        document::decrypt_with_key(tree, &meta, &key, None)?
    };
    let bytes = zeroize::Zeroizing::new(match &a.extract {
        Some(path) => extract(&plain, path, out_kind)?,
        None => emit_plain(out_kind, &plain, a.formats.indent)?,
    });
    write_output(dest, &bytes, true)?;
    Ok(0)
}

/// Master key types in the order to try them: the flag, else
/// $SOPS_DECRYPTION_ORDER, else age first (sops' default).
fn decryption_order(flag: Option<&str>) -> Vec<String> {
    let given = flag
        .map(str::to_owned)
        .or_else(|| std::env::var("SOPS_DECRYPTION_ORDER").ok());
    let mut order = split(&given.unwrap_or_default());
    for t in ["age", "hc_vault"] {
        if !order.iter().any(|o| o == t) {
            order.push(t.to_owned());
        }
    }
    order
}

async fn rotate(a: RotateArgs) -> anyhow::Result<u8> {
    let kind = file_type(&a.file, a.input_type)?;
    let (plain, meta) = open(&a.file, kind).await?;
    // A new data key must be wrapped for every master key the file has.
    let foreign: Vec<&str> = meta
        .groups
        .iter()
        .flat_map(|g| &g.other)
        .filter(|(_, v)| matches!(v, Node::List(l) if !l.is_empty()))
        .map(|(k, _)| k.as_str())
        .collect();
    if !foreign.is_empty() {
        bail!(UsageError(format!(
            "the file also has {} master keys, which coffer cannot wrap a new data key for; rotate it with sops, or remove them with updatekeys first",
            foreign.join(", ")
        )));
    }
    let remove = split(a.rm_age.as_deref().unwrap_or(""));
    let mut groups: Vec<GroupKeys> = meta
        .groups
        .iter()
        .map(|g| GroupKeys {
            age: g
                .age
                .iter()
                .map(|e| e.recipient.clone())
                .filter(|r| !remove.contains(r))
                .collect(),
            hc_vault: g.hc_vault.iter().map(VaultEntry::uri).collect(),
        })
        .collect();
    // As in SOPS, added keys go into the first group.
    for r in split(a.add_age.as_deref().unwrap_or("")) {
        if !groups.iter().any(|g| g.age.contains(&r))
            && let Some(first) = groups.first_mut()
        {
            first.age.push(r);
        }
    }
    if groups.is_empty() || groups.iter().any(GroupKeys::is_empty) {
        bail!(UsageError(
            "removing these recipients would leave the file (or one of its key groups) without any master key".into()
        ));
    }
    let plan = Plan {
        groups,
        shamir_threshold: meta.shamir_threshold,
        rule: meta.rule.clone(),
        mac_only_encrypted: meta.mac_only_encrypted,
        indent: a.indent,
    };
    // The file was written with this rule already: no second guess here.
    let text = seal(kind, kind, plain, plan, true, &a.file).await?;
    let out = a.in_place.then_some(a.file.as_path());
    write_output(out, text.as_bytes(), false)?;
    Ok(0)
}

async fn exec_env(a: ExecEnvArgs) -> anyhow::Result<u8> {
    use coffer_sops::tree::Item;
    let kind = file_type(&a.file, a.input_type)?;
    if kind == FileType::Binary {
        bail!(UsageError(
            "exec-env needs a YAML, JSON or dotenv file".into()
        ));
    }
    let (plain, _) = open(&a.file, kind).await?;
    let Node::Map(items) = plain else {
        bail!("the file is not a mapping");
    };
    let mut vars = Vec::new();
    for i in items {
        match i {
            Item::Pair(k, Node::Leaf(v)) => {
                let value =
                    String::from_utf8(v.to_bytes()).with_context(|| format!("{k} is not text"))?;
                vars.push((k, zeroize::Zeroizing::new(value)));
            }
            Item::Pair(_, Node::Null) | Item::Comment(_) | Item::LineComment(_) => {}
            Item::Pair(k, _) => bail!(UsageError(format!(
                "exec-env needs a flat file: {k:?} is nested; use decrypt --extract for nested values"
            ))),
        }
    }
    let mut cmd = match a.command.as_slice() {
        [one] if one.contains(char::is_whitespace) => {
            let mut c = std::process::Command::new("sh");
            c.arg("-c").arg(one);
            c
        }
        [program, args @ ..] => {
            let mut c = std::process::Command::new(program);
            c.args(args);
            c
        }
        [] => bail!(UsageError("give the command to run after --".into())),
    };
    if a.pristine {
        cmd.env_clear();
    }
    for (k, v) in &vars {
        cmd.env(k, v.as_str());
    }
    if a.same_process {
        use std::os::unix::process::CommandExt as _;
        // Only returns when the program could not be started.
        let err = cmd.exec();
        return Err(anyhow::anyhow!("running {:?}: {err}", a.command));
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {:?}", a.command))?;
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

/// `--extract '["a"]["b"]'`: a value as text (a mapping or a list in the
/// file's format if it is YAML, other subtrees as JSON), as sops prints it.
fn extract(root: &Node, path: &str, kind: FileType) -> anyhow::Result<Vec<u8>> {
    let steps = coffer_sops::path::parse(path).map_err(|e| Fail::TreePath(e.to_string()))?;
    // sops prints YAML scalars other than strings with a newline (as its
    // YAML library writes them), JSON ones and strings without.
    let line = if kind == FileType::Yaml { "\n" } else { "" };
    Ok(match coffer_sops::path::get(root, &steps)? {
        Node::Leaf(coffer_sops::Scalar::Str(s)) => s.clone().into_bytes(),
        Node::Leaf(coffer_sops::Scalar::Bool(b)) => format!("{b}{line}").into_bytes(),
        Node::Leaf(v) => [v.to_bytes(), line.as_bytes().to_vec()].concat(),
        Node::Null => format!("null{line}").into_bytes(),
        m @ Node::Map(_) if kind == FileType::Yaml => yaml::emit(m)?.into_bytes(),
        Node::List(l) if kind == FileType::Yaml => yaml::emit_list(l).into_bytes(),
        l @ Node::List(_) => json::emit_value(l, 0).into_bytes(),
        other => json::emit(other).into_bytes(),
    })
}

/// sops' original command line, `sops [-d|-e|-r|-s|--set …] FILE` (still
/// what most scripts and docs use), rewritten into coffer's subcommands:
/// `-d` decrypt, `-e` encrypt, `-r` rotate, `--set '["k"] "v"'` set, `-v`
/// version, and a bare FILE (or `-s FILE`) edit. Anything that is already
/// a subcommand passes through. `args` starts after `sops`.
pub fn legacy_args(args: &[String]) -> Option<Vec<String>> {
    const COMMANDS: [&str; 13] = [
        "encrypt",
        "decrypt",
        "rotate",
        "exec-env",
        "exec-file",
        "edit",
        "set",
        "unset",
        "updatekeys",
        "filestatus",
        "groups",
        "completion",
        "version",
    ];
    let first = args.first()?;
    if COMMANDS.contains(&first.as_str()) || ["help", "-h", "--help"].contains(&first.as_str()) {
        return None;
    }
    // sops' global flags may come before the command (`sops --config
    // c.yaml encrypt f`): the command moves to the front.
    if let Some(at) = args.iter().position(|a| COMMANDS.contains(&a.as_str())) {
        let mut out = vec![args[at].clone()];
        out.extend(args[..at].iter().cloned());
        out.extend(args[at + 1..].iter().cloned());
        return Some(out);
    }
    let mut mode = "edit";
    let mut set: Option<String> = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-d" | "--decrypt" => mode = "decrypt",
            "-e" | "--encrypt" => mode = "encrypt",
            "-r" | "--rotate" => mode = "rotate",
            "-v" | "--version" => return Some(vec!["version".into()]),
            "--set" => {
                mode = "set";
                set = it.next().cloned();
            }
            s if s.starts_with("--set=") => {
                mode = "set";
                set = Some(s["--set=".len()..].to_owned());
            }
            _ => rest.push(a.clone()),
        }
    }
    let mut out = vec![mode.to_owned()];
    if mode == "set" {
        // `--set '["a"]["b"] "value"'`: the path's brackets, then the value.
        let spec = set.unwrap_or_default();
        let file = rest.pop()?;
        let (path, value) = split_set_spec(&spec)?;
        out.push(file);
        out.push(path);
        out.push(value);
    }
    out.extend(rest);
    Some(out)
}

/// Splits `'["a"][0] "value"'` into the path and the JSON value.
fn split_set_spec(spec: &str) -> Option<(String, String)> {
    let spec = spec.trim_start();
    let mut end = 0;
    let bytes = spec.as_bytes();
    while end < bytes.len() && bytes[end] == b'[' {
        let mut in_string = false;
        let mut i = end + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_string => i += 1,
                b'"' => in_string = !in_string,
                b']' if !in_string => break,
                _ => {}
            }
            i += 1;
        }
        end = i + 1;
    }
    (end > 0 && end <= spec.len()).then(|| (spec[..end].to_owned(), spec[end..].trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(args: &[&str]) -> Option<Vec<String>> {
        let v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        legacy_args(&v)
    }

    #[test]
    fn sops_original_command_line_becomes_subcommands() {
        let s = |v: &[&str]| Some(v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>());
        assert_eq!(legacy(&["decrypt", "f.yaml"]), None);
        assert_eq!(legacy(&["-d", "f.yaml"]), s(&["decrypt", "f.yaml"]));
        assert_eq!(
            legacy(&["-e", "-i", "f.yaml"]),
            s(&["encrypt", "-i", "f.yaml"])
        );
        assert_eq!(legacy(&["f.yaml"]), s(&["edit", "f.yaml"]));
        assert_eq!(legacy(&["-s", "f.yaml"]), s(&["edit", "-s", "f.yaml"]));
        assert_eq!(legacy(&["--version"]), s(&["version"]));
        assert_eq!(
            legacy(&["--set", "[\"a\"][0] {\"b\": 1}", "f.yaml"]),
            s(&["set", "f.yaml", "[\"a\"][0]", "{\"b\": 1}"])
        );
        assert_eq!(
            legacy(&["--config", "c.yaml", "encrypt", "f.yaml"]),
            s(&["encrypt", "--config", "c.yaml", "f.yaml"])
        );
        assert_eq!(
            split_set_spec("[\"a]b\"] \"v\""),
            Some(("[\"a]b\"]".into(), "\"v\"".into()))
        );
        assert_eq!(split_set_spec("no brackets"), None);
    }
}
