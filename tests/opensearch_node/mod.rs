//! A real OpenSearch node for the tests, started by `hack/opensearch/up`.
//!
//! * If `OPENSEARCH_URL` is set and answers, that node is used.
//! * Otherwise `hack/opensearch/up` is run once per test process (idempotent:
//!   a node it started earlier is reused) and left running for the next test
//!   binary; `hack/opensearch/down` (or `hack/test`, when it started it) stops it.
//!
//! Every test works under its own alias ([`unique_alias`]), so tests share the
//! node without seeing each other's documents.
#![allow(dead_code)]

use confluence_operator::store::opensearch::{OpenSearchConfig, OpenSearchStore};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

static SHARED: OnceLock<Result<Url, String>> = OnceLock::new();

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared node's URL, starting it if needed.
pub fn url() -> Url {
    shared_url().unwrap_or_else(|e| panic!("OpenSearch unavailable: {e}"))
}

/// [`url`], or why there is no node.
pub fn shared_url() -> Result<Url, String> {
    SHARED
        .get_or_init(|| {
            if let Some(url) = std::env::var("OPENSEARCH_URL")
                .ok()
                .filter(|v| !v.is_empty())
            {
                let url = Url::parse(&url).map_err(|e| format!("OPENSEARCH_URL: {e}"))?;
                if answers(&url) {
                    eprintln!("[opensearch] using OPENSEARCH_URL={url}");
                    return Ok(url);
                }
                eprintln!(
                    "[opensearch] OPENSEARCH_URL={url} does not answer; starting hack/opensearch"
                );
            }
            Node::shared().start()
        })
        .clone()
}

fn answers(url: &Url) -> bool {
    let url = url.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|rt| {
                rt.block_on(async {
                    reqwest::Client::new()
                        .get(url.join("_cluster/health").ok()?)
                        .timeout(Duration::from_secs(3))
                        .send()
                        .await
                        .ok()
                        .map(|r| r.status().is_success())
                })
            })
            .unwrap_or(false)
    })
    .join()
    .unwrap_or(false)
}

/// An alias no other test (in this or another process) uses.
pub fn unique_alias(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t-{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Config for `alias` on the shared node, with quick retries.
pub fn config(alias: &str) -> OpenSearchConfig {
    config_at(url(), alias)
}

pub fn config_at(url: Url, alias: &str) -> OpenSearchConfig {
    let mut config = OpenSearchConfig::new(url, alias);
    config.retry.attempts = 3;
    config.retry.initial = Duration::from_millis(100);
    config.timeout = Duration::from_secs(20);
    config
}

/// A store on a fresh alias of the shared node.
pub async fn store(prefix: &str) -> OpenSearchStore {
    OpenSearchStore::connect(config(&unique_alias(prefix)))
        .await
        .expect("connect to OpenSearch")
}

/// Number of documents under an alias, counted by OpenSearch itself.
pub async fn count_all(url: &Url, alias: &str) -> u64 {
    let body: serde_json::Value = reqwest::Client::new()
        .post(url.join(&format!("{alias}/_count")).unwrap())
        .json(&serde_json::json!({"query": {"match_all": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no count: {body}"))
}

/// One node started through `hack/opensearch/up` with its own port and directory.
pub struct Node {
    pub port: u16,
    pub dir: PathBuf,
}

impl Node {
    fn shared() -> Node {
        let port = std::env::var("OPENSEARCH_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(19200);
        Node {
            port,
            dir: repo_root().join("target/opensearch"),
        }
    }

    /// A node of its own (for tests that stop it), on `port`.
    pub fn private(name: &str, port: u16) -> Node {
        Node {
            port,
            dir: repo_root().join(format!("target/opensearch-{name}")),
        }
    }

    pub fn url(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}", self.port)).expect("url")
    }

    fn script(&self, name: &str) -> Command {
        let mut cmd = Command::new(repo_root().join("hack/opensearch").join(name));
        cmd.env("OPENSEARCH_PORT", self.port.to_string())
            .env("OPENSEARCH_TRANSPORT_PORT", (self.port + 100).to_string())
            .env("OPENSEARCH_DIR", &self.dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    }

    /// Starts the node (or finds it running) and returns its URL.
    pub fn start(&self) -> Result<Url, String> {
        let out = self
            .script("up")
            .output()
            .map_err(|e| format!("cannot run hack/opensearch/up: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "hack/opensearch/up failed with {} (log in {})",
                out.status,
                self.dir.join("node.log").display()
            ));
        }
        Ok(self.url())
    }

    /// Stops the node and waits until it is gone.
    pub fn stop(&self) {
        let status = self
            .script("down")
            .status()
            .expect("run hack/opensearch/down");
        assert!(status.success(), "hack/opensearch/down failed");
    }
}
