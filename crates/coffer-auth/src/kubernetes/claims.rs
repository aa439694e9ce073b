//! What a service-account JWT says about its account, from either claim
//! layout: legacy secret-based tokens (`kubernetes.io/serviceaccount/...`
//! keys) and projected tokens (a `kubernetes.io` object).

use serde_json::Value;

/// The account a token claims to be.
#[derive(Debug, Default)]
pub(crate) struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub secret_name: String,
    pub audiences: Vec<String>,
    pub issuer: Option<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl ServiceAccount {
    /// Reads the claims; the projected layout wins where both are present.
    pub fn from_claims(c: &Value) -> ServiceAccount {
        let legacy = |k: &str| {
            c.get(format!("kubernetes.io/serviceaccount/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut sa = ServiceAccount {
            namespace: legacy("namespace"),
            name: legacy("service-account.name"),
            uid: legacy("service-account.uid"),
            secret_name: legacy("secret.name"),
            ..ServiceAccount::default()
        };
        if let Some(k) = c.get("kubernetes.io").filter(|k| k.is_object()) {
            sa.namespace = text(k, "/namespace");
            if k.get("serviceaccount").is_some() {
                sa.name = text(k, "/serviceaccount/name");
                sa.uid = text(k, "/serviceaccount/uid");
            }
        }
        sa.audiences = match c.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => vec![],
        };
        sa.issuer = c.get("iss").and_then(Value::as_str).map(String::from);
        sa.exp = c.get("exp").and_then(Value::as_i64);
        sa.nbf = c.get("nbf").and_then(Value::as_i64);
        sa
    }

    /// Refuses names that are not Kubernetes object names: they end up in
    /// API paths (`/api/v1/namespaces/<ns>`) before the token is reviewed.
    pub fn check_names(&self) -> Result<(), String> {
        fn dns_name(s: &str) -> bool {
            let b = s.as_bytes();
            !b.is_empty()
                && b.len() <= 253
                && b.iter().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.'
                })
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
        }
        if !dns_name(&self.namespace) {
            return Err(format!(
                "the token's namespace claim {:?} is not a Kubernetes namespace name",
                self.namespace
            ));
        }
        if !dns_name(&self.name) {
            return Err(format!(
                "the token's service-account name claim {:?} is not a Kubernetes object name",
                self.name
            ));
        }
        Ok(())
    }

    /// The time, issuer and audience checks made before any API call
    /// (`exp` and `nbf` only when present, as Vault allows).
    pub fn check_claims(
        &self,
        now: i64,
        leeway: i64,
        issuer: Option<&str>,
        audience: &str,
    ) -> Result<(), String> {
        if let Some(exp) = self.exp
            && now > exp + leeway
        {
            return Err("token is expired (exp)".into());
        }
        if let Some(nbf) = self.nbf
            && now + leeway < nbf
        {
            return Err("token is not valid yet (nbf)".into());
        }
        if let Some(want) = issuer
            && self.issuer.as_deref() != Some(want)
        {
            return Err(format!(
                "invalid issuer (iss) claim: expected {want:?}, the token has {:?}",
                self.issuer.as_deref().unwrap_or("")
            ));
        }
        if !audience.is_empty() && !self.audiences.iter().any(|a| a == audience) {
            return Err(format!(
                "invalid audience (aud) claim: the role wants {audience:?}, the token has {:?}",
                self.audiences
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_claim_layouts_name_the_account() {
        let legacy = ServiceAccount::from_claims(&json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "apps",
            "kubernetes.io/serviceaccount/secret.name": "eso-token-x1",
            "kubernetes.io/serviceaccount/service-account.name": "eso",
            "kubernetes.io/serviceaccount/service-account.uid": "u-1",
        }));
        assert_eq!(
            (
                legacy.namespace.as_str(),
                legacy.name.as_str(),
                legacy.uid.as_str()
            ),
            ("apps", "eso", "u-1")
        );
        assert_eq!(legacy.secret_name, "eso-token-x1");
        assert_eq!(legacy.exp, None);
        let projected = ServiceAccount::from_claims(&json!({
            "aud": "vault", "exp": 10,
            "kubernetes.io": {"namespace": "web", "pod": {"name": "p", "uid": "pu"},
                              "serviceaccount": {"name": "front", "uid": "u-2"}}
        }));
        assert_eq!(
            (
                projected.namespace.as_str(),
                projected.name.as_str(),
                projected.uid.as_str()
            ),
            ("web", "front", "u-2")
        );
        assert_eq!(projected.audiences, ["vault"]);
        assert_eq!(projected.exp, Some(10));
    }

    #[test]
    fn names_that_would_change_an_api_path_are_refused() {
        for (ns, name) in [
            ("../..", "x"),
            ("apps", "a/b"),
            ("Apps", "x"),
            ("", "x"),
            ("apps", "-x"),
        ] {
            let sa = ServiceAccount {
                namespace: ns.into(),
                name: name.into(),
                ..ServiceAccount::default()
            };
            assert!(sa.check_names().is_err(), "{ns}/{name}");
        }
        let ok = ServiceAccount {
            namespace: "kube-system".into(),
            name: "vault.auth-1".into(),
            ..ServiceAccount::default()
        };
        ok.check_names().unwrap();
    }

    #[test]
    fn time_issuer_and_audience_checks() {
        let sa = ServiceAccount {
            audiences: vec!["vault".into()],
            issuer: Some("https://k8s".into()),
            exp: Some(1000),
            nbf: Some(900),
            ..ServiceAccount::default()
        };
        sa.check_claims(950, 0, Some("https://k8s"), "vault")
            .unwrap();
        assert!(
            sa.check_claims(1001, 0, None, "")
                .unwrap_err()
                .contains("expired")
        );
        assert!(
            sa.check_claims(899, 0, None, "")
                .unwrap_err()
                .contains("not valid yet")
        );
        sa.check_claims(1050, 60, None, "").unwrap();
        assert!(
            sa.check_claims(950, 0, Some("kubernetes/serviceaccount"), "")
                .unwrap_err()
                .contains("iss")
        );
        assert!(
            sa.check_claims(950, 0, None, "other")
                .unwrap_err()
                .contains("aud")
        );
    }
}
