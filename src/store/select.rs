//! Which stores the operator writes to, from flags: the embedded index by
//! default, optionally OpenSearch, the Zendesk sink and an in-memory store.

use crate::store::embedded::{EmbeddedOptions, EmbeddedStore, RebuildCause};
use crate::store::memory::MemoryStore;
use crate::store::opensearch::{OpenSearchConfig, OpenSearchStore};
use crate::store::zendesk::{ZendeskConfig, ZendeskSink};
use crate::store::{Search, Store, StoreError};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Embedded,
    Memory,
    OpenSearch,
    Zendesk,
}

impl FromStr for StoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "embedded" => Ok(StoreKind::Embedded),
            "memory" => Ok(StoreKind::Memory),
            "opensearch" => Ok(StoreKind::OpenSearch),
            "zendesk" => Ok(StoreKind::Zendesk),
            other => Err(format!(
                "unknown store {other:?}: use embedded, opensearch, memory or zendesk"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoresError {
    #[error("reading the Zendesk configuration {path}: {reason}")]
    ZendeskConfig { path: PathBuf, reason: String },
    #[error("the zendesk store needs --zendesk-config")]
    ZendeskConfigMissing,
    #[error("the zendesk store needs ZENDESK_API_TOKEN (and ZENDESK_EMAIL for API-token auth)")]
    ZendeskCredentialsMissing,
    #[error("store {store}: {source}")]
    Open {
        store: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("the opensearch store needs --opensearch-url")]
    OpenSearchUrlMissing,
    #[error("--search-store {0:?} is not one of the stores in --stores")]
    SearchStoreNotWritten(StoreKind),
    #[error("--search-store {0:?} cannot answer searches: use embedded, opensearch or memory")]
    NotSearchable(StoreKind),
    #[error("no stores configured")]
    Empty,
}

/// The Zendesk configuration file (the chart's ConfigMap). Credentials come
/// from the environment (a Secret), never from this file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZendeskFile {
    pub url: String,
    #[serde(default = "default_locale")]
    pub locale: String,
    #[serde(default = "default_source")]
    pub source_name: String,
    #[serde(default = "default_type")]
    pub type_name: String,
    #[serde(default)]
    pub segment_map: HashMap<String, u64>,
    /// Empty string or absent: `Everyone` spaces are public in the Help Center.
    #[serde(default)]
    pub everyone_segment_id: Option<serde_json::Value>,
}

fn default_locale() -> String {
    "en-us".into()
}
fn default_source() -> String {
    "Confluence".into()
}
fn default_type() -> String {
    "Confluence page".into()
}

pub struct Stores {
    pub writers: Vec<Arc<dyn Store>>,
    /// What the search API queries.
    pub search: Arc<dyn Search>,
    /// Set when OpenSearch is among the stores: the leader migrates its
    /// index (see [`OpenSearchStore::migrate`]) before it writes.
    pub opensearch: Option<Arc<OpenSearchStore>>,
    /// The embedded index, when it is among the stores: checked for damage
    /// while the operator runs (see [`crate::store::integrity`]).
    pub embedded: Option<Arc<EmbeddedStore>>,
    /// Set when the embedded index was found damaged at start-up and
    /// replaced by an empty one: what happened, for the spaces' Events.
    pub rebuilt: Option<String>,
}

pub struct StoreOptions<'a> {
    pub kinds: &'a [StoreKind],
    /// The store the search API reads; `None` picks OpenSearch, else the
    /// embedded index, else the in-memory store.
    pub search_store: Option<StoreKind>,
    pub data_dir: &'a Path,
    /// Overrides the embedded index's document limit per commit.
    pub index_commit_docs: Option<usize>,
    pub opensearch: Option<OpenSearchConfig>,
    pub zendesk_config: Option<&'a Path>,
    pub zendesk_email: Option<String>,
    pub zendesk_token: Option<String>,
}

/// Opens every store. OpenSearch is contacted once (its alias created when
/// missing), so a wrong URL or credentials fail at start-up, not at the
/// first sync.
pub async fn open(opts: StoreOptions<'_>) -> Result<Stores, StoresError> {
    if opts.kinds.is_empty() {
        return Err(StoresError::Empty);
    }
    let search_kind = match opts.search_store {
        Some(kind) if !opts.kinds.contains(&kind) => {
            return Err(StoresError::SearchStoreNotWritten(kind));
        }
        Some(StoreKind::Zendesk) => return Err(StoresError::NotSearchable(StoreKind::Zendesk)),
        Some(kind) => Some(kind),
        None => [
            StoreKind::OpenSearch,
            StoreKind::Embedded,
            StoreKind::Memory,
        ]
        .into_iter()
        .find(|k| opts.kinds.contains(k)),
    };
    let mut writers: Vec<Arc<dyn Store>> = Vec::new();
    let mut search: Option<Arc<dyn Search>> = None;
    let mut opensearch = None;
    let mut rebuilt = None;
    let mut embedded = None;
    for kind in opts.kinds {
        match kind {
            StoreKind::Embedded => {
                let mut options = EmbeddedOptions::default();
                if let Some(docs) = opts.index_commit_docs {
                    options.commit.max_docs = docs;
                }
                let (store, damaged) =
                    EmbeddedStore::open_or_rebuild(&opts.data_dir.join("index"), options).map_err(
                        |source| StoresError::Open {
                            store: "embedded",
                            source,
                        },
                    )?;
                if let Some(d) = damaged {
                    let what = match d.cause {
                        RebuildCause::Damaged => "was damaged",
                        RebuildCause::OtherSchema => {
                            "was written by another release of the operator (another schema)"
                        }
                    };
                    tracing::warn!(reason = %d.reason, moved_to = %d.moved_to.display(), "embedded index {what}; rebuilding it from Confluence");
                    rebuilt = Some(format!(
                        "The embedded index {what} ({}); it was moved aside to {} and is rebuilt from Confluence",
                        d.reason,
                        d.moved_to.display()
                    ));
                }
                let store = Arc::new(store);
                if search_kind == Some(*kind) {
                    search = Some(store.clone());
                }
                embedded = Some(store.clone());
                writers.push(store);
            }
            StoreKind::OpenSearch => {
                let config = opts
                    .opensearch
                    .clone()
                    .ok_or(StoresError::OpenSearchUrlMissing)?;
                let store =
                    OpenSearchStore::connect(config)
                        .await
                        .map_err(|source| StoresError::Open {
                            store: "opensearch",
                            source,
                        })?;
                let store = Arc::new(store);
                if search_kind == Some(*kind) {
                    search = Some(store.clone());
                }
                opensearch = Some(store.clone());
                writers.push(store);
            }
            StoreKind::Memory => {
                let store = Arc::new(MemoryStore::new());
                if search_kind == Some(*kind) {
                    search = Some(store.clone());
                }
                writers.push(store);
            }
            StoreKind::Zendesk => {
                let config = zendesk_config(&opts)?;
                let sink = ZendeskSink::new(config, &opts.data_dir.join("zendesk-state.json"))
                    .map_err(|source| StoresError::Open {
                        store: "zendesk",
                        source,
                    })?;
                writers.push(Arc::new(sink));
            }
        }
    }
    // With only external sinks the search API answers from an empty index.
    let search = search.unwrap_or_else(|| Arc::new(MemoryStore::new()));
    Ok(Stores {
        writers,
        search,
        opensearch,
        embedded,
        rebuilt,
    })
}

fn zendesk_config(opts: &StoreOptions<'_>) -> Result<ZendeskConfig, StoresError> {
    let path = opts
        .zendesk_config
        .ok_or(StoresError::ZendeskConfigMissing)?;
    let err = |reason: String| StoresError::ZendeskConfig {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: ZendeskFile = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let everyone_segment = match file.everyone_segment_id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(
            s.trim()
                .parse::<u64>()
                .map_err(|_| err(format!("everyoneSegmentId {s:?} is not a number")))?,
        ),
        Some(serde_json::Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| err(format!("everyoneSegmentId {n} is not a positive id")))?,
        ),
        Some(other) => return Err(err(format!("everyoneSegmentId {other} is not an id"))),
    };
    let api_token = opts
        .zendesk_token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or(StoresError::ZendeskCredentialsMissing)?;
    Ok(ZendeskConfig {
        subdomain_or_base_url: file.url,
        email: opts.zendesk_email.clone().unwrap_or_default(),
        api_token,
        locale: file.locale,
        source_name: file.source_name,
        type_name: file.type_name,
        segment_map: file.segment_map,
        everyone_segment,
    })
}

/// Parses one store name (for `--search-store`).
pub fn parse_kind(name: &str) -> Result<StoreKind, String> {
    name.parse()
}

/// Parses `embedded,zendesk`.
pub fn parse_kinds(list: &str) -> Result<Vec<StoreKind>, String> {
    let mut kinds = Vec::new();
    for part in list.split(',').filter(|p| !p.trim().is_empty()) {
        let kind: StoreKind = part.parse()?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err("at least one store is required".into());
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_lists() {
        assert_eq!(
            parse_kinds("embedded, zendesk,embedded"),
            Ok(vec![StoreKind::Embedded, StoreKind::Zendesk])
        );
        assert_eq!(
            parse_kinds("opensearch,embedded"),
            Ok(vec![StoreKind::OpenSearch, StoreKind::Embedded])
        );
        assert!(parse_kinds("").is_err());
        assert!(
            parse_kinds("elastic")
                .unwrap_err()
                .contains("unknown store")
        );
    }

    fn options<'a>(kinds: &'a [StoreKind], dir: &'a Path) -> StoreOptions<'a> {
        StoreOptions {
            kinds,
            search_store: None,
            data_dir: dir,
            index_commit_docs: None,
            opensearch: None,
            zendesk_config: None,
            zendesk_email: None,
            zendesk_token: None,
        }
    }

    #[tokio::test]
    async fn opensearch_and_the_search_store_are_checked_before_anything_opens() {
        let dir = tempfile::tempdir().unwrap();
        let err = |r: Result<Stores, StoresError>| r.err().map(|e| e.to_string());
        assert_eq!(
            err(open(options(&[StoreKind::OpenSearch], dir.path())).await),
            Some("the opensearch store needs --opensearch-url".into())
        );
        let opts = StoreOptions {
            search_store: Some(StoreKind::Embedded),
            ..options(&[StoreKind::Memory], dir.path())
        };
        assert!(matches!(
            open(opts).await,
            Err(StoresError::SearchStoreNotWritten(StoreKind::Embedded))
        ));
        let opts = StoreOptions {
            search_store: Some(StoreKind::Zendesk),
            ..options(&[StoreKind::Memory, StoreKind::Zendesk], dir.path())
        };
        assert!(matches!(
            open(opts).await,
            Err(StoresError::NotSearchable(StoreKind::Zendesk))
        ));
        let opts = StoreOptions {
            search_store: Some(StoreKind::Memory),
            ..options(&[StoreKind::Memory], dir.path())
        };
        assert!(open(opts).await.is_ok());
    }

    #[test]
    fn zendesk_needs_a_token_and_never_reads_it_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zendesk.json");
        std::fs::write(
            &path,
            r#"{"url":"https://acme.zendesk.com","segmentMap":{"agents-and-admins":7},"everyoneSegmentId":""}"#,
        )
        .unwrap();
        let opts = StoreOptions {
            kinds: &[StoreKind::Zendesk],
            search_store: None,
            data_dir: dir.path(),
            index_commit_docs: None,
            opensearch: None,
            zendesk_config: Some(&path),
            zendesk_email: Some("bot@acme.com".into()),
            zendesk_token: None,
        };
        assert!(matches!(
            zendesk_config(&opts),
            Err(StoresError::ZendeskCredentialsMissing)
        ));
        let opts = StoreOptions {
            zendesk_token: Some("tok".into()),
            ..opts
        };
        let cfg = zendesk_config(&opts).unwrap();
        assert_eq!(cfg.segment_map.get("agents-and-admins"), Some(&7));
        assert_eq!(cfg.everyone_segment, None);
    }
}
