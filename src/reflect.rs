//! A read-only, always-current copy of one kind of object, kept by a watch:
//! what the search API needs to look up bindings and spaces per request
//! without asking the API server each time.

use futures::StreamExt;
use kube::Api;
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;

/// The store and the future that keeps it filled; spawn the future and keep
/// it running. Watch errors are logged and retried with backoff, so a blip
/// of the API server leaves the last known objects in place.
pub fn reflect<K>(api: Api<K>) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let (store, writer) = reflector::store();
    // managedFields are the largest part of a stored object and nothing
    // here reads them; with thousands of spaces they were megabytes.
    let objects = watcher(api, watcher::Config::default())
        .modify(|o: &mut K| o.meta_mut().managed_fields = None);
    let stream = reflector::reflector(writer, objects)
        .default_backoff()
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
