//! The operator binary as its own process (what a pod runs), for faults that
//! need a real process: SIGKILL, a full or damaged data volume. It runs
//! against the test control plane, scoped to one namespace, with the
//! embedded store in a directory the test chooses; the test reads that index
//! itself while the process is dead (the writer lock dies with it).
//!
//! Also the invariant every fault must keep: the store holds exactly what
//! Confluence lists (ids, versions, audience), no orphan, no duplicate, no
//! restricted page.
//!
//! Use it from a test file with `mod operator_process;` (after `mod support;`
//! and `mod harness;`); the benchmarks start the operator with it too.
#![allow(dead_code)]

use crate::{harness, support};
use confluence_operator::api::ConfluenceSpace;
use confluence_operator::api::space::ConfluenceSpaceStatus;
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_operator::store::{Search, Store};
use confluence_sim::Simulator;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SECRET_TOKEN: &str = "test-token-123";

/// A seeded generator (splitmix64): the seed in a table row replays the run.
pub struct Rng(u64);

impl Rng {
    /// `FAULTS_SEED` when set (to replay a run), else the clock.
    pub fn from_env() -> (Self, u64) {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| {
                let s = s.trim();
                s.strip_prefix("0x")
                    .map(|h| u64::from_str_radix(h, 16).ok())
                    .unwrap_or_else(|| s.parse().ok())
            })
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Rng(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
}

/// A simulator with one space of `pages` pages that accepts the operator's
/// credentials (those `Cluster::create_site_and_space` puts in the Secret).
pub async fn one_space_simulator(pages: usize) -> Simulator {
    Simulator::start(confluence_sim::SimConfig {
        spaces: 1,
        pages,
        blogposts: 0,
        user: "operator@example.com".into(),
        token: SECRET_TOKEN.into(),
        ..confluence_sim::SimConfig::default()
    })
    .await
    .expect("simulator")
}

/// The operator under test, killed and started again by the test: each start
/// is a new process with its own log (`<namespace>-<n>`), on the same data
/// directory.
pub struct Restartable {
    namespace: String,
    data_dir: PathBuf,
    extra: Vec<String>,
    current: Option<OperatorProcess>,
    starts: u32,
}

impl Restartable {
    /// Not started yet; `extra` are more command-line arguments.
    pub fn new(namespace: &str, data_dir: &Path, extra: &[&str]) -> Self {
        Self {
            namespace: namespace.to_string(),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            current: None,
            starts: 0,
        }
    }

    pub fn start(&mut self) {
        self.starts += 1;
        let name = format!("{}-{}", self.namespace, self.starts);
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.current = Some(OperatorProcess::spawn_with(
            &self.namespace,
            &self.data_dir,
            &name,
            &extra,
        ));
    }

    /// Starts it unless a process is running.
    pub fn ensure_running(&mut self) {
        if !self.alive() {
            self.start();
        }
    }

    pub fn kill(&mut self) {
        if let Some(op) = self.current.as_mut() {
            op.kill();
        }
    }

    /// Whether a started process is still running.
    pub fn alive(&mut self) -> bool {
        self.current.as_mut().is_some_and(|o| o.exited().is_none())
    }

    /// Waits up to `within` for the running process to exit on its own;
    /// whether it did.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        !self.alive()
    }

    /// How the last process ended, if it exited while it should have run.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.current.as_mut().and_then(OperatorProcess::exited)
    }

    pub fn process(&self) -> Option<&OperatorProcess> {
        self.current.as_ref()
    }

    /// The last process's whole log.
    pub fn log(&self) -> String {
        self.current
            .as_ref()
            .map(|o| std::fs::read_to_string(&o.log).unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        self.current
            .as_ref()
            .map(|o| o.log_tail(15))
            .unwrap_or_default()
    }
}

/// How to start the operator binary, for [`OperatorProcess::launch`]: out of
/// cluster, against the control plane of `KUBECONFIG`, without
/// authentication on its API, on a free loopback port.
pub struct Launch {
    pub binary: PathBuf,
    pub namespace: String,
    /// `--stores`.
    pub stores: String,
    pub data_dir: PathBuf,
    /// File its standard output and error go to.
    pub log: PathBuf,
    /// `RUST_LOG`.
    pub level: String,
    /// More command-line arguments.
    pub extra: Vec<String>,
}

/// One run of the operator binary.
pub struct OperatorProcess {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OperatorProcess {
    /// Starts the operator for `namespace` with the embedded store in
    /// `data_dir`; its log goes to `target/faults/logs/<name>.log`.
    pub fn spawn(namespace: &str, data_dir: &Path, name: &str) -> Self {
        Self::spawn_with(namespace, data_dir, name, &[])
    }

    /// [`OperatorProcess::spawn`] with more command-line arguments.
    pub fn spawn_with(namespace: &str, data_dir: &Path, name: &str, extra: &[&str]) -> Self {
        let logs = support::repo_root().join("target/faults/logs");
        std::fs::create_dir_all(&logs).expect("create log dir");
        let mut args = vec!["--log-format".to_string(), "text".to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        Self::launch(Launch {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_confluence-operator")),
            namespace: namespace.to_string(),
            stores: "embedded".into(),
            data_dir: data_dir.to_path_buf(),
            log: logs.join(format!("{name}.log")),
            level: "info".into(),
            extra: args,
        })
        .expect("start the operator binary")
    }

    /// Starts the binary as `launch` says.
    pub fn launch(launch: Launch) -> std::io::Result<Self> {
        let port = support::free_port();
        let out = std::fs::File::create(&launch.log)?;
        let err = out.try_clone()?;
        let child = Command::new(&launch.binary)
            .args(["--namespace", &launch.namespace, "--stores", &launch.stores])
            .arg("--data-dir")
            .arg(&launch.data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--auth", "none"])
            .args(&launch.extra)
            .env("KUBECONFIG", support::kubeconfig_env())
            .env("RUST_LOG", &launch.level)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(Self {
            child,
            port,
            log: launch.log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `None` while running, else how it ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Anonymous search through the operator's API (`--auth none`).
    pub async fn search(&self, q: &str) -> Result<serde_json::Value, String> {
        let url = format!("http://127.0.0.1:{}/v1/search", self.port);
        let resp = reqwest::Client::new()
            .get(url)
            .query(&[("q", q)])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("search answered {status}: {body}"));
        }
        Ok(body)
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The test's side of the cluster: one namespace, its objects.
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

impl Cluster {
    pub async fn new(prefix: &str) -> Self {
        let client = support::client().await;
        harness::install_crds(&client).await;
        let namespace = support::test_namespace(&client, prefix).await;
        Self { client, namespace }
    }

    pub fn spaces(&self) -> Api<ConfluenceSpace> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Secret, site and one space, as a user would create them.
    pub async fn create_site_and_space(
        &self,
        sim: &Simulator,
        space: &str,
        key: &str,
        viewers: serde_json::Value,
    ) {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
            "stringData": {"email": "operator@example.com", "apiToken": SECRET_TOKEN}
        }))
        .expect("secret");
        Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create secret");
        let site = json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
            "metadata": {"name": "wiki"},
            "spec": {"url": sim.cloud_site_url().as_str(), "flavor": "Cloud", "insecureAllowHttp": true,
                     "credentialsSecretRef": {"name": "creds"}}
        });
        Api::<confluence_operator::api::ConfluenceSite>::namespaced(
            self.client.clone(),
            &self.namespace,
        )
        .create(
            &PostParams::default(),
            &serde_json::from_value(site).expect("site"),
        )
        .await
        .expect("create site");
        let cs = json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
            "metadata": {"name": space},
            "spec": {"siteRef": {"name": "wiki"}, "spaceKey": key, "viewers": viewers}
        });
        self.spaces()
            .create(
                &PostParams::default(),
                &serde_json::from_value(cs).expect("space"),
            )
            .await
            .expect("create space");
    }

    /// [`Cluster::create_site_and_space`] for everyone, then waits for its
    /// first sync.
    pub async fn create_and_sync(
        &self,
        sim: &Simulator,
        space: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<ConfluenceSpaceStatus, String> {
        self.create_site_and_space(sim, space, key, json!({"visibility": "Everyone"}))
            .await;
        self.wait_synced(space, None, timeout).await
    }

    pub async fn space(&self, name: &str) -> Result<Option<ConfluenceSpace>, String> {
        self.spaces().get_opt(name).await.map_err(|e| e.to_string())
    }

    pub async fn status(&self, name: &str) -> Result<ConfluenceSpaceStatus, String> {
        Ok(self
            .space(name)
            .await?
            .and_then(|s| s.status)
            .unwrap_or_default())
    }

    /// Polls until `check` accepts the space (or `timeout`); the error names
    /// the last state seen.
    pub async fn wait_space<T>(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&ConfluenceSpace) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.space(name).await {
                Ok(Some(s)) => {
                    if let Some(t) = check(&s) {
                        return Ok(t);
                    }
                    describe(&s)
                }
                Ok(None) => "object gone".into(),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(format!("not within {timeout:?}: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the space is Ready for its generation, synced, with the
    /// resync request `value` (if any) handled.
    pub async fn wait_synced(
        &self,
        name: &str,
        value: Option<&str>,
        timeout: Duration,
    ) -> Result<ConfluenceSpaceStatus, String> {
        self.wait_space(name, timeout, |s| {
            let st = s.status.clone().unwrap_or_default();
            let ready = ready_condition(s).is_some_and(|(status, _, _)| status == "True");
            let handled = value.is_none() || st.last_handled_resync_at.as_deref() == value;
            (ready
                && handled
                && st.phase == Some(confluence_operator::api::space::SyncPhase::Synced)
                && st.observed_generation == s.metadata.generation)
                .then_some(st)
        })
        .await
    }

    /// Waits until the object is gone from the API server.
    pub async fn wait_gone(&self, name: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.space(name).await {
                Ok(None) => return Ok(()),
                Ok(Some(s)) if Instant::now() > deadline => {
                    return Err(format!("still there after {timeout:?}: {}", describe(&s)));
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn request_resync(&self, name: &str, value: &str) -> Result<(), String> {
        self.spaces()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    "confluence-operator.io/requestedAt": value}}})),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Reasons and notes of the Events about the space `name`.
    pub async fn events(&self, name: &str) -> Vec<(String, String, String)> {
        use k8s_openapi::api::events::v1::Event;
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// `(status, reason, message)` of the Ready condition.
pub fn ready_condition(s: &ConfluenceSpace) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn describe(s: &ConfluenceSpace) -> String {
    let st = s.status.clone().unwrap_or_default();
    format!(
        "phase {:?}, Ready {:?}, items {:?}, handled {:?}, finalizers {:?}, deleting {}",
        st.phase,
        ready_condition(s),
        st.items,
        st.last_handled_resync_at,
        s.metadata.finalizers,
        s.metadata.deletion_timestamp.is_some()
    )
}

/// Opens the index the (dead) operator left, retrying briefly while the
/// kernel releases the killed process's lock.
pub async fn open_index(dir: &Path) -> Result<EmbeddedStore, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = dir.to_path_buf();
        let res = tokio::task::spawn_blocking(move || EmbeddedStore::open(&d))
            .await
            .map_err(|e| e.to_string())?;
        match res {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("index at {} does not open: {e}", dir.display()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What a store holds for one space.
pub struct Held {
    pub versions: BTreeMap<String, u64>,
    /// Documents counted, duplicates included.
    pub count: u64,
    /// Audience of each stored document.
    pub audiences: BTreeMap<String, Audience>,
}

pub async fn held(
    store: &EmbeddedStore,
    scope: &SpaceScope,
    segments: &[String],
) -> Result<Held, String> {
    let versions: BTreeMap<String, u64> = store
        .versions(scope)
        .await
        .map_err(|e| format!("store unreadable: {e}"))?
        .into_iter()
        .collect();
    let count = store.count(scope).await.map_err(|e| e.to_string())?;
    let mut audiences = BTreeMap::new();
    for id in versions.keys() {
        let doc = Search::get(store, &scope.document_id(id), segments)
            .await
            .map_err(|e| e.to_string())?;
        match doc {
            Some(d) => {
                audiences.insert(id.clone(), d.audience);
            }
            None => return Err(format!("page {id} is in the index but not readable")),
        }
    }
    Ok(Held {
        versions,
        count,
        audiences,
    })
}

/// What Confluence lists for `key` (current, not restricted): id -> version.
pub fn listed(sim: &Simulator, key: &str) -> BTreeMap<String, u64> {
    sim.pages(key)
        .into_iter()
        .filter(|p| p.status == confluence_sim::Status::Current && !p.restricted)
        .map(|p| (p.id.to_string(), p.version))
        .collect()
}

/// The invariant: `None` when the store holds exactly what Confluence lists,
/// each document with `audience`; else what differs.
pub fn diff(sim: &Simulator, key: &str, held: &Held, audience: &Audience) -> Option<String> {
    let listed = listed(sim, key);
    let restricted: Vec<String> = sim
        .pages(key)
        .into_iter()
        .filter(|p| p.restricted)
        .map(|p| p.id.to_string())
        .collect();
    let mut problems = Vec::new();
    let missing = listed
        .iter()
        .filter(|(id, v)| held.versions.get(*id) != Some(v))
        .count();
    if missing > 0 {
        problems.push(format!("{missing} missing or stale"));
    }
    let orphans = held
        .versions
        .keys()
        .filter(|id| !listed.contains_key(*id))
        .count();
    if orphans > 0 {
        problems.push(format!("{orphans} orphans"));
    }
    let leaked = restricted
        .iter()
        .filter(|id| held.versions.contains_key(*id))
        .count();
    if leaked > 0 {
        problems.push(format!("{leaked} restricted pages stored"));
    }
    if held.count != held.versions.len() as u64 {
        problems.push(format!(
            "{} documents for {} ids (duplicates)",
            held.count,
            held.versions.len()
        ));
    }
    let wrong_audience = held.audiences.values().filter(|a| *a != audience).count();
    if wrong_audience > 0 {
        problems.push(format!(
            "{wrong_audience} with another audience than {audience:?}"
        ));
    }
    (!problems.is_empty())
        .then(|| format!("store differs from Confluence: {}", problems.join(", ")))
}

/// Changes Confluence so the next sync has work: `edits` pages edited, one
/// leaf deleted, one page created.
pub fn change_confluence(
    sim: &Simulator,
    key: &str,
    tag: &str,
    edits: usize,
) -> Result<(), String> {
    let pages = sim.pages(key);
    let current: Vec<_> = pages
        .iter()
        .filter(|p| p.status == confluence_sim::Status::Current)
        .collect();
    for p in current.iter().take(edits) {
        sim.edit_page(p.id, &format!("<p>edited during {tag}: deploy runbook</p>"))
            .map_err(|e| e.to_string())?;
    }
    if let Some(leaf) = current
        .iter()
        .rev()
        .find(|p| !pages.iter().any(|c| c.parent_id == Some(p.id)))
    {
        sim.delete_page(leaf.id).map_err(|e| e.to_string())?;
    }
    sim.create_page(key, &format!("Written during {tag}"), None, "<p>new</p>")
        .map_err(|e| e.to_string())?;
    Ok(())
}
