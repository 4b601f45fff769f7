//! Atlassian's published Confluence Cloud contract as the judge: every
//! request the operator's Cloud client sends (REST v2 and the v1 calls Cloud
//! still needs) must match an operation of the OpenAPI documents, and every
//! simulator answer to them must validate against the operation's response
//! schema. See docs/confluence-contract.md.

mod openapi;
mod sim_site;

use confluence_operator::confluence::{
    ClientOptions, ConfluenceApi, ConfluenceError, Flavor, ListOptions, connect_with,
};
use confluence_operator::model::{Audience, ContentType, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{SyncRequest, sync_space};
use confluence_sim::{NewPage, SimConfig, Simulator, Status};
use openapi::{Findings, Spec};
use std::sync::Arc;
use std::time::Duration;

async fn sim() -> Simulator {
    Simulator::start(SimConfig {
        spaces: 2,
        pages: 23,
        blogposts: 3,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn client(sim: &Simulator, flavor: Flavor, page_limit: usize) -> Arc<dyn ConfluenceApi> {
    connect_with(
        sim_site::site_config(sim, flavor),
        ClientOptions {
            page_limit,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(20),
            retry_after_max: Duration::from_millis(20),
        },
    )
    .expect("client")
}

/// Everything the Cloud client does in a space's life: discovery, listing
/// with and without restriction/label vetting, folders and other parents,
/// bulk fetches, blog posts, edits, deletions confirmed by direct lookups.
async fn exercise(sim: &Simulator, client: &dyn ConfluenceApi) {
    client.whoami().await.expect("whoami");
    client.spaces(None).await.expect("spaces");
    client.spaces(Some("eng")).await.expect("spaces query");
    assert!(matches!(
        client.space("~alice").await,
        Err(ConfluenceError::PersonalSpace(_))
    ));
    assert!(matches!(
        client.space("NOPE").await,
        Err(ConfluenceError::SpaceNotFound(_))
    ));
    let space = client.space("ENG").await.expect("space");

    // A folder tree with a restricted folder and a whiteboard.
    let home = sim.spaces()[0].homepage_id.expect("home");
    let folder = sim
        .create_parent(
            "ENG",
            confluence_sim::ContentType::Folder,
            "Guides",
            Some(home),
        )
        .unwrap();
    let closed = sim
        .create_parent(
            "ENG",
            confluence_sim::ContentType::Folder,
            "Board",
            Some(folder),
        )
        .unwrap();
    let board = sim
        .create_parent("ENG", confluence_sim::ContentType::Whiteboard, "Plan", None)
        .unwrap();
    let database = sim
        .create_parent(
            "ENG",
            confluence_sim::ContentType::Database,
            "Stock",
            Some(home),
        )
        .unwrap();
    sim.set_restricted(closed, true).unwrap();
    for (title, parent) in [
        ("In folder", folder),
        ("In closed", closed),
        ("On board", board),
        ("In database", database),
    ] {
        sim.create(NewPage {
            space_key: "ENG".into(),
            title: title.into(),
            parent_id: Some(parent),
            body: Some("<p>x</p>".into()),
            labels: vec!["howto".into()],
            content_type: confluence_sim::ContentType::Page,
        })
        .unwrap();
    }

    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
    let mut req = SyncRequest {
        scope: SpaceScope::new("default", "eng"),
        site_url: "http://sim".into(),
        space: space.into(),
        audience: Audience::Everyone,
        options: ListOptions {
            content_types: vec![ContentType::Page, ContentType::Blogpost],
            ..ListOptions::default()
        },
        batch_size: 10,
    };
    sync_space(client, &stores, &req).await.expect("first sync");

    // Changes: an edit, a deletion (confirmed by a direct lookup), labels.
    // Generated leaves only (the tree above sits below restricted parents).
    let pages: Vec<_> = sim
        .pages("ENG")
        .into_iter()
        .filter(|p| p.id < folder)
        .collect();
    let leaf = pages
        .iter()
        .rev()
        .find(|p| {
            p.content_type == confluence_sim::ContentType::Page
                && !pages.iter().any(|c| c.parent_id == Some(p.id))
        })
        .unwrap();
    sim.delete_page(leaf.id).unwrap();
    sim.edit_page(home, "<p>edited</p>").unwrap();
    // Trashed and archived pages leave the listing; direct lookups still
    // find them, with their status.
    let others: Vec<u64> = pages
        .iter()
        .rev()
        .filter(|p| {
            p.id != leaf.id
                && p.content_type == confluence_sim::ContentType::Page
                && !pages.iter().any(|c| c.parent_id == Some(p.id))
        })
        .map(|p| p.id)
        .take(2)
        .collect();
    sim.set_status(others[0], Status::Trashed).unwrap();
    sim.set_status(others[1], Status::Archived).unwrap();
    let second = sync_space(client, &stores, &req)
        .await
        .expect("second sync");
    assert_eq!(second.deleted, 3, "{second:?}");
    assert_eq!(second.kept_unconfirmed, 0);

    req.options.exclude_labels = vec!["draft".into()];
    sync_space(client, &stores, &req).await.expect("label sync");
    req.options = ListOptions {
        content_types: vec![ContentType::Page],
        include_restricted: true,
        ..ListOptions::default()
    };
    sync_space(client, &stores, &req)
        .await
        .expect("unfiltered sync");
}

fn report(findings: &Findings) -> String {
    let mut out = String::new();
    for (op, params) in &findings.used {
        out.push_str(&format!(
            "{} {} {} ({}) query: {:?}\n",
            op.spec,
            op.method,
            op.template,
            op.operation_id,
            params.keys().collect::<Vec<_>>()
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_client_traffic_and_simulator_answers_follow_the_published_contract() {
    let sim = sim().await;
    // Small pages, so cursors and `next` links are followed too.
    let client = client(&sim, Flavor::Cloud, 7);
    sim.start_recording();
    exercise(&sim, client.as_ref()).await;
    let exchanges = sim.recorded();
    assert!(exchanges.len() > 30, "{} exchanges", exchanges.len());

    let mut specs = Spec::cloud();
    let findings = openapi::check(&mut specs, &exchanges);
    let summary = report(&findings);
    eprintln!(
        "{} exchanges, {} responses validated\n{summary}",
        exchanges.len(),
        findings.responses_validated
    );
    assert!(
        findings.violations.is_empty(),
        "{} disagreements with the spec:\n{}\n\noperations used:\n{summary}",
        findings.violations.len(),
        findings.distinct().join("\n")
    );
    // What the client relies on is actually exercised.
    for op in [
        "getPages",
        "getPagesInSpace",
        "getSpaces",
        "getFolderById",
        "getWhiteboardById",
        "getDatabaseById",
        "getPageById",
        "getBlogPostById",
        "searchContentByCQL",
        "getContentById",
        "getCurrentUser",
    ] {
        assert!(
            findings.used.keys().any(|o| o.operation_id == op),
            "{op} not exercised:\n{summary}"
        );
    }
    assert!(findings.responses_validated as usize >= exchanges.len() / 2);
}

/// At production page sizes (limit 250, 250 ids per bulk read) the requests
/// stay inside the spec's bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_page_sizes_stay_within_the_specs_bounds() {
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 260,
        blogposts: 0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = connect_with(
        sim_site::site_config(&sim, Flavor::Cloud),
        ClientOptions {
            // More than Cloud allows: the client must clamp it.
            page_limit: 1000,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    sim.start_recording();
    let space = client.space("ENG").await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let stores = [store as Arc<dyn Store>];
    let req = SyncRequest {
        scope: SpaceScope::new("default", "eng"),
        site_url: "http://sim".into(),
        space: space.into(),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: 300,
    };
    // The first sync reads bodies in the listing; after every page changed,
    // the resync reads them in bulk by id.
    let first = sync_space(client.as_ref(), &stores, &req).await.unwrap();
    assert_eq!(first.items, 260);
    for page in sim.pages("ENG") {
        sim.edit_page(page.id, "<p>edited</p>").unwrap();
    }
    let report = sync_space(client.as_ref(), &stores, &req).await.unwrap();
    assert_eq!((report.items, report.fetched), (260, 260));
    let exchanges = sim.recorded();
    let findings = openapi::check(&mut Spec::cloud(), &exchanges);
    assert!(
        findings.violations.is_empty(),
        "{}",
        findings.distinct().join("\n")
    );
    let mut bulk: Vec<usize> = exchanges
        .iter()
        .filter(|e| e.path == "/wiki/api/v2/pages")
        .map(|e| {
            url::form_urlencoded::parse(e.query.as_deref().unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "id")
                .map_or(0, |(_, v)| v.split(',').count())
        })
        .collect();
    // Groups are read side by side: order does not matter.
    bulk.sort_unstable();
    assert_eq!(bulk, [10, 250], "ids per bulk read");
}

/// The checker itself rejects what the spec forbids, so a green contract
/// test means something.
#[test]
fn the_checker_rejects_requests_and_answers_outside_the_spec() {
    let ids: Vec<String> = (1..=251).map(|i| i.to_string()).collect();
    let bad = |path: &str, query: &str, body: serde_json::Value| confluence_sim::Exchange {
        method: "GET".into(),
        path: path.into(),
        query: Some(query.into()),
        status: 200,
        body: Some(body),
    };
    let exchanges = [
        bad(
            "/wiki/api/v2/pages",
            &format!("id={}&limit=251&status=current", ids.join(",")),
            serde_json::json!({"results": []}),
        ),
        bad(
            "/wiki/api/v2/spaces/1/pages",
            "status=live&depth=all",
            serde_json::json!({"results": [{"id": 5, "parentType": "folder"}]}),
        ),
        bad("/wiki/api/v2/pages", "expand=body", serde_json::json!({})),
        bad("/wiki/api/v2/nothing", "", serde_json::json!({})),
    ];
    let findings = openapi::check(&mut Spec::cloud(), &exchanges);
    let all = findings.violations.join("\n");
    for expected in [
        "query parameter id=",
        "query parameter limit=251",
        "query parameter status=[\"live\"]",
        "at /results/0/id",
        "query parameter \"expand\" is not in the spec",
        "/wiki/api/v2/nothing: no operation in the spec",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

/// Data Center has no published document here; its v1 resources are
/// checked against Cloud's v1 document (same resources under `/wiki`), where
/// the two are known to agree. Known Data Center-only differences are listed
/// and nothing else may differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_traffic_uses_v1_resources_as_published() {
    let sim = sim().await;
    let client = client(&sim, Flavor::DataCenter, 7);
    sim.start_recording();
    exercise(&sim, client.as_ref()).await;
    let exchanges: Vec<confluence_sim::Exchange> = sim
        .recorded()
        .into_iter()
        .map(|mut e| {
            e.path = format!("/wiki{}", e.path);
            e
        })
        .collect();
    let mut v1 = vec![Spec::load("cloud-v1.openapi.json", "cloud-v1", "")];
    let findings = openapi::check(&mut v1, &exchanges);
    eprintln!("{}", report(&findings));
    let distinct = findings.distinct();
    assert!(distinct.is_empty(), "{}", distinct.join("\n"));
}
