//! Fault matrix, operator killed: the real operator binary runs as
//! a child process against the test control plane and the simulator, with the
//! embedded store on a data directory; it gets SIGKILL at a seeded random
//! moment inside a phase of a sync (the simulator's latency widens the
//! phases), the test checks the index it left and what the status claimed,
//! restarts it, and checks the invariant once the restarted operator has
//! synced by itself: the store holds exactly what Confluence lists (ids,
//! versions, audience), with no orphan, duplicate or restricted page.
//!
//! `FAULTS_SEED=<n>` replays a run (the seed is in each table row).
//! `cargo test` runs `operator_killed_quick` and the interrupted purge;
//! `hack/faults` runs all (`--include-ignored`).

mod fault_table;
mod harness;
mod operator_process;
mod support;

use confluence_operator::model::{Audience, SpaceScope};
use confluence_sim::{FaultConfig, Simulator};
use fault_table::Outcome;
use kube::api::{DeleteParams, Patch, PatchParams};
use operator_process::{Cluster, Restartable, Rng};
use serde_json::json;
use std::time::{Duration, Instant};

const SPACE: &str = "eng";
const KEY: &str = "ENG";
const PAGES: usize = 200;
/// A sync lists the space with this request (at its start).
const LISTING: &str = "/spaces/{id}/pages";
/// Bodies of changed pages are fetched in bulk with this one.
const FETCH: &str = "GET /wiki/api/v2/pages";
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
/// Documents per index commit for the operator under test: small, so that a
/// resync of 150 changed pages is several commits and a mid-commit kill lands
/// between two of them (the default of 20,000 would make it one).
const COMMIT_DOCS: &str = "25";

/// The tests share the machine's two cores: one kill loop at a time keeps
/// the timing windows meaningful.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MUST_HOLD: &str = "index opens after every kill (no corruption); status never claims a sync the store does not show; the restarted operator finishes the interrupted work by itself (no annotation, no restart loop); then store = Confluence: ids, versions, audience; no orphan, duplicate or restricted page";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// While the listing request is in flight.
    Listing,
    /// Around the moment the fetched bodies arrive and the first batch is
    /// written.
    FetchToCommit,
    /// While changed pages are written, batch after batch.
    MidCommit,
    /// After the space was deleted, while the finalizer purges the store.
    Purge,
    /// While a viewer change is applied to the stored documents.
    ViewerChange,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Listing => "during the listing",
            Phase::FetchToCommit => "between fetch and commit",
            Phase::MidCommit => "mid-commit (while batches are written)",
            Phase::Purge => "during a purge (space deleted)",
            Phase::ViewerChange => "during a viewer change",
        }
    }
}

struct Rig {
    sim: Simulator,
    cluster: Cluster,
    dir: tempfile::TempDir,
    op: Restartable,
    rng: Rng,
    seed: u64,
    /// Audience the space currently asks for.
    audience: Audience,
    /// From the fetch request to the first batch committed, and to the end
    /// of the sync, measured once under the same latency (`calibrate`), to
    /// aim kills between fetch and commit and inside the commit phase.
    first_commit: Duration,
    commit_window: Duration,
    calibrated: bool,
}

/// What one kill showed.
struct Kill {
    at: Duration,
    note: String,
    recovery: Duration,
}

impl Rig {
    async fn new(prefix: &str) -> Rig {
        let sim = operator_process::one_space_simulator(PAGES).await;
        let cluster = Cluster::new(prefix).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let op = Restartable::new(
            &cluster.namespace,
            &dir.path().join("data"),
            &["--index-commit-docs", COMMIT_DOCS],
        );
        let (rng, seed) = Rng::from_env();
        let mut rig = Rig {
            sim,
            cluster,
            dir,
            op,
            rng,
            seed,
            audience: Audience::Everyone,
            first_commit: Duration::from_millis(500),
            commit_window: Duration::from_millis(500),
            calibrated: false,
        };
        rig.op.start();
        rig.cluster
            .create_and_sync(&rig.sim, SPACE, KEY, SYNC_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("first sync: {e}\n{}", rig.op.log_tail()));
        rig
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn index_dir(&self) -> std::path::PathBuf {
        self.data_dir().join("index")
    }

    fn scope(&self) -> SpaceScope {
        SpaceScope::new(&self.cluster.namespace, SPACE)
    }

    fn segments(&self) -> Vec<String> {
        vec!["sre".into()]
    }

    fn viewers(&self) -> serde_json::Value {
        match &self.audience {
            Audience::Everyone => json!({"visibility": "Everyone"}),
            Audience::Segments(s) => json!({"visibility": "Segments", "segments": s}),
        }
    }

    fn listings(&self) -> u64 {
        self.sim.stats().matching(LISTING)
    }

    fn fetches(&self) -> u64 {
        self.sim.stats().get(FETCH)
    }

    /// Identity of the index's `meta.json`: every commit replaces it.
    fn commit_mark(&self) -> Option<(u64, i64, i64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(self.index_dir().join("meta.json")).ok()?;
        Some((m.ino(), m.mtime(), m.mtime_nsec()))
    }

    /// Waits until the index commits (its `meta.json` is replaced).
    async fn wait_commit(&self, before: Option<(u64, i64, i64)>) -> Result<Instant, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.commit_mark() == before {
            if Instant::now() > deadline {
                return Err("no commit within 30s".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Instant::now())
    }

    /// Waits until `count` moves past `before`; returns when it did.
    async fn wait_request(
        &self,
        what: &str,
        before: u64,
        count: impl Fn(&Self) -> u64,
    ) -> Result<Instant, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(self) == before {
            if Instant::now() > deadline {
                return Err(format!(
                    "no {what} request within 30s ({:?})",
                    self.sim.stats().by_endpoint
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Instant::now())
    }

    /// With the operator dead: the index opens, and what the status claims is
    /// backed by it. Returns a note on what the index held.
    /// `value`: the resync request the interrupted sync answered (`None` for
    /// a spec change).
    async fn check_after_kill(
        &self,
        o: &mut Outcome,
        edited: &[String],
        value: Option<&str>,
    ) -> String {
        let space = self.cluster.space(SPACE).await.ok().flatten();
        let status = space
            .as_ref()
            .and_then(|s| s.status.clone())
            .unwrap_or_default();
        let generation = space.as_ref().and_then(|s| s.metadata.generation);
        let store = match operator_process::open_index(&self.index_dir()).await {
            Ok(s) => s,
            Err(e) => {
                o.check(false, format!("after SIGKILL: {e}"));
                return String::new();
            }
        };
        let held = match operator_process::held(&store, &self.scope(), &self.segments()).await {
            Ok(h) => h,
            Err(e) => {
                o.check(false, format!("after SIGKILL: {e}"));
                return String::new();
            }
        };
        // Synced for this very request (or spec generation): the sync the
        // kill interrupted claims to be done, so the store must show it.
        let claims_done = status.phase == Some(confluence_operator::api::space::SyncPhase::Synced)
            && match value {
                Some(v) => status.last_handled_resync_at.as_deref() == Some(v),
                None => status.observed_generation == generation,
            };
        // otherwise it must show this sync in progress
        let in_progress = status.phase == Some(confluence_operator::api::space::SyncPhase::Syncing)
            && match value {
                Some(v) => status.last_handled_resync_at.as_deref() == Some(v),
                None => status.observed_generation == generation,
            };
        if !claims_done && !in_progress {
            o.check(
                false,
                format!(
                    "at the kill the status showed neither this sync in progress nor done: phase {:?}, handled {:?}",
                    status.phase, status.last_handled_resync_at
                ),
            );
        }
        if claims_done
            && let Some(d) = operator_process::diff(&self.sim, KEY, &held, &self.audience)
        {
            // Synced is only written after the store has everything; the only
            // honest exception is a request Confluence answered before the
            // change (not the case here: changes precede every kill).
            o.check(false, format!("status said Synced while the {d}"));
        }
        let listed = operator_process::listed(&self.sim, KEY);
        let fresh = edited
            .iter()
            .filter(|id| {
                held.versions.contains_key(*id) && held.versions.get(*id) == listed.get(*id)
            })
            .count();
        let audiences: std::collections::BTreeSet<String> =
            held.audiences.values().map(|a| format!("{a:?}")).collect();
        if audiences.len() > 1 {
            o.check(
                false,
                format!("after SIGKILL the audience change was half applied: {audiences:?}"),
            );
        }
        if edited.is_empty() {
            let new = held.audiences.values().all(|a| *a == self.audience);
            return format!(
                "all {} documents with the {} audience",
                held.audiences.len(),
                if new { "new" } else { "previous" }
            );
        }
        format!("{fresh}/{} new versions in the index", edited.len())
    }

    /// Restarts the operator and waits until it has synced by itself.
    async fn recover(&mut self, o: &mut Outcome, value: Option<&str>) -> Duration {
        self.sim.set_faults(FaultConfig::default());
        let t = Instant::now();
        self.op.start();
        if let Err(e) = self.cluster.wait_synced(SPACE, value, SYNC_TIMEOUT).await {
            o.check(
                false,
                format!("after restart: {e}; log: {}", self.op.log_tail()),
            );
        }
        t.elapsed()
    }

    /// Stops the (idle) operator and compares its index with Confluence.
    async fn check_invariant(&mut self, o: &mut Outcome) {
        if let Some(status) = self.op.exited() {
            o.check(false, format!("the operator exited by itself ({status})"));
        }
        self.op.kill();
        match operator_process::open_index(&self.index_dir()).await {
            Ok(store) => {
                match operator_process::held(&store, &self.scope(), &self.segments()).await {
                    Ok(held) => {
                        if let Some(d) =
                            operator_process::diff(&self.sim, KEY, &held, &self.audience)
                        {
                            o.check(false, d);
                        }
                    }
                    Err(e) => o.check(false, e),
                }
            }
            Err(e) => o.check(false, e),
        }
    }

    /// One kill inside a sync phase, then recovery and the invariant.
    async fn kill_in_sync(&mut self, phase: Phase, n: u32, o: &mut Outcome) -> Option<Kill> {
        self.op.ensure_running();
        let tag = format!("kill-{n}");
        let mut value = Some(tag.clone());
        let edits = match phase {
            Phase::Listing => 5,
            Phase::ViewerChange => 0,
            _ => 150,
        };
        let before_edit = operator_process::listed(&self.sim, KEY);
        if let Err(e) = operator_process::change_confluence(&self.sim, KEY, &tag, edits) {
            o.check(false, e);
            return None;
        }
        if phase == Phase::Listing {
            // a page that becomes restricted must leave the store
            let pages = self.sim.pages(KEY);
            if let Some(leaf) = pages.iter().rev().find(|p| {
                !p.restricted
                    && p.status == confluence_sim::Status::Current
                    && !pages.iter().any(|c| c.parent_id == Some(p.id))
            }) {
                let _ = self.sim.set_restricted(leaf.id, true);
            }
        }
        let after = operator_process::listed(&self.sim, KEY);
        let edited: Vec<String> = after
            .iter()
            .filter(|(id, v)| before_edit.get(*id).is_some_and(|old| old != *v))
            .map(|(id, _)| id.clone())
            .collect();
        let latency = match phase {
            Phase::Listing => 600,
            Phase::ViewerChange => 400,
            _ => 300,
        };
        self.sim.set_faults(FaultConfig {
            latency_ms: latency,
            ..FaultConfig::default()
        });
        let listings = self.listings();
        let fetches = self.fetches();
        let committed = self.commit_mark();
        if phase == Phase::ViewerChange {
            self.audience = match self.audience {
                Audience::Everyone => Audience::Segments(self.segments()),
                Audience::Segments(_) => Audience::Everyone,
            };
            value = None;
            // `segments: null` removes the list when going back to Everyone
            let viewers = match &self.audience {
                Audience::Everyone => json!({"visibility": "Everyone", "segments": null}),
                Audience::Segments(s) => json!({"visibility": "Segments", "segments": s}),
            };
            let patch = Patch::Merge(json!({"spec": {"viewers": viewers}}));
            if let Err(e) = self
                .cluster
                .spaces()
                .patch(SPACE, &PatchParams::default(), &patch)
                .await
            {
                o.check(false, format!("viewer change: {e}"));
                return None;
            }
        } else if let Err(e) = self.cluster.request_resync(SPACE, &tag).await {
            o.check(false, e);
            return None;
        }
        let (marker, delay) = match phase {
            Phase::Listing => (
                self.wait_request("listing", listings, Self::listings).await,
                self.rng.millis(0, latency),
            ),
            Phase::ViewerChange => (
                self.wait_request("listing", listings, Self::listings).await,
                // the audience is rewritten (one commit) once the listing
                // and its restriction pass have answered: a few round trips
                self.rng.millis(latency, latency * 6),
            ),
            Phase::FetchToCommit => {
                // after the bodies can have arrived, up to the first commit
                let first = self.first_commit.as_millis() as u64;
                (
                    self.wait_request("fetch", fetches, Self::fetches).await,
                    self.rng.millis(latency, first.max(latency + 10) + 10),
                )
            }
            Phase::MidCommit => {
                // once the first batch is in, anywhere until the last
                let window = self.commit_window.saturating_sub(self.first_commit);
                let marker = match self.wait_request("fetch", fetches, Self::fetches).await {
                    Ok(_) => self.wait_commit(committed).await,
                    Err(e) => Err(e),
                };
                (
                    marker,
                    self.rng.millis(0, (window.as_millis() as u64).max(20)),
                )
            }
            Phase::Purge => unreachable!("purges are killed by kill_in_purge"),
        };
        let marker = match marker {
            Ok(m) => m,
            Err(e) => {
                o.check(false, e);
                return None;
            }
        };
        tokio::time::sleep_until((marker + delay).into()).await;
        self.op.kill();
        let at = marker.elapsed();
        let note = self.check_after_kill(o, &edited, value.as_deref()).await;
        let recovery = self.recover(o, value.as_deref()).await;
        self.check_invariant(o).await;
        Some(Kill { at, note, recovery })
    }

    /// Kill after a random delay once the space was deleted; the object must
    /// keep its finalizer until the store is purged, then go.
    async fn kill_in_purge(&mut self, n: u32, o: &mut Outcome) -> Option<Kill> {
        self.op.ensure_running();
        let delay = self.rng.millis(0, 150);
        if let Err(e) = self
            .cluster
            .spaces()
            .delete(SPACE, &DeleteParams::default())
            .await
        {
            o.check(false, format!("delete: {e}"));
            return None;
        }
        let marker = Instant::now();
        tokio::time::sleep(delay).await;
        self.op.kill();
        let gone_at_kill = matches!(self.cluster.space(SPACE).await, Ok(None));
        let store = match operator_process::open_index(&self.index_dir()).await {
            Ok(s) => s,
            Err(e) => {
                o.check(false, e);
                return None;
            }
        };
        let left = confluence_operator::store::Store::count(&store, &self.scope())
            .await
            .unwrap_or(u64::MAX);
        drop(store);
        if gone_at_kill && left > 0 {
            o.check(
                false,
                format!("the object was gone while {left} documents were still stored"),
            );
        }
        let note = format!(
            "{} at kill",
            if gone_at_kill {
                "purged and gone".to_string()
            } else {
                format!("Terminating, {left} documents left")
            }
        );
        let t = Instant::now();
        self.op.start();
        if let Err(e) = self.cluster.wait_gone(SPACE, SYNC_TIMEOUT).await {
            o.check(false, format!("after restart the space did not go: {e}"));
        }
        let recovery = t.elapsed();
        self.op.kill();
        match operator_process::open_index(&self.index_dir()).await {
            Ok(store) => {
                let left = confluence_operator::store::Store::count(&store, &self.scope()).await;
                if !matches!(left, Ok(0)) {
                    o.check(
                        false,
                        format!("after the purge the store still holds {left:?} documents"),
                    );
                }
            }
            Err(e) => o.check(false, e),
        }
        self.recreate(o, n).await;
        Some(Kill {
            at: marker.elapsed().min(delay + Duration::from_millis(50)),
            note,
            recovery,
        })
    }

    /// The space again, for the next iteration.
    async fn recreate(&mut self, o: &mut Outcome, n: u32) {
        self.op.start();
        let cs = json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
            "metadata": {"name": SPACE},
            "spec": {"siteRef": {"name": "wiki"}, "spaceKey": KEY, "viewers": self.viewers()}
        });
        let space = serde_json::from_value(cs).expect("space");
        if let Err(e) = self
            .cluster
            .spaces()
            .create(&Default::default(), &space)
            .await
        {
            o.check(false, format!("recreate space ({n}): {e}"));
            return;
        }
        if let Err(e) = self.cluster.wait_synced(SPACE, None, SYNC_TIMEOUT).await {
            o.check(false, format!("recreated space ({n}): {e}"));
        }
    }

    /// Times a write of changed pages under the kill loops' latency: fetch
    /// request to the first and to the last commit.
    async fn calibrate(&mut self, o: &mut Outcome) {
        if let Err(e) = operator_process::change_confluence(&self.sim, KEY, "calibration", 150) {
            o.check(false, e);
            return;
        }
        self.sim.set_faults(FaultConfig {
            latency_ms: 300,
            ..FaultConfig::default()
        });
        let fetches = self.fetches();
        let committed = self.commit_mark();
        if let Err(e) = self.cluster.request_resync(SPACE, "calibration").await {
            o.check(false, e);
            return;
        }
        if let Ok(t) = self.wait_request("fetch", fetches, Self::fetches).await {
            // every commit until the space reports Synced
            let mut mark = committed;
            let mut commits = Vec::new();
            let deadline = Instant::now() + SYNC_TIMEOUT;
            while Instant::now() < deadline {
                let now = self.commit_mark();
                if now != mark {
                    commits.push(t.elapsed());
                    mark = now;
                }
                if let Ok(st) = self.cluster.status(SPACE).await
                    && st.phase == Some(confluence_operator::api::space::SyncPhase::Synced)
                    && st.last_handled_resync_at.as_deref() == Some("calibration")
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // the last commit removes the deleted page, after a lookup round
            // trip; the batches of pages are the ones before it
            let last_batch = commits.len().saturating_sub(2);
            if let (Some(first), Some(last)) = (commits.first(), commits.get(last_batch)) {
                self.first_commit = *first;
                self.commit_window = *last;
                self.calibrated = true;
            }
        }
        self.sim.set_faults(FaultConfig::default());
        if let Err(e) = self
            .cluster
            .wait_synced(SPACE, Some("calibration"), SYNC_TIMEOUT)
            .await
        {
            o.check(false, format!("calibration sync: {e}"));
        }
    }
}

/// `phases` in turn, `kills` times; one table row.
async fn kill_loop(prefix: &'static str, fault: String, phases: &'static [Phase], kills: u32) {
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(&fault, MUST_HOLD, async move {
        let mut o = Outcome {
            observed: String::new(),
            figures: String::new(),
            failures: Vec::new(),
        };
        let mut rig = Rig::new(prefix).await;
        if phases
            .iter()
            .any(|p| matches!(p, Phase::MidCommit | Phase::FetchToCommit))
        {
            rig.calibrate(&mut o).await;
        }
        let mut done: Vec<(Phase, Kill)> = Vec::new();
        for n in 0..kills {
            let phase = phases[n as usize % phases.len()];
            let kill = match phase {
                Phase::Purge => rig.kill_in_purge(n, &mut o).await,
                _ => rig.kill_in_sync(phase, n, &mut o).await,
            };
            match kill {
                Some(k) => done.push((phase, k)),
                None => break,
            }
            if !o.failures.is_empty() {
                o.failures
                    .push(format!("at kill {} ({})", n + 1, phase.describe()));
                break;
            }
        }
        rig.op.kill();
        let notes: Vec<String> = done
            .iter()
            .map(|(p, k)| {
                let what = if phases.len() > 1 {
                    format!("{} ", p.describe())
                } else {
                    String::new()
                };
                format!("{what}+{}ms: {}", k.at.as_millis(), k.note)
            })
            .collect();
        let mut rec: Vec<f64> = done.iter().map(|(_, k)| k.recovery.as_secs_f64()).collect();
        rec.sort_by(|a, b| a.total_cmp(b));
        o.observed = format!(
            "{} kills ({}); recovered by itself every time; store = Confluence after each",
            done.len(),
            notes.join("; ")
        );
        o.figures = format!(
            "seed {}, recovery (restart to Synced) median {:.1}s max {:.1}s",
            rig.seed,
            rec.get(rec.len() / 2).copied().unwrap_or(0.0),
            rec.last().copied().unwrap_or(0.0),
        );
        if rig.calibrated {
            o.figures.push_str(&format!(
                "; commits from {} to {} ms after the fetch request",
                rig.first_commit.as_millis(),
                rig.commit_window.as_millis()
            ));
        }
        o
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_quick() {
    kill_loop(
        "kill-quick",
        "operator SIGKILLed at random points: listing, mid-commit, purge (quick, 3 kills)".into(),
        &[Phase::Listing, Phase::MidCommit, Phase::Purge],
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "many iterations; run by hack/faults"]
async fn operator_killed_during_listing() {
    kill_loop(
        "kill-list",
        format!("operator SIGKILLed {} (8 kills)", Phase::Listing.describe()),
        &[Phase::Listing],
        8,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "many iterations; run by hack/faults"]
async fn operator_killed_between_fetch_and_commit() {
    kill_loop(
        "kill-fetch",
        format!(
            "operator SIGKILLed {} (6 kills)",
            Phase::FetchToCommit.describe()
        ),
        &[Phase::FetchToCommit],
        6,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "many iterations; run by hack/faults"]
async fn operator_killed_mid_commit() {
    kill_loop(
        "kill-commit",
        format!(
            "operator SIGKILLed {} (8 kills)",
            Phase::MidCommit.describe()
        ),
        &[Phase::MidCommit],
        8,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "many iterations; run by hack/faults"]
async fn operator_killed_during_purge() {
    kill_loop(
        "kill-purge",
        format!("operator SIGKILLed {} (6 kills)", Phase::Purge.describe()),
        &[Phase::Purge],
        6,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "many iterations; run by hack/faults"]
async fn operator_killed_during_viewer_change() {
    kill_loop(
        "kill-viewers",
        format!(
            "operator SIGKILLed {} (6 kills)",
            Phase::ViewerChange.describe()
        ),
        &[Phase::ViewerChange],
        6,
    )
    .await;
}

/// The space is deleted while no operator runs: it must stay (Terminating,
/// finalizer in place) until an operator has purged the store, then go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_interrupted_space_deleted_while_operator_dead() {
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(
        "space deleted while the operator is dead (SIGKILLed), then restarted",
        "the object keeps its finalizer and its content while no operator runs; the restarted operator purges the store, then the object goes",
        async {
            let mut o = Outcome { observed: String::new(), figures: String::new(), failures: Vec::new() };
            let mut rig = Rig::new("kill-dead-purge").await;
            rig.op.kill();
            if let Err(e) = rig.cluster.spaces().delete(SPACE, &DeleteParams::default()).await {
                o.check(false, format!("delete: {e}"));
                return o;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            let waiting = match rig.cluster.space(SPACE).await {
                Ok(Some(s)) => {
                    let held = s.metadata.finalizers.clone().unwrap_or_default();
                    o.check(
                        s.metadata.deletion_timestamp.is_some() && held.iter().any(|f| f == confluence_operator::api::SPACE_FINALIZER),
                        format!("deleted space without its finalizer: {}", operator_process::describe(&s)),
                    );
                    true
                }
                Ok(None) => {
                    o.check(false, "the space went while no operator could purge its content");
                    false
                }
                Err(e) => {
                    o.check(false, e);
                    false
                }
            };
            let stored = match operator_process::open_index(&rig.index_dir()).await {
                Ok(store) => confluence_operator::store::Store::count(&store, &rig.scope()).await.unwrap_or(0),
                Err(e) => {
                    o.check(false, e);
                    0
                }
            };
            let t = Instant::now();
            rig.op.start();
            if let Err(e) = rig.cluster.wait_gone(SPACE, SYNC_TIMEOUT).await {
                o.check(false, format!("after the restart: {e}; log: {}", rig.op.log_tail()));
            }
            let took = t.elapsed();
            rig.op.kill();
            match operator_process::open_index(&rig.index_dir()).await {
                Ok(store) => {
                    let left = confluence_operator::store::Store::count(&store, &rig.scope()).await;
                    o.check(matches!(left, Ok(0)), format!("{left:?} documents left after the purge"));
                }
                Err(e) => o.check(false, e),
            }
            o.observed = format!(
                "while dead: {} with {stored} documents; after restart: purged (0 left), object gone",
                if waiting { "Terminating with finalizer" } else { "gone" }
            );
            o.figures = format!("restart to gone {:.1}s", took.as_secs_f64());
            o
        },
    )
    .await;
}
