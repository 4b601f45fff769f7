//! `--auth=kubernetes`: bearer tokens checked by the API server with a
//! TokenReview that names our audience, so that a token minted for another
//! service (or a plain API-server token) is refused.

use super::{AuthError, Identity, Verifier};
use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::Semaphore;

/// TokenReviews in flight at once: a flood of distinct junk tokens (each a
/// cache miss) queues here instead of hammering the API server.
const MAX_IN_FLIGHT: usize = 16;
/// A TokenReview not answered by then is "cannot check" (503), so that a
/// slow API server does not pile up requests.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TokenReviewVerifier {
    api: Api<TokenReview>,
    audience: String,
    in_flight: Semaphore,
}

impl TokenReviewVerifier {
    pub fn new(client: kube::Client, audience: impl Into<String>) -> Self {
        Self {
            api: Api::all(client),
            audience: audience.into(),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
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
        let review = async {
            let _permit = self
                .in_flight
                .acquire()
                .await
                .map_err(|_| AuthError::Unavailable("TokenReview limiter closed".into()))?;
            self.api
                .create(&PostParams::default(), &review)
                .await
                // The error carries the API server's message, never the token.
                .map_err(|e| AuthError::Unavailable(format!("TokenReview failed: {e}")))
        };
        let answer = tokio::time::timeout(REVIEW_TIMEOUT, review)
            .await
            .map_err(|_| AuthError::Unavailable("TokenReview timed out".into()))??;
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
