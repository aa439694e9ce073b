//! Core response -> Vault's JSON envelope.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use coffer_core::{LogicalError, Response as CoreResponse, is_empty_response};
use serde_json::{Map, Value, json};

/// A JSON response with Vault's headers; the body ends in a newline like Go's encoder.
pub(crate) fn json(status: u16, body: &Value) -> Response {
    let mut bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
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

/// The standard envelope, or 204 when there is nothing to say.
pub(crate) fn envelope(request_id: &str, r: CoreResponse) -> Response {
    if is_empty_response(&r) {
        return no_content();
    }
    let mut body = Map::new();
    if r.inject_top_level
        && let Some(d) = &r.data
    {
        for (k, v) in d {
            body.insert(k.clone(), v.clone());
        }
    }
    body.insert("request_id".into(), json!(request_id));
    body.insert("lease_id".into(), json!(r.lease_id));
    body.insert("renewable".into(), json!(r.renewable));
    body.insert("lease_duration".into(), json!(r.lease_duration));
    body.insert("data".into(), r.data.map_or(Value::Null, Value::Object));
    body.insert("wrap_info".into(), r.wrap_info.unwrap_or(Value::Null));
    body.insert(
        "warnings".into(),
        if r.warnings.is_empty() {
            Value::Null
        } else {
            json!(r.warnings)
        },
    );
    body.insert("auth".into(), r.auth.unwrap_or(Value::Null));
    json(r.status.unwrap_or(200), &Value::Object(body))
}

/// The same response without a body (HEAD).
pub(crate) fn strip_body(r: Response) -> Response {
    let (parts, _) = r.into_parts();
    Response::from_parts(parts, Body::empty())
}
