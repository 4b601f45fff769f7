//! The Confluence client against the in-process simulator, both flavors.

mod listing_ext;
mod sim_site;
use confluence_operator::confluence::{
    ClientOptions, ConfluenceApi, ConfluenceError, Credentials, Flavor, ListOptions, SiteConfig,
    SpaceInfo, connect, connect_with,
};
use confluence_operator::model::{Audience, ContentType, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{SyncRequest, sync_space};
use confluence_sim::{FaultConfig, SimConfig, SimPage, Simulator};
use listing_ext::ListingExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::DataCenter];

async fn sim(pages: usize) -> Simulator {
    Simulator::start(SimConfig {
        spaces: 2,
        pages,
        blogposts: 2,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn fast_options(page_limit: usize) -> ClientOptions {
    ClientOptions {
        page_limit,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
        retry_after_max: Duration::from_millis(20),
    }
}

fn config(sim: &Simulator, flavor: Flavor) -> SiteConfig {
    sim_site::site_config(sim, flavor)
}

fn client(sim: &Simulator, flavor: Flavor, page_limit: usize) -> Arc<dyn ConfluenceApi> {
    connect_with(config(sim, flavor), fast_options(page_limit)).expect("client")
}

fn request(space: SpaceInfo, options: ListOptions) -> SyncRequest<'static> {
    SyncRequest {
        scope: SpaceScope::new("default", "eng"),
        site_url: "http://sim".into(),
        space: space.into(),
        audience: Audience::Everyone,
        options,
        batch_size: 20,
    }
}

fn page_ids(sim: &Simulator, key: &str) -> BTreeSet<String> {
    sim.pages(key)
        .into_iter()
        .filter(|p| p.content_type == confluence_sim::ContentType::Page)
        .map(|p| p.id.to_string())
        .collect()
}

async fn stored_ids(store: &MemoryStore, scope: &SpaceScope) -> BTreeSet<String> {
    store
        .versions(scope)
        .await
        .expect("versions")
        .into_keys()
        .collect()
}

/// `root` and every page below it.
fn subtree(pages: &[SimPage], root: u64) -> BTreeSet<String> {
    let mut out = BTreeSet::from([root.to_string()]);
    loop {
        let before = out.len();
        for p in pages {
            if p.parent_id
                .is_some_and(|parent| out.contains(&parent.to_string()))
            {
                out.insert(p.id.to_string());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// A page that has at least one child, so inheritance is exercised.
fn page_with_child(pages: &[SimPage]) -> u64 {
    pages
        .iter()
        .rev()
        .find(|p| p.parent_id.is_some() && pages.iter().any(|c| c.parent_id == Some(p.id)))
        .map(|p| p.id)
        .expect("a page with children")
}

#[tokio::test]
async fn paging_lists_every_page_for_both_flavors() {
    for flavor in FLAVORS {
        let sim = sim(57).await;
        let client = client(&sim, flavor, 10);
        let space = client.space("ENG").await.expect("space");
        assert_eq!(space.key, "ENG");
        let listed = client
            .list(&space, &ListOptions::default())
            .await
            .expect("list");
        let ids: BTreeSet<String> = listed.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids.len(), listed.len(), "{flavor:?}: no duplicates");
        assert_eq!(ids, page_ids(&sim, "ENG"), "{flavor:?}");
        let stats = sim.stats();
        let listing = match flavor {
            Flavor::Cloud => stats.get("GET /wiki/api/v2/spaces/{id}/pages"),
            Flavor::DataCenter => stats.get("GET /rest/api/content"),
        };
        // Data Center reads offset pages side by side: a few requests past
        // the end (at most maxConcurrency - 1) are the price of no chain.
        // Cloud walks from both ends: where they meet one answer is read
        // twice, and the other end's next request may be on its way.
        let past_end = match flavor {
            Flavor::Cloud => 2,
            Flavor::DataCenter => 7,
        };
        assert!(
            (6..=6 + past_end).contains(&listing),
            "{flavor:?}: 57 items at 10 per request: {stats:?}"
        );
        // The restriction/label pass pages too, also from both ends.
        if flavor == Flavor::Cloud {
            assert!(
                (6..=8).contains(&stats.get("GET /wiki/rest/api/content/search")),
                "{stats:?}"
            );
        }
        // Blog posts are a separate listing.
        let with_blogs = client
            .list(
                &space,
                &ListOptions {
                    content_types: vec![ContentType::Page, ContentType::Blogpost],
                    ..ListOptions::default()
                },
            )
            .await
            .expect("list");
        assert_eq!(with_blogs.len(), 59, "{flavor:?}");
        assert_eq!(
            with_blogs
                .iter()
                .filter(|r| r.content_type == ContentType::Blogpost)
                .count(),
            2
        );
    }
}

#[tokio::test]
async fn label_filters_apply() {
    for flavor in FLAVORS {
        let sim = sim(30).await;
        let client = client(&sim, flavor, 25);
        let space = client.space("ENG").await.expect("space");
        let pages = sim.pages("ENG");
        let with = |label: &str| -> BTreeSet<String> {
            pages
                .iter()
                .filter(|p| p.labels.iter().any(|l| l == label))
                .map(|p| p.id.to_string())
                .collect()
        };
        let only_news = client
            .list(
                &space,
                &ListOptions {
                    content_types: vec![ContentType::Page, ContentType::Blogpost],
                    include_labels: vec!["NEWS".into()],
                    ..ListOptions::default()
                },
            )
            .await
            .expect("list");
        let ids: BTreeSet<String> = only_news.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, with("news"), "{flavor:?}");
        let no_drafts = client
            .list(
                &space,
                &ListOptions {
                    exclude_labels: vec!["draft".into()],
                    ..ListOptions::default()
                },
            )
            .await
            .expect("list");
        let ids: BTreeSet<String> = no_drafts.iter().map(|r| r.id.clone()).collect();
        let expected: BTreeSet<String> = page_ids(&sim, "ENG")
            .difference(&with("draft"))
            .cloned()
            .collect();
        assert!(!with("draft").is_empty(), "seed gives some drafts");
        assert_eq!(ids, expected, "{flavor:?}");
    }
}

#[tokio::test]
async fn incremental_sync_fetches_only_changed_pages_and_detects_deletion() {
    for flavor in FLAVORS {
        let sim = sim(60).await;
        let client = client(&sim, flavor, 25);
        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let space = client.space("ENG").await.expect("space");
        let req = request(space, ListOptions::default());

        let first = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        assert_eq!(first.items, 60, "{flavor:?}");
        assert_eq!(first.fetched, 60);
        assert_eq!(stored_ids(&store, &req.scope).await, page_ids(&sim, "ENG"));

        // Nothing changed: no body is fetched.
        sim.reset_stats();
        let again = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        assert_eq!((again.fetched, again.unchanged, again.deleted), (0, 60, 0));
        let stats = sim.stats();
        assert_eq!(
            stats.matching("/pages") - stats.matching("/spaces/{id}/pages"),
            0,
            "{stats:?}"
        );
        assert_eq!(stats.matching("body"), 0);

        // Two edits and one deletion.
        let pages: Vec<SimPage> = sim
            .pages("ENG")
            .into_iter()
            .filter(|p| p.content_type == confluence_sim::ContentType::Page)
            .collect();
        let (a, b, gone) = (pages[3].id, pages[10].id, pages[pages.len() - 1].id);
        sim.edit_page(a, "<p>Edited <strong>body</strong></p>")
            .expect("edit");
        sim.edit_page(b, "<p>Second edit</p>").expect("edit");
        sim.delete_page(gone).expect("delete");
        sim.reset_stats();
        let report = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        assert_eq!(report.fetched, 2, "{flavor:?}: {report:?}");
        assert_eq!(report.deleted, 1);
        assert_eq!(report.items, 59);
        let stats = sim.stats();
        match flavor {
            Flavor::Cloud => assert_eq!(stats.get("GET /wiki/api/v2/pages"), 1, "{stats:?}"),
            Flavor::DataCenter => {
                assert_eq!(stats.get("GET /rest/api/content/search"), 1, "{stats:?}")
            }
        }
        let docs = store.documents(&req.scope);
        let edited = docs
            .iter()
            .find(|d| d.page.id == a.to_string())
            .expect("edited doc");
        assert_eq!(edited.page.body_markdown, "Edited **body**");
        assert_eq!(edited.page.body_text, "Edited body");
        assert!(!docs.iter().any(|d| d.page.id == gone.to_string()));
    }
}

#[tokio::test]
async fn fetched_pages_carry_metadata() {
    for flavor in FLAVORS {
        let sim = sim(20).await;
        let client = client(&sim, flavor, 25);
        let space = client.space("ENG").await.expect("space");
        let refs = client
            .list(
                &space,
                &ListOptions {
                    content_types: vec![ContentType::Page, ContentType::Blogpost],
                    ..ListOptions::default()
                },
            )
            .await
            .expect("list");
        let pages = client.fetch(&space, &refs).await.expect("fetch");
        assert_eq!(pages.len(), refs.len(), "{flavor:?}");
        let sim_pages = sim.pages("ENG");
        for page in &pages {
            let src = sim_pages
                .iter()
                .find(|p| p.id.to_string() == page.id)
                .expect("known page");
            assert_eq!(page.title, src.title);
            assert_eq!(page.version, src.version);
            assert_eq!(page.labels, src.labels);
            assert_eq!(page.content_type.as_str(), src.content_type.as_str());
            assert!(page.url.starts_with(&sim.base_url()), "{}", page.url);
            assert!(page.updated_at.is_some());
            assert!(
                page.body_markdown.starts_with("# "),
                "{}",
                page.body_markdown
            );
            assert!(!page.body_text.contains("<p>") && !page.body_text.contains("ac:"));
            // Ancestors root first, with titles.
            let mut expected = Vec::new();
            let mut cur = src.parent_id;
            while let Some(id) = cur {
                let p = sim_pages.iter().find(|p| p.id == id).expect("parent");
                expected.push((p.id.to_string(), p.title.clone()));
                cur = p.parent_id;
            }
            expected.reverse();
            let got: Vec<(String, String)> = page
                .ancestors
                .iter()
                .map(|a| (a.id.clone(), a.title.clone()))
                .collect();
            assert_eq!(got, expected, "{flavor:?} page {}", page.id);
        }
        // Cross-page links resolve to absolute URLs.
        assert!(
            pages
                .iter()
                .any(|p| p.body_markdown.contains("/display/ENG/")),
            "{flavor:?}"
        );
        // Vanished items are left out, not an error.
        let gone = refs[1].clone();
        sim.delete_page(gone.id.parse().expect("numeric id"))
            .expect("delete");
        let again = client.fetch(&space, &refs[..3]).await.expect("fetch");
        assert_eq!(again.len(), 2);
    }
}

#[tokio::test]
async fn rate_limit_storm_loses_no_page() {
    for flavor in FLAVORS {
        let sim = sim(80).await;
        sim.set_faults(FaultConfig {
            rate_limit_rate: 0.3,
            rate_limit_budget: 5,
            retry_after_secs: 0,
            error_rate: 0.05,
            error_status: 503,
            ..FaultConfig::default()
        });
        let mut cfg = config(&sim, flavor);
        cfg.max_retries = 12;
        let client = connect_with(cfg, fast_options(10)).expect("client");
        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let space = client.space("ENG").await.expect("space");
        let req = request(space, ListOptions::default());
        let report = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync survives");
        assert_eq!(report.items, 80, "{flavor:?}");
        assert_eq!(stored_ids(&store, &req.scope).await, page_ids(&sim, "ENG"));
        let stats = sim.stats();
        assert!(
            stats.rate_limited >= 10,
            "{flavor:?}: storm happened: {stats:?}"
        );
    }
}

#[tokio::test]
async fn retry_after_as_http_date_is_honoured() {
    let sim = sim(5).await;
    sim.set_faults(FaultConfig {
        rate_limit_budget: 1,
        retry_after_secs: 1,
        retry_after_as_date: true,
        ..FaultConfig::default()
    });
    let client = connect_with(
        sim_site::site_config(&sim, Flavor::Cloud),
        ClientOptions {
            retry_after_max: Duration::from_secs(5),
            ..fast_options(25)
        },
    )
    .expect("client");
    let started = std::time::Instant::now();
    client.whoami().await.expect("whoami after one 429");
    // An HTTP date has one-second resolution: the wait is (0, 1] s.
    assert!(started.elapsed() >= Duration::from_millis(1), "waited");
    assert_eq!(sim.stats().rate_limited, 1);
}

#[tokio::test]
async fn persistent_rate_limiting_gives_a_typed_error() {
    let sim = sim(5).await;
    sim.set_faults(FaultConfig {
        rate_limit_rate: 1.0,
        retry_after_secs: 0,
        ..FaultConfig::default()
    });
    let mut cfg = sim_site::site_config(&sim, Flavor::DataCenter);
    cfg.max_retries = 2;
    let client = connect_with(cfg, fast_options(25)).expect("client");
    let err = client.space("ENG").await.expect_err("rate limited");
    assert!(
        matches!(err, ConfluenceError::RateLimited { retries: 2 }),
        "{err:?}"
    );
    assert!(!err.is_permanent());
    assert_eq!(sim.stats().rate_limited, 3);
}

#[tokio::test]
async fn timeouts_and_truncated_bodies_are_retried() {
    for flavor in FLAVORS {
        let sim = sim(40).await;
        sim.set_faults(FaultConfig {
            hang_rate: 0.1,
            hang_ms: 5_000,
            truncate_rate: 0.2,
            ..FaultConfig::default()
        });
        let mut cfg = config(&sim, flavor);
        cfg.request_timeout = Duration::from_millis(250);
        cfg.max_retries = 10;
        // Small pages: enough requests that both faults surely happen now
        // that a first sync reads bodies in the listing itself.
        let client = connect_with(cfg, fast_options(4)).expect("client");
        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let space = client.space("ENG").await.expect("space");
        let req = request(space, ListOptions::default());
        let report = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        assert_eq!(report.items, 40, "{flavor:?}");
        assert_eq!(stored_ids(&store, &req.scope).await, page_ids(&sim, "ENG"));
        let stats = sim.stats();
        assert!(stats.hangs > 0 && stats.truncated > 0, "{stats:?}");
    }
}

#[tokio::test]
async fn restricted_pages_and_their_children_are_not_synced() {
    for flavor in FLAVORS {
        let sim = sim(60).await;
        let client = client(&sim, flavor, 25);
        let pages = sim.pages("ENG");
        let early = page_with_child(&pages);
        let early_tree = subtree(&pages, early);
        assert!(early_tree.len() >= 2);
        sim.set_restricted(early, true).expect("restrict");

        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let space = client.space("ENG").await.expect("space");
        let req = request(space.clone(), ListOptions::default());
        sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        let stored = stored_ids(&store, &req.scope).await;
        let expected: BTreeSet<String> = page_ids(&sim, "ENG")
            .difference(&early_tree)
            .cloned()
            .collect();
        assert_eq!(stored, expected, "{flavor:?}: restricted subtree left out");

        // Restricting after a sync removes the subtree on the next sync,
        // although no version changed.
        let later = pages
            .iter()
            .find(|p| {
                !early_tree.contains(&p.id.to_string())
                    && p.parent_id.is_some()
                    && pages.iter().any(|c| c.parent_id == Some(p.id))
            })
            .map(|p| p.id)
            .expect("another parent page");
        let later_tree = subtree(&pages, later);
        sim.set_restricted(later, true).expect("restrict");
        let report = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        assert_eq!(report.deleted, later_tree.len() as u64, "{flavor:?}");
        assert_eq!(report.fetched, 0);
        let stored = stored_ids(&store, &req.scope).await;
        assert!(stored.is_disjoint(&later_tree));

        // include_restricted brings everything in.
        let all = request(
            space,
            ListOptions {
                include_restricted: true,
                ..ListOptions::default()
            },
        );
        sync_space(client.as_ref(), &stores, &all)
            .await
            .expect("sync");
        assert_eq!(stored_ids(&store, &all.scope).await, page_ids(&sim, "ENG"));
    }
}

#[tokio::test]
async fn bad_credentials_give_a_typed_error_without_the_token() {
    let sim = sim(5).await;
    for flavor in FLAVORS {
        for credentials in [
            Credentials::Basic {
                username: "demo@example.com".into(),
                token: "s3cret-WRONG-token".into(),
            },
            Credentials::Bearer {
                token: "s3cret-WRONG-token".into(),
            },
        ] {
            let mut cfg = config(&sim, flavor);
            cfg.credentials = credentials;
            let debug = format!("{cfg:?}");
            assert!(!debug.contains("s3cret"), "{debug}");
            let client = connect(cfg).expect("client");
            let err = client.whoami().await.expect_err("401");
            assert!(matches!(err, ConfluenceError::Unauthorized), "{err:?}");
            assert!(err.is_permanent());
            let text = format!("{err} {err:?}");
            assert!(!text.contains("s3cret"), "{text}");
            let err = client.space("ENG").await.expect_err("401");
            assert!(matches!(err, ConfluenceError::Unauthorized));
        }
    }
    // The right credentials work, with basic and bearer.
    for flavor in FLAVORS {
        let client = connect(config(&sim, flavor)).expect("client");
        let who = client.whoami().await.expect("whoami");
        assert!(who.contains("demo"), "{who}");
    }
}

#[tokio::test]
async fn personal_and_missing_spaces_are_refused_and_discovery_filters() {
    let sim = sim(5).await;
    for flavor in FLAVORS {
        let client = client(&sim, flavor, 1);
        let err = client.space("~alice").await.expect_err("personal");
        assert!(
            matches!(err, ConfluenceError::PersonalSpace(ref k) if k == "~alice"),
            "{err:?}"
        );
        let err = client.space("NOPE").await.expect_err("missing");
        assert!(
            matches!(err, ConfluenceError::SpaceNotFound(_)),
            "{flavor:?}: {err:?}"
        );

        // Discovery pages through every space (limit 1) and hides personal ones.
        let all = client.spaces(None).await.expect("spaces");
        let keys: Vec<&str> = all.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["ENG", "OPS"], "{flavor:?}");
        assert!(all.iter().all(|s| s.url.starts_with(&sim.base_url())));
        let found = client.spaces(Some("operat")).await.expect("spaces");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, "OPS");
        let found = client.spaces(Some("eng")).await.expect("spaces");
        assert_eq!(found[0].name, "Engineering");
    }
}

#[tokio::test]
async fn cloud_accepts_site_url_with_or_without_wiki() {
    let sim = sim(5).await;
    for base in [
        sim.base_url(),
        format!("{}/", sim.base_url()),
        format!("{}/wiki/", sim.base_url()),
    ] {
        let mut cfg = sim_site::site_config(&sim, Flavor::Cloud);
        cfg.base_url = base.parse().expect("url");
        let client = connect(cfg).expect("client");
        assert_eq!(
            client.space("ENG").await.expect("space").key,
            "ENG",
            "{base}"
        );
    }
}

#[tokio::test]
async fn concurrency_is_limited_per_site() {
    let sim = sim(5).await;
    sim.set_faults(FaultConfig {
        latency_ms: 50,
        ..FaultConfig::default()
    });
    let mut cfg = sim_site::site_config(&sim, Flavor::Cloud);
    cfg.max_concurrency = 2;
    // Two clients of the same site share its limit.
    let a = connect(cfg.clone()).expect("client");
    let b = connect(cfg).expect("client");
    let started = std::time::Instant::now();
    let calls = (0..6).map(|i| if i % 2 == 0 { a.whoami() } else { b.whoami() });
    for r in futures::future::join_all(calls).await {
        r.expect("whoami");
    }
    // 6 calls, 2 at a time, 50 ms each: at least 3 rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

/// Listing requests of a Data Center sync (`GET /rest/api/content`).
fn dc_listing_requests(sim: &Simulator) -> u64 {
    sim.stats().get("GET /rest/api/content")
}

#[tokio::test]
async fn data_center_asks_for_no_more_pages_past_the_end_when_the_last_page_answers_late() {
    // Answers come back in any order: here the empty pages past the end
    // overtake the last real page (offset 200 of 230).
    let sim = sim(230).await;
    let client = client(&sim, Flavor::DataCenter, 250);
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let space = client.space("ENG").await.expect("space");
    let req = request(space, ListOptions::default());
    sim.set_faults(FaultConfig {
        slow_match: "start=200".into(),
        slow_ms: 300,
        ..FaultConfig::default()
    });
    sim.reset_stats();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!((report.items, report.fetched), (230, 230), "{report:?}");
    assert_eq!(stored_ids(&store, &req.scope).await, page_ids(&sim, "ENG"));
    // 5 pages, and at most maxConcurrency - 1 = 7 asked for past the end:
    // the first empty answer bounds the offsets still to ask for.
    let listing = dc_listing_requests(&sim);
    assert!(
        (5..=12).contains(&listing),
        "{listing} listing requests: {:?}",
        sim.stats()
    );
}

#[tokio::test]
async fn data_center_full_sync_is_one_listing_with_bodies_within_its_request_budget() {
    let sim = sim(230).await;
    let client = client(&sim, Flavor::DataCenter, 250);
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let space = client.space("ENG").await.expect("space");
    let req = request(space.clone(), ListOptions::default());
    sim.reset_stats();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!((report.items, report.fetched), (230, 230), "{report:?}");
    assert_eq!(stored_ids(&store, &req.scope).await, page_ids(&sim, "ENG"));
    // Data Center grants 50 bodies a request: ceil(230/50) = 5 pages, plus
    // at most maxConcurrency - 1 = 7 asked for past the end; no fetch.
    let stats = sim.stats();
    let listing = dc_listing_requests(&sim);
    assert!((5..=12).contains(&listing), "{stats:?}");
    assert_eq!(stats.get("GET /rest/api/content/search"), 0, "{stats:?}");
    assert_eq!(stats.total, listing, "nothing but the listing: {stats:?}");

    // A page listed with its body is exactly the page a fetch returns.
    let (listing, mut listed) = client
        .list_with_bodies(&space, &ListOptions::default())
        .await
        .expect("list with bodies");
    let mut fetched = client.fetch(&space, &listing.items).await.expect("fetch");
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    fetched.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed.len(), 230);
    assert_eq!(listed, fetched);
}

#[tokio::test]
async fn data_center_reads_offset_pages_side_by_side_within_the_site_limit() {
    const LATENCY_MS: u64 = 600;
    let sim = sim(400).await;
    sim.set_faults(FaultConfig {
        latency_ms: LATENCY_MS,
        ..FaultConfig::default()
    });
    for window in [2_usize, 8] {
        let mut cfg = config(&sim, Flavor::DataCenter);
        cfg.max_concurrency = window;
        let client = connect_with(cfg, fast_options(250)).expect("client");
        let space = client.space("ENG").await.expect("space");
        sim.reset_stats();
        let started = std::time::Instant::now();
        let (listing, pages) = client
            .list_with_bodies(&space, &ListOptions::default())
            .await
            .expect("list with bodies");
        let took = started.elapsed();
        assert_eq!((listing.items.len(), pages.len()), (400, 400));
        // 8 pages of 50 bodies; at most `window - 1` requests past the end.
        let requests = dc_listing_requests(&sim);
        assert!(
            (8..=8 + window as u64 - 1).contains(&requests),
            "window {window}: {requests} requests"
        );
        if window == 8 {
            // One after another, 8 pages cannot take less than 8 latencies;
            // side by side, the first page and then the other 7 at once take
            // about 2 (the rest is slack for a loaded machine).
            assert!(
                took < Duration::from_millis(7 * LATENCY_MS),
                "window {window}: {took:?}"
            );
        }
    }
}

#[tokio::test]
async fn data_center_follows_the_page_size_the_site_grants() {
    // The site grants 7 items a request whatever the client asks for.
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 60,
        blogposts: 0,
        max_limit_v1: 7,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let client = client(&sim, Flavor::DataCenter, 250);
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let space = client.space("ENG").await.expect("space");
    let req = request(space.clone(), ListOptions::default());
    sim.reset_stats();
    let first = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!((first.items, first.fetched), (60, 60), "{first:?}");
    assert_eq!(stored_ids(&store, &req.scope).await, page_ids(&sim, "ENG"));
    let listing = dc_listing_requests(&sim);
    assert!((9..=9 + 7).contains(&listing), "ceil(60/7) = 9: {listing}");

    // Ten edits: fetched by CQL in the size learned, side by side.
    let pages = sim.pages("ENG");
    for p in pages.iter().take(10) {
        sim.edit_page(p.id, "<p>edited</p>").expect("edit");
    }
    sim.reset_stats();
    let again = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!(again.fetched, 10, "{again:?}");
    let stats = sim.stats();
    assert_eq!(
        stats.get("GET /rest/api/content/search"),
        2,
        "ceil(10/7) = 2: {stats:?}"
    );
}

#[tokio::test]
async fn data_center_full_sync_survives_a_deletion_during_the_listing() {
    let sim = sim(60).await;
    // 10 bodies a request, so the listing has several pages.
    let client = client(&sim, Flavor::DataCenter, 10);
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let space = client.space("ENG").await.expect("space");
    let req = request(space, ListOptions::default());
    let all: Vec<u64> = sim.pages("ENG").iter().map(|p| p.id).collect();
    // Deleted once the first page is served: every later page shifts by one.
    sim.delete_during_listing(all[3]);
    let first = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    // The first page was served before the deletion, so the deleted item
    // came with it; the page the shift hid from this listing did not.
    let stored = stored_ids(&store, &req.scope).await;
    let mut then: BTreeSet<String> = page_ids(&sim, "ENG");
    then.insert(all[3].to_string());
    assert!(stored.is_subset(&then), "{first:?}");
    assert_eq!(first.items, 59, "{first:?}");
    // The item the shift hid from this listing is synced by the next one.
    let second = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!(
        stored_ids(&store, &req.scope).await,
        page_ids(&sim, "ENG"),
        "{first:?} {second:?}"
    );
}

#[tokio::test]
async fn data_center_listing_behind_a_proxy_dropping_start_fails_clearly() {
    let sim = sim(120).await;
    let client = client(&sim, Flavor::DataCenter, 10);
    let space = client.space("ENG").await.expect("space");
    sim.set_faults(FaultConfig {
        hostile: Some(confluence_sim::Hostile::DropQueryParam {
            name: "start".into(),
        }),
        hostile_path: "/rest/api/content".into(),
        ..FaultConfig::default()
    });
    sim.reset_stats();
    for bodies in [false, true] {
        let result = if bodies {
            client
                .list_with_bodies(&space, &ListOptions::default())
                .await
                .map(|(l, _)| l)
        } else {
            client.list_detailed(&space, &ListOptions::default()).await
        };
        match result {
            Err(ConfluenceError::Protocol(m)) => assert!(m.contains("start"), "{m}"),
            other => panic!("bodies {bodies}: expected a protocol error, got {other:?}"),
        }
    }
    // Found out within the first window, not after endless repeated pages.
    assert!(dc_listing_requests(&sim) <= 2 * 9, "{:?}", sim.stats());
}
