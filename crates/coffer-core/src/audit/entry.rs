//! Audit entries in Vault's JSON shape, serialized straight from the request
//! and response for each device: strings that must not appear in clear are
//! replaced by their HMAC while they are written, so no redacted copy of the
//! data is ever built. Keys are written in alphabetical order.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::DeviceOptions;
use super::salt::{HASH_LEN, Salt};
use crate::logical::{Operation, Request, Response};
use crate::token::Token;

/// Whether an entry records the request or its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Before the handler runs (or when it was refused).
    Request,
    /// After the handler ran.
    Response,
}

/// Everything an entry is made from.
pub struct EntryInput<'a> {
    /// Request or response.
    pub kind: EntryKind,
    /// The request as the client sent it.
    pub req: &'a Request,
    /// The resolved token, when it was valid.
    pub token: Option<&'a Token>,
    /// What the request's entries share.
    pub ctx: &'a Context,
    /// The answer (response entries).
    pub response: Option<&'a Response>,
    /// Why the request failed.
    pub error: Option<String>,
}

/// The mount a request went to, as entries name it.
#[derive(Debug, Clone, Default)]
pub struct MountInfo {
    /// `system`, `token`, `kv`, `transit` ...
    pub kind: String,
    /// The mount's path (`secret/`, `auth/userpass/`).
    pub point: String,
    /// The mount's accessor.
    pub accessor: String,
    /// `secret` or `auth` (empty for `sys/`).
    pub class: &'static str,
}

/// One request's audit context: what both of its entries share, computed
/// once, including each device's serialized `auth` and `request` blocks (the
/// response entry repeats them byte for byte).
pub struct Context {
    mount: MountInfo,
    remote_address: String,
    remote_port: u16,
    token_issue_time: OnceLock<Option<String>>,
    blocks: Mutex<Vec<(usize, Arc<Blocks>)>>,
}

struct Blocks {
    auth: Vec<u8>,
    request: Vec<u8>,
}

impl Context {
    /// The context of `req`, served by `mount`.
    pub fn new(mount: MountInfo, req: &Request) -> Self {
        let (remote_address, remote_port) = match req.remote_addr {
            Some(a) => (a.ip().to_string(), a.port()),
            None => (String::new(), 0),
        };
        Self {
            mount,
            remote_address,
            remote_port,
            token_issue_time: OnceLock::new(),
            blocks: Mutex::new(Vec::new()),
        }
    }

    fn token_issue_time(&self, token: Option<&Token>) -> Option<&str> {
        self.token_issue_time
            .get_or_init(|| {
                token.and_then(|t| {
                    OffsetDateTime::from_unix_timestamp(crate::clock::floor_secs(
                        t.entry.creation_time,
                    ))
                    .ok()
                    .and_then(|t| t.format(&Rfc3339).ok())
                })
            })
            .as_deref()
    }

    fn cached(&self, device: usize) -> Option<Arc<Blocks>> {
        let blocks = self.blocks.lock().ok()?;
        blocks
            .iter()
            .find(|(d, _)| *d == device)
            .map(|(_, b)| b.clone())
    }

    fn remember(&self, device: usize, b: Arc<Blocks>) {
        if let Ok(mut blocks) = self.blocks.lock() {
            blocks.push((device, b));
        }
    }
}

/// RFC 3339 UTC with nanoseconds, formatted by hand (it runs twice per
/// request).
fn now_rfc3339() -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// How one device writes secrets.
#[derive(Clone, Copy)]
struct Redact<'a> {
    /// `None` with `log_raw`.
    salt: Option<&'a Salt>,
    hmac_accessor: bool,
}

impl<'a> Redact<'a> {
    fn secret(&self, s: &'a str) -> Cow<'a, str> {
        match self.salt {
            Some(salt) if !s.is_empty() => Cow::Owned(salt.hash(s)),
            _ => Cow::Borrowed(s),
        }
    }

    fn accessor(&self, s: &'a str) -> Cow<'a, str> {
        if self.hmac_accessor {
            self.secret(s)
        } else {
            Cow::Borrowed(s)
        }
    }
}

/// A JSON value whose strings (at any depth) are written as HMACs.
struct Hashed<'a> {
    value: &'a Value,
    redact: Redact<'a>,
}

impl Serialize for Hashed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.value, self.redact.salt) {
            (Value::String(v), Some(salt)) => {
                let mut buf = [0u8; HASH_LEN];
                s.serialize_str(salt.hash_into(v, &mut buf))
            }
            (Value::Array(items), Some(_)) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Hashed {
                        value: v,
                        redact: self.redact,
                    })?;
                }
                seq.end()
            }
            (Value::Object(m), Some(_)) => HashedMap {
                map: m,
                redact: self.redact,
                elide_keys: false,
            }
            .serialize(s),
            (v, _) => v.serialize(s),
        }
    }
}

/// An object whose values are hashed; with `elide_keys` a list answer's
/// `keys` becomes their count (`elide_list_responses`).
struct HashedMap<'a> {
    map: &'a Map<String, Value>,
    redact: Redact<'a>,
    elide_keys: bool,
}

impl Serialize for HashedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in self.map {
            match v {
                Value::Array(keys) if self.elide_keys && k == "keys" => {
                    m.serialize_entry(k, &keys.len())?
                }
                _ => m.serialize_entry(
                    k,
                    &Hashed {
                        value: v,
                        redact: self.redact,
                    },
                )?,
            }
        }
        m.end()
    }
}

/// An object of which only some string fields are secret (an `auth` or
/// `wrap_info` block): those are hashed, the rest written as they are.
struct SecretFields<'a> {
    value: &'a Value,
    redact: Redact<'a>,
}

impl Serialize for SecretFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(obj) = self.value else {
            return self.value.serialize(s);
        };
        let mut m = s.serialize_map(Some(obj.len()))?;
        for (k, v) in obj {
            match (k.as_str(), v) {
                ("client_token" | "token", Value::String(t)) => {
                    m.serialize_entry(k, &self.redact.secret(t))?
                }
                ("accessor" | "wrapped_accessor", Value::String(a)) => {
                    m.serialize_entry(k, &self.redact.accessor(a))?
                }
                _ => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct AuthOut<'a> {
    accessor: &'a str,
    client_token: &'a str,
    display_name: &'a str,
    entity_id: &'a str,
    metadata: Option<&'a BTreeMap<String, String>>,
    policies: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_issue_time: Option<&'a str>,
    token_policies: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_ttl: Option<u64>,
    token_type: &'a str,
}

#[derive(Serialize)]
struct Namespace {
    id: &'static str,
}

#[derive(Serialize)]
struct RequestOut<'a> {
    client_token: &'a str,
    client_token_accessor: &'a str,
    data: Option<HashedMap<'a>>,
    headers: BTreeMap<&'static str, [&'a str; 1]>,
    id: &'a str,
    mount_accessor: &'a str,
    mount_class: &'a str,
    mount_point: &'a str,
    mount_type: &'a str,
    namespace: Namespace,
    operation: &'a str,
    path: &'a str,
    remote_address: &'a str,
    remote_port: u16,
    wrap_ttl: u64,
}

#[derive(Serialize)]
struct SecretOut<'a> {
    lease_id: &'a str,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    auth: Option<SecretFields<'a>>,
    data: Option<HashedMap<'a>>,
    mount_accessor: &'a str,
    mount_class: &'a str,
    mount_point: &'a str,
    mount_type: &'a str,
    secret: Option<SecretOut<'a>>,
    warnings: &'a [String],
    wrap_info: Option<SecretFields<'a>>,
}

/// Appends one device's JSON object for the entry to `out`.
/// `device` identifies the device within the request's context, whose
/// cached blocks are reused.
pub(super) fn write(
    input: &EntryInput<'_>,
    device: usize,
    ids: &(String, String),
    salt: &Salt,
    opts: &DeviceOptions,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let redact = Redact {
        salt: (!opts.log_raw).then_some(salt),
        hmac_accessor: opts.hmac_accessor,
    };
    let req = input.req;
    let ctx = input.ctx;
    let blocks = match ctx.cached(device) {
        Some(b) => b,
        None => {
            let b = Arc::new(blocks(input, ids, redact)?);
            ctx.remember(device, b.clone());
            b
        }
    };
    out.extend_from_slice(b"{\"auth\":");
    out.extend_from_slice(&blocks.auth);
    if let Some(e) = &input.error {
        out.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut *out, e)?;
    }
    out.extend_from_slice(b",\"request\":");
    out.extend_from_slice(&blocks.request);
    let elide =
        opts.elide_list_responses && matches!(req.operation, Operation::List | Operation::Scan);
    if input.kind == EntryKind::Response {
        // A failure's response block carries the error as (hashed) data, as
        // OpenBao writes it.
        let error_data: Option<Map<String, Value>> = match (input.response, &input.error) {
            (None, Some(e)) => {
                let mut m = Map::new();
                m.insert("error".into(), Value::String(e.clone()));
                Some(m)
            }
            _ => None,
        };
        out.extend_from_slice(b",\"response\":");
        serde_json::to_writer(
            &mut *out,
            &response(input, error_data.as_ref(), redact, elide),
        )?;
    }
    out.extend_from_slice(b",\"time\":\"");
    out.extend_from_slice(now_rfc3339().as_bytes());
    out.extend_from_slice(match input.kind {
        EntryKind::Request => b"\",\"type\":\"request\"}",
        EntryKind::Response => b"\",\"type\":\"response\"}",
    });
    Ok(())
}

/// The `auth` and `request` blocks, serialized for one device.
fn blocks(
    input: &EntryInput<'_>,
    ids: &(String, String),
    redact: Redact<'_>,
) -> serde_json::Result<Blocks> {
    let req = input.req;
    let ctx = input.ctx;
    let (token, accessor) = (ids.0.as_str(), ids.1.as_str());
    let auth = match input.token {
        Some(t) => AuthOut {
            accessor,
            client_token: token,
            display_name: &t.entry.display_name,
            entity_id: "",
            metadata: t.entry.meta.as_ref(),
            policies: Some(&t.entry.policies),
            token_issue_time: ctx.token_issue_time(input.token),
            token_policies: Some(&t.entry.policies),
            token_ttl: Some(t.entry.creation_ttl),
            token_type: "service",
        },
        None => AuthOut {
            accessor: "",
            client_token: "",
            display_name: "",
            entity_id: "",
            metadata: None,
            policies: None,
            token_issue_time: None,
            token_policies: None,
            token_ttl: None,
            token_type: "default",
        },
    };
    let request = RequestOut {
        client_token: token,
        client_token_accessor: accessor,
        data: (!req.data.is_empty()).then_some(HashedMap {
            map: &req.data,
            redact,
            elide_keys: false,
        }),
        // Not HMAC'd: a finding's fingerprint names a file, rule and line.
        headers: req
            .leak_finding
            .iter()
            .map(|f| (crate::logical::LEAK_FINDING_HEADER, [f.as_str()]))
            .collect(),
        id: &req.id,
        mount_accessor: &ctx.mount.accessor,
        mount_class: ctx.mount.class,
        mount_point: &ctx.mount.point,
        mount_type: &ctx.mount.kind,
        namespace: Namespace { id: "root" },
        operation: req.operation.as_str(),
        path: &req.path,
        remote_address: &ctx.remote_address,
        remote_port: ctx.remote_port,
        wrap_ttl: req.wrap_ttl.unwrap_or(0),
    };
    Ok(Blocks {
        auth: serde_json::to_vec(&auth)?,
        request: serde_json::to_vec(&request)?,
    })
}

/// The `response` block: the answer, or the error as data.
fn response<'a>(
    input: &'a EntryInput<'a>,
    error_data: Option<&'a Map<String, Value>>,
    redact: Redact<'a>,
    elide: bool,
) -> ResponseOut<'a> {
    let ctx = input.ctx;
    let r = input.response;
    let data = match r {
        Some(r) => r.data.as_ref().map(|d| (d, elide)),
        None => error_data.map(|d| (d, false)),
    };
    ResponseOut {
        auth: r
            .and_then(|r| r.auth.as_ref())
            .map(|v| SecretFields { value: v, redact }),
        data: data.map(|(map, elide_keys)| HashedMap {
            map,
            redact,
            elide_keys,
        }),
        mount_accessor: &ctx.mount.accessor,
        mount_class: ctx.mount.class,
        mount_point: &ctx.mount.point,
        mount_type: &ctx.mount.kind,
        secret: r.filter(|r| !r.lease_id.is_empty()).map(|r| SecretOut {
            lease_id: &r.lease_id,
        }),
        warnings: r.map_or(&[], |r| r.warnings.as_slice()),
        wrap_info: r
            .and_then(|r| r.wrap_info.as_ref())
            .map(|v| SecretFields { value: v, redact }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use serde_json::json;

    fn entry(opts: &DeviceOptions, salt: &Salt) -> Value {
        let mut req = Request::new(Operation::List, "secret/metadata/");
        req.token = Some(SecretString::new("cvs.tokenmarker".into()));
        req.data = json!({"data": {"password": "pw-marker", "n": 3, "l": ["in-list"]}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let resp = Response {
            data: json!({"keys": ["a", "b"], "value": "resp-marker"})
                .as_object()
                .cloned(),
            wrap_info: Some(json!({"token": "wrap-marker", "accessor": "acc-marker", "ttl": 60})),
            ..Response::default()
        };
        let ctx = Context::new(
            MountInfo {
                kind: "kv".into(),
                point: "secret/".into(),
                ..MountInfo::default()
            },
            &req,
        );
        let input = EntryInput {
            kind: EntryKind::Response,
            req: &req,
            token: None,
            ctx: &ctx,
            response: Some(&resp),
            error: None,
        };
        let mut out = Vec::new();
        let ids = (salt.hash("cvs.tokenmarker"), String::new());
        write(&input, 0, &ids, salt, opts, &mut out).expect("serialize");
        serde_json::from_slice(&out).expect("json")
    }

    #[test]
    fn secrets_and_tokens_leave_only_as_hmacs() {
        let salt = Salt::from_slice(&[7; 32]).expect("32 bytes");
        let e = entry(&DeviceOptions::default(), &salt);
        let text = e.to_string();
        for marker in [
            "tokenmarker",
            "pw-marker",
            "in-list",
            "resp-marker",
            "wrap-marker",
            "acc-marker",
        ] {
            assert!(!text.contains(marker), "{marker} leaked: {text}");
        }
        assert_eq!(e["request"]["client_token"], salt.hash("cvs.tokenmarker"));
        assert_eq!(
            e["request"]["data"]["data"]["password"],
            salt.hash("pw-marker")
        );
        assert_eq!(e["request"]["data"]["data"]["n"], 3);
        assert_eq!(e["response"]["wrap_info"]["ttl"], 60);
        assert_eq!(e["response"]["data"]["keys"][0], salt.hash("a"));
        assert_eq!(e["type"], "response");

        let raw = entry(
            &DeviceOptions {
                log_raw: true,
                elide_list_responses: true,
                ..DeviceOptions::default()
            },
            &salt,
        );
        assert_eq!(raw["request"]["data"]["data"]["password"], "pw-marker");
        assert_eq!(raw["response"]["data"]["keys"], 2, "elided to a count");
        let plain_accessor = entry(
            &DeviceOptions {
                hmac_accessor: false,
                ..DeviceOptions::default()
            },
            &salt,
        );
        assert_eq!(
            plain_accessor["response"]["wrap_info"]["accessor"],
            "acc-marker"
        );
        assert_eq!(
            plain_accessor["response"]["wrap_info"]["token"],
            salt.hash("wrap-marker")
        );
    }
}
