//! The spaces a caller may see, for `/mcp`'s `list_spaces`: read from the
//! ConfluenceSpace objects (a watch cache), filtered by the same audience
//! rule the stores apply to documents.

use crate::api::ConfluenceSpace;
use kube::Api;
use kube::runtime::reflector::Store;
use serde::Serialize;

/// One space as `list_spaces` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpaceEntry {
    /// Confluence space key, as in search hits' `space`.
    pub key: String,
    pub name: String,
    pub url: String,
    /// Items synced so far.
    pub items: u64,
}

/// Where `list_spaces` gets its answer.
pub trait SpaceDirectory: Send + Sync {
    /// Spaces whose audience admits one of `segments` (or is `Everyone`).
    fn visible(&self, segments: &[String]) -> Vec<SpaceEntry>;
}

/// No spaces known (the API without Kubernetes, e.g. in tests).
pub struct NoSpaces;

impl SpaceDirectory for NoSpaces {
    fn visible(&self, _: &[String]) -> Vec<SpaceEntry> {
        Vec::new()
    }
}

/// The ConfluenceSpace objects of one namespace, or of all.
#[derive(Clone)]
pub struct SpaceIndex {
    store: Store<ConfluenceSpace>,
}

impl SpaceIndex {
    /// Starts watching ConfluenceSpaces; spawn the returned future.
    pub fn watch(
        client: kube::Client,
        namespace: Option<&str>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let api: Api<ConfluenceSpace> = match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        // Only the spec's key and viewers and the status's name, URL and
        // items are read here; conditions, the last sync's result and the
        // annotations are most of the rest.
        let (store, run) = crate::reflect::reflect_trimmed(api, |s: &mut ConfluenceSpace| {
            s.metadata.annotations = None;
            if let Some(status) = s.status.as_mut() {
                status.conditions = Vec::new();
                status.last_sync_result = None;
            }
        });
        (Self { store }, run)
    }
}

impl SpaceDirectory for SpaceIndex {
    fn visible(&self, segments: &[String]) -> Vec<SpaceEntry> {
        let mut out: Vec<SpaceEntry> = self
            .store
            .state()
            .iter()
            .filter(|s| s.spec.viewers.audience().admits(segments))
            .map(|s| {
                let status = s.status.clone().unwrap_or_default();
                SpaceEntry {
                    key: s.spec.space_key.clone(),
                    name: status.space_name.unwrap_or_default(),
                    url: status.url.unwrap_or_default(),
                    items: status.items.unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup();
        out
    }
}
