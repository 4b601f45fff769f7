//! The embedded store: a tantivy index in a local directory (a PVC in the
//! cluster) that implements both [`Store`] and [`Search`].
//!
//! Durability model: a tantivy commit atomically replaces `meta.json` after
//! the segment files are synced, so a crash at any point leaves the index at
//! the previous commit; segment files of an unfinished commit are
//! garbage-collected on the next open. Every `Store` call that changes
//! anything ends in a commit (a no-op call, e.g. `set_audience` with the
//! audience the documents already have, commits nothing), except `stage`:
//! staged documents wait in the writer and are committed together, whole
//! calls at a time, when the [`CommitPolicy`] says so, and at the latest by
//! `flush` or by the next call that reads or rewrites stored documents
//! (`versions`, `count`, `upsert`, `delete`, `delete_space`,
//! `set_audience`). A commit per call costs a segment, a sync of the
//! directory and a reader reload; for a bulk load that dominated indexing.
//! Staged documents a failed commit discards are remembered per scope, so
//! the `flush` of that scope fails and the sync that staged them never
//! reports them stored.
//!
//! `open` itself blocks on disk; call it at start-up (or inside
//! `spawn_blocking`), not from a busy async task.
//!
//! Concurrency model: one `IndexWriter` behind a mutex serialises writes; the
//! reader uses `ReloadPolicy::Manual` and is reloaded right after each commit,
//! so a caller sees its own writes as soon as the call returns (staged ones
//! once they are committed: searches lag a running sync by at most
//! [`CommitPolicy::max_age`]). All tantivy work (which blocks on disk and CPU)
//! runs on `spawn_blocking`.

mod niceness;
mod open;
mod queries;
mod schema;
mod stems;
mod visible_top;
mod writer;

pub use open::{RebuildCause, Rebuilt, damaged_copy_path, other_schema_copy_path};
pub use writer::{CommitPolicy, EmbeddedOptions};

use super::{Search, SearchResults, Store, StoreError};
use crate::model::{Audience, Document, SpaceScope};
use async_trait::async_trait;
use schema::Fields;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tantivy::collector::Count;
use tantivy::query::{BooleanQuery, Occur};
use tantivy::{Index, IndexReader, TantivyDocument};
use writer::WriterState;

fn index_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

struct Inner {
    index: Index,
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<WriterState>,
    policy: CommitPolicy,
    dir: PathBuf,
    /// The writer threads' nice value, kept when a rollback replaces them.
    niceness: i32,
    /// Why the writer can take no more writes (its directory was removed
    /// under it, say). Set once; the operator exits on it so that its
    /// restart opens the index afresh.
    unusable: tokio::sync::watch::Sender<Option<String>>,
}

/// A tantivy index on a local directory. Cheap to clone; clones share the index.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl EmbeddedStore {
    /// Why the index can take no more writes, once a failed write has left
    /// its writer unable to start again; `None` while it is usable.
    pub fn unusable(&self) -> Option<String> {
        self.inner.unusable.borrow().clone()
    }

    /// Waits until the index can take no more writes (see
    /// [`EmbeddedStore::unusable`]) and returns why.
    pub async fn wait_unusable(&self) -> String {
        let mut seen = self.inner.unusable.subscribe();
        match seen.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The sender lives as long as the store this borrows.
            Err(_) => std::future::pending().await,
        }
    }

    /// Directory holding the index.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Documents across every space.
    pub async fn total(&self) -> Result<u64, StoreError> {
        self.blocking(|inner| Ok(inner.reader.searcher().num_docs()))
            .await
    }

    /// Runs tantivy work off the async runtime's worker threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Index(format!("index task failed: {e}")))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn name(&self) -> &str {
        "embedded"
    }

    async fn upsert(&self, docs: &[Document]) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        let converted = self.encode_all(docs)?;
        self.blocking(move |inner| {
            inner.write(|writer, _| {
                for d in converted {
                    // Delete-then-add replaces; a delete only affects
                    // documents added before it, so a page listed twice in
                    // one batch ends up stored once (the last copy).
                    writer.delete_term(inner.term(inner.fields.id, &d.id));
                    writer.add_document(d.doc).map_err(index_err)?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn stage(&self, docs: &[Document]) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        let converted = self.encode_all(docs)?;
        let timers = self.blocking(move |inner| inner.stage(converted)).await?;
        if timers.age {
            self.arm_commit_timer();
        }
        if timers.pause {
            self.arm_pause_timer();
        }
        Ok(())
    }

    async fn flush(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        let key = scope.key();
        self.blocking(move |inner| inner.flush(&key)).await
    }

    async fn delete(&self, scope: &SpaceScope, page_ids: &[String]) -> Result<(), StoreError> {
        if page_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = page_ids.iter().map(|p| scope.document_id(p)).collect();
        self.blocking(move |inner| {
            inner.write(|writer, _| {
                for id in &ids {
                    writer.delete_term(inner.term(inner.fields.id, id));
                }
                Ok(true)
            })
        })
        .await
    }

    async fn delete_space(&self, scope: &SpaceScope) -> Result<(), StoreError> {
        let key = scope.key();
        self.blocking(move |inner| {
            inner.write(|writer, _| {
                writer.delete_term(inner.term(inner.fields.scope, &key));
                Ok(true)
            })
        })
        .await
    }

    async fn versions(&self, scope: &SpaceScope) -> Result<HashMap<String, u64>, StoreError> {
        let scope = scope.clone();
        self.blocking(move |inner| inner.versions(&scope)).await
    }

    async fn set_audience(
        &self,
        scope: &SpaceScope,
        audience: &Audience,
    ) -> Result<(), StoreError> {
        let key = scope.key();
        let audience = audience.clone();
        self.blocking(move |inner| {
            let f = inner.fields;
            inner.write(|writer, searcher| {
                // Only documents still carrying another audience are
                // rewritten; the sync calls this on every run, and an
                // unchanged audience must cost one query, not a re-index.
                let stale = BooleanQuery::new(vec![
                    (Occur::Must, inner.term_query(f.scope, &key)),
                    (
                        Occur::MustNot,
                        inner.term_query(f.audience_key, &audience.canonical_key()),
                    ),
                ]);
                let addrs = inner.scope_docs(searcher, &stale)?;
                if addrs.is_empty() {
                    return Ok(false);
                }
                for addr in addrs {
                    let stored: TantivyDocument = searcher.doc(addr).map_err(index_err)?;
                    let mut doc = inner.decode(&stored)?;
                    doc.audience = audience.clone();
                    writer.delete_term(inner.term(f.id, &doc.id()));
                    writer
                        .add_document(inner.encode(&doc)?)
                        .map_err(index_err)?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn count(&self, scope: &SpaceScope) -> Result<u64, StoreError> {
        let key = scope.key();
        self.blocking(move |inner| {
            inner.settle()?;
            let q = inner.term_query(inner.fields.scope, &key);
            let n = inner
                .reader
                .searcher()
                .search(q.as_ref(), &Count)
                .map_err(index_err)?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl Search for EmbeddedStore {
    async fn search_counted(
        &self,
        query: &str,
        segments: &[String],
        limit: usize,
    ) -> Result<SearchResults, StoreError> {
        let query = query.to_string();
        let segments = segments.to_vec();
        self.blocking(move |inner| inner.search(&query, &segments, limit))
            .await
    }

    async fn get(&self, id: &str, segments: &[String]) -> Result<Option<Document>, StoreError> {
        let id = id.to_string();
        let segments = segments.to_vec();
        self.blocking(move |inner| inner.get(&id, &segments)).await
    }
}
