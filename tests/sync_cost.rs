//! What a sync costs in requests, counted at the simulator: a full sync
//! reads bodies in the listing itself, a resync of an unchanged space reads
//! ids and versions only and writes nothing.

mod listing_ext;
mod sim_site;
use confluence_operator::confluence::{ClientOptions, Flavor, ListOptions, SpaceRef, connect_with};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{DEFAULT_BATCH_SIZE, SyncRequest, sync_space};
use confluence_sim::{SimConfig, Simulator};
use listing_ext::ListingExt;
use std::sync::Arc;

const PAGES: usize = 2_000;
const BLOGPOSTS: usize = 40;

fn ceil_div(n: usize, d: usize) -> u64 {
    n.div_ceil(d) as u64
}

/// Data Center reads offset pages side by side, up to the site's
/// `maxConcurrency` (8 in `sim_site`) at once, so each content type's
/// listing may ask for up to 7 pages past its end.
const DC_PAST_END: u64 = 2 * 7;

/// Requests one flavor may spend on a full sync of `n` items (see
/// docs/confluence-contract.md, "Request budget").
fn full_sync_budget(flavor: Flavor, n: usize) -> u64 {
    match flavor {
        Flavor::Cloud => 2 * ceil_div(n, 250) + 10,
        // Data Center lists with bodies, at most 50 a request once bodies
        // are expanded, the pages side by side.
        Flavor::DataCenter => ceil_div(n, 50) + DC_PAST_END + 10,
    }
}

/// Requests one flavor may spend on a resync that finds nothing changed.
/// Restrictions do not bump versions, so when they are vetted (the default)
/// every listing re-reads them: on Cloud that is a v1 search pass of its own,
/// at the page size Cloud grants it (the simulator grants 200).
fn resync_budget(flavor: Flavor, n: usize, vetted: bool) -> u64 {
    match (flavor, vetted) {
        (Flavor::Cloud, false) => ceil_div(n, 250) + 5,
        (Flavor::Cloud, true) => ceil_div(n, 250) + ceil_div(n, 200) + 5,
        // Data Center's listing page without bodies (the simulator grants
        // 200, like a default Data Center) carries restrictions itself.
        (Flavor::DataCenter, _) => ceil_div(n, 200) + DC_PAST_END + 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_stays_within_budget_and_an_unchanged_resync_fetches_and_writes_nothing() {
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: PAGES,
        blogposts: BLOGPOSTS,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let n = sim.pages("ENG").len();
    let cases = [
        (Flavor::Cloud, true),
        (Flavor::Cloud, false),
        (Flavor::DataCenter, true),
        (Flavor::DataCenter, false),
    ];
    for (flavor, vetted) in cases {
        let client = connect_with(
            sim_site::site_config(&sim, flavor),
            ClientOptions::default(),
        )
        .expect("client");
        let space = client.space("ENG").await.expect("space");
        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let req = SyncRequest {
            scope: SpaceScope::new("default", "eng"),
            site_url: "http://sim".into(),
            space: space.into(),
            audience: Audience::Everyone,
            options: ListOptions {
                content_types: vec![
                    confluence_operator::model::ContentType::Page,
                    confluence_operator::model::ContentType::Blogpost,
                ],
                include_restricted: !vetted,
                ..ListOptions::default()
            },
            batch_size: DEFAULT_BATCH_SIZE,
        };

        sim.reset_stats();
        let first = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("full sync");
        let full = sim.stats();
        let synced = first.items + first.left_out.total();
        assert_eq!(
            synced as usize, n,
            "{flavor:?} vetted={vetted}: every item accounted for"
        );
        assert_eq!(first.fetched, first.items, "{flavor:?} vetted={vetted}");
        assert!(
            full.total <= full_sync_budget(flavor, n),
            "{flavor:?} vetted={vetted}: full sync of {n} items took {} requests, budget {}: {:?}",
            full.total,
            full_sync_budget(flavor, n),
            full.by_endpoint
        );
        let before = store.documents(&req.scope);
        assert_eq!(
            before.len() as u64,
            first.items,
            "{flavor:?} vetted={vetted}"
        );
        assert!(
            before.iter().all(|d| !d.page.body_text.is_empty()),
            "{flavor:?} vetted={vetted}: every page has its body"
        );

        // The pages a sync stored (on Cloud built from the listing) are
        // exactly what a fetch by id returns (ancestors with titles, labels,
        // links, times).
        let space = req.space.info().await.expect("space");
        let listed = client.list(&space, &req.options).await.expect("list");
        let mut fetched = client.fetch(&space, &listed).await.expect("fetch");
        fetched.sort_by(|a, b| a.id.cmp(&b.id));
        let mut from_listing: Vec<_> = before.iter().map(|d| d.page.clone()).collect();
        from_listing.sort_by(|a, b| a.id.cmp(&b.id));
        assert!(
            from_listing == fetched,
            "{flavor:?} vetted={vetted}: stored pages differ from fetched ones"
        );

        sim.reset_stats();
        let again = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("resync");
        let resync = sim.stats();
        assert_eq!(
            (again.fetched, again.deleted, again.unchanged),
            (0, 0, first.items),
            "{flavor:?} vetted={vetted}"
        );
        assert_eq!(
            store.documents(&req.scope),
            before,
            "{flavor:?} vetted={vetted}: nothing written"
        );
        assert!(
            resync.total <= resync_budget(flavor, n, vetted),
            "{flavor:?} vetted={vetted}: unchanged resync of {n} items took {} requests, budget {}: {:?}",
            resync.total,
            resync_budget(flavor, n, vetted),
            resync.by_endpoint
        );
        // A few edits: the id listing plus one bulk read (Cloud: bodies and
        // a search for ancestors and labels; Data Center: one search).
        let stored_ids: std::collections::BTreeSet<String> =
            before.iter().map(|d| d.page.id.clone()).collect();
        let edited: Vec<u64> = sim
            .pages("ENG")
            .iter()
            .filter(|p| stored_ids.contains(&p.id.to_string()))
            .take(10)
            .map(|p| p.id)
            .collect();
        for id in &edited {
            sim.edit_page(*id, "<p>edited</p>").expect("edit");
        }
        sim.reset_stats();
        let changed = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("resync after edits");
        let few = sim.stats();
        assert_eq!(
            changed.fetched,
            edited.len() as u64,
            "{flavor:?} vetted={vetted}"
        );
        let extra = match flavor {
            Flavor::Cloud => 2,
            Flavor::DataCenter => 1,
        };
        assert!(
            few.total <= resync_budget(flavor, n, vetted) + extra,
            "{flavor:?} vetted={vetted}: resync after {} edits took {} requests: {:?}",
            edited.len(),
            few.total,
            few.by_endpoint
        );

        println!(
            "{flavor:?} vetted={vetted}: {n} items, full sync {} requests (budget {}), unchanged resync {} (budget {}), {} edits {} {:?}",
            full.total,
            full_sync_budget(flavor, n),
            resync.total,
            resync_budget(flavor, n, vetted),
            edited.len(),
            few.total,
            full.by_endpoint
        );
    }
}

/// Pages that cannot be vetted while the space is listed (below a folder,
/// looked up once the listing is complete) wait with their bodies, up to
/// the listing's budget (16 MiB of storage format); past it the oldest
/// bodies are dropped and those pages fetched by id. Everything arrives
/// intact, and the listing reports how many bodies it held at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_holds_a_bounded_amount_of_waiting_bodies_and_the_rest_is_fetched() {
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 0,
        blogposts: 0,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    // 48 pages of ~512 KiB: 24 MiB of page text, all below one folder.
    let shelf = sim
        .create_parent("ENG", confluence_sim::ContentType::Folder, "Shelf", None)
        .expect("folder");
    let big = format!("<p>{}</p>", "lorem ipsum dolor ".repeat(512 * 1024 / 18));
    for i in 0..48 {
        sim.create_page(
            "ENG",
            &format!("Big {i}"),
            Some(shelf),
            &format!("<p>tag{i}</p>{big}"),
        )
        .expect("page");
    }
    let client = sim_site::quick_client(&sim, Flavor::Cloud, 8);
    let space = client.space("ENG").await.expect("space");
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = SyncRequest {
        batch_size: DEFAULT_BATCH_SIZE,
        ..sim_site::sync_request(space)
    };
    sim.start_recording();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    let n = sim
        .pages("ENG")
        .iter()
        .filter(|p| p.content_type.is_document())
        .count();
    assert_eq!(report.fetched as usize, n);
    let docs = store.documents(&req.scope);
    assert_eq!(docs.len(), n);
    for i in 0..48 {
        let doc = docs
            .iter()
            .find(|d| d.page.title == format!("Big {i}"))
            .expect("synced");
        assert!(doc.page.body_text.contains(&format!("tag{i}")));
        assert!(doc.page.body_text.len() > 400 * 1024, "{i}: whole body");
    }
    let exchanges = sim.recorded();
    let listings: Vec<&str> = exchanges
        .iter()
        .filter(|e| e.path.ends_with("/pages") && e.path.contains("/spaces/"))
        .map(|e| e.query.as_deref().unwrap_or(""))
        .collect();
    assert!(
        listings
            .first()
            .is_some_and(|q| q.contains("body-format=storage")),
        "the listing starts with bodies: {listings:?}"
    );
    // 16 MiB of ~512 KiB bodies, plus the answer of 8 that brought it over.
    assert!(
        report.bodies_held_at_most <= 32 + 8,
        "at most 16 MiB of bodies held, plus one answer: {} of 48",
        report.bodies_held_at_most
    );
    assert!(
        exchanges.iter().any(|e| e.path.ends_with("/api/v2/pages")),
        "the pages whose bodies were dropped are fetched by id"
    );
}

/// The same bound on Data Center: pages waiting for a parent listed after
/// them are held up to 16 MiB of page text; past it the oldest bodies are
/// dropped and those pages fetched by CQL once the listing is complete. The
/// listing itself never goes on without bodies, and everything arrives
/// intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_center_listing_with_bodies_holds_a_bounded_amount_and_the_rest_is_fetched() {
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 0,
        blogposts: 0,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    // 48 pages of ~512 KiB: 24 MiB of page text, all below a parent
    // created after them (listings are ordered by id, so it comes last).
    let big = format!("<p>{}</p>", "lorem ipsum dolor ".repeat(512 * 1024 / 18));
    let mut bigs = Vec::new();
    for i in 0..48 {
        bigs.push(
            sim.create_page(
                "ENG",
                &format!("Big {i}"),
                None,
                &format!("<p>tag{i}</p>{big}"),
            )
            .expect("page"),
        );
    }
    let shelf = sim
        .create_page("ENG", "Shelf", None, "<p>shelf</p>")
        .expect("parent");
    for id in bigs {
        sim.move_page(id, Some(shelf)).expect("move");
    }
    let client = sim_site::quick_client(&sim, Flavor::DataCenter, 8);
    let space = client.space("ENG").await.expect("space");
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = SyncRequest {
        batch_size: DEFAULT_BATCH_SIZE,
        ..sim_site::sync_request(space)
    };
    sim.start_recording();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    let n = sim.pages("ENG").len();
    assert_eq!(report.fetched as usize, n);
    let docs = store.documents(&req.scope);
    assert_eq!(docs.len(), n);
    for i in 0..48 {
        let doc = docs
            .iter()
            .find(|d| d.page.title == format!("Big {i}"))
            .expect("synced");
        assert!(doc.page.body_text.contains(&format!("tag{i}")));
        assert!(doc.page.body_text.len() > 400 * 1024, "{i}: whole body");
    }
    let exchanges = sim.recorded();
    let listings: Vec<&str> = exchanges
        .iter()
        .filter(|e| e.path == "/rest/api/content")
        .map(|e| e.query.as_deref().unwrap_or(""))
        .collect();
    assert!(
        listings.iter().all(|q| q.contains("body.storage")),
        "the whole listing carries bodies: {listings:?}"
    );
    // 16 MiB of ~512 KiB bodies, plus the answer of 8 that brought it over.
    assert!(
        report.bodies_held_at_most <= 32 + 8,
        "at most 16 MiB of bodies held, plus one answer: {} of 48",
        report.bodies_held_at_most
    );
    assert!(
        exchanges
            .iter()
            .any(|e| e.path == "/rest/api/content/search"),
        "the pages whose bodies were dropped are fetched by id"
    );
}

/// The Cloud request budget, 2·⌈N/250⌉ + 10 requests, at 10,000 pages: met
/// where Cloud's restriction/label search grants the 250 records the
/// client asks for. Where it grants fewer (L′), that search alone costs
/// ⌈N/L′⌉: the full sync then stays within ⌈N/250⌉ + ⌈N/L′⌉ plus the space
/// lookup and where the two ends of each pass meet (two per pass at most:
/// when the ends split the listing exactly at an answer boundary, neither
/// can know it until each has asked once more; five with one content
/// type). See docs/confluence-contract.md, "Request budget".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_full_sync_of_ten_thousand_pages_costs_what_the_search_page_size_allows() {
    const N: usize = 10_000;
    for granted in [250, 200] {
        let sim = Simulator::start(SimConfig {
            spaces: 1,
            pages: N,
            blogposts: 0,
            max_limit_v1: granted,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let n = sim.pages("ENG").len();
        let client = connect_with(
            sim_site::site_config(&sim, Flavor::Cloud),
            ClientOptions::default(),
        )
        .expect("client");
        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let req = SyncRequest {
            batch_size: DEFAULT_BATCH_SIZE,
            ..sim_site::sync_request(SpaceRef::lookup(client.as_ref(), "ENG"))
        };
        sim.reset_stats();
        let report = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("full sync");
        let cost = sim.stats();
        assert_eq!(report.items as usize, n, "L′={granted}: every page synced");
        let floor = ceil_div(n, 250) + ceil_div(n, granted);
        assert!(
            cost.total <= floor + 5,
            "L′={granted}: {n} pages took {} requests, at most {} expected: {:?}",
            cost.total,
            floor + 5,
            cost.by_endpoint
        );
        if granted == 250 {
            assert!(
                cost.total <= full_sync_budget(Flavor::Cloud, n),
                "{n} pages took {} requests, the Cloud budget is {}",
                cost.total,
                full_sync_budget(Flavor::Cloud, n)
            );
        }
        println!(
            "Cloud, search page {granted}: {n} pages, full sync {} requests (issue budget {}): {:?}",
            cost.total,
            full_sync_budget(Flavor::Cloud, n),
            cost.by_endpoint
        );
    }
}
