//! An in-memory store: for tests, the demo without a volume, and as the
//! reference behaviour the other stores are checked against.

use super::snippet::snippet;
use super::{Hit, Search, SearchResults, Store, StoreError};
use crate::model::{Audience, Document, SpaceScope};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct MemoryStore {
    // scope -> page id -> document; BTreeMap keeps listings deterministic.
    spaces: Mutex<BTreeMap<SpaceScope, BTreeMap<String, Document>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<SpaceScope, BTreeMap<String, Document>>> {
        // A panic while holding the lock cannot leave a half-applied batch
        // (each method mutates only after validating), so poisoning is ignored.
        self.spaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// All documents of a space, ordered by page id.
    pub fn documents(&self, scope: &SpaceScope) -> Vec<Document> {
        self.lock()
            .get(scope)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of documents across every space.
    pub fn total(&self) -> usize {
        self.lock().values().map(BTreeMap::len).sum()
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn upsert(&self, docs: &[Document]) -> Result<(), StoreError> {
        let mut spaces = self.lock();
        for doc in docs {
            spaces
                .entry(doc.scope.clone())
                .or_default()
                .insert(doc.page.id.clone(), doc.clone());
        }
        Ok(())
    }

    async fn delete(&self, scope: &SpaceScope, page_ids: &[String]) -> Result<(), StoreError> {
        if let Some(space) = self.lock().get_mut(scope) {
            for id in page_ids {
                space.remove(id);
            }
        }
        Ok(())
    }

    async fn delete_space(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        self.lock().remove(scope);
        Ok(())
    }

    async fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError> {
        Ok(self
            .lock()
            .get(scope)
            .map(|m| {
                m.iter()
                    .map(|(id, d)| (id.clone(), d.page.version))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn set_audience(
        &self,
        scope: &SpaceScope,
        audience: &Audience,
    ) -> Result<(), StoreError> {
        if let Some(space) = self.lock().get_mut(scope) {
            for doc in space.values_mut() {
                doc.audience = audience.clone();
            }
        }
        Ok(())
    }

    async fn count(&self, scope: &SpaceScope) -> Result<u64, StoreError> {
        Ok(self.lock().get(scope).map_or(0, |m| m.len() as u64))
    }
}

#[async_trait]
impl Search for MemoryStore {
    async fn search_counted(
        &self,
        query: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<SearchResults, StoreError> {
        let terms: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let spaces = self.lock();
        let mut hits: Vec<Hit> = spaces
            .values()
            .flat_map(BTreeMap::values)
            .filter(|d| d.audience.admits(segments))
            .filter_map(|d| {
                let title = d.page.title.to_lowercase();
                let body = d.page.body_text.to_lowercase();
                let score: f32 = terms
                    .iter()
                    .map(|t| {
                        2.0 * title.matches(t.as_str()).count() as f32
                            + body.matches(t.as_str()).count() as f32
                    })
                    .sum();
                (score > 0.0).then(|| Hit {
                    id: d.id(),
                    title: d.page.title.clone(),
                    snippet: snippet(&d.page.body_text),
                    url: d.page.url.clone(),
                    space_key: d.space_key.clone(),
                    score,
                })
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        let total = hits.len() as u64;
        hits.truncate(limit);
        Ok(SearchResults {
            hits,
            total: Some(total),
        })
    }

    async fn get(&self, id: &str, segments: &[String]) -> Result<Option<Document>, StoreError> {
        Ok(self
            .lock()
            .values()
            .flat_map(BTreeMap::values)
            .find(|d| d.id() == id && d.audience.admits(segments))
            .cloned())
    }
}
