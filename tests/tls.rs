//! HTTPS sites: the simulator behind a private CA, trusted through a CA
//! bundle; a wrong CA is a clear, secret-free `TLSError`; Cloud sites reached
//! through the API gateway path keep linking to the site itself.

mod harness;
mod listing_ext;
mod pki;
mod sim_site;
mod support;

use confluence_operator::api::conditions;
use confluence_operator::confluence::{
    CaBundle, ConfluenceError, Flavor, ListOptions, SpaceRef, connect, is_cloud_gateway,
};
use confluence_operator::controller::ClientFactory;
use confluence_operator::model::SpaceScope;
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::sync_space;
use confluence_sim::Simulator;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;
use listing_ext::ListingExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::DataCenter];

async fn https_sim(ca: &pki::TestCa, pages: usize) -> Simulator {
    ca.https_simulator(2, pages).await
}

#[tokio::test]
async fn https_site_is_trusted_through_its_ca_bundle_for_both_flavors() {
    let ca = pki::TestCa::new("Acme Private Root CA");
    let sim = https_sim(&ca, 12).await;
    assert!(sim.base_url().starts_with("https://"), "{}", sim.base_url());
    for flavor in FLAVORS {
        let mut config = sim_site::site_config(&sim, flavor);
        assert_eq!(config.base_url.scheme(), "https");
        config.ca_bundle = Some(CaBundle::from_pem(ca.pem().as_bytes()).expect("bundle"));
        let client = connect(config).expect("client");
        assert_eq!(
            client.whoami().await.expect("whoami"),
            "operator@example.com"
        );
        let space = client.space("ENG").await.expect("space");
        let listed = client
            .list(&space, &ListOptions::default())
            .await
            .expect("list");
        let visible = sim.pages("ENG").iter().filter(|p| !p.restricted).count();
        assert_eq!(listed.len(), visible, "{flavor:?}");
        let pages = client.fetch(&space, &listed).await.expect("fetch");
        assert_eq!(pages.len(), listed.len(), "{flavor:?}");
        assert!(
            pages.iter().all(|p| p.url.starts_with("https://")),
            "{flavor:?}: links use the site's https address"
        );
    }
}

#[tokio::test]
async fn wrong_or_missing_ca_fails_at_once_with_a_tls_error_and_no_secret() {
    let ca = pki::TestCa::new("Acme Private Root CA");
    let other = pki::TestCa::new("Someone Else's CA");
    let sim = https_sim(&ca, 3).await;
    for bundle in [None, Some(other.pem())] {
        for flavor in FLAVORS {
            let mut config = sim_site::site_config(&sim, flavor);
            config.max_retries = 5;
            config.ca_bundle = bundle
                .as_deref()
                .map(|b| CaBundle::from_pem(b.as_bytes()).expect("bundle"));
            let client = connect(config).expect("client");
            let started = std::time::Instant::now();
            let err = client.whoami().await.expect_err("untrusted certificate");
            assert!(
                matches!(err, ConfluenceError::Tls(_)),
                "{flavor:?}: {err:?}"
            );
            assert!(err.is_permanent(), "the user must act: {err}");
            let text = err.to_string();
            assert!(text.contains("caBundleRef"), "{text}");
            assert!(
                text.contains("UnknownIssuer") || text.contains("certificate"),
                "{text}"
            );
            assert!(!text.contains(sim.token()), "{text}");
            // Not retried as if it were a network blip.
            assert!(started.elapsed() < Duration::from_secs(3), "{text}");
        }
    }
    assert_eq!(sim.stats().total, 0, "no request got past the handshake");
}

#[test]
fn ca_bundles_without_certificates_are_refused() {
    assert!(CaBundle::from_pem(b"").is_err());
    let key_only = pki::TestCa::new("x").server_identity().key_pem;
    let err = CaBundle::from_pem(key_only.as_bytes()).unwrap_err();
    assert!(!err.to_string().contains("PRIVATE KEY-----\n"), "{err}");
    let ca = pki::TestCa::new("x");
    let two = format!("{}{}", ca.pem(), pki::TestCa::new("y").pem());
    assert_eq!(CaBundle::from_pem(two.as_bytes()).unwrap().len(), 2);
}

// ---------------------------------------------------------------------------
// On the real control plane
// ---------------------------------------------------------------------------

async fn create_object<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("create");
}

async fn create_https_site(
    op: &harness::Operator,
    name: &str,
    url: &str,
    bundle: serde_json::Value,
) {
    create_object(
        &op.sites(),
        json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
            "metadata": {"name": name},
            "spec": {
                "url": url,
                "flavor": "Cloud",
                "credentialsSecretRef": {"name": "creds"},
                "caBundleRef": bundle,
            }
        }),
    )
    .await;
}

/// Waits for the site's Ready condition to have `reason`; returns its message.
async fn wait_site_reason(op: &harness::Operator, name: &str, reason: &str) -> (String, String) {
    let api = op.sites();
    support::wait_for(
        &format!("site {name} reason {reason}"),
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.map_err(|e| e.to_string())?;
                let conds = s.status.unwrap_or_default().conditions;
                match conditions::get(&conds, conditions::READY) {
                    Some(c) if c.reason == reason => {
                        Ok(Some((c.status.clone(), c.message.clone())))
                    }
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_site_with_a_configmap_ca_bundle_syncs_and_a_wrong_ca_is_reported() {
    let ca = pki::TestCa::new("Acme Private Root CA");
    let other = pki::TestCa::new("Someone Else's CA");
    let sim = https_sim(&ca, 9).await;
    let store = Arc::new(MemoryStore::new());
    let op = harness::start(
        "tls",
        Arc::new(ClientFactory),
        vec![store.clone() as Arc<dyn Store>],
    )
    .await;
    op.create_secret("creds").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(op.client.clone(), &op.namespace);
    let secrets: Api<Secret> = Api::namespaced(op.client.clone(), &op.namespace);
    create_object(
        &configmaps,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "acme-ca"},
               "data": {"ca-bundle.crt": ca.pem()}}),
    )
    .await;
    create_object(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other-ca"},
               "stringData": {"ca.crt": other.pem()}}),
    )
    .await;
    let url = sim.cloud_site_url().to_string();

    // Right CA, from a ConfigMap: Ready, and the space syncs over HTTPS.
    create_https_site(
        &op,
        "acme",
        &url,
        json!({"kind": "ConfigMap", "name": "acme-ca", "key": "ca-bundle.crt"}),
    )
    .await;
    op.create_space("eng", "acme", "ENG", json!({"visibility": "Everyone"}))
        .await;
    let space = op.wait_ready("eng").await;
    let visible = sim.pages("ENG").iter().filter(|p| !p.restricted).count();
    assert_eq!(space.status.unwrap().items, Some(visible as u64));
    let docs = store.documents(&SpaceScope::new(&op.namespace, "eng"));
    assert_eq!(docs.len(), visible);
    let (status, _) = wait_site_reason(&op, "acme", "Connected").await;
    assert_eq!(status, "True");

    // Wrong CA (from a Secret, default key `ca.crt`): a TLSError condition
    // naming the fix, without any secret.
    create_https_site(
        &op,
        "wrong-ca",
        &url,
        json!({"kind": "Secret", "name": "other-ca"}),
    )
    .await;
    let (status, message) = wait_site_reason(&op, "wrong-ca", "TLSError").await;
    assert_eq!(status, "False");
    assert!(message.contains("caBundleRef"), "{message}");
    assert!(!message.contains("test-token-123"), "{message}");
    assert!(!message.contains("BEGIN CERTIFICATE"), "{message}");

    // A bundle that is not there yet: its own reason (retried, like a missing Secret).
    create_https_site(
        &op,
        "no-bundle",
        &url,
        json!({"kind": "ConfigMap", "name": "acme-ca", "key": "missing.crt"}),
    )
    .await;
    let (_, message) = wait_site_reason(&op, "no-bundle", "CABundleNotFound").await;
    assert!(message.contains("missing.crt"), "{message}");
}

// ---------------------------------------------------------------------------
// API gateway URLs
// ---------------------------------------------------------------------------

#[test]
fn gateway_urls_are_cloud_sites() {
    let url = url::Url::parse(
        "https://api.atlassian.com/ex/confluence/5a1c0ffe-0000-4000-8000-000000000042/wiki",
    )
    .unwrap();
    assert!(is_cloud_gateway(&url));
    assert_eq!(Flavor::infer(&url), Flavor::Cloud);
    let other = url::Url::parse("https://api.atlassian.com/ex/jira/x").unwrap();
    assert!(!is_cloud_gateway(&other));
}

#[tokio::test]
async fn gateway_site_syncs_through_the_gateway_and_links_to_the_site() {
    let ca = pki::TestCa::new("Gateway test CA");
    let sim = https_sim(&ca, 15).await;
    let mut config = sim_site::site_config(&sim, Flavor::Cloud);
    config.base_url = sim.gateway_site_url();
    config.ca_bundle = Some(CaBundle::from_pem(ca.pem().as_bytes()).unwrap());
    let client = connect(config).expect("client");
    client.whoami().await.expect("whoami");
    let site = sim.cloud_site_url().to_string();
    let site = site.trim_end_matches('/');
    let space = client.space("ENG").await.expect("space");
    assert_eq!(space.url, format!("{site}/spaces/ENG"));
    let listed = client
        .list(&space, &ListOptions::default())
        .await
        .expect("list");
    let pages = client.fetch(&space, &listed).await.expect("fetch");
    assert_eq!(pages.len(), listed.len());
    assert!(!pages.is_empty());
    for p in &pages {
        assert!(
            p.url
                .starts_with(&format!("{site}/spaces/ENG/pages/{}", p.id)),
            "{}",
            p.url
        );
        assert!(
            !p.body_markdown.contains("/ex/confluence/"),
            "{}",
            p.body_markdown
        );
    }
    // Every request went through the gateway path, none to the site directly.
    let stats = sim.stats();
    assert!(stats.total > 0);
    assert_eq!(stats.matching("/ex/confluence/"), stats.total, "{stats:?}");
}

/// Over HTTPS the client speaks HTTP/2 where the site offers it: a sync's
/// side-by-side requests (both ends of each pass, the lookup, bodies) share
/// the connection the connection check opened, instead of each opening
/// its own (over a real network a TCP and TLS handshake, two round trips,
/// at the start of every chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_over_https_shares_one_http2_connection() {
    let ca = pki::TestCa::new("Acme Private Root CA");
    for flavor in FLAVORS {
        // Past one answer per pass, so every chain walks from both ends.
        let sim = https_sim(&ca, 600).await;
        let mut config = sim_site::site_config(&sim, flavor);
        config.ca_bundle = Some(CaBundle::from_pem(ca.pem().as_bytes()).expect("bundle"));
        let client = connect(config).expect("client");
        client.whoami().await.expect("connection check");
        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let req = sim_site::sync_request(SpaceRef::lookup(client.as_ref(), "ENG"));
        let report = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        let stats = sim.stats();
        assert!(report.items >= 500, "{flavor:?}: {} items", report.items);
        assert!(stats.total > 5, "{flavor:?}: {} requests", stats.total);
        assert_eq!(
            stats.connections, 1,
            "{flavor:?}: {} requests over {} connections",
            stats.total, stats.connections
        );
    }
}
