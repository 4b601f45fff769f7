//! Who is asking: turns a request's credentials into the viewer segments it
//! holds, for `/v1/*` and `/mcp` alike.
//!
//! * No credentials: anonymous, only content visible to `Everyone`.
//! * A valid bearer token (TokenReview or OIDC) or a gateway's identity
//!   headers: [`SIGNED_IN_USERS`] plus whatever [`ViewerBinding`]s grant.
//! * An invalid, expired or foreign token: refused (401); never downgraded
//!   to anonymous, so a caller notices a broken token.
//!
//! The request's own `segments=` can only narrow what the caller holds
//! ([`Grant::effective`]).
//!
//! [`ViewerBinding`]: crate::api::ViewerBinding

pub mod bindings;
pub mod cache;
pub mod kubernetes;
pub mod oidc;

use async_trait::async_trait;
use axum::http::HeaderMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use bindings::{BindingIndex, Bindings};
pub use cache::CachingVerifier;
pub use kubernetes::TokenReviewVerifier;
pub use oidc::{OidcConfig, OidcVerifier};

/// Segment every authenticated caller holds.
pub const SIGNED_IN_USERS: &str = "signed-in-users";

/// Gateway headers read in `trusted-header` mode (the names the Kubernetes
/// front proxy uses).
pub const USER_HEADER: &str = "x-remote-user";
pub const GROUP_HEADER: &str = "x-remote-group";

/// How callers authenticate, chosen by `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Bearer tokens checked with a TokenReview against an audience.
    Kubernetes,
    /// Bearer JWTs checked against an OIDC issuer's keys.
    Oidc,
    /// Identity headers set by an authenticating gateway, accepted only on
    /// the separate `--trusted-header-listen` listener.
    TrustedHeader,
    /// No authentication: the request's `segments=` is believed. Local
    /// development and the demo only.
    None,
}

/// An authenticated caller, as its verifier reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `system:serviceaccount:<ns>:<name>`, a user name, or the OIDC username claim.
    pub username: String,
    pub groups: Vec<String>,
    /// OIDC claims with string or string-list values (empty otherwise), for
    /// `Claim` subjects.
    pub claims: BTreeMap<String, Vec<String>>,
}

/// Why a request was not authenticated. Deliberately coarse: the caller
/// learns only "401" or "try again", never why its token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The credentials are wrong, expired, for another audience, or not
    /// accepted on this listener.
    #[error("credentials refused: {0}")]
    Refused(&'static str),
    /// The verifier could not decide (API server or issuer unreachable).
    #[error("credentials could not be checked: {0}")]
    Unavailable(String),
}

/// Checks one bearer token.
#[async_trait]
pub trait Verifier: Send + Sync {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError>;
}

/// What a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `--auth=none`: whatever the request names.
    Unchecked,
    /// Exactly these segments (empty: anonymous, `Everyone` only).
    Segments(BTreeSet<String>),
}

impl Grant {
    /// The segments a query runs with: the held ones, narrowed to those the
    /// request names when it names any. Never more than held.
    pub fn effective(&self, requested: &[String]) -> Vec<String> {
        match self {
            Grant::Unchecked => requested.to_vec(),
            Grant::Segments(held) if requested.is_empty() => held.iter().cloned().collect(),
            Grant::Segments(held) => {
                let mut out: Vec<String> = requested
                    .iter()
                    .filter(|s| held.contains(*s))
                    .cloned()
                    .collect();
                out.sort();
                out.dedup();
                out
            }
        }
    }
}

/// The authenticated caller of one request; handlers read it from the
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// `None` for anonymous callers and in `none` mode.
    pub identity: Option<Identity>,
    pub grant: Grant,
}

impl Viewer {
    pub fn anonymous() -> Self {
        Self {
            identity: None,
            grant: Grant::Segments(BTreeSet::new()),
        }
    }
}

/// Where identities come from on one listener.
#[derive(Clone)]
enum Source {
    Unchecked,
    Bearer(Arc<dyn Verifier>),
    Headers,
    /// A listener that takes no credentials at all (the main listener in
    /// `trusted-header` mode).
    AnonymousOnly,
}

/// Authenticates requests of one listener.
#[derive(Clone)]
pub struct Authenticator {
    source: Source,
    bindings: Arc<dyn Bindings>,
}

impl Authenticator {
    /// `--auth=none`.
    pub fn none() -> Self {
        Self {
            source: Source::Unchecked,
            bindings: Arc::new(bindings::NoBindings),
        }
    }

    /// Bearer tokens checked by `verifier`, segments from `bindings`.
    pub fn bearer(verifier: Arc<dyn Verifier>, bindings: Arc<dyn Bindings>) -> Self {
        Self {
            source: Source::Bearer(verifier),
            bindings,
        }
    }

    /// The gateway's listener in `trusted-header` mode.
    pub fn trusted_headers(bindings: Arc<dyn Bindings>) -> Self {
        Self {
            source: Source::Headers,
            bindings,
        }
    }

    /// A listener serving anonymous callers only; any credentials are refused.
    pub fn anonymous_only() -> Self {
        Self {
            source: Source::AnonymousOnly,
            bindings: Arc::new(bindings::NoBindings),
        }
    }

    /// Whether this listener believes the request's `segments=`.
    pub fn is_unchecked(&self) -> bool {
        matches!(self.source, Source::Unchecked)
    }

    /// The caller of a request with these headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Viewer, AuthError> {
        let identity = match &self.source {
            Source::Unchecked => {
                return Ok(Viewer {
                    identity: None,
                    grant: Grant::Unchecked,
                });
            }
            Source::AnonymousOnly => {
                if headers.contains_key(axum::http::header::AUTHORIZATION) {
                    return Err(AuthError::Refused("this listener accepts no credentials"));
                }
                None
            }
            Source::Bearer(verifier) => match bearer_token(headers)? {
                Some(token) => Some(verifier.verify(token).await?),
                None => None,
            },
            Source::Headers => gateway_identity(headers)?,
        };
        Ok(match identity {
            None => Viewer::anonymous(),
            Some(identity) => {
                let mut held = self.bindings.segments_for(&identity);
                held.insert(SIGNED_IN_USERS.to_string());
                Viewer {
                    identity: Some(identity),
                    grant: Grant::Segments(held),
                }
            }
        })
    }
}

/// The token of `Authorization: Bearer <token>`; `None` without the header.
/// Any other scheme, or an empty token, is refused rather than ignored.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Refused("authorization header is not text"))?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Refused(
        "authorization header is not a bearer token",
    ))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Refused(
            "authorization header is not a bearer token",
        ));
    }
    Ok(Some(token))
}

/// The identity a gateway asserted; `None` when it sent no user (anonymous).
fn gateway_identity(headers: &HeaderMap) -> Result<Option<Identity>, AuthError> {
    let user = match headers.get(USER_HEADER) {
        None => return Ok(None),
        Some(v) => v
            .to_str()
            .map_err(|_| AuthError::Refused("user header is not text"))?
            .trim()
            .to_string(),
    };
    if user.is_empty() {
        return Err(AuthError::Refused("user header is empty"));
    }
    let mut groups = Vec::new();
    for value in headers.get_all(GROUP_HEADER) {
        let value = value
            .to_str()
            .map_err(|_| AuthError::Refused("group header is not text"))?;
        groups.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string),
        );
    }
    Ok(Some(Identity {
        username: user,
        groups,
        claims: BTreeMap::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(s: &[&str]) -> Grant {
        Grant::Segments(s.iter().map(|s| s.to_string()).collect())
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn requested_segments_only_narrow() {
        let g = held(&["agents-and-admins", "signed-in-users"]);
        assert_eq!(
            g.effective(&[]),
            v(&["agents-and-admins", "signed-in-users"])
        );
        assert_eq!(
            g.effective(&v(&["agents-and-admins", "sre"])),
            v(&["agents-and-admins"])
        );
        assert!(g.effective(&v(&["sre"])).is_empty());
        assert!(held(&[]).effective(&v(&["agents-and-admins"])).is_empty());
        assert_eq!(Grant::Unchecked.effective(&v(&["x"])), v(&["x"]));
    }

    #[test]
    fn bearer_header_forms() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer_token(&h), Ok(None)));
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert!(matches!(bearer_token(&h), Ok(Some("abc"))));
        for bad in ["Basic abc", "Bearer", "Bearer  ", "abc"] {
            h.insert("authorization", bad.parse().unwrap());
            assert!(bearer_token(&h).is_err(), "{bad}");
        }
    }
}
