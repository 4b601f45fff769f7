//! Fault matrix, load part: concurrent search clients hit
//! the real HTTP search API (`/v1/search`, `--auth none`) while a full sync of
//! one space from the Confluence simulator fills the embedded index behind
//! it. The index already holds the same pages under another space (synced
//! first, without load, for the comparison), so searches run against a
//! populated index from the start. No search may fail; the search latency
//! (p50/p99, measured by the clients, end to end) and the sync's slowdown
//! against the first sync are reported (the second sync also writes into a
//! larger index, so a little of the slowdown is not the load's). The goal for
//! p99 is < 50 ms on the development machine; it is reported, not asserted,
//! since a shared CI machine cannot promise it.
//!
//! The goal is a latency at a stated load: in the full case each of the 50
//! clients searches at most once every 250 ms (200 searches/s in all). The
//! same 50 clients asking again at once measure the API at saturation: there
//! the latency is queueing (clients ÷ searches per second, Little's law) and
//! says how many searches per second the 2 cores give beside the sync.
//!
//! The quick case (5,000 pages, 10 clients, no pause) runs with the normal
//! tests; the full ones (100,000 pages, 50 clients) only in `hack/faults`,
//! which runs this file with `--release`.

mod fault_table;
mod sim_site;

use confluence_operator::confluence::{ClientOptions, ConfluenceApi, Flavor, connect_with};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::server::{AppState, SearchResponse, router};
use confluence_operator::store::Store;
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_operator::sync::{DEFAULT_BATCH_SIZE, SyncReport, SyncRequest, sync_space};
use confluence_sim::{SimConfig, Simulator};
use fault_table::Outcome;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often each of the 50 clients of the full case searches at most: 200
/// searches a second in all, while the sync takes the rest of the 2 cores.
const PACE: Duration = Duration::from_millis(250);

/// What the clients search for: words and topics the simulator writes, so
/// most queries match many pages (the expensive case), plus a few that match
/// nothing.
const QUERIES: &[&str] = &[
    "service",
    "cluster latency",
    "deploy rollback",
    "search index",
    "backup schema",
    "runbook",
    "incident review",
    "dashboard alert owner",
    "migration pipeline",
    "release notes",
    "customer contract policy",
    "cache replica",
    "security policy",
    "nothing-matches-this",
    "troubleshooting queue",
    "api guide token",
];

/// One full sync of the simulator's space, as the space object `name`.
async fn full_sync(
    client: &dyn ConfluenceApi,
    store: Arc<EmbeddedStore>,
    name: &str,
) -> Result<(SyncReport, Duration), String> {
    let space = client
        .space("ENG")
        .await
        .map_err(|e| format!("space: {e}"))?;
    let req = SyncRequest {
        scope: SpaceScope::new("load", name),
        site_url: "http://sim".into(),
        space: space.into(),
        audience: Audience::Everyone,
        options: Default::default(),
        batch_size: DEFAULT_BATCH_SIZE,
    };
    let stores: Vec<Arc<dyn Store>> = vec![store];
    let started = Instant::now();
    let report = sync_space(client, &stores, &req)
        .await
        .map_err(|e| format!("sync: {e}"))?;
    Ok((report, started.elapsed()))
}

/// What the search clients saw.
#[derive(Default)]
struct Searches {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    hits: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// `clients` loops of `GET /v1/search` until `stop` is set. With a `pace`,
/// each client starts a search at most once per `pace` (a user who reads
/// the answer before asking again); without, it asks again at once (the
/// search API at saturation, where latency is queueing: clients ÷ rate).
async fn search_clients(
    base: String,
    clients: usize,
    pace: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> Searches {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(clients)
        .build()
        .expect("http client");
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let http = http.clone();
            let base = base.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut seen = Searches::default();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let q = QUERIES[i % QUERIES.len()];
                    i += 1;
                    let started = Instant::now();
                    let answer = http
                        .get(format!("{base}/v1/search"))
                        .query(&[("q", q), ("limit", "10")])
                        .send()
                        .await;
                    let outcome = match answer {
                        Ok(r) if r.status().is_success() => r
                            .json::<SearchResponse>()
                            .await
                            .map(|body| body.hits.len() as u64)
                            .map_err(|e| format!("bad body: {e}")),
                        Ok(r) => Err(format!("status {}", r.status())),
                        Err(e) => Err(format!("request: {e}")),
                    };
                    seen.latencies.push(started.elapsed());
                    match outcome {
                        Ok(n) => seen.hits += n,
                        Err(e) => {
                            seen.errors += 1;
                            seen.first_error.get_or_insert(e);
                        }
                    }
                    if let Some(pace) = pace {
                        tokio::time::sleep_until((started + pace).into()).await;
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Searches::default();
    for t in tasks {
        match t.await {
            Ok(s) => {
                all.latencies.extend(s.latencies);
                all.errors += s.errors;
                all.hits += s.hits;
                if all.first_error.is_none() {
                    all.first_error = s.first_error;
                }
            }
            Err(e) => {
                all.errors += 1;
                all.first_error.get_or_insert(format!("client task: {e}"));
            }
        }
    }
    all.latencies.sort();
    all
}

async fn load_case(pages: usize, clients: usize, pace: Option<Duration>) {
    let how = match pace {
        Some(p) => format!(", each one search per {} ms at most", p.as_millis()),
        None => ", each asking again at once".to_string(),
    };
    let fault = format!(
        "{clients} concurrent search clients during a full sync of a {pages}-page space{how}"
    );
    fault_table::run_fault(
        &fault,
        "no search fails; the sync completes and the index holds every synced page; search p50/p99 (goal p99 < 50 ms) and the sync's slowdown are reported",
        async move {
            let mut o = Outcome {
                observed: String::new(),
                figures: String::new(),
                failures: vec![],
            };
            let sim = Simulator::start(SimConfig {
                spaces: 1,
                pages,
                blogposts: 0,
                ..SimConfig::default()
            })
            .await
            .expect("simulator starts");
            let client = connect_with(
                sim_site::site_config(&sim, Flavor::Cloud),
                ClientOptions::default(),
            )
            .expect("client");

            // The space synced once without load: the figure to compare
            // with, and the content the searches find from the start.
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
            let (quiet_report, quiet_time) =
                match full_sync(client.as_ref(), store.clone(), "first").await {
                    Ok(r) => r,
                    Err(e) => {
                        o.check(false, format!("sync without load: {e}"));
                        return o;
                    }
                };

            // The search API over that index, then the same space synced
            // again as a second space object, under load.
            let app = router(AppState::standalone(
                store.clone(),
                Arc::new(AtomicBool::new(true)),
            ));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            let stop = Arc::new(AtomicBool::new(false));
            let searching = tokio::spawn(search_clients(base, clients, pace, Arc::clone(&stop)));
            // Clients are searching before the sync starts.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let synced = full_sync(client.as_ref(), store.clone(), "second").await;
            stop.store(true, Ordering::Relaxed);
            let seen = searching.await.expect("search clients");
            server.abort();

            let (report, loaded_time) = match synced {
                Ok(r) => r,
                Err(e) => {
                    o.check(false, format!("sync under load: {e}"));
                    return o;
                }
            };
            let stored = store
                .count(&SpaceScope::new("load", "second"))
                .await
                .unwrap_or(0);
            o.check(
                seen.errors == 0,
                format!(
                    "{} searches failed (first: {})",
                    seen.errors,
                    seen.first_error.clone().unwrap_or_default()
                ),
            );
            o.check(
                report.items == quiet_report.items && report.items > 0,
                format!(
                    "synced {} items under load, {} without",
                    report.items, quiet_report.items
                ),
            );
            o.check(
                stored == report.items,
                format!("index holds {stored} of {} synced pages", report.items),
            );
            o.check(!seen.latencies.is_empty(), "no search completed");
            let (p50, p99) = (
                percentile(&seen.latencies, 0.50),
                percentile(&seen.latencies, 0.99),
            );
            let slowdown = (loaded_time.as_secs_f64() / quiet_time.as_secs_f64() - 1.0) * 100.0;
            o.observed = format!(
                "{} searches, {} errors; sync completed, index holds its {stored} pages (and the first copy's); p99 {} the 50 ms goal",
                seen.latencies.len(),
                seen.errors,
                if p99 < 50.0 { "meets" } else { "misses" }
            );
            o.figures = format!(
                "search p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms ({:.0} searches/s, {:.1} hits each); sync {:.1} s under load vs {:.1} s without ({slowdown:+.0}%), {:.0} pages/s under load",
                percentile(&seen.latencies, 1.0),
                seen.latencies.len() as f64 / loaded_time.as_secs_f64(),
                seen.hits as f64 / seen.latencies.len().max(1) as f64,
                loaded_time.as_secs_f64(),
                quiet_time.as_secs_f64(),
                report.items as f64 / loaded_time.as_secs_f64(),
            );
            println!("{}: {}", o.observed, o.figures);
            o
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_clients_during_a_full_sync() {
    load_case(5_000, 10, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "full size: 100,000 pages, 50 clients; run by hack/faults"]
async fn fifty_search_clients_during_a_full_sync_of_100k_pages() {
    load_case(100_000, 50, Some(PACE)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "full size, at saturation; run by hack/faults"]
async fn fifty_search_clients_at_saturation_during_a_full_sync_of_100k_pages() {
    load_case(100_000, 50, None).await;
}
