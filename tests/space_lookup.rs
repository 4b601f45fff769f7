//! A sync looks its space up beside the listing instead of before it: Data
//! Center's listing asks by key and does not wait for the lookup, so a
//! one-answer space costs one round trip, not two. Nothing is stored before
//! the lookup has answered: a personal space is refused with nothing
//! stored, and a key Confluence does not know fails the sync with that
//! reason (not with the listing's), on both flavors.

mod sim_site;

use confluence_operator::confluence::{ConfluenceError, Flavor, SpaceRef};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{SyncError, sync_space};
use confluence_sim::FaultConfig;
use sim_site::{both_flavors, one_space as sim, quick_client as client, sync_request as request};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(400);

#[tokio::test]
async fn data_center_lists_without_waiting_for_the_lookup() {
    let sim = sim(20).await;
    sim.set_faults(FaultConfig {
        latency_ms: LATENCY.as_millis() as u64,
        ..FaultConfig::default()
    });
    let client = client(&sim, Flavor::DataCenter, 50);
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = request(SpaceRef::lookup(client.as_ref(), "ENG"));

    let started = Instant::now();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    let took = started.elapsed();

    assert_eq!(report.items, 20);
    assert_eq!(store.count(&req.scope).await.expect("count"), 20);
    // The lookup and the one listing answer side by side; one after the
    // other they could not take less than two latencies.
    assert!(
        took < LATENCY * 2 - Duration::from_millis(100),
        "a one-answer space took {took:?} at {LATENCY:?} a request"
    );
}

async fn a_personal_space_is_refused_with_nothing_stored(flavor: Flavor) {
    let sim = sim(5).await;
    let personal = sim
        .spaces()
        .into_iter()
        .find(|s| s.key.starts_with('~'))
        .expect("the simulator has a personal space");
    let client = client(&sim, flavor, 50);
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = request(SpaceRef::lookup(client.as_ref(), &personal.key));

    let err = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect_err("a personal space is never synced");

    assert!(
        matches!(err, SyncError::Source(ConfluenceError::PersonalSpace(ref k)) if *k == personal.key),
        "{flavor:?}: {err}"
    );
    assert_eq!(store.count(&req.scope).await.expect("count"), 0);
}

async fn an_unknown_space_fails_as_not_found(flavor: Flavor) {
    let sim = sim(5).await;
    let client = client(&sim, flavor, 50);
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = request(SpaceRef::lookup(client.as_ref(), "NOPE"));

    let err = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect_err("no such space");

    assert!(
        matches!(err, SyncError::Source(ConfluenceError::SpaceNotFound(ref k)) if k == "NOPE"),
        "{flavor:?}: {err}"
    );
    assert_eq!(store.count(&req.scope).await.expect("count"), 0);
}

both_flavors!(
    a_personal_space_is_refused_with_nothing_stored,
    an_unknown_space_fails_as_not_found,
);
