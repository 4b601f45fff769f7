//! Wake-ups at a given instant, to within a few tens of microseconds, for
//! the simulated latency.
//!
//! tokio's timer counts whole milliseconds and rounds deadlines up: with a
//! 50 ms latency an idle simulator answered after 51.7 ms (curl, ten
//! requests), so every request chain a benchmark held against its network
//! limit (chain × latency) came out ~3% longer than the latency it set. One
//! thread sleeps until the earliest pending alarm (a futex wait, nanosecond
//! deadlines) and fires every alarm that is due.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;
use tokio::sync::oneshot;

struct Alarm {
    at: Instant,
    /// Arrival order, so alarms for the same instant compare unequal.
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Alarm {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Alarm {}

impl PartialOrd for Alarm {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Alarm {
    /// Reversed, so the max-heap yields the earliest alarm first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The alarm thread's inbox; `None` if the thread could not be started
/// (then tokio's timer is used).
fn inbox() -> Option<&'static mpsc::Sender<Alarm>> {
    static INBOX: OnceLock<Option<mpsc::Sender<Alarm>>> = OnceLock::new();
    INBOX
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("sim-alarms".into())
                .spawn(move || ring(&rx))
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

fn ring(inbox: &mpsc::Receiver<Alarm>) {
    let mut pending: BinaryHeap<Alarm> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while pending.peek().is_some_and(|a| a.at <= now) {
            if let Some(due) = pending.pop() {
                // The waiter may be gone (its request was dropped).
                let _ = due.wake.send(());
            }
        }
        let next = match pending.peek() {
            Some(first) => inbox.recv_timeout(first.at.saturating_duration_since(now)),
            None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(alarm) => pending.push(alarm),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Waits until `at`.
pub(crate) async fn sleep_until(at: Instant) {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    if at <= Instant::now() {
        return;
    }
    let (wake, woken) = oneshot::channel();
    let alarm = Alarm {
        at,
        seq: SEQ.fetch_add(1, Relaxed),
        wake,
    };
    match inbox().map(|inbox| inbox.send(alarm)) {
        Some(Ok(())) => {
            let _ = woken.await;
        }
        _ => tokio::time::sleep_until(at.into()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn alarms_ring_at_their_instant_in_order_and_not_early() {
        let start = Instant::now();
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let waits = [30u64, 10, 20].map(|ms| {
            let order = order.clone();
            tokio::spawn(async move {
                let at = start + Duration::from_millis(ms);
                sleep_until(at).await;
                let woke = Instant::now();
                order.lock().map(|mut o| o.push(ms)).ok();
                (woke >= at, woke.saturating_duration_since(at))
            })
        });
        for wait in waits {
            let (on_time, late) = wait.await.expect("waiter");
            assert!(on_time, "woke before its instant");
            // Loose: a busy CI machine may be slow to schedule the waiter.
            assert!(late < Duration::from_millis(20), "late by {late:?}");
        }
        assert_eq!(*order.lock().expect("order"), vec![10, 20, 30]);
    }
}
