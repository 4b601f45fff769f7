//! `--auth=kubernetes`: bearer tokens checked by the API server with a
//! TokenReview that names our audience, so that a token minted for another
//! service (or a plain API-server token) is refused.

use super::{AuthError, Identity, Verifier};
use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use std::collections::BTreeMap;

pub struct TokenReviewVerifier {
    api: Api<TokenReview>,
    audience: String,
}

impl TokenReviewVerifier {
    pub fn new(client: kube::Client, audience: impl Into<String>) -> Self {
        Self {
            api: Api::all(client),
            audience: audience.into(),
        }
    }
}

#[async_trait]
impl Verifier for TokenReviewVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..Default::default()
        };
        let answer = self
            .api
            .create(&PostParams::default(), &review)
            .await
            // The error carries the API server's message, never the token.
            .map_err(|e| AuthError::Unavailable(format!("TokenReview failed: {e}")))?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(AuthError::Refused("token not authenticated"));
        }
        // An API server that ignores audiences answers without them; only
        // an explicit match with ours counts.
        let audience_ok = status
            .audiences
            .unwrap_or_default()
            .iter()
            .any(|a| a == &self.audience);
        if !audience_ok {
            return Err(AuthError::Refused("token is for another audience"));
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        if username.is_empty() {
            return Err(AuthError::Refused("token has no user name"));
        }
        Ok(Identity {
            username,
            groups: user.groups.unwrap_or_default(),
            claims: BTreeMap::new(),
        })
    }
}
