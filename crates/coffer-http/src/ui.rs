//! Serves the embedded web UI under `/ui/` with headers that keep it from
//! being framed, leaking its address or running anything not its own.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

/// Everything the UI needs comes from this origin: no inline script or
/// style, no other host, no framing, no plugins.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Whether this request is the UI's (with the UI enabled).
pub(crate) fn is_ui(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

fn with_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    with_headers(r)
}

fn redirect(to: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    with_headers(r)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';').map(str::trim);
            parts.next().is_some_and(|n| n.eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| p.replace(' ', "") == "q=0")
        })
}

/// Answers a UI request: a file of the UI, or its page for any route
/// without a file extension (the page routes itself).
pub(crate) fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if path == "/" || path == "/ui" {
        return redirect("/ui/");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the UI answers GET and HEAD\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let rel = path.strip_prefix("/ui/").unwrap_or_default();
    let last = rel.rsplit('/').next().unwrap_or_default();
    let asset = match coffer_ui::asset(rel) {
        Some(a) => a,
        None if rel.is_empty() || !last.contains('.') => coffer_ui::index(),
        None => return plain(StatusCode::NOT_FOUND, "no such file in the UI\n"),
    };
    let etag = HeaderValue::from_static(asset.etag);
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == asset.etag.as_bytes())
    {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r.headers_mut().insert(header::ETAG, etag);
        return with_headers(r);
    }
    let gzip = accepts_gzip(headers);
    let bytes = if gzip { asset.gzip } else { asset.raw };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    h.insert(header::ETAG, etag);
    // Always revalidated: the files keep their names from one build to the next.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    with_headers(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, accept: Option<&str>) -> Response {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
        }
        serve(&Method::GET, path, &h)
    }

    #[test]
    fn routes_without_a_file_get_the_page_and_missing_files_404() {
        for p in ["/ui/", "/ui/open", "/ui/kv/secret/app"] {
            let r = get(p, None);
            assert_eq!(r.status(), 200, "{p}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
        }
        assert_eq!(get("/ui/js/nope.js", None).status(), 404);
        assert_eq!(get("/ui", None).status(), 307);
        assert_eq!(get("/", None).headers()[header::LOCATION], "/ui/");
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert_eq!(
            get("/ui/", Some("gzip, br")).headers()[header::CONTENT_ENCODING],
            "gzip"
        );
        assert!(
            get("/ui/", Some("br"))
                .headers()
                .get(header::CONTENT_ENCODING)
                .is_none()
        );
        assert!(
            get("/ui/", Some("gzip;q=0"))
                .headers()
                .get(header::CONTENT_ENCODING)
                .is_none()
        );
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        for r in [get("/ui/", None), get("/ui/x.js", None), get("/ui", None)] {
            assert_eq!(r.headers()["x-frame-options"], "DENY");
            assert_eq!(r.headers()["referrer-policy"], "no-referrer");
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(!csp.contains("unsafe"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        }
    }

    #[test]
    fn revalidation_answers_304() {
        let etag = get("/ui/", None).headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve(&Method::GET, "/ui/", &h).status(), 304);
    }
}
