//! A Cloud space is listed from both ends at once: the v2 listing by id
//! ascending and descending until the two ends meet, the CQL pass by
//! creation date both ways until every listed item has its record. Every
//! page arrives exactly once with its ancestors, restricted pages and what
//! lies below them stay out, a page created while the ends walk breaks
//! nothing, and a space of one answer pays one request per pass.

mod sim_site;

use sim_site::{one_space as sim, sync_request as request};

use confluence_operator::confluence::{ConfluenceApi, Flavor, LeftOut};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::sync_space;
use confluence_sim::{FaultConfig, Simulator};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

fn client(sim: &Simulator, page_limit: usize) -> Arc<dyn ConfluenceApi> {
    sim_site::quick_client(sim, Flavor::Cloud, page_limit)
}

/// The recorded requests to paths with `path_start` and `path_end`, by the
/// value of `param` in their query (`sort` for v2, `cql` for the search).
fn requests_by(
    sim: &Simulator,
    (path_start, path_end): (&str, &str),
    param: &str,
) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for e in sim.recorded() {
        if !e.path.starts_with(path_start) || !e.path.ends_with(path_end) {
            continue;
        }
        let query = e.query.unwrap_or_default();
        let value = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == param)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        *out.entry(value).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_of_many_listing_pages_is_listed_once_from_both_ends() {
    let sim = sim(60).await;
    let home = sim.spaces()[0].homepage_id.expect("home page");
    // A restricted page with a child, in the middle of the id order.
    let secret = sim.pages("ENG")[30].id;
    sim.set_restricted(secret, true).expect("restrict");
    let below = sim
        .create_page("ENG", "Below the secret", Some(secret), "<p>below</p>")
        .expect("page");
    let client = client(&sim, 5);
    let space = client.space("ENG").await.expect("space");
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = request(space.clone());
    sim.start_recording();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");

    let all = sim.pages("ENG");
    let parents: HashMap<u64, Option<u64>> = all.iter().map(|p| (p.id, p.parent_id)).collect();
    // The secret and every page below it, however deep.
    let hidden: HashSet<String> = all
        .iter()
        .filter(|p| {
            let mut at = Some(p.id);
            while let Some(id) = at {
                if id == secret {
                    return true;
                }
                at = parents.get(&id).copied().flatten();
            }
            false
        })
        .map(|p| p.id.to_string())
        .collect();
    assert!(hidden.contains(&below.to_string()));
    assert!(hidden.len() >= 2, "the secret and what is below it");
    let docs = store.documents(&req.scope);
    let stored: Vec<&str> = docs.iter().map(|d| d.page.id.as_str()).collect();
    let unique: HashSet<&str> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "every page stored once");
    assert_eq!(stored.len(), all.len() - hidden.len());
    for id in &hidden {
        assert!(!unique.contains(id.as_str()), "{id} must not be stored");
    }
    assert_eq!(
        report.left_out,
        LeftOut {
            restricted: 1,
            restricted_ancestor: hidden.len() as u64 - 1,
            ..LeftOut::default()
        }
    );
    // Ancestors, root first, with titles, as the simulator's tree has them.
    let by_id: HashMap<String, _> = all.iter().map(|p| (p.id.to_string(), p)).collect();
    for doc in &docs {
        let mut expected = Vec::new();
        let mut parent = by_id[&doc.page.id].parent_id;
        while let Some(p) = parent {
            let page = by_id[&p.to_string()];
            expected.push((p.to_string(), page.title.clone()));
            parent = page.parent_id;
        }
        expected.reverse();
        let got: Vec<(String, String)> = doc
            .page
            .ancestors
            .iter()
            .map(|a| (a.id.clone(), a.title.clone()))
            .collect();
        assert_eq!(got, expected, "ancestors of {}", doc.page.id);
    }
    assert!(unique.contains(home.to_string().as_str()));

    // Both ends walked: each v2 order and each CQL order more than once,
    // and together hardly more than one end alone would need.
    let n = all.len();
    let v2 = requests_by(&sim, ("/wiki/api/v2/spaces/", "/pages"), "sort");
    let (front, back) = (v2.get("id").copied(), v2.get("-id").copied());
    assert!(
        front.unwrap_or(0) > 1 && back.unwrap_or(0) > 1,
        "v2 by sort: {v2:?}"
    );
    let one_end = n.div_ceil(5);
    assert!(
        v2.values().sum::<usize>() <= one_end + 2,
        "{n} items at 5 a request: {v2:?}"
    );
    let cql = requests_by(&sim, ("/wiki/rest/api", "/content/search"), "cql");
    let asc = cql
        .iter()
        .filter(|(q, _)| q.ends_with("order by created asc"))
        .map(|(_, c)| c)
        .sum::<usize>();
    let desc = cql
        .iter()
        .filter(|(q, _)| q.ends_with("order by created desc"))
        .map(|(_, c)| c)
        .sum::<usize>();
    assert!(asc > 1 && desc > 1, "CQL by order: {cql:?}");
    assert!(
        asc + desc <= one_end + 2,
        "{n} items at 5 a request: {cql:?}"
    );

    // The id-only listing of a resync walks the same way and is complete.
    let listing = client
        .list_detailed(&space, &req.options)
        .await
        .expect("listing");
    let listed: HashSet<&str> = listing.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(listed.len(), listing.items.len(), "listed once each");
    assert_eq!(listed, unique);
    assert_eq!(listing.seen.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_created_while_the_ends_walk_breaks_nothing() {
    let sim = sim(80).await;
    let home = sim.spaces()[0].homepage_id.expect("home page");
    let client = client(&sim, 5);
    let space = client.space("ENG").await.expect("space");
    let req = request(space);
    let full = Arc::new(MemoryStore::new());
    let first: Vec<Arc<dyn Store>> = vec![full.clone()];
    sync_space(client.as_ref(), &first, &req)
        .await
        .expect("first sync");
    let before: HashSet<String> = full
        .documents(&req.scope)
        .into_iter()
        .map(|d| d.page.id)
        .collect();
    assert_eq!(before.len(), sim.pages("ENG").len());

    // A second, empty store makes the sync list with bodies; a page is
    // created once the first pages are stored, while both ends walk.
    let empty = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![full.clone(), empty.clone()];
    sim.set_faults(FaultConfig {
        latency_ms: 15,
        ..FaultConfig::default()
    });
    let sync = sim_site::sync_under_way(&client, stores, &req, &empty).await;
    let created = sim
        .create_page("ENG", "Written meanwhile", Some(home), "<p>new</p>")
        .expect("page");
    sync.await.expect("sync task").expect("second sync");
    for store in [&full, &empty] {
        let now: HashSet<String> = store
            .documents(&req.scope)
            .into_iter()
            .map(|d| d.page.id)
            .collect();
        assert!(
            before.is_subset(&now),
            "nothing synced before is lost: missing {:?}",
            before.difference(&now).collect::<Vec<_>>()
        );
    }

    // The next sync has it, whether or not this one saw it.
    sim.set_faults(FaultConfig::default());
    sync_space(client.as_ref(), &[full.clone() as Arc<dyn Store>], &req)
        .await
        .expect("third sync");
    assert!(
        full.documents(&req.scope)
            .iter()
            .any(|d| d.page.id == created.to_string())
    );
    assert_eq!(full.documents(&req.scope).len(), before.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_of_one_answer_costs_one_v2_and_one_cql_request() {
    let sim = sim(4).await;
    let client = client(&sim, 250);
    let space = client.space("ENG").await.expect("space");
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let req = request(space);
    sim.reset_stats();
    let report = sync_space(client.as_ref(), &stores, &req)
        .await
        .expect("sync");
    assert_eq!(report.items as usize, sim.pages("ENG").len());
    let stats = sim.stats();
    assert_eq!(
        stats.get("GET /wiki/api/v2/spaces/{id}/pages"),
        1,
        "{:?}",
        stats.by_endpoint
    );
    assert_eq!(
        stats.get("GET /wiki/rest/api/content/search"),
        1,
        "{:?}",
        stats.by_endpoint
    );
    assert_eq!(stats.total, 2, "{:?}", stats.by_endpoint);
}

/// What the two ends rely on, as Cloud documents it: a space's v2 listing
/// pages by `sort=id` or `sort=-id` with cursors that keep that order, an
/// unknown `sort` is a 400, and CQL takes `order by created asc|desc`.
#[tokio::test]
async fn the_simulator_pages_listings_in_either_order() {
    let sim = sim(12).await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(format!("{}{path}", sim.base_url()))
            .basic_auth(sim.user(), Some(sim.token()));
        async move {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let body = resp.json::<serde_json::Value>().await.unwrap_or_default();
            (status, body)
        }
    };
    // Every id, following `next` links from `first` (v2 links are relative
    // to the site, v1 links to `/wiki`).
    let walk = |first: String, prefix: &'static str| {
        let get = &get;
        async move {
            let mut ids = Vec::new();
            let mut path = Some(first);
            while let Some(p) = path.take() {
                let (status, body) = get(p).await;
                assert_eq!(status, 200, "{body}");
                for item in body["results"].as_array().expect("results") {
                    ids.push(item["id"].as_str().expect("id").parse::<u64>().expect("n"));
                }
                path = body["_links"]["next"]
                    .as_str()
                    .map(|n| format!("{prefix}{n}"));
            }
            ids
        }
    };
    let space_id = sim.spaces()[0].id;
    let mut expected: Vec<u64> = sim.pages("ENG").iter().map(|p| p.id).collect();
    expected.sort_unstable();
    let base = format!("/wiki/api/v2/spaces/{space_id}/pages?status=current&limit=5");
    assert_eq!(walk(format!("{base}&sort=id"), "").await, expected);
    let mut descending = expected.clone();
    descending.reverse();
    assert_eq!(walk(format!("{base}&sort=-id"), "").await, descending);
    let (status, _) = get(format!("{base}&sort=sideways")).await;
    assert_eq!(status, 400);

    let search = |direction: &str| {
        let cql = format!("space=\"ENG\" and type in (page) order by created {direction}");
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cql", &cql)
            .append_pair("limit", "5")
            .finish();
        format!("/wiki/rest/api/content/search?{query}")
    };
    let asc = walk(search("asc"), "/wiki").await;
    let mut desc = walk(search("desc"), "/wiki").await;
    assert_eq!(asc.len(), expected.len());
    desc.reverse();
    assert_eq!(asc, desc, "descending is ascending reversed");
    let (status, _) = get(search("sideways")).await;
    assert_eq!(status, 400);
}
