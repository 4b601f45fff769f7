//! REST v1: Cloud under `/wiki/rest/api`, Data Center under `/rest/api`.

use super::cql::parse_cql;
use super::query::{Expand, Q, V1_DEFAULT_STATUS, decode_cursor, encode_cursor, wanted_status};
use super::v1_extra;
use super::v2::candidates;
use super::{Ctx, cloud_webui, ct_name, error_json, ts};
use crate::data::{Data, SimPage, SimSpace, Status};
use crate::{lock, read, write};
use axum::Json;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
fn v1_webui(ctx: &Ctx, p: &SimPage) -> String {
    if ctx.cloud {
        cloud_webui(p)
    } else {
        format!("/pages/viewpage.action?pageId={}", p.id)
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

pub(super) async fn v1_user(AxState(ctx): AxState<Ctx>) -> Response {
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

pub(super) async fn v1_space(AxState(ctx): AxState<Ctx>, Path(key): Path<String>) -> Response {
    let d = read(&ctx.state.data);
    match d.space(&key) {
        Some(s) => Json(v1_space_json(&ctx, s)).into_response(),
        None => error_json(StatusCode::NOT_FOUND, &format!("No space with key : {key}")),
    }
}

pub(super) async fn v1_spaces(AxState(ctx): AxState<Ctx>, RawQuery(raw): RawQuery) -> Response {
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

pub(super) async fn v1_content_list(
    AxState(ctx): AxState<Ctx>,
    RawQuery(raw): RawQuery,
) -> Response {
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

pub(super) async fn v1_content_get(
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

pub(super) async fn v1_search(AxState(ctx): AxState<Ctx>, RawQuery(raw): RawQuery) -> Response {
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
