//! A stand-in for a Kubernetes API server. No cluster runs on the test
//! machines, so this serves, over HTTPS with a test CA, the few calls the
//! `kubernetes` auth method makes, answering as kube-apiserver does: 401
//! for an unknown bearer, 403 "cannot create resource tokenreviews" without
//! RBAC, `authenticated: false` with the apiserver's error for a dead or
//! wrong-audience token. Every request is recorded for the tests to inspect.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::TestTls;

/// A service account the fake cluster knows, by one of its tokens.
#[derive(Clone)]
pub struct Account {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Audiences the token was issued for.
    pub audiences: Vec<String>,
}

impl Account {
    pub fn new(namespace: &str, name: &str, uid: &str, audiences: &[&str]) -> Account {
        Account {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
        }
    }

    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// One request as the fake API server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: &'static str,
    pub path: String,
    pub authorization: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct Cluster {
    /// Live tokens and whose they are.
    tokens: HashMap<String, Account>,
    /// Users bound to system:auth-delegator (may create tokenreviews and read).
    reviewers: HashSet<String>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    annotations: HashMap<(String, String), BTreeMap<String, String>>,
    jwks: Value,
    /// When set, successful reviews claim these audiences whatever was asked
    /// (an API server answering for another audience).
    lie_about_audiences: Option<Vec<String>>,
    requests: Vec<Recorded>,
}

type Shared = Arc<Mutex<Cluster>>;

/// The running fake; stops when dropped.
pub struct FakeApiServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA that signed its certificate (PEM).
    pub ca_pem: String,
    cluster: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _tls: TestTls,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

/// The account behind the request's bearer token (`None`: the apiserver's 401).
fn caller(c: &Cluster, headers: &HeaderMap) -> Option<Account> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    c.tokens.get(bearer).cloned()
}

fn unauthorized() -> Response {
    status(401, "Unauthorized", "Unauthorized")
}

fn forbidden(who: &Account, verb: &str, resource: &str, group: &str, scope: &str) -> Response {
    status(
        403,
        "Forbidden",
        &format!(
            "{resource}{group} is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
            who.username(),
            resource,
            group.trim_start_matches('.'),
        ),
    )
}

fn record(c: &mut Cluster, method: &'static str, path: String, headers: &HeaderMap, body: Value) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    c.requests.push(Recorded {
        method,
        path,
        authorization: h("authorization"),
        content_type: h("content-type"),
        body,
    });
}

async fn token_review(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut c = s.lock().unwrap();
    let review: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    record(
        &mut c,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews".into(),
        &headers,
        review.clone(),
    );
    let Some(who) = caller(&c, &headers) else {
        return unauthorized();
    };
    if !c.reviewers.contains(&who.username()) {
        return forbidden(
            &who,
            "create",
            "tokenreviews",
            ".authentication.k8s.io",
            "at the cluster scope",
        );
    }
    let spec = &review["spec"];
    let wanted: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let answer = |st: Value| {
        (
            StatusCode::CREATED,
            axum::Json(json!({
                "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": spec, "status": st
            })),
        )
            .into_response()
    };
    let Some(acct) = spec["token"].as_str().and_then(|t| c.tokens.get(t)) else {
        return answer(
            json!({"user": {}, "error": "[invalid bearer token, service account token has been invalidated]"}),
        );
    };
    let mut audiences = acct.audiences.clone();
    if !wanted.is_empty() {
        audiences.retain(|a| wanted.contains(a));
        if audiences.is_empty() {
            return answer(json!({"user": {}, "error": format!(
                "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                acct.audiences, wanted)}));
        }
    }
    if let Some(lie) = &c.lie_about_audiences {
        audiences = lie.clone();
    }
    answer(json!({
        "authenticated": true,
        "user": {
            "username": acct.username(),
            "uid": acct.uid,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", acct.namespace), "system:authenticated"],
        },
        "audiences": audiences,
    }))
}

async fn namespace(
    State(s): State<Shared>,
    UrlPath(ns): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut c = s.lock().unwrap();
    record(
        &mut c,
        "GET",
        format!("/api/v1/namespaces/{ns}"),
        &headers,
        Value::Null,
    );
    let Some(who) = caller(&c, &headers) else {
        return unauthorized();
    };
    if !c.reviewers.contains(&who.username()) {
        return forbidden(&who, "get", "namespaces", "", "at the cluster scope");
    }
    match c.namespaces.get(&ns) {
        Some(labels) => axum::Json(json!({
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": ns, "labels": labels}
        }))
        .into_response(),
        None => status(404, "NotFound", &format!("namespaces \"{ns}\" not found")),
    }
}

async fn service_account(
    State(s): State<Shared>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut c = s.lock().unwrap();
    record(
        &mut c,
        "GET",
        format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}"),
        &headers,
        Value::Null,
    );
    if caller(&c, &headers).is_none() {
        return unauthorized();
    }
    let annotations = c
        .annotations
        .get(&(ns.clone(), name.clone()))
        .cloned()
        .unwrap_or_default();
    axum::Json(json!({
        "kind": "ServiceAccount", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations}
    }))
    .into_response()
}

async fn jwks(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut c = s.lock().unwrap();
    record(
        &mut c,
        "GET",
        "/openid/v1/jwks".into(),
        &headers,
        Value::Null,
    );
    if caller(&c, &headers).is_none() {
        return unauthorized();
    }
    axum::Json(c.jwks.clone()).into_response()
}

impl FakeApiServer {
    /// Starts one on a free port with a fresh test CA.
    pub async fn start(dir: &Path) -> FakeApiServer {
        let tls = TestTls::make(dir, "IP:127.0.0.1,DNS:localhost");
        let cluster: Shared = Arc::default();
        let app = Router::new()
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route("/api/v1/namespaces/{ns}", get(namespace))
            .route(
                "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
                get(service_account),
            )
            .route("/openid/v1/jwks", get(jwks))
            .with_state(cluster.clone());
        let config = coffer_http::load_tls(&coffer_http::TlsFiles {
            cert_file: tls.cert.clone().into(),
            key_file: tls.key.clone().into(),
        })
        .expect("test TLS");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(coffer_http::serve(
            listener,
            app,
            Some(config),
            coffer_http::ConnLimits::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        FakeApiServer {
            url,
            ca_pem: std::fs::read_to_string(&tls.ca).unwrap(),
            cluster,
            stop: Some(stop),
            _tls: tls,
        }
    }

    /// Makes `token` a live token of `account`.
    pub fn issue(&self, token: &str, account: Account) {
        self.cluster
            .lock()
            .unwrap()
            .tokens
            .insert(token.into(), account);
    }

    /// Invalidates a token (its pod or service account was deleted).
    pub fn invalidate(&self, token: &str) {
        self.cluster.lock().unwrap().tokens.remove(token);
    }

    /// Binds an account to system:auth-delegator.
    pub fn allow_review(&self, account: &Account) {
        self.cluster
            .lock()
            .unwrap()
            .reviewers
            .insert(account.username());
    }

    pub fn namespace(&self, name: &str, labels: &[(&str, &str)]) {
        self.cluster.lock().unwrap().namespaces.insert(
            name.into(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    pub fn annotate(&self, ns: &str, name: &str, annotations: &[(&str, &str)]) {
        self.cluster.lock().unwrap().annotations.insert(
            (ns.into(), name.into()),
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    pub fn set_jwks(&self, jwks: Value) {
        self.cluster.lock().unwrap().jwks = jwks;
    }

    pub fn lie_about_audiences(&self, audiences: Option<&[&str]>) {
        self.cluster.lock().unwrap().lie_about_audiences =
            audiences.map(|a| a.iter().map(|s| s.to_string()).collect());
    }

    /// The requests received so far, and forgets them.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.cluster.lock().unwrap().requests)
    }

    /// Stops answering: connections are refused from now on.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
