//! A sink publishing documents to Zendesk Help Center federated search as
//! external content records (`/api/v2/guide/external_content/...`).
//!
//! * On first use it finds (or creates) the configured source and type.
//! * A document becomes one record: `external_id` is the document id, the
//!   body is the page's plain text (Zendesk keeps at most 10,000 characters),
//!   `user_segment_id` comes from the audience through `segment_map`.
//! * Zendesk records carry no version of ours, so the sink keeps a small
//!   JSON state file: per space, page id → (record id, version, segment).
//!   It is replaced atomically (write, fsync, rename) after every call.
//!   If it is lost, the sink adopts existing records of its source by
//!   `external_id` (listed once at start-up), so a resync updates them
//!   instead of creating duplicates.
//!
//! Audience safety: a record can name one user segment. An audience whose
//! segments are not all mapped, or that maps to several different Zendesk
//! segments, cannot be expressed without widening it, so such a call fails
//! with [`StoreError::Config`]; `set_audience` additionally withdraws the
//! space's records so nothing stays visible to the previous, possibly wider
//! audience. Map several names to one id to publish to their union.
//!
//! Unlike the embedded store, a call here is a series of HTTP requests and
//! not atomic on the Zendesk side; every call is idempotent and the state
//! records each completed request, so a retried sync converges.

use super::{Store, StoreError};
use crate::model::{Audience, Document, SpaceScope};
use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// Zendesk truncates longer bodies; cutting on our side keeps the request
/// small and the cut on a character boundary.
pub const MAX_BODY_CHARS: usize = 10_000;
const API: &str = "/api/v2/guide/external_content";
const PAGE_SIZE: u32 = 100;
/// Attempts per request when Zendesk answers 429 or 503.
const MAX_ATTEMPTS: u32 = 4;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// How to reach and fill one Help Center. `Debug` never prints the token.
#[derive(Clone)]
pub struct ZendeskConfig {
    /// `acme` (→ `https://acme.zendesk.com`) or a full base URL such as
    /// `https://help.acme.com` (or a local stand-in in tests).
    pub subdomain_or_base_url: String,
    /// Agent email for API-token auth (`{email}/token:{api_token}` as HTTP
    /// basic). Leave empty to send `api_token` as an OAuth bearer token.
    pub email: String,
    pub api_token: String,
    /// Record locale, e.g. `en-us`; must be enabled in the Help Center.
    pub locale: String,
    /// External content source (created if missing), shown as a search filter.
    pub source_name: String,
    /// External content type (created if missing), shown as a search filter.
    pub type_name: String,
    /// Our segment name → Zendesk user segment id.
    pub segment_map: HashMap<String, u64>,
    /// User segment for `Everyone` spaces; `None` publishes them to all
    /// Help Center visitors (Zendesk's `user_segment_id: null`).
    pub everyone_segment: Option<u64>,
}

impl fmt::Debug for ZendeskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZendeskConfig")
            .field("subdomain_or_base_url", &self.subdomain_or_base_url)
            .field("email", &self.email)
            .field("api_token", &"<redacted>")
            .field("locale", &self.locale)
            .field("source_name", &self.source_name)
            .field("type_name", &self.type_name)
            .field("segment_map", &self.segment_map)
            .field("everyone_segment", &self.everyone_segment)
            .finish()
    }
}

impl ZendeskConfig {
    fn base_url(&self) -> Result<url::Url, StoreError> {
        let raw = self.subdomain_or_base_url.trim().trim_end_matches('/');
        let text = if raw.contains("://") {
            raw.to_string()
        } else if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            format!("https://{raw}.zendesk.com")
        } else {
            return Err(StoreError::Config(format!(
                "{raw:?} is neither a Zendesk subdomain nor a URL"
            )));
        };
        url::Url::parse(&text)
            .map_err(|e| StoreError::Config(format!("invalid Zendesk URL {text:?}: {e}")))
    }

    fn auth_header(&self) -> Result<HeaderValue, StoreError> {
        let value = if self.email.is_empty() {
            format!("Bearer {}", self.api_token)
        } else {
            let raw = format!("{}/token:{}", self.email, self.api_token);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        };
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            StoreError::Config("the Zendesk email or API token contains invalid characters".into())
        })?;
        // Keeps the value out of reqwest/hyper debug output.
        header.set_sensitive(true);
        Ok(header)
    }

    /// The single Zendesk user segment for an audience; `Ok(None)` means
    /// visible to everyone. Fails rather than widen the audience.
    pub fn segment_for(&self, audience: &Audience) -> Result<Option<u64>, StoreError> {
        match audience {
            Audience::Everyone => Ok(self.everyone_segment),
            Audience::Segments(names) => {
                if names.is_empty() {
                    return Err(StoreError::Config(
                        "the audience has no segments, so nobody may see it; nothing is published to Zendesk".into(),
                    ));
                }
                let mut ids: Vec<u64> = Vec::with_capacity(names.len());
                for name in names {
                    let id = self.segment_map.get(name).ok_or_else(|| {
                        StoreError::Config(format!(
                            "segment {name:?} has no Zendesk user segment in the segment map; \
                             the space is not published to Zendesk"
                        ))
                    })?;
                    ids.push(*id);
                }
                ids.sort_unstable();
                ids.dedup();
                match ids.as_slice() {
                    [one] => Ok(Some(*one)),
                    _ => Err(StoreError::Config(format!(
                        "segments {names:?} map to several Zendesk user segments {ids:?}, but a \
                         record can name only one; map them to one Zendesk segment covering all"
                    ))),
                }
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct RecordState {
    record_id: String,
    version: u64,
    /// The `user_segment_id` the record was last written with.
    segment: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SinkState {
    /// `namespace/name` → page id → record.
    scopes: BTreeMap<String, BTreeMap<String, RecordState>>,
}

/// A record whose user segment must change.
struct Stale {
    page: String,
    record_id: String,
    /// Adopted from Zendesk, not yet in the state.
    orphan: bool,
}

/// Ids resolved once per process.
#[derive(Debug)]
struct Remote {
    source_id: String,
    type_id: String,
}

struct Inner {
    state: SinkState,
    /// Records of our source that the state does not know (state file lost
    /// or a crash between a create and the state write): external id →
    /// record id. Adopted on upsert, removed on delete.
    orphans: HashMap<String, String>,
}

/// The Zendesk federated search sink.
pub struct ZendeskSink {
    config: ZendeskConfig,
    base: url::Url,
    auth: HeaderValue,
    http: reqwest::Client,
    state_path: PathBuf,
    remote: OnceCell<Remote>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for ZendeskSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZendeskSink")
            .field("config", &self.config)
            .field("state_path", &self.state_path)
            .finish()
    }
}

fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl ZendeskSink {
    /// Builds the sink. `state_path` is the JSON file holding record ids and
    /// versions (put it on the same volume as the embedded index); it is
    /// created on the first write. No request is made until the first call.
    pub fn new(config: ZendeskConfig, state_path: &Path) -> Result<Self, StoreError> {
        let base = config.base_url()?;
        let auth = config.auth_header()?;
        if config.locale.trim().is_empty() {
            return Err(StoreError::Config("the Zendesk locale is empty".into()));
        }
        if config.source_name.trim().is_empty() || config.type_name.trim().is_empty() {
            return Err(StoreError::Config(
                "the Zendesk source and type names must not be empty".into(),
            ));
        }
        let state = match std::fs::read(state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Io(format!(
                    "Zendesk sink state {} is corrupt ({e}); delete it to rebuild from Zendesk",
                    state_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SinkState::default(),
            Err(e) => {
                return Err(StoreError::Io(format!(
                    "cannot read {}: {e}",
                    state_path.display()
                )));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            config,
            base,
            auth,
            http,
            state_path: state_path.to_path_buf(),
            remote: OnceCell::new(),
            inner: Mutex::new(Inner {
                state,
                orphans: HashMap::new(),
            }),
        })
    }

    /// Sends one request, retrying 429/503 with the server's `Retry-After`.
    /// Returns the status and the JSON body (`Null` when empty).
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), StoreError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| StoreError::Config(format!("bad Zendesk path {path}: {e}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.auth.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .query(query);
            if let Some(body) = body {
                req = req.json(body);
            }
            let response = req
                .send()
                .await
                .map_err(|e| StoreError::Remote(format!("{method} {path}: {}", e.without_url())))?;
            let status = response.status();
            if (status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE)
                && attempt < MAX_ATTEMPTS
            {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(1 << attempt), Duration::from_secs)
                    .min(MAX_RETRY_WAIT);
                tracing::warn!(%status, ?wait, path, "Zendesk asked to retry");
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = response
                .text()
                .await
                .map_err(|e| StoreError::Remote(format!("{method} {path}: {}", e.without_url())))?;
            let value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            return Ok((status, value));
        }
    }

    fn remote_error(method: &Method, path: &str, status: StatusCode, body: &Value) -> StoreError {
        if status == StatusCode::UNAUTHORIZED {
            return StoreError::Remote(format!(
                "{method} {path}: Zendesk rejected the credentials (HTTP 401)"
            ));
        }
        if status == StatusCode::FORBIDDEN {
            return StoreError::Remote(format!(
                "{method} {path}: the Zendesk user is not a Help Center manager (HTTP 403)"
            ));
        }
        let mut detail = body.to_string();
        if detail.len() > 300 {
            detail = format!("{}…", truncate_chars(&detail, 300));
        }
        StoreError::Remote(format!("{method} {path}: HTTP {status}: {detail}"))
    }

    /// Pages through a cursor-paginated list, returning every item under `key`.
    async fn list_all(&self, path: &str, key: &str) -> Result<Vec<Value>, StoreError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("page[size]", PAGE_SIZE.to_string())];
            if let Some(cursor) = &after {
                query.push(("page[after]", cursor.clone()));
            }
            let (status, body) = self.request(Method::GET, path, &query, None).await?;
            if !status.is_success() {
                return Err(Self::remote_error(&Method::GET, path, status, &body));
            }
            if let Some(page) = body.get(key).and_then(Value::as_array) {
                items.extend(page.iter().cloned());
            }
            let meta = body.get("meta");
            let has_more = meta
                .and_then(|m| m.get("has_more"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let cursor = meta
                .and_then(|m| m.get("after_cursor"))
                .and_then(Value::as_str)
                .map(str::to_string);
            match (has_more, cursor) {
                (true, Some(c)) if after.as_deref() != Some(c.as_str()) => after = Some(c),
                _ => return Ok(items),
            }
        }
    }

    /// Finds the item named `name` in a list, creating it if absent.
    async fn ensure_named(&self, kind: &str, name: &str) -> Result<String, StoreError> {
        let path = format!("{API}/{kind}s");
        let list = self.list_all(&path, &format!("{kind}s")).await?;
        if let Some(id) = list
            .iter()
            .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|item| item.get("id").and_then(Value::as_str))
        {
            return Ok(id.to_string());
        }
        let body = json!({ kind: { "name": name } });
        let (status, created) = self.request(Method::POST, &path, &[], Some(&body)).await?;
        if !status.is_success() {
            return Err(Self::remote_error(&Method::POST, &path, status, &created));
        }
        created
            .get(kind)
            .and_then(|item| item.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| StoreError::Remote(format!("POST {path}: response lacks {kind}.id")))
    }

    /// Resolves source and type ids and learns about records the state does
    /// not know; runs once per process (retried on the next call if it fails).
    async fn remote(&self) -> Result<&Remote, StoreError> {
        self.remote
            .get_or_try_init(|| async {
                let source_id = self
                    .ensure_named("source", &self.config.source_name)
                    .await?;
                let type_id = self.ensure_named("type", &self.config.type_name).await?;
                let records = self.list_all(&format!("{API}/records"), "records").await?;
                let mut inner = self.inner.lock().await;
                let known: std::collections::HashSet<String> = inner
                    .state
                    .scopes
                    .values()
                    .flat_map(|m| m.values().map(|r| r.record_id.clone()))
                    .collect();
                let mut orphans = HashMap::new();
                for r in &records {
                    let ours = r
                        .get("source")
                        .and_then(|s| s.get("id"))
                        .or_else(|| r.get("source_id"))
                        .and_then(Value::as_str)
                        == Some(source_id.as_str());
                    let (Some(id), Some(external_id)) = (
                        r.get("id").and_then(Value::as_str),
                        r.get("external_id").and_then(Value::as_str),
                    ) else {
                        continue;
                    };
                    if ours && !known.contains(id) {
                        orphans.insert(external_id.to_string(), id.to_string());
                    }
                }
                if !orphans.is_empty() {
                    tracing::info!(
                        count = orphans.len(),
                        "adopting Zendesk records unknown to the local state"
                    );
                }
                inner.orphans = orphans;
                Ok(Remote { source_id, type_id })
            })
            .await
    }

    fn record_body(&self, remote: &Remote, doc: &Document, segment: Option<u64>) -> Value {
        json!({
            "record": {
                "external_id": doc.id(),
                "title": doc.page.title,
                "body": truncate_chars(&doc.page.body_text, MAX_BODY_CHARS),
                "locale": self.config.locale,
                "url": doc.page.url,
                "source_id": remote.source_id,
                "type_id": remote.type_id,
                // Zendesk documents the id as a string; null means everyone.
                "user_segment_id": segment.map(|s| s.to_string()),
            }
        })
    }

    async fn create_record(&self, body: &Value) -> Result<String, StoreError> {
        let path = format!("{API}/records");
        let (status, created) = self.request(Method::POST, &path, &[], Some(body)).await?;
        if !status.is_success() {
            return Err(Self::remote_error(&Method::POST, &path, status, &created));
        }
        created
            .get("record")
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| StoreError::Remote(format!("POST {path}: response lacks record.id")))
    }

    /// Replaces a record; `Ok(false)` when it no longer exists in Zendesk.
    async fn update_record(&self, record_id: &str, body: &Value) -> Result<bool, StoreError> {
        let path = format!("{API}/records/{record_id}");
        let (status, reply) = self.request(Method::PUT, &path, &[], Some(body)).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(Self::remote_error(&Method::PUT, &path, s, &reply)),
        }
    }

    /// Deletes a record; one that is already gone counts as deleted.
    async fn delete_record(&self, record_id: &str) -> Result<(), StoreError> {
        let path = format!("{API}/records/{record_id}");
        let (status, reply) = self.request(Method::DELETE, &path, &[], None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::remote_error(&Method::DELETE, &path, status, &reply))
        }
    }

    /// Writes the state file atomically: a crash leaves the old or the new
    /// file, never a torn one.
    async fn persist(&self, state: &SinkState) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| StoreError::Io(format!("cannot encode Zendesk sink state: {e}")))?;
        let path = self.state_path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError::Io(format!("state write task failed: {e}")))?
    }

    /// Persists the state after a call whether or not the call failed, so
    /// every request that did complete is remembered; the call's own error
    /// wins over a persistence error.
    async fn finish<T>(
        &self,
        inner: &Inner,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let persisted = self.persist(&inner.state).await;
        let value = result?;
        persisted?;
        Ok(value)
    }

    async fn upsert_locked(
        &self,
        inner: &mut Inner,
        remote: &Remote,
        docs: &[Document],
        segments: Vec<Option<u64>>,
    ) -> Result<(), StoreError> {
        for (doc, segment) in docs.iter().zip(segments) {
            let key = doc.scope.key();
            let external_id = doc.id();
            let body = self.record_body(remote, doc, segment);
            let known = inner
                .state
                .scopes
                .get(&key)
                .and_then(|m| m.get(&doc.page.id))
                .map(|r| r.record_id.clone())
                .or_else(|| inner.orphans.get(&external_id).cloned());
            let record_id = match known {
                Some(id) if self.update_record(&id, &body).await? => id,
                // Unknown, or deleted in Zendesk behind our back.
                _ => self.create_record(&body).await?,
            };
            inner.orphans.remove(&external_id);
            inner.state.scopes.entry(key).or_default().insert(
                doc.page.id.clone(),
                RecordState {
                    record_id,
                    version: doc.page.version,
                    segment,
                },
            );
        }
        Ok(())
    }

    async fn delete_locked(
        &self,
        inner: &mut Inner,
        scope: &SpaceScope,
        page_ids: &[String],
    ) -> Result<(), StoreError> {
        let key = scope.key();
        for page in page_ids {
            let external_id = scope.document_id(page);
            let record = inner
                .state
                .scopes
                .get(&key)
                .and_then(|m| m.get(page))
                .map(|r| r.record_id.clone())
                .or_else(|| inner.orphans.get(&external_id).cloned());
            if let Some(record_id) = record {
                self.delete_record(&record_id).await?;
            }
            if let Some(m) = inner.state.scopes.get_mut(&key) {
                m.remove(page);
            }
            inner.orphans.remove(&external_id);
        }
        Ok(())
    }

    /// Rewrites the given records with a new user segment, re-sending
    /// Zendesk's own copy of each record (no Confluence fetch).
    async fn reassign_locked(
        &self,
        inner: &mut Inner,
        remote: &Remote,
        scope: &SpaceScope,
        stale: Vec<Stale>,
        segment: Option<u64>,
    ) -> Result<(), StoreError> {
        let key = scope.key();
        for Stale {
            page,
            record_id,
            orphan,
        } in stale
        {
            let path = format!("{API}/records/{record_id}");
            let (status, current) = self.request(Method::GET, &path, &[], None).await?;
            let gone = if status == StatusCode::NOT_FOUND {
                true
            } else if !status.is_success() {
                return Err(Self::remote_error(&Method::GET, &path, status, &current));
            } else {
                let record = current.get("record").cloned().unwrap_or(Value::Null);
                let field = |name: &str| record.get(name).cloned().unwrap_or(Value::Null);
                let body = json!({
                    "record": {
                        "external_id": field("external_id"),
                        "title": field("title"),
                        "body": field("body"),
                        "locale": field("locale"),
                        "url": field("url"),
                        "source_id": remote.source_id,
                        "type_id": remote.type_id,
                        "user_segment_id": segment.map(|s| s.to_string()),
                    }
                });
                !self.update_record(&record_id, &body).await?
            };
            if orphan {
                inner.orphans.remove(&scope.document_id(&page));
            }
            let records = inner.state.scopes.entry(key.clone()).or_default();
            if gone {
                // Deleted in Zendesk: forget it so the next sync recreates it.
                records.remove(&page);
            } else if orphan {
                // Version 0 is never a Confluence version, so the next sync
                // refreshes the adopted record's content.
                records.insert(
                    page,
                    RecordState {
                        record_id,
                        version: 0,
                        segment,
                    },
                );
            } else if let Some(r) = records.get_mut(&page) {
                r.segment = segment;
            }
        }
        Ok(())
    }

    /// Deletes every record of a scope (state and adopted orphans).
    async fn withdraw_scope(
        &self,
        inner: &mut Inner,
        scope: &SpaceScope,
    ) -> Result<(), StoreError> {
        let key = scope.key();
        let records: Vec<(String, String)> = inner
            .state
            .scopes
            .get(&key)
            .map(|m| {
                m.iter()
                    .map(|(page, r)| (page.clone(), r.record_id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (page, record_id) in records {
            self.delete_record(&record_id).await?;
            if let Some(m) = inner.state.scopes.get_mut(&key) {
                m.remove(&page);
            }
        }
        inner.state.scopes.remove(&key);
        let orphans: Vec<(String, String)> = inner
            .orphans
            .iter()
            .filter(|(ext, _)| is_scope_external_id(scope, ext))
            .map(|(e, r)| (e.clone(), r.clone()))
            .collect();
        for (ext, record_id) in orphans {
            self.delete_record(&record_id).await?;
            inner.orphans.remove(&ext);
        }
        Ok(())
    }
}

/// Whether an external id belongs to `scope`. Confluence page ids never
/// contain a dot, which tells scope `ns/a` + page `b.1` apart from scope
/// `ns/a.b` + page `1`.
fn is_scope_external_id(scope: &SpaceScope, external_id: &str) -> bool {
    external_id
        .strip_prefix(&scope.document_id(""))
        .is_some_and(|page| !page.is_empty() && !page.contains('.'))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |e: std::io::Error| StoreError::Io(format!("cannot write {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    // Makes the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[async_trait]
impl Store for ZendeskSink {
    fn name(&self) -> &str {
        "zendesk"
    }

    async fn upsert(&self, docs: &[Document]) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        // Every audience is checked before the first request, so a batch
        // that cannot be published safely changes nothing.
        let segments = docs
            .iter()
            .map(|d| self.config.segment_for(&d.audience))
            .collect::<Result<Vec<_>, _>>()?;
        let remote = self.remote().await?;
        let mut inner = self.inner.lock().await;
        let result = self.upsert_locked(&mut inner, remote, docs, segments).await;
        self.finish(&inner, result).await
    }

    async fn delete(&self, scope: &SpaceScope, page_ids: &[String]) -> Result<(), StoreError> {
        if page_ids.is_empty() {
            return Ok(());
        }
        self.remote().await?;
        let mut inner = self.inner.lock().await;
        let result = self.delete_locked(&mut inner, scope, page_ids).await;
        self.finish(&inner, result).await
    }

    async fn delete_space(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        self.remote().await?;
        let mut inner = self.inner.lock().await;
        let result = self.withdraw_scope(&mut inner, scope).await;
        self.finish(&inner, result).await
    }

    async fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError> {
        let inner = self.inner.lock().await;
        Ok(inner
            .state
            .scopes
            .get(&scope.key())
            .map(|m| m.iter().map(|(p, r)| (p.clone(), r.version)).collect())
            .unwrap_or_default())
    }

    async fn set_audience(
        &self,
        scope: &SpaceScope,
        audience: &Audience,
    ) -> Result<(), StoreError> {
        let key = scope.key();
        let target = self.config.segment_for(audience);
        // Resolved first: adopted orphans are only known afterwards.
        let remote = self.remote().await?;
        let mut inner = self.inner.lock().await;
        let orphans: Vec<(String, String)> = inner
            .orphans
            .iter()
            .filter(|(ext, _)| is_scope_external_id(scope, ext))
            .map(|(ext, record)| (ext.clone(), record.clone()))
            .collect();
        let segment = match target {
            Ok(segment) => segment,
            Err(e) => {
                // Fail safe: the records may be visible to a wider audience
                // than the space now allows, so they are withdrawn.
                let has_any = !orphans.is_empty()
                    || inner.state.scopes.get(&key).is_some_and(|m| !m.is_empty());
                if has_any {
                    tracing::warn!(scope = %scope, error = %e, "withdrawing Zendesk records: audience cannot be mapped");
                    let result = self.withdraw_scope(&mut inner, scope).await;
                    self.finish(&inner, result).await?;
                }
                return Err(e);
            }
        };
        let prefix = scope.document_id("");
        let mut stale: Vec<Stale> = inner
            .state
            .scopes
            .get(&key)
            .map(|m| {
                m.iter()
                    .filter(|(_, r)| r.segment != segment)
                    .map(|(page, r)| Stale {
                        page: page.clone(),
                        record_id: r.record_id.clone(),
                        orphan: false,
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Orphans carry an unknown segment, so they are always rewritten.
        stale.extend(orphans.into_iter().map(|(ext, record_id)| Stale {
            page: ext.strip_prefix(&prefix).unwrap_or(&ext).to_string(),
            record_id,
            orphan: true,
        }));
        if stale.is_empty() {
            return Ok(());
        }
        let result = self
            .reassign_locked(&mut inner, remote, scope, stale, segment)
            .await;
        self.finish(&inner, result).await
    }

    async fn count(&self, scope: &SpaceScope) -> Result<u64, StoreError> {
        let inner = self.inner.lock().await;
        Ok(inner
            .state
            .scopes
            .get(&scope.key())
            .map_or(0, |m| m.len() as u64))
    }
}
