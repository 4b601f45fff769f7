//! Fault matrix, on the real node: the chart installed with the
//! operator image on the test node (`hack/testenv/up --node`, as in
//! tests/pod.rs); the operator container's process gets SIGKILL from the host
//! in the middle of a sync, the kubelet restarts it, and the restarted
//! container must finish the interrupted sync by itself, with the status
//! telling the truth meanwhile. The invariant is then checked on the pod's
//! volume (a hostPath directory), after scaling the StatefulSet to zero.
//!
//! `#[ignore]`: it needs the node and the image (minutes the first time);
//! `hack/faults` runs it.

mod fault_table;
mod harness;
mod operator_process;
mod support;

use confluence_operator::api::space::SyncPhase;
use confluence_operator::api::{ConfluenceSite, ConfluenceSpace, RESYNC_ANNOTATION};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_sim::{FaultConfig, SimConfig, Simulator};
use fault_table::Outcome;
use k8s_openapi::api::core::v1::{PersistentVolume, Pod, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator_process::Rng;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CHART: &str = "charts/confluence-operator";
const PAGES: usize = 300;
const TIMEOUT: Duration = Duration::from_secs(180);
const FETCH: &str = "GET /wiki/api/v2/pages";

fn helm(args: &[&str]) -> Result<String, String> {
    let out = tokio::task::block_in_place(|| {
        support::helm()
            .current_dir(support::repo_root())
            .args(args)
            .output()
    })
    .map_err(|e| format!("run helm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "helm {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A hostPath PersistentVolume pre-bound to `claim`, writable by the chart's
/// non-root user; returns its name and directory.
async fn local_volume(admin: &Client, ns: &str, claim: &str) -> Result<(String, PathBuf), String> {
    let name = format!("{ns}-{claim}");
    let dir = support::repo_root()
        .join("target/testenv/node/volumes")
        .join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::os::unix::fs::chown(&dir, Some(65532), Some(65532)).map_err(|e| e.to_string())?;
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
    .map_err(|e| e.to_string())?;
    Api::<PersistentVolume>::all(admin.clone())
        .create(&PostParams::default(), &pv)
        .await
        .map_err(|e| format!("create PersistentVolume: {e}"))?;
    Ok((name, dir))
}

/// The host pid of the operator container of the release watching `ns`.
fn operator_pid(ns: &str) -> Option<i32> {
    let flag = format!("--namespace={ns}");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let exe = String::from_utf8_lossy(args.first()?);
            (exe.ends_with("confluence-operator") && args.contains(&flag.as_bytes())).then_some(pid)
        })
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the test node and the operator image; run by hack/faults"]
async fn operator_container_killed_mid_sync_on_node() {
    fault_table::run_fault(
        "operator container's process SIGKILLed mid-sync on the node (chart, StatefulSet)",
        "the kubelet restarts the container; while it is down the status does not claim the sync done; the restarted container finishes the interrupted sync by itself; then store = Confluence (ids, versions, audience), no orphan or duplicate",
        async {
            let mut o = Outcome { observed: String::new(), figures: String::new(), failures: Vec::new() };
            let node = support::node();
            let admin = support::client().await;
            let ns = support::test_namespace(&admin, "fault-node").await;
            let release = format!("fn{}", &ns[ns.len() - 6..]);
            let full = format!("{release}-confluence-operator");
            let pod_name = format!("{full}-0");
            let (volume, dir) = match local_volume(&admin, &ns, &format!("data-{pod_name}")).await {
                Ok(v) => v,
                Err(e) => {
                    o.check(false, e);
                    return o;
                }
            };
            let sim = Simulator::start(SimConfig {
                listen: SocketAddr::from((node.gateway, 0)),
                spaces: 1,
                pages: PAGES,
                blogposts: 0,
                user: "operator@example.com".into(),
                token: operator_process::SECRET_TOKEN.into(),
                ..SimConfig::default()
            })
            .await
            .expect("simulator on the pod gateway");
            let key = sim.spaces().first().map(|s| s.key.clone()).unwrap_or_default();
            let repo = format!("image.repository={}", node.operator_repository);
            let tag = format!("image.tag={}", node.operator_tag);
            let watch = format!("watchNamespace={ns}");
            if let Err(e) = helm(&[
                "install", &release, CHART, "--namespace", &ns,
                "--set", &repo, "--set", &tag, "--set", "image.pullPolicy=Never",
                "--set", "admissionPolicy.enabled=false",
                "--set", "stores.embedded.persistence.size=1Gi", "--set", &watch,
            ]) {
                o.check(false, e);
                return o;
            }
            let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
            let spaces: Api<ConfluenceSpace> = Api::namespaced(admin.clone(), &ns);
            let secret: Secret = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                "stringData": {"email": "operator@example.com", "apiToken": operator_process::SECRET_TOKEN}
            })).expect("secret");
            let _ = Api::<Secret>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &secret).await;
            let site: ConfluenceSite = serde_json::from_value(json!({
                "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
                "metadata": {"name": "sim"},
                "spec": {"url": sim.cloud_site_url().as_str(), "flavor": "Cloud", "insecureAllowHttp": true,
                         "credentialsSecretRef": {"name": "creds"}}
            })).expect("site");
            let _ = Api::<ConfluenceSite>::namespaced(admin.clone(), &ns).create(&PostParams::default(), &site).await;
            let space: ConfluenceSpace = serde_json::from_value(json!({
                "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
                "metadata": {"name": "docs"},
                "spec": {"siteRef": {"name": "sim"}, "spaceKey": key, "viewers": {"visibility": "Everyone"}}
            })).expect("space");
            if let Err(e) = spaces.create(&PostParams::default(), &space).await {
                o.check(false, format!("create space: {e}"));
                return o;
            }
            let synced = |value: Option<String>| {
                let spaces = spaces.clone();
                async move {
                    let deadline = Instant::now() + TIMEOUT;
                    loop {
                        if let Ok(s) = spaces.get("docs").await {
                            let st = s.status.clone().unwrap_or_default();
                            let ready = st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
                            if ready && st.phase == Some(SyncPhase::Synced)
                                && (value.is_none() || st.last_handled_resync_at == value)
                            {
                                return Ok(st);
                            }
                            if Instant::now() > deadline {
                                return Err(format!("not synced within {TIMEOUT:?}: {st:?}"));
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            if let Err(e) = synced(None).await {
                o.check(false, format!("first sync in the pod: {e}"));
                return o;
            }
            let (mut rng, seed) = Rng::from_env();
            if let Err(e) = operator_process::change_confluence(&sim, &key, "node-kill", 150) {
                o.check(false, e);
                return o;
            }
            sim.set_faults(FaultConfig { latency_ms: 300, ..FaultConfig::default() });
            let fetches = sim.stats().get(FETCH);
            let _ = spaces
                .patch("docs", &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {RESYNC_ANNOTATION: "node-kill"}}})))
                .await;
            let deadline = Instant::now() + Duration::from_secs(60);
            while sim.stats().get(FETCH) == fetches && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let delay = rng.millis(0, 700);
            tokio::time::sleep(delay).await;
            let Some(pid) = operator_pid(&ns) else {
                o.check(false, "the operator's process was not found on the host");
                return o;
            };
            let killed = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            o.check(killed.is_ok_and(|s| s.success()), "kill -KILL failed");
            let t_kill = Instant::now();
            sim.set_faults(FaultConfig::default());
            let at_kill = spaces.get("docs").await.ok().and_then(|s| s.status).unwrap_or_default();
            let claimed = at_kill.phase == Some(SyncPhase::Synced)
                && at_kill.last_handled_resync_at.as_deref() == Some("node-kill");
            let ready_at_kill = at_kill
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| format!("Ready={} ({})", c.status, c.reason))
                .unwrap_or_default();
            // back up: restarted by the kubelet, not recreated
            let deadline = Instant::now() + TIMEOUT;
            let mut restarted = None;
            while Instant::now() < deadline {
                if let Ok(p) = pods.get(&pod_name).await
                    && restarts(&p) >= 1
                    && pod_ready(&p)
                {
                    restarted = Some(t_kill.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            o.check(restarted.is_some(), "the kubelet did not restart the container");
            let status = synced(Some("node-kill".into())).await;
            let recovered = t_kill.elapsed();
            if let Err(e) = &status {
                o.check(false, format!("after the restart: {e}"));
            }
            // the invariant, on the pod's volume once the pod is gone
            let scale = support::kubectl()
                .args(["scale", "statefulset", &full, "-n", &ns, "--replicas=0"])
                .output();
            o.check(scale.is_ok_and(|s| s.status.success()), "kubectl scale to 0 failed");
            let deadline = Instant::now() + TIMEOUT;
            while Instant::now() < deadline && matches!(pods.get_opt(&pod_name).await, Ok(Some(_))) {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            match operator_process::open_index(&dir.join("index")).await {
                Ok(store) => {
                    match operator_process::held(&store, &SpaceScope::new(&ns, "docs"), &[]).await {
                        Ok(held) => {
                            if let Some(d) = operator_process::diff(&sim, &key, &held, &Audience::Everyone) {
                                o.check(false, d);
                            }
                        }
                        Err(e) => o.check(false, e),
                    }
                }
                Err(e) => o.check(false, e),
            }
            let _ = helm(&["uninstall", &release, "--namespace", &ns]);
            let _ = Api::<PersistentVolume>::all(admin.clone()).delete(&volume, &DeleteParams::default()).await;
            o.observed = format!(
                "killed pid {pid} {}ms after the fetch request; status at kill: phase {:?}, {ready_at_kill}{}; container restarted by the kubelet; interrupted sync finished by itself; store = Confluence",
                delay.as_millis(),
                at_kill.phase,
                if claimed { " (the sync had already finished)" } else { "" }
            );
            o.figures = format!(
                "seed {seed}, kill to container Ready {:.1}s, to Synced {:.1}s",
                restarted.unwrap_or_default().as_secs_f64(),
                recovered.as_secs_f64()
            );
            o
        },
    )
    .await;
}
