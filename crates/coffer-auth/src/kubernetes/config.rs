//! `auth/<mount>/config`: where the API server is, how tokens are checked.

use coffer_core::LogicalError;
use coffer_core::fields::Fields;
use coffer_core::secret::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::keys;

/// How a login's token is judged live.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Default, Debug)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Review {
    /// Ask the API server (TokenReview), as Vault always does.
    #[default]
    Tokenreview,
    /// Verify the signature here (PEM keys or a key set) and trust `exp`.
    Local,
}

/// The stored configuration.
#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(default)]
pub(crate) struct Config {
    pub kubernetes_host: String,
    pub kubernetes_ca_cert: String,
    /// Wiped from memory when dropped; never shown by reads.
    pub token_reviewer_jwt: SecretString,
    pub pem_keys: Vec<String>,
    pub issuer: String,
    pub disable_iss_validation: bool,
    pub disable_local_ca_jwt: bool,
    pub use_annotations_as_alias_metadata: bool,
    pub review: Review,
    pub jwks_url: String,
    pub oidc_discovery_url: String,
    pub jwks_ca_pem: String,
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

fn has_certificate(pem: &str) -> bool {
    reqwest::Certificate::from_pem_bundle(pem.as_bytes()).is_ok_and(|c| !c.is_empty())
        && pem.contains("-----BEGIN CERTIFICATE-----")
}

impl Config {
    /// A write replaces the whole configuration, as in Vault: fields left
    /// out take their defaults.
    pub fn from_request(data: &Map<String, Value>) -> Result<Config, LogicalError> {
        let f = Fields::new(data);
        let text = |k: &str| f.str(k).map(|v| v.unwrap_or_default().trim().to_owned());
        let c = Config {
            kubernetes_host: text("kubernetes_host")?,
            kubernetes_ca_cert: text("kubernetes_ca_cert")?,
            token_reviewer_jwt: SecretString::new(text("token_reviewer_jwt")?),
            pem_keys: f.str_list("pem_keys")?.unwrap_or_default(),
            issuer: text("issuer")?,
            disable_iss_validation: f.bool("disable_iss_validation")?.unwrap_or(true),
            disable_local_ca_jwt: f.bool("disable_local_ca_jwt")?.unwrap_or(false),
            use_annotations_as_alias_metadata: f
                .bool("use_annotations_as_alias_metadata")?
                .unwrap_or(false),
            review: match text("review")?.as_str() {
                "" | "tokenreview" => Review::Tokenreview,
                "local" => Review::Local,
                other => {
                    return Err(bad(format!(
                        "review must be \"tokenreview\" or \"local\", not {other:?}"
                    )));
                }
            },
            jwks_url: text("jwks_url")?,
            oidc_discovery_url: text("oidc_discovery_url")?,
            jwks_ca_pem: text("jwks_ca_pem")?,
        };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), LogicalError> {
        if self.kubernetes_host.is_empty() {
            return Err(bad("no host provided"));
        }
        let url = super::apiserver::base_url(&self.kubernetes_host);
        if reqwest::Url::parse(&url).is_err() {
            return Err(bad(format!(
                "kubernetes_host {:?} is not a host, host:port or URL",
                self.kubernetes_host
            )));
        }
        if !self.kubernetes_ca_cert.is_empty() && !has_certificate(&self.kubernetes_ca_cert) {
            return Err(bad(
                "kubernetes_ca_cert must hold at least one PEM certificate",
            ));
        }
        if !self.jwks_ca_pem.is_empty() && !has_certificate(&self.jwks_ca_pem) {
            return Err(bad("jwks_ca_pem must hold at least one PEM certificate"));
        }
        if !self.token_reviewer_jwt.is_empty()
            && let Err(e) = jsonwebtoken::decode_header(self.token_reviewer_jwt.expose())
        {
            return Err(bad(format!("token_reviewer_jwt is not a JWT: {e}")));
        }
        keys::check_pems("pem_keys", &self.pem_keys)?;
        if !self.jwks_url.is_empty() && !self.oidc_discovery_url.is_empty() {
            return Err(bad("set at most one of jwks_url and oidc_discovery_url"));
        }
        if self.review == Review::Local
            && self.pem_keys.is_empty()
            && self.jwks_url.is_empty()
            && self.oidc_discovery_url.is_empty()
        {
            return Err(bad(
                "review \"local\" verifies signatures here: set pem_keys, jwks_url or oidc_discovery_url",
            ));
        }
        Ok(())
    }

    /// The configuration as reads show it: never the reviewer token.
    pub fn to_api(&self) -> Map<String, Value> {
        let v = json!({
            "kubernetes_host": self.kubernetes_host,
            "kubernetes_ca_cert": self.kubernetes_ca_cert,
            "token_reviewer_jwt_set": !self.token_reviewer_jwt.is_empty(),
            "pem_keys": self.pem_keys,
            "issuer": self.issuer,
            "disable_iss_validation": self.disable_iss_validation,
            "disable_local_ca_jwt": self.disable_local_ca_jwt,
            "use_annotations_as_alias_metadata": self.use_annotations_as_alias_metadata,
            "review": self.review,
            "jwks_url": self.jwks_url,
            "oidc_discovery_url": self.oidc_discovery_url,
            "jwks_ca_pem": self.jwks_ca_pem,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}
