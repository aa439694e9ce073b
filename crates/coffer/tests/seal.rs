//! `coffer seal` against an independent implementation of Sealed Secrets'
//! hybrid encryption (Python's `cryptography`: RSA-OAEP with SHA-256 and
//! the scope label, then AES-256-GCM with a zero nonce), in both
//! directions: what coffer seals, Python opens; what Python seals, coffer
//! recovers. No cluster runs here, so the controller's certificate is a
//! self-signed test one made the way bring-your-own-certificate setups make
//! it.

use std::path::Path;
use std::process::{Command, Stdio};

/// Makes an RSA key and certificates (valid and expired), and opens or
/// seals values, with Python's `cryptography`.
const HELPER: &str = r#"
import base64, datetime, json, os, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def oaep(label):
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label or None)

cmd = sys.argv[1]
if cmd == "keys":
    d = sys.argv[2]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    open(os.path.join(d, "key.pem"), "wb").write(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    name = x509.Name([])
    now = datetime.datetime.now(datetime.timezone.utc)
    for fname, start, end in [("cert.pem", now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)),
                              ("expired.pem", now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))]:
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        open(os.path.join(d, fname), "wb").write(cert.public_bytes(serialization.Encoding.PEM))
elif cmd == "open":
    key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
    data = base64.b64decode(sys.argv[3])
    label = sys.argv[4].encode()
    n = int.from_bytes(data[:2], "big")
    session = key.decrypt(data[2:2 + n], oaep(label))
    sys.stdout.write(AESGCM(session).decrypt(b"\0" * 12, data[2 + n:], None).decode())
elif cmd == "seal":
    cert = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
    label = sys.argv[4].encode()
    session = os.urandom(32)
    wrapped = cert.public_key().encrypt(session, oaep(label))
    body = len(wrapped).to_bytes(2, "big") + wrapped + AESGCM(session).encrypt(b"\0" * 12, sys.argv[3].encode(), None)
    sys.stdout.write(base64.b64encode(body).decode())
"#;

fn python(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(HELPER)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn seal(dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("seal")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coffer");
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    app: billing
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{\"leak\": true}'
type: Opaque
data:
  password: czNjcmV0LXB3   # s3cret-pw
stringData:
  user: app
";

#[test]
fn sealed_values_open_with_an_independent_implementation_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    python(d, &["keys", "."]);

    // Strict scope: each value under "prod/db", the template without the
    // last-applied annotation, kubeseal's JSON layout.
    let (code, out, err) = seal(d, &["--cert", "cert.pem"], SECRET);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(
        out.starts_with(
            "{\n  \"kind\": \"SealedSecret\",\n  \"apiVersion\": \"bitnami.com/v1alpha1\",\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("}\n"));
    assert_eq!(
        s["metadata"],
        serde_json::json!({"name": "db", "namespace": "prod"})
    );
    let t = &s["spec"]["template"];
    assert_eq!(t["metadata"]["labels"]["app"], "billing");
    assert!(t["metadata"].get("annotations").is_none(), "{t}");
    assert_eq!(t["type"], "Opaque");
    let enc = s["spec"]["encryptedData"]
        .as_object()
        .expect("encryptedData");
    assert_eq!(enc.keys().collect::<Vec<_>>(), ["password", "user"]);
    for (k, want) in [("password", "s3cret-pw"), ("user", "app")] {
        let v = enc[k].as_str().expect("str");
        assert!(v.starts_with("AQ"), "a 2048-bit key's length prefix: {v}");
        assert_eq!(python(d, &["open", "key.pem", v, "prod/db"]), want);
    }
    assert!(
        Command::new("python3")
            .arg("-c")
            .arg(HELPER)
            .args([
                "open",
                "key.pem",
                enc["user"].as_str().unwrap_or(""),
                "prod/other"
            ])
            .output()
            .expect("python")
            .status
            .code()
            != Some(0),
        "another name's label does not open it"
    );

    // Cluster-wide and namespace-wide: the annotation at the top and in
    // the template; -o yaml with sorted keys.
    let (code, out, err) = seal(
        d,
        &[
            "--cert",
            "cert.pem",
            "--scope",
            "namespace-wide",
            "-o",
            "yaml",
        ],
        SECRET,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("---\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  annotations:\n    sealedsecrets.bitnami.com/namespace-wide: 'true'\n"), "{out}");
    std::fs::write(d.join("wide.yaml"), &out).expect("w");
    let docs: serde_json::Value = serde_norway::from_str(&out).expect("yaml");
    let v = docs["spec"]["encryptedData"]["user"]
        .as_str()
        .expect("user");
    assert_eq!(python(d, &["open", "key.pem", v, "prod"]), "app");

    // --raw, cluster-wide: no label at all; no trailing newline.
    let (code, out, err) = seal(
        d,
        &["--cert", "cert.pem", "--raw", "--scope", "cluster-wide"],
        "raw-value",
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.ends_with('\n'));
    assert_eq!(python(d, &["open", "key.pem", &out, ""]), "raw-value");
    let (code, _, err) = seal(d, &["--cert", "cert.pem", "--raw", "-n", "prod"], "x");
    assert_eq!(code, 1);
    assert!(err.contains("--name"), "{err}");

    // Python seals, coffer recovers with the private key (PEM, or the key
    // Secret as kubectl prints it).
    let theirs = python(d, &["seal", "cert.pem", "from-python", "prod"]);
    let sealed = format!(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: other\n  namespace: prod\n  annotations:\n    sealedsecrets.bitnami.com/namespace-wide: \"true\"\nspec:\n  encryptedData:\n    token: {theirs}\n  template:\n    metadata:\n      labels:\n        app: x\n    type: Opaque\n"
    );
    let (code, out, err) = seal(
        d,
        &["--recovery-unseal", "--recovery-private-key", "key.pem"],
        &sealed,
    );
    assert_eq!(code, 0, "{err}");
    let secret: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "other");
    assert_eq!(secret["metadata"]["labels"]["app"], "x");
    assert_eq!(secret["data"]["token"], "ZnJvbS1weXRob24="); // from-python
    use base64::Engine as _;
    let pem = std::fs::read(d.join("key.pem")).expect("key");
    let dump = format!(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  type: kubernetes.io/tls\n  data:\n    tls.key: {}\n    tls.crt: \"\"\n",
        base64::engine::general_purpose::STANDARD.encode(pem)
    );
    std::fs::write(d.join("keys.yaml"), dump).expect("w");
    let (code, _, err) = seal(
        d,
        &[
            "--recover",
            "--key",
            "keys.yaml",
            "-f",
            "wide.yaml",
            "-w",
            "back.json",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("back.json")).expect("r"))
            .expect("json");
    assert_eq!(back["data"]["password"], "czNjcmV0LXB3");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(d.join("back.json"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "recovered plaintext is private");

    // --merge-into: a new value joins the file under its own scope.
    let extra = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ignored\n  namespace: prod\nstringData:\n  api_key: k-123\n";
    let (code, _, err) = seal(
        d,
        &["--cert", "cert.pem", "--merge-into", "wide.yaml"],
        extra,
    );
    assert_eq!(code, 0, "{err}");
    let merged = std::fs::read_to_string(d.join("wide.yaml")).expect("r");
    assert!(merged.starts_with("---\n"), "{merged}");
    let (code, out, err) = seal(d, &["--recover", "--key", "key.pem", "-f", "wide.yaml"], "");
    assert_eq!(code, 0, "{err}");
    let all: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(all["data"]["api_key"], "ay0xMjM=");
    assert_eq!(all["data"]["user"], "YXBw");

    // Mistakes: an expired certificate, no namespace, a namespace that
    // disagrees, a key that is not the controller's.
    let (code, _, err) = seal(d, &["--cert", "expired.pem"], SECRET);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expired certificate"), "{err}");
    let (code, _, err) = seal(
        d,
        &["--cert", "cert.pem"],
        &SECRET.replace("  namespace: prod\n", ""),
    );
    assert_ne!(code, 0);
    assert!(err.contains("namespace"), "{err}");
    let (code, _, err) = seal(d, &["--cert", "cert.pem", "-n", "dev"], SECRET);
    assert_ne!(code, 0);
    assert!(err.contains("is not --namespace"), "{err}");
    std::fs::create_dir(d.join("other")).expect("mkdir");
    python(&d.join("other"), &["keys", "."]);
    let (code, _, err) = seal(
        d,
        &["--recover", "--key", "other/key.pem", "-f", "back.json"],
        "",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("not a SealedSecret") || err.contains("no key could decrypt"),
        "{err}"
    );
    let (code, _, err) = seal(
        d,
        &["--recover", "--key", "other/key.pem", "-f", "wide.yaml"],
        "",
    );
    assert_ne!(code, 0);
    assert!(err.contains("no key could decrypt encryptedData."), "{err}");
}
