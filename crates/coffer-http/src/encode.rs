//! Core response -> Vault's JSON envelope.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use coffer_core::{LogicalError, Response as CoreResponse, is_empty_response};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// A JSON response with Vault's headers; the body ends in a newline like Go's encoder.
pub(crate) fn json(status: u16, body: &Value) -> Response {
    json_bytes(status, serde_json::to_vec(body))
}

fn json_bytes(status: u16, encoded: serde_json::Result<Vec<u8>>) -> Response {
    let mut bytes = encoded.unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(b'\n');
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 204 with an empty body.
pub(crate) fn no_content() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // As Vault: OpenBao Agent's cache acts only on answers whose content type
    // is exactly this, revocations (204) included.
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"errors": [...]}`.
pub(crate) fn error(status: u16, messages: &[String]) -> Response {
    json(status, &json!({ "errors": messages }))
}

/// The error body and status for a core error.
pub(crate) fn logical_error(e: &LogicalError) -> Response {
    error(e.status(), &e.messages())
}

/// Vault's envelope, fields in the order Go's encoder sorts a map's keys.
#[derive(Serialize)]
struct Envelope<'a> {
    auth: &'a Option<Value>,
    data: &'a Option<Map<String, Value>>,
    lease_duration: u64,
    lease_id: &'a str,
    renewable: bool,
    request_id: &'a str,
    warnings: Option<&'a [String]>,
    wrap_info: &'a Option<Value>,
}

/// The standard envelope, or 204 when there is nothing to say.
pub(crate) fn envelope(request_id: &str, r: CoreResponse) -> Response {
    if is_empty_response(&r) {
        return no_content();
    }
    let status = r.status.unwrap_or(200);
    if let Some((content_type, bytes)) = r.raw {
        let mut resp = Response::new(Body::from(bytes));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return resp;
    }
    let env = Envelope {
        auth: &r.auth,
        data: &r.data,
        lease_duration: r.lease_duration,
        lease_id: &r.lease_id,
        renewable: r.renewable,
        request_id,
        warnings: (!r.warnings.is_empty()).then_some(r.warnings.as_slice()),
        wrap_info: &r.wrap_info,
    };
    if !r.inject_top_level {
        // Serialized straight from the response: no intermediate JSON tree.
        return json_bytes(status, serde_json::to_vec(&env));
    }
    // Legacy routes: data's keys also at the top level, the envelope's winning.
    let mut body = r.data.clone().unwrap_or_default();
    if let Ok(Value::Object(fields)) = serde_json::to_value(&env) {
        body.extend(fields);
    }
    json(status, &Value::Object(body))
}

/// The same response without a body (HEAD).
pub(crate) fn strip_body(r: Response) -> Response {
    let (parts, _) = r.into_parts();
    Response::from_parts(parts, Body::empty())
}
