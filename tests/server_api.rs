//! The HTTP API as a client sees it, served from a real embedded store.

mod common;
mod loopback;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use confluence_operator::model::{Audience, Document, SpaceScope};
use confluence_operator::server::{
    AppState, ErrorBody, OPENAPI_YAML, ROUTES, SearchResponse, router,
};
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_operator::store::{Search, SearchResults, Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tower::ServiceExt;

const AGENTS: &str = "agents-and-admins";

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    ready: Arc<AtomicBool>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let public = SpaceScope::new("docs", "kb");
    let internal = SpaceScope::new("docs", "ops");
    store
        .upsert(&[
            doc(
                &public,
                "KB",
                Audience::Everyone,
                page(
                    "1",
                    1,
                    "Reset your router",
                    "Hold the reset button for ten seconds.",
                ),
            ),
            doc(
                &public,
                "KB",
                Audience::Everyone,
                page(
                    "2",
                    1,
                    "Router lights explained",
                    "A blinking router light means updating.",
                ),
            ),
            doc(
                &internal,
                "OPS",
                segments(&[AGENTS]),
                page("9", 1, "Router outage runbook", "Page the network on-call."),
            ),
        ])
        .await
        .expect("upsert");
    let ready = Arc::new(AtomicBool::new(false));
    let app = router(AppState::standalone(Arc::new(store), Arc::clone(&ready)));
    Fixture {
        _dir: dir,
        app,
        ready,
    }
}

async fn call(app: &axum::Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body")
        .to_vec();
    (status, content_type, body)
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> T {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn search_returns_only_hits_the_caller_may_see() {
    let f = fixture().await;
    let (status, ctype, body) = call(&f.app, "/v1/search?q=router").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/json"));
    let res: SearchResponse = json(&body);
    let mut ids: Vec<_> = res.hits.iter().map(|h| h.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["docs.kb.1", "docs.kb.2"]);
    assert_eq!(res.total, Some(2));
    assert!(
        res.hits
            .iter()
            .all(|h| h.space == "KB" && !h.snippet.is_empty())
    );

    let (_, _, body) = call(
        &f.app,
        "/v1/search?q=router&segments=signed-in-users,%20agents-and-admins&limit=2",
    )
    .await;
    let res: SearchResponse = json(&body);
    assert_eq!(res.hits.len(), 2);
    assert_eq!(res.total, Some(3));
    let (_, _, body) = call(&f.app, "/v1/search?q=runbook&segments=agents-and-admins").await;
    let res: SearchResponse = json(&body);
    assert_eq!(res.hits[0].id, "docs.ops.9");
    assert_eq!(res.hits[0].url, "https://wiki.example.com/pages/9");

    // Raw JSON shape: the documented field names.
    let raw: serde_json::Value = json(&body);
    let hit = &raw["hits"][0];
    for key in ["id", "title", "snippet", "url", "space", "score"] {
        assert!(hit.get(key).is_some(), "hit lacks {key}: {hit}");
    }
}

#[tokio::test]
async fn bad_search_input_is_a_json_400() {
    let f = fixture().await;
    for uri in [
        "/v1/search",
        "/v1/search?q=",
        "/v1/search?q=%20%20",
        "/v1/search?q=router&limit=0",
        "/v1/search?q=router&limit=101",
        "/v1/search?q=router&limit=ten",
        "/v1/search?q=router&limit=-1",
    ] {
        let (status, ctype, body) = call(&f.app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(ctype.starts_with("application/json"), "{uri}: {ctype}");
        let err: ErrorBody = json(&body);
        assert_eq!(err.error.code, "bad_request", "{uri}");
        assert!(!err.error.message.is_empty());
    }
    let long = "a".repeat(1001);
    let (status, _, _) = call(&f.app, &format!("/v1/search?q={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_syntax_characters_are_just_text() {
    let f = fixture().await;
    // q = router" AND (title:  — URL-encoded.
    let (status, _, body) = call(&f.app, "/v1/search?q=router%22%20AND%20(title%3A").await;
    assert_eq!(status, StatusCode::OK);
    let res: SearchResponse = json(&body);
    assert_eq!(res.hits.len(), 2);
}

#[tokio::test]
async fn documents_are_404_when_missing_or_not_visible() {
    let f = fixture().await;
    let (status, _, body) = call(
        &f.app,
        "/v1/documents/docs.ops.9?segments=agents-and-admins",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let doc: Document = json(&body);
    assert_eq!(doc.page.title, "Router outage runbook");
    assert_eq!(
        doc.page.body_markdown,
        "# Router outage runbook\n\nPage the network on-call."
    );

    let (hidden_status, _, hidden_body) = call(&f.app, "/v1/documents/docs.ops.9").await;
    let (missing_status, _, missing_body) = call(&f.app, "/v1/documents/docs.ops.404").await;
    assert_eq!(hidden_status, StatusCode::NOT_FOUND);
    assert_eq!(missing_status, StatusCode::NOT_FOUND);
    // Identical answers: nothing tells a restricted page from a missing one.
    assert_eq!(hidden_body, missing_body);
    let err: ErrorBody = json(&hidden_body);
    assert_eq!(err.error.code, "not_found");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let f = fixture().await;
    let (status, _, _) = call(&f.app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&f.app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    f.ready.store(true, Ordering::Release);
    let (status, _, _) = call(&f.app, "/readyz").await;
    assert_eq!(status, StatusCode::OK);

    call(&f.app, "/v1/search?q=router").await;
    call(&f.app, "/v1/search").await;
    let (status, ctype, body) = call(&f.app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = String::from_utf8(body).expect("utf8");
    assert!(
        text.contains(r#"api_requests_total{endpoint="search",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"api_requests_total{endpoint="search",status="400"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("api_search_duration_seconds_count 1"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let f = fixture().await;
    let (status, ctype, _) = call(&f.app, "/v2/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(ctype.starts_with("application/json"));
}

/// The OpenAPI document and the router describe the same API.
#[tokio::test]
async fn openapi_document_matches_the_router() {
    let f = fixture().await;
    let spec: serde_json::Value =
        serde_yaml_ng::from_str(OPENAPI_YAML).expect("openapi.yaml parses");
    assert!(
        spec["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    let paths = spec["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from docs/openapi.yaml"))
            [method.to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {path} missing from docs/openapi.yaml"
        );
        // And the router really serves it (anything but the fallback 404).
        let uri = path.replace("{id}", "docs.kb.1");
        let (status, _, body) = call(&f.app, &uri).await;
        let fallback = status == StatusCode::NOT_FOUND
            && serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error.message == "no such endpoint")
                .unwrap_or(false);
        assert!(!fallback, "{uri} is not routed");
    }
    assert_eq!(
        paths.len(),
        ROUTES.len(),
        "docs/openapi.yaml documents routes the router lacks"
    );

    let (status, _, body) = call(&f.app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let served: serde_json::Value = json(&body);
    assert_eq!(served, spec);
}

struct BrokenStore;

#[async_trait]
impl Search for BrokenStore {
    async fn search_counted(
        &self,
        _: &str,
        _: &[String],
        _: usize,
    ) -> Result<SearchResults, StoreError> {
        Err(StoreError::Io("disk /var/lib/secret-path failed".into()))
    }
    async fn get(&self, _: &str, _: &[String]) -> Result<Option<Document>, StoreError> {
        Err(StoreError::Io("disk /var/lib/secret-path failed".into()))
    }
}

#[tokio::test]
async fn store_failures_are_500_without_internals() {
    let app = router(AppState::standalone(
        Arc::new(BrokenStore),
        Arc::new(AtomicBool::new(true)),
    ));
    for uri in ["/v1/search?q=x", "/v1/documents/a.b.c"] {
        let (status, _, body) = call(&app, uri).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("secret-path"), "{text}");
        let err: ErrorBody = json(&body);
        assert_eq!(err.error.code, "internal");
    }
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let f = fixture().await;
    let server = loopback::serve(f.app).await;
    let res = reqwest::get(format!("{}/v1/search?q=lights&limit=1", server.base_url()))
        .await
        .expect("request");
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let body: SearchResponse = res.json().await.expect("json");
    assert_eq!(body.hits.len(), 1);
    assert_eq!(body.hits[0].id, "docs.kb.2");
}
