//! The embedded (tantivy) store as a user of the search API experiences it:
//! who sees what, what survives a restart, and what a resync converges to.

mod common;
mod fakes;

use common::*;
use confluence_operator::confluence::ListOptions;
use confluence_operator::model::{Audience, Document, SpaceScope};
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_operator::store::{Search, Store};
use confluence_operator::sync::{SyncRequest, sync_space};
use fakes::FakeConfluence;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const AGENTS: &str = "agents-and-admins";

fn public_scope() -> SpaceScope {
    SpaceScope::new("docs", "public-kb")
}
fn internal_scope() -> SpaceScope {
    SpaceScope::new("docs", "internal-runbooks")
}
fn partner_scope() -> SpaceScope {
    SpaceScope::new("partners", "partner-guides")
}

/// Three spaces that all mention "router": public, agents only, partners only.
async fn seeded() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    store
        .upsert(&[
            doc(
                &public_scope(),
                "KB",
                Audience::Everyone,
                page(
                    "101",
                    1,
                    "Reset your router",
                    "Hold the reset button of the router for ten seconds.",
                ),
            ),
            doc(
                &public_scope(),
                "KB",
                Audience::Everyone,
                page(
                    "102",
                    1,
                    "Billing questions",
                    "Invoices are sent monthly by email.",
                ),
            ),
        ])
        .await
        .expect("upsert public");
    store
        .upsert(&[doc(
            &internal_scope(),
            "OPS",
            segments(&[AGENTS]),
            page(
                "201",
                1,
                "Router fleet escalation",
                "Escalate router outages to the network on-call.",
            ),
        )])
        .await
        .expect("upsert internal");
    store
        .upsert(&[doc(
            &partner_scope(),
            "PART",
            segments(&["partners"]),
            page(
                "301",
                1,
                "Router reseller pricing",
                "Partners get a discount on every router model.",
            ),
        )])
        .await
        .expect("upsert partners");
    (dir, store)
}

fn ids(hits: &[confluence_operator::store::Hit]) -> Vec<String> {
    let mut v: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn anonymous_callers_see_only_public_spaces() {
    let (_dir, store) = seeded().await;
    let hits = store.search("router", &[], 10).await.expect("search");
    assert_eq!(ids(&hits), vec!["docs.public-kb.101"]);
    let hit = &hits[0];
    assert_eq!(hit.title, "Reset your router");
    assert_eq!(hit.space_key, "KB");
    assert_eq!(hit.url, "https://wiki.example.com/pages/101");
    assert!(
        hit.snippet.to_lowercase().contains("router"),
        "{}",
        hit.snippet
    );
    assert!(hit.score > 0.0);
}

#[tokio::test]
async fn agents_see_public_and_agent_spaces_but_not_partner_spaces() {
    let (_dir, store) = seeded().await;
    let hits = store
        .search("router", &strings(&["signed-in-users", AGENTS]), 10)
        .await
        .expect("search");
    assert_eq!(
        ids(&hits),
        vec!["docs.internal-runbooks.201", "docs.public-kb.101"]
    );
}

#[tokio::test]
async fn a_custom_segment_unlocks_its_space() {
    let (_dir, store) = seeded().await;
    let hits = store
        .search("router", &strings(&["partners"]), 10)
        .await
        .expect("search");
    assert_eq!(
        ids(&hits),
        vec!["docs.public-kb.101", "partners.partner-guides.301"]
    );
    let counted = store
        .search_counted("router", &strings(&["partners"]), 1)
        .await
        .expect("search");
    assert_eq!(counted.hits.len(), 1);
    assert_eq!(counted.total, Some(2));
}

#[tokio::test]
async fn get_hides_documents_the_caller_may_not_see() {
    let (_dir, store) = seeded().await;
    let id = "docs.internal-runbooks.201";
    assert!(store.get(id, &[]).await.expect("get").is_none());
    assert!(
        store
            .get(id, &strings(&["partners"]))
            .await
            .expect("get")
            .is_none()
    );
    let doc = store
        .get(id, &strings(&[AGENTS]))
        .await
        .expect("get")
        .expect("visible to agents");
    // Everything the sync stored comes back intact.
    let expected = common::doc(
        &internal_scope(),
        "OPS",
        segments(&[AGENTS]),
        page(
            "201",
            1,
            "Router fleet escalation",
            "Escalate router outages to the network on-call.",
        ),
    );
    assert_eq!(doc, expected);
    assert!(
        store
            .get("docs.nope.1", &strings(&[AGENTS]))
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn titles_rank_above_body_mentions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let scope = public_scope();
    store
        .upsert(&[
            doc(
                &scope,
                "KB",
                Audience::Everyone,
                page(
                    "1",
                    1,
                    "Printer setup",
                    "Connect the printer to the VPN gateway first.",
                ),
            ),
            doc(
                &scope,
                "KB",
                Audience::Everyone,
                page("2", 1, "VPN gateway", "How to configure the gateway."),
            ),
        ])
        .await
        .expect("upsert");
    let hits = store.search("vpn", &[], 10).await.expect("search");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].id, "docs.public-kb.2");
}

#[tokio::test]
async fn queries_with_special_characters_never_fail() {
    let (_dir, store) = seeded().await;
    for q in [
        "router\"",
        "(router",
        "title:router AND",
        "router^2 ~ * ? [ ] { } : \\ / - + ! || &&",
        "\"unterminated phrase",
        "",
        "   ",
        "*",
        "router OR NOT",
        "🚀 router ünïcödé",
    ] {
        let res = store.search(q, &[], 10).await;
        assert!(res.is_ok(), "query {q:?} failed: {res:?}");
    }
    let hits = store.search("(router!", &[], 10).await.expect("search");
    assert_eq!(ids(&hits), vec!["docs.public-kb.101"]);
    assert!(
        store
            .search("router", &[], 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
}

#[tokio::test]
async fn viewer_change_applies_without_refetching_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let search = EmbeddedStore::open(dir.path()).expect("open");
    // Clones share one index, as the operator shares it between sync and API.
    let store: Arc<dyn Store> = Arc::new(search.clone());
    let source = FakeConfluence::with_pages(
        "OPS",
        [
            page(
                "1",
                1,
                "Internal escalation matrix",
                "Who to page for router outages.",
            ),
            page("2", 1, "Internal holidays", "Office closures."),
        ],
    );
    let mut req = SyncRequest {
        scope: internal_scope(),
        site_url: "https://wiki.example.com".into(),
        space: space("OPS").into(),
        audience: segments(&[AGENTS]),
        options: ListOptions::default(),
        batch_size: 50,
    };
    sync_space(&source, std::slice::from_ref(&store), &req)
        .await
        .expect("first sync");
    assert!(
        search
            .search("router", &[], 10)
            .await
            .expect("search")
            .is_empty()
    );

    // The space is made public: the next sync must not fetch bodies again.
    let fetched_before = source.fetched.load(Ordering::SeqCst);
    req.audience = Audience::Everyone;
    let report = sync_space(&source, std::slice::from_ref(&store), &req)
        .await
        .expect("resync");
    assert_eq!(report.fetched, 0);
    assert_eq!(source.fetched.load(Ordering::SeqCst), fetched_before);
    let hits = search.search("router", &[], 10).await.expect("search");
    assert_eq!(ids(&hits), vec!["docs.internal-runbooks.1"]);

    // And narrowed again to a custom segment.
    store
        .set_audience(&internal_scope(), &segments(&["tier2"]))
        .await
        .expect("set_audience");
    assert!(
        search
            .search("router", &[], 10)
            .await
            .expect("search")
            .is_empty()
    );
    assert!(
        search
            .search("router", &strings(&[AGENTS]), 10)
            .await
            .expect("search")
            .is_empty()
    );
    assert_eq!(
        search
            .search("router", &strings(&["tier2"]), 10)
            .await
            .expect("search")
            .len(),
        1
    );
    // Content and versions are untouched by the audience change.
    assert_eq!(store.count(&internal_scope()).await.expect("count"), 2);
    let versions = store.versions(&internal_scope()).await.expect("versions");
    assert_eq!(versions.get("1"), Some(&1));
}

#[tokio::test]
async fn deleting_a_space_purges_it_from_search() {
    let (_dir, store) = seeded().await;
    store
        .delete_space(&internal_scope())
        .await
        .expect("delete_space");
    assert_eq!(store.count(&internal_scope()).await.expect("count"), 0);
    assert!(
        store
            .versions(&internal_scope())
            .await
            .expect("versions")
            .is_empty()
    );
    let hits = store
        .search("escalation", &strings(&[AGENTS]), 10)
        .await
        .expect("search");
    assert!(hits.is_empty());
    assert!(
        store
            .get("docs.internal-runbooks.201", &strings(&[AGENTS]))
            .await
            .expect("get")
            .is_none()
    );
    // Other spaces are untouched.
    assert_eq!(store.count(&public_scope()).await.expect("count"), 2);
}

#[tokio::test]
async fn page_updates_and_deletions_are_reflected() {
    let (_dir, store) = seeded().await;
    let scope = public_scope();
    store
        .upsert(&[doc(
            &scope,
            "KB",
            Audience::Everyone,
            page("101", 2, "Reboot your modem", "Unplug the modem."),
        )])
        .await
        .expect("update");
    assert!(
        store
            .search("router", &[], 10)
            .await
            .expect("search")
            .is_empty()
    );
    assert_eq!(
        store.search("modem", &[], 10).await.expect("search").len(),
        1
    );
    let versions = store.versions(&scope).await.expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions["101"], 2);
    assert_eq!(versions["102"], 1);

    store
        .delete(&scope, &strings(&["101"]))
        .await
        .expect("delete");
    assert!(
        store
            .search("modem", &[], 10)
            .await
            .expect("search")
            .is_empty()
    );
    assert_eq!(store.count(&scope).await.expect("count"), 1);
}

#[tokio::test]
async fn committed_batches_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scope = public_scope();
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let batch: Vec<_> = (0..500)
            .map(|i| {
                doc(
                    &scope,
                    "KB",
                    Audience::Everyone,
                    page(
                        &i.to_string(),
                        3,
                        &format!("Article {i}"),
                        "lorem ipsum dolor",
                    ),
                )
            })
            .collect();
        store.upsert(&batch).await.expect("upsert");
        store
            .set_audience(&scope, &segments(&[AGENTS]))
            .await
            .expect("audience");
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.count(&scope).await.expect("count"), 500);
    let versions = store.versions(&scope).await.expect("versions");
    assert_eq!(versions.len(), 500);
    assert!(versions.values().all(|v| *v == 3));
    assert!(
        store
            .search("lorem", &[], 10)
            .await
            .expect("search")
            .is_empty()
    );
    let counted = store
        .search_counted("lorem", &strings(&[AGENTS]), 10)
        .await
        .expect("search");
    assert_eq!(counted.total, Some(500));
}

#[tokio::test]
async fn a_second_writer_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = EmbeddedStore::open(dir.path()).expect("open");
    let err = EmbeddedStore::open(dir.path()).expect_err("second open must fail");
    assert!(err.to_string().contains("locked"), "{err}");
}

#[tokio::test]
async fn a_sync_interrupted_between_batches_converges_on_resync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scope = internal_scope();
    // Confluence has 600 pages; the store still holds two that were deleted
    // upstream since the last sync.
    let source = FakeConfluence::with_pages(
        "OPS",
        (0..600).map(|i| page(&format!("p{i:03}"), 1, &format!("Page {i}"), "router body")),
    );
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        store
            .upsert(&[
                doc(
                    &scope,
                    "OPS",
                    Audience::Everyone,
                    page("gone-1", 1, "Old", "stale"),
                ),
                doc(
                    &scope,
                    "OPS",
                    Audience::Everyone,
                    page("gone-2", 1, "Old", "stale"),
                ),
            ])
            .await
            .expect("seed");
    }
    let req = SyncRequest {
        scope: scope.clone(),
        site_url: "https://wiki.example.com".into(),
        space: space("OPS").into(),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: 50,
    };

    // First attempt: the connection drops on the second fetch (the sync
    // fetches 250 items a request and commits them in batches of 50), then
    // the process dies (the store is dropped without any shutdown step).
    {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        source.fail_after(Some(1));
        let err = sync_space(&source, std::slice::from_ref(&store), &req).await;
        assert!(err.is_err());
        // Exactly the batches of the first fetch were committed, nothing
        // half-written.
        assert_eq!(store.count(&scope).await.expect("count"), 250 + 2);
    }

    // After the restart the resync fetches only what is missing.
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("reopen"));
    source.fail_after(None);
    let report = sync_space(&source, std::slice::from_ref(&store), &req)
        .await
        .expect("resync");
    assert_eq!(report.fetched, 350);
    assert_eq!(report.deleted, 2);
    let mut stored: Vec<String> = store
        .versions(&scope)
        .await
        .expect("versions")
        .into_keys()
        .collect();
    stored.sort();
    assert_eq!(stored, source.ids());
}

#[tokio::test]
async fn searches_run_while_batches_are_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let scope = public_scope();
    let writer = {
        let store = store.clone();
        let scope = scope.clone();
        tokio::spawn(async move {
            for b in 0..10 {
                let batch: Vec<_> = (0..50)
                    .map(|i| {
                        let id = format!("{b}-{i}");
                        doc(
                            &scope,
                            "KB",
                            Audience::Everyone,
                            page(&id, 1, "Gateway notes", "gateway"),
                        )
                    })
                    .collect();
                store.upsert(&batch).await.expect("upsert");
            }
        })
    };
    let mut last = 0;
    while !writer.is_finished() {
        let counted = store
            .search_counted("gateway", &[], 5)
            .await
            .expect("search");
        let total = counted.total.unwrap_or(0);
        // Whole batches only, never going backwards.
        assert_eq!(total % 50, 0, "saw a partial batch: {total}");
        assert!(total >= last);
        last = total;
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer");
    assert_eq!(store.count(&scope).await.expect("count"), 500);
}

/// A store as the sync sees it, counting `stage` calls so a test can stop a
/// sync at an exact point.
struct Counted {
    store: EmbeddedStore,
    staged: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Store for Counted {
    fn name(&self) -> &str {
        "embedded"
    }
    async fn upsert(
        &self,
        docs: &[confluence_operator::model::Document],
    ) -> Result<(), confluence_operator::store::StoreError> {
        self.store.upsert(docs).await
    }
    async fn stage(
        &self,
        docs: &[confluence_operator::model::Document],
    ) -> Result<(), confluence_operator::store::StoreError> {
        self.store.stage(docs).await?;
        self.staged.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn flush(
        &self,
        scope: &SpaceScope,
    ) -> Result<(), confluence_operator::store::StoreError> {
        self.store.flush(scope).await
    }
    async fn delete(
        &self,
        scope: &SpaceScope,
        ids: &[String],
    ) -> Result<(), confluence_operator::store::StoreError> {
        self.store.delete(scope, ids).await
    }
    async fn delete_space(
        &self,
        scope: &SpaceScope,
    ) -> Result<(), confluence_operator::store::StoreError> {
        self.store.delete_space(scope).await
    }
    async fn versions(
        &self,
        scope: &SpaceScope,
    ) -> Result<std::collections::HashMap<String, u64>, confluence_operator::store::StoreError>
    {
        self.store.versions(scope).await
    }
    async fn set_audience(
        &self,
        scope: &SpaceScope,
        audience: &Audience,
    ) -> Result<(), confluence_operator::store::StoreError> {
        self.store.set_audience(scope, audience).await
    }
    async fn count(
        &self,
        scope: &SpaceScope,
    ) -> Result<u64, confluence_operator::store::StoreError> {
        self.store.count(scope).await
    }
}

/// A Confluence whose fetches after the first `open` never answer, like a
/// connection that stalls while the operator is killed.
struct Stalling {
    inner: FakeConfluence,
    open: usize,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl confluence_operator::confluence::ConfluenceApi for Stalling {
    async fn whoami(&self) -> Result<String, confluence_operator::confluence::ConfluenceError> {
        self.inner.whoami().await
    }
    async fn space(
        &self,
        key: &str,
    ) -> Result<
        confluence_operator::confluence::SpaceInfo,
        confluence_operator::confluence::ConfluenceError,
    > {
        self.inner.space(key).await
    }
    async fn spaces(
        &self,
        query: Option<&str>,
    ) -> Result<
        Vec<confluence_operator::confluence::SpaceInfo>,
        confluence_operator::confluence::ConfluenceError,
    > {
        self.inner.spaces(query).await
    }
    async fn list_detailed(
        &self,
        space: &confluence_operator::confluence::SpaceInfo,
        options: &ListOptions,
    ) -> Result<
        confluence_operator::confluence::Listing,
        confluence_operator::confluence::ConfluenceError,
    > {
        self.inner.list_detailed(space, options).await
    }
    async fn fetch(
        &self,
        space: &confluence_operator::confluence::SpaceInfo,
        items: &[confluence_operator::model::PageRef],
    ) -> Result<
        Vec<confluence_operator::model::Page>,
        confluence_operator::confluence::ConfluenceError,
    > {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.open {
            std::future::pending::<()>().await;
        }
        self.inner.fetch(space, items).await
    }
}

/// The operator is killed while a sync has batches staged but not committed:
/// those are gone after the restart, and since the index is the sync's only
/// record of what is stored, the resync fetches exactly them again.
#[tokio::test]
async fn a_sync_killed_with_batches_staged_refetches_them_on_resync() {
    use confluence_operator::store::embedded::{CommitPolicy, EmbeddedOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let scope = internal_scope();
    let pages =
        || (0..600).map(|i| page(&format!("p{i:03}"), 1, &format!("Page {i}"), "router body"));
    // Commits every 100 staged documents, never by age during the test.
    let options = || EmbeddedOptions {
        commit: CommitPolicy {
            max_docs: 100,
            max_bytes: usize::MAX,
            max_age: std::time::Duration::from_secs(3600),
            ..CommitPolicy::default()
        },
        ..EmbeddedOptions::default()
    };
    let req = SyncRequest {
        scope: scope.clone(),
        site_url: "https://wiki.example.com".into(),
        space: space("OPS").into(),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: 50,
    };
    {
        // The first fetch (250 pages) answers, the next ones stall.
        let source = Arc::new(Stalling {
            inner: FakeConfluence::with_pages("OPS", pages()),
            open: 1,
            calls: Default::default(),
        });
        let counted = Arc::new(Counted {
            store: EmbeddedStore::open_with(dir.path(), options()).expect("open"),
            staged: Default::default(),
        });
        let store: Arc<dyn Store> = counted.clone();
        let sync = {
            let req = req.clone();
            let source = Arc::clone(&source);
            tokio::spawn(async move { sync_space(source.as_ref(), &[store], &req).await })
        };
        // Five batches of 50 handed over: two commits of 100, 50 staged.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while counted.staged.load(Ordering::SeqCst) < 5 {
            assert!(
                std::time::Instant::now() < deadline,
                "sync never staged 5 batches"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let visible = counted
            .store
            .search_counted("router", &[], 1)
            .await
            .expect("search")
            .total;
        assert_eq!(visible, Some(200), "searches see whole commits only");
        // Killed: the sync never gets to flush, the process state is gone.
        sync.abort();
        assert!(sync.await.expect_err("aborted").is_cancelled());
        drop(counted);
    }
    // Reopened (the writer lock is free once the dropped index is gone).
    let store = {
        let mut tries = 0;
        loop {
            match EmbeddedStore::open_with(dir.path(), options()) {
                Ok(s) => break s,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
    };
    assert_eq!(
        store.versions(&scope).await.expect("versions").len(),
        200,
        "the staged batch was not committed, so it is not recorded as stored"
    );
    let source = FakeConfluence::with_pages("OPS", pages());
    let store: Arc<dyn Store> = Arc::new(store);
    let report = sync_space(&source, std::slice::from_ref(&store), &req)
        .await
        .expect("resync");
    assert_eq!(report.fetched, 400, "exactly what was not committed");
    assert_eq!(report.unchanged, 200);
    let mut stored: Vec<String> = store
        .versions(&scope)
        .await
        .expect("versions")
        .into_keys()
        .collect();
    stored.sort();
    assert_eq!(stored, source.ids());
    assert_eq!(store.count(&scope).await.expect("count"), 600);
}

/// Pages `from..from + n` of `scope`, each matching "gateway".
fn gateway_pages(scope: &SpaceScope, from: usize, n: usize) -> Vec<Document> {
    (from..from + n)
        .map(|i| {
            doc(
                scope,
                "KB",
                Audience::Everyone,
                page(&i.to_string(), 1, "Gateway notes", "gateway"),
            )
        })
        .collect()
}

/// How many committed pages a public search for "gateway" finds.
async fn gateway_hits(store: &EmbeddedStore) -> u64 {
    store
        .search_counted("gateway", &[], 1)
        .await
        .expect("search")
        .total
        .unwrap_or(0)
}

/// Staged documents: invisible to searches until committed, visible to the
/// writer's own reads at once, and committed by age without further calls.
#[tokio::test]
async fn staged_documents_are_committed_by_count_age_and_reads() {
    use confluence_operator::store::embedded::{CommitPolicy, EmbeddedOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with(
        dir.path(),
        EmbeddedOptions {
            commit: CommitPolicy {
                max_docs: 30,
                max_bytes: usize::MAX,
                max_age: std::time::Duration::from_millis(300),
                ..CommitPolicy::default()
            },
            ..EmbeddedOptions::default()
        },
    )
    .expect("open");
    let scope = public_scope();
    let batch = |from: usize, n: usize| gateway_pages(&scope, from, n);
    let visible = |store: EmbeddedStore| async move { gateway_hits(&store).await };
    // Below every limit: staged, not searchable yet.
    store.stage(&batch(0, 10)).await.expect("stage");
    assert_eq!(visible(store.clone()).await, 0);
    // Count reaches the limit: committed with the call that reached it.
    store.stage(&batch(10, 20)).await.expect("stage");
    assert_eq!(visible(store.clone()).await, 30);
    // Age: committed by the timer, with no further call.
    store.stage(&batch(30, 5)).await.expect("stage");
    assert_eq!(visible(store.clone()).await, 30);
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(visible(store.clone()).await, 35);
    // Reads of the store's own writes commit first.
    store.stage(&batch(35, 5)).await.expect("stage");
    assert_eq!(store.count(&scope).await.expect("count"), 40);
    assert_eq!(visible(store.clone()).await, 40);
    store.stage(&batch(40, 5)).await.expect("stage");
    assert_eq!(store.versions(&scope).await.expect("versions").len(), 45);
    // And flush.
    store.stage(&batch(45, 5)).await.expect("stage");
    store.flush(&scope).await.expect("flush");
    assert_eq!(visible(store.clone()).await, 50);
    // A viewer change covers staged documents too.
    store.stage(&batch(50, 5)).await.expect("stage");
    store
        .set_audience(&scope, &segments(&[AGENTS]))
        .await
        .expect("set_audience");
    assert_eq!(visible(store.clone()).await, 0);
    let agents = store
        .search_counted("gateway", &strings(&[AGENTS]), 1)
        .await
        .expect("search");
    assert_eq!(agents.total, Some(55));
}

/// A sync stages in bursts and waits on the network between them: once
/// enough is staged, a pause commits it, so the commit that ends the sync
/// holds only what came after. Pause commits keep `pause_spacing` apart.
///
/// `max_age` is far longer than any wait here, so only a pause commit can
/// make pages visible; the waits poll instead of sleeping a fixed time, so a
/// loaded machine (the writer threads run at a lower priority) only makes the
/// test slower, never wrong.
#[tokio::test]
async fn a_pause_in_staging_commits_what_is_staged() {
    use confluence_operator::store::embedded::{CommitPolicy, EmbeddedOptions};
    use std::time::{Duration, Instant};
    const SPACING: Duration = Duration::from_millis(2_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with(
        dir.path(),
        EmbeddedOptions {
            commit: CommitPolicy {
                max_docs: 10_000,
                max_bytes: usize::MAX,
                max_age: Duration::from_secs(60),
                pause: Duration::from_millis(20),
                pause_docs: 30,
                pause_spacing: SPACING,
            },
            ..EmbeddedOptions::default()
        },
    )
    .expect("open");
    let scope = public_scope();
    let batch = |from: usize, n: usize| gateway_pages(&scope, from, n);
    // Opening the index counts as a commit: wait out the spacing.
    tokio::time::sleep(SPACING + Duration::from_millis(50)).await;
    // Fewer than `pause_docs`: a pause leaves them staged.
    store.stage(&batch(0, 20)).await.expect("stage");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(gateway_hits(&store).await, 0);
    // Enough: committed in the pause, long before `max_age`.
    let staged = Instant::now();
    store.stage(&batch(20, 20)).await.expect("stage");
    assert_eq!(
        visible_within(&store, 40, Duration::from_millis(1_500)).await,
        40
    );
    // The next pause commit waits for `pause_spacing` after that commit,
    // which came after `staged`: 60 ms later it is still too early.
    store.stage(&batch(40, 40)).await.expect("stage");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(
        staged.elapsed() < SPACING,
        "the machine stalled for the whole spacing"
    );
    assert_eq!(gateway_hits(&store).await, 40);
    assert_eq!(visible_within(&store, 80, SPACING * 3).await, 80);
}

/// Polls the hits until `want` are visible or `limit` has passed; the last count.
async fn visible_within(store: &EmbeddedStore, want: u64, limit: std::time::Duration) -> u64 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let seen = gateway_hits(store).await;
        if seen == want || std::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Ranking skips documents that cannot reach the top (block-WAND); pages the
/// caller may not see must never raise that bar. Thousands of restricted
/// pages that match far better than the few public ones still leave the
/// public ones found, best first, and counted exactly.
#[tokio::test]
async fn better_matching_restricted_pages_never_hide_visible_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let restricted: Vec<_> = (0..3_000)
        .map(|i| {
            doc(
                &internal_scope(),
                "OPS",
                segments(&[AGENTS]),
                page(
                    &format!("r{i}"),
                    1,
                    "Router router router",
                    "router router router router outage",
                ),
            )
        })
        .collect();
    store.stage(&restricted).await.expect("stage restricted");
    let public: Vec<_> = (0..15)
        .map(|i| {
            doc(
                &public_scope(),
                "KB",
                Audience::Everyone,
                page(
                    &format!("p{i:02}"),
                    1,
                    &format!("Guide {i}"),
                    // More filler words, a lower score: p00 ranks first.
                    &format!("the router {}", "and more words ".repeat(i)),
                ),
            )
        })
        .collect();
    store.stage(&public).await.expect("stage public");
    store.flush(&internal_scope()).await.expect("flush");
    store.flush(&public_scope()).await.expect("flush");

    let found = store
        .search_counted("router", &[], 10)
        .await
        .expect("search");
    let got: Vec<&str> = found.hits.iter().map(|h| h.id.as_str()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("docs.public-kb.p{i:02}")).collect();
    assert_eq!(got, want, "the ten best public pages, best first");
    assert_eq!(found.total, Some(15));

    let agents = store
        .search_counted("router", &strings(&[AGENTS]), 10)
        .await
        .expect("search");
    assert!(
        agents
            .hits
            .iter()
            .all(|h| h.id.starts_with("docs.internal-runbooks.r")),
        "agents see the better-matching runbooks first"
    );
    assert_eq!(agents.total, Some(3_015));
}

/// The total is exact up to 10,000 visible matches; a search matching more
/// says it did not count them all instead of giving a wrong figure.
#[tokio::test]
async fn totals_are_exact_up_to_ten_thousand_matches_and_omitted_beyond() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let pages: Vec<_> = (0..10_001)
        .map(|i| {
            let body = if i < 10_000 {
                "router"
            } else {
                "router switch"
            };
            doc(
                &public_scope(),
                "KB",
                Audience::Everyone,
                page(&format!("p{i}"), 1, "Page", body),
            )
        })
        .collect();
    for chunk in pages.chunks(2_000) {
        store.stage(chunk).await.expect("stage");
    }
    store.flush(&public_scope()).await.expect("flush");

    let all = store
        .search_counted("router", &[], 5)
        .await
        .expect("search");
    assert_eq!(all.hits.len(), 5);
    assert_eq!(all.total, None, "10,001 matches are more than are counted");
    let one = store
        .search_counted("switch", &[], 5)
        .await
        .expect("search");
    assert_eq!(one.total, Some(1));
    let hidden = store
        .search_counted("router", &strings(&["nobody-has-this"]), 5)
        .await
        .expect("search");
    assert_eq!(hidden.total, None, "public pages are visible to everyone");
}

/// A page staged again replaces its earlier copy, whether that copy is
/// still staged, committed, or committed before a restart: never two copies
/// of one page in search results or counts.
#[tokio::test]
async fn a_page_staged_again_replaces_its_earlier_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scope = public_scope();
    let staged = |version: u64, word: &str| {
        vec![doc(
            &scope,
            "KB",
            Audience::Everyone,
            page("7", version, "Gateway notes", word),
        )]
    };
    let only = |store: EmbeddedStore, version: u64, word: &'static str| {
        let scope = scope.clone();
        async move {
            assert_eq!(store.count(&scope).await.expect("count"), 1);
            assert_eq!(
                store.versions(&scope).await.expect("versions")["7"],
                version
            );
            let hits = store.search("gateway", &[], 10).await.expect("search");
            assert_eq!(hits.len(), 1, "one copy of the page");
            assert_eq!(
                store.search(word, &[], 10).await.expect("search").len(),
                1,
                "the copy is version {version}"
            );
        }
    };
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        // Twice before a commit.
        store.stage(&staged(1, "alpha")).await.expect("stage");
        store.stage(&staged(2, "bravo")).await.expect("stage");
        store.flush(&scope).await.expect("flush");
        only(store.clone(), 2, "bravo").await;
        assert!(
            store
                .search("alpha", &[], 10)
                .await
                .expect("search")
                .is_empty()
        );
        // Again after that commit.
        store.stage(&staged(3, "charlie")).await.expect("stage");
        store.flush(&scope).await.expect("flush");
        only(store.clone(), 3, "charlie").await;
    }
    // And after a restart.
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    store.stage(&staged(4, "delta")).await.expect("stage");
    store.flush(&scope).await.expect("flush");
    only(store.clone(), 4, "delta").await;
    assert!(
        store
            .search("charlie", &[], 10)
            .await
            .expect("search")
            .is_empty()
    );
}

#[tokio::test]
async fn an_index_written_by_another_release_is_moved_aside_and_rebuilt() {
    use confluence_operator::store::embedded::{
        EmbeddedOptions, RebuildCause, other_schema_copy_path,
    };
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("index");
    write_index_of_another_release(&dir).expect("index of another release");

    // Opened as is, it is refused with a reason, not misread.
    let refused = EmbeddedStore::open(&dir).expect_err("another schema must not open");
    assert!(
        refused.to_string().contains("another schema"),
        "unclear error: {refused}"
    );

    // At start-up the operator moves it aside and starts empty.
    let (store, rebuilt) =
        EmbeddedStore::open_or_rebuild(&dir, EmbeddedOptions::default()).expect("rebuilt");
    let rebuilt = rebuilt.expect("the old index must be reported as rebuilt");
    assert_eq!(rebuilt.cause, RebuildCause::OtherSchema);
    assert_eq!(rebuilt.moved_to, other_schema_copy_path(&dir));
    assert!(
        rebuilt.moved_to.join("meta.json").exists(),
        "the old index was not kept aside for a rollback"
    );
    assert_eq!(store.total().await.expect("total"), 0);

    // The new index takes documents and keeps them over a restart, which
    // rebuilds nothing.
    let scope = public_scope();
    store
        .upsert(&[doc(
            &scope,
            "KB",
            Audience::Everyone,
            page("1", 1, "Router", "reset the router"),
        )])
        .await
        .expect("upsert");
    drop(store);
    let (store, rebuilt) =
        EmbeddedStore::open_or_rebuild(&dir, EmbeddedOptions::default()).expect("reopen");
    assert!(rebuilt.is_none(), "a clean restart rebuilt the index");
    assert_eq!(store.count(&scope).await.expect("count"), 1);
}

#[tokio::test]
async fn an_index_removed_under_a_running_store_fails_writes_with_a_reason() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("index");
    let store = EmbeddedStore::open(&dir).expect("open");
    let scope = public_scope();
    let one = |id: &str| {
        doc(
            &scope,
            "KB",
            Audience::Everyone,
            page(id, 1, "Router", "reset the router"),
        )
    };
    store.upsert(&[one("1")]).await.expect("upsert");
    assert!(store.unusable().is_none());

    // Someone empties the volume while the operator runs.
    std::fs::remove_dir_all(&dir).expect("remove the index directory");

    // Every later write fails with an error (never a panic), and the store
    // says why it cannot be written any more.
    for id in ["2", "3", "4"] {
        let err = store
            .upsert(&[one(id)])
            .await
            .expect_err("a write to a removed index must fail");
        assert!(!err.to_string().contains("panicked"), "{err}");
    }
    let why = store
        .unusable()
        .expect("the store must report it is unusable");
    assert!(why.contains(&dir.display().to_string()), "{why}");
    // Searches still answer from what the process has open.
    assert_eq!(
        store.search("router", &[], 10).await.expect("search").len(),
        1
    );
    // The periodic check names it too.
    let damage = store.find_damage().expect("check").expect("damage");
    assert!(damage.contains("removed"), "{damage}");
}
