//! HTTP side of the simulator: Cloud v2 and v1, Data Center v1, the admin
//! API, authentication, request counting and fault injection.

use super::data::{ContentType, Data, SimPage, SimSpace, Status};
use super::{Hostile, SimError, State, Stats, lock, read, write};
use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Path, RawQuery, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type St = Arc<State>;

mod parents;
mod v1_extra;

/// v1 handlers are mounted twice: under `/wiki/rest/api` (Cloud) and
/// `/rest/api` (Data Center); links and shapes differ slightly.
#[derive(Clone)]
struct Ctx {
    state: St,
    cloud: bool,
}

impl Ctx {
    /// `_links.base`: Cloud's includes the `/wiki` context path.
    fn base(&self) -> String {
        if self.cloud {
            format!("{}/wiki", self.state.origin)
        } else {
            self.state.origin.clone()
        }
    }

    fn context(&self) -> &'static str {
        if self.cloud { "/wiki" } else { "" }
    }
}

pub(crate) fn router(state: St) -> Router {
    let v1 = |cloud: bool| {
        Router::new()
            .route("/user/current", get(v1_user))
            .route("/space", get(v1_spaces))
            .route("/space/{key}", get(v1_space))
            .route("/content", get(v1_content_list))
            .route("/content/search", get(v1_search))
            .route("/content/{id}", get(v1_content_get))
            .route(
                "/content/{id}/restriction/byOperation",
                get(v1_extra::restrictions_by_operation),
            )
            .with_state(Ctx {
                state: state.clone(),
                cloud,
            })
    };
    let v2 = || {
        Router::new()
            .route("/spaces", get(v2_spaces))
            .route("/spaces/{id}/pages", get(v2_space_pages))
            .route("/spaces/{id}/blogposts", get(v2_space_blogposts))
            .route("/pages", get(v2_pages))
            .route("/blogposts", get(v2_blogposts))
            .route("/pages/{id}", get(v2_page))
            .route("/blogposts/{id}", get(v2_blogpost))
            .route("/folders/{id}", get(parents::v2_folder))
            .route("/whiteboards/{id}", get(parents::v2_whiteboard))
            .route("/databases/{id}", get(parents::v2_database))
            .with_state(state.clone())
    };
    // The API gateway serves the same Cloud APIs under its own prefix; links
    // in responses keep naming the site itself, as Atlassian's gateway does.
    let gateway = format!("/ex/confluence/{}", super::CLOUD_ID);
    let api = Router::new()
        .nest("/wiki/api/v2", v2())
        .nest("/wiki/rest/api", v1(true))
        .nest(&format!("{gateway}/wiki/api/v2"), v2())
        .nest(&format!("{gateway}/wiki/rest/api"), v1(true))
        .nest("/rest/api", v1(false))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults_and_auth,
        ));
    let admin = Router::new()
        .route("/_sim/stats", get(admin_stats))
        .route("/_sim/stats/reset", post(admin_reset))
        .route("/_sim/spaces", get(admin_spaces))
        .route("/_sim/pages", post(admin_create))
        .route(
            "/_sim/pages/{id}",
            put(admin_edit).delete(admin_delete).get(admin_get),
        )
        .route(
            "/_sim/pages/{id}/restriction",
            put(admin_restrict).delete(admin_unrestrict),
        )
        .route("/_sim/faults", get(admin_faults).put(admin_set_faults))
        .with_state(state.clone());
    Router::new()
        .merge(api)
        .merge(admin)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(middleware::from_fn_with_state(
            state,
            crate::journal::record,
        ))
}

// ---------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------

async fn count(AxState(st): AxState<St>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/_sim") {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("<unmatched>", |m| m.as_str())
            .to_string();
        let label = format!("{} {route}", req.method());
        let mut stats = lock(&st.stats);
        *stats.by_endpoint.entry(label).or_default() += 1;
        stats.total += 1;
    }
    next.run(req).await
}

enum Fault {
    None,
    RateLimit,
    Error(StatusCode),
    Hang(Duration),
}

fn error_json(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "statusCode": status.as_u16(), "message": message })),
    )
        .into_response()
}

fn retry_after_value(secs: u64, as_date: bool) -> HeaderValue {
    let text = if as_date {
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs as i64);
        jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&at)
            .unwrap_or_else(|_| secs.to_string())
    } else {
        secs.to_string()
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("1"))
}

/// The latency is the whole time an answer takes, counted from the
/// request's arrival: the simulator's own rendering is part of it, as a
/// remote server's work is part of its response time. (Added after the
/// answer instead, rendering on the client's cores would count twice.)
async fn faults_and_auth(st: AxState<St>, req: Request, next: Next) -> Response {
    let arrived = std::time::Instant::now();
    let latency = {
        let faults = &lock(&st.faults).0;
        let slow = !faults.slow_match.is_empty()
            && req
                .uri()
                .path_and_query()
                .is_some_and(|pq| pq.as_str().contains(faults.slow_match.as_str()));
        Duration::from_millis(faults.latency_ms + if slow { faults.slow_ms } else { 0 })
    };
    let resp = answer(st, req, next).await;
    crate::alarm::sleep_until(arrived + latency).await;
    resp
}

async fn answer(AxState(st): AxState<St>, req: Request, next: Next) -> Response {
    let (fault, truncate, retry_after, hostile) = {
        let mut guard = lock(&st.faults);
        let (cfg, rng) = &mut *guard;
        let hostile = match &cfg.hostile {
            Some(h) if req.uri().path().contains(cfg.hostile_path.as_str()) => {
                match &mut cfg.hostile_budget {
                    None => Some(h.clone()),
                    Some(0) => None,
                    Some(n) => {
                        *n -= 1;
                        Some(h.clone())
                    }
                }
            }
            _ => None,
        };
        let fault = if cfg.rate_limit_budget > 0 {
            cfg.rate_limit_budget -= 1;
            Fault::RateLimit
        } else if cfg.rate_limit_rate > 0.0 && rng.random_bool(cfg.rate_limit_rate.min(1.0)) {
            Fault::RateLimit
        } else if cfg.error_budget > 0 {
            cfg.error_budget -= 1;
            Fault::Error(
                StatusCode::from_u16(cfg.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            )
        } else if cfg.error_rate > 0.0 && rng.random_bool(cfg.error_rate.min(1.0)) {
            Fault::Error(
                StatusCode::from_u16(cfg.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            )
        } else if cfg.hang_rate > 0.0 && rng.random_bool(cfg.hang_rate.min(1.0)) {
            Fault::Hang(Duration::from_millis(cfg.hang_ms))
        } else {
            Fault::None
        };
        let truncate = cfg.truncate_rate > 0.0 && rng.random_bool(cfg.truncate_rate.min(1.0));
        (
            fault,
            truncate,
            retry_after_value(cfg.retry_after_secs, cfg.retry_after_as_date),
            hostile,
        )
    };
    match fault {
        Fault::None => {}
        Fault::RateLimit => {
            lock(&st.stats).rate_limited += 1;
            let mut resp = error_json(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            resp.headers_mut().insert(header::RETRY_AFTER, retry_after);
            return resp;
        }
        Fault::Error(status) => {
            lock(&st.stats).errors += 1;
            let mut resp = error_json(status, "Simulated server error");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                resp.headers_mut().insert(header::RETRY_AFTER, retry_after);
            }
            return resp;
        }
        Fault::Hang(d) => {
            lock(&st.stats).hangs += 1;
            let mut stop = st.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = stop.wait_for(|s| *s) => {
                    return error_json(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
                }
            }
        }
    }
    // Proxies and load balancers answer before Confluence checks anything.
    let mut req = req;
    let marker = match hostile {
        None => None,
        Some(Hostile::InvalidUtf8 { marker }) => Some(marker),
        Some(Hostile::DropQueryParam { name }) => {
            lock(&st.stats).hostile += 1;
            drop_query_param(&mut req, &name);
            None
        }
        Some(h) => {
            lock(&st.stats).hostile += 1;
            return hostile_answer(&st, h, &req);
        }
    };
    if !authorized(&st, req.headers()) {
        let mut resp = error_json(
            StatusCode::UNAUTHORIZED,
            "Current user not permitted to use Confluence",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Confluence\""),
        );
        return resp;
    }
    let resp = next.run(req).await;
    if let Some(marker) = marker.filter(|m| !m.is_empty()) {
        lock(&st.stats).hostile += 1;
        let (mut parts, body) = resp.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(replace_bytes(&bytes, marker.as_bytes())));
    }
    if !truncate || !resp.status().is_success() {
        return resp;
    }
    lock(&st.stats).truncated += 1;
    let (mut parts, body) = resp.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

/// Removes every `name=` pair from the request's query, leaving the rest
/// as sent.
fn drop_query_param(req: &mut Request, name: &str) {
    let Some(query) = req.uri().query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    let path_and_query = if kept.is_empty() {
        req.uri().path().to_string()
    } else {
        format!("{}?{}", req.uri().path(), kept.join("&"))
    };
    if let Ok(uri) = path_and_query.parse() {
        *req.uri_mut() = uri;
    }
}

/// Bytes that are never valid UTF-8: a lone continuation byte, an
/// overlong lead and 0xFF.
const NOT_UTF8: &[u8] = &[0x80, 0xC0, 0xAF, 0xFF, 0xFE];

fn replace_bytes(haystack: &[u8], marker: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(marker) {
            out.extend_from_slice(NOT_UTF8);
            i += marker.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fn json_headers(status: StatusCode, content_type: &'static str) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
}

/// The answer of a [`Hostile`] mode (all but `InvalidUtf8`, which edits the
/// real answer, and `DropQueryParam`, which edits the request). Endless bodies end when the simulator shuts down or the
/// client goes away.
fn hostile_answer(st: &St, hostile: Hostile, req: &Request) -> Response {
    let built = match hostile {
        Hostile::MalformedJson => json_headers(StatusCode::OK, "application/json")
            .body(Body::from(r#"{"results": [{"id": "1", "title": "unterminated"#)),
        Hostile::HtmlLoginPage => json_headers(StatusCode::OK, "text/html; charset=utf-8").body(
            Body::from(
                "<!DOCTYPE html><html><head><title>Log in</title></head><body><form action=\"/login\" method=\"post\"><input name=\"username\"><input name=\"password\" type=\"password\"></form></body></html>",
            ),
        ),
        Hostile::InvalidUtf8 { .. } | Hostile::DropQueryParam { .. } => {
            return error_json(StatusCode::INTERNAL_SERVER_ERROR, "unreachable");
        }
        Hostile::EndlessBody => {
            let chunk = axum::body::Bytes::from(r#"{"id":"1","title":"again"},"#.repeat(2048));
            let stop = st.shutdown.clone();
            let head = futures::stream::once(async {
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(br#"{"results":["#))
            });
            let tail = futures::stream::unfold(stop, move |stop| {
                let chunk = chunk.clone();
                async move {
                    let stopped = *stop.borrow();
                    (!stopped).then(|| (Ok(chunk), stop))
                }
            });
            json_headers(StatusCode::OK, "application/json")
                .body(Body::from_stream(futures::StreamExt::chain(head, tail)))
        }
        Hostile::Trickle { interval_ms } => {
            let every = Duration::from_millis(interval_ms.max(1));
            let stop = st.shutdown.clone();
            let bytes = futures::stream::unfold(stop, move |mut stop| async move {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return None,
                }
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b" ")), stop))
            });
            json_headers(StatusCode::OK, "application/json").body(Body::from_stream(bytes))
        }
        Hostile::Redirect { to } => {
            let path_and_query = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let location = format!("{}{path_and_query}", to.trim_end_matches('/'));
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, location)
                .body(Body::empty())
        }
    };
    built.unwrap_or_else(|e| error_json(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}

fn authorized(st: &State, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return token == st.token;
    }
    if let Some(encoded) = value.strip_prefix("Basic ") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", st.user, st.token);
        return decoded == expected.as_bytes();
    }
    false
}

// ---------------------------------------------------------------------------
// Query helpers
// ---------------------------------------------------------------------------

struct Q(Vec<(String, String)>);

impl Q {
    fn parse(raw: Option<String>) -> Q {
        Q(raw
            .map(|r| {
                url::form_urlencoded::parse(r.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable, comma-separable parameter.
    fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    fn num(&self, key: &str, default: usize) -> Result<usize, Box<Response>> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Box::new(error_json(StatusCode::BAD_REQUEST, &format!("bad {key}")))),
        }
    }

    /// The query with `start`/`limit`/`cursor` replaced, for `next` links.
    fn with_paging(&self, paging: &[(&str, String)]) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            if !paging.iter().any(|(p, _)| p == k) {
                ser.append_pair(k, v);
            }
        }
        for (k, v) in paging {
            ser.append_pair(k, v);
        }
        ser.finish()
    }
}

/// The statuses a listing asked for (`status=a,b` or repeated), or the
/// endpoint's default. `any` matches every status.
fn wanted_status(q: &Q, default: &[Status]) -> Vec<Status> {
    let asked = q.list("status");
    if asked.is_empty() {
        return default.to_vec();
    }
    if asked.iter().any(|s| s == "any") {
        return vec![Status::Current, Status::Archived, Status::Trashed];
    }
    [Status::Current, Status::Archived, Status::Trashed]
        .into_iter()
        .filter(|s| asked.iter().any(|a| a == s.as_str()))
        .collect()
}

/// v2 listings return current and archived items unless told otherwise.
const V2_DEFAULT_STATUS: &[Status] = &[Status::Current, Status::Archived];
/// v1 content endpoints return current items unless told otherwise.
const V1_DEFAULT_STATUS: &[Status] = &[Status::Current];

struct Expand {
    version: bool,
    ancestors: bool,
    restrictions: bool,
    labels: bool,
    body: bool,
    /// `body.view` / `body.export_view`: storage rendered to HTML.
    view: bool,
    export_view: bool,
    space: bool,
}

impl Expand {
    fn parse(q: &Q) -> Expand {
        let parts: Vec<String> = q.list("expand");
        let has = |p: &str| {
            parts
                .iter()
                .any(|e| e == p || e.starts_with(&format!("{p}.")))
        };
        Expand {
            version: has("version"),
            ancestors: has("ancestors"),
            restrictions: parts.iter().any(|e| e.starts_with("restrictions.read")),
            labels: has("metadata.labels") || has("labels"),
            body: has("body.storage"),
            view: has("body.view"),
            export_view: has("body.export_view"),
            space: has("space"),
        }
    }
}

fn ts(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn slug(title: &str) -> String {
    url::form_urlencoded::byte_serialize(title.as_bytes()).collect()
}

fn ct_name(ct: ContentType) -> &'static str {
    ct.as_str()
}

// ---------------------------------------------------------------------------
// REST v1 (Cloud under /wiki/rest/api, Data Center under /rest/api)
// ---------------------------------------------------------------------------

fn v1_webui(ctx: &Ctx, p: &SimPage) -> String {
    if ctx.cloud {
        cloud_webui(p)
    } else {
        format!("/pages/viewpage.action?pageId={}", p.id)
    }
}

/// The web UI path of an item on Cloud (relative to `/wiki`).
fn cloud_webui(p: &SimPage) -> String {
    match p.content_type {
        ContentType::Page => format!("/spaces/{}/pages/{}/{}", p.space_key, p.id, slug(&p.title)),
        ContentType::Blogpost => format!("/spaces/{}/blog/{}", p.space_key, p.id),
        other => format!("/spaces/{}/{}/{}", p.space_key, other.as_str(), p.id),
    }
}

fn v1_content(ctx: &Ctx, d: &Data, p: &SimPage, ex: &Expand) -> Value {
    let mut v = json!({
        "id": p.id.to_string(),
        "type": ct_name(p.content_type),
        "status": p.status.as_str(),
        "title": p.title,
        "_links": {
            "webui": v1_webui(ctx, p),
            "self": format!("{}/rest/api/content/{}", ctx.base(), p.id),
            "tinyui": format!("/x/{}", p.id),
        },
        "_expandable": {
            "container": format!("/rest/api/space/{}", p.space_key),
            "children": format!("/rest/api/content/{}/child", p.id),
        },
    });
    if ex.version {
        v["version"] = json!({
            "by": { "type": "known", "displayName": "Demo Author" },
            "when": ts(p.updated_at),
            "number": p.version,
            "minorEdit": false,
        });
    }
    if ex.space
        && let Some(s) = d.space(&p.space_key)
    {
        v["space"] = v1_space_json(ctx, s);
    }
    if ex.ancestors {
        let ancestors: Vec<Value> = d
            .ancestors(p)
            .into_iter()
            .map(|a| {
                json!({
                    "id": a.id.to_string(),
                    "type": ct_name(a.content_type),
                    "status": a.status.as_str(),
                    "title": a.title,
                    "_links": { "webui": v1_webui(ctx, a) },
                })
            })
            .collect();
        v["ancestors"] = Value::Array(ancestors);
    }
    if ex.restrictions {
        let (users, groups) = if p.restricted {
            (
                vec![
                    json!({ "type": "known", "username": "alice", "displayName": "Alice Example" }),
                ],
                vec![json!({ "type": "group", "name": "confluence-administrators" })],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        v["restrictions"] = json!({
            "read": {
                "operation": "read",
                "_expandable": { "content": format!("/rest/api/content/{}", p.id) },
                "_links": {
                    "self": format!("{}/rest/api/content/{}/restriction/byOperation/read", ctx.base(), p.id),
                },
                "restrictions": {
                    "user": { "results": users, "start": 0, "limit": 200, "size": users.len() },
                    "group": { "results": groups, "start": 0, "limit": 200, "size": groups.len() },
                },
            }
        });
    }
    if ex.labels {
        let labels: Vec<Value> = p
            .labels
            .iter()
            .map(|l| json!({ "prefix": "global", "name": l, "id": format!("lbl-{l}"), "label": l }))
            .collect();
        v["metadata"] = json!({
            "labels": { "results": labels, "start": 0, "limit": 200, "size": labels.len() }
        });
    }
    if ex.body || ex.view || ex.export_view {
        v["body"] = v1_extra::body_json(ctx, p, ex.body, ex.view, ex.export_view);
    }
    v
}

fn v1_space_json(ctx: &Ctx, s: &SimSpace) -> Value {
    let webui = if ctx.cloud {
        format!("/spaces/{}", s.key)
    } else {
        format!("/display/{}", s.key)
    };
    json!({
        "id": s.id,
        "key": s.key,
        "name": s.name,
        "type": s.kind,
        "status": "current",
        "_links": { "webui": webui, "self": format!("{}/rest/api/space/{}", ctx.base(), s.key) },
        "_expandable": {
            "homepage": s.homepage_id.map(|h| format!("/rest/api/content/{h}")).unwrap_or_default(),
            "description": "",
            "metadata": "",
            "icon": "",
        },
    })
}

/// A v1 `start/limit/size/results` page with `_links.next` when more remain.
/// Only the returned slice is rendered, so a request costs O(limit) JSON
/// work, not O(space size).
fn v1_page<T>(
    ctx: &Ctx,
    path: &str,
    q: &Q,
    all: Vec<T>,
    (start, limit): (usize, usize),
    build: impl FnMut(T) -> Value,
) -> Response {
    Json(v1_page_json(ctx, path, q, all, (start, limit), build)).into_response()
}

/// The body of [`v1_page`], so that a caller can serialize it after
/// releasing the data lock: Confluence renders concurrent requests side by
/// side, and one lock held while writing JSON would serialize them all.
fn v1_page_json<T>(
    ctx: &Ctx,
    path: &str,
    q: &Q,
    all: Vec<T>,
    (start, limit): (usize, usize),
    build: impl FnMut(T) -> Value,
) -> Value {
    let total = all.len();
    let results: Vec<Value> = all.into_iter().skip(start).take(limit).map(build).collect();
    let size = results.len();
    let mut links = json!({
        "base": ctx.base(),
        "context": ctx.context(),
        "self": format!("{}/rest/api{path}", ctx.base()),
    });
    if start + size < total {
        let next_start = (start + size).to_string();
        let query = if ctx.cloud && path == "/content/search" {
            q.with_paging(&[
                ("cursor", encode_cursor((start + size) as u64)),
                ("limit", limit.to_string()),
            ])
        } else {
            q.with_paging(&[("start", next_start), ("limit", limit.to_string())])
        };
        links["next"] = Value::String(format!("/rest/api{path}?{query}"));
    }
    json!({
        "results": results,
        "start": start,
        "limit": limit,
        "size": size,
        "_links": links,
    })
}

fn v1_limit(ctx: &Ctx, q: &Q, ex: &Expand) -> Result<usize, Box<Response>> {
    // Like Confluence, expanded bodies shrink the page size. Atlassian's
    // knowledge base (Server and Data Center, article 1032258424) gives a
    // CQL search 50 records with a body expansion and 200 with others; the
    // default `max_limit_v1` of 200 follows it.
    let cap = if ex.body || ex.view || ex.export_view {
        ctx.state.max_limit_v1.min(50)
    } else {
        ctx.state.max_limit_v1
    };
    Ok(q.num("limit", 25)?.clamp(1, cap))
}

async fn v1_user(AxState(ctx): AxState<Ctx>) -> Response {
    let user = &ctx.state.user;
    if ctx.cloud {
        Json(json!({
            "type": "known",
            "accountId": "557058:sim-user",
            "accountType": "atlassian",
            "email": user,
            "publicName": "Demo User",
            "displayName": "Demo User",
        }))
        .into_response()
    } else {
        Json(json!({
            "type": "known",
            "username": user,
            "userKey": "8a7f808a5f0d5c2c015f0d5c",
            "displayName": "Demo User",
        }))
        .into_response()
    }
}

async fn v1_space(AxState(ctx): AxState<Ctx>, Path(key): Path<String>) -> Response {
    let d = read(&ctx.state.data);
    match d.space(&key) {
        Some(s) => Json(v1_space_json(&ctx, s)).into_response(),
        None => error_json(StatusCode::NOT_FOUND, &format!("No space with key : {key}")),
    }
}

async fn v1_spaces(AxState(ctx): AxState<Ctx>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw);
    let (start, limit) = match (q.num("start", 0), q.num("limit", 25)) {
        (Ok(s), Ok(l)) => (s, l.clamp(1, ctx.state.max_limit_v1)),
        (Err(e), _) | (_, Err(e)) => return *e,
    };
    let kind = q.get("type").map(str::to_string);
    let d = read(&ctx.state.data);
    let all: Vec<&SimSpace> = d
        .spaces
        .iter()
        .filter(|s| kind.as_deref().is_none_or(|k| s.kind == k))
        .collect();
    v1_page(&ctx, "/space", &q, all, (start, limit), |s| {
        v1_space_json(&ctx, s)
    })
}

async fn v1_content_list(AxState(ctx): AxState<Ctx>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw);
    let ex = Expand::parse(&q);
    let (start, limit) = match (q.num("start", 0), v1_limit(&ctx, &q, &ex)) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) | (_, Err(e)) => return *e,
    };
    let kind = q.get("type").unwrap_or("page").to_string();
    if start > 0
        && let Some(id) = lock(&ctx.state.delete_mid_listing).take()
    {
        write(&ctx.state.data).pages.remove(&id);
    }
    let Some(space_key) = q.get("spaceKey") else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "spaceKey is required in this simulator",
        );
    };
    let body = {
        let d = read(&ctx.state.data);
        if d.space(space_key).is_none() {
            return error_json(
                StatusCode::NOT_FOUND,
                &format!("No space with key : {space_key}"),
            );
        }
        let statuses = wanted_status(&q, V1_DEFAULT_STATUS);
        let all: Vec<&SimPage> = d
            .pages
            .values()
            .filter(|p| p.space_key == space_key && ct_name(p.content_type) == kind)
            .filter(|p| statuses.contains(&p.status))
            .collect();
        v1_page_json(&ctx, "/content", &q, all, (start, limit), |p| {
            v1_content(&ctx, &d, p, &ex)
        })
    };
    Json(body).into_response()
}

async fn v1_content_get(
    AxState(ctx): AxState<Ctx>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = Q::parse(raw);
    let ex = Expand::parse(&q);
    let statuses = wanted_status(&q, V1_DEFAULT_STATUS);
    let hidden = lock(&ctx.state.hidden).clone();
    let d = read(&ctx.state.data);
    match id
        .parse::<u64>()
        .ok()
        .and_then(|id| d.pages.get(&id))
        .filter(|p| statuses.contains(&p.status) && !hidden.contains(&p.id))
    {
        Some(p) => Json(v1_content(&ctx, &d, p, &ex)).into_response(),
        None => error_json(StatusCode::NOT_FOUND, "No content found with id"),
    }
}

/// The CQL subset clients use: `space = "KEY"`, `type = x` / `type in (..)`,
/// `id = n` / `id in (..)`, joined by `and`.
#[derive(Default)]
struct Cql {
    space: Option<String>,
    types: Option<Vec<String>>,
    ids: Option<Vec<u64>>,
    order: Option<CqlOrder>,
}

/// A CQL `order by <field> [asc|desc]` the simulator can sort by.
#[derive(Clone, Copy)]
struct CqlOrder {
    field: CqlSortField,
    descending: bool,
}

#[derive(Clone, Copy)]
enum CqlSortField {
    Created,
    LastModified,
    Title,
}

impl CqlOrder {
    fn parse(clause: &str) -> Result<CqlOrder, String> {
        let mut words = clause.split_whitespace();
        let field = words.next().ok_or("missing field after ORDER BY")?;
        let (field, default_descending) = match field.to_ascii_lowercase().as_str() {
            // Confluence sorts dates newest first unless told otherwise.
            "created" => (CqlSortField::Created, true),
            "lastmodified" => (CqlSortField::LastModified, true),
            "title" => (CqlSortField::Title, false),
            other => return Err(format!("cannot order by {other:?}")),
        };
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None => default_descending,
            Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(format!("unexpected {other:?} in ORDER BY")),
        };
        if let Some(extra) = words.next() {
            return Err(format!("unexpected {extra:?} in ORDER BY"));
        }
        Ok(CqlOrder { field, descending })
    }

    /// Sorts `pages` by the field, ties by id, so that the descending order
    /// is exactly the ascending one reversed.
    fn sort(self, pages: &mut [&SimPage]) {
        match self.field {
            CqlSortField::Created => pages.sort_by_key(|p| (p.created_at, p.id)),
            CqlSortField::LastModified => pages.sort_by_key(|p| (p.updated_at, p.id)),
            CqlSortField::Title => pages.sort_by(|a, b| (&a.title, a.id).cmp(&(&b.title, b.id))),
        }
        if self.descending {
            pages.reverse();
        }
    }
}

/// Splits `… order by …` off a CQL query.
fn split_order_by(cql: &str) -> Result<(&str, Option<CqlOrder>), String> {
    let lower = cql.to_ascii_lowercase();
    let Some(at) = lower.find("order by") else {
        return Ok((cql, None));
    };
    let order = CqlOrder::parse(&cql[at + "order by".len()..])?;
    Ok((cql[..at].trim_end(), Some(order)))
}

fn parse_cql(cql: &str) -> Result<Cql, String> {
    let mut out = Cql::default();
    let (cql, order) = split_order_by(cql)?;
    out.order = order;
    for clause in split_and(cql) {
        let clause = clause.trim();
        let lower = clause.to_ascii_lowercase();
        let (field, op_rest) = lower
            .split_once(|c: char| c == '=' || c.is_whitespace())
            .ok_or_else(|| format!("cannot parse CQL clause {clause:?}"))?;
        let field = field.trim();
        let value_part = clause[field.len()..].trim();
        let values: Vec<String> = if let Some(rest) = value_part.strip_prefix('=') {
            vec![unquote(rest.trim())]
        } else if op_rest.trim_start().starts_with("in") {
            let open = value_part.find('(').ok_or("missing ( in CQL")?;
            let close = value_part.rfind(')').ok_or("missing ) in CQL")?;
            value_part
                .get(open + 1..close)
                .unwrap_or_default()
                .split(',')
                .map(|v| unquote(v.trim()))
                .filter(|v| !v.is_empty())
                .collect()
        } else {
            return Err(format!("unsupported CQL operator in {clause:?}"));
        };
        match field {
            "space" => out.space = values.into_iter().next(),
            "type" => out.types = Some(values),
            "id" => {
                out.ids = Some(
                    values
                        .iter()
                        .map(|v| v.parse::<u64>().map_err(|_| format!("bad id {v:?}")))
                        .collect::<Result<_, _>>()?,
                )
            }
            f => return Err(format!("unsupported CQL field {f:?}")),
        }
    }
    Ok(out)
}

fn split_and(cql: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let lower = cql.to_ascii_lowercase();
    let mut rest_start = 0;
    let mut search_from = 0;
    while let Some(pos) = lower[search_from..].find(" and ") {
        let at = search_from + pos;
        parts.push(&cql[rest_start..at]);
        rest_start = at + 5;
        search_from = rest_start;
    }
    parts.push(&cql[rest_start..]);
    parts
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '\'')
        .replace("\\\"", "\"")
}

async fn v1_search(AxState(ctx): AxState<Ctx>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw);
    let ex = Expand::parse(&q);
    // Cloud pages search results with an opaque `cursor` (its API has no
    // `start` there); Data Center with `start`.
    let start = if ctx.cloud {
        match q.get("cursor").map(decode_cursor) {
            None => Ok(0),
            Some(Some(offset)) => Ok(offset as usize),
            Some(None) => return error_json(StatusCode::BAD_REQUEST, "invalid cursor"),
        }
    } else {
        q.num("start", 0)
    };
    let (start, limit) = match (start, v1_limit(&ctx, &q, &ex)) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) | (_, Err(e)) => return *e,
    };
    let cql = match parse_cql(q.get("cql").unwrap_or_default()) {
        Ok(c) => c,
        Err(e) => return error_json(StatusCode::BAD_REQUEST, &e),
    };
    let d = read(&ctx.state.data);
    let mut all: Vec<&SimPage> = candidates(&d, cql.ids.as_deref())
        .filter(|p| p.status == Status::Current)
        .filter(|p| cql.space.as_deref().is_none_or(|s| p.space_key == s))
        .filter(|p| {
            cql.types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == ct_name(p.content_type)))
        })
        .collect();
    if let Some(order) = cql.order {
        order.sort(&mut all);
    }
    v1_page(&ctx, "/content/search", &q, all, (start, limit), |p| {
        v1_content(&ctx, &d, p, &ex)
    })
}

// ---------------------------------------------------------------------------
// REST v2 (Cloud, /wiki/api/v2)
// ---------------------------------------------------------------------------

fn encode_cursor(last_id: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{last_id}"))
}

fn decode_cursor(c: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("after:")?.parse().ok()
}

/// The order of a v2 listing by id (`sort=id`, the default, or `sort=-id`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum IdOrder {
    Ascending,
    Descending,
}

impl IdOrder {
    /// The `sort` of a space's page or blog post listing. Cloud's other
    /// sort fields (dates, title) are not simulated: asking for one is a
    /// 400 here rather than an answer in the wrong order.
    fn of(q: &Q, allowed: &[&str]) -> Result<IdOrder, Box<Response>> {
        match q.get("sort") {
            None | Some("id") => Ok(IdOrder::Ascending),
            Some("-id") => Ok(IdOrder::Descending),
            Some(other) if allowed.contains(&other) => Err(Box::new(error_json(
                StatusCode::BAD_REQUEST,
                &format!("sort {other:?} is not supported by the simulator"),
            ))),
            Some(other) => Err(Box::new(error_json(
                StatusCode::BAD_REQUEST,
                &format!("Invalid value for sort: {other:?}"),
            ))),
        }
    }

    /// Whether `id` comes after the cursor's `last` in this order.
    fn after(self, id: u64, last: u64) -> bool {
        match self {
            IdOrder::Ascending => id > last,
            IdOrder::Descending => id < last,
        }
    }
}

/// `PageSortOrder` of Atlassian's v2 document.
const PAGE_SORTS: &[&str] = &[
    "id",
    "-id",
    "created-date",
    "-created-date",
    "modified-date",
    "-modified-date",
    "title",
    "-title",
];

/// `BlogPostSortOrder` of Atlassian's v2 document.
const BLOGPOST_SORTS: &[&str] = &[
    "id",
    "-id",
    "created-date",
    "-created-date",
    "modified-date",
    "-modified-date",
];

/// A v2 cursor page of items in ascending id order; the cursor is the last
/// id.
fn v2_page_of<T>(
    st: &State,
    path: &str,
    q: &Q,
    items: Vec<(u64, T)>,
    build: impl FnMut(T) -> Value,
) -> Response {
    v2_page_in(st, path, q, items, IdOrder::Ascending, build)
}

/// A v2 cursor page of items sorted in `order` (the caller's order); the
/// cursor is the last id, and the next page starts past it in that order.
fn v2_page_in<T>(
    st: &State,
    path: &str,
    q: &Q,
    items: Vec<(u64, T)>,
    order: IdOrder,
    mut build: impl FnMut(T) -> Value,
) -> Response {
    let limit = match q.num("limit", 25) {
        Ok(l) => l.clamp(1, st.max_limit_v2),
        Err(e) => return *e,
    };
    let after = match q.get("cursor") {
        None => None,
        Some(c) => match decode_cursor(c) {
            Some(id) => Some(id),
            None => return error_json(StatusCode::BAD_REQUEST, "invalid cursor"),
        },
    };
    let mut rest = items
        .into_iter()
        .filter(|(id, _)| after.is_none_or(|a| order.after(*id, a)));
    let page: Vec<(u64, T)> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let mut links = json!({ "base": format!("{}/wiki", st.origin) });
    let mut headers = HeaderMap::new();
    if more && let Some((last, _)) = page.last() {
        let query = q.with_paging(&[
            ("cursor", encode_cursor(*last)),
            ("limit", limit.to_string()),
        ]);
        let next = format!("/wiki/api/v2{path}?{query}");
        if let Ok(v) = HeaderValue::from_str(&format!(
            "<{next}>; rel=\"next\", <{}/wiki>; rel=\"base\"",
            st.origin
        )) {
            headers.insert(header::LINK, v);
        }
        links["next"] = Value::String(next);
    }
    let results: Vec<Value> = page.into_iter().map(|(_, v)| build(v)).collect();
    (
        headers,
        Json(json!({ "results": results, "_links": links })),
    )
        .into_response()
}

fn v2_content(d: &Data, p: &SimPage, body: bool) -> Value {
    let space_id = d.space(&p.space_key).map_or(0, |s| s.id);
    let webui = cloud_webui(p);
    let mut v = json!({
        "id": p.id.to_string(),
        "status": p.status.as_str(),
        "title": p.title,
        "spaceId": space_id.to_string(),
        "authorId": "557058:sim-author",
        "createdAt": ts(p.created_at),
        "version": {
            "createdAt": ts(p.updated_at),
            "message": "",
            "number": p.version,
            "minorEdit": false,
            "authorId": "557058:sim-author",
        },
        "_links": { "webui": webui, "editui": format!("/pages/resumedraft.action?draftId={}", p.id), "tinyui": format!("/x/{}", p.id) },
    });
    if p.content_type == ContentType::Page {
        // The spec types both as non-nullable strings: a top-level page
        // has neither.
        if let Some(parent) = p.parent_id {
            v["parentId"] = Value::String(parent.to_string());
            v["parentType"] = parent_type(d, p);
        }
        v["position"] = json!(p.id % 1000);
    }
    v["body"] = if body {
        json!({ "storage": { "representation": "storage", "value": p.body } })
    } else {
        json!({})
    };
    v
}

/// v2 `parentType`: the wire name of the parent's content type.
fn parent_type(d: &Data, p: &SimPage) -> Value {
    p.parent_id
        .and_then(|id| d.pages.get(&id))
        .map_or(Value::Null, |parent| json!(ct_name(parent.content_type)))
}

fn v2_space_json(s: &SimSpace) -> Value {
    json!({
        "id": s.id.to_string(),
        "key": s.key,
        "name": s.name,
        "type": s.kind,
        "status": "current",
        "authorId": "557058:sim-author",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "homepageId": s.homepage_id.map(|h| h.to_string()),
        "_links": { "webui": format!("/spaces/{}", s.key) },
    })
}

async fn v2_spaces(AxState(st): AxState<St>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw);
    let keys = q.list("keys");
    let kinds = q.list("type");
    let d = read(&st.data);
    let mut items: Vec<(u64, &SimSpace)> = d
        .spaces
        .iter()
        .filter(|s| keys.is_empty() || keys.contains(&s.key))
        .filter(|s| kinds.is_empty() || kinds.contains(&s.kind))
        .map(|s| (s.id, s))
        .collect();
    items.sort_by_key(|(id, _)| *id);
    v2_page_of(&st, "/spaces", &q, items, v2_space_json)
}

async fn v2_space_items(st: St, id: String, raw: Option<String>, ct: ContentType) -> Response {
    let q = Q::parse(raw);
    let body = q.get("body-format") == Some("storage");
    let d = read(&st.data);
    let Some(space) = id.parse::<u64>().ok().and_then(|id| d.space_by_id(id)) else {
        return error_json(StatusCode::NOT_FOUND, "Space not found");
    };
    let sorts = if ct == ContentType::Page {
        PAGE_SORTS
    } else {
        BLOGPOST_SORTS
    };
    let order = match IdOrder::of(&q, sorts) {
        Ok(o) => o,
        Err(e) => return *e,
    };
    let statuses = wanted_status(&q, V2_DEFAULT_STATUS);
    let mut items: Vec<(u64, &SimPage)> = d
        .pages
        .values()
        .filter(|p| p.space_key == space.key && p.content_type == ct)
        .filter(|p| statuses.contains(&p.status))
        .map(|p| (p.id, p))
        .collect();
    if order == IdOrder::Descending {
        items.reverse();
    }
    let path = format!(
        "/spaces/{id}/{}",
        if ct == ContentType::Page {
            "pages"
        } else {
            "blogposts"
        }
    );
    v2_page_in(&st, &path, &q, items, order, |p| v2_content(&d, p, body))
}

async fn v2_space_pages(
    AxState(st): AxState<St>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    v2_space_items(st, id, raw, ContentType::Page).await
}

async fn v2_space_blogposts(
    AxState(st): AxState<St>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    v2_space_items(st, id, raw, ContentType::Blogpost).await
}

/// Pages with the given ids (by lookup, id order), or every page.
fn candidates<'d>(d: &'d Data, ids: Option<&[u64]>) -> Box<dyn Iterator<Item = &'d SimPage> + 'd> {
    match ids {
        Some(ids) => {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids.dedup();
            Box::new(ids.into_iter().filter_map(|id| d.pages.get(&id)))
        }
        None => Box::new(d.pages.values()),
    }
}

fn v2_bulk(st: &State, raw: Option<String>, ct: ContentType, path: &str) -> Response {
    let q = Q::parse(raw);
    let body = q.get("body-format") == Some("storage");
    let ids: Vec<u64> = q.list("id").iter().filter_map(|i| i.parse().ok()).collect();
    let spaces: Vec<u64> = q
        .list("space-id")
        .iter()
        .filter_map(|i| i.parse().ok())
        .collect();
    let d = read(&st.data);
    let wanted = (!ids.is_empty()).then_some(ids.as_slice());
    let statuses = wanted_status(&q, V2_DEFAULT_STATUS);
    let items: Vec<(u64, &SimPage)> = candidates(&d, wanted)
        .filter(|p| p.content_type == ct)
        .filter(|p| statuses.contains(&p.status))
        .filter(|p| {
            spaces.is_empty()
                || d.space(&p.space_key)
                    .is_some_and(|s| spaces.contains(&s.id))
        })
        .map(|p| (p.id, p))
        .collect();
    v2_page_of(st, path, &q, items, |p| v2_content(&d, p, body))
}

async fn v2_pages(AxState(st): AxState<St>, RawQuery(raw): RawQuery) -> Response {
    v2_bulk(&st, raw, ContentType::Page, "/pages")
}

async fn v2_blogposts(AxState(st): AxState<St>, RawQuery(raw): RawQuery) -> Response {
    v2_bulk(&st, raw, ContentType::Blogpost, "/blogposts")
}

async fn v2_page(
    AxState(st): AxState<St>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    v2_single(&st, &id, raw, ContentType::Page)
}

async fn v2_blogpost(
    AxState(st): AxState<St>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    v2_single(&st, &id, raw, ContentType::Blogpost)
}

/// `GET /pages/{id}` and `/blogposts/{id}`: only items of that type.
fn v2_single(st: &State, id: &str, raw: Option<String>, ct: ContentType) -> Response {
    let q = Q::parse(raw);
    let body = q.get("body-format") == Some("storage");
    let hidden = lock(&st.hidden).clone();
    let d = read(&st.data);
    match id
        .parse::<u64>()
        .ok()
        .and_then(|id| d.pages.get(&id))
        .filter(|p| p.content_type == ct && !hidden.contains(&p.id))
    {
        Some(p) => {
            let mut v = v2_content(&d, p, body);
            v["_links"]["base"] = Value::String(format!("{}/wiki", st.origin));
            Json(v).into_response()
        }
        None => error_json(StatusCode::NOT_FOUND, "Page not found"),
    }
}

// ---------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------

/// A page or blog post to create (`POST /_sim/pages`, [`super::Simulator::create`]).
#[derive(Debug, Clone, Deserialize)]
pub struct NewPage {
    pub space_key: String,
    pub title: String,
    #[serde(default)]
    pub parent_id: Option<u64>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default = "default_ct")]
    pub content_type: ContentType,
}

fn default_ct() -> ContentType {
    ContentType::Page
}

#[derive(Debug, Clone, Deserialize)]
struct EditPage {
    title: Option<String>,
    body: Option<String>,
    labels: Option<Vec<String>>,
}

pub(crate) fn create_page(st: &State, new: NewPage) -> Result<u64, SimError> {
    let mut d = write(&st.data);
    if d.space(&new.space_key).is_none() {
        return Err(SimError::NoSuchSpace(new.space_key));
    }
    if let Some(parent) = new.parent_id {
        match d.pages.get(&parent) {
            Some(p) if p.space_key == new.space_key => {}
            _ => {
                return Err(SimError::Invalid(format!(
                    "parent {parent} is not in {}",
                    new.space_key
                )));
            }
        }
    }
    let id = d.next_id;
    d.next_id += 1;
    let now = jiff::Timestamp::now();
    d.pages.insert(
        id,
        SimPage {
            id,
            space_key: new.space_key,
            content_type: new.content_type,
            title: new.title,
            parent_id: new.parent_id,
            version: 1,
            body: new.body.unwrap_or_else(|| "<p>New page.</p>".into()),
            labels: new.labels,
            restricted: false,
            status: Status::Current,
            created_at: now,
            updated_at: now,
        },
    );
    Ok(id)
}

pub(crate) fn edit_page(
    st: &State,
    id: u64,
    title: Option<String>,
    body: Option<String>,
    labels: Option<Vec<String>>,
) -> Result<u64, SimError> {
    let mut d = write(&st.data);
    let page = d.pages.get_mut(&id).ok_or(SimError::NoSuchPage(id))?;
    if let Some(t) = title {
        page.title = t;
    }
    if let Some(b) = body {
        page.body = b;
    }
    if let Some(l) = labels {
        page.labels = l;
    }
    page.version += 1;
    page.updated_at = jiff::Timestamp::now();
    Ok(page.version)
}

fn sim_error(e: SimError) -> Response {
    let status = match e {
        SimError::NoSuchPage(_) | SimError::NoSuchSpace(_) => StatusCode::NOT_FOUND,
        SimError::Invalid(_) => StatusCode::BAD_REQUEST,
        SimError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_json(status, &e.to_string())
}

async fn admin_stats(AxState(st): AxState<St>) -> Json<Stats> {
    Json(lock(&st.stats).clone())
}

async fn admin_reset(AxState(st): AxState<St>) -> StatusCode {
    *lock(&st.stats) = Stats::default();
    StatusCode::NO_CONTENT
}

async fn admin_spaces(AxState(st): AxState<St>) -> Json<Value> {
    let d = read(&st.data);
    let mut counts: HashMap<&str, (u64, u64)> = HashMap::new();
    for p in d.pages.values() {
        let c = counts.entry(p.space_key.as_str()).or_default();
        match p.content_type {
            ContentType::Page => c.0 += 1,
            ContentType::Blogpost => c.1 += 1,
            _ => {}
        }
    }
    let spaces: Vec<Value> = d
        .spaces
        .iter()
        .map(|s| {
            let (pages, blogposts) = counts.get(s.key.as_str()).copied().unwrap_or_default();
            json!({ "id": s.id, "key": s.key, "name": s.name, "type": s.kind, "pages": pages, "blogposts": blogposts })
        })
        .collect();
    Json(Value::Array(spaces))
}

async fn admin_create(AxState(st): AxState<St>, Json(new): Json<NewPage>) -> Response {
    match create_page(&st, new) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id, "version": 1 }))).into_response(),
        Err(e) => sim_error(e),
    }
}

async fn admin_get(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
    match read(&st.data).pages.get(&id) {
        Some(p) => Json(p.clone()).into_response(),
        None => sim_error(SimError::NoSuchPage(id)),
    }
}

async fn admin_edit(
    AxState(st): AxState<St>,
    Path(id): Path<u64>,
    Json(edit): Json<EditPage>,
) -> Response {
    match edit_page(&st, id, edit.title, edit.body, edit.labels) {
        Ok(version) => Json(json!({ "id": id, "version": version })).into_response(),
        Err(e) => sim_error(e),
    }
}

async fn admin_delete(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
    match write(&st.data).pages.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => sim_error(SimError::NoSuchPage(id)),
    }
}

fn restrict(st: &State, id: u64, on: bool) -> Response {
    match write(&st.data).pages.get_mut(&id) {
        Some(p) => {
            p.restricted = on;
            StatusCode::NO_CONTENT.into_response()
        }
        None => sim_error(SimError::NoSuchPage(id)),
    }
}

async fn admin_restrict(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
    restrict(&st, id, true)
}

async fn admin_unrestrict(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
    restrict(&st, id, false)
}

async fn admin_faults(AxState(st): AxState<St>) -> Json<super::FaultConfig> {
    Json(lock(&st.faults).0.clone())
}

async fn admin_set_faults(
    AxState(st): AxState<St>,
    Json(f): Json<super::FaultConfig>,
) -> StatusCode {
    lock(&st.faults).0 = f;
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cql_subset() {
        let c = parse_cql("space=\"ENG\" and type in (page,blogpost)").unwrap();
        assert_eq!(c.space.as_deref(), Some("ENG"));
        assert_eq!(
            c.types,
            Some(vec!["page".to_string(), "blogpost".to_string()])
        );
        let c = parse_cql("id in (1, 2,3)").unwrap();
        assert_eq!(c.ids, Some(vec![1, 2, 3]));
        let c = parse_cql("type = page AND space = OPS").unwrap();
        assert_eq!(c.space.as_deref(), Some("OPS"));
        assert!(parse_cql("title ~ \"x\"").is_err());
        let c = parse_cql("space=\"ENG\" and type in (page) order by created desc").unwrap();
        assert_eq!(c.space.as_deref(), Some("ENG"));
        assert!(c.order.is_some_and(|o| o.descending));
        let c = parse_cql("space = ENG ORDER BY created ASC").unwrap();
        assert!(c.order.is_some_and(|o| !o.descending));
        assert!(parse_cql("space = ENG order by label").is_err());
        assert!(parse_cql("space = ENG order by created sideways").is_err());
    }

    #[test]
    fn cursor_roundtrip() {
        assert_eq!(decode_cursor(&encode_cursor(12345)), Some(12345));
        assert_eq!(decode_cursor("garbage"), None);
    }
}
