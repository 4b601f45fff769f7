//! The project's end-to-end benchmark in one run, on one simulator: for
//! Cloud and Data Center, the operator binary on the real control plane
//! (apply to Ready), the sync engine alone, and LangChain's and LlamaIndex's
//! Confluence clients; then many ConfluenceSpace objects at once (time until
//! all are Synced, idle RSS and CPU afterwards). Prints one table.
//!
//! Run through `hack/bench` (`cargo bench --bench e2e`). Sizes:
//! `BENCH_PAGES` (pages of the big space, 10000), `BENCH_RTT_MS` (latency the
//! simulator adds to every request, 50), `BENCH_SPACES` (many-spaces case,
//! 1000, each of `BENCH_SPACE_PAGES` = 5 pages), `BENCH_IDLE_SECS` (idle
//! window measured after they are synced, 30), `BENCH_PEERS`
//! (`all`, `fast`: without LangChain's default per-page restriction reads,
//! or `none`), `BENCH_CONCURRENCY` (the site's `maxConcurrency`, 8),
//! `BENCH_RUNS` (the operator's apply-to-Ready run per flavor, 1: with more,
//! the table shows the median run and a line below it every run's ratio),
//! `BENCH_PARTS` (`flavors,many`: which parts run), `BENCH_FLAVORS`
//! (`cloud,datacenter`: which flavors the `flavors` part runs), `BENCH_STORES` (the
//! operator's `--stores`, `embedded`). The operator binary is the one cargo builds for
//! this benchmark (release settings), or `BENCH_OPERATOR`. The simulator
//! speaks HTTPS, as every Cloud site does, behind a CA made for the run
//! (trusted by the operator through its site's `caBundleRef`, by the Python
//! peers through `REQUESTS_CA_BUNDLE`); `BENCH_TLS=0` runs plain HTTP.
//!
//! The operator process, the CRDs, the simulator's sites, the Python
//! virtualenv and the peers' command line are the tests' own helpers.

mod bench_env;
#[path = "../tests/harness/mod.rs"]
mod harness;
#[path = "../tests/operator_process/mod.rs"]
mod operator_process;
#[path = "../tests/peer_clients/mod.rs"]
mod peer_clients;
#[path = "../tests/pki/mod.rs"]
mod pki;
#[path = "../tests/proc_status/mod.rs"]
mod proc_status;
#[path = "../tests/python_venv/mod.rs"]
mod python_venv;
#[path = "../tests/sim_site/mod.rs"]
mod sim_site;
#[path = "../tests/support/mod.rs"]
mod support;

use bench_env::number;
use confluence_operator::api::space::SyncPhase;
use confluence_operator::api::{ConfluenceSite, ConfluenceSpace};
use confluence_operator::confluence::{
    CaBundle, ConfluenceApi, Credentials, Flavor, ListOptions, SiteConfig, SpaceRef, connect,
};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{DEFAULT_BATCH_SIZE, SyncRequest, sync_space};
use confluence_sim::{FaultConfig, SimConfig, Simulator, TlsIdentity};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator_process::{Launch, OperatorProcess};
use proc_status::Process;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sim_site::{flavor_name, site_url};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Page size the simulator grants v1 listings and CQL searches with
/// expansions (Cloud grants its own; the chain below uses this one).
const V1_LIMIT: u64 = 200;
/// Cloud v2 listing page size.
const V2_LIMIT: u64 = 250;
/// Bodies Data Center serves a request (the simulator's cap, like Confluence's).
const DC_BODY_LIMIT: u64 = 50;
/// Key of the big space (the simulator's first).
const BIG: &str = "ENG";

/// Requests that must run one after another in a full sync of `pages`
/// items, and the requests it makes at least. Cloud: the v2 cursor listing
/// (250 a request) and the v1 CQL pass (L′ a request) run side by side, and
/// each is walked from both ends once its first answer shows more, so a pass
/// of M answers is a chain of 1 + ⌈(M−1)/2⌉; the longer of the two chains.
/// Data Center: offset paging needs no chain
/// (any `start` can be asked for once the first answer shows the page size
/// granted), so only that first request must come before the others; no
/// design reads the bodies in fewer than ceil(N/50) requests (Data Center
/// serves at most 50 bodies a request), which share the site's slots.
fn network_chain(flavor: Flavor, pages: u64, concurrency: u64) -> u64 {
    let (chain, requests) = match flavor {
        Flavor::Cloud => {
            let listing = pages.div_ceil(V2_LIMIT);
            let cql = pages.div_ceil(V1_LIMIT);
            let both_ends = |m: u64| 1 + m.saturating_sub(1).div_ceil(2);
            (both_ends(listing).max(both_ends(cql)), listing + cql)
        }
        Flavor::DataCenter => {
            let bodies = pages.div_ceil(DC_BODY_LIMIT);
            let after_first = bodies.saturating_sub(1);
            (1 + after_first.div_ceil(concurrency.max(1)), bodies)
        }
    };
    // No more than `concurrency` requests are in flight at once either.
    chain.max(requests.div_ceil(concurrency.max(1)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EngineRun {
    seconds: f64,
    items: u64,
    peak_rss_kib: u64,
}

/// The child process of the "sync engine alone" row: one full sync of the
/// big space into a memory store, so its peak RSS is its own.
async fn engine_child() -> Result<(), BoxError> {
    let flavor = match std::env::var("BENCH_FLAVOR").as_deref() {
        Ok("datacenter") => Flavor::DataCenter,
        _ => Flavor::Cloud,
    };
    let url = url::Url::parse(&std::env::var("BENCH_URL")?)?;
    let user = std::env::var("BENCH_USER")?;
    let token = std::env::var("BENCH_TOKEN")?;
    let credentials = match flavor {
        Flavor::Cloud => Credentials::Basic {
            username: user,
            token,
        },
        Flavor::DataCenter => Credentials::Bearer { token },
    };
    let client: Arc<dyn ConfluenceApi> = connect(SiteConfig {
        base_url: url.clone(),
        flavor,
        credentials,
        max_concurrency: number("BENCH_CONCURRENCY", 8),
        request_timeout: Duration::from_secs(30),
        max_retries: 5,
        ca_bundle: match std::env::var("BENCH_CA") {
            Ok(path) => Some(CaBundle::from_pem(&std::fs::read(path)?)?),
            Err(_) => None,
        },
    })?;
    let store = Arc::new(MemoryStore::new());
    let stores: Vec<Arc<dyn Store>> = vec![store];
    // The space is looked up beside the listing, as the operator does.
    let req = SyncRequest {
        scope: SpaceScope::new("bench", "eng"),
        site_url: url.to_string(),
        space: SpaceRef::lookup(client.as_ref(), BIG),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: DEFAULT_BATCH_SIZE,
    };
    // The parent resets the simulator's counters when told the child is ready.
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let started = Instant::now();
    let report = sync_space(client.as_ref(), &stores, &req).await?;
    let seconds = started.elapsed().as_secs_f64();
    let run = EngineRun {
        seconds,
        items: report.items,
        peak_rss_kib: proc_status::kib(Process::Own, "VmHWM:"),
    };
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

fn engine_run(sim: &Simulator, flavor: Flavor) -> Result<(EngineRun, u64), BoxError> {
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new(std::env::current_exe()?)
        .env("BENCH_ROLE", "engine")
        .env("BENCH_FLAVOR", flavor_name(flavor))
        .env("BENCH_URL", site_url(sim, flavor).as_str())
        .env("BENCH_USER", sim.user())
        .env("BENCH_TOKEN", sim.token())
        .envs(trust().map(|t| ("BENCH_CA", t.path.clone())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        return Err(format!("engine child: {line}").into());
    }
    sim.reset_stats();
    writeln!(child.stdin.take().ok_or("no stdin")?, "go")?;
    line.clear();
    out.read_line(&mut line)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("engine child failed: {status}").into());
    }
    let run: EngineRun = serde_json::from_str(line.trim())?;
    Ok((run, sim.stats().total))
}

#[derive(Debug, Deserialize)]
struct PeerRun {
    seconds: f64,
    documents: u64,
    peak_rss_kib: u64,
}

fn peer_run(
    python: &Path,
    sim: &Simulator,
    flavor: Flavor,
    client: &str,
    extra: &[&str],
) -> Result<(PeerRun, u64), BoxError> {
    sim.reset_stats();
    let ca = trust().map(|t| t.path.as_path());
    let out = peer_clients::command(python, client, sim, flavor, BIG, ca)
        .arg("--timing")
        .args(extra)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("{client} ({flavor:?}) failed: {}", out.status).into());
    }
    let run: PeerRun = serde_json::from_slice(&out.stdout)?;
    Ok((run, sim.stats().total))
}

/// The operator binary, out of cluster, watching one namespace, with the
/// index under `data`. Its log is kept after the run
/// (target/bench/operator-<namespace>.log), at the level BENCH_OPERATOR_LOG
/// asks for (warn by default), to see where an end-to-end time goes.
fn start_operator(
    binary: &Path,
    namespace: &str,
    data: &Path,
) -> Result<OperatorProcess, BoxError> {
    let log_dir = support::repo_root().join("target/bench");
    std::fs::create_dir_all(&log_dir)?;
    let op = OperatorProcess::launch(Launch {
        binary: binary.to_path_buf(),
        namespace: namespace.to_string(),
        stores: std::env::var("BENCH_STORES").unwrap_or_else(|_| "embedded".into()),
        data_dir: data.join("index"),
        log: log_dir.join(format!("operator-{namespace}.log")),
        level: std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
        extra: Vec::new(),
    })?;
    Ok(op)
}

/// A fresh namespace (an old one of the same name is deleted first).
async fn fresh_namespace(client: &Client, name: &str) -> Result<(), BoxError> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await?.is_some() {
        // Spaces carry a finalizer only a running operator removes.
        let spaces: Api<ConfluenceSpace> = Api::namespaced(client.clone(), name);
        for s in spaces.list(&ListParams::default()).await? {
            let n = s.metadata.name.clone().unwrap_or_default();
            spaces
                .patch(
                    &n,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await?;
        }
        api.delete(name, &DeleteParams::default()).await?;
    }
    // A namespace being removed can still refuse a create of its name
    // (409) just after reads stopped finding it: wait and try again.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        while api.get_opt(name).await?.is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}}))?,
            )
            .await;
        match created {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The trust bundle is there before a site names it, as a cluster's
    // CA bundles are (trust-manager, cert-manager): not part of the apply.
    if let Some(trust) = trust() {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), name);
        maps.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "sim-ca"}, "data": {"ca.crt": trust.pem}
            }))?,
        )
        .await?;
    }
    Ok(())
}

/// The CA the simulator's HTTPS certificate is signed by, when it speaks
/// HTTPS (`BENCH_TLS`, on unless `0`): its PEM, and a file holding it.
struct Trust {
    pem: String,
    path: PathBuf,
}

static TRUST: std::sync::OnceLock<Option<Trust>> = std::sync::OnceLock::new();

fn trust() -> Option<&'static Trust> {
    TRUST.get().and_then(Option::as_ref)
}

async fn apply_site(
    client: &Client,
    ns: &str,
    sim: &Simulator,
    flavor: Flavor,
    concurrency: u64,
) -> Result<(), BoxError> {
    let data = match flavor {
        Flavor::Cloud => json!({"email": sim.user(), "apiToken": sim.token()}),
        Flavor::DataCenter => json!({"token": sim.token()}),
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "creds"}, "stringData": data
            }))?,
        )
        .await?;
    let sites: Api<ConfluenceSite> = Api::namespaced(client.clone(), ns);
    let kind = match flavor {
        Flavor::Cloud => "Cloud",
        Flavor::DataCenter => "DataCenter",
    };
    let mut spec = json!({
        "url": site_url(sim, flavor).as_str(),
        "flavor": kind,
        "credentialsSecretRef": {"name": "creds"},
        "insecureAllowHttp": trust().is_none(),
        "maxConcurrency": concurrency,
    });
    if trust().is_some() {
        spec["caBundleRef"] = json!({"kind": "ConfigMap", "name": "sim-ca"});
    }
    sites
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
                "metadata": {"name": "sim"},
                "spec": spec,
            }))?,
        )
        .await?;
    Ok(())
}

async fn apply_space(client: &Client, ns: &str, name: &str, key: &str) -> Result<(), BoxError> {
    let spaces: Api<ConfluenceSpace> = Api::namespaced(client.clone(), ns);
    spaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
                "metadata": {"name": name},
                "spec": {
                    "siteRef": {"name": "sim"},
                    "spaceKey": key,
                    "viewers": {"visibility": "Everyone"},
                }
            }))?,
        )
        .await?;
    Ok(())
}

fn synced(s: &ConfluenceSpace) -> bool {
    s.status
        .as_ref()
        .is_some_and(|st| st.phase == Some(SyncPhase::Synced) && st.last_synced_at.is_some())
}

/// Polls until `want` spaces of the namespace are Synced; returns how many
/// items they hold together.
async fn wait_synced(
    client: &Client,
    ns: &str,
    want: usize,
    every: Duration,
    timeout: Duration,
) -> Result<u64, BoxError> {
    let spaces: Api<ConfluenceSpace> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + timeout;
    loop {
        let list = spaces.list(&ListParams::default()).await?;
        let done: Vec<_> = list.items.iter().filter(|s| synced(s)).collect();
        if done.len() >= want {
            return Ok(done
                .iter()
                .filter_map(|s| s.status.as_ref().and_then(|st| st.items))
                .sum());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{ns}: {} of {want} spaces Synced after {timeout:?}",
                done.len()
            )
            .into());
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the operator's HTTP server answers, so the timed part
/// starts with a running process.
async fn wait_process_up(op: &mut OperatorProcess) -> Result<(), BoxError> {
    // Readiness is not served before the index is open; give it a moment
    // and fail early if the process died.
    for _ in 0..100 {
        if let Some(status) = op.exited() {
            return Err(format!("operator exited: {status}").into());
        }
        if proc_status::kib(Process::Pid(op.pid()), "VmRSS:") > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("operator did not start".into())
}

struct Row {
    flavor: Flavor,
    what: String,
    seconds: f64,
    requests: u64,
    peak_rss_kib: u64,
    items: u64,
    /// The API server's garbage collections within a timed operator run.
    api_server_gcs: Option<u64>,
}

async fn operator_run(
    client: &Client,
    binary: &Path,
    sim: &Simulator,
    flavor: Flavor,
    concurrency: u64,
) -> Result<Row, BoxError> {
    let ns = format!("bench-e2e-{}", flavor_name(flavor));
    fresh_namespace(client, &ns).await?;
    let data = tempfile::tempdir()?;
    let mut op = start_operator(binary, &ns, data.path())?;
    wait_process_up(&mut op).await?;
    let gcs_before = settle_api_server(client).await;
    sim.reset_stats();
    let started = Instant::now();
    apply_site(client, &ns, sim, flavor, concurrency).await?;
    apply_space(client, &ns, "eng", BIG).await?;
    // A watch, not polling: the time is when the status says Synced.
    let spaces: Api<ConfluenceSpace> = Api::namespaced(client.clone(), &ns);
    let done = tokio::time::timeout(
        Duration::from_secs(1800),
        kube::runtime::wait::await_condition(spaces, "eng", |s: Option<&ConfluenceSpace>| {
            s.is_some_and(synced)
        }),
    )
    .await
    .map_err(|_| format!("{ns}: space not Synced after 30 minutes"))??;
    let seconds = started.elapsed().as_secs_f64();
    let api_server_gcs = match (gcs_before, api_server_gc_cycles(client).await) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let items = done
        .and_then(|s| s.status)
        .and_then(|st| st.items)
        .unwrap_or(0);
    let requests = sim.stats().total;
    let peak = proc_status::kib(Process::Pid(op.pid()), "VmHWM:");
    drop(op);
    fresh_namespace(client, &ns).await?;
    Ok(Row {
        flavor,
        what: "operator: apply to Ready".into(),
        seconds,
        requests,
        peak_rss_kib: peak,
        items,
        api_server_gcs,
    })
}

/// Has the API server collect its garbage before a timed run, and returns
/// its count of collections so far (`None` if it does not say).
///
/// On a small machine shared with the control plane, a collection of the
/// API server's heap takes every core for a moment; left to chance, it
/// lands inside a short timed run now and then and stalls the operator and
/// the simulator alike, while a control plane on nodes of its own takes no
/// CPU from the operator. The profiling endpoint (`--profiling`, on by
/// default in Kubernetes) runs a full collection before it answers.
async fn settle_api_server(client: &Client) -> Option<u64> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    // The answer is a gzipped profile, not text: only its status matters.
    let asked = axum::http::Request::get("/debug/pprof/heap?gc=1")
        .body(kube::client::Body::from(Vec::new()));
    let collected = match asked {
        Ok(request) => match client.send(request).await {
            Ok(answer) if answer.status().is_success() => answer
                .into_body()
                .collect_bytes()
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Ok(answer) => Err(format!("HTTP {}", answer.status())),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = collected {
        WARNED.call_once(|| {
            eprintln!(
                "the API server did not collect its garbage on request ({e}); a collection may land inside a timed run"
            );
        });
    }
    api_server_gc_cycles(client).await
}

/// The API server's count of completed garbage collections.
async fn api_server_gc_cycles(client: &Client) -> Option<u64> {
    let request = axum::http::Request::get("/metrics").body(Vec::new()).ok()?;
    let text = client.request_text(request).await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("go_gc_cycles_total_gc_cycles_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The run of median time (of an even number, the later of the two middle
/// runs, its time the mean of both), named for how many it stands for.
fn median_run(mut tries: Vec<Row>) -> Row {
    tries.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let n = tries.len();
    let seconds = if n.is_multiple_of(2) {
        (tries[n / 2 - 1].seconds + tries[n / 2].seconds) / 2.0
    } else {
        tries[n / 2].seconds
    };
    let mut row = tries.swap_remove(n / 2);
    row.seconds = seconds;
    if n > 1 {
        row.what = format!("{} (median of {n} runs)", row.what);
    }
    row
}

/// Every run's time over the network limit, in the order they ran, with the
/// spread and how many kept within the 1.3x goal.
fn spread_line(flavor: Flavor, times: &[f64], limit: f64) -> String {
    if limit <= 0.0 || times.is_empty() {
        return String::new();
    }
    let ratios: Vec<f64> = times.iter().map(|t| t / limit).collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let within = ratios.iter().filter(|r| **r <= 1.3).count();
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
    format!(
        "{}: operator, {} runs, time / limit {:.2}x to {:.2}x, {within} of {} within 1.3x: {}",
        flavor_name(flavor),
        times.len(),
        sorted[0],
        sorted[sorted.len() - 1],
        times.len(),
        each.join(", ")
    )
}

/// In how many timed runs the API server collected garbage anyway, so the
/// report shows whether the control plane took CPU from the operator.
fn gc_line(flavor: Flavor, gcs: &[Option<u64>]) -> String {
    let known: Vec<u64> = gcs.iter().flatten().copied().collect();
    if known.len() < gcs.len() {
        return format!(
            "{}: unknown whether the API server collected garbage during the runs (its /metrics has no go_gc_cycles_total)",
            flavor_name(flavor)
        );
    }
    let hit = known.iter().filter(|n| **n > 0).count();
    format!(
        "{}: the API server collected garbage during {hit} of {} runs (asked to collect just before each)",
        flavor_name(flavor),
        known.len()
    )
}

struct ManyRun {
    spaces: usize,
    seconds: f64,
    requests: u64,
    items: u64,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    idle_cpu_percent: f64,
    idle_secs: u64,
}

async fn many_spaces_run(
    client: &Client,
    binary: &Path,
    sim: &Simulator,
    keys: &[String],
    concurrency: u64,
    idle_secs: u64,
) -> Result<ManyRun, BoxError> {
    let ns = "bench-many";
    fresh_namespace(client, ns).await?;
    let data = tempfile::tempdir()?;
    let mut op = start_operator(binary, ns, data.path())?;
    wait_process_up(&mut op).await?;
    sim.reset_stats();
    let started = Instant::now();
    apply_site(client, ns, sim, Flavor::Cloud, concurrency).await?;
    // Applied a few at a time, as `kubectl apply -f dir/` would.
    let applies: Vec<_> = keys
        .iter()
        .map(|key| {
            let name = key.to_lowercase();
            async move { apply_space(client, ns, &name, key).await }
        })
        .collect();
    use futures::StreamExt;
    let results: Vec<Result<(), BoxError>> = futures::stream::iter(applies)
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let items = wait_synced(
        client,
        ns,
        keys.len(),
        // Each poll lists every space: rarer with thousands of them.
        Duration::from_millis(500).max(Duration::from_millis(keys.len() as u64)),
        Duration::from_secs(3600),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let requests = sim.stats().total;
    // Idle: nothing changes, nothing is due; what the process holds and burns.
    let pid = Process::Pid(op.pid());
    let before = proc_status::cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let ticks = proc_status::cpu_ticks(pid).saturating_sub(before);
    // Where the resident memory is, for whoever reads the log.
    for line in proc_status::status(pid).lines().filter(|l| {
        ["VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"]
            .iter()
            .any(|f| l.starts_with(f))
    }) {
        eprintln!("  operator {line}");
    }
    let run = ManyRun {
        spaces: keys.len(),
        seconds,
        requests,
        items,
        idle_rss_kib: proc_status::kib(pid, "VmRSS:"),
        peak_rss_kib: proc_status::kib(pid, "VmHWM:"),
        idle_cpu_percent: ticks as f64 / idle_secs.max(1) as f64,
        idle_secs,
    };
    eprintln!(
        "  {} spaces Synced in {:.1} s, {} requests; idle RSS {} MiB, peak {} MiB, idle CPU {:.2} %",
        run.spaces,
        run.seconds,
        run.requests,
        run.idle_rss_kib / 1024,
        run.peak_rss_kib / 1024,
        run.idle_cpu_percent
    );
    drop(op);
    fresh_namespace(client, ns).await?;
    Ok(run)
}

/// Text of a generated page: a few paragraphs, a list and a link, about
/// the size of the simulator's own pages.
fn page_body(rng: &mut StdRng, n: usize) -> String {
    const WORDS: &[&str] = &[
        "deploy",
        "router",
        "cluster",
        "backup",
        "incident",
        "review",
        "latency",
        "release",
        "token",
        "cache",
        "index",
        "schema",
        "runbook",
        "alert",
        "budget",
        "migration",
    ];
    let mut sentence = |len: usize| -> String {
        (0..len)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut body = format!("<h2>Section {n}</h2>");
    for _ in 0..4 {
        body.push_str(&format!("<p>{}.</p>", sentence(30)));
    }
    body.push_str(&format!(
        "<ul><li>{}</li><li>{}</li></ul><p><a href=\"https://example.com/{n}\">{}</a></p>",
        sentence(6),
        sentence(6),
        sentence(3)
    ));
    body
}

/// What a run measures and with what (see the header).
struct Settings {
    pages: u64,
    rtt: u64,
    many: usize,
    space_pages: usize,
    idle_secs: u64,
    concurrency: u64,
    runs: usize,
    peers: String,
    parts: String,
    flavors: Vec<Flavor>,
    binary: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "flavors,many".into());
        let which = std::env::var("BENCH_FLAVORS").unwrap_or_else(|_| "cloud,datacenter".into());
        let flavors = if parts.contains("flavors") {
            [Flavor::Cloud, Flavor::DataCenter]
                .into_iter()
                .filter(|f| which.split(',').any(|w| w.trim() == flavor_name(*f)))
                .collect()
        } else {
            vec![]
        };
        // Cargo builds the operator binary with the same (optimised) profile
        // for this benchmark; BENCH_OPERATOR names another build.
        let binary = std::env::var_os("BENCH_OPERATOR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_confluence-operator")));
        if !binary.exists() {
            return Err(format!("{} not found", binary.display()).into());
        }
        Ok(Self {
            pages: number("BENCH_PAGES", 10_000u64).max(5),
            rtt: number("BENCH_RTT_MS", 50),
            many: number("BENCH_SPACES", 1_000),
            space_pages: number("BENCH_SPACE_PAGES", 5),
            idle_secs: number("BENCH_IDLE_SECS", 30),
            concurrency: number("BENCH_CONCURRENCY", 8),
            runs: number("BENCH_RUNS", 1usize).max(1),
            peers: std::env::var("BENCH_PEERS").unwrap_or_else(|_| "all".into()),
            parts,
            flavors,
            binary,
        })
    }

    /// The longest chain of requests that must run one after another, in
    /// seconds at the simulator's latency.
    fn network_limit(&self, flavor: Flavor) -> f64 {
        network_chain(flavor, self.pages, self.concurrency) as f64 * self.rtt as f64 / 1000.0
    }
}

/// Every timed operator run of a flavor, when there was more than one.
struct Spread {
    flavor: Flavor,
    times: Vec<f64>,
    gcs: Vec<Option<u64>>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::var("BENCH_ROLE").as_deref() == Ok("engine") {
        return engine_child().await;
    }
    // `cargo bench` passes `--bench`; this binary takes no arguments.
    let settings = Settings::from_env()?;
    let (sim, keys) = start_simulator(&settings).await?;

    let client = support::client().await;
    harness::install_crds(&client).await;
    let python = if settings.peers == "none" {
        None
    } else {
        Some(python_venv::python()?)
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut spreads: Vec<Spread> = Vec::new();
    for &flavor in &settings.flavors {
        let (flavor_rows, spread) =
            flavor_rows(&client, &settings, &sim, flavor, python.as_deref()).await?;
        rows.extend(flavor_rows);
        spreads.extend(spread);
    }
    let many_run = if settings.many > 0 && settings.parts.contains("many") {
        eprintln!(
            "{} spaces of {} pages: operator, apply to all Synced",
            settings.many, settings.space_pages
        );
        let s = &settings;
        Some(many_spaces_run(&client, &s.binary, &sim, &keys, s.concurrency, s.idle_secs).await?)
    } else {
        None
    };

    print_flavor_table(&settings, &rows, &spreads);
    print_budgets(&settings);
    print_comparisons(&rows);
    if let Some(m) = many_run {
        print_many(&m, settings.space_pages);
    }
    sim.shutdown().await;
    Ok(())
}

/// One simulator: the big space first, then `many` small ones (returned by
/// key), answering after the latency of the run.
async fn start_simulator(s: &Settings) -> Result<(Simulator, Vec<String>), BoxError> {
    let setup = Instant::now();
    let sim = Simulator::start(SimConfig {
        spaces: s.many + 1,
        pages: s.space_pages,
        blogposts: 0,
        tls: trust_for_run()?,
        ..SimConfig::default()
    })
    .await?;
    grow_big_space(&sim, s.pages)?;
    let keys: Vec<String> = sim
        .spaces()
        .into_iter()
        .map(|s| s.key)
        .filter(|k| k != BIG && !k.starts_with('~'))
        .take(s.many)
        .collect();
    sim.set_faults(FaultConfig {
        latency_ms: s.rtt,
        ..FaultConfig::default()
    });
    eprintln!(
        "simulator ready in {:.1}s: {BIG} with {} pages, {} spaces of {}, {} ms a request",
        setup.elapsed().as_secs_f64(),
        s.pages,
        keys.len(),
        s.space_pages,
        s.rtt
    );
    Ok((sim, keys))
}

/// Makes the run's CA (unless `BENCH_TLS=0`), records it for the operator
/// and the peers, and returns the simulator's identity it signs.
fn trust_for_run() -> Result<Option<TlsIdentity>, BoxError> {
    if std::env::var("BENCH_TLS").as_deref() == Ok("0") {
        let _ = TRUST.set(None);
        return Ok(None);
    }
    let ca = pki::TestCa::new("confluence-operator bench CA");
    let path = support::repo_root().join("target/bench/ca.pem");
    std::fs::create_dir_all(path.parent().ok_or("no target/bench")?)?;
    std::fs::write(&path, ca.pem())?;
    let _ = TRUST.set(Some(Trust {
        pem: ca.pem(),
        path,
    }));
    Ok(Some(ca.server_identity()))
}

/// Adds generated pages, each below a page picked at random, until the big
/// space holds `pages`.
fn grow_big_space(sim: &Simulator, pages: u64) -> Result<(), BoxError> {
    let mut rng = StdRng::seed_from_u64(12);
    let mut ids: Vec<u64> = sim.pages(BIG).iter().map(|p| p.id).collect();
    while (ids.len() as u64) < pages {
        let n = ids.len();
        let parent = ids[rng.random_range(0..n)];
        let body = page_body(&mut rng, n);
        ids.push(sim.create_page(BIG, &format!("Note {n}"), Some(parent), &body)?);
    }
    Ok(())
}

/// A flavor's rows: the operator (the median of its runs), the sync engine
/// alone and the Python peers; and, with more than one run, every run.
async fn flavor_rows(
    client: &Client,
    s: &Settings,
    sim: &Simulator,
    flavor: Flavor,
    python: Option<&Path>,
) -> Result<(Vec<Row>, Option<Spread>), BoxError> {
    let name = flavor_name(flavor);
    eprintln!("{name}: operator, apply to Ready");
    let mut tries = Vec::with_capacity(s.runs);
    for _ in 0..s.runs {
        tries.push(operator_run(client, &s.binary, sim, flavor, s.concurrency).await?);
    }
    let spread = (s.runs > 1).then(|| Spread {
        flavor,
        times: tries.iter().map(|r| r.seconds).collect(),
        gcs: tries.iter().map(|r| r.api_server_gcs).collect(),
    });
    let mut rows = vec![median_run(tries)];
    eprintln!("{name}: sync engine alone");
    let (run, requests) = engine_run(sim, flavor)?;
    rows.push(Row {
        flavor,
        what: "sync engine alone".into(),
        seconds: run.seconds,
        requests,
        peak_rss_kib: run.peak_rss_kib,
        items: run.items,
        api_server_gcs: None,
    });
    if let Some(python) = python {
        rows.extend(peer_rows(python, s, sim, flavor)?);
    }
    Ok((rows, spread))
}

/// The Python peers' rows of a flavor.
fn peer_rows(
    python: &Path,
    s: &Settings,
    sim: &Simulator,
    flavor: Flavor,
) -> Result<Vec<Row>, BoxError> {
    // LangChain stops at 1000 pages a space by default; raised to the
    // space's size so every client reads the whole space.
    let max_pages = s.pages.to_string();
    let mut cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "langchain",
            "LangChain ConfluenceLoader, restriction check off",
            vec!["--include-restricted", "--max-pages", &max_pages],
        ),
        ("llamaindex", "LlamaIndex ConfluenceReader, default", vec![]),
    ];
    if s.peers == "all" {
        cases.insert(
            0,
            (
                "langchain",
                "LangChain ConfluenceLoader, default",
                vec!["--max-pages", &max_pages],
            ),
        );
    }
    let mut rows = Vec::with_capacity(cases.len());
    for (client_name, what, extra) in cases {
        eprintln!("{}: {what}", flavor_name(flavor));
        let (run, requests) = peer_run(python, sim, flavor, client_name, &extra)?;
        rows.push(Row {
            flavor,
            what: what.into(),
            seconds: run.seconds,
            requests,
            peak_rss_kib: run.peak_rss_kib,
            items: run.documents,
            api_server_gcs: None,
        });
    }
    Ok(rows)
}

/// The table of every flavor's rows, then each flavor's spread of runs.
fn print_flavor_table(s: &Settings, rows: &[Row], spreads: &[Spread]) {
    let (pages, rtt, concurrency) = (s.pages, s.rtt, s.concurrency);
    println!();
    println!(
        "{pages} pages, {rtt} ms per request, site maxConcurrency {concurrency}; network limit = longest chain of requests that must run one after another x {rtt} ms"
    );
    println!();
    println!(
        "| flavor | run | items | time | requests | peak RSS | network limit | time / limit |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let limit = s.network_limit(row.flavor);
        let ratio = if limit > 0.0 {
            format!("{:.2}x", row.seconds / limit)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {} | {:.2} s | {} | {} MiB | {:.2} s | {} |",
            flavor_name(row.flavor),
            row.what,
            row.items,
            row.seconds,
            row.requests,
            row.peak_rss_kib / 1024,
            limit,
            ratio
        );
    }
    for spread in spreads {
        println!();
        println!(
            "{}",
            spread_line(spread.flavor, &spread.times, s.network_limit(spread.flavor))
        );
        println!("{}", gc_line(spread.flavor, &spread.gcs));
    }
}

/// How the network limits are counted, and the request budgets.
fn print_budgets(s: &Settings) {
    let (pages, rtt) = (s.pages, s.rtt);
    let (v2_answers, cql_answers) = (pages.div_ceil(V2_LIMIT), pages.div_ceil(V1_LIMIT));
    println!();
    println!(
        "Cloud network limit: each pass walked from both ends, 1+ceil((M-1)/2) of its M answers one after another: v2 {} of {v2_answers}, CQL {} of {cql_answers}, x {rtt} ms = {:.2} s",
        1 + v2_answers.saturating_sub(1).div_ceil(2),
        1 + cql_answers.saturating_sub(1).div_ceil(2),
        s.network_limit(Flavor::Cloud)
    );
    let cloud_budget = 2 * pages.div_ceil(V2_LIMIT) + 10;
    println!();
    println!("Cloud request budget for {pages} pages: 2*ceil(N/250)+10 = {cloud_budget}");
    let dc_budget = pages.div_ceil(DC_BODY_LIMIT) + s.concurrency + 10;
    println!(
        "Data Center request budget for {pages} pages: ceil(N/50)+maxConcurrency+10 = {dc_budget}"
    );
}

/// How many times the operator's or the engine's time each peer took.
fn print_comparisons(rows: &[Row]) {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let time = |what: &str| {
            rows.iter()
                .find(|r| r.flavor == flavor && r.what.starts_with(what))
                .map(|r| r.seconds)
        };
        for (mine, label) in [
            ("operator", "the operator"),
            ("sync engine", "the sync engine"),
        ] {
            let Some(own) = time(mine) else { continue };
            for peer in [
                "LangChain ConfluenceLoader, default",
                "LangChain ConfluenceLoader, restriction check off",
                "LlamaIndex ConfluenceReader, default",
            ] {
                if let Some(t) = time(peer) {
                    println!(
                        "{}: {peer} took {:.1}x the time of {label}",
                        flavor_name(flavor),
                        t / own
                    );
                }
            }
        }
    }
}

/// The many-spaces table.
fn print_many(m: &ManyRun, space_pages: usize) {
    println!();
    println!(
        "| spaces (Cloud, {space_pages} pages each) | items | time to all Synced | requests | idle RSS | peak RSS | idle CPU ({}s) |",
        m.idle_secs
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {} | {:.1} s | {} | {} MiB | {} MiB | {:.2} % |",
        m.spaces,
        m.items,
        m.seconds,
        m.requests,
        m.idle_rss_kib / 1024,
        m.peak_rss_kib / 1024,
        m.idle_cpu_percent
    );
}
