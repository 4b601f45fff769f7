//! What every API request passes through: request counting, authentication
//! and fault injection.

use super::{St, error_json};
use crate::{Hostile, State, lock};
use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use rand::Rng as _;
use std::time::Duration;
pub(super) async fn count(AxState(st): AxState<St>, req: Request, next: Next) -> Response {
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
pub(super) async fn faults_and_auth(st: AxState<St>, req: Request, next: Next) -> Response {
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
