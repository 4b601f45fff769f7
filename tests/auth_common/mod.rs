//! Shared by the authentication tests: a small embedded index with one
//! space per audience, the API served on a loopback socket, and the Python
//! MCP client.
//!
//! Use it from a test file with `mod auth_common;` (after `mod common;`,
//! `mod loopback;` and `mod python_venv;`).
#![allow(dead_code)]

use confluence_operator::auth::Authenticator;
use confluence_operator::model::{Audience, Document, SpaceScope};
use confluence_operator::server::spaces::SpaceDirectory;
use confluence_operator::server::{AppState, SearchResponse, router};
use confluence_operator::store::Store;
use confluence_operator::store::embedded::EmbeddedStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub const AGENTS: &str = "agents-and-admins";

/// Public (KB, Everyone), signed-in (SIU, signed-in-users) and agents-only
/// (OPS) documents, all matching `router`.
pub const PUBLIC: [&str; 2] = ["docs.kb.1", "docs.kb.2"];
pub const SIGNED_IN: &str = "docs.siu.5";
pub const AGENTS_ONLY: &str = "docs.ops.9";

fn doc(space: &str, key: &str, audience: Audience, id: &str, title: &str, body: &str) -> Document {
    crate::common::doc(
        &SpaceScope::new("docs", space),
        key,
        audience,
        crate::common::page(id, 1, title, body),
    )
}

pub struct Served {
    pub addr: SocketAddr,
    _server: crate::loopback::Server,
    _dir: tempfile::TempDir,
}

/// The index, served with `auth` on a loopback port.
pub async fn serve(auth: Authenticator, spaces: Option<Arc<dyn SpaceDirectory>>) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let agents = Audience::Segments(vec![AGENTS.into()]);
    let signed_in = Audience::Segments(vec!["signed-in-users".into()]);
    store
        .upsert(&[
            doc(
                "kb",
                "KB",
                Audience::Everyone,
                "1",
                "Reset your router",
                "Hold reset.",
            ),
            doc(
                "kb",
                "KB",
                Audience::Everyone,
                "2",
                "Router lights",
                "Blinking lights.",
            ),
            doc(
                "siu",
                "SIU",
                signed_in,
                "5",
                "Router inventory",
                "Staff only list.",
            ),
            doc(
                "ops",
                "OPS",
                agents,
                "9",
                "Router outage runbook",
                "Page on-call.",
            ),
        ])
        .await
        .expect("upsert");
    let mut state =
        AppState::standalone(Arc::new(store), Arc::new(AtomicBool::new(true))).with_auth(auth);
    if let Some(spaces) = spaces {
        state = state.with_spaces(spaces);
    }
    let server = crate::loopback::serve(router(state)).await;
    Served {
        addr: server.addr,
        _server: server,
        _dir: dir,
    }
}

/// GET with an optional bearer token: status and body.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Sorted hit ids of `/v1/search?{query}` (panics unless 200), and the total.
pub async fn search_ids(addr: SocketAddr, query: &str, token: Option<&str>) -> (Vec<String>, u64) {
    let (status, body) = get(addr, &format!("/v1/search?{query}"), token).await;
    assert_eq!(status, 200, "{query}: {body}");
    let res: SearchResponse = serde_json::from_str(&body).expect("json");
    let mut ids: Vec<String> = res.hits.into_iter().map(|h| h.id).collect();
    ids.sort();
    (ids, res.total.unwrap_or_default())
}

pub fn ids(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Runs the official Python MCP SDK against `/mcp` (see tests/mcp/client.py).
pub async fn mcp(addr: SocketAddr, token: Option<&str>, documents: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let python = tokio::task::spawn_blocking(crate::python_venv::python)
        .await
        .expect("venv")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(format!("http://{addr}/mcp"))
        .arg(token.unwrap_or("-"))
        .args(documents)
        .output()
        .await
        .expect("run the MCP client");
    assert!(
        out.status.success(),
        "MCP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("MCP client output is JSON")
}

/// Hit ids in an MCP search result.
pub fn mcp_hit_ids(result: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = result["structured"]["hits"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}
