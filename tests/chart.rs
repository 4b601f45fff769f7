//! The Helm chart: lint, template, schema validation, install on the real
//! control plane, and proof that the chart's RBAC is enough for the operator
//! (run out of cluster as the chart's ServiceAccount, since the test control
//! plane has no kubelet to run pods).

mod common;
mod fakes;
mod harness;
mod support;

use confluence_operator::leader::LeaderElector;
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use fakes::{FakeConfluence, FakeFactory};
use serde_json::json;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

const CHART: &str = "charts/confluence-operator";

fn helm(args: &[&str]) -> Output {
    support::helm()
        .current_dir(support::repo_root())
        .args(args)
        .output()
        .expect("run helm (built by hack/testenv/build)")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "helm failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn chart_lints_and_renders_least_privilege_hardened_manifests() {
    ok(&helm(&["lint", "--strict", CHART]));
    let rendered = ok(&helm(&["template", "co", CHART, "--namespace", "ops"]));
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "StatefulSet",
        "Service",
        "MutatingAdmissionPolicy",
    ] {
        assert!(
            rendered.contains(&format!("kind: {kind}\n")),
            "missing {kind}"
        );
    }
    for hardening in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "type: RuntimeDefault",
    ] {
        assert!(rendered.contains(hardening), "missing {hardening}");
    }
    assert!(rendered.contains("- --leader-election"));
    assert!(rendered.contains("volumeClaimTemplates"));
    // Secrets: get only, never list or watch.
    let secrets_rule = rendered
        .split("resources: [\"secrets\"]")
        .nth(1)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap();
    assert_eq!(secrets_rule.trim(), "verbs: [\"get\"]");

    // Every flag the chart passes is one the operator binary accepts.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_confluence-operator"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| f.split('=').next().unwrap_or_default())
        .collect();
    assert!(flags.len() >= 6, "{flags:?}");
    for flag in flags {
        assert!(
            help.contains(&format!("--{flag}")),
            "the operator has no --{flag}: {help}"
        );
    }

    // Zendesk wiring: config from values, credentials from a Secret.
    let zendesk = ok(&helm(&[
        "template",
        "co",
        CHART,
        "--set",
        "stores.zendesk.enabled=true",
        "--set",
        "stores.zendesk.url=https://acme.zendesk.com",
        "--set",
        "stores.zendesk.credentialsSecret=zd",
        "--set",
        "stores.zendesk.segmentMap.agents-and-admins=42",
    ]));
    assert!(zendesk.contains("--stores=embedded,zendesk"));
    assert!(zendesk.contains("\"agents-and-admins\": 42"));
    assert!(zendesk.contains("name: ZENDESK_API_TOKEN"));
}

#[tokio::test]
async fn bad_values_fail_at_install_time() {
    for (value, why) in [
        ("replicaCount=-1", "replicaCount"),
        ("logFormat=xml", "logFormat"),
        ("defaultSyncInterval=1day", "defaultSyncInterval"),
        ("stores.zendesk.url=http://insecure.example", "url"),
        ("unknownKey=1", "unknownKey"),
    ] {
        let out = helm(&["template", "co", CHART, "--set", value]);
        assert!(!out.status.success(), "{value} should be rejected");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(why),
            "error for {value} should name {why}: {err}"
        );
    }
    let out = helm(&[
        "template",
        "co",
        CHART,
        "--set",
        "stores.zendesk.enabled=true",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stores.zendesk.url is required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_installs_and_its_rbac_is_enough_to_run_the_operator() {
    let admin = support::client().await;
    harness::install_crds(&admin).await;
    let release_ns = support::test_namespace(&admin, "chart").await;
    // The admission policy is cluster-wide and already applied by other tests.
    let install = tokio::task::block_in_place(|| {
        helm(&[
            "install",
            "co",
            CHART,
            "--namespace",
            &release_ns,
            "--set",
            "admissionPolicy.enabled=false",
        ])
    });
    ok(&install);
    let sa = "co-confluence-operator";

    // Least privilege: Secrets may be read one by one, never listed.
    let can_i = |verb: &str, resource: &str| {
        let out = support::kubectl()
            .args(["auth", "can-i", verb, resource, "--all-namespaces"])
            .arg(format!("--as=system:serviceaccount:{release_ns}:{sa}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(can_i("get", "secrets"), "yes");
    assert_eq!(can_i("list", "secrets"), "no");
    assert_eq!(
        can_i("watch", "confluencespaces.confluence-operator.io"),
        "yes"
    );
    assert_eq!(
        can_i("delete", "confluencespaces.confluence-operator.io"),
        "no"
    );

    // The operator, acting as the chart's ServiceAccount, syncs a space end to end.
    let as_operator = harness::as_service_account(&release_ns, sa).await;
    let elector = LeaderElector::new(
        as_operator.clone(),
        &release_ns,
        "co-confluence-operator",
        "test-replica",
    );
    tokio::time::timeout(Duration::from_secs(10), elector.acquire())
        .await
        .unwrap()
        .unwrap();

    let fake = Arc::new(FakeConfluence::default()).with_space("RBAC", 4);
    let store = Arc::new(MemoryStore::new());
    let op = harness::start_as(
        as_operator,
        "chart-rbac",
        Arc::new(FakeFactory(fake)),
        vec![store.clone() as Arc<dyn Store>],
    )
    .await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("rbac", "acme", "RBAC", json!({"visibility": "Everyone"}))
        .await;
    let space = op.wait_ready("rbac").await;
    assert_eq!(space.status.unwrap().items, Some(4));
    assert!(
        space
            .metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.block_owner_deletion == Some(true))
    );
    op.spaces()
        .delete("rbac", &Default::default())
        .await
        .unwrap();
    op.wait_space_gone("rbac").await;
    assert_eq!(store.total(), 0);

    ok(&tokio::task::block_in_place(|| {
        helm(&["uninstall", "co", "--namespace", &release_ns])
    }));
    support::delete_namespace(&admin, &release_ns).await;
}
