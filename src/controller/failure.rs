//! Why a sync or a connection check failed, and what follows: a retry with
//! backoff, or a stall until the user acts.

use super::Error;
use super::credentials::SiteError;
use crate::api::conditions::{self, Reason};
use crate::confluence::ConfluenceError;
use crate::sync::SyncError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// What follows a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Waiting may fix it: retried with backoff (`Reconciling`).
    Retry,
    /// The user must fix a spec or Secret first (`Stalled`).
    Stall,
}

/// A failed sync or connection check. Its message is what users read in
/// conditions, the status and Events.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The site's settings, Secret or CA bundle cannot be used.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// Confluence refused or failed a request.
    #[error(transparent)]
    Source(#[from] ConfluenceError),
    /// The sync engine failed, on Confluence's side or a store's.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Writing the space's owner reference or `Syncing` status failed.
    #[error(transparent)]
    Announce(Error),
}

impl Failure {
    pub fn reason(&self) -> Reason {
        match self {
            Failure::Site(e) => site_reason(e),
            Failure::Source(e) | Failure::Sync(SyncError::Source(e)) => source_reason(e),
            Failure::Sync(SyncError::Store { .. }) => Reason::StoreFailed,
            Failure::Announce(_) => Reason::ConnectionFailed,
        }
    }

    pub fn next(&self) -> Next {
        let user_must_act = match self {
            Failure::Site(e) => e.needs_user_action(),
            Failure::Source(e) | Failure::Sync(SyncError::Source(e)) => e.is_permanent(),
            Failure::Sync(SyncError::Store { .. }) | Failure::Announce(_) => false,
        };
        if user_must_act {
            Next::Stall
        } else {
            Next::Retry
        }
    }

    /// Sets the kstatus conditions that tell this failure.
    pub fn mark(&self, conditions: &mut Vec<Condition>, generation: Option<i64>) {
        let message = self.to_string();
        match self.next() {
            Next::Stall => {
                conditions::mark_stalled(conditions, self.reason(), &message, generation)
            }
            Next::Retry => {
                conditions::mark_retrying(conditions, self.reason(), &message, generation)
            }
        }
    }
}

fn site_reason(e: &SiteError) -> Reason {
    match e {
        SiteError::SecretNotFound { .. } => Reason::SecretNotFound,
        SiteError::NoCredentials { .. } => Reason::InvalidCredentials,
        SiteError::InvalidUrl { .. } | SiteError::InsecureUrl => Reason::InvalidSpec,
        SiteError::Kube { .. } => Reason::ConnectionFailed,
        SiteError::CaBundleNotFound { .. } => Reason::CaBundleNotFound,
        SiteError::CaBundleInvalid { .. } => Reason::TlsError,
    }
}

fn source_reason(e: &ConfluenceError) -> Reason {
    match e {
        ConfluenceError::Unauthorized => Reason::InvalidCredentials,
        ConfluenceError::Forbidden(_) => Reason::AccessDenied,
        ConfluenceError::SpaceNotFound(_) => Reason::SpaceNotFound,
        ConfluenceError::PersonalSpace(_) => Reason::PersonalSpaceRefused,
        ConfluenceError::Config(_) => Reason::InvalidSpec,
        ConfluenceError::Tls(_) => Reason::TlsError,
        ConfluenceError::Protocol(_) | ConfluenceError::TooLarge { .. } => Reason::InvalidResponse,
        _ => Reason::ConnectionFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn told(f: &Failure) -> (&'static str, String, Next) {
        (f.reason().as_str(), f.to_string(), f.next())
    }

    #[test]
    fn confluence_errors_keep_reason_message_and_next_step() {
        let f = Failure::from(ConfluenceError::Unauthorized);
        assert_eq!(
            told(&f),
            (
                "InvalidCredentials",
                "Confluence rejected the credentials (HTTP 401): check the Secret's token".into(),
                Next::Stall
            )
        );
        let f = Failure::from(ConfluenceError::Transient("reset".into()));
        assert_eq!(
            told(&f),
            (
                "ConnectionFailed",
                "transient error talking to Confluence: reset".into(),
                Next::Retry
            )
        );
        let f = Failure::from(ConfluenceError::TooLarge {
            path: "/x".into(),
            limit_mib: 1,
        });
        assert_eq!(
            (f.reason(), f.next()),
            (Reason::InvalidResponse, Next::Retry)
        );
        let f = Failure::from(ConfluenceError::Tls("bad".into()));
        assert_eq!((f.reason(), f.next()), (Reason::TlsError, Next::Stall));
    }

    /// A Confluence error met by the sync engine reads as the same error met
    /// by the controller itself.
    #[test]
    fn sync_errors_from_confluence_read_as_confluence_errors() {
        let direct = Failure::from(ConfluenceError::Forbidden("space ENG".into()));
        let via_sync = Failure::from(SyncError::Source(ConfluenceError::Forbidden(
            "space ENG".into(),
        )));
        assert_eq!(told(&direct), told(&via_sync));
        assert_eq!(direct.reason(), Reason::AccessDenied);
        assert_eq!(direct.next(), Next::Stall);
    }

    #[test]
    fn store_errors_are_retried() {
        let f = Failure::from(SyncError::Store {
            store: "embedded".into(),
            source: StoreError::Io("disk full".into()),
        });
        assert_eq!(
            told(&f),
            (
                "StoreFailed",
                "store embedded: store I/O failed: disk full".into(),
                Next::Retry
            )
        );
    }

    #[test]
    fn site_errors_keep_reason_and_next_step() {
        let missing = Failure::from(SiteError::SecretNotFound {
            name: "creds".into(),
            site: "acme".into(),
            namespace: "docs".into(),
        });
        assert_eq!(
            told(&missing),
            (
                "SecretNotFound",
                r#"Secret "creds" (credentialsSecretRef of ConfluenceSite "acme") not found in namespace "docs""#.into(),
                Next::Retry
            )
        );
        let insecure = Failure::from(SiteError::InsecureUrl);
        assert_eq!(
            (insecure.reason(), insecure.next()),
            (Reason::InvalidSpec, Next::Stall)
        );
        let empty = Failure::from(SiteError::NoCredentials {
            name: "creds".into(),
        });
        assert_eq!(
            (empty.reason(), empty.next()),
            (Reason::InvalidCredentials, Next::Stall)
        );
    }

    #[test]
    fn announce_errors_are_connection_failures_retried() {
        let f = Failure::Announce(Error::Finalizer("x".into()));
        assert_eq!(
            told(&f),
            ("ConnectionFailed", "finalizer: x".into(), Next::Retry)
        );
    }

    #[test]
    fn mark_stalls_or_retries() {
        let mut c = Vec::new();
        Failure::from(ConfluenceError::Unauthorized).mark(&mut c, Some(3));
        assert!(conditions::is_true(&c, conditions::STALLED));
        assert!(!conditions::is_true(&c, conditions::RECONCILING));
        let ready = conditions::get(&c, conditions::READY).unwrap();
        assert_eq!(ready.reason, "InvalidCredentials");
        assert_eq!(ready.observed_generation, Some(3));

        let mut c = Vec::new();
        Failure::from(ConfluenceError::Transient("reset".into())).mark(&mut c, Some(3));
        assert!(!conditions::is_true(&c, conditions::STALLED));
        assert!(conditions::is_true(&c, conditions::RECONCILING));
        let ready = conditions::get(&c, conditions::READY).unwrap();
        assert_eq!(
            ready.message,
            "transient error talking to Confluence: reset"
        );
    }
}
