//! OpenSearch stopped in the middle of a sync, on the real control plane and
//! a real OpenSearch node of this test's own (the other OpenSearch tests
//! share another node, which must keep running).

mod common;
mod fakes;
mod harness;
mod opensearch_node;
mod support;

use confluence_operator::api::conditions;
use confluence_operator::model::SpaceScope;
use confluence_operator::store::Store;
use confluence_operator::store::opensearch::OpenSearchStore;
use fakes::{FakeConfluence, FakeFactory};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Port of this test's node (its transport port is 100 higher).
const PORT: u16 = 19210;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_stopped_mid_sync_gives_a_clear_condition_then_recovers_without_loss_or_duplicates()
 {
    let node = opensearch_node::Node::private("outage", PORT);
    let url = tokio::task::spawn_blocking({
        let node = opensearch_node::Node::private("outage", PORT);
        move || node.start()
    })
    .await
    .unwrap()
    .expect("start this test's OpenSearch node");
    let alias = opensearch_node::unique_alias("outage");
    let store = Arc::new(
        OpenSearchStore::connect(opensearch_node::config_at(url.clone(), &alias))
            .await
            .unwrap(),
    );
    let fake = Arc::new(FakeConfluence::default()).with_space("ENG", 20);
    let op = harness::start(
        "os-outage",
        Arc::new(FakeFactory(fake.clone())),
        vec![store.clone() as Arc<dyn Store>],
    )
    .await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("eng", "acme", "ENG", json!({"visibility": "Everyone"}))
        .await;
    op.wait_ready("eng").await;
    let scope = SpaceScope::new(&op.namespace, "eng");
    assert_eq!(store.count(&scope).await.unwrap(), 20);

    // 400 more pages: in batches of 7, each waiting for a refresh, the sync
    // takes long enough to stop OpenSearch while it runs.
    let fake = fake.with_space("ENG", 420);
    op.request_resync(&op.spaces(), "eng", "outage-1").await;
    support::wait_for("the sync to be writing", Duration::from_secs(60), || {
        let store = store.clone();
        let scope = scope.clone();
        async move {
            let n = store.count(&scope).await.map_err(|e| e.to_string())?;
            Ok((n > 20).then_some(n))
        }
    })
    .await;
    tokio::task::spawn_blocking({
        let node = opensearch_node::Node::private("outage", PORT);
        move || node.stop()
    })
    .await
    .unwrap();

    // The space says what is wrong, in words an operator can act on.
    let message = op
        .wait_status("eng", "StoreFailed condition", |st| {
            st.conditions
                .iter()
                .find(|c| {
                    c.type_ == "Ready"
                        && c.status == "False"
                        && c.reason == conditions::reason::STORE_FAILED
                        && c.message.contains("unreachable")
                })
                .map(|c| c.message.clone())
        })
        .await;
    assert!(
        message.contains("opensearch") && message.contains("unreachable"),
        "{message}"
    );

    // OpenSearch comes back: the retry finishes the sync.
    tokio::task::spawn_blocking(move || node.start())
        .await
        .unwrap()
        .expect("restart OpenSearch");
    op.wait_status("eng", "Ready with every page", |st| {
        (conditions::is_true(&st.conditions, "Ready") && st.items == Some(420)).then_some(())
    })
    .await;
    // Nothing lost, nothing twice: exactly one document per page, at its version.
    assert_eq!(opensearch_node::count_all(&url, &alias).await, 420);
    let versions = store.versions(&scope).await.unwrap();
    assert_eq!(versions.len(), 420);
    assert!(versions.values().all(|v| *v == 1));
    assert!(fake.list_count() >= 2);
    store.drop_all().await.unwrap();
    tokio::task::spawn_blocking(|| opensearch_node::Node::private("outage", PORT).stop())
        .await
        .unwrap();
}
