//! The chart's OpenSearch modes: a stateless Deployment (no volume claim, N
//! replicas, leader election, connection from a Secret) when OpenSearch is
//! the only search store, and both stores in the StatefulSet otherwise.

mod support;

use serde_yaml_ng::Value;
use std::process::Output;

const CHART: &str = "charts/confluence-operator";

fn helm(args: &[&str]) -> Output {
    support::helm()
        .current_dir(support::repo_root())
        .args(args)
        .output()
        .expect("run helm (built by hack/testenv/build)")
}

fn render(set: &str) -> Vec<Value> {
    let out = helm(&["template", "co", CHART, "--namespace", "ops", "--set", set]);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("\n---")
        .filter_map(|doc| serde_yaml_ng::from_str::<Value>(doc).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn opensearch_without_embedded_renders_a_stateless_deployment() {
    let docs = render(
        "stores.embedded.enabled=false,stores.opensearch.enabled=true,stores.opensearch.connectionSecret=search-conn,stores.opensearch.caBundle=true,stores.opensearch.replicas=3",
    );
    assert!(
        kind(&docs, "StatefulSet").is_none(),
        "no StatefulSet in stateless mode"
    );
    let deploy = kind(&docs, "Deployment").expect("a Deployment");
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(3));
    let pod = &deploy["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = strings(container.get("args"));
    for arg in [
        "--stores=opensearch",
        "--leader-election",
        "--opensearch-index=confluence",
        "--opensearch-ca-file=/etc/confluence-operator-opensearch/ca.crt",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} missing from {args:?}");
    }
    // Every connection detail comes from the Secret, none is inlined.
    let env = container["env"].as_sequence().unwrap();
    for (name, key) in [
        ("OPENSEARCH_URL", "url"),
        ("OPENSEARCH_USERNAME", "username"),
        ("OPENSEARCH_PASSWORD", "password"),
        ("OPENSEARCH_API_KEY", "apiKey"),
    ] {
        let var = env
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(
            var["valueFrom"]["secretKeyRef"]["name"].as_str(),
            Some("search-conn")
        );
        assert_eq!(var["valueFrom"]["secretKeyRef"]["key"].as_str(), Some(key));
    }
    // No persistent volume: only emptyDirs and the CA from the Secret.
    for volume in pod["volumes"].as_sequence().unwrap() {
        assert!(
            volume.get("emptyDir").is_some() || volume.get("secret").is_some(),
            "unexpected volume {volume:?}"
        );
    }
    assert!(deploy["spec"].get("volumeClaimTemplates").is_none());
}

#[test]
fn opensearch_with_embedded_writes_both_from_the_statefulset() {
    let docs =
        render("stores.opensearch.enabled=true,stores.opensearch.connectionSecret=search-conn");
    assert!(kind(&docs, "Deployment").is_none());
    let sts = kind(&docs, "StatefulSet").expect("a StatefulSet");
    let args = strings(sts["spec"]["template"]["spec"]["containers"][0].get("args"));
    assert!(
        args.iter().any(|a| a == "--stores=embedded,opensearch"),
        "{args:?}"
    );
    assert!(!args.iter().any(|a| a.starts_with("--opensearch-ca-file")));
}

#[test]
fn opensearch_needs_a_connection_secret() {
    let out = helm(&[
        "template",
        "co",
        CHART,
        "--set",
        "stores.embedded.enabled=false,stores.opensearch.enabled=true",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("stores.opensearch.connectionSecret is required")
    );
}
