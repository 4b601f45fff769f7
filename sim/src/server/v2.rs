//! REST v2 (Cloud, `/wiki/api/v2`).

use super::query::{Q, V2_DEFAULT_STATUS, decode_cursor, encode_cursor, wanted_status};
use super::{St, cloud_webui, ct_name, error_json, ts};
use crate::data::{ContentType, Data, SimPage, SimSpace};
use crate::{State, lock, read};
use axum::Json;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
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

pub(super) async fn v2_spaces(AxState(st): AxState<St>, RawQuery(raw): RawQuery) -> Response {
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

pub(super) async fn v2_space_pages(
    AxState(st): AxState<St>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    v2_space_items(st, id, raw, ContentType::Page).await
}

pub(super) async fn v2_space_blogposts(
    AxState(st): AxState<St>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    v2_space_items(st, id, raw, ContentType::Blogpost).await
}

/// Pages with the given ids (by lookup, id order), or every page.
pub(super) fn candidates<'d>(
    d: &'d Data,
    ids: Option<&[u64]>,
) -> Box<dyn Iterator<Item = &'d SimPage> + 'd> {
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

pub(super) async fn v2_pages(AxState(st): AxState<St>, RawQuery(raw): RawQuery) -> Response {
    v2_bulk(&st, raw, ContentType::Page, "/pages")
}

pub(super) async fn v2_blogposts(AxState(st): AxState<St>, RawQuery(raw): RawQuery) -> Response {
    v2_bulk(&st, raw, ContentType::Blogpost, "/blogposts")
}

pub(super) async fn v2_page(
    AxState(st): AxState<St>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    v2_single(&st, &id, raw, ContentType::Page)
}

pub(super) async fn v2_blogpost(
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
