//! Third-party clients against the simulator: LangChain's ConfluenceLoader
//! and LlamaIndex's ConfluenceReader (pinned in hack/python/requirements.txt,
//! run by hack/peers/confluence_peers.py with their default options) read
//! the same space the operator syncs. They must complete, and what they
//! return must agree with what the operator stored, every difference being
//! one of the rules asserted here:
//!
//! - LangChain checks each page's own read restriction, not inherited ones:
//!   it returns pages below a restricted page, which the operator leaves out.
//! - LlamaIndex checks no restriction at all: it also returns the
//!   restricted page itself.
//! - Neither reads blog posts by default; nor does the operator.
//!
//! The simulator serves HTTPS with a test CA, as real Confluence would: the
//! operator trusts it through a CA bundle, the Python clients through
//! `REQUESTS_CA_BUNDLE`.

mod peer_clients;
mod pki;
mod python_venv;
mod sim_site;

use confluence_operator::confluence::{CaBundle, Flavor, ListOptions, connect};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{SyncRequest, sync_space};
use confluence_sim::{ContentType, SimConfig, Simulator};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct PeerOutput {
    documents: Vec<PeerDoc>,
}

#[derive(Debug, Deserialize)]
struct PeerDoc {
    id: String,
    title: String,
    url: String,
    text: String,
}

/// The virtualenv with the pinned peers. A missing Python is a failure,
/// never a skip: these tests are the only check that real clients can read
/// the simulator.
fn venv_python() -> PathBuf {
    python_venv::python().unwrap_or_else(|e| {
        panic!(
            "the Python peers' virtualenv is not available: {e}\n\
             These tests need python3 (with venv) and the pins in hack/python/requirements.txt; \
             run hack/python/venv (.ci/run does) and try again."
        )
    })
}

/// Runs one client against the simulator's HTTPS site.
fn run_peer(
    client: &str,
    sim: &Simulator,
    flavor: Flavor,
    ca_file: &std::path::Path,
) -> Vec<PeerDoc> {
    let flavor_arg = sim_site::flavor_name(flavor);
    let out = peer_clients::command(&venv_python(), client, sim, flavor, "ENG", Some(ca_file))
        .output()
        .expect("running the peer script");
    assert!(
        out.status.success(),
        "{client} ({flavor_arg}) did not complete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: PeerOutput = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{client}: output is not the expected JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    parsed.documents
}

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .collect()
}

/// Text a reader of the storage format as plain HTML loses: code macro
/// bodies (CDATA), the titles of links to other pages (`ri:page`) and the
/// names of embedded images (`ri:attachment`).
fn macro_words(storage: &str) -> BTreeSet<String> {
    let mut text = String::new();
    for part in storage.split("<![CDATA[").skip(1) {
        text.push_str(part.split("]]>").next().unwrap_or_default());
        text.push(' ');
    }
    for attr in ["ri:content-title=\"", "ri:filename=\""] {
        for part in storage.split(attr).skip(1) {
            text.push_str(part.split('"').next().unwrap_or_default());
            text.push(' ');
        }
    }
    words(&text)
}

async fn agree_with_the_operator(flavor: Flavor) {
    let ca = pki::TestCa::new("Peers test CA");
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 40,
        blogposts: 2,
        seed: 9,
        tls: Some(ca.server_identity()),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    // A page with descendants gets a view restriction.
    let pages: Vec<_> = sim
        .pages("ENG")
        .into_iter()
        .filter(|p| p.content_type == ContentType::Page)
        .collect();
    let children = |id: u64| pages.iter().filter(move |p| p.parent_id == Some(id));
    let restricted = pages
        .iter()
        .filter(|p| p.parent_id.is_some())
        .find(|p| children(p.id).next().is_some())
        .expect("a non-root page with children")
        .id;
    sim.set_restricted(restricted, true).unwrap();
    let mut below: BTreeSet<String> = BTreeSet::new();
    let mut frontier = vec![restricted];
    while let Some(id) = frontier.pop() {
        for c in children(id) {
            below.insert(c.id.to_string());
            frontier.push(c.id);
        }
    }
    assert!(!below.is_empty());
    let all: BTreeSet<String> = pages.iter().map(|p| p.id.to_string()).collect();
    let restricted = restricted.to_string();

    // The operator: its own sync engine into a store.
    let mut config = sim_site::site_config(&sim, flavor);
    config.ca_bundle = Some(CaBundle::from_pem(ca.pem().as_bytes()).unwrap());
    let source = connect(config).expect("client");
    let space = source.space("ENG").await.expect("space");
    let store = Arc::new(MemoryStore::new());
    let scope = SpaceScope::new("peers", "eng");
    sync_space(
        source.as_ref(),
        &[store.clone() as Arc<dyn Store>],
        &SyncRequest {
            scope: scope.clone(),
            site_url: sim.base_url(),
            space: space.into(),
            audience: Audience::Everyone,
            options: ListOptions::default(),
            batch_size: 20,
        },
    )
    .await
    .expect("sync");
    let stored: BTreeMap<String, _> = store
        .documents(&scope)
        .into_iter()
        .map(|d| (d.page.id.clone(), d.page))
        .collect();
    let stored_ids: BTreeSet<String> = stored.keys().cloned().collect();
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|id| **id != restricted && !below.contains(*id))
        .cloned()
        .collect();
    assert_eq!(stored_ids, expected, "{flavor:?}: the operator's own rule");

    let prefix = match flavor {
        Flavor::Cloud => "/wiki/rest/api",
        Flavor::DataCenter => "/rest/api",
    };
    for client in ["langchain", "llamaindex"] {
        sim.reset_stats();
        let docs = run_peer(client, &sim, flavor, &ca_file);
        // What these clients call (v1 offset paging, per-page restrictions).
        let called: BTreeSet<String> = sim.stats().by_endpoint.into_keys().collect();
        let mut expected_calls = BTreeSet::from([format!("GET {prefix}/content")]);
        if client == "langchain" {
            expected_calls.insert(format!(
                "GET {prefix}/content/{{id}}/restriction/byOperation"
            ));
        }
        assert_eq!(called, expected_calls, "{client} {flavor:?}");
        let theirs: BTreeMap<String, PeerDoc> =
            docs.into_iter().map(|d| (d.id.clone(), d)).collect();
        let their_ids: BTreeSet<String> = theirs.keys().cloned().collect();
        assert!(
            their_ids.is_subset(&all),
            "{client} {flavor:?}: only pages of the space (no blog posts)"
        );
        // Every page the operator stored, the client returned too.
        let missing: Vec<_> = stored_ids.difference(&their_ids).collect();
        assert!(
            missing.is_empty(),
            "{client} {flavor:?} lacks stored pages {missing:?}"
        );
        // Each extra page is explained by the client's (weaker) restriction rule.
        let extra: BTreeSet<String> = their_ids.difference(&stored_ids).cloned().collect();
        let explained: BTreeSet<String> = match client {
            // Only a page's own restriction is checked.
            "langchain" => below.clone(),
            // Restrictions are not checked at all.
            _ => below.iter().cloned().chain([restricted.clone()]).collect(),
        };
        assert_eq!(
            extra, explained,
            "{client} {flavor:?}: differences beyond the asserted rule"
        );
        // The pages both hold agree: title, link and text.
        for (id, page) in &stored {
            let doc = &theirs[id];
            assert!(doc.url.starts_with("https://"), "{}", doc.url);
            assert_eq!(doc.title, page.title, "{client} {flavor:?} page {id}");
            assert_eq!(doc.url, page.url, "{client} {flavor:?} page {id}");
            let missing: BTreeSet<String> = words(&page.body_text)
                .difference(&words(&doc.text))
                .cloned()
                .collect();
            let unexplained: Vec<&String> = match client {
                // ConfluenceLoader parses the storage format as HTML, which
                // loses code macro bodies, page-link titles and image names.
                "langchain" => {
                    let storage = sim.page(id.parse().unwrap()).unwrap().body;
                    let lost = macro_words(&storage);
                    missing.iter().filter(|w| !lost.contains(*w)).collect()
                }
                // ConfluenceReader reads the rendered view: nothing is lost.
                _ => missing.iter().collect(),
            };
            assert!(
                unexplained.is_empty(),
                "{client} {flavor:?} page {id} lacks the operator's words {unexplained:?}\n\
                 operator: {}\n{client}: {}",
                page.body_text,
                doc.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langchain_and_llamaindex_agree_with_the_operator_on_cloud() {
    agree_with_the_operator(Flavor::Cloud).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langchain_and_llamaindex_agree_with_the_operator_on_data_center() {
    agree_with_the_operator(Flavor::DataCenter).await;
}
