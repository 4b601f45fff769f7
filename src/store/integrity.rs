//! Damage to the embedded index found while the operator runs.
//!
//! At start-up, `EmbeddedStore::open_or_rebuild` checks every file and
//! rebuilds a damaged index from Confluence. A file damaged later (a failing
//! disk, a stray write to the volume) would otherwise be served until the
//! next restart, and a damaged posting list can give silently wrong results.
//! So the committed index is checked again on an interval; damage seen twice
//! in a row (a single failure could be a file being replaced) ends the wait
//! with the reason, and the caller restarts the process, whose start-up
//! check moves the index aside and rebuilds it.
//!
//! A write that leaves the index writer unable to start again (its
//! directory removed under the process) ends the wait at once, whatever the
//! interval: nothing more can be stored until a restart opens the index
//! afresh, and the spaces' counts then no longer match, so they resync.

use crate::store::embedded::EmbeddedStore;
use std::sync::Arc;
use std::time::Duration;

/// Why the running operator must give up its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// Files fail their checksums, or were removed.
    Damaged(String),
    /// The writer can take no more writes.
    Unusable(String),
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trouble::Damaged(why) => write!(
                f,
                "the embedded index is damaged ({why}); exiting so that the restart rebuilds it from Confluence"
            ),
            Trouble::Unusable(why) => write!(
                f,
                "the embedded index is unusable ({why}); exiting so that the restart opens it afresh and refills it from Confluence"
            ),
        }
    }
}

/// Waits until `store` must be given up: its writer unusable, or (when
/// `every` is not zero) its files failing the check made every `every`.
pub async fn wait_for_trouble(store: Arc<EmbeddedStore>, every: Duration) -> Trouble {
    tokio::select! {
        why = store.wait_unusable() => Trouble::Unusable(why),
        why = wait_for_damage(store.clone(), every), if !every.is_zero() => Trouble::Damaged(why),
    }
}

/// Checks `store` every `every` until its files fail their checksums twice
/// in a row; returns why. Checks that cannot run to their end are retried at
/// the next tick.
async fn wait_for_damage(store: Arc<EmbeddedStore>, every: Duration) -> String {
    let mut suspect: Option<String> = None;
    loop {
        tokio::time::sleep(every).await;
        let check = store.clone();
        let found = match tokio::task::spawn_blocking(move || check.find_damage()).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "index check did not finish; retrying later");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "index check panicked; retrying later");
                continue;
            }
        };
        match (found, suspect.take()) {
            (Some(why), Some(_)) => return why,
            (Some(why), None) => {
                tracing::warn!(reason = %why, "embedded index failed its check; checking again");
                suspect = Some(why);
                // Confirm soon rather than a whole interval later.
                tokio::time::sleep(Duration::from_millis(500).min(every)).await;
            }
            (None, _) => {}
        }
    }
}
