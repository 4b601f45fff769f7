//! The third-party Confluence clients (LangChain's ConfluenceLoader,
//! LlamaIndex's ConfluenceReader) as `hack/peers/confluence_peers.py` runs
//! them against the simulator, for the tests that compare them with the
//! operator and the benchmark that times them.
//!
//! Use it from a test file with `mod peer_clients;` (after `mod python_venv;`
//! and `mod sim_site;`).
#![allow(dead_code)]

use crate::sim_site;
use confluence_operator::confluence::Flavor;
use confluence_sim::Simulator;
use std::path::Path;
use std::process::Command;

/// `client` (`langchain` or `llamaindex`) reading space `key` of the
/// simulator's `flavor` site as its user, run by `python`. Any request off
/// this machine fails fast: every proxy variable points at a closed loopback
/// port, except for the simulator. `ca` is a file with the CA the
/// simulator's HTTPS certificate is signed by.
pub fn command(
    python: &Path,
    client: &str,
    sim: &Simulator,
    flavor: Flavor,
    key: &str,
    ca: Option<&Path>,
) -> Command {
    let url = sim_site::site_url(sim, flavor).to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/peers/confluence_peers.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args([client, "--url", url.trim_end_matches('/')])
        .args(["--flavor", sim_site::flavor_name(flavor), "--space", key])
        .args(["--user", sim.user()])
        .env("CONFLUENCE_TOKEN", sim.token())
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONWARNINGS", "ignore");
    if let Some(ca) = ca {
        cmd.env("REQUESTS_CA_BUNDLE", ca);
    }
    cmd
}
