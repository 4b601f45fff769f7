//! Segments granted to an identity by `ViewerBinding`s.
//!
//! The index reads a reflector cache fed by a watch, and looks bindings up on
//! every request (never cached per identity), so creating or deleting a
//! binding takes effect as soon as the watch delivers the event: normally
//! well under a second; after a dropped watch, once it is re-established
//! (backoff up to a few seconds).

use crate::api::ViewerBinding;
use crate::api::binding::{Subject, SubjectKind};
use kube::Api;
use kube::runtime::reflector::Store;
use std::collections::BTreeSet;

use super::Identity;

/// Where an [`super::Authenticator`] gets segments for an identity.
pub trait Bindings: Send + Sync {
    fn segments_for(&self, identity: &Identity) -> BTreeSet<String>;
}

/// Grants nothing (modes without bindings).
pub struct NoBindings;

impl Bindings for NoBindings {
    fn segments_for(&self, _: &Identity) -> BTreeSet<String> {
        BTreeSet::new()
    }
}

/// A fixed list of bindings (tests, and a start before the watch is synced).
impl Bindings for Vec<ViewerBinding> {
    fn segments_for(&self, identity: &Identity) -> BTreeSet<String> {
        granted(self.iter(), identity)
    }
}

/// The cluster's `ViewerBinding`s, kept current by a watch.
#[derive(Clone)]
pub struct BindingIndex {
    store: Store<ViewerBinding>,
}

impl BindingIndex {
    /// Starts watching every `ViewerBinding` (they are cluster-scoped). The
    /// returned future runs the watch; spawn it and keep it running.
    pub fn watch(
        client: kube::Client,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let api: Api<ViewerBinding> = Api::all(client);
        let (store, run) = crate::reflect::reflect(api);
        (Self { store }, run)
    }

    /// Waits until the first full list has arrived, so that callers are not
    /// briefly served with fewer segments than their bindings grant.
    pub async fn ready(&self) {
        // Only fails if the writer is dropped, i.e. the watch task ended.
        let _ = self.store.wait_until_ready().await;
    }
}

impl Bindings for BindingIndex {
    fn segments_for(&self, identity: &Identity) -> BTreeSet<String> {
        let all = self.store.state();
        granted(all.iter().map(|b| b.as_ref()), identity)
    }
}

fn granted<'a>(
    bindings: impl Iterator<Item = &'a ViewerBinding>,
    identity: &Identity,
) -> BTreeSet<String> {
    bindings
        // A binding on its way out no longer grants anything.
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .filter(|b| b.spec.subjects.iter().any(|s| matches(s, identity)))
        .flat_map(|b| b.spec.segments.iter().cloned())
        .collect()
}

/// Whether a subject names this identity.
pub fn matches(subject: &Subject, identity: &Identity) -> bool {
    let name = subject.name.as_deref().unwrap_or_default();
    match subject.kind {
        SubjectKind::ServiceAccount => {
            let ns = subject.namespace.as_deref().unwrap_or_default();
            !name.is_empty()
                && !ns.is_empty()
                && identity.username == format!("system:serviceaccount:{ns}:{name}")
        }
        SubjectKind::User => !name.is_empty() && identity.username == name,
        SubjectKind::Group => !name.is_empty() && identity.groups.iter().any(|g| g == name),
        SubjectKind::Claim => match (subject.claim.as_deref(), subject.value.as_deref()) {
            (Some(claim), Some(value)) => identity
                .claims
                .get(claim)
                .is_some_and(|values| values.iter().any(|v| v == value)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ViewerBindingSpec;

    fn binding(segments: &[&str], subjects: serde_json::Value) -> ViewerBinding {
        ViewerBinding::new(
            "b",
            ViewerBindingSpec {
                segments: segments.iter().map(|s| s.to_string()).collect(),
                subjects: serde_json::from_value(subjects).expect("subjects"),
            },
        )
    }

    #[test]
    fn each_subject_kind_matches_only_its_identity() {
        let bindings = vec![
            binding(
                &["agents-and-admins"],
                serde_json::json!([{"kind": "ServiceAccount", "name": "bot", "namespace": "ai"}]),
            ),
            binding(
                &["sre"],
                serde_json::json!([{"kind": "Group", "name": "oncall"}, {"kind": "User", "name": "ann"}]),
            ),
            binding(
                &["partners"],
                serde_json::json!([{"kind": "Claim", "claim": "org", "value": "acme"}]),
            ),
        ];
        let sa = Identity {
            username: "system:serviceaccount:ai:bot".into(),
            ..Default::default()
        };
        assert_eq!(
            bindings.segments_for(&sa),
            BTreeSet::from(["agents-and-admins".to_string()])
        );
        let other_ns = Identity {
            username: "system:serviceaccount:other:bot".into(),
            ..Default::default()
        };
        assert!(bindings.segments_for(&other_ns).is_empty());
        let ann = Identity {
            username: "ann".into(),
            groups: vec!["oncall".into()],
            ..Default::default()
        };
        assert_eq!(
            bindings.segments_for(&ann),
            BTreeSet::from(["sre".to_string()])
        );
        let claimed = Identity {
            username: "x".into(),
            claims: [("org".to_string(), vec!["acme".to_string()])].into(),
            ..Default::default()
        };
        assert_eq!(
            bindings.segments_for(&claimed),
            BTreeSet::from(["partners".to_string()])
        );
    }
}
