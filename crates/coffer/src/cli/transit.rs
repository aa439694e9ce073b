//! `coffer transit ...`: shortcuts for the transit engine, and `envelope`,
//! which shows envelope encryption end to end: a file is sealed locally with
//! a fresh data key, and only that key, wrapped by the server's transit key,
//! is stored beside the ciphertext.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_client::Client;
use coffer_core::secret::Key32;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::generic::{print_field_or_secret, print_secret};
use super::{ClientArgs, Format};

/// `coffer transit` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TransitCommand {
    /// Create a named key (`-type`, `-derived`, `-exportable`, ...).
    CreateKey(CreateKeyArgs),
    /// Encrypt data (an argument, `@file` or `-` for stdin; sent base64-encoded).
    Encrypt(EncryptArgs),
    /// Decrypt a `vault:vN:` ciphertext and print the plaintext bytes.
    Decrypt(DecryptArgs),
    /// Add a new version to a key.
    Rotate(KeyNameArgs),
    /// Re-encrypt a ciphertext with the key's latest version.
    Rewrap(DecryptArgs),
    /// A fresh data key wrapped by the named key (and in plaintext with `-plaintext`).
    Datakey(DatakeyArgs),
    /// Envelope-encrypt or decrypt a file with a data key wrapped by a transit key.
    #[command(subcommand)]
    Envelope(EnvelopeCommand),
}

/// `coffer transit envelope` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum EnvelopeCommand {
    /// Seal FILE locally (AES-256-GCM) with a fresh data key; write the envelope as JSON.
    Encrypt(EnvelopeArgs),
    /// Unwrap the envelope's data key through the server and open the file.
    Decrypt(EnvelopeArgs),
}

/// A key on a transit mount.
#[derive(clap::Args, Debug)]
pub struct KeyNameArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Where the transit engine is mounted.
    #[arg(long, default_value = "transit")]
    mount: String,
    /// Key name.
    name: String,
}

/// Flags of `create-key`.
#[derive(clap::Args, Debug)]
pub struct CreateKeyArgs {
    #[command(flatten)]
    key: KeyNameArgs,
    /// Key type (aes256-gcm96, chacha20-poly1305, ed25519, ecdsa-p256, rsa-2048, hmac, ...).
    #[arg(long = "type", default_value = "aes256-gcm96")]
    key_type: String,
    /// Derive a key per request context.
    #[arg(long)]
    derived: bool,
    /// Allow export of the key material.
    #[arg(long)]
    exportable: bool,
    /// Rotate automatically this often (e.g. 720h; 0 turns it off).
    #[arg(long)]
    auto_rotate_period: Option<String>,
}

/// Flags of `encrypt`.
#[derive(clap::Args, Debug)]
pub struct EncryptArgs {
    #[command(flatten)]
    key: KeyNameArgs,
    /// Context for derived keys (plain text; sent base64-encoded).
    #[arg(long)]
    context: Option<String>,
    /// The data: text, `@file`, or `-` for stdin.
    data: String,
}

/// Flags of `decrypt` and `rewrap`.
#[derive(clap::Args, Debug)]
pub struct DecryptArgs {
    #[command(flatten)]
    key: KeyNameArgs,
    /// Context for derived keys (plain text).
    #[arg(long)]
    context: Option<String>,
    /// The `vault:vN:...` ciphertext.
    ciphertext: String,
}

/// Flags of `datakey`.
#[derive(clap::Args, Debug)]
pub struct DatakeyArgs {
    #[command(flatten)]
    key: KeyNameArgs,
    /// Data key size: 128, 256 or 512 bits.
    #[arg(long, default_value_t = 256)]
    bits: u32,
    /// Also return the data key in plaintext.
    #[arg(long)]
    plaintext: bool,
}

/// Flags of `envelope encrypt|decrypt`.
#[derive(clap::Args, Debug)]
pub struct EnvelopeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Where the transit engine is mounted.
    #[arg(long, default_value = "transit")]
    mount: String,
    /// Transit key that wraps the data key (encrypt only; decrypt uses the envelope's).
    #[arg(long)]
    key: Option<String>,
    /// Output file, created 0600 (default: stdout).
    #[arg(long, short = 'o')]
    out: Option<std::path::PathBuf>,
    /// Input file, or `-` for stdin.
    file: String,
}

/// What `envelope encrypt` writes: everything needed to decrypt but the key.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// Format marker and version.
    coffer_envelope: u32,
    mount: String,
    key: String,
    /// The data key, encrypted by the transit key (`vault:vN:...`).
    wrapped_key: String,
    /// AES-256-GCM `nonce || ciphertext || tag`, base64.
    ciphertext: String,
}

const ENVELOPE_AAD: &[u8] = b"coffer-envelope-v1";

fn read_input(spec: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    if spec == "-" {
        std::io::stdin().read_to_end(&mut buf)?;
    } else if let Some(file) = spec.strip_prefix('@') {
        *buf = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    } else {
        buf.extend_from_slice(spec.as_bytes());
    }
    Ok(buf)
}

/// The envelope's FILE argument: a path, or `-` for stdin.
fn read_file_arg(file: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if file == "-" {
        read_input("-")
    } else {
        read_input(&format!("@{file}"))
    }
}

/// Writes to `-o` (0600, atomically: it may be the plaintext) or stdout.
fn write_output(out: Option<&std::path::Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(p) => super::private_file::write(p, bytes),
        None => Ok(std::io::stdout().write_all(bytes)?),
    }
}

fn with_context(mut body: Value, context: &Option<String>) -> Value {
    if let Some(c) = context {
        body["context"] = json!(B64.encode(c.as_bytes()));
    }
    body
}

async fn call(c: &Client, path: &str, body: &Value) -> anyhow::Result<Value> {
    Ok(c.write(path, body).await?.unwrap_or(Value::Null))
}

/// Runs a `coffer transit` command; the exit code as Vault's CLI.
pub async fn run(cmd: TransitCommand) -> anyhow::Result<u8> {
    match cmd {
        TransitCommand::CreateKey(a) => {
            let k = &a.key;
            let mut body =
                json!({"type": a.key_type, "derived": a.derived, "exportable": a.exportable});
            if let Some(p) = a.auto_rotate_period {
                body["auto_rotate_period"] = json!(p);
            }
            let resp = call(
                &k.client.client()?,
                &format!("{}/keys/{}", k.mount, k.name),
                &body,
            )
            .await?;
            print_answer(&resp, k.client.format, &format!("Key {} created", k.name));
        }
        TransitCommand::Encrypt(a) => {
            let k = &a.key;
            let data = read_input(&a.data)?;
            let body = with_context(
                json!({"plaintext": B64.encode(data.as_slice())}),
                &a.context,
            );
            let resp = call(
                &k.client.client()?,
                &format!("{}/encrypt/{}", k.mount, k.name),
                &body,
            )
            .await?;
            print_ciphertext(&resp, k)?;
        }
        TransitCommand::Decrypt(a) => {
            let k = &a.key;
            let body = with_context(json!({"ciphertext": a.ciphertext}), &a.context);
            let resp = call(
                &k.client.client()?,
                &format!("{}/decrypt/{}", k.mount, k.name),
                &body,
            )
            .await?;
            if k.client.format != Format::Table || k.client.field.is_some() {
                print_field_or_secret(&resp, k.client.field.as_deref(), k.client.format)?;
            } else {
                let pt = resp
                    .pointer("/data/plaintext")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let raw = Zeroizing::new(
                    B64.decode(pt)
                        .context("the server's plaintext is not base64")?,
                );
                std::io::stdout().write_all(&raw)?;
            }
        }
        TransitCommand::Rotate(k) => {
            let resp = call(
                &k.client.client()?,
                &format!("{}/keys/{}/rotate", k.mount, k.name),
                &json!({}),
            )
            .await?;
            print_answer(&resp, k.client.format, &format!("Key {} rotated", k.name));
        }
        TransitCommand::Rewrap(a) => {
            let k = &a.key;
            let body = with_context(json!({"ciphertext": a.ciphertext}), &a.context);
            let resp = call(
                &k.client.client()?,
                &format!("{}/rewrap/{}", k.mount, k.name),
                &body,
            )
            .await?;
            print_ciphertext(&resp, k)?;
        }
        TransitCommand::Datakey(a) => {
            let k = &a.key;
            let kind = if a.plaintext { "plaintext" } else { "wrapped" };
            let resp = call(
                &k.client.client()?,
                &format!("{}/datakey/{kind}/{}", k.mount, k.name),
                &json!({"bits": a.bits}),
            )
            .await?;
            print_field_or_secret(&resp, k.client.field.as_deref(), k.client.format)?;
        }
        TransitCommand::Envelope(EnvelopeCommand::Encrypt(a)) => envelope_encrypt(a).await?,
        TransitCommand::Envelope(EnvelopeCommand::Decrypt(a)) => envelope_decrypt(a).await?,
    }
    Ok(0)
}

/// An encryption's answer: the ciphertext alone (so `CT=$(coffer transit
/// encrypt ...)` works), one field with `-field`, or all of it as JSON/YAML.
fn print_ciphertext(resp: &Value, k: &KeyNameArgs) -> anyhow::Result<()> {
    let field = match (&k.client.field, k.client.format) {
        (Some(f), _) => Some(f.as_str()),
        (None, Format::Table) => Some("ciphertext"),
        (None, _) => None,
    };
    print_field_or_secret(resp, field, k.client.format).map(|_| ())
}

/// A write's answer: the key info as the format asks, or one line in a table.
fn print_answer(resp: &Value, format: Format, done: &str) {
    if format == Format::Table {
        println!("Success! {done}.");
    } else {
        print_secret(resp, format);
    }
}

async fn envelope_encrypt(a: EnvelopeArgs) -> anyhow::Result<()> {
    let Some(key) = a.key.clone() else {
        bail!(super::UsageError(
            "envelope encrypt needs -key=NAME (the transit key that wraps the data key)".into()
        ));
    };
    let input = read_file_arg(&a.file)?;
    let c = a.client.client()?;
    let resp = call(
        &c,
        &format!("{}/datakey/plaintext/{key}", a.mount),
        &json!({"bits": 256}),
    )
    .await?;
    let (Some(pt), Some(wrapped)) = (
        resp.pointer("/data/plaintext").and_then(Value::as_str),
        resp.pointer("/data/ciphertext").and_then(Value::as_str),
    ) else {
        bail!("the server's data key answer lacks plaintext or ciphertext");
    };
    let raw = Zeroizing::new(B64.decode(pt).context("data key is not base64")?);
    let dk = Key32::from_slice(&raw).context("data key is not 256 bits")?;
    let sealed = coffer_core::aead::seal(&dk, ENVELOPE_AAD, &input)?;
    let env = Envelope {
        coffer_envelope: 1,
        mount: a.mount.clone(),
        key,
        wrapped_key: wrapped.to_owned(),
        ciphertext: B64.encode(sealed),
    };
    let mut text = serde_json::to_vec_pretty(&env)?;
    text.push(b'\n');
    write_output(a.out.as_deref(), &text)
}

async fn envelope_decrypt(a: EnvelopeArgs) -> anyhow::Result<()> {
    let text = read_file_arg(&a.file)?;
    let env: Envelope = serde_json::from_slice(&text)
        .context("not a coffer envelope (JSON with coffer_envelope)")?;
    if env.coffer_envelope != 1 {
        bail!("unsupported envelope version {}", env.coffer_envelope);
    }
    let c = a.client.client()?;
    let resp = call(
        &c,
        &format!("{}/decrypt/{}", env.mount, env.key),
        &json!({"ciphertext": env.wrapped_key}),
    )
    .await?;
    let pt = resp
        .pointer("/data/plaintext")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let raw = Zeroizing::new(B64.decode(pt).context("data key is not base64")?);
    let dk = Key32::from_slice(&raw).context("data key is not 256 bits")?;
    let sealed = B64
        .decode(env.ciphertext.trim())
        .context("envelope ciphertext is not base64")?;
    let opened = coffer_core::aead::open(&dk, ENVELOPE_AAD, &sealed).map_err(|_| {
        anyhow::anyhow!(
            "the envelope does not decrypt: it was changed, or the data key is not its own"
        )
    })?;
    write_output(a.out.as_deref(), opened.expose())
}
