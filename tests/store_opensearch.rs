//! The OpenSearch store on a real OpenSearch node (hack/opensearch) and the
//! real control plane: what a user of the search API and a platform team see
//! when spaces sync into OpenSearch.

mod common;
mod fakes;
mod harness;
mod opensearch_node;
mod support;

use common::{doc, page, segments};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::server::{self, AppState};
use confluence_operator::store::opensearch::{IndexMapping, Migration, OpenSearchStore};
use confluence_operator::store::{Search, Store};
use fakes::{FakeConfluence, FakeFactory};
use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const AGENTS: &str = "agents-and-admins";

/// The operator's controllers writing to a fresh alias, and the search API
/// answering from it over HTTP.
async fn operator(
    prefix: &str,
    fake: &Arc<FakeConfluence>,
) -> (harness::Operator, Arc<OpenSearchStore>, String) {
    let store = Arc::new(opensearch_node::store(prefix).await);
    let op = harness::start(
        prefix,
        Arc::new(FakeFactory(fake.clone())),
        vec![store.clone() as Arc<dyn Store>],
    )
    .await;
    let api = serve(store.clone()).await;
    (op, store, api)
}

async fn serve(search: Arc<dyn Search>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::standalone(search, Arc::new(AtomicBool::new(true)));
    tokio::spawn(async move { axum::serve(listener, server::router(state)).await });
    base
}

/// Space keys of the hits the search API returns for `query`.
async fn hit_spaces(api: &str, query: &str) -> Vec<String> {
    let body: Value = reqwest::get(format!("{api}/v1/search?{query}&limit=50"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut keys: Vec<String> = body["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {body}"))
        .iter()
        .map(|h| h["space"].as_str().unwrap_or_default().to_string())
        .collect();
    keys.sort();
    keys
}

fn n_of(key: &str, n: usize) -> Vec<String> {
    vec![key.to_string(); n]
}

async fn public_and_internal(
    prefix: &str,
) -> (
    Arc<FakeConfluence>,
    harness::Operator,
    Arc<OpenSearchStore>,
    String,
) {
    let fake = Arc::new(FakeConfluence::default())
        .with_space("PUB", 5)
        .with_space("INT", 4);
    let (op, store, api) = operator(prefix, &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("pub", "acme", "PUB", json!({"visibility": "Everyone"}))
        .await;
    op.create_space(
        "int",
        "acme",
        "INT",
        json!({"visibility": "Segments", "segments": [AGENTS]}),
    )
    .await;
    op.wait_ready("pub").await;
    op.wait_ready("int").await;
    (fake, op, store, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_syncs_into_opensearch_and_search_shows_each_caller_only_what_it_may_see() {
    let (_fake, op, store, api) = public_and_internal("os-sync").await;
    let status = op.wait_ready("int").await.status.unwrap();
    assert_eq!(status.items, Some(4));
    assert_eq!(
        store
            .count(&SpaceScope::new(&op.namespace, "pub"))
            .await
            .unwrap(),
        5
    );

    // Anonymous callers and unrelated segments see the public space only.
    assert_eq!(hit_spaces(&api, "q=page").await, n_of("PUB", 5));
    assert_eq!(
        hit_spaces(&api, "q=page&segments=partners").await,
        n_of("PUB", 5)
    );
    // Agents see both.
    let mut both = n_of("INT", 4);
    both.extend(n_of("PUB", 5));
    assert_eq!(
        hit_spaces(&api, &format!("q=page&segments={AGENTS}")).await,
        both
    );

    // A single document: hidden (404) unless the caller may see it.
    let id = format!("{}.int.INT-1", op.namespace);
    let hidden = reqwest::get(format!("{api}/v1/documents/{id}"))
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
    let shown: Value = reqwest::get(format!("{api}/v1/documents/{id}?segments={AGENTS}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["page"]["title"], "INT page 1", "{shown}");
    store.drop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_change_updates_documents_without_any_confluence_fetch() {
    let (fake, op, store, api) = public_and_internal("os-viewers").await;
    let fetched_before = fake.fetched.load(Ordering::SeqCst);

    op.spaces()
        .patch(
            "pub",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"viewers": {"visibility": "Segments", "segments": ["partners"]}}}),
            ),
        )
        .await
        .unwrap();
    op.wait_status("pub", "viewers changed", |st| {
        (st.viewers.as_deref() == Some("partners")).then_some(())
    })
    .await;
    op.wait_ready("pub").await;

    assert!(hit_spaces(&api, "q=page").await.is_empty());
    assert_eq!(
        hit_spaces(&api, "q=page&segments=partners").await,
        n_of("PUB", 5)
    );
    assert_eq!(
        hit_spaces(&api, &format!("q=page&segments={AGENTS}")).await,
        n_of("INT", 4)
    );
    let stored = store
        .get(&format!("{}.pub.PUB-3", op.namespace), &["partners".into()])
        .await
        .unwrap()
        .expect("document kept");
    assert_eq!(stored.audience, segments(&["partners"]));
    assert_eq!(
        fake.fetched.load(Ordering::SeqCst),
        fetched_before,
        "a viewer change must not fetch bodies from Confluence"
    );
    store.drop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_space_or_its_site_leaves_no_document_behind() {
    let (_fake, op, store, api) = public_and_internal("os-delete").await;
    let url = opensearch_node::url();
    assert_eq!(opensearch_node::count_all(&url, store.alias()).await, 9);

    op.spaces()
        .delete("int", &DeleteParams::default())
        .await
        .unwrap();
    op.wait_space_gone("int").await;
    assert_eq!(opensearch_node::count_all(&url, store.alias()).await, 5);
    assert_eq!(
        hit_spaces(&api, &format!("q=page&segments={AGENTS}")).await,
        n_of("PUB", 5)
    );

    let bg = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    op.sites().delete("acme", &bg).await.unwrap();
    op.wait_space_gone("pub").await;
    assert_eq!(opensearch_node::count_all(&url, store.alias()).await, 0);
    assert!(hit_spaces(&api, "q=page").await.is_empty());
}

/// The next mapping: the current one plus a field, as a real change would be.
fn next_mapping() -> IndexMapping {
    let mut next = IndexMapping::current();
    next.version += 1;
    next.body["mappings"]["properties"]["title_exact"] = json!({"type": "keyword"});
    next.body["mappings"]["_meta"]["mapping_version"] = json!(next.version);
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_version_bump_reindexes_behind_the_alias_while_searches_keep_answering() {
    let old = Arc::new(opensearch_node::store("os-mapping").await);
    let scope = SpaceScope::new("docs", "kb");
    let docs: Vec<_> = (0..2000)
        .map(|n| {
            doc(
                &scope,
                "KB",
                Audience::Everyone,
                page(
                    &n.to_string(),
                    1 + n % 3,
                    &format!("Router guide {n}"),
                    "Hold the reset button of the router.",
                ),
            )
        })
        .collect();
    for batch in docs.chunks(500) {
        old.upsert(batch).await.unwrap();
    }
    let versions_before = old.versions(&scope).await.unwrap();
    let old_index = old.live_index().await.unwrap().unwrap();

    // Searches run throughout the migration, through the same alias.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let searcher = {
        let (old, stop, answered) = (old.clone(), stop.clone(), answered.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let res = old
                    .search_counted("router", &[], 5)
                    .await
                    .expect("search during the migration");
                assert_eq!(res.total, Some(2000), "a search saw a partial index");
                answered.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let next = OpenSearchStore::new(opensearch_node::config(old.alias()), next_mapping()).unwrap();
    let migration = next.migrate().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    searcher.await.expect("searches kept answering");
    assert!(answered.load(Ordering::SeqCst) > 2);

    assert_eq!(
        migration,
        Migration::Reindexed {
            from: old_index.clone(),
            to: next.target_index(),
            docs: 2000
        }
    );
    assert_eq!(next.live_index().await.unwrap(), Some(next.target_index()));
    assert_eq!(next.versions(&scope).await.unwrap(), versions_before);
    // The old index is gone; running the migration again changes nothing.
    let gone = reqwest::get(opensearch_node::url().join(&old_index).unwrap())
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(
        next.migrate().await.unwrap(),
        Migration::UpToDate {
            index: next.target_index()
        }
    );
    // An older operator finds a newer mapping and leaves it alone.
    assert_eq!(
        old.migrate().await.unwrap(),
        Migration::Newer {
            index: next.target_index()
        }
    );
    next.drop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_of_a_space_larger_than_one_page_of_hits_are_complete() {
    let store = opensearch_node::store("os-versions").await;
    let scope = SpaceScope::new("docs", "big");
    let other = SpaceScope::new("docs", "other");
    let docs: Vec<_> = (0..12_000u64)
        .map(|n| {
            doc(
                &scope,
                "BIG",
                Audience::Everyone,
                page(&format!("p{n}"), n % 7 + 1, "Page", "text"),
            )
        })
        .collect();
    for batch in docs.chunks(2000) {
        store.upsert(batch).await.unwrap();
    }
    store
        .upsert(&[doc(
            &other,
            "OTHER",
            Audience::Everyone,
            page("p1", 99, "Other", "text"),
        )])
        .await
        .unwrap();
    let versions = store.versions(&scope).await.unwrap();
    assert_eq!(versions.len(), 12_000);
    assert_eq!(versions.get("p1"), Some(&2));
    assert_eq!(versions.get("p11999"), Some(&(11_999 % 7 + 1)));
    assert_eq!(store.count(&scope).await.unwrap(), 12_000);
    store.drop_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partially_rejected_batch_is_an_error_not_silence() {
    let store = opensearch_node::store("os-partial").await;
    let scope = SpaceScope::new("docs", "kb");
    let mut bad = page("2", 1, "Huge label", "text");
    // Longer than the 32766-byte limit of one indexed term: OpenSearch refuses this document only.
    bad.labels = vec!["x".repeat(40_000)];
    let err = store
        .upsert(&[
            doc(
                &scope,
                "KB",
                Audience::Everyone,
                page("1", 1, "Fine", "text"),
            ),
            doc(&scope, "KB", Audience::Everyone, bad),
            doc(
                &scope,
                "KB",
                Audience::Everyone,
                page("3", 1, "Fine too", "text"),
            ),
        ])
        .await
        .expect_err("a rejected document must fail the batch");
    let msg = err.to_string();
    assert!(
        msg.contains("1 of 3 documents rejected") && msg.contains("docs.kb.2"),
        "{msg}"
    );
    // The sync engine retries the batch; the accepted documents are plain upserts.
    assert_eq!(
        store.versions(&scope).await.unwrap().keys().count(),
        2,
        "the other documents of the batch are stored"
    );
    store.drop_all().await.unwrap();
}
