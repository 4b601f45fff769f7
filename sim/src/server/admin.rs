//! The admin API (`/_sim/...`): statistics, pages, restrictions and faults.

use super::{St, error_json};
use crate::data::{ContentType, SimPage, Status};
use crate::{SimError, State, Stats, lock, read, write};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
/// A page or blog post to create (`POST /_sim/pages`, [`crate::Simulator::create`]).
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
pub(super) struct EditPage {
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

pub(super) async fn admin_stats(AxState(st): AxState<St>) -> Json<Stats> {
    Json(lock(&st.stats).clone())
}

pub(super) async fn admin_reset(AxState(st): AxState<St>) -> StatusCode {
    *lock(&st.stats) = Stats::default();
    StatusCode::NO_CONTENT
}

pub(super) async fn admin_spaces(AxState(st): AxState<St>) -> Json<Value> {
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

pub(super) async fn admin_create(AxState(st): AxState<St>, Json(new): Json<NewPage>) -> Response {
    match create_page(&st, new) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id, "version": 1 }))).into_response(),
        Err(e) => sim_error(e),
    }
}

pub(super) async fn admin_get(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
    match read(&st.data).pages.get(&id) {
        Some(p) => Json(p.clone()).into_response(),
        None => sim_error(SimError::NoSuchPage(id)),
    }
}

pub(super) async fn admin_edit(
    AxState(st): AxState<St>,
    Path(id): Path<u64>,
    Json(edit): Json<EditPage>,
) -> Response {
    match edit_page(&st, id, edit.title, edit.body, edit.labels) {
        Ok(version) => Json(json!({ "id": id, "version": version })).into_response(),
        Err(e) => sim_error(e),
    }
}

pub(super) async fn admin_delete(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
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

pub(super) async fn admin_restrict(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
    restrict(&st, id, true)
}

pub(super) async fn admin_unrestrict(AxState(st): AxState<St>, Path(id): Path<u64>) -> Response {
    restrict(&st, id, false)
}

pub(super) async fn admin_faults(AxState(st): AxState<St>) -> Json<crate::FaultConfig> {
    Json(lock(&st.faults).0.clone())
}

pub(super) async fn admin_set_faults(
    AxState(st): AxState<St>,
    Json(f): Json<crate::FaultConfig>,
) -> StatusCode {
    lock(&st.faults).0 = f;
    StatusCode::NO_CONTENT
}
