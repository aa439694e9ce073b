//! A standby's answer to a client: requests that only read are served from
//! its following copy of the state (when it has one, and has applied the
//! writes the client's `X-Vault-Index` names); everything else goes to the
//! active node.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request as HttpRequest, header};
use axum::response::Response;
use coffer_core::LogicalError;
use coffer_core::ha::Leader;

use crate::AppState;
use crate::forward::{self, Buffered};
use crate::{decode, encode};

/// How long a standby waits to catch up with a client's `X-Vault-Index`
/// before it forwards (or, with `X-Vault-Inconsistent: fail`, answers 412).
const CATCH_UP: Duration = Duration::from_millis(500);

pub(crate) const INDEX_HEADER: &str = "x-vault-index";

/// Serves `req` on this standby or forwards it to `leader`.
pub(crate) async fn serve(
    st: &AppState,
    req: HttpRequest<Body>,
    path: String,
    leader: Leader,
    remote: Option<std::net::SocketAddr>,
) -> Response {
    let reads = matches!(req.method().as_str(), "GET" | "LIST" | "POST" | "PUT");
    let always_forward = req
        .headers()
        .get("x-vault-forward")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("active-node"));
    if !reads
        || always_forward
        || forward::wants_redirect(req.headers())
        || decode::wants_help(req.uri().query())
        || path.starts_with(crate::events::PREFIX)
        || st.core.standby_position().is_none()
    {
        return forward::forward(st, req, leader, remote).await;
    }
    // A GET or LIST without a body is decoded as it is; anything else is
    // read once, so it can still be forwarded after decoding.
    let bodiless = matches!(req.method().as_str(), "GET" | "LIST")
        && !req.headers().contains_key(header::CONTENT_LENGTH)
        && !req.headers().contains_key(header::TRANSFER_ENCODING);
    let (buffered, decoded) = if bodiless {
        let b = Buffered::without_body(&req);
        (
            b,
            decode::logical_request(req, path, remote, &st.opts).await,
        )
    } else {
        let b = match Buffered::read(st, req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let d = decode::logical_request(b.rebuild(), path, remote, &st.opts).await;
        (b, d)
    };
    // Caught up first: what the client wrote may be what makes the request
    // servable here (a mount it just created).
    if let Some(wanted) = wanted_index(st, &buffered.headers).await
        && !st.core.standby_reach(wanted, CATCH_UP).await
    {
        let fail = buffered
            .headers
            .get("x-vault-inconsistent")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("fail"));
        if fail {
            return encode::error(
                412,
                &["this node has not yet applied the writes X-Vault-Index names; retry".into()],
            );
        }
        return forward::forward_buffered(st, buffered, leader, remote).await;
    }
    let lr = match decoded {
        Ok(lr) if st.core.standby_may_serve(&lr) => lr,
        // Not a read (or not decodable here): the active node answers.
        _ => return forward::forward_buffered(st, buffered, leader, remote).await,
    };
    let id = lr.id.clone();
    let head_only = buffered.method == Method::HEAD;
    let resp = match st.core.handle_on_standby(lr).await {
        Ok(r) => encode::envelope(&id, r),
        // It would write after all: nothing was done, so the active node may.
        Err(LogicalError::NotActive) => {
            return forward::forward_buffered(st, buffered, leader, remote).await;
        }
        Err(e) => encode::logical_error(&e),
    };
    let resp = with_index(st, resp, st.core.standby_position()).await;
    if head_only {
        encode::strip_body(resp)
    } else {
        resp
    }
}

/// The position the client's `X-Vault-Index` headers ask for, if any.
async fn wanted_index(st: &AppState, headers: &HeaderMap) -> Option<u64> {
    let values: Vec<String> = headers
        .get_all(INDEX_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    if values.is_empty() {
        return None;
    }
    st.core.parse_index_headers(&values).await
}

/// Adds `X-Vault-Index` for `pos` (an HA node's position in the log).
pub(crate) async fn with_index(st: &AppState, mut resp: Response, pos: Option<u64>) -> Response {
    if let Some(pos) = pos
        && let Some(v) = st.core.index_header(pos).await
        && let Ok(v) = HeaderValue::from_str(&v)
    {
        resp.headers_mut().insert(INDEX_HEADER, v);
    }
    resp
}
