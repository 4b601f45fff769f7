//! Full sync of a 10k-page space at 50 ms simulated RTT, then a no-change
//! resync, for both flavors. Run with `cargo bench --bench confluence_sync`.
//! Set `BENCH_PAGES` / `BENCH_RTT_MS` to change the size or latency.

mod bench_env;
#[path = "../tests/proc_status/mod.rs"]
mod proc_status;
#[path = "../tests/sim_site/mod.rs"]
mod sim_site;

use bench_env::number;
use confluence_operator::confluence::{ConfluenceApi, Flavor, ListOptions, connect};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{DEFAULT_BATCH_SIZE, SyncRequest, sync_space};
use confluence_sim::{FaultConfig, SimConfig, Simulator, Stats};
use proc_status::Process;
use std::sync::Arc;
use std::time::Instant;

fn print_stats(stats: &Stats) {
    for (endpoint, n) in &stats.by_endpoint {
        println!("    {n:>6}  {endpoint}");
    }
    println!("    {:>6}  total", stats.total);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pages: usize = number("BENCH_PAGES", 10_000);
    let rtt: u64 = number("BENCH_RTT_MS", 50);
    // Peak RSS is per process, so each flavor runs in a child process.
    let flavor = match std::env::var("BENCH_FLAVOR").as_deref() {
        Ok("cloud") => Flavor::Cloud,
        Ok("datacenter") => Flavor::DataCenter,
        _ => {
            let exe = std::env::current_exe()?;
            for name in ["cloud", "datacenter"] {
                let status = std::process::Command::new(&exe)
                    .env("BENCH_FLAVOR", name)
                    .status()?;
                if !status.success() {
                    return Err(format!("{name} run failed: {status}").into());
                }
            }
            return Ok(());
        }
    };
    {
        let sim = Simulator::start(SimConfig {
            spaces: 1,
            pages,
            blogposts: 0,
            faults: FaultConfig {
                latency_ms: rtt,
                ..FaultConfig::default()
            },
            ..SimConfig::default()
        })
        .await?;
        let config = sim_site::site_config(&sim, flavor);
        let client: Arc<dyn ConfluenceApi> = connect(config)?;
        let store = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![store.clone()];
        let space = client.space("ENG").await?;
        let req = SyncRequest {
            scope: SpaceScope::new("bench", "eng"),
            site_url: sim.base_url(),
            space: space.into(),
            audience: Audience::Everyone,
            options: ListOptions::default(),
            batch_size: DEFAULT_BATCH_SIZE,
        };
        let rss_before = proc_status::kib(Process::Own, "VmRSS:");
        sim.reset_stats();

        let started = Instant::now();
        let report = sync_space(client.as_ref(), &stores, &req).await?;
        let full = started.elapsed();
        let full_stats = sim.stats();

        sim.reset_stats();
        let started = Instant::now();
        let again = sync_space(client.as_ref(), &stores, &req).await?;
        let resync = started.elapsed();
        let resync_stats = sim.stats();

        println!("== {flavor:?}: {pages} pages, {rtt} ms RTT, batch {DEFAULT_BATCH_SIZE}");
        println!(
            "  full sync:   {:.2} s, {} items, {} fetched",
            full.as_secs_f64(),
            report.items,
            report.fetched
        );
        print_stats(&full_stats);
        println!(
            "  no-change resync: {:.2} s, {} fetched, {} unchanged",
            resync.as_secs_f64(),
            again.fetched,
            again.unchanged
        );
        print_stats(&resync_stats);
        println!(
            "  RSS before sync {} MiB (in-process simulator content included), peak RSS (VmHWM) {} MiB",
            rss_before / 1024,
            proc_status::kib(Process::Own, "VmHWM:") / 1024
        );
        sim.shutdown().await;
    }
    Ok(())
}
