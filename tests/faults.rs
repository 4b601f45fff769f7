//! Fault matrix, control-plane part: the API server and etcd are
//! really killed and restarted (`hack/testenv/restart`), etcd is really
//! compacted (`hack/testenv/compact`), while the operator's controllers keep
//! running in-process against the simulator with the embedded store.
//!
//! Each test appends one row (fault | what must hold | observed | pass/fail |
//! figures) to `target/faults/table.tsv` (or `$FAULTS_TABLE`), which
//! `hack/faults` prints. The quick ones run with the normal tests; the
//! `#[ignore]`d ones only in `hack/faults` (`--include-ignored`).
//!
//! The tests restart the shared control plane, so they take a lock and run one
//! at a time; cargo runs test binaries one after the other, so no other test
//! binary sees the outages.

mod fault_table;
mod harness;
mod support;

use confluence_operator::api::space::{SyncPhase, SyncResult};
use confluence_operator::model::SpaceScope;
use confluence_operator::store::Store;
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_sim::{FaultConfig, SimConfig, Simulator};
use fault_table::Outcome;
use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The simulator's endpoint a sync lists the space's content with: one
/// request per sync while the space fits in one listing page (it does here).
const LISTING: &str = "GET /wiki/rest/api/content";
const SPACE: &str = "eng";
const KEY: &str = "ENG";
/// How long the tests watch for extra syncs after the fault is over.
const QUIET: Duration = Duration::from_secs(8);

/// One fault at a time: they take the shared control plane away.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One control-plane fault at a time: they take the shared control plane away.
async fn run_fault<F>(fault: &str, must_hold: &str, scenario: F)
where
    F: Future<Output = Outcome> + Send + 'static,
{
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(fault, must_hold, scenario).await;
}

struct Setup {
    sim: Simulator,
    op: harness::Operator,
    store: Arc<EmbeddedStore>,
    _dir: tempfile::TempDir,
}

async fn setup(prefix: &str, pages: usize, faults: FaultConfig) -> Setup {
    // `RUST_LOG=kube_runtime=debug,confluence_operator=debug` shows how the
    // controllers ride out a fault (cargo shows it for failed tests).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages,
        blogposts: 0,
        user: "operator@example.com".into(),
        token: "test-token-123".into(),
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("index")).unwrap());
    let op = harness::start(
        prefix,
        Arc::new(confluence_operator::controller::ClientFactory),
        vec![store.clone() as Arc<dyn Store>],
    )
    .await;
    op.create_secret("creds").await;
    op.create_site("wiki", sim.cloud_site_url().as_str(), "creds")
        .await;
    op.create_space(SPACE, "wiki", KEY, json!({"visibility": "Everyone"}))
        .await;
    op.wait_ready(SPACE).await;
    Setup {
        sim,
        op,
        store,
        _dir: dir,
    }
}

impl Setup {
    fn syncs(&self) -> u64 {
        self.sim.stats().get(LISTING)
    }

    /// Sets the resync annotation, retrying while the API server is away.
    async fn request_resync(&self, value: &str) -> Result<(), String> {
        let patch = Patch::Merge(
            json!({"metadata": {"annotations": {"confluence-operator.io/requestedAt": value}}}),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self
                .op
                .spaces()
                .patch(SPACE, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("annotate: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Waits until the space reports the resync `value` handled and synced.
    async fn wait_resync(&self, value: &str) -> Result<SyncResult, String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = String::from("never read");
        while Instant::now() < deadline {
            match self.op.spaces().get(SPACE).await {
                Ok(s) => {
                    let st = s.status.unwrap_or_default();
                    if st.last_handled_resync_at.as_deref() == Some(value)
                        && st.phase == Some(SyncPhase::Synced)
                        && let Some(r) = st.last_sync_result.clone()
                    {
                        return Ok(r);
                    }
                    last = format!(
                        "phase {:?}, handled {:?}",
                        st.phase, st.last_handled_resync_at
                    );
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("resync {value} not handled within 90s ({last})"))
    }

    /// Ids and versions of what Confluence lists against what the store holds;
    /// `None` when they are equal.
    async fn store_diff(&self) -> Option<String> {
        let listed: BTreeMap<String, u64> = self
            .sim
            .pages(KEY)
            .into_iter()
            .filter(|p| p.status == confluence_sim::Status::Current && !p.restricted)
            .map(|p| (p.id.to_string(), p.version))
            .collect();
        let stored: BTreeMap<String, u64> = match self
            .store
            .versions(&SpaceScope::new(&self.op.namespace, SPACE))
            .await
        {
            Ok(v) => v.into_iter().collect(),
            Err(e) => return Some(format!("store unreadable: {e}")),
        };
        if listed == stored {
            return None;
        }
        let missing = listed
            .iter()
            .filter(|(id, v)| stored.get(*id) != Some(v))
            .count();
        let extra = stored.keys().filter(|id| !listed.contains_key(*id)).count();
        Some(format!(
            "store differs from Confluence: {missing} missing or stale, {extra} orphans"
        ))
    }

    /// Changes Confluence (edit, delete, create) so the next sync has work.
    fn change_confluence(&self, tag: &str) -> Result<(), String> {
        let pages = self.sim.pages(KEY);
        let leaf = pages
            .iter()
            .rev()
            .find(|p| !pages.iter().any(|c| c.parent_id == Some(p.id)))
            .map(|p| p.id)
            .ok_or("no leaf page")?;
        self.sim
            .edit_page(pages[0].id, &format!("<p>edited during {tag}</p>"))
            .map_err(|e| e.to_string())?;
        self.sim.delete_page(leaf).map_err(|e| e.to_string())?;
        self.sim
            .create_page(KEY, &format!("Written during {tag}"), None, "<p>new</p>")
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// `hack/testenv/<script> <args>`; returns its wall time.
async fn testenv(script: &str, args: &[&str]) -> Result<Duration, String> {
    let path = support::repo_root().join("hack/testenv").join(script);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&path)
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("run {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} failed with {}", out.status));
    }
    Ok(started.elapsed())
}

/// The common shape: steady state, `fault` (which returns the outage's
/// length and notes), Confluence changed meanwhile, then a resync annotation;
/// it must be honoured once, with no extra syncs, and the store must equal
/// what Confluence lists.
/// `max_syncs` counts every sync from the fault on (a sync the fault
/// interrupted included); `expect_changes` says the closing resync must be the
/// one that picks up the changes made during the fault.
async fn control_plane_fault<F, Fut>(
    prefix: &str,
    setup: Setup,
    max_syncs: u64,
    expect_changes: bool,
    fault: F,
) -> Outcome
where
    F: FnOnce(Arc<Setup>) -> Fut,
    Fut: Future<Output = Result<(Duration, String), String>>,
{
    let s = Arc::new(setup);
    let mut o = Outcome {
        observed: String::new(),
        figures: String::new(),
        failures: Vec::new(),
    };
    let before = s.syncs();
    let (outage, notes) = match fault(s.clone()).await {
        Ok(v) => v,
        Err(e) => {
            o.check(false, format!("fault injection: {e}"));
            return o;
        }
    };
    let back = Instant::now();
    let value = format!("{prefix}-after-outage");
    if let Err(e) = s.request_resync(&value).await {
        o.check(false, e);
        return o;
    }
    let result = s.wait_resync(&value).await;
    let recovered = back.elapsed();
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            o.check(false, e);
            o.figures = format!("outage {:.1}s", outage.as_secs_f64());
            return o;
        }
    };
    let handled = s.syncs() - before;
    tokio::time::sleep(QUIET).await;
    let total = s.syncs() - before;
    o.check(
        !expect_changes || (result.fetched >= 2 && result.deleted >= 1),
        format!("the resync missed the changes made meanwhile: {result:?}"),
    );
    o.check(
        handled >= 1,
        format!(
            "no listing counted for the resync (stats: {:?})",
            s.sim.stats().by_endpoint
        ),
    );
    o.check(
        total <= max_syncs,
        format!("{total} syncs after the fault (a storm)"),
    );
    o.check(
        total == handled,
        format!(
            "{} more syncs after the resync was handled",
            total - handled
        ),
    );
    // the annotation stays handled: no re-run on later reconciles
    if let Ok(sp) = s.op.spaces().get(SPACE).await {
        let st = sp.status.unwrap_or_default();
        o.check(
            st.last_handled_resync_at.as_deref() == Some(value.as_str()),
            "the handled resync was forgotten",
        );
    }
    o.check(
        s.op.is_running(),
        "the controllers stopped (the operator would have been restarted)",
    );
    if let Some(diff) = s.store_diff().await {
        o.check(false, diff);
    }
    o.observed = format!(
        "{notes}recovered without restart; resync honoured ({} fetched, {} deleted); {total} sync(s) after the fault; store = Confluence",
        result.fetched, result.deleted
    );
    o.figures = format!(
        "outage {:.1}s, resync done {:.1}s after, syncs {total}",
        outage.as_secs_f64(),
        recovered.as_secs_f64()
    );
    o
}

const MUST_HOLD: &str = "operator recovers without restart; resync annotation written as the API server returns is honoured exactly once; no sync storm; store = Confluence (ids, versions)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the watch expiry test kills the API server too; run by hack/faults"]
async fn kube_apiserver_killed_while_idle() {
    run_fault("kube-apiserver killed (idle), down 3s", MUST_HOLD, async {
        let s = setup("fault-api-idle", 30, FaultConfig::default()).await;
        control_plane_fault("api-idle", s, 1, true, |s| async move {
            s.change_confluence("the API server outage")?;
            let t = testenv("restart", &["--kill", "--down", "3", "kube-apiserver"]).await?;
            Ok((t, String::new()))
        })
        .await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_while_idle() {
    run_fault("etcd killed, down 3s", MUST_HOLD, async {
        let s = setup("fault-etcd", 30, FaultConfig::default()).await;
        control_plane_fault("etcd", s, 1, true, |s| async move {
            s.change_confluence("the etcd outage")?;
            let t = testenv("restart", &["--kill", "--down", "3", "etcd"]).await?;
            Ok((t, String::new()))
        })
        .await
    })
    .await;
}

/// Watches resuming from before the compaction must get `410 Gone`: the
/// test checks that with a watch of its own, then that the operator relisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_expiry_after_compaction() {
    run_fault(
        "watch expiry: etcd compacted, API server restarted (watches resume with 410 Gone)",
        MUST_HOLD,
        async {
            let s = setup("fault-watch", 30, FaultConfig::default()).await;
            control_plane_fault("watch", s, 1, true, |s| async move {
                let old_rv =
                    s.op.spaces()
                        .list_metadata(&ListParams::default())
                        .await
                        .map_err(|e| e.to_string())?
                        .metadata
                        .resource_version
                        .ok_or("no list resourceVersion")?;
                // writes after old_rv, so that old_rv is really compacted away
                s.change_confluence("the watch expiry")?;
                for i in 0..3 {
                    s.op.spaces()
                        .patch(
                            SPACE,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": {"labels": {"bump": i.to_string()}}})),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                testenv("compact", &[]).await?;
                let t = testenv("restart", &["--kill", "--down", "1", "kube-apiserver"]).await?;
                let gone = watch_gone(&s, &old_rv).await?;
                Ok((t, format!("own watch from rv {old_rv}: {gone}; ")))
            })
            .await
        },
    )
    .await;
}

/// Opens a watch at `rv` and reports how the API server refused it.
async fn watch_gone(s: &Setup, rv: &str) -> Result<String, String> {
    let api = s.op.spaces();
    match api.watch(&WatchParams::default().timeout(5), rv).await {
        Err(kube::Error::Api(e)) if e.code == 410 => Ok("410 Gone".into()),
        Err(e) => Err(format!("watch at compacted rv {rv}: {e}")),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match stream.next().await {
                Some(Ok(WatchEvent::Error(e))) if e.code == 410 => Ok("410 Gone".into()),
                other => Err(format!(
                    "a watch at compacted rv {rv} was not refused with 410: {other:?}"
                )),
            }
        }
    }
}

/// The API server killed while a sync runs (the simulator answers slowly so
/// the sync lasts a few seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow; run by hack/faults"]
async fn kube_apiserver_killed_mid_sync() {
    run_fault(
        "kube-apiserver killed in the middle of a sync, down 3s",
        "the interrupted sync finishes or reruns once; then as above",
        async {
            let s = setup("fault-api-sync", 120, FaultConfig::default()).await;
            control_plane_fault("api-sync", s, 3, false, |s| async move {
                s.change_confluence("the mid-sync outage")?;
                s.sim.set_faults(FaultConfig {
                    latency_ms: 150,
                    ..FaultConfig::default()
                });
                let before = s.syncs();
                s.request_resync("mid-sync-start").await?;
                let started = Instant::now();
                while s.syncs() == before {
                    if started.elapsed() > Duration::from_secs(30) {
                        return Err("the sync did not start".into());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let t = testenv("restart", &["--kill", "--down", "3", "kube-apiserver"]).await?;
                s.sim.set_faults(FaultConfig::default());
                Ok((t, "killed after the listing began; ".into()))
            })
            .await
        },
    )
    .await;
}
