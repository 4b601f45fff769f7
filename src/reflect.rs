//! A read-only, always-current copy of one kind of object, kept by a watch:
//! what the search API needs to look up bindings and spaces per request
//! without asking the API server each time.

use futures::{Stream, StreamExt};
use kube::Api;
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

/// A watch of `api` in which `410 Gone` is not an error.
///
/// The API server answers 410 when a watch resumes from a resource version
/// it no longer has (after a restart or an etcd compaction). kube's watcher
/// then starts over with a fresh list, but also reports the 410 as an error,
/// and an error makes the retry policy wait (up to its maximum) before that
/// list. Dropping it lets the list follow at once, as client-go does.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    watcher(api, config).filter(|event| {
        let gone = matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410);
        if gone {
            tracing::debug!("watch expired (410 Gone); listing again");
        }
        std::future::ready(!gone)
    })
}

/// [`watch`] of objects without their `managedFields`: the largest part of
/// a stored object (~1.5 KB of JSON, several KB once parsed), which nothing
/// in the operator reads; with thousands of spaces it was tens of MB.
pub fn watch_lean<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    watch(api, config).modify(|o: &mut K| o.meta_mut().managed_fields = None)
}

/// How every watch of the operator retries after an error: from 250 ms,
/// doubling, at most 2 s, with ±25% jitter; reset by the first good event.
///
/// kube's default (client-go's: up to 30 s) made the operator take 13–34 s
/// to act on a resync written right after a 3 s API server restart (fault
/// matrix): the outage grows the wait to its maximum, and the
/// `410 Gone` that a restarted API server answers to a resumed watch is one
/// more error, so a controller waits twice before it lists again. The
/// operator holds a handful of watches; a try every 2 s at most costs a
/// recovering API server next to nothing.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(2);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (base * 2).min(Self::MAX);
        Some(base.mul_f64(rand::random_range(0.75..1.25)))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The store and the future that keeps it filled; spawn the future and keep
/// it running. Watch errors are logged and retried with backoff, so a blip
/// of the API server leaves the last known objects in place.
pub fn reflect<K>(api: Api<K>) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    reflect_trimmed(api, |_| {})
}

/// [`reflect`], with `trim` dropping from each object what the reader does
/// not need (kept for every object, so it counts with thousands of them).
pub fn reflect_trimmed<K>(
    api: Api<K>,
    trim: impl Fn(&mut K) + Send + 'static,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let (store, writer) = reflector::store();
    let objects = watch_lean(api, watcher::Config::default()).modify(trim);
    let stream = reflector::reflector(writer, objects)
        .backoff(WatchBackoff::default())
        .touched_objects();
    let run = async move {
        stream
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(error = %e, kind = %kind, "watch failed; retrying");
                }
                std::future::ready(())
            })
            .await;
    };
    (store, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_backoff_grows_to_two_seconds_and_resets() {
        let mut b = WatchBackoff::default();
        let waits: Vec<Duration> = b.by_ref().take(8).collect();
        assert!(waits[0] <= Duration::from_millis(313), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_millis(2500)),
            "{waits:?}"
        );
        assert!(waits[7] >= Duration::from_millis(1500), "{waits:?}");
        b.reset();
        assert!(b.next().is_some_and(|w| w <= Duration::from_millis(313)));
    }
}
