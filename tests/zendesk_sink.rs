//! The Zendesk sink against a local stand-in of the Help Center federated
//! search API. The stand-in enforces the documented request shapes (paths,
//! methods, auth header, the `record` wrapper and its mandatory fields) and
//! keeps records, so tests assert what a Help Center visitor would find.

mod common;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use confluence_operator::confluence::ListOptions;
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::zendesk::{ZendeskConfig, ZendeskSink};
use confluence_operator::store::{Store, StoreError};
use confluence_operator::sync::{SyncRequest, sync_space};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

const EMAIL: &str = "bot@example.com";
const TOKEN: &str = "s3cr3t-api-token";
const PREFIX: &str = "/api/v2/guide/external_content";
/// The stand-in pages lists in twos so the sink's pagination is exercised.
const MAX_PAGE: usize = 2;

#[derive(Default)]
struct Fake {
    sources: Vec<Value>,
    types: Vec<Value>,
    records: BTreeMap<String, Value>,
    next_id: u64,
    /// "METHOD path" of every authenticated request, in order.
    log: Vec<String>,
    /// Answer this many upcoming requests with 429 (Retry-After: 0).
    throttle: usize,
}

impl Fake {
    fn ulid(&mut self) -> String {
        self.next_id += 1;
        format!("01HZZZZZZZZZZZZZZZZZ{:06}", self.next_id)
    }
}

type Shared = Arc<Mutex<Fake>>;

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

struct Zendesk {
    fake: Shared,
    base_url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Zendesk {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Zendesk {
    async fn start() -> Self {
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            fake,
            base_url: format!("http://{addr}"),
            server,
        }
    }

    fn config(&self) -> ZendeskConfig {
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
    fn records(&self) -> BTreeMap<String, Value> {
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

    fn log(&self) -> Vec<String> {
        self.fake.lock().expect("lock").log.clone()
    }

    fn clear_log(&self) {
        self.fake.lock().expect("lock").log.clear();
    }
}

fn scope() -> SpaceScope {
    SpaceScope::new("support", "kb")
}

fn kb_doc(
    id: &str,
    version: u64,
    title: &str,
    audience: Audience,
) -> confluence_operator::model::Document {
    doc(
        &scope(),
        "KB",
        audience,
        page(id, version, title, &format!("Body of {title}.")),
    )
}

#[tokio::test]
async fn creates_source_type_and_records_then_updates_and_deletes() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("zendesk.json")).expect("sink");

    sink.upsert(&[
        kb_doc("1", 1, "Reset your router", Audience::Everyone),
        kb_doc("2", 1, "Billing", Audience::Everyone),
    ])
    .await
    .expect("create");
    let records = zd.records();
    assert_eq!(records.len(), 2);
    let r = &records["support.kb.1"];
    assert_eq!(r["title"], "Reset your router");
    assert_eq!(r["body"], "Body of Reset your router.");
    assert_eq!(r["url"], "https://wiki.example.com/pages/1");
    assert_eq!(r["locale"], "en-us");
    assert_eq!(r["user_segment_id"], Value::Null);
    assert_eq!(r["source"]["name"], "Confluence");
    assert_eq!(r["type"]["name"], "Wiki page");
    let first_id = r["id"].clone();
    {
        let fake = zd.fake.lock().expect("lock");
        assert_eq!(fake.sources.len(), 1);
        assert_eq!(fake.types.len(), 1);
    }
    assert_eq!(
        sink.versions(&scope()).await.expect("versions"),
        HashMap::from([("1".to_string(), 1), ("2".to_string(), 1)])
    );
    assert_eq!(sink.count(&scope()).await.expect("count"), 2);

    // Update: same record, new content, no new source/type.
    zd.clear_log();
    sink.upsert(&[kb_doc("1", 2, "Reset your modem", Audience::Everyone)])
        .await
        .expect("update");
    let records = zd.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records["support.kb.1"]["id"], first_id);
    assert_eq!(records["support.kb.1"]["title"], "Reset your modem");
    assert_eq!(
        zd.log(),
        vec![format!(
            "PUT {PREFIX}/records/{}",
            first_id.as_str().unwrap_or_default()
        )]
    );
    assert_eq!(sink.versions(&scope()).await.expect("versions")["1"], 2);

    // Delete one page, then the whole space.
    sink.delete(&scope(), &strings(&["2"]))
        .await
        .expect("delete");
    assert_eq!(
        zd.records().keys().cloned().collect::<Vec<_>>(),
        vec!["support.kb.1"]
    );
    sink.delete_space(&scope()).await.expect("delete_space");
    assert!(zd.records().is_empty());
    assert!(sink.versions(&scope()).await.expect("versions").is_empty());
}

#[tokio::test]
async fn reuses_an_existing_source_and_type() {
    let zd = Zendesk::start().await;
    {
        let mut fake = zd.fake.lock().expect("lock");
        // Several pages of sources; ours is on the last one.
        for name in ["Forum", "Blog", "LMS", "Confluence"] {
            let id = fake.ulid();
            fake.sources.push(json!({ "id": id, "name": name }));
        }
        let id = fake.ulid();
        fake.types.push(json!({ "id": id, "name": "Wiki page" }));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("state.json")).expect("sink");
    sink.upsert(&[kb_doc("1", 1, "A", Audience::Everyone)])
        .await
        .expect("upsert");
    let fake = zd.fake.lock().expect("lock");
    assert_eq!(fake.sources.len(), 4);
    assert_eq!(fake.types.len(), 1);
    assert!(
        !fake
            .log
            .iter()
            .any(|l| l.starts_with("POST") && !l.ends_with("/records"))
    );
}

#[tokio::test]
async fn audiences_map_to_user_segments() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = zd.config();
    config.everyone_segment = Some(999);
    let sink = ZendeskSink::new(config, &dir.path().join("state.json")).expect("sink");
    sink.upsert(&[
        kb_doc("1", 1, "Public", Audience::Everyone),
        kb_doc("2", 1, "Agents", segments(&["agents-and-admins"])),
        // Two names mapped to one Zendesk segment: publishable.
        kb_doc("3", 1, "Channel", segments(&["partners", "resellers"])),
    ])
    .await
    .expect("upsert");
    let records = zd.records();
    assert_eq!(records["support.kb.1"]["user_segment_id"], "999");
    assert_eq!(records["support.kb.2"]["user_segment_id"], "111");
    assert_eq!(records["support.kb.3"]["user_segment_id"], "333");
}

#[tokio::test]
async fn audience_change_rewrites_records_without_confluence() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("state.json")).expect("sink");
    sink.upsert(&[
        kb_doc("1", 1, "One", Audience::Everyone),
        kb_doc("2", 1, "Two", Audience::Everyone),
    ])
    .await
    .expect("upsert");

    sink.set_audience(&scope(), &segments(&["signed-in-users"]))
        .await
        .expect("narrow");
    let records = zd.records();
    assert!(
        records.values().all(|r| r["user_segment_id"] == "222"),
        "{records:?}"
    );
    // Content is untouched.
    assert_eq!(records["support.kb.1"]["title"], "One");
    assert_eq!(records["support.kb.2"]["body"], "Body of Two.");

    // Unchanged audience: no request at all.
    zd.clear_log();
    sink.set_audience(&scope(), &segments(&["signed-in-users"]))
        .await
        .expect("same");
    assert!(zd.log().is_empty(), "{:?}", zd.log());
}

#[tokio::test]
async fn unmapped_segments_never_widen_the_audience() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("state.json")).expect("sink");

    // Publishing content for an unmapped segment fails before any write.
    let err = sink
        .upsert(&[kb_doc("1", 1, "Secret", segments(&["internal-only"]))])
        .await
        .expect_err("unmapped segment");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(err.to_string().contains("internal-only"));
    assert!(zd.records().is_empty());

    // Segments mapping to two different Zendesk segments cannot be one record.
    let err = sink
        .upsert(&[kb_doc(
            "1",
            1,
            "Mixed",
            segments(&["agents-and-admins", "partners"]),
        )])
        .await
        .expect_err("ambiguous");
    assert!(matches!(err, StoreError::Config(_)), "{err}");

    // A public space narrowed to an unmapped segment is withdrawn.
    sink.upsert(&[kb_doc("1", 1, "Was public", Audience::Everyone)])
        .await
        .expect("upsert");
    assert_eq!(zd.records().len(), 1);
    let err = sink
        .set_audience(&scope(), &segments(&["internal-only"]))
        .await
        .expect_err("unmapped");
    assert!(matches!(err, StoreError::Config(_)));
    assert!(zd.records().is_empty(), "records must not stay public");
    assert!(sink.versions(&scope()).await.expect("versions").is_empty());
}

#[tokio::test]
async fn versions_survive_a_restart_and_lost_state_is_rebuilt() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    {
        let sink = ZendeskSink::new(zd.config(), &state).expect("sink");
        sink.upsert(&[
            kb_doc("1", 4, "A", Audience::Everyone),
            kb_doc("2", 7, "B", Audience::Everyone),
        ])
        .await
        .expect("upsert");
    }
    let sink = ZendeskSink::new(zd.config(), &state).expect("reopen");
    assert_eq!(
        sink.versions(&scope()).await.expect("versions"),
        HashMap::from([("1".to_string(), 4), ("2".to_string(), 7)])
    );
    sink.upsert(&[kb_doc("1", 5, "A2", Audience::Everyone)])
        .await
        .expect("update");
    assert_eq!(zd.records().len(), 2, "updated in place, no duplicate");

    // The state file is lost: records are adopted by external id, and a
    // full resync converges without duplicates.
    let fresh = ZendeskSink::new(zd.config(), &dir.path().join("other.json")).expect("fresh");
    assert!(fresh.versions(&scope()).await.expect("versions").is_empty());
    let source = FakeConfluence::with_pages([page("1", 5, "A2", "x"), page("3", 1, "C", "y")]);
    let req = SyncRequest {
        scope: scope(),
        site_url: "https://wiki.example.com".into(),
        space: space("KB"),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: 50,
    };
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(fresh)];
    sync_space(&source, &stores, &req).await.expect("sync");
    let mut ids: Vec<String> = zd.records().into_keys().collect();
    ids.sort();
    // Page 2 is not in Confluence any more; it stays until a delete_space
    // or a sync that knows about it, but nothing is duplicated.
    assert_eq!(ids, ["support.kb.1", "support.kb.2", "support.kb.3"]);
    stores[0]
        .delete_space(&scope())
        .await
        .expect("delete_space");
    assert!(
        zd.records().is_empty(),
        "orphans of the space are removed too"
    );
}

#[tokio::test]
async fn sync_publishes_exactly_the_space() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink: Arc<dyn Store> =
        Arc::new(ZendeskSink::new(zd.config(), &dir.path().join("s.json")).expect("sink"));
    let source = FakeConfluence::with_pages(
        (1..=5).map(|i| page(&i.to_string(), 1, &format!("P{i}"), "text")),
    );
    let mut req = SyncRequest {
        scope: scope(),
        site_url: "https://wiki.example.com".into(),
        space: space("KB"),
        audience: segments(&["agents-and-admins"]),
        options: ListOptions::default(),
        batch_size: 2,
    };
    sync_space(&source, std::slice::from_ref(&sink), &req)
        .await
        .expect("sync");
    assert_eq!(zd.records().len(), 5);
    source.pages.lock().expect("lock").remove("3");
    req.audience = Audience::Everyone;
    let report = sync_space(&source, std::slice::from_ref(&sink), &req)
        .await
        .expect("resync");
    assert_eq!(report.fetched, 0);
    assert_eq!(report.deleted, 1);
    let records = zd.records();
    assert_eq!(records.len(), 4);
    assert!(
        records
            .values()
            .all(|r| r["user_segment_id"] == Value::Null)
    );
}

#[tokio::test]
async fn wrong_credentials_fail_without_leaking_the_token() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = zd.config();
    config.api_token = "wrong-token-value".into();
    let debug = format!("{config:?}");
    assert!(!debug.contains("wrong-token-value"), "{debug}");
    let sink = ZendeskSink::new(config, &dir.path().join("s.json")).expect("sink");
    assert!(!format!("{sink:?}").contains("wrong-token-value"));
    let err = sink
        .upsert(&[kb_doc("1", 1, "A", Audience::Everyone)])
        .await
        .expect_err("401");
    let text = format!("{err} {err:?}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("wrong-token-value"), "{text}");
}

#[tokio::test]
async fn long_bodies_are_cut_to_the_documented_limit() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("s.json")).expect("sink");
    let mut d = kb_doc("1", 1, "Long", Audience::Everyone);
    d.page.body_text = "é".repeat(12_000);
    sink.upsert(&[d]).await.expect("upsert");
    let body = zd.records()["support.kb.1"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(body.chars().count(), 10_000);
}

#[test]
fn subdomains_and_bad_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ZendeskConfig {
        subdomain_or_base_url: "acme".into(),
        email: EMAIL.into(),
        api_token: TOKEN.into(),
        locale: "en-us".into(),
        source_name: "Confluence".into(),
        type_name: "Wiki page".into(),
        segment_map: HashMap::new(),
        everyone_segment: None,
    };
    assert!(ZendeskSink::new(config.clone(), &dir.path().join("s.json")).is_ok());
    config.subdomain_or_base_url = "not a host!".into();
    let err = ZendeskSink::new(config.clone(), &dir.path().join("s.json")).expect_err("bad host");
    assert!(matches!(err, StoreError::Config(_)));
    config.subdomain_or_base_url = "acme".into();
    config.locale = String::new();
    assert!(ZendeskSink::new(config, &dir.path().join("s.json")).is_err());
}

#[tokio::test]
async fn rate_limits_are_retried() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("s.json")).expect("sink");
    zd.fake.lock().expect("lock").throttle = 2;
    sink.upsert(&[kb_doc("1", 1, "A", Audience::Everyone)])
        .await
        .expect("upsert despite 429s");
    assert_eq!(zd.records().len(), 1);
}
