//! Caches a verifier's answers so that a busy caller costs one TokenReview
//! (or one signature check) per token and TTL, not one per request.
//!
//! * Accepted tokens are remembered for `accepted_ttl` (default 60 s), and
//!   never beyond the token's own `exp` when it is a JWT: a revoked token
//!   (its ServiceAccount deleted) can be accepted for at most that long,
//!   plus the API server's own cache of successful authentications (10 s).
//! * Refused tokens are remembered for `refused_ttl` (default 10 s).
//! * "Could not check" answers are not cached.
//!
//! Only identities are cached, never segments: those come from the current
//! bindings on every request (see [`super::bindings`]). Entries are keyed by
//! the token's SHA-256, so the cache holds no token.

use super::{AuthError, Identity, Verifier};
use async_trait::async_trait;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a refused token is remembered.
pub const REFUSED_TTL: Duration = Duration::from_secs(10);

/// Most tokens remembered; beyond it expired entries are dropped, and if
/// that is not enough the cache starts over.
const MAX_ENTRIES: usize = 10_000;

type Key = [u8; 32];

enum Answer {
    Accepted(Identity),
    Refused(&'static str),
}

pub struct CachingVerifier {
    inner: Arc<dyn Verifier>,
    accepted_ttl: Duration,
    refused_ttl: Duration,
    entries: Mutex<HashMap<Key, (Instant, Answer)>>,
}

impl CachingVerifier {
    pub fn new(inner: Arc<dyn Verifier>, accepted_ttl: Duration, refused_ttl: Duration) -> Self {
        Self {
            inner,
            accepted_ttl,
            refused_ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lookup(&self, key: &Key) -> Option<Result<Identity, AuthError>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (until, answer) = entries.get(key)?;
        if *until <= Instant::now() {
            return None;
        }
        Some(match answer {
            Answer::Accepted(identity) => Ok(identity.clone()),
            Answer::Refused(why) => Err(AuthError::Refused(why)),
        })
    }

    fn remember(&self, key: Key, ttl: Duration, answer: Answer) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (now + ttl, answer));
    }
}

#[async_trait]
impl Verifier for CachingVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        if let Some(answer) = self.lookup(&key) {
            return answer;
        }
        match self.inner.verify(token).await {
            Ok(identity) => {
                let ttl = jwt_remaining(token)
                    .map_or(self.accepted_ttl, |left| left.min(self.accepted_ttl));
                self.remember(key, ttl, Answer::Accepted(identity.clone()));
                Ok(identity)
            }
            Err(AuthError::Refused(why)) => {
                self.remember(key, self.refused_ttl, Answer::Refused(why));
                Err(AuthError::Refused(why))
            }
            Err(e) => Err(e),
        }
    }
}

/// Time until a JWT's `exp`, read WITHOUT checking the signature: it is
/// only used to shorten how long an accepted answer is kept, never to
/// accept anything.
fn jwt_remaining(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(AtomicU32);

    #[async_trait]
    impl Verifier for Counting {
        async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            match token {
                "good" => Ok(Identity {
                    username: "u".into(),
                    ..Default::default()
                }),
                "down" => Err(AuthError::Unavailable("x".into())),
                _ => Err(AuthError::Refused("bad")),
            }
        }
    }

    #[tokio::test]
    async fn answers_are_cached_until_their_ttl() {
        let inner = Arc::new(Counting(AtomicU32::new(0)));
        let cache = CachingVerifier::new(
            inner.clone(),
            Duration::from_millis(200),
            Duration::from_secs(10),
        );
        for _ in 0..3 {
            assert!(cache.verify("good").await.is_ok());
            assert!(cache.verify("bad").await.is_err());
            assert!(cache.verify("down").await.is_err());
        }
        // good once, bad once, down every time.
        assert_eq!(inner.0.load(Ordering::SeqCst), 5);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(cache.verify("good").await.is_ok());
        assert_eq!(inner.0.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn expired_jwts_are_not_kept() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1}"#);
        assert_eq!(
            jwt_remaining(&format!("h.{payload}.s")),
            Some(Duration::ZERO)
        );
        assert_eq!(jwt_remaining("not-a-jwt"), None);
    }
}
