//! Deletions are confirmed: an item missing from a listing leaves the stores
//! only after a direct lookup finds it gone (404, trashed, archived), and when
//! many vanish at once a sample is looked up and the sync result says so.

mod harness;
mod sim_site;
mod support;

use async_trait::async_trait;
use confluence_operator::confluence::{
    ConfluenceApi, ConfluenceError, Flavor, ListOptions, Listing, Presence, SpaceInfo,
};
use confluence_operator::model::{ContentType, Page, PageRef, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{SyncReport, SyncRequest, sync_space};
use confluence_sim::{SimConfig, Simulator, Status};
use std::collections::BTreeSet;
use std::sync::Arc;

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::DataCenter];

async fn sim(pages: usize) -> Simulator {
    sim_site::one_space(pages).await
}

fn client(sim: &Simulator, flavor: Flavor) -> Arc<dyn ConfluenceApi> {
    sim_site::quick_client(sim, flavor, 10)
}

struct Setup {
    client: Arc<dyn ConfluenceApi>,
    store: Arc<MemoryStore>,
    req: SyncRequest<'static>,
}

impl Setup {
    async fn new(sim: &Simulator, flavor: Flavor) -> Setup {
        let client = client(sim, flavor);
        Self::with_client(client).await
    }

    async fn with_client(client: Arc<dyn ConfluenceApi>) -> Setup {
        let space = client.space("ENG").await.expect("space");
        Setup {
            client,
            store: Arc::new(MemoryStore::new()),
            req: SyncRequest {
                // Deletions matter most when nothing else filters: no
                // restriction pass, only ids and versions.
                options: ListOptions {
                    include_restricted: true,
                    ..ListOptions::default()
                },
                batch_size: 25,
                ..sim_site::sync_request(space)
            },
        }
    }

    async fn sync(&self) -> SyncReport {
        let stores: Vec<Arc<dyn Store>> = vec![self.store.clone()];
        sync_space(self.client.as_ref(), &stores, &self.req)
            .await
            .expect("sync")
    }

    async fn stored(&self) -> BTreeSet<u64> {
        self.store
            .versions(&self.req.scope)
            .await
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect()
    }
}

/// Leaves of the generated tree in id order (deleting a leaf orphans nothing).
fn leaves(sim: &Simulator) -> Vec<u64> {
    let pages = sim.pages("ENG");
    pages
        .iter()
        .filter(|p| !pages.iter().any(|c| c.parent_id == Some(p.id)))
        .map(|p| p.id)
        .collect()
}

#[tokio::test]
async fn a_deletion_during_offset_paging_does_not_take_the_skipped_page_with_it() {
    let sim = sim(30).await;
    let setup = Setup::new(&sim, Flavor::DataCenter).await;
    setup.sync().await;
    let all: Vec<u64> = sim.pages("ENG").iter().map(|p| p.id).collect();
    assert_eq!(setup.stored().await.len(), 30);

    // Page 1 of the listing holds items 0..10. Deleting item 3 before page 2
    // is served shifts everything up: item 10 is listed by no page.
    let early = all[3];
    let skipped = all[10];
    // And one page really deleted before the listing starts.
    let gone = *leaves(&sim).iter().rev().find(|id| **id > skipped).unwrap();
    sim.delete_page(gone).unwrap();
    sim.delete_during_listing(early);
    sim.reset_stats();
    let report = setup.sync().await;

    let stored = setup.stored().await;
    assert!(
        stored.contains(&skipped),
        "the page the listing skipped must stay: {report:?}"
    );
    assert!(!stored.contains(&gone), "the deleted page is removed");
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(report.kept_unconfirmed, 1, "{report:?}");
    let note = report.deletion_note.clone().unwrap_or_default();
    assert!(note.contains("still present"), "{note}");
    // Exactly the two missing items were looked up.
    assert_eq!(sim.stats().get("GET /rest/api/content/{id}"), 2);

    // The next listing sees the page deleted mid-listing as missing, confirms
    // it and removes it; the skipped page is listed again.
    let report = setup.sync().await;
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(report.kept_unconfirmed, 0);
    let stored = setup.stored().await;
    let present: BTreeSet<u64> = sim.pages("ENG").iter().map(|p| p.id).collect();
    assert_eq!(stored, present);
}

#[tokio::test]
async fn trashed_archived_and_deleted_pages_are_confirmed_gone_for_both_flavors() {
    for flavor in FLAVORS {
        let sim = sim(20).await;
        let setup = Setup::new(&sim, flavor).await;
        setup.sync().await;
        let leaves = leaves(&sim);
        sim.set_status(leaves[0], Status::Trashed).unwrap();
        sim.set_status(leaves[1], Status::Archived).unwrap();
        sim.delete_page(leaves[2]).unwrap();
        let report = setup.sync().await;
        assert_eq!(report.deleted, 3, "{flavor:?}: {report:?}");
        assert_eq!(report.kept_unconfirmed, 0, "{flavor:?}");
        assert_eq!(report.deletion_note, None, "{flavor:?}");
        assert_eq!(setup.stored().await.len(), 17, "{flavor:?}");
    }
}

#[tokio::test]
async fn when_many_vanish_a_sample_is_confirmed_and_the_result_says_so() {
    for flavor in FLAVORS {
        let sim = sim(150).await;
        let setup = Setup::new(&sim, flavor).await;
        setup.sync().await;
        let leaves = leaves(&sim);
        assert!(leaves.len() >= 60, "{}", leaves.len());
        for id in &leaves[..60] {
            sim.delete_page(*id).unwrap();
        }
        sim.reset_stats();
        let report = setup.sync().await;
        assert_eq!(report.deleted, 60, "{flavor:?}: {report:?}");
        let note = report.deletion_note.clone().unwrap_or_default();
        assert!(
            note.contains("60 items vanished") && note.contains("sample of 20"),
            "{flavor:?}: {note}"
        );
        let lookups = match flavor {
            Flavor::Cloud => sim.stats().get("GET /wiki/api/v2/pages/{id}"),
            Flavor::DataCenter => sim.stats().get("GET /rest/api/content/{id}"),
        };
        assert_eq!(lookups, 20, "{flavor:?}: only the sample is looked up");
        assert_eq!(setup.stored().await.len(), 90, "{flavor:?}");
    }
}

/// A client whose listing silently drops items, as a broken proxy or a
/// lagging replica might: the items are all still in Confluence.
struct LossyListing {
    inner: Arc<dyn ConfluenceApi>,
    drop: usize,
}

#[async_trait]
impl ConfluenceApi for LossyListing {
    async fn whoami(&self) -> Result<String, ConfluenceError> {
        self.inner.whoami().await
    }
    async fn space(&self, key: &str) -> Result<SpaceInfo, ConfluenceError> {
        self.inner.space(key).await
    }
    async fn spaces(&self, query: Option<&str>) -> Result<Vec<SpaceInfo>, ConfluenceError> {
        self.inner.spaces(query).await
    }
    async fn list_detailed(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<Listing, ConfluenceError> {
        let mut listing = self.inner.list_detailed(space, options).await?;
        for lost in listing.items.drain(..self.drop) {
            listing.seen.remove(&lost.id);
        }
        Ok(listing)
    }
    async fn fetch(
        &self,
        space: &SpaceInfo,
        items: &[PageRef],
    ) -> Result<Vec<Page>, ConfluenceError> {
        self.inner.fetch(space, items).await
    }
    async fn presence(
        &self,
        space: &SpaceInfo,
        id: &str,
        types: &[ContentType],
    ) -> Result<Presence, ConfluenceError> {
        self.inner.presence(space, id, types).await
    }
}

#[tokio::test]
async fn a_listing_that_loses_many_items_deletes_nothing_that_still_exists() {
    for flavor in FLAVORS {
        let sim = sim(90).await;
        let full = Setup::new(&sim, flavor).await;
        full.sync().await;
        let lossy = Setup {
            client: Arc::new(LossyListing {
                inner: client(&sim, flavor),
                drop: 70,
            }),
            store: full.store.clone(),
            req: full.req.clone(),
        };
        let report = lossy.sync().await;
        assert_eq!(report.deleted, 0, "{flavor:?}: {report:?}");
        assert_eq!(report.kept_unconfirmed, 70, "{flavor:?}");
        let note = report.deletion_note.unwrap_or_default();
        assert!(
            note.contains("found 20 still present"),
            "{flavor:?}: {note}"
        );
        assert_eq!(full.stored().await.len(), 90, "{flavor:?}");
    }
}

#[tokio::test]
async fn dropping_a_content_type_removes_its_items_although_confluence_still_has_them() {
    for flavor in FLAVORS {
        let sim = Simulator::start(SimConfig {
            spaces: 1,
            pages: 10,
            blogposts: 3,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let mut setup = Setup::new(&sim, flavor).await;
        setup.req.options.content_types = vec![ContentType::Page, ContentType::Blogpost];
        assert_eq!(setup.sync().await.items, 13, "{flavor:?}");
        setup.req.options.content_types = vec![ContentType::Page];
        let report = setup.sync().await;
        assert_eq!(report.deleted, 3, "{flavor:?}: {report:?}");
        assert_eq!(report.kept_unconfirmed, 0, "{flavor:?}");
        assert_eq!(setup.stored().await.len(), 10, "{flavor:?}");
    }
}

/// On the real control plane, against a Data Center site: the page the
/// listing skipped stays, and the space's status says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_space_status_reports_pages_kept_because_confluence_still_has_them() {
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 30,
        blogposts: 0,
        // Data Center hands out small pages whatever the client asks for.
        max_limit_v1: 10,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let op = harness::start(
        "deletions",
        Arc::new(confluence_operator::controller::ClientFactory),
        vec![store.clone() as Arc<dyn Store>],
    )
    .await;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pat"},
        "stringData": {"token": sim.token()}
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(op.client.clone(), &op.namespace)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    let site: confluence_operator::api::ConfluenceSite =
        serde_json::from_value(serde_json::json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
            "metadata": {"name": "dc"},
            "spec": {"url": sim.datacenter_site_url().as_str(), "flavor": "DataCenter",
                     "insecureAllowHttp": true, "credentialsSecretRef": {"name": "pat"}}
        }))
        .unwrap();
    op.sites().create(&Default::default(), &site).await.unwrap();
    op.create_space(
        "eng",
        "dc",
        "ENG",
        serde_json::json!({"visibility": "Everyone"}),
    )
    .await;
    assert_eq!(op.wait_ready("eng").await.status.unwrap().items, Some(30));

    let all: Vec<u64> = sim.pages("ENG").iter().map(|p| p.id).collect();
    let skipped = all[10];
    let gone = *leaves(&sim).iter().rev().find(|id| **id > skipped).unwrap();
    sim.delete_page(gone).unwrap();
    sim.delete_during_listing(all[3]);
    op.request_resync(&op.spaces(), "eng", "mid-listing").await;
    let result = op
        .wait_status("eng", "the resync", |st| {
            (st.last_handled_resync_at.as_deref() == Some("mid-listing")
                && st.phase == Some(confluence_operator::api::space::SyncPhase::Synced))
            .then(|| st.last_sync_result.clone())
            .flatten()
        })
        .await;
    assert_eq!(result.deleted, 1, "{result:?}");
    assert_eq!(result.kept_unconfirmed, Some(1), "{result:?}");
    assert!(
        result
            .message
            .contains("still present in Confluence and were kept"),
        "{result:?}"
    );
    let scope = SpaceScope::new(&op.namespace, "eng");
    let stored: BTreeSet<String> = store.versions(&scope).await.unwrap().into_keys().collect();
    assert!(stored.contains(&skipped.to_string()));
    assert!(!stored.contains(&gone.to_string()));
}
