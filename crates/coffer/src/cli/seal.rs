//! `coffer seal`: kubeseal's job without a cluster connection. A Secret in,
//! a `SealedSecret` out that the Sealed Secrets controller decrypts; `--raw`
//! for one value, `--merge-into` an existing SealedSecret, and
//! `--recovery-unseal` with the controller's private key to get Secrets
//! back when the controller is gone.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Map, Value};

use super::UsageError;
use crate::sealed::{self, Scope, SealOptions};

/// Flags of `coffer seal`, spelled as kubeseal's.
#[derive(clap::Args, Debug)]
pub struct SealArgs {
    /// The Secret(s) to seal, YAML or JSON, several documents allowed
    /// (default: stdin).
    #[arg(short = 'f', long = "secret-file")]
    secret_file: Option<PathBuf>,
    /// Write the result here instead of stdout.
    #[arg(short = 'w', long = "sealed-secret-file")]
    output: Option<PathBuf>,
    /// The controller's certificate: a PEM file, or an http(s):// URL such
    /// as the controller's /v1/cert.pem.
    #[arg(long, env = "SEALED_SECRETS_CERT")]
    cert: Option<String>,
    /// Who may unseal: strict (this name in this namespace),
    /// namespace-wide, cluster-wide (default: the Secret's scope
    /// annotation, else strict).
    #[arg(long, value_enum)]
    scope: Option<Scope>,
    /// The namespace (must agree with the Secret's own, if it has one).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// With --raw: the Secret's name (needed for strict scope).
    #[arg(long)]
    name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "format", value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Seal one value (from --from-file, default stdin) and print only its
    /// ciphertext.
    #[arg(long)]
    raw: bool,
    /// With --raw: where the value is read from.
    #[arg(long)]
    from_file: Option<PathBuf>,
    /// Add the Secret's values to this SealedSecret file (rewritten in
    /// place, in its own format).
    #[arg(long, conflicts_with_all = ["raw", "output"])]
    merge_into: Option<PathBuf>,
    /// Seal a Secret that has no data.
    #[arg(long)]
    allow_empty_data: bool,
    /// Decrypt SealedSecrets (from the input) back into Secrets with the
    /// controller's private key: for recovery without a controller.
    #[arg(long = "recovery-unseal", visible_alias = "recover", requires = "key")]
    recover: bool,
    /// The controller's private key(s) for --recovery-unseal: PEM, or a
    /// dump of its key Secret(s) (`kubectl get secret -l
    /// sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`).
    #[arg(long = "recovery-private-key", visible_alias = "key")]
    key: Option<PathBuf>,
}

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// kubeseal's default: pretty JSON.
    Json,
    /// `---` then YAML with sorted keys.
    Yaml,
}

/// Runs `coffer seal`.
pub async fn run(a: SealArgs) -> anyhow::Result<u8> {
    if a.recover {
        return recover(&a);
    }
    let cert = match &a.cert {
        Some(c) => load_cert(c).await?,
        None => bail!(UsageError(
            "--cert is needed: the controller's certificate, a file or its http(s)://…/v1/cert.pem (`kubeseal --fetch-cert > cert.pem` saves one)".into()
        )),
    };
    let key = sealed::public_key_from_cert(&cert)?;
    if a.raw {
        return raw(&a, &key);
    }
    let input = zeroize::Zeroizing::new(read_input(a.secret_file.as_ref())?);
    let docs = sealed::documents(&input)?;
    if docs.is_empty() {
        bail!(UsageError("no Secret in the input".into()));
    }
    let opts = SealOptions {
        scope: a.scope,
        namespace: a.namespace.as_deref(),
        allow_empty: a.allow_empty_data,
    };
    if let Some(target) = &a.merge_into {
        return merge_into(target, &docs, &key, &opts);
    }
    let mut out = String::new();
    for doc in &docs {
        let s = sealed::seal(doc, &key, &opts)?;
        out.push_str(&match a.format {
            // Go's struct order, as kubeseal's JSON has it.
            Format::Json => serde_json::to_string_pretty(&s)? + "\n",
            Format::Yaml => render(&serde_json::to_value(&s)?, a.format)?,
        });
    }
    write(a.output.as_ref(), out.as_bytes())?;
    Ok(0)
}

/// The most of a certificate download that is read: a controller's PEM
/// certificate is a few kilobytes.
const CERT_LIMIT: usize = 1 << 20;

/// A certificate from a file or a URL (30 s and 1 MiB at most).
async fn load_cert(source: &str) -> anyhow::Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let response = client
            .get(source)
            .send()
            .await
            .with_context(|| format!("fetching the certificate from {source}"))?;
        if !response.status().is_success() {
            bail!(
                "fetching the certificate from {source}: HTTP {}",
                response.status()
            );
        }
        let body = coffer_client::body_capped(response, CERT_LIMIT)
            .await
            .map_err(|e| anyhow::anyhow!("fetching the certificate from {source}: {e}"))?;
        return String::from_utf8(body).with_context(|| format!("{source}: not text"));
    }
    let path = source.strip_prefix("file://").unwrap_or(source);
    std::fs::read_to_string(path).with_context(|| format!("reading the certificate {path}"))
}

fn read_input(file: Option<&PathBuf>) -> anyhow::Result<String> {
    match file {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())),
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            Ok(s)
        }
    }
}

fn write(path: Option<&PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            Ok(out.flush()?)
        }
    }
}

/// kubeseal's layouts: pretty JSON and a newline, or `---` and YAML.
fn render(v: &Value, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(v)? + "\n",
        Format::Yaml => format!("---\n{}", serde_norway::to_string(&sorted(v))?),
    })
}

/// The same value with every map's keys in order (sigs.k8s.io/yaml sorts).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let ordered: std::collections::BTreeMap<&String, Value> =
                m.iter().map(|(k, x)| (k, sorted(x))).collect();
            Value::Object(ordered.into_iter().map(|(k, x)| (k.clone(), x)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `--raw`: one value's ciphertext, no newline, as kubeseal prints it.
fn raw(a: &SealArgs, key: &rsa::RsaPublicKey) -> anyhow::Result<u8> {
    let scope = a.scope.unwrap_or(Scope::Strict);
    let namespace = a.namespace.clone().unwrap_or_default();
    let name = a.name.clone().unwrap_or_default();
    if namespace.is_empty() && scope != Scope::ClusterWide {
        bail!(UsageError(
            "--raw needs --namespace unless --scope cluster-wide".into()
        ));
    }
    if name.is_empty() && scope == Scope::Strict {
        bail!(UsageError(
            "--raw needs --name with the strict scope".into()
        ));
    }
    let value = zeroize::Zeroizing::new(match &a.from_file {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            v
        }
    });
    let sealed = sealed::hybrid_encrypt(key, &value, &scope.label(&namespace, &name))?;
    let text = base64::engine::general_purpose::STANDARD.encode(sealed);
    write(a.output.as_ref(), text.as_bytes())?;
    Ok(0)
}

/// `--merge-into FILE`: the Secret's values sealed under the existing
/// SealedSecret's own label and added to it (template labels, annotations
/// and data merged too), the file rewritten in its format.
fn merge_into(
    target: &PathBuf,
    docs: &[Value],
    key: &rsa::RsaPublicKey,
    opts: &SealOptions<'_>,
) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(target).with_context(|| format!("reading {}", target.display()))?;
    let format = if text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    };
    let mut existing = sealed::documents(&text)?
        .into_iter()
        .next()
        .context("the file to merge into holds no SealedSecret")?;
    if existing.get("kind").and_then(Value::as_str) != Some("SealedSecret") {
        bail!("{} is not a SealedSecret", target.display());
    }
    let meta = existing["metadata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let scope = Scope::of(meta.get("annotations").and_then(Value::as_object));
    for doc in docs {
        // Sealed as if it were the target: its name, namespace and scope.
        let mut secret = doc.clone();
        if let Some(m) = secret.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["name", "namespace"] {
                match meta.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
        }
        let merge_opts = SealOptions {
            scope: Some(scope),
            namespace: None,
            allow_empty: opts.allow_empty,
        };
        let new = serde_json::to_value(sealed::seal(&secret, key, &merge_opts)?)?;
        let data = new
            .pointer("/spec/encryptedData")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let spec = existing
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .context("the SealedSecret has no spec")?;
        let enc = spec
            .entry("encryptedData")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(e) = enc.as_object_mut() {
            e.extend(data);
        }
        // The template's labels, annotations and data from the Secret.
        for part in ["labels", "annotations"] {
            if let Some(add) = doc
                .pointer(&format!("/metadata/{part}"))
                .and_then(Value::as_object)
            {
                let t = spec
                    .entry("template")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(t) = t.as_object_mut() {
                    let m = t
                        .entry("metadata")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(m) = m.as_object_mut() {
                        let slot = m.entry(part).or_insert_with(|| Value::Object(Map::new()));
                        if let Some(slot) = slot.as_object_mut() {
                            for (k, v) in add {
                                if !k.ends_with("last-applied-configuration") {
                                    slot.insert(k.clone(), v.clone());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    std::fs::write(target, render(&existing, format)?)
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(0)
}

/// `--recovery-unseal`: every SealedSecret in the input back to a Secret.
fn recover(a: &SealArgs) -> anyhow::Result<u8> {
    let Some(key_file) = &a.key else {
        bail!(UsageError(
            "--recovery-unseal needs --recovery-private-key FILE".into()
        ));
    };
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(key_file)
            .with_context(|| format!("reading {}", key_file.display()))?,
    );
    let keys = sealed::private_keys(&text)?;
    let input = read_input(a.secret_file.as_ref())?;
    let mut out = zeroize::Zeroizing::new(String::new());
    for doc in sealed::documents(&input)? {
        let secret = sealed::unseal(&doc, &keys)?;
        out.push_str(&render(&secret, a.format)?);
    }
    // Plaintext Secrets: a file is created 0600.
    match &a.output {
        Some(p) => super::private_file::write(p, out.as_bytes())?,
        None => write(None, out.as_bytes())?,
    }
    Ok(0)
}
