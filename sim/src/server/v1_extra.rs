//! v1 endpoints and representations that widely used third-party clients
//! call (LangChain's ConfluenceLoader, LlamaIndex's ConfluenceReader, both
//! through atlassian-python-api), shaped like Atlassian's published v1 spec.

use super::{Ctx, error_json, read};
use crate::data::SimPage;
use crate::render::{ViewLinks, view_html};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The `body` object for the requested representations.
pub(super) fn body_json(ctx: &Ctx, p: &SimPage, storage: bool, view: bool, export: bool) -> Value {
    let mut body = serde_json::Map::new();
    let base = ctx.base();
    let rendered = (view || export).then(|| {
        view_html(
            &p.body,
            &ViewLinks {
                base: &base,
                space_key: &p.space_key,
                page_id: p.id,
            },
        )
    });
    let mut expandable = serde_json::Map::new();
    for (name, wanted) in [
        ("storage", storage),
        ("view", view),
        ("export_view", export),
    ] {
        let value = match name {
            "storage" => Some(p.body.clone()),
            _ => rendered.clone(),
        };
        match value {
            Some(v) if wanted => {
                body.insert(
                    name.to_string(),
                    json!({ "value": v, "representation": name, "embeddedContent": [], "_expandable": { "content": format!("/rest/api/content/{}", p.id) } }),
                );
            }
            _ => {
                expandable.insert(name.to_string(), json!(""));
            }
        }
    }
    body.insert("_expandable".to_string(), Value::Object(expandable));
    Value::Object(body)
}

fn principals(p: &SimPage) -> (Vec<Value>, Vec<Value>) {
    if p.restricted {
        (
            vec![json!({
                "type": "known", "username": "alice", "userKey": "8a7f808a5f0d5c2c015f0d5d",
                "accountId": "557058:alice", "displayName": "Alice Example",
                "_links": {}, "_expandable": {}
            })],
            vec![
                json!({ "type": "group", "name": "confluence-administrators", "id": "g-admins", "_links": {} }),
            ],
        )
    } else {
        (Vec::new(), Vec::new())
    }
}

/// `restrictions` of one operation: who may, as user and group arrays.
fn restriction(ctx: &Ctx, p: &SimPage, op: &str, users: Vec<Value>, groups: Vec<Value>) -> Value {
    let base = ctx.base();
    json!({
        "operation": op,
        "restrictions": {
            "user": { "results": users, "start": 0, "limit": 200, "size": users.len(), "_links": {} },
            "group": { "results": groups, "start": 0, "limit": 200, "size": groups.len(), "_links": {} },
        },
        "_expandable": { "content": format!("/rest/api/content/{}", p.id) },
        "_links": { "self": format!("{base}/rest/api/content/{}/restriction/byOperation/{op}", p.id), "base": base, "context": ctx.context() },
    })
}

/// `GET …/content/{id}/restriction/byOperation`: an object keyed by
/// operation. The simulator's view restriction limits `read` (and, as
/// Confluence requires of a read restriction's principals, `update`).
pub(super) async fn restrictions_by_operation(
    AxState(ctx): AxState<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let d = read(&ctx.state.data);
    let Some(p) = id.parse::<u64>().ok().and_then(|id| d.pages.get(&id)) else {
        return error_json(StatusCode::NOT_FOUND, "No content found with id");
    };
    let (users, groups) = principals(p);
    let read = restriction(&ctx, p, "read", users.clone(), groups.clone());
    let update = restriction(&ctx, p, "update", users, groups);
    Json(json!({ "read": read, "update": update })).into_response()
}
