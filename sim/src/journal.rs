//! A record of every API exchange (request line, status, JSON body), kept
//! only while a test asks for it, so the operator's traffic can be checked
//! against Confluence's published contract.

use super::{State, lock};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One request the simulator answered and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    /// Path without the origin, e.g. `/wiki/api/v2/pages`.
    pub path: String,
    /// Raw query string, still percent-encoded.
    pub query: Option<String>,
    pub status: u16,
    /// The response body when it was JSON.
    pub body: Option<serde_json::Value>,
}

pub(crate) async fn record(AxState(st): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    let recording = lock(&st.journal).is_some();
    if !recording || req.uri().path().starts_with("/_sim") {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let json = serde_json::from_slice(&bytes).ok();
    if let Some(journal) = lock(&st.journal).as_mut() {
        journal.push(Exchange {
            method,
            path,
            query,
            status,
            body: json,
        });
    }
    Response::from_parts(parts, Body::from(bytes))
}
