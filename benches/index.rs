//! Indexing and search throughput of the embedded store and of OpenSearch,
//! on the same generated corpus in the same run.
//!
//! `cargo bench --bench index` indexes generated pages (100k by default, ten
//! spaces of 10k) into each store the way the sync writes them (`stage` in
//! batches of `BENCH_BATCH`, then `flush`), then times versions() of one
//! space, queries with 0, 1 and 4 segments, and an audience change, and
//! prints the figures side by side. For the embedded store it first indexes
//! the same corpus with one commit per `upsert` call (writes not staged),
//! for comparison.
//! Environment: `BENCH_DOCS` (page count), `BENCH_BATCH` (pages per call,
//! default 50 as in the sync), `BENCH_UPSERT_BATCH` (pages per call of the
//! commit-per-call comparison, default 500; `0` skips it), `BENCH_QUERIES`
//! (queries per mode), `BENCH_WRITER_THREADS`, `BENCH_WRITER_MB`,
//! `BENCH_WRITER_NICE` (the writer threads' nice value; on a machine shared
//! with other work, 0 measures the index rather than the scheduler),
//! `BENCH_COMMIT_MB` and `BENCH_COMMIT_DOCS` (the commit policy's
//! `max_bytes` and `max_docs`), `BENCH_DIR`
//! (index directory to use and keep; a temporary one otherwise),
//! `BENCH_OPENSEARCH` (`0` skips OpenSearch), `OPENSEARCH_URL` (a running
//! node; otherwise `hack/opensearch/up` starts one and leaves it running).
//!
//! With `BENCH_SYNC_SITE` (the Cloud URL of a running simulator, e.g.
//! `http://127.0.0.1:18090/wiki`, started as its own process so that its
//! pages do not count) it instead runs one full sync of space
//! `BENCH_SYNC_SPACE` (default `ENG`) with the operator's sync engine into a
//! fresh embedded index, and prints the time and this process's peak
//! resident memory: what syncing that space costs the operator, without the
//! Kubernetes parts. `SIM_USER`/`SIM_TOKEN` as given to the simulator.
//!
//! The process sets up its allocator as the operator does
//! (`confluence_operator::allocator`); `BENCH_MALLOC=glibc` keeps glibc's
//! defaults, for comparison.

mod bench_env;
#[path = "../tests/opensearch_node/mod.rs"]
mod opensearch_node;
#[path = "../tests/proc_status/mod.rs"]
mod proc_status;

use bench_env::number;
use confluence_operator::model::{Ancestor, Audience, ContentType, Document, Page, SpaceScope};
use confluence_operator::store::embedded::{EmbeddedOptions, EmbeddedStore};
use confluence_operator::store::opensearch::{OpenSearchConfig, OpenSearchStore};
use confluence_operator::store::{Search, Store};
use proc_status::Process;
use std::path::Path;
use std::time::{Duration, Instant};

/// Deterministic xorshift: the same corpus on every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed towards small indexes, like word frequencies in prose.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((u * u * u) * n as f64) as usize
    }
}

const STEMS: &[&str] = &[
    "router",
    "network",
    "deploy",
    "cluster",
    "billing",
    "invoice",
    "account",
    "password",
    "reset",
    "upgrade",
    "install",
    "configure",
    "backup",
    "restore",
    "monitor",
    "alert",
    "database",
    "replica",
    "latency",
    "timeout",
    "certificate",
    "firewall",
    "gateway",
    "proxy",
    "storage",
    "volume",
    "snapshot",
    "quota",
    "license",
    "printer",
    "laptop",
    "vpn",
    "email",
    "calendar",
    "meeting",
    "onboarding",
    "holiday",
    "expense",
    "travel",
    "security",
    "incident",
    "escalation",
    "runbook",
    "release",
    "rollback",
    "pipeline",
    "build",
    "test",
    "review",
    "customer",
    "partner",
    "reseller",
    "pricing",
    "discount",
    "contract",
    "support",
    "ticket",
    "sla",
    "outage",
    "maintenance",
    "migration",
    "kubernetes",
    "operator",
    "confluence",
    "search",
];
const SUFFIXES: &[&str] = &[
    "", "s", "ing", "ed", "er", "ment", "ation", "ly", "al", "ive",
];
const SEGMENT_SPACES: &[&[&str]] = &[
    &[],
    &[],
    &[],
    &["signed-in-users"],
    &["agents-and-admins"],
    &["agents-and-admins"],
    &["partners"],
    &["partners", "resellers"],
    &["tier2"],
    &["agents-and-admins", "tier2"],
];

fn word(rng: &mut Rng) -> String {
    // Rare made-up words give the vocabulary a long tail.
    if rng.below(10) == 0 {
        return format!("term{}", rng.below(50_000));
    }
    let stem = STEMS[rng.skewed(STEMS.len())];
    let suffix = SUFFIXES[rng.below(SUFFIXES.len())];
    format!("{stem}{suffix}")
}

/// Between `min` and `min + spread - 1` words.
fn sentence(rng: &mut Rng, min: usize, spread: usize) -> String {
    let words = min + rng.below(spread);
    (0..words).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
}

fn document(rng: &mut Rng, i: usize) -> Document {
    let space = i % SEGMENT_SPACES.len();
    let audience = match SEGMENT_SPACES[space] {
        [] => Audience::Everyone,
        names => Audience::Segments(names.iter().map(|s| s.to_string()).collect()),
    };
    let title = sentence(rng, 2, 5);
    let paragraphs: Vec<String> = (0..3 + rng.below(5))
        .map(|_| sentence(rng, 30, 50))
        .collect();
    let body_text = paragraphs.join("\n\n");
    let body_markdown = format!("# {title}\n\n{}", paragraphs.join("\n\n"));
    Document {
        scope: SpaceScope::new("bench", format!("space-{space}")),
        site: "https://wiki.example.com".into(),
        space_key: format!("S{space}"),
        space_name: format!("Space {space}"),
        page: Page {
            id: i.to_string(),
            content_type: ContentType::Page,
            title,
            body_markdown,
            body_text,
            url: format!("https://wiki.example.com/pages/{i}"),
            version: 1 + rng.below(20) as u64,
            labels: vec![word(rng), word(rng)],
            ancestors: vec![Ancestor {
                id: "1".into(),
                title: "Home".into(),
            }],
            updated_at: None,
        },
        audience,
    }
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn time_queries<S: Search>(
    store: &S,
    queries: &[String],
    segments: &[String],
) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(queries.len());
    let mut hits = 0;
    for q in queries {
        let start = Instant::now();
        match store.search(q, segments, 10).await {
            Ok(h) => hits += h.len(),
            Err(e) => eprintln!("query {q:?} failed: {e}"),
        }
        times.push(start.elapsed());
    }
    times.sort();
    (times, hits)
}

/// What one store measured.
#[derive(Default)]
struct Figures {
    pages_per_s: f64,
    index_s: f64,
    versions_ms: f64,
    versions_pages: usize,
    /// (label, p50 ms, p99 ms, hits per query)
    searches: Vec<(&'static str, f64, f64, f64)>,
    set_audience_s: f64,
}

struct Params {
    docs: usize,
    batch: usize,
    n_queries: usize,
    /// `stage` + one `flush` at the end (as the sync writes) rather than
    /// one committed `upsert` per batch.
    staged: bool,
}

/// Peak resident memory of this process so far (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    proc_status::mib(Process::Own, "VmHWM:")
}

const SEGMENT_MODES: &[(&str, &[&str])] = &[
    ("0 segments (public only)", &[]),
    ("1 segment (agents-and-admins)", &["agents-and-admins"]),
    (
        "4 segments",
        &["signed-in-users", "agents-and-admins", "partners", "tier2"],
    ),
];

/// Indexes the corpus into `store`; returns the seconds it took (generation
/// excluded) and the generator, positioned after the corpus.
async fn index_corpus<S: Store>(name: &str, store: &S, p: &Params) -> Result<(f64, Rng), String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut generate = Duration::ZERO;
    let mut text_bytes: u64 = 0;
    let started = Instant::now();
    let mut done = 0;
    while done < p.docs {
        let n = p.batch.min(p.docs - done);
        let g = Instant::now();
        let chunk: Vec<Document> = (done..done + n).map(|i| document(&mut rng, i)).collect();
        generate += g.elapsed();
        text_bytes += chunk
            .iter()
            .map(|d| {
                (d.page.body_text.len() + d.page.body_markdown.len() + d.page.title.len()) as u64
            })
            .sum::<u64>();
        if p.staged {
            store
                .stage(&chunk)
                .await
                .map_err(|e| format!("stage failed: {e}"))?;
        } else {
            store
                .upsert(&chunk)
                .await
                .map_err(|e| format!("upsert failed: {e}"))?;
        }
        done += n;
        if done % 20_000 < n {
            println!(
                "  {name}: {done} pages, {:.0} pages/s",
                done as f64 / (started.elapsed() - generate).as_secs_f64()
            );
        }
    }
    if p.staged {
        for space in 0..SEGMENT_SPACES.len() {
            store
                .flush(&SpaceScope::new("bench", format!("space-{space}")))
                .await
                .map_err(|e| format!("flush failed: {e}"))?;
        }
    }
    let indexing = (started.elapsed() - generate).as_secs_f64();
    println!(
        "{name}: indexed {} pages ({:.1} MB of title+text+markdown) in {:.1} s: {:.0} pages/s (generation excluded; {}, {} pages a call); peak RSS of the bench process {:.0} MB",
        p.docs,
        text_bytes as f64 / 1e6,
        indexing,
        p.docs as f64 / indexing,
        if p.staged {
            "staged, committed by the store's policy, flushed at the end"
        } else {
            "one commit per upsert call"
        },
        p.batch,
        peak_rss_mb(),
    );
    Ok((indexing, rng))
}

/// Indexes the corpus into `store` and times what a sync and the search API do.
async fn measure<S: Store + Search>(name: &str, store: &S, p: &Params) -> Result<Figures, String> {
    let mut f = Figures::default();
    let (index_s, mut rng) = index_corpus(name, store, p).await?;
    f.index_s = index_s;
    f.pages_per_s = p.docs as f64 / f.index_s;

    // versions() is what every sync starts with.
    let scope = SpaceScope::new("bench", "space-0");
    let _ = store.versions(&scope).await;
    let t = Instant::now();
    f.versions_pages = store
        .versions(&scope)
        .await
        .map_err(|e| format!("versions failed: {e}"))?
        .len();
    f.versions_ms = ms(t.elapsed());
    println!(
        "{name}: versions() of a {}-page space: {:.1} ms",
        f.versions_pages, f.versions_ms
    );

    // The same queries for every store (generated after the corpus).
    let queries: Vec<String> = (0..p.n_queries).map(|_| sentence(&mut rng, 1, 3)).collect();
    // Warm caches once.
    let _ = time_queries(store, &queries[..queries.len().min(20)], &[]).await;
    for (label, segments) in SEGMENT_MODES {
        let segments: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        let (times, hits) = time_queries(store, &queries, &segments).await;
        let (p50, p99) = (ms(percentile(&times, 0.50)), ms(percentile(&times, 0.99)));
        let per_query = hits as f64 / times.len().max(1) as f64;
        println!(
            "{name}: search {label}: {} queries, p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms, {per_query:.1} hits/query",
            times.len(),
            ms(percentile(&times, 1.0)),
        );
        f.searches.push((label, p50, p99, per_query));
    }

    // An audience change rewrites one space's documents.
    let t = Instant::now();
    store
        .set_audience(&scope, &Audience::Segments(vec!["tier2".into()]))
        .await
        .map_err(|e| format!("set_audience failed: {e}"))?;
    f.set_audience_s = t.elapsed().as_secs_f64();
    println!(
        "{name}: set_audience on a {}-page space: {:.2} s",
        f.versions_pages, f.set_audience_s
    );
    Ok(f)
}

async fn bench_opensearch(p: &Params) -> Result<Figures, String> {
    let url = opensearch_node::shared_url()?;
    let alias = format!("bench-{}", std::process::id());
    let store = OpenSearchStore::connect(OpenSearchConfig::new(url.clone(), alias.as_str()))
        .await
        .map_err(|e| e.to_string())?;
    println!("opensearch store benchmark: {url} alias {alias}");
    let result = measure("opensearch", &store, p).await;
    if let Err(e) = store.drop_all().await {
        eprintln!("cannot delete the benchmark index: {e}");
    }
    result
}

/// Resident memory of this process now (VmRSS, RssAnon, RssFile), in MB.
fn rss_now_mb() -> (f64, f64, f64) {
    let field = |name: &str| proc_status::mib(Process::Own, name);
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// One full sync of a simulator space into a fresh index, with peak memory.
async fn bench_sync(site: &str, options: EmbeddedOptions) -> Result<(), String> {
    use confluence_operator::confluence::{
        ClientOptions, Credentials, Flavor, ListOptions, SiteConfig, connect_with,
    };
    use confluence_operator::sync::{DEFAULT_BATCH_SIZE, SyncRequest, sync_space};
    let base_url = url::Url::parse(site).map_err(|e| format!("BENCH_SYNC_SITE: {e}"))?;
    let config = SiteConfig {
        base_url,
        flavor: Flavor::Cloud,
        credentials: Credentials::Basic {
            username: std::env::var("SIM_USER").unwrap_or_else(|_| "demo@example.com".into()),
            token: std::env::var("SIM_TOKEN").unwrap_or_else(|_| "demo-token".into()),
        },
        // The site's default maxConcurrency.
        max_concurrency: 4,
        request_timeout: Duration::from_secs(30),
        max_retries: 5,
        ca_bundle: None,
    };
    let client =
        connect_with(config, ClientOptions::default()).map_err(|e| format!("client: {e}"))?;
    let key = std::env::var("BENCH_SYNC_SPACE").unwrap_or_else(|_| "ENG".into());
    let space = client
        .space(&key)
        .await
        .map_err(|e| format!("space {key}: {e}"))?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = EmbeddedStore::open_with(tmp.path(), options.clone()).map_err(|e| e.to_string())?;
    let stores: Vec<std::sync::Arc<dyn Store>> = vec![std::sync::Arc::new(store)];
    let req = SyncRequest {
        scope: SpaceScope::new("bench", "sync"),
        site_url: site.to_string(),
        space: space.into(),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: DEFAULT_BATCH_SIZE,
    };
    let (base_rss, _, _) = rss_now_mb();
    // Sampled, since the kernel keeps no peak of RssAnon alone.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak_anon: f64 = 0.0;
            // What the largest sampled RSS was made of: (RSS, anon, file, s).
            let mut largest = (0.0, 0.0, 0.0, 0.0);
            let started = Instant::now();
            let mut shown = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (rss, anon, file) = rss_now_mb();
                peak_anon = peak_anon.max(anon);
                let at = started.elapsed();
                if rss > largest.0 {
                    largest = (rss, anon, file, at.as_secs_f64());
                }
                if at.as_secs() >= shown {
                    println!(
                        "  {:>4} s: RSS {rss:.0} MB, anonymous {anon:.0} MB, file {file:.0} MB",
                        at.as_secs()
                    );
                    shown = at.as_secs() + 5;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (peak_anon, largest)
        })
    };
    println!(
        "sync benchmark: space {key} at {site}, {} writer thread(s), {} MB writer budget, {:?}",
        options.writer_threads,
        options.writer_memory_bytes >> 20,
        options.commit
    );
    let started = Instant::now();
    let report = sync_space(client.as_ref(), &stores, &req).await;
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak_anon, largest) = sampler.join().unwrap_or((0.0, (0.0, 0.0, 0.0, 0.0)));
    let report = report.map_err(|e| format!("sync: {e}"))?;
    println!(
        "sync: {} items ({} fetched) in {:.1} s: {:.0} pages/s; peak RSS {:.0} MB (VmHWM; {:.0} MB before the sync), peak anonymous RSS {:.0} MB; index {:.1} MB on disk",
        report.items,
        report.fetched,
        took.as_secs_f64(),
        report.items as f64 / took.as_secs_f64(),
        peak_rss_mb(),
        base_rss,
        peak_anon,
        dir_size(tmp.path()) as f64 / 1e6,
    );
    println!(
        "sync: largest sampled RSS {:.0} MB ({:.0} MB anonymous, {:.0} MB file pages: the binary and the index's mapped segments) {:.1} s in",
        largest.0, largest.1, largest.2, largest.3
    );
    Ok(())
}

fn main() {
    // The operator's allocator settings, so that memory figures are the
    // operator's; `BENCH_MALLOC=glibc` keeps glibc's defaults instead.
    let tuned = std::env::var("BENCH_MALLOC").as_deref() != Ok("glibc");
    if tuned {
        confluence_operator::allocator::tune();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async {
        if tuned {
            tokio::spawn(confluence_operator::allocator::trim_periodically(
                confluence_operator::allocator::TRIM_EVERY,
            ));
        }
        bench().await
    });
}

async fn bench() {
    let p = Params {
        docs: number("BENCH_DOCS", 100_000),
        batch: number("BENCH_BATCH", 50).max(1),
        n_queries: number("BENCH_QUERIES", 300),
        staged: true,
    };
    let defaults = EmbeddedOptions::default();
    let options = EmbeddedOptions {
        writer_threads: number("BENCH_WRITER_THREADS", defaults.writer_threads),
        writer_memory_bytes: number("BENCH_WRITER_MB", defaults.writer_memory_bytes >> 20) << 20,
        writer_niceness: number("BENCH_WRITER_NICE", defaults.writer_niceness as usize) as i32,
        commit: confluence_operator::store::embedded::CommitPolicy {
            max_bytes: number("BENCH_COMMIT_MB", defaults.commit.max_bytes >> 20) << 20,
            max_docs: number("BENCH_COMMIT_DOCS", defaults.commit.max_docs).max(1),
            ..defaults.commit
        },
    };

    if let Ok(site) = std::env::var("BENCH_SYNC_SITE") {
        if let Err(e) = bench_sync(&site, options).await {
            eprintln!("sync benchmark: {e}");
            std::process::exit(1);
        }
        return;
    }

    let upsert_batch = number("BENCH_UPSERT_BATCH", 500);
    let mut per_call = None;
    if upsert_batch > 0 {
        let before = Params {
            batch: upsert_batch,
            staged: false,
            ..p
        };
        let result = match tempfile::tempdir() {
            Ok(tmp) => match EmbeddedStore::open_with(tmp.path(), options.clone()) {
                Ok(store) => index_corpus("embedded (commit per call)", &store, &before).await,
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok((secs, _)) => per_call = Some(before.docs as f64 / secs),
            Err(e) => eprintln!("embedded (commit per call): {e}"),
        }
    }

    let tmp = tempfile::tempdir();
    let dir = match (std::env::var("BENCH_DIR"), &tmp) {
        (Ok(d), _) => std::path::PathBuf::from(d),
        (Err(_), Ok(t)) => t.path().to_path_buf(),
        (Err(_), Err(e)) => {
            eprintln!("cannot create a temporary directory: {e}");
            std::process::exit(1);
        }
    };
    let store = match EmbeddedStore::open_with(&dir, options.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open the index: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "embedded store benchmark: {} pages, batches of {}, {} writer thread(s) at nice {}, {} MB writer budget, {:?}",
        p.docs,
        p.batch,
        options.writer_threads,
        options.writer_niceness,
        options.writer_memory_bytes >> 20,
        options.commit,
    );
    let embedded = match measure("embedded", &store, &p).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("embedded: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "embedded: index size on disk: {:.1} MB",
        dir_size(&dir) as f64 / 1e6
    );
    drop(store);
    let t = Instant::now();
    match EmbeddedStore::open_with(&dir, options) {
        Ok(s) => println!(
            "embedded: reopen: {:.1} ms, {} documents",
            ms(t.elapsed()),
            s.total().await.unwrap_or(0)
        ),
        Err(e) => eprintln!("embedded: reopen failed: {e}"),
    }

    if let Some(per_call) = per_call {
        println!(
            "embedded indexing: {per_call:.0} pages/s committing every {upsert_batch}-page call, {:.0} pages/s staged in {}-page calls",
            embedded.pages_per_s, p.batch
        );
    }
    if std::env::var("BENCH_OPENSEARCH").as_deref() == Ok("0") {
        return;
    }
    let opensearch = match bench_opensearch(&p).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("opensearch: {e}");
            std::process::exit(1);
        }
    };

    println!(
        "\n{} pages, batches of {}, {} queries per mode",
        p.docs, p.batch, p.n_queries
    );
    println!("| | embedded (tantivy) | OpenSearch 2.19 (1 node) |");
    println!("| --- | --- | --- |");
    println!(
        "| indexing | {:.0} pages/s | {:.0} pages/s |",
        embedded.pages_per_s, opensearch.pages_per_s
    );
    println!(
        "| versions() of a {}-page space | {:.1} ms | {:.1} ms |",
        embedded.versions_pages, embedded.versions_ms, opensearch.versions_ms
    );
    for (e, o) in embedded.searches.iter().zip(&opensearch.searches) {
        println!(
            "| search p50 / p99, {} | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            e.0, e.1, e.2, o.1, o.2
        );
    }
    println!(
        "| set_audience, {}-page space | {:.2} s | {:.2} s |",
        embedded.versions_pages, embedded.set_audience_s, opensearch.set_audience_s
    );
}
