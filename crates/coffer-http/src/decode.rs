//! HTTP request -> core request.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request as HttpRequest, header};
use coffer_core::fields::parse_bool;
use coffer_core::secret::SecretString;
use coffer_core::{LogicalError, Operation, Request};
use serde_json::{Map, Value};

/// Reads the body, refusing more than the size limit and giving up after
/// the read timeout (a client trickling a body holds nothing for long).
pub(crate) async fn read_body(
    req: HttpRequest<Body>,
    opts: &crate::HttpOptions,
) -> Result<bytes::Bytes, LogicalError> {
    let limit = opts.max_request_size;
    let too_large = || {
        LogicalError::PayloadTooLarge(format!(
            "request body is larger than the limit of {limit} bytes"
        ))
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large());
    }
    let read = axum::body::to_bytes(req.into_body(), limit);
    tokio::time::timeout(opts.read_timeout, read)
        .await
        .map_err(|_| {
            LogicalError::RequestTimeout(format!(
                "request body not received within {} s",
                opts.read_timeout.as_secs()
            ))
        })?
        .map_err(|e| {
            let limited = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if limited || e.to_string().contains("length limit") {
                too_large()
            } else {
                LogicalError::BadRequest(format!("failed to read request body: {e}"))
            }
        })
}

/// The client token: `X-Vault-Token`, else `Authorization: Bearer`.
pub(crate) fn token(headers: &HeaderMap) -> Option<SecretString> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(SecretString::new(t.trim().to_owned()));
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| SecretString::new(rest.trim().to_owned()))
}

/// `X-Vault-Wrap-TTL`: seconds or a duration such as `5m`.
/// `X-Coffer-Leak-Finding`: printable ASCII, at most 512 bytes.
fn leak_finding(headers: &HeaderMap) -> Result<Option<String>, LogicalError> {
    let Some(v) = headers.get(coffer_core::logical::LEAK_FINDING_HEADER) else {
        return Ok(None);
    };
    let ok = v.len() <= 512 && v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b));
    match v.to_str() {
        Ok(s) if ok && !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        _ => Err(LogicalError::BadRequest(
            "X-Coffer-Leak-Finding must be printable ASCII, at most 512 bytes".into(),
        )),
    }
}

fn wrap_ttl(headers: &HeaderMap) -> Result<Option<u64>, LogicalError> {
    let Some(v) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let bad = || LogicalError::BadRequest("error parsing X-Vault-Wrap-TTL header".into());
    let s = v.to_str().map_err(|_| bad())?;
    coffer_core::fields::parse_duration(s)
        .map(Some)
        .map_err(|_| bad())
}

/// `?help=<anything non-empty>` asks for `path-help`, as in Vault.
pub(crate) fn wants_help(query: Option<&str>) -> bool {
    query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .is_some_and(|pairs| pairs.iter().any(|(k, v)| k == "help" && !v.is_empty()))
}

/// Query parameters as request data (a repeated key becomes a list).
pub(crate) fn query_map(query: Option<&str>) -> Result<Map<String, Value>, LogicalError> {
    let mut out = Map::new();
    let Some(q) = query else { return Ok(out) };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
        .map_err(|e| LogicalError::BadRequest(format!("invalid query string: {e}")))?;
    for (k, v) in pairs {
        match out.get_mut(&k) {
            None => {
                out.insert(k, Value::String(v));
            }
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, Value::String(v)]);
            }
        }
    }
    Ok(out)
}

/// Parses a body as a JSON object, or as a form when declared so.
pub(crate) fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, LogicalError> {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Ok(Map::new());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form && !matches!(trimmed[0], b'{' | b'[') {
        let text = std::str::from_utf8(body)
            .map_err(|_| LogicalError::BadRequest("form body is not UTF-8".into()))?;
        return query_map(Some(text));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        // The Go client sends `null` for a write with no data (`write -f`).
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(LogicalError::BadRequest(
            "failed to parse JSON input: the body must be a JSON object".into(),
        )),
        Err(e) => Err(LogicalError::BadRequest(format!(
            "failed to parse JSON input: {e}"
        ))),
    }
}

/// Builds the core request for a logical (enveloped) path.
pub(crate) async fn logical_request(
    req: HttpRequest<Body>,
    mut path: String,
    remote: Option<std::net::SocketAddr>,
    opts: &crate::HttpOptions,
) -> Result<Request, LogicalError> {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let mut data = query_map(req.uri().query())?;
    let op = match method.as_str() {
        "GET" | "HEAD" => {
            let mut op = Operation::Read;
            for (name, listing) in [("list", Operation::List), ("scan", Operation::Scan)] {
                let Some(v) = data.remove(name) else {
                    continue;
                };
                let s = v.as_str().unwrap_or_default();
                match parse_bool(s) {
                    Some(true) => op = listing,
                    Some(false) => {}
                    None => {
                        return Err(LogicalError::BadRequest(format!(
                            "invalid value {s:?} for {name}: expected a bool such as true, 1 or false"
                        )));
                    }
                }
            }
            op
        }
        "LIST" => Operation::List,
        "SCAN" => Operation::Scan,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => {
            // Like Vault: no media type at all is a bad request, a wrong one is 415.
            match headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                None => {
                    return Err(LogicalError::BadRequest(
                        "PATCH needs a Content-Type header: application/merge-patch+json".into(),
                    ));
                }
                Some(ct) if !ct.trim_start().starts_with("application/merge-patch+json") => {
                    return Err(LogicalError::UnsupportedMediaType);
                }
                Some(_) => {}
            }
            Operation::Patch
        }
        "DELETE" => Operation::Delete,
        _ => return Err(LogicalError::UnsupportedOperation),
    };
    if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
        let body = read_body(req, opts).await?;
        // Body parameters replace query parameters, as in Vault.
        data = parse_body(&headers, &body)?;
    }
    if matches!(op, Operation::List | Operation::Scan) && !path.ends_with('/') {
        path.push('/');
    }
    let mut r = Request::new(op, path);
    r.wrap_ttl = wrap_ttl(&headers)?;
    r.data = data;
    r.token = token(&headers);
    r.remote_addr = remote;
    r.leak_finding = leak_finding(&headers)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_json_form_and_errors() {
        let h = HeaderMap::new();
        assert!(parse_body(&h, b"").unwrap().is_empty());
        assert_eq!(parse_body(&h, br#"{"a":1}"#).unwrap()["a"], 1);
        assert!(parse_body(&h, b"[1]").is_err());
        assert!(
            parse_body(&h, b"{bad")
                .unwrap_err()
                .to_string()
                .contains("failed to parse JSON")
        );
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert_eq!(parse_body(&form, b"a=1&b=x").unwrap()["b"], "x");
    }

    #[test]
    fn bearer_token_is_a_fallback() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(token(&h).unwrap().expose(), "abc");
        h.insert("x-vault-token", "xyz".parse().unwrap());
        assert_eq!(token(&h).unwrap().expose(), "xyz");
    }
}
