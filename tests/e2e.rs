//! End to end on the real control plane: the Confluence simulator over HTTP,
//! the real client, the embedded index, the search API, and the manifests in
//! `examples/demo` (so the docs cannot rot).

mod harness;
mod support;

use confluence_operator::controller::ClientFactory;
use confluence_operator::model::SpaceScope;
use confluence_operator::server::{self, AppState};
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_operator::store::{Search, Store};
use confluence_sim::{ContentType, SimConfig, Simulator};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// `examples/demo` pointed at this test's simulator and namespace.
fn demo_manifests(namespace: &str, sim_base: &str) -> String {
    let dir = support::repo_root().join("examples/demo");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .filter(|p| !p.ends_with("00-namespace.yaml"))
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .replace(
                    "namespace: confluence-demo",
                    &format!("namespace: {namespace}"),
                )
                .replace("http://127.0.0.1:8090", sim_base)
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// `kubectl <args> -f -` with `yaml` on standard input; panics with kubectl's error.
fn kubectl_stdin(args: &[&str], yaml: &str) {
    let out = support::kubectl_with_stdin(args, yaml);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The simulator, an embedded index in a temporary directory, and the
/// operator's controllers using the real HTTP client.
async fn with_simulator(
    prefix: &str,
    config: SimConfig,
) -> (
    Simulator,
    Arc<EmbeddedStore>,
    harness::Operator,
    tempfile::TempDir,
) {
    let sim = Simulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(EmbeddedStore::open(&dir.path().join("index")).unwrap());
    let op = harness::start(
        prefix,
        Arc::new(ClientFactory),
        vec![index.clone() as Arc<dyn Store>],
    )
    .await;
    (sim, index, op, dir)
}

async fn search(base: &str, query: &str) -> Vec<Value> {
    let url = format!("{base}/v1/search?{query}");
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    body["hits"].as_array().cloned().unwrap_or_default()
}

fn expected_items(sim: &Simulator, key: &str, types: &[ContentType]) -> u64 {
    sim.pages(key)
        .iter()
        .filter(|p| types.contains(&p.content_type) && !p.restricted)
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_examples_sync_from_the_simulator_and_search_respects_segments() {
    let (sim, index, op, _dir) = with_simulator(
        "e2e",
        SimConfig {
            spaces: 3,
            pages: 30,
            blogposts: 2,
            seed: 7,
            ..SimConfig::default()
        },
    )
    .await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::standalone(
        index.clone() as Arc<dyn Search>,
        Arc::new(AtomicBool::new(true)),
    );
    tokio::spawn(async move { axum::serve(listener, server::router(state)).await });

    let manifests = demo_manifests(&op.namespace, &sim.base_url());
    tokio::task::block_in_place(|| kubectl_stdin(&["apply"], &manifests));
    let eng = op.wait_ready("engineering").await.status.unwrap();
    let ops = op.wait_ready("operations").await.status.unwrap();
    assert_eq!(
        eng.items,
        Some(expected_items(&sim, "ENG", &[ContentType::Page]))
    );
    assert_eq!(
        ops.items,
        Some(expected_items(
            &sim,
            "OPS",
            &[ContentType::Page, ContentType::Blogpost]
        ))
    );
    assert!(eng.url.unwrap().contains("/spaces/ENG"));
    assert_eq!(ops.viewers.as_deref(), Some("agents-and-admins,sre"));

    // A title from the OPS space: hidden from anonymous callers, visible to agents and to sre.
    let ops_page = sim
        .pages("OPS")
        .into_iter()
        .find(|p| p.content_type == ContentType::Page)
        .unwrap();
    let q = format!("q={}", urlencode(&ops_page.title));
    let anonymous = search(&api, &q).await;
    assert!(
        anonymous.iter().all(|h| h["space"] != "OPS"),
        "anonymous caller saw OPS: {anonymous:?}"
    );
    let agents = search(&api, &format!("{q}&segments=agents-and-admins")).await;
    assert!(
        agents.iter().any(|h| h["title"] == ops_page.title.as_str()),
        "agents should find {:?}: {agents:?}",
        ops_page.title
    );
    let sre = search(&api, &format!("{q}&segments=sre")).await;
    assert!(sre.iter().any(|h| h["space"] == "OPS"));

    // Confluence changes under the operator: an edit, a deletion, a new view restriction.
    let eng_pages: Vec<_> = sim
        .pages("ENG")
        .into_iter()
        .filter(|p| p.content_type == ContentType::Page)
        .collect();
    // Delete a leaf (Confluence would re-parent a deleted page's children).
    let is_leaf = |id: u64| !eng_pages.iter().any(|p| p.parent_id == Some(id));
    let deleted = eng_pages.iter().rev().find(|p| is_leaf(p.id)).unwrap();
    let restricted = eng_pages
        .iter()
        .find(|p| !is_leaf(p.id) && p.parent_id.is_some())
        .unwrap();
    let edited = eng_pages.iter().find(|p| p.parent_id.is_none()).unwrap();
    sim.edit_page(
        edited.id,
        "<p>Rotating the zephyrquartz credentials every quarter.</p>",
    )
    .unwrap();
    sim.delete_page(deleted.id).unwrap();
    sim.set_restricted(restricted.id, true).unwrap();
    let restricted_subtree = 1 + sim
        .pages("ENG")
        .iter()
        .filter(|p| is_descendant(&sim, p.id, restricted.id))
        .count() as u64;
    let before = eng.last_sync_result.unwrap();
    op.request_resync(&op.spaces(), "engineering", "e2e-1")
        .await;
    let status = op
        .wait_status("engineering", "the resync to finish", |st| {
            (st.last_handled_resync_at.as_deref() == Some("e2e-1")
                && st.phase == Some(confluence_operator::api::space::SyncPhase::Synced))
            .then(|| st.clone())
        })
        .await;
    let result = status.last_sync_result.unwrap();
    assert_eq!(
        result.fetched, 1,
        "only the edited page is fetched again ({before:?} -> {result:?})"
    );
    assert_eq!(
        result.deleted,
        1 + restricted_subtree,
        "the deleted page and the restricted subtree go"
    );
    // expected_items already leaves out the restricted page itself, not its descendants.
    assert_eq!(
        status.items,
        Some(expected_items(&sim, "ENG", &[ContentType::Page]) - (restricted_subtree - 1))
    );
    let hits = search(&api, "q=zephyrquartz").await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    let scope = SpaceScope::new(&op.namespace, "engineering");
    let versions = index.versions(&scope).await.unwrap();
    assert!(!versions.contains_key(&deleted.id.to_string()));
    assert!(!versions.contains_key(&restricted.id.to_string()));

    // Disconnecting removes the content from the index.
    op.spaces()
        .delete("engineering", &Default::default())
        .await
        .unwrap();
    op.wait_space_gone("engineering").await;
    assert_eq!(index.count(&scope).await.unwrap(), 0);
    assert!(search(&api, "q=zephyrquartz").await.is_empty());
}

fn is_descendant(sim: &Simulator, id: u64, ancestor: u64) -> bool {
    let mut current = sim.page(id).and_then(|p| p.parent_id);
    while let Some(pid) = current {
        if pid == ancestor {
            return true;
        }
        current = sim.page(pid).and_then(|p| p.parent_id);
    }
    false
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_examples_are_accepted_by_the_api_server() {
    let client = support::client().await;
    harness::install_crds(&client).await;
    let ns = support::test_namespace(&client, "examples").await;
    for file in [
        "examples/production/cloud-site.yaml",
        "examples/production/datacenter-site.yaml",
    ] {
        let text = std::fs::read_to_string(support::repo_root().join(file))
            .unwrap()
            .replace("namespace: knowledge", &format!("namespace: {ns}"));
        tokio::task::block_in_place(|| kubectl_stdin(&["apply", "--dry-run=server"], &text));
    }
    support::delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_gives_a_clear_condition_and_is_never_echoed() {
    use confluence_operator::api::conditions;
    use k8s_openapi::api::events::v1::Event;
    let (sim, _index, op, _dir) = with_simulator(
        "badtoken",
        SimConfig {
            pages: 5,
            ..SimConfig::default()
        },
    )
    .await;
    let secret_token = "s3cr3t-wrong-token-6f1e";
    let manifests = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: {ns}}}
stringData: {{email: demo@example.com, apiToken: {secret_token}}}
---
apiVersion: confluence-operator.io/v1alpha1
kind: ConfluenceSite
metadata: {{name: acme, namespace: {ns}}}
spec: {{url: "{url}", flavor: Cloud, insecureAllowHttp: true, credentialsSecretRef: {{name: creds}}}}
---
apiVersion: confluence-operator.io/v1alpha1
kind: ConfluenceSpace
metadata: {{name: eng, namespace: {ns}}}
spec: {{siteRef: {{name: acme}}, spaceKey: ENG, viewers: {{visibility: Everyone}}}}
"#,
        ns = op.namespace,
        url = sim.cloud_site_url()
    );
    tokio::task::block_in_place(|| kubectl_stdin(&["apply"], &manifests));
    let status = op
        .wait_status("eng", "InvalidCredentials", |st| {
            conditions::get(&st.conditions, "Ready")
                .filter(|c| c.reason == "InvalidCredentials")
                .map(|_| st.clone())
        })
        .await;
    assert!(
        conditions::is_true(&status.conditions, "Stalled"),
        "a rejected token needs a human: {status:?}"
    );
    let everything = format!(
        "{:?}{:?}",
        status,
        op.sites().get("acme").await.unwrap().status
    );
    assert!(
        everything.contains("401"),
        "the condition should say what happened: {everything}"
    );
    let events: kube::Api<Event> = kube::Api::namespaced(op.client.clone(), &op.namespace);
    let events = format!(
        "{:?}",
        events.list(&Default::default()).await.unwrap().items
    );
    assert!(events.contains("SyncFailed"), "{events}");
    for text in [&everything, &events] {
        assert!(!text.contains(secret_token), "the token leaked: {text}");
    }
}

/// Runs the `kubectl confluence` plugin against the test cluster.
fn plugin(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-confluence"))
        .env("KUBECONFIG", support::kubeconfig_env())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubectl_plugin_lists_connectable_spaces_and_resyncs() {
    let (sim, _index, op, _dir) = with_simulator("plugin", SimConfig::default()).await;
    let manifests = demo_manifests(&op.namespace, &sim.base_url());
    tokio::task::block_in_place(|| kubectl_stdin(&["apply"], &manifests));
    op.wait_ready("engineering").await;

    let ns = op.namespace.clone();
    let (ok, text) = tokio::task::block_in_place(|| plugin(&["spaces", "acme", "-n", &ns]));
    assert!(ok, "{text}");
    for key in ["ENG", "OPS", "DOC"] {
        assert!(text.contains(key), "{key} missing: {text}");
    }
    assert!(
        !text.contains("~alice"),
        "personal spaces are not offered: {text}"
    );
    let (ok, text) =
        tokio::task::block_in_place(|| plugin(&["spaces", "acme", "-n", &ns, "--query", "oper"]));
    assert!(
        ok && text.contains("OPS") && !text.contains("ENG"),
        "{text}"
    );

    let (ok, text) =
        tokio::task::block_in_place(|| plugin(&["resync", "space", "engineering", "-n", &ns]));
    assert!(ok, "{text}");
    assert!(text.contains("Succeeded: Synced"), "{text}");

    let (ok, text) = tokio::task::block_in_place(|| plugin(&["spaces", "nope", "-n", &ns]));
    assert!(
        !ok && text.contains("ConfluenceSite \"nope\" not found"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_center_site_with_a_personal_access_token_syncs() {
    let (sim, index, op, _dir) = with_simulator(
        "datacenter",
        SimConfig {
            pages: 12,
            ..SimConfig::default()
        },
    )
    .await;
    // No flavor: a non-atlassian.net host is inferred to be Data Center.
    let manifests = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: pat, namespace: {ns}}}
stringData: {{token: demo-token}}
---
apiVersion: confluence-operator.io/v1alpha1
kind: ConfluenceSite
metadata: {{name: wiki, namespace: {ns}}}
spec: {{url: "{url}", insecureAllowHttp: true, credentialsSecretRef: {{name: pat}}}}
---
apiVersion: confluence-operator.io/v1alpha1
kind: ConfluenceSpace
metadata: {{name: doc, namespace: {ns}}}
spec:
  siteRef: {{name: wiki}}
  spaceKey: DOC
  viewers: {{visibility: Segments, segments: [signed-in-users]}}
  filters: {{contentTypes: [page, blogpost]}}
"#,
        ns = op.namespace,
        url = sim.datacenter_site_url()
    );
    tokio::task::block_in_place(|| kubectl_stdin(&["apply"], &manifests));
    let space = op.wait_ready("doc").await;
    let expected = expected_items(&sim, "DOC", &[ContentType::Page, ContentType::Blogpost]);
    assert_eq!(space.status.unwrap().items, Some(expected));
    let site = op.sites().get("wiki").await.unwrap().status.unwrap();
    assert_eq!(
        site.flavor,
        Some(confluence_operator::api::site::SiteFlavor::DataCenter)
    );
    let scope = SpaceScope::new(&op.namespace, "doc");
    assert_eq!(index.count(&scope).await.unwrap(), expected);
    assert!(
        sim.stats().matching("/rest/api/content") > 0,
        "the v1 API was used"
    );
    assert_eq!(sim.stats().matching("/wiki/api/v2"), 0, "no Cloud v2 calls");
}
