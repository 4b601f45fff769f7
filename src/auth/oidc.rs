//! `--auth=oidc`: bearer JWTs from an OpenID Connect issuer, for callers
//! outside the cluster. The signature is checked against the issuer's JWKS
//! (found through its discovery document unless `--oidc-jwks-url` is
//! given), and `iss`, `aud` and `exp` are required and checked.

use super::{AuthError, Identity, Verifier};
use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use url::Url;

/// Keys are re-read after this long even if every `kid` is known.
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
/// An unknown `kid` triggers a re-read at most this often, so that junk
/// tokens cannot make us hammer the issuer.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// Only signatures with the issuer's public keys: no `none`, no HMAC.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `iss` every token must carry, e.g. `https://login.example.com`.
    pub issuer: Url,
    /// `aud` every token must carry.
    pub audience: String,
    /// Where the keys are; default: `jwks_uri` of the issuer's discovery document.
    pub jwks_url: Option<Url>,
    /// Claim holding the user name (default `sub`).
    pub username_claim: String,
    /// Claim holding the groups (default `groups`).
    pub groups_claim: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{0} must be https (http is accepted for loopback addresses only)")]
    Insecure(&'static str),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

pub struct OidcVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
}

fn is_secure(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

impl OidcVerifier {
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        if !is_secure(&config.issuer) {
            return Err(OidcError::Insecure("--oidc-issuer-url"));
        }
        if config.jwks_url.as_ref().is_some_and(|u| !is_secure(u)) {
            return Err(OidcError::Insecure("--oidc-jwks-url"));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Client(e.to_string()))?;
        Ok(Self {
            config,
            http,
            keys: RwLock::new(None),
        })
    }

    /// The issuer URL without a trailing slash.
    fn issuer(&self) -> String {
        self.config
            .issuer
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }

    async fn jwks_url(&self) -> Result<Url, AuthError> {
        if let Some(url) = &self.config.jwks_url {
            return Ok(url.clone());
        }
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer());
        let doc: serde_json::Value = self
            .get_json(&discovery)
            .await
            .map_err(|e| AuthError::Unavailable(format!("OIDC discovery: {e}")))?;
        let jwks = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| AuthError::Unavailable("OIDC discovery lists no jwks_uri".into()))?;
        let url =
            Url::parse(jwks).map_err(|e| AuthError::Unavailable(format!("OIDC jwks_uri: {e}")))?;
        if !is_secure(&url) {
            return Err(AuthError::Unavailable("OIDC jwks_uri is not https".into()));
        }
        Ok(url)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        self.http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.without_url().to_string())?
            .json()
            .await
            .map_err(|e| e.without_url().to_string())
    }

    async fn fetch_keys(&self) -> Result<JwkSet, AuthError> {
        let url = self.jwks_url().await?;
        self.get_json(url.as_str())
            .await
            .map_err(|e| AuthError::Unavailable(format!("OIDC JWKS: {e}")))
    }

    /// The key for `kid` (or the only key when the token names none),
    /// re-reading the JWKS when it is old or lacks the key.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let find = |set: &JwkSet| -> Option<DecodingKey> {
            let jwk = match kid {
                Some(kid) => set.find(kid),
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            }?;
            DecodingKey::from_jwk(jwk).ok()
        };
        let mut stale = None;
        {
            let cached = self.keys.read().await;
            if let Some((at, set)) = cached.as_ref() {
                match find(set) {
                    Some(key) if at.elapsed() < JWKS_MAX_AGE => return Ok(key),
                    Some(key) => stale = Some(key),
                    None if at.elapsed() < JWKS_MIN_REFRESH => {
                        return Err(AuthError::Refused("token signed with an unknown key"));
                    }
                    None => {}
                }
            }
        }
        let set = match (self.fetch_keys().await, stale) {
            (Ok(set), _) => set,
            // An issuer briefly down does not lock out callers whose key
            // we already know.
            (Err(e), Some(key)) => {
                tracing::warn!(error = %e, "cannot refresh the OIDC keys; using the known ones");
                return Ok(key);
            }
            (Err(e), None) => return Err(e),
        };
        let key = find(&set);
        *self.keys.write().await = Some((Instant::now(), set));
        key.ok_or(AuthError::Refused("token signed with an unknown key"))
    }
}

#[async_trait]
impl Verifier for OidcVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Refused("not a JWT"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(AuthError::Refused("JWT algorithm not accepted"));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.config.audience]);
        // Issuers differ on a trailing slash in `iss`; the configured URL
        // matches either form, nothing else.
        let issuer = self.issuer();
        validation.set_issuer(&[issuer.clone(), format!("{issuer}/")]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_SECONDS;
        let data = decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
            .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            AuthError::Refused(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidAudience => "token is for another audience",
                ErrorKind::InvalidIssuer => "token is from another issuer",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::ImmatureSignature => "token not valid yet",
                _ => "token is invalid",
            })
        })?;
        identity(&data.claims, &self.config)
    }
}

/// The identity in verified claims. Names in the `system:` namespace are
/// Kubernetes' own and are refused, so that an issuer cannot pose as a
/// ServiceAccount or a built-in group in a binding.
fn identity(
    claims: &serde_json::Map<String, serde_json::Value>,
    config: &OidcConfig,
) -> Result<Identity, AuthError> {
    let mut strings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in claims {
        let values: Vec<String> = match value {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => continue,
        };
        strings.insert(name.clone(), values);
    }
    let username = match claims.get(&config.username_claim) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(AuthError::Refused("token lacks the username claim")),
    };
    if username.starts_with("system:") {
        return Err(AuthError::Refused("token claims a reserved user name"));
    }
    let groups = strings
        .get(&config.groups_claim)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|g| !g.starts_with("system:"))
        .collect();
    Ok(Identity {
        username,
        groups,
        claims: strings,
    })
}
