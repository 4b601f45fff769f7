//! kstatus-style conditions (`Ready`, `Reconciling`, `Stalled`) so that
//! `kubectl wait --for=condition=Ready`, Flux, Argo CD and kstatus readers
//! understand our objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// Machine-readable reasons, one per situation a user can act on. Conditions
/// and Events share them; the last few only ever name an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Synced,
    Connected,
    Progressing,
    SyncFailed,
    SiteNotFound,
    SiteNotReady,
    SecretNotFound,
    InvalidCredentials,
    InvalidSpec,
    PersonalSpaceRefused,
    SpaceNotFound,
    AccessDenied,
    ConnectionFailed,
    /// Confluence (or something in its place) answered what the operator
    /// cannot use: not JSON, undecodable, too large, or a redirect or link
    /// to another host.
    InvalidResponse,
    Suspended,
    StoreFailed,
    CaBundleNotFound,
    TlsError,
    /// A ViewerBinding in force.
    Bound,
    /// Event: a sync began.
    SyncStarted,
    /// Event: a deleted space's content left every store.
    ContentRemoved,
    /// Event: a store started empty after damage and the space resyncs.
    IndexRebuilt,
    /// Event: a sync left out or kept items it could not vet.
    ItemsNotVetted,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Synced => "Synced",
            Reason::Connected => "Connected",
            Reason::Progressing => "Progressing",
            Reason::SyncFailed => "SyncFailed",
            Reason::SiteNotFound => "SiteNotFound",
            Reason::SiteNotReady => "SiteNotReady",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::InvalidCredentials => "InvalidCredentials",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::PersonalSpaceRefused => "PersonalSpaceRefused",
            Reason::SpaceNotFound => "SpaceNotFound",
            Reason::AccessDenied => "AccessDenied",
            Reason::ConnectionFailed => "ConnectionFailed",
            Reason::InvalidResponse => "InvalidResponse",
            Reason::Suspended => "Suspended",
            Reason::StoreFailed => "StoreFailed",
            Reason::CaBundleNotFound => "CABundleNotFound",
            Reason::TlsError => "TLSError",
            Reason::Bound => "Bound",
            Reason::SyncStarted => "SyncStarted",
            Reason::ContentRemoved => "ContentRemoved",
            Reason::IndexRebuilt => "IndexRebuilt",
            Reason::ItemsNotVetted => "ItemsNotVetted",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The condition reasons as strings, for code that reads conditions back.
pub mod reason {
    use super::Reason;

    pub const SYNCED: &str = Reason::Synced.as_str();
    pub const CONNECTED: &str = Reason::Connected.as_str();
    pub const PROGRESSING: &str = Reason::Progressing.as_str();
    pub const SYNC_FAILED: &str = Reason::SyncFailed.as_str();
    pub const SITE_NOT_FOUND: &str = Reason::SiteNotFound.as_str();
    pub const SITE_NOT_READY: &str = Reason::SiteNotReady.as_str();
    pub const SECRET_NOT_FOUND: &str = Reason::SecretNotFound.as_str();
    pub const INVALID_CREDENTIALS: &str = Reason::InvalidCredentials.as_str();
    pub const INVALID_SPEC: &str = Reason::InvalidSpec.as_str();
    pub const PERSONAL_SPACE: &str = Reason::PersonalSpaceRefused.as_str();
    pub const SPACE_NOT_FOUND: &str = Reason::SpaceNotFound.as_str();
    pub const ACCESS_DENIED: &str = Reason::AccessDenied.as_str();
    pub const CONNECTION_FAILED: &str = Reason::ConnectionFailed.as_str();
    pub const INVALID_RESPONSE: &str = Reason::InvalidResponse.as_str();
    pub const SUSPENDED: &str = Reason::Suspended.as_str();
    pub const STORE_FAILED: &str = Reason::StoreFailed.as_str();
    pub const CA_BUNDLE_NOT_FOUND: &str = Reason::CaBundleNotFound.as_str();
    pub const TLS_ERROR: &str = Reason::TlsError.as_str();
}

/// Sets (or replaces) a condition, keeping `lastTransitionTime` when the
/// status did not change, as the Kubernetes API conventions require.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: Reason,
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
            existing.reason = reason.as_str().to_string();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.as_str().to_string(),
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
    reason: Reason,
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
    reason: Reason,
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
    reason: Reason,
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
    reason: Reason,
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
        set(&mut c, READY, true, Reason::Synced, "first", Some(1));
        let t0 = c[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        set(&mut c, READY, true, Reason::Connected, "second", Some(2));
        assert_eq!(c[0].last_transition_time, t0);
        assert_eq!(c[0].reason, "Connected");
        set(&mut c, READY, false, Reason::Progressing, "third", Some(2));
        assert_ne!(c[0].last_transition_time, t0);
    }

    #[test]
    fn stalled_then_ready_clears_stalled() {
        let mut c = Vec::new();
        mark_stalled(&mut c, Reason::PersonalSpaceRefused, "no", Some(1));
        assert!(is_true(&c, STALLED));
        mark_ready(&mut c, Reason::Synced, "ok", Some(2));
        assert!(is_true(&c, READY));
        assert!(!is_true(&c, STALLED));
        assert!(!is_true(&c, RECONCILING));
    }

    /// Users, alerts and `kubectl wait` match these strings: they must not
    /// change with the code that writes them.
    #[test]
    fn reasons_keep_their_strings() {
        let expected = [
            (Reason::Synced, "Synced"),
            (Reason::Connected, "Connected"),
            (Reason::Progressing, "Progressing"),
            (Reason::SyncFailed, "SyncFailed"),
            (Reason::SiteNotFound, "SiteNotFound"),
            (Reason::SiteNotReady, "SiteNotReady"),
            (Reason::SecretNotFound, "SecretNotFound"),
            (Reason::InvalidCredentials, "InvalidCredentials"),
            (Reason::InvalidSpec, "InvalidSpec"),
            (Reason::PersonalSpaceRefused, "PersonalSpaceRefused"),
            (Reason::SpaceNotFound, "SpaceNotFound"),
            (Reason::AccessDenied, "AccessDenied"),
            (Reason::ConnectionFailed, "ConnectionFailed"),
            (Reason::InvalidResponse, "InvalidResponse"),
            (Reason::Suspended, "Suspended"),
            (Reason::StoreFailed, "StoreFailed"),
            (Reason::CaBundleNotFound, "CABundleNotFound"),
            (Reason::TlsError, "TLSError"),
            (Reason::Bound, "Bound"),
            (Reason::SyncStarted, "SyncStarted"),
            (Reason::ContentRemoved, "ContentRemoved"),
            (Reason::IndexRebuilt, "IndexRebuilt"),
            (Reason::ItemsNotVetted, "ItemsNotVetted"),
        ];
        for (r, s) in expected {
            assert_eq!(r.as_str(), s);
            assert_eq!(r.to_string(), s);
        }
        assert_eq!(reason::STORE_FAILED, "StoreFailed");
        assert_eq!(reason::PERSONAL_SPACE, "PersonalSpaceRefused");
    }

    #[test]
    fn conditions_carry_the_reason_string() {
        let mut c = Vec::new();
        mark_retrying(&mut c, Reason::CaBundleNotFound, "missing", Some(1));
        assert!(c.iter().all(|c| c.reason == "CABundleNotFound"));
    }
}
