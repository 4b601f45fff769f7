//! Cloud v2 endpoints of the non-page items a page can sit below in the page
//! tree: folders, whiteboards and databases (`GET /folders/{id}`, ...).

use super::{St, State, cloud_webui, ct_name, error_json, lock, read, ts};
use crate::data::{ContentType, SimPage};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The `*Single` shape the spec gives folders, whiteboards and databases.
/// `parentId`/`parentType` are omitted at the top of the tree: the spec
/// types them as non-nullable strings.
fn single(st: &State, id: &str, ct: ContentType) -> Response {
    let hidden = lock(&st.hidden).clone();
    let d = read(&st.data);
    let Some(item) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| d.pages.get(&id))
        .filter(|p| p.content_type == ct && !hidden.contains(&p.id))
    else {
        return error_json(StatusCode::NOT_FOUND, "Content not found");
    };
    let mut v = json!({
        "id": item.id.to_string(),
        "type": ct_name(item.content_type),
        "status": "current",
        "title": item.title,
        "position": item.id % 1000,
        "authorId": "557058:sim-author",
        "ownerId": "557058:sim-author",
        "createdAt": ts(item.created_at),
        "version": version(item),
        "_links": { "webui": cloud_webui(item), "base": format!("{}/wiki", st.origin) },
    });
    if let Some(parent) = item.parent_id.and_then(|p| d.pages.get(&p)) {
        v["parentId"] = json!(parent.id.to_string());
        v["parentType"] = json!(ct_name(parent.content_type));
    }
    Json(v).into_response()
}

fn version(item: &SimPage) -> serde_json::Value {
    json!({
        "createdAt": ts(item.updated_at),
        "message": "",
        "number": item.version,
        "minorEdit": false,
        "authorId": "557058:sim-author",
    })
}

pub(super) async fn v2_folder(AxState(st): AxState<St>, Path(id): Path<String>) -> Response {
    single(&st, &id, ContentType::Folder)
}

pub(super) async fn v2_whiteboard(AxState(st): AxState<St>, Path(id): Path<String>) -> Response {
    single(&st, &id, ContentType::Whiteboard)
}

pub(super) async fn v2_database(AxState(st): AxState<St>, Path(id): Path<String>) -> Response {
    single(&st, &id, ContentType::Database)
}
