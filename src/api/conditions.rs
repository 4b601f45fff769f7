//! kstatus-style conditions (`Ready`, `Reconciling`, `Stalled`) so that
//! `kubectl wait --for=condition=Ready`, Flux, Argo CD and kstatus readers
//! understand our objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Machine-readable reasons, one per situation a user can act on.
pub mod reason {
    pub const SYNCED: &str = "Synced";
    pub const CONNECTED: &str = "Connected";
    pub const PROGRESSING: &str = "Progressing";
    pub const SYNC_FAILED: &str = "SyncFailed";
    pub const SITE_NOT_FOUND: &str = "SiteNotFound";
    pub const SITE_NOT_READY: &str = "SiteNotReady";
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    pub const INVALID_CREDENTIALS: &str = "InvalidCredentials";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const PERSONAL_SPACE: &str = "PersonalSpaceRefused";
    pub const SPACE_NOT_FOUND: &str = "SpaceNotFound";
    pub const ACCESS_DENIED: &str = "AccessDenied";
    pub const CONNECTION_FAILED: &str = "ConnectionFailed";
    /// Confluence (or something in its place) answered what the operator
    /// cannot use: not JSON, undecodable, too large, or a redirect or link
    /// to another host.
    pub const INVALID_RESPONSE: &str = "InvalidResponse";
    pub const SUSPENDED: &str = "Suspended";
    pub const STORE_FAILED: &str = "StoreFailed";
    pub const CA_BUNDLE_NOT_FOUND: &str = "CABundleNotFound";
    pub const TLS_ERROR: &str = "TLSError";
}

/// Sets (or replaces) a condition, keeping `lastTransitionTime` when the
/// status did not change, as the Kubernetes API conventions require.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let now = Time(jiff::Timestamp::now());
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now;
            }
            existing.status = status;
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// Whether a condition is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Finds a condition by type.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The three kstatus conditions for a settled success.
pub fn mark_ready(
    conditions: &mut Vec<Condition>,
    reason: &str,
    msg: &str,
    generation: Option<i64>,
) {
    set(conditions, READY, true, reason, msg, generation);
    set(conditions, RECONCILING, false, reason, "", generation);
    set(conditions, STALLED, false, reason, "", generation);
}

/// Work in progress: Ready unknown-ish (False), Reconciling True.
pub fn mark_reconciling(
    conditions: &mut Vec<Condition>,
    reason: &str,
    msg: &str,
    generation: Option<i64>,
) {
    set(conditions, RECONCILING, true, reason, msg, generation);
    // Ready stays as it was while a resync runs, so a synced space does not
    // flap to not-ready every 24 hours; only a first sync shows Ready=False.
    if get(conditions, READY).is_none() {
        set(conditions, READY, false, reason, msg, generation);
    }
}

/// A failure that retrying may fix (Ready False, Reconciling True, Stalled False).
pub fn mark_retrying(
    conditions: &mut Vec<Condition>,
    reason: &str,
    msg: &str,
    generation: Option<i64>,
) {
    set(conditions, READY, false, reason, msg, generation);
    set(conditions, RECONCILING, true, reason, msg, generation);
    set(conditions, STALLED, false, reason, "", generation);
}

/// A failure that needs the user to act (Ready False, Stalled True).
pub fn mark_stalled(
    conditions: &mut Vec<Condition>,
    reason: &str,
    msg: &str,
    generation: Option<i64>,
) {
    set(conditions, READY, false, reason, msg, generation);
    set(conditions, RECONCILING, false, reason, "", generation);
    set(conditions, STALLED, true, reason, msg, generation);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let mut c = Vec::new();
        set(&mut c, READY, true, "A", "first", Some(1));
        let t0 = c[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        set(&mut c, READY, true, "B", "second", Some(2));
        assert_eq!(c[0].last_transition_time, t0);
        assert_eq!(c[0].reason, "B");
        set(&mut c, READY, false, "C", "third", Some(2));
        assert_ne!(c[0].last_transition_time, t0);
    }

    #[test]
    fn stalled_then_ready_clears_stalled() {
        let mut c = Vec::new();
        mark_stalled(&mut c, reason::PERSONAL_SPACE, "no", Some(1));
        assert!(is_true(&c, STALLED));
        mark_ready(&mut c, reason::SYNCED, "ok", Some(2));
        assert!(is_true(&c, READY));
        assert!(!is_true(&c, STALLED));
        assert!(!is_true(&c, RECONCILING));
    }
}
