//! Audit entries in Vault's JSON shape, serialized straight from the request
//! and response for each device: strings that must not appear in clear are
//! replaced by their HMAC while they are written, so no redacted copy of the
//! data is ever built. Keys are written in alphabetical order.

use std::borrow::Cow;
use std::collections::BTreeMap;

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
    /// The mount serving the path.
    pub mount: &'a MountInfo,
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

/// What every device's copy of one entry shares: computed once.
pub(super) struct Shared {
    time: String,
    remote_address: String,
    remote_port: u16,
    token_issue_time: Option<String>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl Shared {
    pub(super) fn new(input: &EntryInput<'_>) -> Self {
        let (remote_address, remote_port) = match input.req.remote_addr {
            Some(a) => (a.ip().to_string(), a.port()),
            None => (String::new(), 0),
        };
        Self {
            time: rfc3339(OffsetDateTime::now_utc()),
            remote_address,
            remote_port,
            token_issue_time: input.token.and_then(|t| {
                OffsetDateTime::from_unix_timestamp(t.entry.creation_time)
                    .ok()
                    .map(rfc3339)
            }),
        }
    }
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
    headers: BTreeMap<(), ()>,
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

#[derive(Serialize)]
struct EntryOut<'a> {
    auth: AuthOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    request: RequestOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponseOut<'a>>,
    time: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Appends one device's JSON object for the entry to `out`.
pub(super) fn write(
    input: &EntryInput<'_>,
    shared: &Shared,
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
    let (token, accessor) = (ids.0.as_str(), ids.1.as_str());
    let auth = match input.token {
        Some(t) => AuthOut {
            accessor,
            client_token: token,
            display_name: &t.entry.display_name,
            entity_id: "",
            metadata: t.entry.meta.as_ref(),
            policies: Some(&t.entry.policies),
            token_issue_time: shared.token_issue_time.as_deref(),
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
        headers: BTreeMap::new(),
        id: &req.id,
        mount_accessor: &input.mount.accessor,
        mount_class: input.mount.class,
        mount_point: &input.mount.point,
        mount_type: &input.mount.kind,
        namespace: Namespace { id: "root" },
        operation: req.operation.as_str(),
        path: &req.path,
        remote_address: &shared.remote_address,
        remote_port: shared.remote_port,
        wrap_ttl: req.wrap_ttl.unwrap_or(0),
    };
    let elide = opts.elide_list_responses && req.operation == Operation::List;
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
    let no_warnings: &[String] = &[];
    let response = match input.kind {
        EntryKind::Request => None,
        EntryKind::Response => Some(match input.response {
            Some(r) => ResponseOut {
                auth: r.auth.as_ref().map(|v| SecretFields { value: v, redact }),
                data: r.data.as_ref().map(|d| HashedMap {
                    map: d,
                    redact,
                    elide_keys: elide,
                }),
                mount_accessor: &input.mount.accessor,
                mount_class: input.mount.class,
                mount_point: &input.mount.point,
                mount_type: &input.mount.kind,
                secret: (!r.lease_id.is_empty()).then_some(SecretOut {
                    lease_id: &r.lease_id,
                }),
                warnings: &r.warnings,
                wrap_info: r
                    .wrap_info
                    .as_ref()
                    .map(|v| SecretFields { value: v, redact }),
            },
            None => ResponseOut {
                auth: None,
                data: error_data.as_ref().map(|d| HashedMap {
                    map: d,
                    redact,
                    elide_keys: false,
                }),
                mount_accessor: &input.mount.accessor,
                mount_class: input.mount.class,
                mount_point: &input.mount.point,
                mount_type: &input.mount.kind,
                secret: None,
                warnings: no_warnings,
                wrap_info: None,
            },
        }),
    };
    serde_json::to_writer(
        out,
        &EntryOut {
            auth,
            error: input.error.as_deref(),
            request,
            response,
            time: &shared.time,
            kind: match input.kind {
                EntryKind::Request => "request",
                EntryKind::Response => "response",
            },
        },
    )
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
        let mount = MountInfo {
            kind: "kv".into(),
            point: "secret/".into(),
            ..MountInfo::default()
        };
        let input = EntryInput {
            kind: EntryKind::Response,
            req: &req,
            token: None,
            mount: &mount,
            response: Some(&resp),
            error: None,
        };
        let mut out = Vec::new();
        let ids = (salt.hash("cvs.tokenmarker"), String::new());
        write(&input, &Shared::new(&input), &ids, salt, opts, &mut out).expect("serialize");
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
