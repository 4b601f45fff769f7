//! This process's own writes, remembered so that a reconcile can tell
//! whether the object it was handed already reflects them.
//!
//! The controller's cache lags behind the API server. The one lag that
//! matters is behind our own last write: a reconcile that does not see the
//! status it just wrote would take a handled request for a new one and sync
//! twice. Reading every object from etcd before a sync closes that gap but
//! puts a quorum read (slow whenever etcd is busy writing) in front of every
//! sync. Knowing the resourceVersion of our latest write to each object, the
//! read is needed only when the object in hand is not that write, and then
//! the API server's watch cache can answer it ("not older than" that
//! version) instead of etcd. With no write remembered (a fresh process), the
//! cache is at least as new as the list it started from, which holds every
//! earlier write.

use kube::api::GetParams;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

#[derive(Default)]
pub struct Written {
    /// Object key → resourceVersion of this process's latest write.
    latest: Mutex<HashMap<String, String>>,
}

impl Written {
    /// Remembers `obj`, as a write of ours returned it, as the latest.
    pub fn record<K: Resource>(&self, key: &str, obj: &K) {
        let Some(version) = obj.meta().resource_version.clone() else {
            return;
        };
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        match latest.get_mut(key) {
            Some(v) => *v = version,
            None => {
                latest.insert(key.to_string(), version);
            }
        }
    }

    /// Forgets `key` (the object is gone).
    pub fn forget(&self, key: &str) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.remove(key);
    }

    fn latest(&self, key: &str) -> Option<String> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.get(key).cloned()
    }

    /// `cached`, or a newer copy of it that reflects every write of ours;
    /// `None` when the object is gone.
    pub async fn fresh<K>(&self, api: &Api<K>, key: &str, cached: &K) -> kube::Result<Option<K>>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        let Some(version) = self.latest(key) else {
            return Ok(Some(cached.clone()));
        };
        if cached.meta().resource_version.as_deref() == Some(version.as_str()) {
            return Ok(Some(cached.clone()));
        }
        let name = cached.name_any();
        match api.get_with(&name, &GetParams::at(&version)).await {
            Ok(obj) => Ok(Some(obj)),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
            // The watch cache could not catch up in time ("too large
            // resource version"): etcd answers instead.
            Err(_) => api.get_opt(&name).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn at(version: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("x".into());
        cm.metadata.resource_version = Some(version.into());
        cm
    }

    #[test]
    fn the_latest_write_replaces_earlier_ones_and_is_forgotten_with_the_object() {
        let w = Written::default();
        assert_eq!(w.latest("k"), None);
        w.record("k", &at("5"));
        w.record("k", &at("9"));
        assert_eq!(w.latest("k").as_deref(), Some("9"));
        w.forget("k");
        assert_eq!(w.latest("k"), None);
    }
}
