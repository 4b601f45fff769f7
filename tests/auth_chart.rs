//! The chart grants what authentication needs, and nothing more: TokenReview
//! `create`, ViewerBinding reads (and status writes). Checked on the real
//! control plane, then used: the chart's ServiceAccount runs a TokenReview
//! and the binding watch.

mod harness;
mod support;

use confluence_operator::api::ViewerBinding;
use confluence_operator::auth::{BindingIndex, TokenReviewVerifier, Verifier};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, CustomResourceExt};
use std::process::Output;
use std::time::Duration;

const CHART: &str = "charts/confluence-operator";

fn run(mut cmd: std::process::Command) -> Output {
    cmd.current_dir(support::repo_root()).output().expect("run")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_allows_token_reviews_and_binding_reads_only() {
    let admin = support::client().await;
    harness::install_crds(&admin).await;
    let crd = ViewerBinding::crd();
    let name = crd.metadata.name.clone().expect("name");
    Api::<CustomResourceDefinition>::all(admin.clone())
        .patch(
            &name,
            &PatchParams::apply("confluence-operator-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
    // The example binding is valid (so the docs cannot rot).
    let mut dry_run = support::kubectl();
    dry_run.args([
        "apply",
        "--dry-run=server",
        "-f",
        "examples/production/viewer-binding.yaml",
    ]);
    ok(&run(dry_run));
    let ns = support::test_namespace(&admin, "auth-chart").await;
    // Cluster-scoped names come from the release name: one of its own.
    let release = format!("authz-{}", &ns[ns.len() - 6..]);
    let mut install = support::helm();
    install.args(["install", &release, CHART, "--namespace", &ns]);
    install.args(["--set", "admissionPolicy.enabled=false"]);
    ok(&tokio::task::block_in_place(|| run(install)));
    let sa = format!("{release}-confluence-operator");
    let as_sa = format!("--as=system:serviceaccount:{ns}:{sa}");
    let can_i = |verb: &str, resource: &str| {
        let mut cmd = support::kubectl();
        cmd.args(["auth", "can-i", verb, resource, "--all-namespaces", &as_sa]);
        String::from_utf8_lossy(&run(cmd).stdout).trim().to_string()
    };
    assert_eq!(can_i("create", "tokenreviews.authentication.k8s.io"), "yes");
    for verb in ["get", "list", "delete"] {
        assert_eq!(
            can_i(verb, "tokenreviews.authentication.k8s.io"),
            "no",
            "{verb}"
        );
    }
    for verb in ["get", "list", "watch"] {
        assert_eq!(
            can_i(verb, "viewerbindings.confluence-operator.io"),
            "yes",
            "{verb}"
        );
    }
    for verb in ["create", "delete", "update"] {
        assert_eq!(
            can_i(verb, "viewerbindings.confluence-operator.io"),
            "no",
            "{verb}"
        );
    }

    // The chart's identity can really do it.
    let client = harness::as_service_account(&ns, &sa).await;
    let verifier = TokenReviewVerifier::new(client.clone(), "confluence-operator");
    let refused = verifier.verify("not-a-token").await;
    assert!(
        matches!(
            refused,
            Err(confluence_operator::auth::AuthError::Refused(_))
        ),
        "{refused:?}"
    );
    let (index, watch) = BindingIndex::watch(client);
    let watch = tokio::spawn(watch);
    tokio::time::timeout(Duration::from_secs(20), index.ready())
        .await
        .expect("the chart's ServiceAccount can list ViewerBindings");
    watch.abort();

    let mut uninstall = support::helm();
    uninstall.args(["uninstall", &release, "--namespace", &ns]);
    ok(&tokio::task::block_in_place(|| run(uninstall)));
    support::delete_namespace(&admin, &ns).await;
}
