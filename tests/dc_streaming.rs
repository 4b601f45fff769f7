//! A full Data Center sync stores pages while the listing is still under
//! way: its offset pages are read side by side and each page is stored as
//! soon as its own restrictions and every ancestor's are known and open,
//! also when its parents come in a later listing page, and never a page
//! below a restricted parent, wherever that parent is listed. A listing that
//! fails midway keeps what it stored and deletes nothing.

mod sim_site;

use confluence_operator::confluence::{
    ClientOptions, ConfluenceApi, Flavor, LeftOut, ListOptions, connect_with,
};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{SyncRequest, sync_space};
use confluence_sim::{FaultConfig, SimConfig, Simulator};
use std::sync::Arc;
use std::time::Duration;

async fn sim(pages: usize) -> Simulator {
    Simulator::start(SimConfig {
        spaces: 1,
        pages,
        blogposts: 0,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn client(sim: &Simulator, page_limit: usize) -> Arc<dyn ConfluenceApi> {
    connect_with(
        sim_site::site_config(sim, Flavor::DataCenter),
        ClientOptions {
            page_limit,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            retry_after_max: Duration::from_millis(5),
        },
    )
    .expect("client")
}

fn request(space: confluence_operator::confluence::SpaceInfo) -> SyncRequest {
    SyncRequest {
        scope: SpaceScope::new("default", "eng"),
        site_url: "http://sim".into(),
        space,
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: 4,
    }
}

/// Below the home page, a chain listed backwards (ids grow with creation,
/// listings are ordered by id): `grandchild` < `child` < `parent`.
struct Backwards {
    home: u64,
    grandchild: u64,
    child: u64,
    parent: u64,
}

fn backwards_chain(sim: &Simulator) -> Backwards {
    let home = sim.spaces()[0].homepage_id.expect("home page");
    let grandchild = sim
        .create_page("ENG", "Grandchild", Some(home), "<p>grandchild text</p>")
        .expect("page");
    // Pages in between, so the three come in different listing pages.
    for i in 0..6 {
        sim.create_page("ENG", &format!("Filler {i}"), Some(home), "<p>f</p>")
            .expect("page");
    }
    let child = sim
        .create_page("ENG", "Child", Some(home), "<p>child text</p>")
        .expect("page");
    for i in 6..12 {
        sim.create_page("ENG", &format!("Filler {i}"), Some(home), "<p>f</p>")
            .expect("page");
    }
    let parent = sim
        .create_page("ENG", "Parent", Some(home), "<p>parent text</p>")
        .expect("page");
    sim.move_page(child, Some(parent)).expect("move");
    sim.move_page(grandchild, Some(child)).expect("move");
    Backwards {
        home,
        grandchild,
        child,
        parent,
    }
}

fn searches(sim: &Simulator) -> usize {
    sim.recorded()
        .iter()
        .filter(|e| e.path == "/rest/api/content/search")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_listed_before_their_parents_are_stored_with_every_ancestor() {
    let sim = sim(30).await;
    let tree = backwards_chain(&sim);
    // Five a request: the three pages come in different listing pages,
    // read side by side.
    let client = client(&sim, 5);
    let space = client.space("ENG").await.expect("space");
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = request(space);
    sim.start_recording();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    let n = sim.pages("ENG").len();
    assert_eq!(report.fetched as usize, n);
    assert_eq!(report.left_out, LeftOut::default());
    let docs = store.documents(&req.scope);
    assert_eq!(docs.len(), n);
    let doc = docs
        .iter()
        .find(|d| d.page.id == tree.grandchild.to_string())
        .expect("grandchild stored");
    let path: Vec<(String, String)> = doc
        .page
        .ancestors
        .iter()
        .map(|a| (a.id.clone(), a.title.clone()))
        .collect();
    assert_eq!(
        path,
        [
            (tree.home.to_string(), "Engineering Home".to_string()),
            (tree.parent.to_string(), "Parent".to_string()),
            (tree.child.to_string(), "Child".to_string()),
        ],
        "root first, with titles"
    );
    assert!(doc.page.body_text.contains("grandchild text"));
    // They waited in the listing for their parents: no page was fetched
    // on its own afterwards.
    assert_eq!(searches(&sim), 0, "every page came with the listing");
    assert!(
        report.bodies_held_at_most > 0 && report.bodies_held_at_most < n as u64,
        "held {} of {n} bodies at most",
        report.bodies_held_at_most
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_parent_listed_after_its_children_keeps_them_out() {
    let sim = sim(30).await;
    let tree = backwards_chain(&sim);
    sim.set_restricted(tree.parent, true).expect("restrict");
    let client = client(&sim, 5);
    let space = client.space("ENG").await.expect("space");
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = request(space);
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!(
        report.left_out,
        LeftOut {
            restricted: 1,
            restricted_ancestor: 2,
            ..LeftOut::default()
        }
    );
    let docs = store.documents(&req.scope);
    for id in [tree.parent, tree.child, tree.grandchild] {
        assert!(
            !docs.iter().any(|d| d.page.id == id.to_string()),
            "{id} must not be stored"
        );
    }
    assert_eq!(docs.len(), sim.pages("ENG").len() - 3);
    assert_eq!(report.items as usize, docs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_fails_midway_keeps_what_it_stored_and_deletes_nothing() {
    let sim = sim(200).await;
    let client = client(&sim, 5);
    let space = client.space("ENG").await.expect("space");
    let req = request(space);
    // One store already holds the space; a second one, empty, makes the
    // sync list with bodies.
    let full = Arc::new(MemoryStore::new());
    let first: Vec<Arc<dyn Store>> = vec![full.clone()];
    sync_space(client.as_ref(), &first, &req)
        .await
        .expect("first sync");
    let before = full.documents(&req.scope).len();
    let gone = sim.pages("ENG")[10].id;
    sim.delete_page(gone).expect("delete");
    let empty = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![full.clone(), empty.clone()];
    sim.set_faults(FaultConfig {
        latency_ms: 50,
        ..FaultConfig::default()
    });
    let sync = {
        let client = Arc::clone(&client);
        let req = req.clone();
        tokio::spawn(async move { sync_space(client.as_ref(), &stores, &req).await })
    };
    // Once the first pages are stored, every request fails from then on.
    let waited = tokio::time::Instant::now();
    while empty.documents(&req.scope).is_empty() {
        assert!(waited.elapsed() < Duration::from_secs(30), "no page stored");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        error_status: 500,
        ..FaultConfig::default()
    });
    let result = sync.await.expect("sync task");
    assert!(result.is_err(), "the listing failed: {result:?}");
    let kept = empty.documents(&req.scope).len();
    assert!(
        kept > 0 && kept < before,
        "what was stored before the failure stays ({kept} of {before})"
    );
    assert_eq!(
        full.documents(&req.scope).len(),
        before,
        "nothing deleted, not even the page Confluence no longer has"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_filters_and_included_restrictions_apply_to_streamed_pages() {
    let sim = sim(30).await;
    let tree = backwards_chain(&sim);
    sim.set_restricted(tree.parent, true).expect("restrict");
    let client = client(&sim, 5);
    let space = client.space("ENG").await.expect("space");
    let n = sim.pages("ENG").len();

    // Restricted content included: the whole chain is stored.
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let mut req = request(space.clone());
    req.options.include_restricted = true;
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!(report.left_out, LeftOut::default());
    assert_eq!(store.documents(&req.scope).len(), n);

    // Only pages labelled like the grandchild: nothing else, and still
    // nothing below the restricted parent.
    sim.set_labels(tree.grandchild, &["keep"]).expect("label");
    sim.set_labels(tree.home, &["keep"]).expect("label");
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let mut req = request(space);
    req.options.include_labels = vec!["KEEP".into()];
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    let ids: Vec<String> = store
        .documents(&req.scope)
        .into_iter()
        .map(|d| d.page.id)
        .collect();
    assert_eq!(ids, [tree.home.to_string()]);
    assert_eq!(report.left_out.restricted_ancestor, 2);
}
