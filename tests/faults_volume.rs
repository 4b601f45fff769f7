//! Fault matrix, index volume: the operator binary runs with its
//! data directory on a real filesystem that the test fills up (a small tmpfs,
//! so root is needed) or whose index files it damages while the operator is
//! stopped. The operator must say what is wrong (a `StoreFailed` condition, an
//! `IndexRebuilt` Event), never crash-loop, never serve a damaged index, and
//! come back to the invariant: the store holds exactly what Confluence lists.

mod common;
mod fault_table;
mod harness;
mod operator_process;
mod support;

use confluence_operator::api::space::SyncPhase;
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::embedded::{damaged_copy_path, other_schema_copy_path};
use confluence_sim::Simulator;
use fault_table::Outcome;
use operator_process::{Cluster, Restartable, Rng};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SPACE: &str = "eng";
const KEY: &str = "ENG";
const TIMEOUT: Duration = Duration::from_secs(120);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn outcome() -> Outcome {
    Outcome {
        observed: String::new(),
        figures: String::new(),
        failures: Vec::new(),
    }
}

struct Rig {
    sim: Simulator,
    cluster: Cluster,
    data: PathBuf,
    op: Restartable,
}

impl Rig {
    async fn new(prefix: &str, data: PathBuf, pages: usize) -> Rig {
        Self::new_with(prefix, data, pages, &[]).await
    }

    /// [`Rig::new`] with more arguments for the operator.
    async fn new_with(prefix: &str, data: PathBuf, pages: usize, extra: &[&str]) -> Rig {
        let sim = operator_process::one_space_simulator(pages).await;
        let cluster = Cluster::new(prefix).await;
        let op = Restartable::new(&cluster.namespace, &data, extra);
        let mut rig = Rig {
            sim,
            cluster,
            data,
            op,
        };
        rig.op.start();
        rig.cluster
            .create_and_sync(&rig.sim, SPACE, KEY, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("first sync: {e}\n{}", rig.op.log_tail()));
        rig
    }

    fn index_dir(&self) -> PathBuf {
        self.data.join("index")
    }

    fn scope(&self) -> SpaceScope {
        SpaceScope::new(&self.cluster.namespace, SPACE)
    }

    /// Waits for a Warning Event `IndexRebuilt` whose note contains `why`,
    /// not among `seen`, and for the rebuilding sync to have run (not only
    /// the old status); the event.
    async fn wait_rebuilt(&self, why: &str, seen: &[String]) -> Option<(String, String, String)> {
        let deadline = Instant::now() + TIMEOUT;
        let mut event = None;
        while Instant::now() < deadline {
            event = self
                .cluster
                .events(SPACE)
                .await
                .into_iter()
                .find(|(t, r, n)| {
                    t == "Warning" && r == "IndexRebuilt" && n.contains(why) && !seen.contains(n)
                });
            if event.is_some() && self.op.log().contains("sync finished") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        event
    }

    /// Kills the operator and compares the index with Confluence.
    async fn check_invariant(&mut self, o: &mut Outcome) {
        self.op.kill();
        match operator_process::open_index(&self.index_dir()).await {
            Ok(store) => match operator_process::held(&store, &self.scope(), &[]).await {
                Ok(held) => {
                    if let Some(d) =
                        operator_process::diff(&self.sim, KEY, &held, &Audience::Everyone)
                    {
                        o.check(false, d);
                    }
                }
                Err(e) => o.check(false, e),
            },
            Err(e) => o.check(false, e),
        }
    }
}

/// A tmpfs of `mib` MiB at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mib: u32) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> Result<u64, String> {
    let mut f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(format!("fill: {e}")),
        }
    }
    // smaller writes take the last partial blocks
    let small = [0x5au8; 512];
    while let Ok(n) = f.write(&small) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = f.sync_all();
    Ok(written)
}

fn change_pages(sim: &Simulator, tag: &str) -> Result<(), String> {
    operator_process::change_confluence(sim, KEY, tag, 100)?;
    // a few large pages, so the next commit needs real space
    let big = format!("<p>{}</p>", "runbook step deploy rollback ".repeat(2000));
    for i in 0..5 {
        sim.create_page(KEY, &format!("Large page {tag} {i}"), None, &big)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_volume_full() {
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(
        "index volume full (16 MiB tmpfs filled up during a sync)",
        "sync fails with Ready=False reason StoreFailed and a clear message without secrets; the operator keeps running and keeps serving the old content; the index is not corrupted (opens, holds the last synced content) and a restart while full does not crash-loop; after space is freed it recovers by itself without restart; then store = Confluence",
        async {
            let mut o = outcome();
            let dir = tempfile::tempdir().expect("tempdir");
            let mnt = dir.path().join("data");
            let _tmpfs = match Tmpfs::mount(&mnt, 16) {
                Ok(t) => t,
                Err(e) => {
                    o.check(false, e);
                    return o;
                }
            };
            let mut rig = Rig::new("vol-full", mnt.clone(), 200).await;
            let before = operator_process::listed(&rig.sim, KEY);
            let filler = mnt.join("filler");
            let filled = match fill(&filler) {
                Ok(n) => n,
                Err(e) => {
                    o.check(false, e);
                    return o;
                }
            };
            if let Err(e) = change_pages(&rig.sim, "full") {
                o.check(false, e);
                return o;
            }
            let t_fault = Instant::now();
            if let Err(e) = rig.cluster.request_resync(SPACE, "while-full").await {
                o.check(false, e);
                return o;
            }
            let failed = rig
                .cluster
                .wait_space(SPACE, TIMEOUT, |s| {
                    let st = s.status.clone().unwrap_or_default();
                    let ready = operator_process::ready_condition(s)?;
                    (st.last_handled_resync_at.as_deref() == Some("while-full")
                        && st.phase == Some(SyncPhase::Failed))
                    .then_some(ready)
                })
                .await;
            let (ready, reason, message) = match failed {
                Ok(r) => r,
                Err(e) => {
                    o.check(false, format!("no failure reported while full: {e}; log: {}", rig.op.log_tail()));
                    return o;
                }
            };
            let reported = t_fault.elapsed();
            o.check(ready != "True", format!("Ready={ready} while the volume is full"));
            o.check(reason == "StoreFailed", format!("reason {reason}, not StoreFailed"));
            o.check(
                message.to_lowercase().contains("no space left"),
                format!("the message does not say the volume is full: {message}"),
            );
            o.check(
                !message.contains(operator_process::SECRET_TOKEN),
                "the message contains the secret",
            );
            // still serving the old content
            let title_word = rig
                .sim
                .pages(KEY)
                .first()
                .and_then(|p| p.title.split_whitespace().next().map(str::to_string))
                .unwrap_or_else(|| "page".into());
            let served = match rig.op.process() {
                Some(op) => op.search(&title_word).await,
                None => Err("no operator".into()),
            };
            let hits = served
                .as_ref()
                .ok()
                .and_then(|v| v["hits"].as_array().map(Vec::len))
                .unwrap_or(0);
            o.check(hits > 0, format!("search while full: {served:?}"));
            o.check(rig.op.alive(), "the operator exited while the volume was full");

            // killed while full: the index is intact, and a restart does not loop
            rig.op.kill();
            match operator_process::open_index(&rig.index_dir()).await {
                Ok(store) => match operator_process::held(&store, &rig.scope(), &[]).await {
                    Ok(held) => o.check(
                        held.versions == before,
                        format!(
                            "while full the index holds {} items, not the {} last synced",
                            held.versions.len(),
                            before.len()
                        ),
                    ),
                    Err(e) => o.check(false, format!("index while full: {e}")),
                },
                Err(e) => o.check(false, format!("index while full: {e}")),
            }
            rig.op.start();
            tokio::time::sleep(Duration::from_secs(8)).await;
            o.check(
                rig.op.alive(),
                format!("restarted while full, the operator exited: {}", rig.op.log_tail()),
            );
            let still = rig.cluster.status(SPACE).await.unwrap_or_default();
            o.check(
                still.phase != Some(SyncPhase::Synced),
                "status says Synced while the volume is still full",
            );

            // space freed: recovery without a restart
            let _ = std::fs::remove_file(&filler);
            let t_free = Instant::now();
            if let Err(e) = rig.cluster.wait_synced(SPACE, Some("while-full"), TIMEOUT).await {
                o.check(false, format!("no recovery after freeing space: {e}; log: {}", rig.op.log_tail()));
            }
            let recovered = t_free.elapsed();
            o.check(rig.op.alive(), "the operator exited during recovery");
            rig.check_invariant(&mut o).await;
            o.observed = format!(
                "Ready={ready} {reason}: \"{message}\"; old content still served ({hits} hits); index intact and restart while full stayed up; recovered after freeing space without restart; store = Confluence"
            );
            o.figures = format!(
                "filler {} KiB, failure reported {:.1}s after the resync request, recovery {:.1}s after freeing",
                filled / 1024,
                reported.as_secs_f64(),
                recovered.as_secs_f64()
            );
            o
        },
    )
    .await;
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The largest segment file cut to half its length.
    Truncate,
    /// Bytes in the middle of the largest segment file overwritten.
    Overwrite,
    /// `meta.json` replaced by garbage.
    Meta,
}

/// Damages the index in `dir`; returns what was done.
fn damage(dir: &Path, how: Damage, rng: &mut Rng) -> Result<String, String> {
    if let Damage::Meta = how {
        std::fs::write(dir.join("meta.json"), b"{\"segments\": [tru").map_err(|e| e.to_string())?;
        return Ok("meta.json overwritten with garbage".into());
    }
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".json") && !name.ends_with(".lock")
        })
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (m.len(), p)))
        .collect();
    files.sort();
    let (len, path) = files.pop().ok_or("no segment file")?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    match how {
        Damage::Truncate => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            f.set_len(len / 2).map_err(|e| e.to_string())?;
            Ok(format!("{name} truncated from {len} to {} bytes", len / 2))
        }
        Damage::Overwrite => {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            let at = len / 4 + rng.next() % (len / 2).max(1);
            f.write_all_at(&[0xA5; 64], at).map_err(|e| e.to_string())?;
            Ok(format!(
                "{name}: 64 bytes overwritten at offset {at} of {len}"
            ))
        }
        Damage::Meta => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_index_is_rebuilt() {
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(
        "index files damaged while the operator is stopped (segment truncated, segment bytes overwritten, meta.json garbage)",
        "detected at start; the damaged index is moved aside, never served; a Warning Event IndexRebuilt on the space; the operator stays up (no crash loop) and rebuilds from Confluence; a clean restart rebuilds nothing; then store = Confluence",
        async {
            let mut o = outcome();
            let (mut rng, seed) = Rng::from_env();
            let dir = tempfile::tempdir().expect("tempdir");
            let mut rig = Rig::new("vol-damaged", dir.path().join("data"), 150).await;
            let mut notes = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            let mut took = Vec::new();
            for how in [Damage::Truncate, Damage::Overwrite, Damage::Meta] {
                rig.op.kill();
                let what = match damage(&rig.index_dir(), how, &mut rng) {
                    Ok(w) => w,
                    Err(e) => {
                        o.check(false, format!("{how:?}: {e}"));
                        break;
                    }
                };
                let t = Instant::now();
                rig.op.start();
                let rebuilt_event = rig.wait_rebuilt("damaged", &seen).await;
                took.push(t.elapsed());
                let log = rig.op.log();
                o.check(
                    log.contains("embedded index was damaged"),
                    format!("{how:?}: the damage was not detected at start: {}", rig.op.log_tail()),
                );
                o.check(
                    rebuilt_event.is_some(),
                    format!("{how:?}: no Warning Event IndexRebuilt"),
                );
                o.check(
                    damaged_copy_path(&rig.index_dir()).exists(),
                    format!("{how:?}: the damaged index was not kept aside"),
                );
                o.check(rig.op.alive(), format!("{how:?}: the operator exited: {}", rig.op.log_tail()));
                if let Err(e) = rig.cluster.wait_synced(SPACE, None, TIMEOUT).await {
                    o.check(false, format!("{how:?} after rebuild: {e}"));
                }
                rig.check_invariant(&mut o).await;
                if let Some((_, _, note)) = &rebuilt_event {
                    seen.push(note.clone());
                    // the reason only: the note also names the test's temp dir
                    let reason = note
                        .split_once("damaged (")
                        .and_then(|(_, r)| r.rsplit_once("); it was moved").map(|(r, _)| r))
                        .unwrap_or(note);
                    let reason: String = reason.chars().take(110).collect();
                    notes.push(format!("{what} → IndexRebuilt ({reason}…)"));
                }
                if !o.failures.is_empty() {
                    break;
                }
            }
            // a clean restart must not rebuild
            rig.op.start();
            tokio::time::sleep(Duration::from_secs(3)).await;
            o.check(
                !rig.op.log().contains("was damaged"),
                "a clean restart rebuilt the index",
            );
            rig.check_invariant(&mut o).await;
            o.observed = format!(
                "{}; the operator stayed up; store = Confluence after each rebuild; clean restart kept the index",
                notes.join("; ")
            );
            let secs: Vec<String> = took.iter().map(|d| format!("{:.1}s", d.as_secs_f64())).collect();
            o.figures = format!("seed {seed}, restart to rebuilt and Synced: {}", secs.join(", "));
            o
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_damaged_while_the_operator_runs() {
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(
        "index segment bytes overwritten while the operator runs (check every 1s)",
        "a healthy index is never flagged; the damage is found by the running operator, which exits (never serving it on) with the reason in its log; its restart moves the index aside, rebuilds it from Confluence with a Warning Event IndexRebuilt, and stays up; then store = Confluence",
        async {
            let mut o = outcome();
            let (mut rng, seed) = Rng::from_env();
            let dir = tempfile::tempdir().expect("tempdir");
            let mut rig = Rig::new_with(
                "vol-running",
                dir.path().join("data"),
                150,
                &["--index-check-interval", "1s"],
            )
            .await;
            // several checks of a healthy index first
            tokio::time::sleep(Duration::from_secs(4)).await;
            o.check(
                rig.op.alive() && !rig.op.log().contains("failed its check"),
                format!("a healthy index was flagged: {}", rig.op.log_tail()),
            );
            // overwritten in place: the running process maps these files
            let what = match damage(&rig.index_dir(), Damage::Overwrite, &mut rng) {
                Ok(w) => w,
                Err(e) => {
                    o.check(false, e);
                    return o;
                }
            };
            let t = Instant::now();
            let exited = rig.op.wait_exit(Duration::from_secs(30)).await;
            let found = t.elapsed();
            let log = rig.op.log();
            o.check(exited, "the running operator did not notice the damage in 30s");
            o.check(
                log.contains("the embedded index is damaged") && log.contains("checksum mismatch"),
                format!("no reason in the log: {}", rig.op.log_tail()),
            );
            // the kubelet's part: start it again
            let restarted = Instant::now();
            rig.op.start();
            let rebuilt_event = rig.wait_rebuilt("damaged", &[]).await;
            let rebuilt_in = restarted.elapsed();
            o.check(rebuilt_event.is_some(), "no Warning Event IndexRebuilt after the restart");
            o.check(
                damaged_copy_path(&rig.index_dir()).exists(),
                "the damaged index was not kept aside",
            );
            if let Err(e) = rig.cluster.wait_synced(SPACE, None, TIMEOUT).await {
                o.check(false, format!("after the rebuild: {e}"));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            o.check(
                rig.op.alive(),
                format!("the restarted operator exited: {}", rig.op.log_tail()),
            );
            rig.check_invariant(&mut o).await;
            o.observed = format!(
                "{what}; the running operator exited {:.1}s later naming the checksum mismatch; restarted, it moved the index aside, rebuilt it (IndexRebuilt) and stayed up; store = Confluence",
                found.as_secs_f64()
            );
            o.figures = format!(
                "seed {seed}, damage found in {:.1}s, restart to rebuilt and Synced {:.1}s",
                found.as_secs_f64(),
                rebuilt_in.as_secs_f64()
            );
            o
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_another_release_is_rebuilt() {
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(
        "the operator starts on an index another release wrote (another schema), as after an upgrade that changes the index",
        "detected at start; the old index is moved aside (index.other-schema, for a rollback), never served; a Warning Event IndexRebuilt on the space; the operator stays up and resyncs the space at once; then store = Confluence; a clean restart rebuilds nothing",
        async {
            let mut o = outcome();
            let dir = tempfile::tempdir().expect("tempdir");
            let mut rig = Rig::new("vol-schema", dir.path().join("data"), 150).await;
            rig.op.kill();
            if let Err(e) = common::write_index_of_another_release(&rig.index_dir()) {
                o.check(false, e);
                return o;
            }
            let t = Instant::now();
            rig.op.start();
            let event = rig.wait_rebuilt("another release", &[]).await;
            let took = t.elapsed();
            o.check(
                rig.op.log().contains("was written by another release"),
                format!("the other schema was not detected at start: {}", rig.op.log_tail()),
            );
            o.check(event.is_some(), "no Warning Event IndexRebuilt");
            o.check(
                other_schema_copy_path(&rig.index_dir()).join("meta.json").exists(),
                "the old index was not kept aside",
            );
            o.check(rig.op.alive(), format!("the operator exited: {}", rig.op.log_tail()));
            if let Err(e) = rig.cluster.wait_synced(SPACE, None, TIMEOUT).await {
                o.check(false, format!("after the rebuild: {e}"));
            }
            rig.check_invariant(&mut o).await;
            rig.op.start();
            tokio::time::sleep(Duration::from_secs(3)).await;
            o.check(
                !rig.op.log().contains("another release"),
                "a clean restart rebuilt the index",
            );
            rig.check_invariant(&mut o).await;
            o.observed = "the old index moved aside, IndexRebuilt on the space, the space resynced at once; store = Confluence; a clean restart kept the index".into();
            o.figures = format!("restart to rebuilt and Synced: {:.1}s", took.as_secs_f64());
            o
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_removed_while_the_operator_runs() {
    let _serial = SERIAL.lock().await;
    fault_table::run_fault(
        "the index directory removed while the operator runs, then a resync with changes",
        "the write fails with an error, never a panic; the operator exits at once (not at the next hourly check) naming the directory; its restart starts an empty index and resyncs the space, whose count no longer matches; then store = Confluence",
        async {
            let mut o = outcome();
            let dir = tempfile::tempdir().expect("tempdir");
            let mut rig = Rig::new("vol-removed", dir.path().join("data"), 150).await;
            if let Err(e) = std::fs::remove_dir_all(rig.index_dir()) {
                o.check(false, format!("cannot remove the index: {e}"));
                return o;
            }
            if let Err(e) = change_pages(&rig.sim, "after-removal") {
                o.check(false, e);
                return o;
            }
            let t = Instant::now();
            if let Err(e) = rig.cluster.request_resync(SPACE, "after-removal").await {
                o.check(false, e);
                return o;
            }
            let exited = rig.op.wait_exit(Duration::from_secs(30)).await;
            let exited_in = t.elapsed();
            let log = rig.op.log();
            o.check(
                exited,
                format!("the operator kept running on a removed index: {}", rig.op.log_tail()),
            );
            o.check(
                log.contains("the embedded index is unusable")
                    && log.contains(&rig.index_dir().display().to_string()),
                format!("no reason in the log: {}", rig.op.log_tail()),
            );
            o.check(!log.contains("panicked"), format!("a panic: {}", rig.op.log_tail()));
            let restarted = Instant::now();
            rig.op.start();
            let resynced = rig
                .cluster
                .wait_synced(SPACE, Some("after-removal"), TIMEOUT)
                .await;
            if let Err(e) = &resynced {
                o.check(false, format!("after the restart: {e}"));
            }
            let resynced_in = restarted.elapsed();
            tokio::time::sleep(Duration::from_secs(2)).await;
            o.check(
                rig.op.alive(),
                format!("the restarted operator exited: {}", rig.op.log_tail()),
            );
            rig.check_invariant(&mut o).await;
            o.observed = "the write failed with an error, the operator exited at once naming the directory; restarted, it started an empty index and resynced the space; store = Confluence".into();
            o.figures = format!(
                "exit {:.1}s after the resync request, restart to Synced {:.1}s",
                exited_in.as_secs_f64(),
                resynced_in.as_secs_f64()
            );
            o
        },
    )
    .await;
}
