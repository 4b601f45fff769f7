//! Indexing and search throughput of the embedded store.
//!
//! `cargo bench --bench index` indexes generated pages (100k by default) in
//! sync-sized batches, then times queries with and without segments.
//! Environment: `BENCH_DOCS` (page count), `BENCH_BATCH` (pages per upsert),
//! `BENCH_QUERIES` (queries per mode), `BENCH_WRITER_THREADS`, `BENCH_DIR`
//! (index directory to use and keep; a temporary one otherwise).

use confluence_operator::model::{Ancestor, Audience, ContentType, Document, Page, SpaceScope};
use confluence_operator::store::embedded::{EmbeddedOptions, EmbeddedStore};
use confluence_operator::store::{Search, Store};
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

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

async fn time_queries(
    store: &EmbeddedStore,
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let docs = env_usize("BENCH_DOCS", 100_000);
    let batch = env_usize("BENCH_BATCH", 500).max(1);
    let n_queries = env_usize("BENCH_QUERIES", 300);
    let threads = env_usize(
        "BENCH_WRITER_THREADS",
        EmbeddedOptions::default().writer_threads,
    );

    let tmp = tempfile::tempdir();
    let dir = match (std::env::var("BENCH_DIR"), &tmp) {
        (Ok(d), _) => std::path::PathBuf::from(d),
        (Err(_), Ok(t)) => t.path().to_path_buf(),
        (Err(_), Err(e)) => {
            eprintln!("cannot create a temporary directory: {e}");
            std::process::exit(1);
        }
    };
    let options = EmbeddedOptions {
        writer_threads: threads,
        ..EmbeddedOptions::default()
    };
    let store = match EmbeddedStore::open_with(&dir, options.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open the index: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "embedded store benchmark: {docs} pages, batches of {batch}, {} writer thread(s), {} MB writer budget",
        options.writer_threads,
        options.writer_memory_bytes >> 20
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut generate = Duration::ZERO;
    let mut text_bytes: u64 = 0;
    let started = Instant::now();
    let mut done = 0;
    while done < docs {
        let n = batch.min(docs - done);
        let g = Instant::now();
        let chunk: Vec<Document> = (done..done + n).map(|i| document(&mut rng, i)).collect();
        generate += g.elapsed();
        text_bytes += chunk
            .iter()
            .map(|d| {
                (d.page.body_text.len() + d.page.body_markdown.len() + d.page.title.len()) as u64
            })
            .sum::<u64>();
        if let Err(e) = store.upsert(&chunk).await {
            eprintln!("upsert failed: {e}");
            std::process::exit(1);
        }
        done += n;
        if done % (batch * 40) == 0 {
            println!(
                "  {done} pages, {:.0} pages/s",
                done as f64 / (started.elapsed() - generate).as_secs_f64()
            );
        }
    }
    let indexing = started.elapsed() - generate;
    println!(
        "indexed {docs} pages ({:.1} MB of title+text+markdown) in {:.1} s: {:.0} pages/s (generation excluded)",
        text_bytes as f64 / 1e6,
        indexing.as_secs_f64(),
        docs as f64 / indexing.as_secs_f64()
    );
    println!(
        "index size on disk after indexing: {:.1} MB",
        dir_size(&dir) as f64 / 1e6
    );

    // versions() is what every sync starts with.
    let scope = SpaceScope::new("bench", "space-0");
    let t = Instant::now();
    let versions = store.versions(&scope).await.map(|v| v.len()).unwrap_or(0);
    println!(
        "versions() of a {versions}-page space: {:.1} ms",
        ms(t.elapsed())
    );

    let queries: Vec<String> = (0..n_queries).map(|_| sentence(&mut rng, 1, 3)).collect();
    // Warm the OS page cache and tantivy's caches once.
    let _ = time_queries(&store, &queries[..queries.len().min(20)], &[]).await;
    for (label, segments) in [
        ("no segments (public only)", vec![]),
        (
            "segments=agents-and-admins",
            vec!["agents-and-admins".to_string()],
        ),
        (
            "segments=signed-in-users,agents-and-admins,partners,tier2",
            ["signed-in-users", "agents-and-admins", "partners", "tier2"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    ] {
        let (times, hits) = time_queries(&store, &queries, &segments).await;
        println!(
            "search {label}: {} queries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.1} hits/query",
            times.len(),
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            ms(percentile(&times, 1.0)),
            hits as f64 / times.len().max(1) as f64
        );
    }

    // An audience change rewrites one space's documents in one commit.
    let t = Instant::now();
    match store
        .set_audience(&scope, &Audience::Segments(vec!["tier2".into()]))
        .await
    {
        Ok(()) => println!(
            "set_audience on a {versions}-page space: {:.2} s",
            t.elapsed().as_secs_f64()
        ),
        Err(e) => eprintln!("set_audience failed: {e}"),
    }

    drop(store);
    let t = Instant::now();
    match EmbeddedStore::open_with(&dir, options) {
        Ok(s) => println!(
            "reopen: {:.1} ms, {} documents",
            ms(t.elapsed()),
            s.total().await.unwrap_or(0)
        ),
        Err(e) => eprintln!("reopen failed: {e}"),
    }
    println!(
        "index size on disk at the end: {:.1} MB",
        dir_size(&dir) as f64 / 1e6
    );
}
