//! The operator as users run it: the chart installed with the image that
//! `hack/image` builds, on the test node (`hack/testenv/up --node`), syncing
//! from the Confluence simulator, which listens on the pod network's gateway.
//! Every client of the operator here is another pod (curl only), through the
//! chart's Service or a pod IP.
//!
//! Volumes: the tests make local (hostPath) PersistentVolumes under the node's
//! directory, pre-bound to the StatefulSet's claims; no provisioner runs.

mod support;

use confluence_operator::api::space::SyncPhase;
use confluence_operator::api::{ConfluenceSite, ConfluenceSpace, RESYNC_ANNOTATION};
use confluence_sim::{SimConfig, Simulator};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolume, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

const CHART: &str = "charts/confluence-operator";
const POD_TIMEOUT: Duration = Duration::from_secs(180);

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm ARGS` with the image built here (never pulled) and the settings every
/// test shares.
fn helm_release(verb: &str, release: &str, ns: &str, tag: &str, extra: &[&str]) -> String {
    let node = support::node();
    let repo = format!("image.repository={}", node.operator_repository);
    let tag = format!("image.tag={tag}");
    // Releases of parallel tests must not sync each other's spaces.
    let watch = format!("watchNamespace={ns}");
    let mut args = vec![
        verb,
        release,
        CHART,
        "--namespace",
        ns,
        "--set",
        &repo,
        "--set",
        &tag,
        "--set",
        "image.pullPolicy=Never",
        // cluster-wide and shared by every release in this cluster
        "--set",
        "admissionPolicy.enabled=false",
        "--set",
        "stores.embedded.persistence.size=1Gi",
        "--set",
        &watch,
    ];
    args.extend_from_slice(extra);
    let out = tokio::task::block_in_place(|| {
        support::helm()
            .current_dir(support::repo_root())
            .args(&args)
            .output()
            .expect("run helm")
    });
    ok(&format!("helm {verb} {release}"), &out)
}

/// The simulator on the gateway address, where pods reach it.
async fn simulator(pages: usize) -> Simulator {
    let node = support::node();
    Simulator::start(SimConfig {
        listen: SocketAddr::from((node.gateway, 0)),
        spaces: 1,
        pages,
        blogposts: 0,
        ..SimConfig::default()
    })
    .await
    .expect("start simulator on the pod gateway")
}

/// A hostPath PersistentVolume pre-bound to `claim` in `ns`, writable by the
/// chart's non-root user (hostPath volumes ignore fsGroup).
async fn local_volume(admin: &Client, ns: &str, claim: &str) -> String {
    let name = format!("{ns}-{claim}");
    let dir: PathBuf = support::repo_root()
        .join("target/testenv/node/volumes")
        .join(&name);
    std::fs::create_dir_all(&dir).expect("create volume dir");
    std::os::unix::fs::chown(&dir, Some(65532), Some(65532)).expect("chown volume dir");
    let pv: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {support::TEST_NAMESPACE_LABEL: "true"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": ns, "name": claim},
            "hostPath": {"path": dir.to_string_lossy(), "type": "Directory"}
        }
    }))
    .unwrap();
    Api::<PersistentVolume>::all(admin.clone())
        .create(&PostParams::default(), &pv)
        .await
        .expect("create PersistentVolume");
    name
}

async fn delete_volume(admin: &Client, name: &str) {
    let _ = Api::<PersistentVolume>::all(admin.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn describe(pod: &Pod) -> String {
    let s = pod.status.clone().unwrap_or_default();
    format!(
        "{} phase={:?} containers={:?}",
        pod.metadata.name.clone().unwrap_or_default(),
        s.phase,
        s.container_statuses
            .unwrap_or_default()
            .iter()
            .map(|c| (c.ready, c.restart_count, c.state.clone()))
            .collect::<Vec<_>>()
    )
}

/// Waits until `name` is Ready and is not the pod with `old_uid`; returns it.
async fn wait_pod_ready(pods: &Api<Pod>, name: &str, old_uid: Option<&str>) -> Pod {
    support::wait_for(&format!("pod {name} Ready"), POD_TIMEOUT, || async {
        let pod = match pods.get_opt(name).await.map_err(|e| e.to_string())? {
            Some(p) => p,
            None => return Err("not created yet".into()),
        };
        if old_uid.is_some() && pod.metadata.uid.as_deref() == old_uid {
            return Err("still the old pod".into());
        }
        if pod_ready(&pod) {
            Ok(Some(pod))
        } else {
            Err(describe(&pod))
        }
    })
    .await
}

/// Runs curl in a pod of `ns` (the probe image, hardened like the operator)
/// and returns what it printed; panics with its output when it fails.
async fn curl_from_pod(admin: &Client, ns: &str, url: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "probe-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "curl",
                "image": support::node().probe_image,
                "imagePullPolicy": "Never",
                "args": ["-sS", "--fail-with-body", "--max-time", "10", "--retry", "5", "--retry-connrefused", "--retry-delay", "1", url],
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create probe pod");
    let phase = support::wait_for(
        &format!("probe pod {name} ({url}) to finish"),
        POD_TIMEOUT,
        || async {
            let p = pods.get(&name).await.map_err(|e| e.to_string())?;
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            match phase.as_deref() {
                Some("Succeeded") | Some("Failed") => Ok(phase),
                _ => Err(describe(&p)),
            }
        },
    )
    .await;
    let logs = pods
        .logs(&name, &LogParams::default())
        .await
        .expect("probe pod logs");
    let _ = pods.delete(&name, &DeleteParams::default()).await;
    assert_eq!(phase, "Succeeded", "curl {url} from a pod failed: {logs}");
    logs
}

async fn service_url(admin: &Client, ns: &str, name: &str, path: &str) -> String {
    let svc = Api::<Service>::namespaced(admin.clone(), ns)
        .get(name)
        .await
        .expect("chart Service");
    let spec = svc.spec.expect("service spec");
    let ip = spec.cluster_ip.expect("ClusterIP");
    let port = spec.ports.expect("ports")[0].port;
    format!("http://{ip}:{port}{path}")
}

fn search_hits(output: &str) -> usize {
    // curl's messages about retried attempts come first; the answer is one line.
    let body = output
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON answer: {output}"));
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("search answer {body}: {e}"));
    v["hits"].as_array().map_or(0, Vec::len)
}

async fn create_site_and_space(admin: &Client, ns: &str, sim: &Simulator) -> String {
    let key = sim
        .spaces()
        .into_iter()
        .find(|s| s.kind == "global")
        .expect("a global space")
        .key;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"email": sim.user(), "apiToken": sim.token()}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let site: ConfluenceSite = serde_json::from_value(json!({
        "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
        "metadata": {"name": "sim"},
        "spec": {"url": sim.cloud_site_url().as_str(), "flavor": "Cloud", "insecureAllowHttp": true,
                 "credentialsSecretRef": {"name": "creds"}}
    }))
    .unwrap();
    Api::<ConfluenceSite>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &site)
        .await
        .unwrap();
    let space: ConfluenceSpace = serde_json::from_value(json!({
        "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
        "metadata": {"name": "docs"},
        "spec": {"siteRef": {"name": "sim"}, "spaceKey": key, "viewers": {"visibility": "Everyone"}}
    }))
    .unwrap();
    Api::<ConfluenceSpace>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &space)
        .await
        .unwrap();
    key
}

/// Waits until the space is Synced with `items` items and has handled `resync`
/// (when given); returns it.
async fn wait_synced(
    spaces: &Api<ConfluenceSpace>,
    items: u64,
    resync: Option<&str>,
) -> ConfluenceSpace {
    support::wait_for("space docs synced", POD_TIMEOUT, || async {
        let s = spaces.get("docs").await.map_err(|e| e.to_string())?;
        let st = s.status.clone().unwrap_or_default();
        let handled = resync.is_none_or(|r| st.last_handled_resync_at.as_deref() == Some(r));
        if st.items == Some(items) && handled && st.phase == Some(SyncPhase::Synced) {
            Ok(Some(s))
        } else {
            Err(format!("{st:?}"))
        }
    })
    .await
}

async fn request_resync(spaces: &Api<ConfluenceSpace>, value: &str) {
    spaces
        .patch(
            "docs",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {RESYNC_ANNOTATION: value}}})),
        )
        .await
        .unwrap();
}

/// Bodies the simulator served since its counters were last reset.
fn bodies_fetched(sim: &Simulator) -> u64 {
    let stats = sim.stats();
    stats.matching("body") + (stats.matching("/pages") - stats.matching("/spaces/{id}/pages"))
}

/// Marks the test node unschedulable until dropped (also when a test fails).
struct Cordon;

impl Cordon {
    fn new() -> Self {
        let out = support::kubectl()
            .args(["cordon", "testenv-node"])
            .output()
            .expect("kubectl cordon");
        ok("kubectl cordon", &out);
        Cordon
    }
}

impl Drop for Cordon {
    fn drop(&mut self) {
        let _ = support::kubectl()
            .args(["uncordon", "testenv-node"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_installed_pod_syncs_serves_survives_restart_upgrade_and_uninstall() {
    let node = support::node();
    let admin = support::client().await;
    let ns = support::test_namespace(&admin, "pod").await;
    let release = format!("co{}", &ns[ns.len() - 6..]);
    let full = format!("{release}-confluence-operator");
    let pod_name = format!("{full}-0");
    let volume = local_volume(&admin, &ns, &format!("data-{pod_name}")).await;
    let pages = 25;
    let sim = simulator(pages).await;

    // Install as a user would; measure until the pod is Ready.
    let started = Instant::now();
    helm_release("install", &release, &ns, &node.operator_tag, &[]);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pod = wait_pod_ready(&pods, &pod_name, None).await;
    eprintln!(
        "[pod] helm install -> pod Ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Hardened: non-root, read-only root filesystem, no privilege escalation;
    // the only writable places are the data volume and an emptyDir /tmp.
    let spec = pod.spec.clone().unwrap();
    let psc = spec.security_context.clone().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    let csc = spec.containers[0].security_context.clone().unwrap();
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    let volumes = spec.volumes.clone().unwrap_or_default();
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "data" && v.persistent_volume_claim.is_some())
    );
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "tmp" && v.empty_dir.is_some())
    );
    // The in-cluster identity is the chart's ServiceAccount, with its token mounted.
    assert_eq!(spec.service_account_name.as_deref(), Some(full.as_str()));
    assert_ne!(spec.automount_service_account_token, Some(false));

    // Sync from the simulator.
    let spaces: Api<ConfluenceSpace> = Api::namespaced(admin.clone(), &ns);
    create_site_and_space(&admin, &ns, &sim).await;
    wait_synced(&spaces, pages as u64, None).await;

    // Search through the chart's Service, and /metrics, from another pod.
    let search = service_url(&admin, &ns, &full, "/v1/search?q=section&limit=50").await;
    let hits = search_hits(&curl_from_pod(&admin, &ns, &search).await);
    assert!(hits > 0, "search through the Service found nothing");
    let metrics = curl_from_pod(
        &admin,
        &ns,
        &service_url(&admin, &ns, &full, "/metrics").await,
    )
    .await;
    assert!(
        metrics.contains("confluence_space_syncs_total{"),
        "no sync counter in /metrics: {metrics}"
    );
    // The operator acted as its ServiceAccount: it holds the chart's Lease.
    let lease = Api::<Lease>::namespaced(admin.clone(), &ns)
        .get(&full)
        .await
        .expect("leader Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(pod_name.as_str())
    );

    // Nothing it did needed more RBAC than the chart grants.
    let log = pods
        .logs(&pod_name, &LogParams::default())
        .await
        .expect("operator logs");
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something: {log}"
    );

    // Delete the pod: the StatefulSet brings it back with the same volume; the
    // index is still there and a resync fetches no body.
    let old_uid = pod.metadata.uid.clone();
    pods.delete(&pod_name, &DeleteParams::default())
        .await
        .unwrap();
    wait_pod_ready(&pods, &pod_name, old_uid.as_deref()).await;
    let after = search_hits(&curl_from_pod(&admin, &ns, &search).await);
    assert_eq!(after, hits, "the index did not survive the pod's restart");
    sim.reset_stats();
    request_resync(&spaces, "after-restart").await;
    let synced = wait_synced(&spaces, pages as u64, Some("after-restart")).await;
    assert_eq!(
        bodies_fetched(&sim),
        0,
        "unchanged pages were fetched again: {:?}; {:?}",
        sim.stats(),
        synced.status
    );

    // helm upgrade to a new tag: the pod rolls, no content is lost.
    let new_tag = format!("{}-next", node.operator_tag);
    let status = std::process::Command::new("ctr")
        .args([
            "--address",
            &support::repo_root()
                .join("target/testenv/node/containerd/containerd.sock")
                .to_string_lossy(),
            "-n",
            "k8s.io",
            "images",
            "tag",
            "--force",
            &format!("{}:{}", node.operator_repository, node.operator_tag),
            &format!("{}:{new_tag}", node.operator_repository),
        ])
        .status()
        .expect("ctr images tag");
    assert!(status.success());
    let before_upgrade = pods.get(&pod_name).await.unwrap().metadata.uid;
    helm_release("upgrade", &release, &ns, &new_tag, &[]);
    let rolled = wait_pod_ready(&pods, &pod_name, before_upgrade.as_deref()).await;
    assert!(
        rolled.spec.unwrap().containers[0]
            .image
            .as_deref()
            .unwrap_or_default()
            .ends_with(&new_tag)
    );
    assert_eq!(
        search_hits(&curl_from_pod(&admin, &ns, &search).await),
        hits
    );
    let space = spaces.get("docs").await.unwrap();
    assert_eq!(space.status.unwrap().items, Some(pages as u64));

    // helm uninstall: the CRDs stay (Helm never deletes crds/), and so do the
    // custom resources; their finalizer waits for an operator to run again.
    let out = tokio::task::block_in_place(|| {
        support::helm()
            .args(["uninstall", &release, "--namespace", &ns, "--wait"])
            .output()
            .unwrap()
    });
    ok("helm uninstall", &out);
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in [
        "confluencesites.confluence-operator.io",
        "confluencespaces.confluence-operator.io",
    ] {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd} deleted");
    }
    let left = spaces
        .get("docs")
        .await
        .expect("space kept after uninstall");
    assert!(
        left.metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f.starts_with("confluence-operator.io"))
    );
    // Clean up as the NOTES tell users: drop the finalizer when the operator is gone for good.
    spaces
        .patch(
            "docs",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    support::delete_namespace(&admin, &ns).await;
    delete_volume(&admin, &volume).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_the_standby_takes_over() {
    let node = support::node();
    let admin = support::client().await;
    let ns = support::test_namespace(&admin, "leader").await;
    let release = format!("co{}", &ns[ns.len() - 6..]);
    let full = format!("{release}-confluence-operator");
    let pages = 10;
    let sim = simulator(pages).await;
    helm_release(
        "install",
        &release,
        &ns,
        &node.operator_tag,
        &[
            "--set",
            "replicaCount=2",
            "--set",
            "stores.embedded.persistence.enabled=false",
        ],
    );
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    for i in 0..2 {
        wait_pod_ready(&pods, &format!("{full}-{i}"), None).await;
    }
    let spaces: Api<ConfluenceSpace> = Api::namespaced(admin.clone(), &ns);
    create_site_and_space(&admin, &ns, &sim).await;
    wait_synced(&spaces, pages as u64, None).await;

    let leases: Api<Lease> = Api::namespaced(admin.clone(), &ns);
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    let transitions = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
    };
    let before = leases.get(&full).await.unwrap();
    let transitions_before = transitions(&before);
    let leader = holder(before);
    let standby = if leader == format!("{full}-0") {
        format!("{full}-1")
    } else {
        format!("{full}-0")
    };
    assert!(leader.starts_with(&full), "lease held by {leader}");

    // Exactly one syncs: only the leader counts syncs (each pod's own /metrics).
    let pod_ip = |p: Pod| p.status.and_then(|s| s.pod_ip).expect("pod IP");
    let leader_ip = pod_ip(pods.get(&leader).await.unwrap());
    let standby_ip = pod_ip(pods.get(&standby).await.unwrap());
    let leader_metrics =
        curl_from_pod(&admin, &ns, &format!("http://{leader_ip}:8080/metrics")).await;
    let standby_metrics =
        curl_from_pod(&admin, &ns, &format!("http://{standby_ip}:8080/metrics")).await;
    assert!(leader_metrics.contains("confluence_space_syncs_total{"));
    assert!(
        !standby_metrics.contains("confluence_space_syncs_total{"),
        "the standby synced too: {standby_metrics}"
    );

    // Delete the leader: the standby takes over within the lease duration.
    // The node is cordoned meanwhile, so the leader's replacement (same pod
    // name) cannot start and win the free Lease first.
    let cordon = Cordon::new();
    let lease_duration = leases
        .get(&full)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.lease_duration_seconds)
        .unwrap_or(15);
    let deleted = Instant::now();
    pods.delete(&leader, &DeleteParams::default())
        .await
        .unwrap();
    let new_leader = support::wait_for("the standby to lead", POD_TIMEOUT, || async {
        let l = leases.get(&full).await.map_err(|e| e.to_string())?;
        let moved = transitions(&l) > transitions_before;
        let h = holder(l);
        if moved && h == standby {
            Ok(Some(h))
        } else {
            Err(format!("held by {h:?}"))
        }
    })
    .await;
    let takeover = deleted.elapsed();
    eprintln!(
        "[pod] leader {leader} deleted -> {new_leader} leads after {:.1}s (lease {lease_duration}s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(u64::try_from(lease_duration).unwrap_or(15)),
        "takeover took {takeover:?}"
    );
    drop(cordon);
    // The new leader syncs: a resync is handled.
    request_resync(&spaces, "new-leader").await;
    wait_synced(&spaces, pages as u64, Some("new-leader")).await;

    ok(
        "helm uninstall",
        &tokio::task::block_in_place(|| {
            support::helm()
                .args(["uninstall", &release, "--namespace", &ns, "--wait"])
                .output()
                .unwrap()
        }),
    );
    let _ = spaces
        .patch(
            "docs",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
    support::delete_namespace(&admin, &ns).await;
}
