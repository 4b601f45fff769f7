//! The OpenSearch store: documents in an OpenSearch 2.x index that every
//! replica of the search API can query, so search survives a pod restart and
//! scales with the search cluster rather than with one pod.
//!
//! Plain `reqwest` rather than the `opensearch` crate: the store needs eight
//! endpoints with JSON bodies, reqwest (with rustls) is already how the
//! operator talks HTTP, and the crate would bring its own HTTP stack and TLS
//! setup next to ours. Every request goes through one function that retries
//! 429 and 502/503/504 with exponential backoff.
//!
//! Layout: the live index is `<alias>-v<MAPPING_VERSION>` and every read and
//! write goes through `<alias>`. When the mapping changes, the version is
//! bumped; the leader (see [`OpenSearchStore::migrate`]) creates the new
//! index, reindexes into it while searches keep reading the old one through
//! the alias, then moves the alias in one atomic request and drops the old
//! index.
//!
//! Every write waits for the refresh that makes it visible
//! (`refresh=wait_for`, or `refresh=true` for by-query operations), so a
//! caller sees its own writes once a call returns, as with the embedded index.

use super::audience::{self, EVERYONE};
use super::snippet::{SNIPPET_CHARS, snippet};
use super::{Hit, Search, SearchResults, Store, StoreError};
use crate::model::{Ancestor, Audience, ContentType, Document, Page, SpaceScope};
use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use url::Url;

/// Version of [`IndexMapping::current`]. Bump it with every change to the
/// mapping or the settings; the leader then reindexes behind the alias.
pub const MAPPING_VERSION: u32 = 1;

/// Longest query text sent; a pasted wall of text must not make one request
/// arbitrarily expensive (OpenSearch also caps clauses at 1024).
const MAX_QUERY_CHARS: usize = 512;
/// Timeout of update-by-query and delete-by-query requests.
const BY_QUERY_TIMEOUT: Duration = Duration::from_secs(600);
/// Hits per page when listing a space's versions.
const VERSIONS_PAGE: usize = 5000;

/// How the store authenticates. Debug output never shows the secret.
#[derive(Clone, Default)]
pub enum OpenSearchAuth {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    /// The base64 `id:key` value, sent as `Authorization: ApiKey <value>`.
    ApiKey(String),
}

impl std::fmt::Debug for OpenSearchAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenSearchAuth::None => f.write_str("None"),
            OpenSearchAuth::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            OpenSearchAuth::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
        }
    }
}

/// Backoff for 429/502/503/504 answers and connection failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

/// Where and how to reach OpenSearch.
#[derive(Debug, Clone)]
pub struct OpenSearchConfig {
    /// `https://search.example.com:9200`; no credentials in the URL.
    pub url: Url,
    /// Name of the alias every read and write goes through.
    pub alias: String,
    pub auth: OpenSearchAuth,
    /// PEM certificates trusted in addition to the system roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Per-request timeout.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl OpenSearchConfig {
    pub fn new(url: Url, alias: impl Into<String>) -> Self {
        Self {
            url,
            alias: alias.into(),
            auth: OpenSearchAuth::None,
            ca_bundle_pem: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// Settings and mappings of the live index, with their version.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexMapping {
    pub version: u32,
    /// The body of the create-index request (`settings` and `mappings`).
    pub body: Value,
}

impl IndexMapping {
    /// The mapping this build of the operator writes.
    pub fn current() -> Self {
        let text = json!({"type": "text", "analyzer": "english"});
        let keyword = json!({"type": "keyword"});
        let stored_only = json!({"type": "keyword", "index": false, "doc_values": false});
        Self {
            version: MAPPING_VERSION,
            body: json!({
                "settings": {
                    "index": {
                        "number_of_shards": 1,
                        // One copy per extra node, none on a single node (which stays green).
                        "auto_expand_replicas": "0-1"
                    }
                },
                "mappings": {
                    // Unknown fields are refused, so a typo cannot silently create a mapping.
                    "dynamic": "strict",
                    "_meta": {"mapping_version": MAPPING_VERSION, "owner": "confluence-operator"},
                    "properties": {
                        "id": keyword,
                        "scope": keyword,
                        "namespace": keyword,
                        "name": keyword,
                        "site": keyword,
                        "space_key": keyword,
                        "space_name": keyword,
                        "page_id": keyword,
                        "content_type": keyword,
                        "title": text,
                        "body": text,
                        "body_markdown": {"type": "text", "index": false},
                        "url": stored_only,
                        "version": {"type": "long"},
                        "labels": keyword,
                        "ancestors": {"type": "object", "enabled": false},
                        "updated_at": {"type": "date", "format": "strict_date_optional_time_nanos"},
                        "visibility": keyword,
                        "segments": keyword,
                        "audience_key": keyword
                    }
                }
            }),
        }
    }
}

/// What [`OpenSearchStore::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// The alias already pointed at this mapping version.
    UpToDate { index: String },
    /// Documents were copied into `to` and the alias moved there.
    Reindexed { from: String, to: String, docs: u64 },
    /// The alias points at a newer mapping (a newer operator wrote it); left alone.
    Newer { index: String },
}

/// The OpenSearch store. Cheap to clone.
#[derive(Clone)]
pub struct OpenSearchStore {
    http: reqwest::Client,
    base: Url,
    alias: String,
    auth: OpenSearchAuth,
    retry: RetryPolicy,
    mapping: IndexMapping,
}

impl std::fmt::Debug for OpenSearchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchStore")
            .field("url", &self.base.as_str())
            .field("alias", &self.alias)
            .field("mapping_version", &self.mapping.version)
            .finish()
    }
}

enum Body {
    Empty,
    Json(Value),
    Ndjson(String),
}

/// The segment filter every search carries: public documents, or documents
/// one of whose segments the caller holds. Other clients of the index apply
/// the same filter (see the README).
pub fn segment_filter(segments: &[String]) -> Value {
    let unique = audience::held(segments);
    let mut should = vec![json!({"term": {"visibility": EVERYONE}})];
    if !unique.is_empty() {
        should.push(json!({"terms": {"segments": unique}}));
    }
    json!({"bool": {"should": should, "minimum_should_match": 1}})
}

fn scope_query(scope: &SpaceScope) -> Value {
    json!({"term": {"scope": scope.key()}})
}

/// A document as stored in `_source`.
#[derive(Debug, Serialize, Deserialize)]
struct Source {
    id: String,
    scope: String,
    namespace: String,
    name: String,
    site: String,
    space_key: String,
    space_name: String,
    page_id: String,
    content_type: ContentType,
    title: String,
    body: String,
    body_markdown: String,
    url: String,
    version: u64,
    labels: Vec<String>,
    ancestors: Vec<Ancestor>,
    updated_at: Option<Timestamp>,
    visibility: String,
    segments: Vec<String>,
    audience_key: String,
}

impl Source {
    fn from_document(doc: &Document) -> Self {
        let (visibility, segments) = audience::encode(&doc.audience);
        Source {
            id: doc.id(),
            scope: doc.scope.key(),
            namespace: doc.scope.namespace.clone(),
            name: doc.scope.name.clone(),
            site: doc.site.clone(),
            space_key: doc.space_key.clone(),
            space_name: doc.space_name.clone(),
            page_id: doc.page.id.clone(),
            content_type: doc.page.content_type,
            title: doc.page.title.clone(),
            body: doc.page.body_text.clone(),
            body_markdown: doc.page.body_markdown.clone(),
            url: doc.page.url.clone(),
            version: doc.page.version,
            labels: doc.page.labels.clone(),
            ancestors: doc.page.ancestors.clone(),
            updated_at: doc.page.updated_at,
            visibility: visibility.to_string(),
            segments: segments.to_vec(),
            audience_key: doc.audience.canonical_key(),
        }
    }

    fn into_document(self) -> Document {
        let audience = audience::decode(&self.visibility, self.segments);
        Document {
            scope: SpaceScope::new(self.namespace, self.name),
            site: self.site,
            space_key: self.space_key,
            space_name: self.space_name,
            page: Page {
                id: self.page_id,
                content_type: self.content_type,
                title: self.title,
                body_markdown: self.body_markdown,
                body_text: self.body,
                url: self.url,
                version: self.version,
                labels: self.labels,
                ancestors: self.ancestors,
                updated_at: self.updated_at,
            },
            audience,
        }
    }
}

fn remote(what: &str, status: StatusCode, body: &Value) -> StoreError {
    // OpenSearch's own error type and reason; never the request, which may
    // carry document content.
    let reason = body
        .pointer("/error/root_cause/0/reason")
        .or_else(|| body.pointer("/error/reason"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = body
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("");
    StoreError::Remote(format!(
        "opensearch {what}: HTTP {}{}{}",
        status.as_u16(),
        if kind.is_empty() {
            String::new()
        } else {
            format!(" {kind}")
        },
        if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        }
    ))
}

fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

impl OpenSearchStore {
    /// Builds the client (no request yet). Use [`OpenSearchStore::connect`]
    /// to also make sure the index and alias exist.
    pub fn new(config: OpenSearchConfig, mapping: IndexMapping) -> Result<Self, StoreError> {
        let cfg_err = |m: String| StoreError::Config(format!("opensearch: {m}"));
        if !matches!(config.url.scheme(), "http" | "https") {
            return Err(cfg_err(format!(
                "URL scheme {:?} is not http or https",
                config.url.scheme()
            )));
        }
        if !config.url.username().is_empty() || config.url.password().is_some() {
            return Err(cfg_err(
                "the URL must not carry credentials; use OPENSEARCH_USERNAME/OPENSEARCH_PASSWORD or OPENSEARCH_API_KEY"
                    .into(),
            ));
        }
        let alias = config.alias.trim();
        let valid = !alias.is_empty()
            && alias.len() <= 200
            && !alias.starts_with(['-', '_', '+', '.'])
            && alias
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !valid {
            return Err(cfg_err(format!(
                "index name {alias:?} must be lowercase letters, digits, '-', '_' or '.'"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5));
        if let Some(pem) = &config.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| cfg_err(format!("CA bundle is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(cfg_err("CA bundle holds no certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| cfg_err(format!("HTTP client: {e}")))?;
        let mut base = config.url;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            http,
            base,
            alias: alias.to_string(),
            auth: config.auth,
            retry: config.retry,
            mapping,
        })
    }

    /// Builds the client with the current mapping and makes sure the alias
    /// points at an index (creating the current one when there is none).
    pub async fn connect(config: OpenSearchConfig) -> Result<Self, StoreError> {
        let store = Self::new(config, IndexMapping::current())?;
        store.ensure_index().await?;
        Ok(store)
    }

    /// The alias every read and write goes through.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// Name of the index for this store's mapping version.
    pub fn target_index(&self) -> String {
        format!("{}-v{}", self.alias, self.mapping.version)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<(StatusCode, Value), StoreError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| StoreError::Config(format!("opensearch: bad path {path:?}: {e}")))?;
        // By-query calls touch a whole space and answer only when done; the
        // normal per-request timeout would cut off a big space half way.
        let by_query = path.ends_with("_by_query");
        let mut delay = self.retry.initial;
        let mut attempt = 1;
        loop {
            let mut req = self.http.request(method.clone(), url.clone()).query(query);
            if by_query {
                req = req.timeout(BY_QUERY_TIMEOUT);
            }
            req = match &self.auth {
                OpenSearchAuth::None => req,
                OpenSearchAuth::Basic { username, password } => {
                    req.basic_auth(username, Some(password))
                }
                OpenSearchAuth::ApiKey(key) => {
                    req.header(reqwest::header::AUTHORIZATION, format!("ApiKey {key}"))
                }
            };
            req = match &body {
                Body::Empty => req,
                Body::Json(v) => req.json(v),
                Body::Ndjson(s) => req
                    .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                    .body(s.clone()),
            };
            let outcome: Result<(), String> = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if retryable(status) && attempt < self.retry.attempts {
                        Err(format!("HTTP {}", status.as_u16()))
                    } else {
                        let bytes = resp.bytes().await.map_err(|e| {
                            StoreError::Io(format!(
                                "opensearch {method} {path}: reading the answer: {}",
                                e.without_url()
                            ))
                        })?;
                        let value = if bytes.is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
                        };
                        return Ok((status, value));
                    }
                }
                Err(e) if attempt < self.retry.attempts && (e.is_connect() || e.is_timeout()) => {
                    Err(e.without_url().to_string())
                }
                Err(e) => {
                    return Err(StoreError::Io(format!(
                        "opensearch at {} unreachable ({method} {path}): {}",
                        self.base.as_str(),
                        error_chain(&e.without_url())
                    )));
                }
            };
            if let Err(why) = outcome {
                tracing::debug!(%method, path, attempt, why, "opensearch request retried");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.retry.max);
                attempt += 1;
            }
        }
    }

    /// Like [`OpenSearchStore::call`], with any status but 2xx an error.
    async fn ok(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<Value, StoreError> {
        let (status, value) = self.call(method, path, query, body).await?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(remote(what, status, &value))
        }
    }

    /// The index the alias points at, if the alias exists.
    pub async fn live_index(&self) -> Result<Option<String>, StoreError> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("_alias/{}", self.alias),
                &[],
                Body::Empty,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(remote("reading the alias", status, &body));
        }
        let indices: Vec<String> = body
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        match indices.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            many => Err(StoreError::Config(format!(
                "opensearch: alias {} points at {} indices ({}); it must point at one",
                self.alias,
                many.len(),
                many.join(", ")
            ))),
        }
    }

    fn version_of(&self, index: &str) -> Option<u32> {
        index
            .strip_prefix(&self.alias)?
            .strip_prefix("-v")?
            .parse()
            .ok()
    }

    /// Creates `index` with this store's mapping; `alias` also points the alias at it.
    async fn create_index(&self, index: &str, alias: bool) -> Result<bool, StoreError> {
        let mut body = self.mapping.body.clone();
        if alias && let Some(obj) = body.as_object_mut() {
            obj.insert("aliases".into(), json!({ self.alias.clone(): {} }));
        }
        let (status, answer) = self.call(Method::PUT, index, &[], Body::Json(body)).await?;
        if status.is_success() {
            return Ok(true);
        }
        let kind = answer.pointer("/error/type").and_then(Value::as_str);
        if status == StatusCode::BAD_REQUEST && kind == Some("resource_already_exists_exception") {
            return Ok(false);
        }
        Err(remote(&format!("creating index {index}"), status, &answer))
    }

    /// Makes sure the alias points at an index: when there is none yet, the
    /// index of the current mapping is created with the alias. Safe to run
    /// from several replicas at once. An alias at an older mapping is left
    /// for [`OpenSearchStore::migrate`].
    pub async fn ensure_index(&self) -> Result<String, StoreError> {
        if let Some(index) = self.live_index().await? {
            return Ok(index);
        }
        let target = self.target_index();
        if !self.create_index(&target, true).await? {
            // Created by another replica meanwhile, or left by an
            // interrupted start: point the alias at it if nothing else is.
            if let Some(index) = self.live_index().await? {
                return Ok(index);
            }
            self.ok(
                "creating the alias",
                Method::POST,
                "_aliases",
                &[],
                Body::Json(json!({"actions": [{"add": {"index": target, "alias": self.alias}}]})),
            )
            .await?;
        }
        Ok(target)
    }

    /// Moves the alias to the index of this store's mapping version when it
    /// points at an older one: creates the new index, copies every document
    /// into it (searches keep reading the old index through the alias
    /// meanwhile), switches the alias in one atomic request and deletes the
    /// old index. Only the leader may run this, before it starts writing.
    pub async fn migrate(&self) -> Result<Migration, StoreError> {
        let live = self.ensure_index().await?;
        let target = self.target_index();
        if live == target {
            return Ok(Migration::UpToDate { index: live });
        }
        if let Some(v) = self.version_of(&live)
            && v > self.mapping.version
        {
            return Ok(Migration::Newer { index: live });
        }
        // A target left by an interrupted migration holds a partial copy;
        // nothing reads it (the alias is elsewhere), so start over.
        let (status, answer) = self.call(Method::DELETE, &target, &[], Body::Empty).await?;
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            return Err(remote(
                &format!("deleting stale index {target}"),
                status,
                &answer,
            ));
        }
        self.create_index(&target, false).await?;
        let task = self
            .ok(
                "starting the reindex",
                Method::POST,
                "_reindex",
                &[("wait_for_completion", "false"), ("refresh", "true")],
                Body::Json(json!({
                    "source": {"index": live},
                    "dest": {"index": target, "op_type": "create"}
                })),
            )
            .await?;
        let task_id = task
            .get("task")
            .and_then(Value::as_str)
            .ok_or_else(|| StoreError::Remote("opensearch reindex: no task id".into()))?
            .to_string();
        let response = loop {
            let state = self
                .ok(
                    "polling the reindex",
                    Method::GET,
                    &format!("_tasks/{task_id}"),
                    &[],
                    Body::Empty,
                )
                .await?;
            if state.get("completed").and_then(Value::as_bool) == Some(true) {
                if let Some(err) = state.get("error") {
                    return Err(StoreError::Remote(format!(
                        "opensearch reindex {live} -> {target} failed: {}",
                        err.get("reason").and_then(Value::as_str).unwrap_or("")
                    )));
                }
                break state.get("response").cloned().unwrap_or(Value::Null);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let failures = response
            .get("failures")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if failures > 0 {
            return Err(StoreError::Remote(format!(
                "opensearch reindex {live} -> {target}: {failures} documents failed; the alias still points at {live}"
            )));
        }
        let docs = response.get("created").and_then(Value::as_u64).unwrap_or(0);
        self.ok(
            "switching the alias",
            Method::POST,
            "_aliases",
            &[],
            Body::Json(json!({"actions": [
                {"remove": {"index": live, "alias": self.alias}},
                {"add": {"index": target, "alias": self.alias}}
            ]})),
        )
        .await?;
        let (status, answer) = self.call(Method::DELETE, &live, &[], Body::Empty).await?;
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            // The switch is done; a leftover index only costs disk.
            tracing::warn!(index = %live, error = %remote("deleting the old index", status, &answer), "old index kept");
        }
        Ok(Migration::Reindexed {
            from: live,
            to: target,
            docs,
        })
    }

    /// Deletes the alias and every index of it (tests and benchmarks).
    pub async fn drop_all(&self) -> Result<(), StoreError> {
        let (status, body) = self
            .call(
                Method::DELETE,
                &format!("{}-v*", self.alias),
                &[("expand_wildcards", "all")],
                Body::Empty,
            )
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(remote("deleting the indices", status, &body))
        }
    }

    /// Sends one bulk request; items answered 429 are sent again with
    /// backoff, any other failed item fails the call.
    async fn bulk(&self, mut actions: Vec<(String, Option<String>)>) -> Result<(), StoreError> {
        let mut delay = self.retry.initial;
        let mut attempt = 1;
        loop {
            let mut ndjson = String::new();
            for (action, source) in &actions {
                ndjson.push_str(action);
                ndjson.push('\n');
                if let Some(s) = source {
                    ndjson.push_str(s);
                    ndjson.push('\n');
                }
            }
            let answer = self
                .ok(
                    "bulk",
                    Method::POST,
                    &format!("{}/_bulk", self.alias),
                    &[("refresh", "wait_for")],
                    Body::Ndjson(ndjson),
                )
                .await?;
            if answer.get("errors").and_then(Value::as_bool) != Some(true) {
                return Ok(());
            }
            let items = answer
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut again = Vec::new();
            let mut failed = Vec::new();
            for (item, action) in items.iter().zip(actions) {
                let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
                    continue;
                };
                let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
                let Some(error) = result.get("error") else {
                    continue;
                };
                if status == 429 {
                    again.push(action);
                } else {
                    failed.push(format!(
                        "{} ({}: {})",
                        result.get("_id").and_then(Value::as_str).unwrap_or("?"),
                        error.get("type").and_then(Value::as_str).unwrap_or("?"),
                        error.get("reason").and_then(Value::as_str).unwrap_or("")
                    ));
                }
            }
            if !failed.is_empty() {
                return Err(StoreError::Remote(format!(
                    "opensearch bulk: {} of {} documents rejected, first: {}",
                    failed.len(),
                    items.len(),
                    failed[0]
                )));
            }
            if again.is_empty() {
                return Ok(());
            }
            if attempt >= self.retry.attempts {
                return Err(StoreError::Remote(format!(
                    "opensearch bulk: {} documents still rejected with 429 after {attempt} tries",
                    again.len()
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.retry.max);
            attempt += 1;
            actions = again;
        }
    }

    async fn by_query(&self, what: &str, endpoint: &str, body: Value) -> Result<Value, StoreError> {
        let answer = self
            .ok(
                what,
                Method::POST,
                &format!("{}/{endpoint}", self.alias),
                &[("refresh", "true"), ("conflicts", "proceed")],
                Body::Json(body),
            )
            .await?;
        let failures = answer
            .get("failures")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let conflicts = answer
            .get("version_conflicts")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if failures > 0 || conflicts > 0 {
            return Err(StoreError::Remote(format!(
                "opensearch {what}: {failures} failures, {conflicts} version conflicts"
            )));
        }
        Ok(answer)
    }

    async fn search_request(&self, body: Value) -> Result<Value, StoreError> {
        self.ok(
            "search",
            Method::POST,
            &format!("{}/_search", self.alias),
            &[],
            Body::Json(body),
        )
        .await
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[async_trait]
impl Store for OpenSearchStore {
    fn name(&self) -> &str {
        "opensearch"
    }

    async fn upsert(&self, docs: &[Document]) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        let mut actions = Vec::with_capacity(docs.len());
        for doc in docs {
            let source = serde_json::to_string(&Source::from_document(doc))
                .map_err(|e| StoreError::Index(format!("encoding {}: {e}", doc.id())))?;
            actions.push((
                json!({"index": {"_id": doc.id()}}).to_string(),
                Some(source),
            ));
        }
        self.bulk(actions).await
    }

    async fn delete(&self, scope: &SpaceScope, page_ids: &[String]) -> Result<(), StoreError> {
        if page_ids.is_empty() {
            return Ok(());
        }
        let actions = page_ids
            .iter()
            .map(|id| {
                (
                    json!({"delete": {"_id": scope.document_id(id)}}).to_string(),
                    None,
                )
            })
            .collect();
        self.bulk(actions).await
    }

    async fn delete_space(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        self.by_query(
            "delete-by-query",
            "_delete_by_query",
            json!({"query": scope_query(scope)}),
        )
        .await
        .map(drop)
    }

    async fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError> {
        // Doc values only (no `_source`), paged with search_after on the
        // page id, which is unique within a scope.
        let mut out = HashMap::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": VERSIONS_PAGE,
                "_source": false,
                "track_total_hits": false,
                "docvalue_fields": ["page_id", "version"],
                "query": {"bool": {"filter": [scope_query(scope)]}},
                "sort": [{"page_id": "asc"}]
            });
            if let (Some(a), Some(obj)) = (&after, body.as_object_mut()) {
                obj.insert("search_after".into(), a.clone());
            }
            let answer = self.search_request(body).await?;
            let hits = answer
                .pointer("/hits/hits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for hit in &hits {
                let id = hit.pointer("/fields/page_id/0").and_then(Value::as_str);
                let version = hit.pointer("/fields/version/0").and_then(Value::as_u64);
                if let (Some(id), Some(version)) = (id, version) {
                    out.insert(id.to_string(), version);
                }
            }
            if hits.len() < VERSIONS_PAGE {
                return Ok(out);
            }
            after = hits.last().and_then(|h| h.get("sort")).cloned();
        }
    }

    async fn set_audience(
        &self,
        scope: &SpaceScope,
        audience: &Audience,
    ) -> Result<(), StoreError> {
        let key = audience.canonical_key();
        let (visibility, segments) = audience::encode(audience);
        self.by_query(
            "update-by-query",
            "_update_by_query",
            json!({
                // Only documents that still carry another audience, so a
                // repeated call changes nothing.
                "query": {"bool": {
                    "filter": [scope_query(scope)],
                    "must_not": [{"term": {"audience_key": key}}]
                }},
                "script": {
                    "lang": "painless",
                    "source": "ctx._source.visibility = params.visibility; ctx._source.segments = params.segments; ctx._source.audience_key = params.key;",
                    "params": {"visibility": visibility, "segments": segments, "key": key}
                }
            }),
        )
        .await
        .map(drop)
    }

    async fn count(&self, scope: &SpaceScope) -> Result<u64, StoreError> {
        let answer = self
            .ok(
                "count",
                Method::POST,
                &format!("{}/_count", self.alias),
                &[],
                Body::Json(json!({"query": scope_query(scope)})),
            )
            .await?;
        answer
            .get("count")
            .and_then(Value::as_u64)
            .ok_or_else(|| StoreError::Remote("opensearch count: no count in the answer".into()))
    }
}

#[async_trait]
impl Search for OpenSearchStore {
    async fn search_counted(
        &self,
        query: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<SearchResults, StoreError> {
        let text: String = query.trim().chars().take(MAX_QUERY_CHARS).collect();
        if text.is_empty() || limit == 0 {
            return Ok(SearchResults::default());
        }
        let answer = self
            .search_request(json!({
                "size": limit,
                "track_total_hits": true,
                "_source": ["id", "title", "url", "space_key"],
                "query": {"bool": {
                    // `match` analyses the text; nothing in it is query syntax.
                    "must": [{"multi_match": {
                        "query": text,
                        "fields": ["title^3", "body"],
                        "type": "most_fields"
                    }}],
                    "filter": [segment_filter(segments)]
                }},
                "highlight": {
                    "pre_tags": [""],
                    "post_tags": [""],
                    "fields": {"body": {
                        "fragment_size": SNIPPET_CHARS,
                        "number_of_fragments": 1,
                        // Matched on the title only: the start of the page,
                        // long enough to show where `snippet` cuts it.
                        "no_match_size": 2 * SNIPPET_CHARS
                    }}
                }
            }))
            .await?;
        let hits = answer
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|h| {
                let source = h.get("_source").cloned().unwrap_or(Value::Null);
                let passage = h.pointer("/highlight/body/0").and_then(Value::as_str);
                let snippet = snippet(passage.unwrap_or_default());
                Hit {
                    id: str_field(&source, "id"),
                    title: str_field(&source, "title"),
                    snippet,
                    url: str_field(&source, "url"),
                    space_key: str_field(&source, "space_key"),
                    score: h.get("_score").and_then(Value::as_f64).unwrap_or(0.0) as f32,
                }
            })
            .collect();
        let total = answer.pointer("/hits/total/value").and_then(Value::as_u64);
        Ok(SearchResults { hits, total })
    }

    async fn get(&self, id: &str, segments: &[String]) -> Result<Option<Document>, StoreError> {
        let answer = self
            .search_request(json!({
                "size": 1,
                "query": {"bool": {"filter": [
                    {"ids": {"values": [id]}},
                    segment_filter(segments)
                ]}}
            }))
            .await?;
        let Some(source) = answer.pointer("/hits/hits/0/_source").cloned() else {
            return Ok(None);
        };
        let source: Source = serde_json::from_value(source)
            .map_err(|e| StoreError::Index(format!("opensearch document {id}: {e}")))?;
        Ok(Some(source.into_document()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_filter_admits_public_documents_and_any_held_segment() {
        let f = segment_filter(&["b".into(), "a".into(), "b".into()]);
        assert_eq!(
            f,
            json!({"bool": {"should": [
                {"term": {"visibility": "everyone"}},
                {"terms": {"segments": ["a", "b"]}}
            ], "minimum_should_match": 1}})
        );
        let anonymous = segment_filter(&[]);
        assert_eq!(
            anonymous,
            json!({"bool": {"should": [{"term": {"visibility": "everyone"}}], "minimum_should_match": 1}})
        );
    }

    #[test]
    fn credentials_never_show_in_debug_output_or_url() {
        let auth = OpenSearchAuth::Basic {
            username: "bot".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert!(!format!("{:?}", OpenSearchAuth::ApiKey("s3cr3t".into())).contains("s3cr3t"));
        let url = Url::parse("https://bot:hunter2@search.example.com").unwrap();
        let err = OpenSearchStore::new(
            OpenSearchConfig::new(url, "confluence"),
            IndexMapping::current(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must not carry credentials") && !err.contains("hunter2"));
    }

    #[test]
    fn index_names_are_checked() {
        let url = Url::parse("http://127.0.0.1:9200").unwrap();
        for bad in ["", "Upper", "_x", "a b", "a/b"] {
            assert!(
                OpenSearchStore::new(
                    OpenSearchConfig::new(url.clone(), bad),
                    IndexMapping::current()
                )
                .is_err(),
                "{bad:?} accepted"
            );
        }
        let store = OpenSearchStore::new(
            OpenSearchConfig::new(url, "confluence"),
            IndexMapping::current(),
        )
        .unwrap();
        assert_eq!(
            store.target_index(),
            format!("confluence-v{MAPPING_VERSION}")
        );
        assert_eq!(store.version_of("confluence-v7"), Some(7));
        assert_eq!(store.version_of("other-v7"), None);
    }

    /// A stand-in that answers `_count` with `status` for the first `failures`
    /// calls, then with a count; returns its URL and the call counter.
    async fn flaky(
        status: u16,
        failures: usize,
    ) -> (Url, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().route(
            "/confluence/_count",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if n < failures {
                        (
                            axum::http::StatusCode::from_u16(status).unwrap(),
                            axum::Json(json!({"error": {"type": "es_rejected_execution_exception", "reason": "queue full"}})),
                        )
                    } else {
                        (axum::http::StatusCode::OK, axum::Json(json!({"count": 7})))
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    fn quick(url: Url) -> OpenSearchStore {
        let mut config = OpenSearchConfig::new(url, "confluence");
        config.retry = RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
        };
        OpenSearchStore::new(config, IndexMapping::current()).unwrap()
    }

    #[tokio::test]
    async fn rate_limited_and_unavailable_answers_are_retried_with_backoff() {
        use std::sync::atomic::Ordering;
        let scope = SpaceScope::new("ns", "kb");
        for status in [429, 503] {
            let (url, calls) = flaky(status, 3).await;
            assert_eq!(quick(url).count(&scope).await.unwrap(), 7);
            assert_eq!(calls.load(Ordering::SeqCst), 4);
        }
        // Past the budget the caller gets OpenSearch's reason.
        let (url, calls) = flaky(429, 100).await;
        let err = quick(url).count(&scope).await.unwrap_err().to_string();
        assert!(
            err.contains("HTTP 429") && err.contains("queue full"),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Other errors are not retried.
        let (url, calls) = flaky(400, 100).await;
        assert!(quick(url).count(&scope).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn documents_round_trip_through_the_stored_source() {
        let doc = Document {
            scope: SpaceScope::new("ns", "kb"),
            site: "https://wiki.example.com".into(),
            space_key: "KB".into(),
            space_name: "Knowledge".into(),
            page: Page {
                id: "42".into(),
                content_type: ContentType::Blogpost,
                title: "T".into(),
                body_markdown: "# T\n\nbody".into(),
                body_text: "body".into(),
                url: "https://wiki.example.com/42".into(),
                version: 3,
                labels: vec!["a".into()],
                ancestors: vec![Ancestor {
                    id: "1".into(),
                    title: "Home".into(),
                }],
                updated_at: Some("2025-03-04T05:06:07.123456789Z".parse().unwrap()),
            },
            audience: Audience::Segments(vec!["x".into()]),
        };
        let json = serde_json::to_value(Source::from_document(&doc)).unwrap();
        let back: Source = serde_json::from_value(json).unwrap();
        assert_eq!(back.into_document(), doc);
    }
}
