//! When a space must sync: a pure decision, so the rules are unit-tested
//! apart from the API server.

use crate::api::Outcome;
use crate::api::space::{ConfluenceSpaceStatus, SyncPhase};
use jiff::Timestamp;
use std::time::Duration;

/// Why a sync runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Never synced (or never attempted).
    Initial,
    /// `metadata.generation` moved past `status.observedGeneration`.
    SpecChanged,
    /// The space's resync annotation has a value not handled yet.
    ResyncRequested,
    /// The site's resync annotation has a value not handled yet.
    SiteResyncRequested,
    /// The sync interval elapsed.
    Interval,
    /// Retrying after a failed attempt.
    Retry,
    /// A store holds a different number of items than the last sync left
    /// (e.g. a wiped volume or an in-memory store after a restart).
    StoreOutOfDate,
    /// The status still says `Syncing` although no sync of this space runs
    /// here: the process that ran it died (killed, evicted, lost its Lease).
    Interrupted,
}

impl Trigger {
    pub fn describe(self) -> &'static str {
        match self {
            Trigger::Initial => "initial sync",
            Trigger::SpecChanged => "spec changed",
            Trigger::ResyncRequested => "resync requested",
            Trigger::SiteResyncRequested => "site resync requested",
            Trigger::Interval => "sync interval elapsed",
            Trigger::Retry => "retry after failure",
            Trigger::StoreOutOfDate => "a store is out of date",
            Trigger::Interrupted => "the previous sync was interrupted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    SyncNow(Trigger),
    /// Nothing to do until then.
    Wait(Duration),
}

/// What the decision looks at.
pub struct Inputs<'a> {
    pub generation: Option<i64>,
    pub status: &'a ConfluenceSpaceStatus,
    pub resync_annotation: Option<&'a str>,
    pub site_resync_annotation: Option<&'a str>,
    pub interval: Duration,
    /// Earliest time a failed space may retry (from the backoff), if it failed.
    pub retry_at: Option<Timestamp>,
    pub now: Timestamp,
}

pub fn decide(i: &Inputs<'_>) -> Decision {
    let s = i.status;
    if i.generation.is_some() && s.observed_generation != i.generation {
        return Decision::SyncNow(if s.last_sync_result.is_none() {
            Trigger::Initial
        } else {
            Trigger::SpecChanged
        });
    }
    if let Some(v) = i.resync_annotation
        && s.last_handled_resync_at.as_deref() != Some(v)
    {
        return Decision::SyncNow(Trigger::ResyncRequested);
    }
    if let Some(v) = i.site_resync_annotation
        && s.last_handled_site_resync_at.as_deref() != Some(v)
    {
        return Decision::SyncNow(Trigger::SiteResyncRequested);
    }
    let Some(last) = &s.last_sync_result else {
        return Decision::SyncNow(Trigger::Initial);
    };
    // Reconciles of one object never overlap, so a `Syncing` status seen
    // here was left by a sync that never finished (the caller confirms with
    // a fresh read, since the cache may still show our own earlier write).
    if s.phase == Some(SyncPhase::Syncing) {
        return Decision::SyncNow(Trigger::Interrupted);
    }
    if s.phase == Some(SyncPhase::Failed) || last.result != Outcome::Succeeded {
        // No backoff record (e.g. after an operator restart): retry once now.
        let at = i.retry_at.unwrap_or(i.now);
        return wait_or(at, i.now, Trigger::Retry);
    }
    let Some(synced) = s.last_synced_at.as_ref().map(|t| t.0) else {
        return Decision::SyncNow(Trigger::Initial);
    };
    let due = synced.checked_add(i.interval).unwrap_or(Timestamp::MAX);
    wait_or(due, i.now, Trigger::Interval)
}

fn wait_or(at: Timestamp, now: Timestamp, trigger: Trigger) -> Decision {
    if at <= now {
        Decision::SyncNow(trigger)
    } else {
        let secs = (at.as_millisecond() - now.as_millisecond()).max(0) as u64;
        Decision::Wait(Duration::from_millis(secs))
    }
}

/// Spreads periodic syncs: a stable per-object factor in [1.0, 1.0 + spread)
/// (derived from the uid) so 1,000 spaces created together do not resync in
/// the same second, and so repeated reconciles compute the same due time.
pub fn jittered(interval: Duration, uid: &str, spread: f64) -> Duration {
    // FNV-1a: tiny, stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let fraction = (h % 10_000) as f64 / 10_000.0;
    interval.mul_f64(1.0 + spread.clamp(0.0, 1.0) * fraction)
}

/// Exponential backoff: `min * 2^failures`, capped at `max`.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(20));
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::space::SyncResult;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn synced_status(at: Timestamp) -> ConfluenceSpaceStatus {
        ConfluenceSpaceStatus {
            observed_generation: Some(1),
            phase: Some(SyncPhase::Synced),
            last_synced_at: Some(Time(at)),
            last_sync_result: Some(SyncResult {
                result: Outcome::Succeeded,
                ..SyncResult::default()
            }),
            last_handled_resync_at: Some("a".into()),
            ..ConfluenceSpaceStatus::default()
        }
    }

    fn inputs<'a>(status: &'a ConfluenceSpaceStatus, now: Timestamp) -> Inputs<'a> {
        Inputs {
            generation: Some(1),
            status,
            resync_annotation: Some("a"),
            site_resync_annotation: None,
            interval: Duration::from_secs(3600),
            retry_at: None,
            now,
        }
    }

    #[test]
    fn synced_space_waits_for_its_interval() {
        let now = Timestamp::now();
        let s = synced_status(now);
        assert_eq!(
            decide(&inputs(&s, now)),
            Decision::Wait(Duration::from_secs(3600))
        );
        let later = now.checked_add(Duration::from_secs(3601)).unwrap();
        assert_eq!(
            decide(&inputs(&s, later)),
            Decision::SyncNow(Trigger::Interval)
        );
    }

    #[test]
    fn new_annotation_value_triggers_exactly_once() {
        let now = Timestamp::now();
        let mut s = synced_status(now);
        let mut i = inputs(&s, now);
        i.resync_annotation = Some("b");
        assert_eq!(decide(&i), Decision::SyncNow(Trigger::ResyncRequested));
        s.last_handled_resync_at = Some("b".into());
        let mut i = inputs(&s, now);
        i.resync_annotation = Some("b");
        assert!(matches!(decide(&i), Decision::Wait(_)));
    }

    #[test]
    fn generation_change_and_first_sync() {
        let now = Timestamp::now();
        let s = synced_status(now);
        let mut i = inputs(&s, now);
        i.generation = Some(2);
        assert_eq!(decide(&i), Decision::SyncNow(Trigger::SpecChanged));
        let empty = ConfluenceSpaceStatus::default();
        assert_eq!(
            decide(&inputs(&empty, now)),
            Decision::SyncNow(Trigger::Initial)
        );
    }

    #[test]
    fn failure_waits_for_backoff() {
        let now = Timestamp::now();
        let mut s = synced_status(now);
        s.phase = Some(SyncPhase::Failed);
        let mut i = inputs(&s, now);
        i.retry_at = Some(now.checked_add(Duration::from_secs(10)).unwrap());
        assert_eq!(decide(&i), Decision::Wait(Duration::from_secs(10)));
        i.retry_at = None;
        assert_eq!(decide(&i), Decision::SyncNow(Trigger::Retry));
    }

    #[test]
    fn interrupted_sync_reruns_at_once() {
        let now = Timestamp::now();
        let mut s = synced_status(now);
        s.phase = Some(SyncPhase::Syncing);
        assert_eq!(
            decide(&inputs(&s, now)),
            Decision::SyncNow(Trigger::Interrupted)
        );
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let base = Duration::from_secs(86_400);
        let a = jittered(base, "uid-1", 0.1);
        assert_eq!(a, jittered(base, "uid-1", 0.1));
        assert!(a >= base && a < base.mul_f64(1.1));
        let spread: std::collections::HashSet<u64> = (0..100)
            .map(|n| jittered(base, &format!("uid-{n}"), 0.1).as_secs())
            .collect();
        assert!(spread.len() > 50, "jitter should spread objects apart");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let min = Duration::from_secs(5);
        let max = Duration::from_secs(300);
        assert_eq!(backoff(0, min, max), Duration::from_secs(5));
        assert_eq!(backoff(3, min, max), Duration::from_secs(40));
        assert_eq!(backoff(30, min, max), max);
    }
}
