//! Audit entries in Vault's JSON shape, built once per request in plaintext
//! and then redacted per device (each device has its own HMAC key).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::DeviceOptions;
use super::salt::Salt;
use crate::logical::{Operation, Request, Response};
use crate::token::{Token, rfc3339};

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
    /// The type of the mount serving the path (`system`, `token`, `kv` ...).
    pub mount_type: &'a str,
    /// That mount's path.
    pub mount_point: &'a str,
    /// The answer (response entries).
    pub response: Option<&'a Response>,
    /// Why the request failed.
    pub error: Option<String>,
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn auth_block(token: Option<&Token>) -> Value {
    match token {
        Some(t) => {
            let e = &t.entry;
            json!({
                "client_token": "",
                "accessor": e.accessor,
                "display_name": e.display_name,
                "policies": e.policies,
                "token_policies": e.policies,
                "metadata": e.meta,
                "entity_id": "",
                "token_type": "service",
                "token_ttl": e.creation_ttl,
                "token_issue_time": rfc3339(e.creation_time),
            })
        }
        None => json!({
            "client_token": "",
            "accessor": "",
            "display_name": "",
            "policies": null,
            "token_policies": null,
            "metadata": null,
            "entity_id": "",
            "token_type": "default",
        }),
    }
}

/// The plaintext entry; [`redact`] must run before it leaves the process.
pub fn build(input: &EntryInput<'_>) -> Map<String, Value> {
    let req = input.req;
    let presented = req
        .token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    let mut auth = auth_block(input.token);
    if input.token.is_some() {
        auth["client_token"] = Value::String(presented.clone());
    }
    let accessor = input
        .token
        .map(|t| t.entry.accessor.clone())
        .unwrap_or_default();
    let (address, port) = match req.remote_addr {
        Some(a) => (a.ip().to_string(), u64::from(a.port())),
        None => (String::new(), 0),
    };
    let request = json!({
        "id": req.id,
        "operation": req.operation.as_str(),
        "mount_type": input.mount_type,
        "mount_point": input.mount_point,
        "client_token": presented,
        "client_token_accessor": accessor,
        "namespace": {"id": "root"},
        "path": req.path,
        "data": if req.data.is_empty() { Value::Null } else { Value::Object(req.data.clone()) },
        "remote_address": address,
        "remote_port": port,
        "wrap_ttl": req.wrap_ttl.unwrap_or(0),
        "headers": {},
    });
    let mut entry = Map::new();
    entry.insert("time".into(), Value::String(now()));
    entry.insert(
        "type".into(),
        Value::String(
            match input.kind {
                EntryKind::Request => "request",
                EntryKind::Response => "response",
            }
            .into(),
        ),
    );
    entry.insert("auth".into(), auth);
    entry.insert("request".into(), request);
    if input.kind == EntryKind::Response {
        let response = match input.response {
            Some(r) => json!({
                "mount_type": input.mount_type,
                "mount_point": input.mount_point,
                "data": r.data.clone().map_or(Value::Null, Value::Object),
                "secret": if r.lease_id.is_empty() { Value::Null } else { json!({"lease_id": r.lease_id}) },
                "auth": r.auth.clone().unwrap_or(Value::Null),
                "wrap_info": r.wrap_info.clone().unwrap_or(Value::Null),
                "warnings": r.warnings,
            }),
            None => Value::Null,
        };
        entry.insert("response".into(), response);
    }
    if let Some(e) = &input.error {
        entry.insert("error".into(), Value::String(e.clone()));
    }
    entry
}

/// Replaces tokens, accessors and secret values by their HMACs under this
/// device's salt (nothing when `log_raw`).
pub fn redact(entry: &mut Map<String, Value>, salt: &Salt, opts: &DeviceOptions) {
    if opts.elide_list_responses {
        elide_list(entry);
    }
    if opts.log_raw {
        return;
    }
    let accessor_keys: &[&str] = if opts.hmac_accessor {
        &["accessor", "client_token_accessor", "wrapped_accessor"]
    } else {
        &[]
    };
    if let Some(Value::Object(auth)) = entry.get_mut("auth") {
        salt.hash_field(auth, "client_token");
        for k in accessor_keys {
            salt.hash_field(auth, k);
        }
    }
    if let Some(Value::Object(req)) = entry.get_mut("request") {
        salt.hash_field(req, "client_token");
        for k in accessor_keys {
            salt.hash_field(req, k);
        }
        if let Some(d) = req.get_mut("data") {
            salt.hash_strings(d);
        }
    }
    if let Some(Value::Object(resp)) = entry.get_mut("response") {
        if let Some(d) = resp.get_mut("data") {
            salt.hash_strings(d);
        }
        for block in ["auth", "wrap_info"] {
            if let Some(Value::Object(b)) = resp.get_mut(block) {
                salt.hash_field(b, "client_token");
                salt.hash_field(b, "token");
                for k in accessor_keys {
                    salt.hash_field(b, k);
                }
            }
        }
    }
}

/// Vault's `elide_list_responses`: a list answer's keys become their count.
fn elide_list(entry: &mut Map<String, Value>) {
    let is_list = entry
        .get("request")
        .and_then(|r| r.get("operation"))
        .and_then(Value::as_str)
        == Some(Operation::List.as_str());
    if !is_list {
        return;
    }
    if let Some(Value::Object(resp)) = entry.get_mut("response")
        && let Some(Value::Object(data)) = resp.get_mut("data")
        && let Some(Value::Array(keys)) = data.get("keys")
    {
        let n = keys.len();
        data.insert("keys".into(), Value::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    #[test]
    fn secrets_and_tokens_leave_only_as_hmacs() {
        let mut req = Request::new(Operation::Update, "secret/data/app");
        req.token = Some(SecretString::new("cvs.tokenmarker".into()));
        req.data = json!({"data": {"password": "pw-marker", "n": 3}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let resp = Response {
            data: json!({"value": "resp-marker"}).as_object().cloned(),
            wrap_info: Some(json!({"token": "wrap-marker", "accessor": "acc-marker"})),
            ..Response::default()
        };
        let mut e = build(&EntryInput {
            kind: EntryKind::Response,
            req: &req,
            token: None,
            mount_type: "kv",
            mount_point: "secret/",
            response: Some(&resp),
            error: None,
        });
        let salt = Salt::from_slice(&[7; 32]).expect("32 bytes");
        redact(&mut e, &salt, &DeviceOptions::default());
        let text = serde_json::to_string(&e).unwrap_or_default();
        for marker in [
            "tokenmarker",
            "pw-marker",
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
    }
}
