//! The HTTP API: segment-aware search over a [`Search`] store, the MCP
//! endpoint, plus health, readiness, metrics and the OpenAPI document.
//!
//! Trust model: every `/v1/*` and `/mcp` request is authenticated first
//! ([`crate::auth`]); the caller's bindings decide which segments it holds,
//! and the request's `segments=` can only narrow them. With `--auth=none`
//! the server believes `segments=` (local development only). No document
//! leaves the server unless its audience admits one of the effective
//! segments, and a refused or hidden document looks exactly like a missing
//! one.
//!
//! The API is described by the hand-maintained `docs/openapi.yaml`, served
//! as JSON at `/openapi.json`; a test checks that it lists exactly
//! [`ROUTES`], and that the router serves every one of them.

pub mod mcp;
pub mod spaces;

use crate::auth::{AuthError, Authenticator, Viewer};
use crate::store::{Search, SearchResults, StoreError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use spaces::{NoSpaces, SpaceDirectory};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Hits returned when the caller gives no `limit`.
pub const DEFAULT_LIMIT: usize = 10;
/// Largest accepted `limit`: deeper result pages are not useful to a reader
/// and cost snippet generation per hit.
pub const MAX_LIMIT: usize = 100;
/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Most segments a caller may claim in one request.
pub const MAX_SEGMENTS: usize = 64;

/// Every (method, path) the router serves, in axum's path syntax. The
/// OpenAPI document is tested against this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/search"),
    ("GET", "/v1/documents/{id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/mcp"),
];

/// The OpenAPI 3 description of this API, as maintained in the repository.
pub const OPENAPI_YAML: &str = include_str!("../../docs/openapi.yaml");

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: u16,
}

/// The API's own metrics. Register them into the process registry before
/// wrapping it in an `Arc` for [`AppState`].
#[derive(Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    search_seconds: Histogram,
}

impl ApiMetrics {
    /// Creates the metrics and registers them as `api_requests_total`
    /// (labels `endpoint`, `status`) and `api_search_duration_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            // 1 ms .. ~16 s.
            search_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        };
        registry.register(
            "api_requests",
            "HTTP API requests by endpoint and response status",
            metrics.requests.clone(),
        );
        registry.register(
            "api_search_duration_seconds",
            "Time to answer /v1/search, including snippet generation",
            metrics.search_seconds.clone(),
        );
        metrics
    }

    fn record(&self, endpoint: &'static str, status: StatusCode) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                status: status.as_u16(),
            })
            .inc();
    }
}

/// What the handlers share.
///
/// * `search`: the store answering queries (the embedded store in practice).
/// * `registry`: the process-wide metrics registry rendered at `/metrics`;
///   it must already contain `metrics` (see [`ApiMetrics::register`]).
/// * `ready`: flipped to `true` by the operator once the store is open and
///   the controller runs; `/readyz` answers 503 until then.
/// * `auth`: who is asking ([`Authenticator::none`] unless set with
///   [`AppState::with_auth`]).
/// * `spaces`: the spaces `/mcp`'s `list_spaces` shows (none unless set with
///   [`AppState::with_spaces`]).
#[derive(Clone)]
pub struct AppState {
    pub search: Arc<dyn Search>,
    pub registry: Arc<Registry>,
    pub metrics: ApiMetrics,
    pub ready: Arc<AtomicBool>,
    pub auth: Authenticator,
    pub spaces: Arc<dyn SpaceDirectory>,
}

impl AppState {
    pub fn new(
        search: Arc<dyn Search>,
        registry: Arc<Registry>,
        metrics: ApiMetrics,
        ready: Arc<AtomicBool>,
    ) -> Self {
        Self {
            search,
            registry,
            metrics,
            ready,
            auth: Authenticator::none(),
            spaces: Arc::new(NoSpaces),
        }
    }

    /// Authenticates `/v1/*` and `/mcp` requests with `auth`.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = auth;
        self
    }

    /// Lists these spaces through `/mcp`.
    pub fn with_spaces(mut self, spaces: Arc<dyn SpaceDirectory>) -> Self {
        self.spaces = spaces;
        self
    }

    /// A state with its own registry holding only the API metrics: for tests
    /// and for running the API without the controller.
    pub fn standalone(search: Arc<dyn Search>, ready: Arc<AtomicBool>) -> Self {
        let mut registry = Registry::default();
        let metrics = ApiMetrics::register(&mut registry);
        Self::new(search, Arc::new(registry), metrics, ready)
    }
}

/// The API router. Serve it with `axum::serve` on the configured address.
pub fn router(state: AppState) -> Router {
    // Parsed once; a broken document is caught by the tests, and at run
    // time only `/openapi.json` would report it.
    let openapi: Arc<Result<serde_json::Value, String>> = Arc::new(
        serde_yaml_ng::from_str::<serde_json::Value>(OPENAPI_YAML).map_err(|e| e.to_string()),
    );
    // Everything that reveals content is behind authentication; health,
    // metrics and the API description are not.
    let protected = Router::new()
        .route("/v1/search", get(search))
        .route("/v1/documents/{id}", get(document))
        .route_service("/mcp", mcp::service(state.clone()))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(protected)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move {
                    match openapi.as_ref() {
                        Ok(doc) => Json(doc.clone()).into_response(),
                        Err(e) => {
                            tracing::error!(error = %e, "embedded OpenAPI document does not parse");
                            ApiError::internal().into_response()
                        }
                    }
                }
            }),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(state)
}

/// The JSON error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthorized() -> Self {
        // One answer for every kind of bad token: the caller is not told
        // whether it was expired, foreign or forged.
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is invalid, expired or not meant for this service",
        )
    }

    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "credentials cannot be checked right now; retry later",
        )
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found() -> Self {
        // Same answer for "missing" and "not visible to you": the API must
        // not reveal that a restricted document exists.
        Self::new(StatusCode::NOT_FOUND, "not_found", "document not found")
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request could not be completed",
        )
    }

    fn store(err: StoreError) -> Self {
        // Details go to the log, not to the caller.
        tracing::error!(error = %err, "store failed to answer an API request");
        Self::internal()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Raw query parameters; all optional strings so that every validation
/// failure produces our JSON error rather than axum's plain-text rejection.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    segments: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DocumentParams {
    segments: Option<String>,
}

/// One hit as the API returns it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiHit {
    pub id: String,
    pub title: String,
    pub snippet: String,
    pub url: String,
    /// Confluence space key.
    pub space: String,
    pub score: f32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SearchResponse {
    pub hits: Vec<ApiHit>,
    /// Visible matches in total (may exceed `hits.len()`), when known: the
    /// embedded index counts up to 10,000 and leaves it out beyond.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub total: Option<u64>,
}

impl From<SearchResults> for SearchResponse {
    fn from(r: SearchResults) -> Self {
        Self {
            hits: r
                .hits
                .into_iter()
                .map(|h| ApiHit {
                    id: h.id,
                    title: h.title,
                    snippet: h.snippet,
                    url: h.url,
                    space: h.space_key,
                    score: h.score,
                })
                .collect(),
            total: r.total,
        }
    }
}

/// Authenticates the request and hands the [`Viewer`] to the handler, or
/// answers 401 (bad credentials) or 503 (verifier unreachable).
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match state.auth.authenticate(request.headers()).await {
        Ok(viewer) => {
            // The MCP service is not ours to instrument; count it here.
            let mcp = request.uri().path() == "/mcp";
            request.extensions_mut().insert(viewer);
            let response = next.run(request).await;
            if mcp {
                state.metrics.record("mcp", response.status());
            }
            response
        }
        Err(AuthError::Refused(why)) => {
            tracing::debug!(reason = why, "request refused: bad credentials");
            state.metrics.record("auth", StatusCode::UNAUTHORIZED);
            let mut response = ApiError::unauthorized().into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            response
        }
        Err(AuthError::Unavailable(e)) => {
            tracing::warn!(error = %e, "cannot check credentials");
            state
                .metrics
                .record("auth", StatusCode::SERVICE_UNAVAILABLE);
            ApiError::unavailable().into_response()
        }
    }
}

/// `a,b , c,,` → `["a", "b", "c"]`.
fn parse_segments(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let segments: Vec<String> = raw
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if segments.len() > MAX_SEGMENTS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_SEGMENTS} segments are accepted"
        )));
    }
    Ok(segments)
}

fn parse_search(params: &SearchParams) -> Result<(String, Vec<String>, usize), ApiError> {
    let q = params.q.as_deref().map(str::trim).unwrap_or_default();
    if q.is_empty() {
        return Err(ApiError::bad_request("query parameter `q` is required"));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(format!(
            "`q` is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`limit` must be an integer from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    let segments = parse_segments(params.segments.as_deref())?;
    Ok((q.to_string(), segments, limit))
}

async fn search(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let Query(params) =
            params.map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let (q, requested, limit) = parse_search(&params)?;
        let segments = viewer.grant.effective(&requested);
        let results = state
            .search
            .search_counted(&q, &segments, limit)
            .await
            .map_err(ApiError::store)?;
        Ok::<_, ApiError>(SearchResponse::from(results))
    }
    .await;
    let response = match result {
        Ok(body) => {
            state
                .metrics
                .search_seconds
                .observe(started.elapsed().as_secs_f64());
            Json(body).into_response()
        }
        Err(e) => e.into_response(),
    };
    state.metrics.record("search", response.status());
    response
}

async fn document(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    params: Result<Query<DocumentParams>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(params) =
            params.map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let requested = parse_segments(params.segments.as_deref())?;
        let segments = viewer.grant.effective(&requested);
        match state.search.get(&id, &segments).await {
            Ok(Some(doc)) => Ok(Json(doc)),
            Ok(None) => Err(ApiError::not_found()),
            Err(e) => Err(ApiError::store(e)),
        }
    }
    .await;
    let response = result.into_response();
    state.metrics.record("document", response.status());
    response
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Status>) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, Json(Status { status: "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Status {
                status: "not ready",
            }),
        )
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            ApiError::internal().into_response()
        }
    }
}
