//! Where synced content goes: the `Store` trait every sink implements, and the
//! `Search` trait for stores that can answer queries.

pub(crate) mod audience;
pub mod embedded;
pub mod integrity;
pub mod memory;
pub mod opensearch;
pub mod select;
pub(crate) mod snippet;
pub mod zendesk;

use crate::model::{Audience, Document, SpaceScope};
use async_trait::async_trait;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("store index error: {0}")]
    Index(String),
    #[error("remote sink rejected the request: {0}")]
    Remote(String),
    #[error("store configuration is invalid: {0}")]
    Config(String),
}

/// A sink for synced documents. Every method is idempotent so a sync can be
/// retried after any failure; each call is atomic (all or nothing). Reads
/// (`versions`, `count`) see every write made before them, staged or not.
#[async_trait]
pub trait Store: Send + Sync {
    /// Short name used in logs, metrics and conditions (e.g. `embedded`, `zendesk`).
    fn name(&self) -> &str;

    /// Inserts or replaces documents (keyed by scope + page id).
    async fn upsert(&self, docs: &[Document]) -> Result<(), StoreError>;

    /// Like [`Store::upsert`], but the store may hold the documents back and
    /// commit them together with later ones (by size or age), which is much
    /// cheaper for bulk writes. Staged documents are durable only once
    /// [`Store::flush`] for their scope returned `Ok`; until then a crash may
    /// lose them (never half of one call). By default this is `upsert`.
    async fn stage(&self, docs: &[Document]) -> Result<(), StoreError> {
        self.upsert(docs).await
    }

    /// Makes every document staged for `scope` durable. Fails when any of
    /// them could not be committed (they are then absent, never half-written,
    /// and a resync restores them).
    async fn flush(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        let _ = scope;
        Ok(())
    }

    /// Removes the given pages of a space.
    async fn delete(&self, scope: &SpaceScope, page_ids: &[String]) -> Result<(), StoreError>;

    /// Removes everything of a space.
    async fn delete_space(&self, scope: &SpaceScope) -> Result<(), StoreError>;

    /// Page id -> version of everything stored for a space.
    async fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError>;

    /// Changes who may see a space's documents without re-fetching them.
    async fn set_audience(&self, scope: &SpaceScope, audience: &Audience)
    -> Result<(), StoreError>;

    /// Number of documents stored for a space.
    async fn count(&self, scope: &SpaceScope) -> Result<u64, StoreError>;
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub snippet: String,
    pub url: String,
    pub space_key: String,
    pub score: f32,
}

/// Hits of one query plus, where the store can count cheaply, how many
/// documents matched in total (visible to the caller) beyond the limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    pub total: Option<u64>,
}

/// A store that can answer segment-filtered queries.
#[async_trait]
pub trait Search: Send + Sync {
    /// Ranked hits visible to a caller holding `segments`, with the total
    /// number of visible matches when the store can count them cheaply.
    async fn search_counted(
        &self,
        query: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<SearchResults, StoreError>;

    /// Just the ranked hits of [`Search::search_counted`].
    async fn search(
        &self,
        query: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        Ok(self.search_counted(query, segments, limit).await?.hits)
    }

    /// One document by id, if it exists and is visible to `segments`.
    async fn get(&self, id: &str, segments: &[String]) -> Result<Option<Document>, StoreError>;
}
