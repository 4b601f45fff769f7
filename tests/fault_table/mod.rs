//! The fault matrix's table, shared by every `tests/faults*.rs`
//! binary: each fault appends one row (fault | what must hold | observed |
//! pass/fail | figures) to `target/faults/table.tsv` (or `$FAULTS_TABLE`),
//! which `hack/faults` prints.
//!
//! Use it from a test file with `mod fault_table;`.
#![allow(dead_code)]

use std::future::Future;
use std::io::Write as _;

pub struct Outcome {
    pub observed: String,
    pub figures: String,
    pub failures: Vec<String>,
}

impl Outcome {
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }
}

pub fn table_path() -> std::path::PathBuf {
    std::env::var_os("FAULTS_TABLE")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .to_path_buf()
                .join("target/faults/table.tsv")
        })
}

pub fn record_row(fault: &str, must_hold: &str, observed: &str, pass: bool, figures: &str) {
    let path = table_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let line = format!(
        "{}\t{}\t{}\t{}\t{}\n",
        clean(fault),
        clean(must_hold),
        clean(observed),
        if pass { "pass" } else { "FAIL" },
        clean(figures)
    );
    // one write per row with O_APPEND: rows of concurrent writers stay whole
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(line.as_bytes()).unwrap();
}

/// Runs a scenario, records its row (also when it panics) and fails the test
/// when any check failed.
pub async fn run_fault<F>(fault: &str, must_hold: &str, scenario: F)
where
    F: Future<Output = Outcome> + Send + 'static,
{
    let outcome = tokio::spawn(scenario).await;
    match outcome {
        Ok(o) => {
            let pass = o.failures.is_empty();
            let observed = if pass {
                o.observed.clone()
            } else {
                format!("{}; FAILED: {}", o.observed, o.failures.join("; "))
            };
            record_row(fault, must_hold, &observed, pass, &o.figures);
            assert!(pass, "{fault}: {observed}");
        }
        Err(e) => {
            let msg = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
                Err(e) => e.to_string(),
            };
            record_row(fault, must_hold, &format!("panicked: {msg}"), false, "");
            panic!("{fault}: {msg}");
        }
    }
}
