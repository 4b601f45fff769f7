//! A local stand-in of Zendesk's Help Center federated search (external
//! content) API, for tests of the Zendesk sink. It enforces the documented
//! request shapes (paths, methods, auth header, the `record` wrapper and its
//! mandatory fields) and keeps records, so tests assert what a Help Center
//! visitor would find.
//!
//! Use it from a test file with `mod zendesk_standin;` (after `mod loopback;`).
#![allow(dead_code)]

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use confluence_operator::store::zendesk::ZendeskConfig;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const EMAIL: &str = "bot@example.com";
pub const TOKEN: &str = "s3cr3t-api-token";
pub const PREFIX: &str = "/api/v2/guide/external_content";
/// The stand-in pages lists in twos so the sink's pagination is exercised.
pub const MAX_PAGE: usize = 2;

#[derive(Default)]
pub struct Fake {
    pub sources: Vec<Value>,
    pub types: Vec<Value>,
    pub records: BTreeMap<String, Value>,
    pub next_id: u64,
    /// "METHOD path" of every authenticated request, in order.
    pub log: Vec<String>,
    /// Answer this many upcoming requests with 429 (Retry-After: 0).
    pub throttle: usize,
}

impl Fake {
    pub fn ulid(&mut self) -> String {
        self.next_id += 1;
        format!("01HZZZZZZZZZZZZZZZZZ{:06}", self.next_id)
    }
}

pub type Shared = Arc<Mutex<Fake>>;

fn err(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

async fn auth(
    State(fake): State<Shared>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}/token:{TOKEN}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return err(StatusCode::UNAUTHORIZED, "Couldn't authenticate you");
    }
    if matches!(*req.method(), Method::POST | Method::PUT)
        && headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json")
    {
        return err(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected JSON");
    }
    let line = format!("{} {}", req.method(), req.uri().path());
    {
        let mut fake = fake.lock().expect("lock");
        fake.log.push(line);
        if fake.throttle > 0 {
            fake.throttle -= 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                Json(json!({ "error": "TooManyRequests" })),
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn page_of(items: &[Value], key: &str, q: &HashMap<String, String>) -> Value {
    let size = q
        .get("page[size]")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(MAX_PAGE)
        .min(MAX_PAGE);
    let start = q
        .get("page[after]")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + size).min(items.len());
    let has_more = end < items.len();
    json!({
        key: items.get(start..end).unwrap_or(&[]),
        "meta": { "has_more": has_more, "after_cursor": has_more.then(|| end.to_string()), "before_cursor": null },
    })
}

fn named_routes(kind: &'static str) -> axum::routing::MethodRouter<Shared> {
    let plural = format!("{kind}s");
    let plural2 = plural.clone();
    get(move |State(fake): State<Shared>, Query(q): Query<HashMap<String, String>>| {
        let plural = plural.clone();
        async move {
            let fake = fake.lock().expect("lock");
            let items = if kind == "source" { &fake.sources } else { &fake.types };
            Json(page_of(items, &plural, &q)).into_response()
        }
    })
    .post(move |State(fake): State<Shared>, Json(body): Json<Value>| {
        let _ = &plural2;
        async move {
            let Some(name) = body.get(kind).and_then(|s| s.get("name")).and_then(Value::as_str) else {
                return err(StatusCode::BAD_REQUEST, "name is required");
            };
            let mut fake = fake.lock().expect("lock");
            let item = json!({ "id": fake.ulid(), "name": name, "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z" });
            if kind == "source" {
                fake.sources.push(item.clone());
            } else {
                fake.types.push(item.clone());
            }
            (StatusCode::CREATED, Json(json!({ kind: item }))).into_response()
        }
    })
}

/// Checks a create/update body against the documented record format and
/// returns the record as Zendesk would store and show it.
fn validate(fake: &Fake, body: &Value, id: &str) -> Result<Value, Box<Response>> {
    let fail = |status: StatusCode, msg: &str| Box::new(err(status, msg));
    let Some(record) = body.get("record").and_then(Value::as_object) else {
        return Err(fail(StatusCode::BAD_REQUEST, "missing record"));
    };
    const ALLOWED: &[&str] = &[
        "body",
        "created_at",
        "external_id",
        "locale",
        "source_id",
        "title",
        "type_id",
        "updated_at",
        "url",
        "user_segment_id",
    ];
    if let Some(k) = record.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(fail(StatusCode::BAD_REQUEST, &format!("unknown field {k}")));
    }
    for field in [
        "body",
        "external_id",
        "locale",
        "source_id",
        "title",
        "type_id",
        "url",
    ] {
        if record
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                &format!("{field} is mandatory"),
            ));
        }
    }
    match record.get("user_segment_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => {}
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                &format!("bad user_segment_id {other}"),
            ));
        }
    }
    if record["body"].as_str().map_or(0, |b| b.chars().count()) > 10_000 {
        return Err(fail(StatusCode::BAD_REQUEST, "body too long"));
    }
    let find = |items: &[Value], id: &Value| items.iter().find(|i| &i["id"] == id).cloned();
    let (Some(source), Some(kind)) = (
        find(&fake.sources, &record["source_id"]),
        find(&fake.types, &record["type_id"]),
    ) else {
        return Err(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown source or type",
        ));
    };
    let duplicate = fake.records.values().any(|r| {
        r["id"] != id
            && r["external_id"] == record["external_id"]
            && r["source"]["id"] == source["id"]
    });
    if duplicate {
        return Err(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "external_id already used in this source",
        ));
    }
    Ok(json!({
        "id": id,
        "external_id": record["external_id"],
        "title": record["title"],
        "body": record["body"],
        "locale": record["locale"],
        "url": record["url"],
        "user_segment_id": record.get("user_segment_id").cloned().unwrap_or(Value::Null),
        "source": { "id": source["id"], "name": source["name"] },
        "type": { "id": kind["id"], "name": kind["name"] },
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    }))
}

async fn list_records(
    State(fake): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let fake = fake.lock().expect("lock");
    let items: Vec<Value> = fake.records.values().cloned().collect();
    Json(page_of(&items, "records", &q)).into_response()
}

async fn create_record(State(fake): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut fake = fake.lock().expect("lock");
    let id = fake.ulid();
    match validate(&fake, &body, &id) {
        Ok(record) => {
            fake.records.insert(id, record.clone());
            (StatusCode::CREATED, Json(json!({ "record": record }))).into_response()
        }
        Err(e) => *e,
    }
}

async fn show_record(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    match fake.lock().expect("lock").records.get(&id) {
        Some(r) => Json(json!({ "record": r })).into_response(),
        None => err(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}

async fn update_record(
    State(fake): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut fake = fake.lock().expect("lock");
    if !fake.records.contains_key(&id) {
        return err(StatusCode::NOT_FOUND, "RecordNotFound");
    }
    match validate(&fake, &body, &id) {
        Ok(record) => {
            fake.records.insert(id, record.clone());
            Json(json!({ "record": record })).into_response()
        }
        Err(e) => *e,
    }
}

async fn delete_record(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    match fake.lock().expect("lock").records.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => err(StatusCode::NOT_FOUND, "RecordNotFound"),
    }
}

pub struct Zendesk {
    pub fake: Shared,
    pub base_url: String,
    _server: crate::loopback::Server,
}

impl Zendesk {
    pub async fn start() -> Self {
        let fake: Shared = Arc::default();
        let app = Router::new()
            .route(&format!("{PREFIX}/sources"), named_routes("source"))
            .route(&format!("{PREFIX}/types"), named_routes("type"))
            .route(
                &format!("{PREFIX}/records"),
                get(list_records).post(create_record),
            )
            .route(
                &format!("{PREFIX}/records/{{id}}"),
                get(show_record).put(update_record).delete(delete_record),
            )
            .layer(middleware::from_fn_with_state(Arc::clone(&fake), auth))
            .with_state(Arc::clone(&fake));
        let server = crate::loopback::serve(app).await;
        Self {
            fake,
            base_url: server.base_url(),
            _server: server,
        }
    }

    pub fn config(&self) -> ZendeskConfig {
        ZendeskConfig {
            subdomain_or_base_url: self.base_url.clone(),
            email: EMAIL.into(),
            api_token: TOKEN.into(),
            locale: "en-us".into(),
            source_name: "Confluence".into(),
            type_name: "Wiki page".into(),
            segment_map: HashMap::from([
                ("agents-and-admins".to_string(), 111),
                ("signed-in-users".to_string(), 222),
                ("partners".to_string(), 333),
                ("resellers".to_string(), 333),
            ]),
            everyone_segment: None,
        }
    }

    /// external_id → record.
    pub fn records(&self) -> BTreeMap<String, Value> {
        self.fake
            .lock()
            .expect("lock")
            .records
            .values()
            .map(|r| {
                (
                    r["external_id"].as_str().unwrap_or_default().to_string(),
                    r.clone(),
                )
            })
            .collect()
    }

    pub fn log(&self) -> Vec<String> {
        self.fake.lock().expect("lock").log.clone()
    }

    pub fn clear_log(&self) {
        self.fake.lock().expect("lock").log.clear();
    }
}
