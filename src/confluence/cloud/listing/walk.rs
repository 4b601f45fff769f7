//! The two-ended walk: one order walked from both ends at once until they
//! meet, and what the two ends of the CQL pass share.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

/// Which end of one order a chain walks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Front,
    Back,
}

impl End {
    pub(super) fn index(self) -> usize {
        match self {
            End::Front => 0,
            End::Back => 1,
        }
    }

    fn other(self) -> End {
        match self {
            End::Front => End::Back,
            End::Back => End::Front,
        }
    }
}

/// How far a two-ended walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Only the front end walks until its first answer shows more.
    FrontOnly,
    BothEnds,
    /// Nothing more can be learned: in-flight requests are dropped.
    Done,
}

/// One listing walked from both ends of one order at once: the front asks
/// for it ascending, the back descending, and the walk is complete when
/// the two meet.
///
/// Each end's answers are contiguous runs of that order, so until they
/// meet the front holds a prefix and the back a suffix, and the first
/// answer (in the order answers are recorded) that reaches past the gap
/// between them contains the other end's latest frontier item. Comparing
/// with the other end's latest answer is therefore enough, whatever the ids
/// look like, and memory stays at two answers. Ends that meet exactly at
/// an answer boundary share no item: the next answer of either shows it.
/// Items added or removed meanwhile can only delay the meeting (down to
/// walking to the natural end), never skip part of what existed throughout.
pub(super) struct Walk {
    stage: tokio::sync::watch::Sender<Stage>,
    latest: std::sync::Mutex<[HashSet<String>; 2]>,
}

impl Walk {
    pub(super) fn new() -> Self {
        Walk {
            stage: tokio::sync::watch::Sender::new(Stage::FrontOnly),
            latest: std::sync::Mutex::new([HashSet::new(), HashSet::new()]),
        }
    }

    fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    pub(super) fn finish(&self) {
        self.stage.send_replace(Stage::Done);
    }

    /// Records one end's answer; true when the ends have met (or the walk
    /// is already done).
    pub(super) fn arrived<'i>(&self, end: End, ids: impl Iterator<Item = &'i str>) -> bool {
        let ids: HashSet<String> = ids.map(str::to_owned).collect();
        // A poisoned lock only means another end panicked; its data is intact.
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let met = ids
            .iter()
            .any(|id| latest[end.other().index()].contains(id));
        latest[end.index()] = ids;
        drop(latest);
        if met {
            self.finish();
        }
        met || self.stage() == Stage::Done
    }

    /// The front's first answer decides whether the back end starts: a
    /// listing of one answer costs one request.
    pub(super) fn first_answer(&self, more: bool) {
        self.stage.send_if_modified(|stage| {
            if *stage != Stage::FrontOnly {
                return false;
            }
            *stage = if more { Stage::BothEnds } else { Stage::Done };
            true
        });
    }

    /// Waits until the back end may start; false when it never will.
    pub(super) async fn back_may_start(&self) -> bool {
        let mut stage = self.stage.subscribe();
        match stage.wait_for(|s| *s != Stage::FrontOnly).await {
            Ok(s) => *s == Stage::BothEnds,
            Err(_) => false,
        }
    }

    /// Resolves once the walk is done.
    pub(super) async fn done(&self) {
        let mut stage = self.stage.subscribe();
        // The sender lives as long as the walk.
        let _ = stage.wait_for(|s| *s == Stage::Done).await;
    }
}

/// What the two ends of the CQL pass share with each other and with the
/// fold, so that no record is asked for twice once the v2 listing is
/// complete: then the fold knows how many listed items still lack one.
pub(super) struct Records {
    /// CQL answers folded so far, and (once the v2 listing is complete) the
    /// listed items without a record.
    progress: tokio::sync::watch::Sender<(u64, Option<usize>)>,
    /// CQL answers sent to the fold so far.
    pub(super) sent: AtomicU64,
    /// The page size the site granted (from the front's first answer).
    pub(super) granted: AtomicUsize,
    /// Per end: a request is in flight.
    pub(super) asking: [AtomicBool; 2],
    /// Per end: it has not stopped.
    pub(super) walking: [AtomicBool; 2],
}

impl Records {
    pub(super) fn new() -> Self {
        Records {
            progress: tokio::sync::watch::Sender::new((0, None)),
            sent: AtomicU64::new(0),
            granted: AtomicUsize::new(usize::MAX),
            asking: [AtomicBool::new(false), AtomicBool::new(false)],
            walking: [AtomicBool::new(true), AtomicBool::new(true)],
        }
    }

    /// The fold's report after folding one event.
    pub(super) fn folded(&self, notes: bool, missing: Option<usize>) {
        self.progress.send_modify(|(folded, left)| {
            if notes {
                *folded += 1;
            }
            *left = missing;
        });
    }

    /// Whether the v2 listing is still running (until then every CQL
    /// answer may be needed).
    pub(super) fn listing_running(&self) -> bool {
        self.progress.borrow().1.is_none()
    }

    /// Whether `end` should ask for another answer: once the v2 listing is
    /// complete, only while records are missing that the other end's
    /// answer in flight does not cover, and what fits one answer is left
    /// to the front. Waits for the fold to take in every answer sent.
    pub(super) async fn ask_more(&self, end: End) -> bool {
        let mut progress = self.progress.subscribe();
        let Ok(now) = progress
            .wait_for(|(folded, left)| left.is_none() || *folded >= self.sent.load(Relaxed))
            .await
        else {
            return true;
        };
        let Some(left) = now.1 else { return true };
        drop(now);
        let granted = self.granted.load(Relaxed);
        let other = end.other().index();
        let covered = if self.asking[other].load(Relaxed) {
            granted
        } else {
            0
        };
        let front_walks = self.walking[End::Front.index()].load(Relaxed);
        !(left <= covered || (end == End::Back && front_walks && left <= granted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_ends_meet_on_a_shared_item_of_the_latest_answers() {
        let walk = Walk::new();
        assert!(!walk.arrived(End::Front, ["1", "2"].into_iter()));
        walk.first_answer(true);
        assert_eq!(walk.stage(), Stage::BothEnds);
        assert!(!walk.arrived(End::Back, ["9", "8"].into_iter()));
        assert!(!walk.arrived(End::Front, ["3", "4"].into_iter()));
        assert!(!walk.arrived(End::Back, ["7", "6"].into_iter()));
        // Meeting exactly at a boundary shares nothing; the next answer shows it.
        assert!(!walk.arrived(End::Front, ["5"].into_iter()));
        assert!(walk.arrived(End::Back, ["5", "4"].into_iter()));
        assert_eq!(walk.stage(), Stage::Done);
        assert!(
            walk.arrived(End::Front, ["6"].into_iter()),
            "an answer in flight finds the walk done"
        );
    }

    #[test]
    fn a_listing_of_one_answer_never_starts_the_back_end() {
        let walk = Walk::new();
        walk.first_answer(false);
        assert_eq!(walk.stage(), Stage::Done);
        let started = futures::executor::block_on(walk.back_may_start());
        assert!(!started);
    }
}
