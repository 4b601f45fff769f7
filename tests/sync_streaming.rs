//! A full sync stores pages while the listing is still under way, for both
//! flavors (Cloud: the cursor listing and the CQL pass from both ends; Data
//! Center: offset pages read side by side): each page as soon as it is
//! vetted (its own restrictions and every ancestor's known and open), also
//! when its parents come later in the listing, and never a page below a
//! restricted parent, wherever that parent is listed. A listing that fails
//! midway keeps what it stored and deletes nothing. Label filters and
//! included restrictions apply to streamed pages as to fetched ones.

mod sim_site;

use confluence_operator::confluence::{Flavor, LeftOut};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::sync_space;
use confluence_sim::{FaultConfig, Simulator};
use sim_site::{both_flavors, one_space as sim, quick_client as client, sync_request as request};
use std::sync::Arc;

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

/// Pages asked for on their own after the listing (by id on Cloud, by CQL
/// on Data Center): none when every body came with the listing.
fn separate_fetches(sim: &Simulator, flavor: Flavor) -> usize {
    let fetch_path = match flavor {
        Flavor::Cloud => "/wiki/api/v2/pages",
        Flavor::DataCenter => "/rest/api/content/search",
    };
    sim.recorded()
        .iter()
        .filter(|e| e.path == fetch_path)
        .count()
}

async fn pages_listed_before_their_parents_are_stored_with_every_ancestor(flavor: Flavor) {
    let sim = sim(30).await;
    let tree = backwards_chain(&sim);
    // Five a request: the three pages come in different listing answers.
    let client = client(&sim, flavor, 5);
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
    assert_eq!(doc.page.title, "Grandchild");
    assert!(doc.page.body_text.contains("grandchild text"));
    // They waited in the listing for their parents: no page was fetched
    // on its own afterwards.
    assert_eq!(
        separate_fetches(&sim, flavor),
        0,
        "every page came with the listing"
    );
    assert!(
        report.bodies_held_at_most > 0 && report.bodies_held_at_most < n as u64,
        "held {} of {n} bodies at most",
        report.bodies_held_at_most
    );
}

async fn a_restricted_parent_listed_after_its_children_keeps_them_out(flavor: Flavor) {
    let sim = sim(30).await;
    let tree = backwards_chain(&sim);
    sim.set_restricted(tree.parent, true).expect("restrict");
    let client = client(&sim, flavor, 5);
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

async fn a_listing_that_fails_midway_keeps_what_it_stored_and_deletes_nothing(flavor: Flavor) {
    // Data Center reads its offset pages side by side: a bigger, slower
    // space gives the failure time to land midway.
    let (pages, latency_ms) = match flavor {
        Flavor::Cloud => (60, 20),
        Flavor::DataCenter => (200, 50),
    };
    let sim = sim(pages).await;
    let client = client(&sim, flavor, 5);
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
        latency_ms,
        ..FaultConfig::default()
    });
    // Once the first pages are stored, every request fails from then on.
    let sync = sim_site::sync_under_way(&client, stores, &req, &empty).await;
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

async fn label_filters_and_included_restrictions_apply_to_streamed_pages(flavor: Flavor) {
    let sim = sim(30).await;
    let tree = backwards_chain(&sim);
    sim.set_restricted(tree.parent, true).expect("restrict");
    let client = client(&sim, flavor, 5);
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

both_flavors!(
    pages_listed_before_their_parents_are_stored_with_every_ancestor,
    a_restricted_parent_listed_after_its_children_keeps_them_out,
    a_listing_that_fails_midway_keeps_what_it_stored_and_deletes_nothing,
    label_filters_and_included_restrictions_apply_to_streamed_pages,
);
