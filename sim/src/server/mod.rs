//! HTTP side of the simulator: Cloud v2 and v1, Data Center v1, the admin
//! API, authentication, request counting and fault injection.

use super::data::{ContentType, SimPage};
use super::{State, lock, read};
use admin::{
    admin_create, admin_delete, admin_edit, admin_faults, admin_get, admin_reset, admin_restrict,
    admin_set_faults, admin_spaces, admin_stats, admin_unrestrict,
};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use middleware::{count, faults_and_auth};
use serde_json::json;
use std::sync::Arc;
use v1::{v1_content_get, v1_content_list, v1_search, v1_space, v1_spaces, v1_user};
use v2::{
    v2_blogpost, v2_blogposts, v2_page, v2_pages, v2_space_blogposts, v2_space_pages, v2_spaces,
};

type St = Arc<State>;

mod admin;
mod cql;
mod middleware;
mod parents;
mod query;
mod v1;
mod v1_extra;
mod v2;

pub use admin::NewPage;
pub(crate) use admin::{create_page, edit_page};

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
        .layer(from_fn_with_state(state.clone(), faults_and_auth));
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
        .layer(from_fn_with_state(state.clone(), count))
        .layer(from_fn_with_state(state, crate::journal::record))
}

fn error_json(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "statusCode": status.as_u16(), "message": message })),
    )
        .into_response()
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

/// The web UI path of an item on Cloud (relative to `/wiki`).
fn cloud_webui(p: &SimPage) -> String {
    match p.content_type {
        ContentType::Page => format!("/spaces/{}/pages/{}/{}", p.space_key, p.id, slug(&p.title)),
        ContentType::Blogpost => format!("/spaces/{}/blog/{}", p.space_key, p.id),
        other => format!("/spaces/{}/{}/{}", p.space_key, other.as_str(), p.id),
    }
}
