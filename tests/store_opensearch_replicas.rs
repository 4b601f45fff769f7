//! Two operator processes (the real binary) with `--stores opensearch` and
//! leader election on the real control plane, writing to one real OpenSearch
//! node, syncing from the Confluence simulator: both answer searches, only
//! the Lease holder syncs, and the other takes over when it goes.

mod harness;
mod opensearch_node;
mod support;

use confluence_operator::api::conditions;
use confluence_operator::api::{ConfluenceSite, ConfluenceSpace};
use confluence_sim::{SimConfig, Simulator};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Replica {
    child: Child,
    api: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(namespace: &str, alias: &str, data: &std::path::Path) -> Replica {
    let port = support::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_confluence-operator"))
        .args(["--namespace", namespace])
        .args(["--stores", "opensearch"])
        .args(["--opensearch-url", opensearch_node::url().as_str()])
        .args(["--opensearch-index", alias])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--leader-election")
        .args(["--leader-election-namespace", namespace])
        .args(["--log-format", "text"])
        .arg("--data-dir")
        .arg(data)
        .env("KUBECONFIG", support::kubeconfig_env())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the operator binary");
    Replica {
        child,
        api: format!("http://127.0.0.1:{port}"),
    }
}

async fn get_text(url: &str) -> Result<String, String> {
    let resp = reqwest::get(url).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    resp.text().await.map_err(|e| e.to_string())
}

async fn titles(api: &str, query: &str) -> Vec<String> {
    let body: Value = serde_json::from_str(
        &get_text(&format!("{api}/v1/search?q={query}&limit=100"))
            .await
            .unwrap(),
    )
    .unwrap();
    let mut t: Vec<String> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap_or_default().to_string())
        .collect();
    t.sort();
    t
}

/// Syncs the process has run, from its own /metrics.
async fn syncs(api: &str) -> u64 {
    let text = get_text(&format!("{api}/metrics")).await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("confluence_space_syncs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operator_processes_both_answer_searches_and_only_the_leader_writes() {
    let url = opensearch_node::url();
    let alias = opensearch_node::unique_alias("replicas");
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 25,
        blogposts: 0,
        seed: 13,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let key = sim.spaces()[0].key.clone();
    let client = support::client().await;
    harness::install_crds(&client).await;
    let namespace = support::test_namespace(&client, "os-replicas").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                "stringData": {"email": sim.user(), "apiToken": sim.token()}
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let a = replica(&namespace, &alias, &dir.path().join("a"));
    let b = replica(&namespace, &alias, &dir.path().join("b"));
    for r in [&a, &b] {
        support::wait_for("replica ready", Duration::from_secs(60), || async {
            get_text(&format!("{}/readyz", r.api)).await.map(Some)
        })
        .await;
    }

    let sites: Api<ConfluenceSite> = Api::namespaced(client.clone(), &namespace);
    let spaces: Api<ConfluenceSpace> = Api::namespaced(client.clone(), &namespace);
    let site: ConfluenceSite = serde_json::from_value(json!({
        "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
        "metadata": {"name": "sim"},
        "spec": {"url": sim.cloud_site_url().as_str(), "flavor": "Cloud",
                 "insecureAllowHttp": true, "credentialsSecretRef": {"name": "creds"}}
    }))
    .unwrap();
    sites.create(&PostParams::default(), &site).await.unwrap();
    let space: ConfluenceSpace = serde_json::from_value(json!({
        "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
        "metadata": {"name": "kb"},
        "spec": {"siteRef": {"name": "sim"}, "spaceKey": key, "viewers": {"visibility": "Everyone"}}
    }))
    .unwrap();
    spaces.create(&PostParams::default(), &space).await.unwrap();
    let items = support::wait_for("space kb synced", Duration::from_secs(90), || {
        let spaces = spaces.clone();
        async move {
            let s = spaces.get("kb").await.map_err(|e| e.to_string())?;
            let st = s.status.unwrap_or_default();
            Ok(conditions::is_true(&st.conditions, "Ready")
                .then_some(st.items)
                .flatten())
        }
    })
    .await;
    assert!(items > 0);

    // Both replicas answer, with the same results, from OpenSearch.
    let title = sim
        .pages(&key)
        .into_iter()
        .find(|p| !p.restricted)
        .unwrap()
        .title;
    let word = title
        .split_whitespace()
        .max_by_key(|w| w.len())
        .unwrap()
        .to_lowercase();
    let from_a = titles(&a.api, &word).await;
    assert!(from_a.contains(&title), "{word}: {from_a:?}");
    assert_eq!(titles(&b.api, &word).await, from_a);
    assert_eq!(opensearch_node::count_all(&url, &alias).await, items);

    // Exactly one of them synced: the Lease holder.
    let (sa, sb) = (syncs(&a.api).await, syncs(&b.api).await);
    assert!(
        (sa > 0) != (sb > 0),
        "exactly one replica must sync (a: {sa}, b: {sb})"
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let holder = leases
        .get("confluence-operator")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    let (leader, standby) = if sa > 0 { (a, b) } else { (b, a) };
    assert!(
        holder.ends_with(&format!("-{}", leader.child.id())),
        "lease held by {holder}"
    );

    // The leader goes; the standby takes the Lease and syncs a new page.
    drop(leader);
    let id = sim
        .create_page(
            &key,
            "Zephyrquartz failover runbook",
            None,
            "<p>zephyrquartz</p>",
        )
        .unwrap();
    spaces
        .patch(
            "kb",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"confluence-operator.io/requestedAt": "after-failover"}}})),
        )
        .await
        .unwrap();
    support::wait_for(
        "the standby to sync the new page",
        Duration::from_secs(90),
        || async {
            let t = titles(&standby.api, "zephyrquartz").await;
            Ok::<_, String>((t == vec!["Zephyrquartz failover runbook".to_string()]).then_some(()))
        },
    )
    .await;
    assert!(syncs(&standby.api).await > 0);
    assert!(sim.page(id).is_some());
    drop(standby);
    confluence_operator::store::opensearch::OpenSearchStore::new(
        opensearch_node::config(&alias),
        confluence_operator::store::opensearch::IndexMapping::current(),
    )
    .unwrap()
    .drop_all()
    .await
    .unwrap();
    support::delete_namespace(&client, &namespace).await;
}
