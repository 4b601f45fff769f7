//! The sync engine: makes every store hold exactly what Confluence lists for
//! a space, fetching bodies only for new or changed items.

use crate::confluence::{ConfluenceApi, ConfluenceError, ListOptions, SpaceInfo};
use crate::model::{Audience, Document, PageRef, SpaceScope};
use crate::store::{Store, StoreError};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Items fetched (and committed) per batch. Each batch is one atomic store
/// write, so an interrupted sync keeps every completed batch.
pub const DEFAULT_BATCH_SIZE: usize = 50;

/// Batches fetched ahead of the one being committed.
const FETCH_AHEAD: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Source(#[from] ConfluenceError),
    #[error("store {store}: {source}")]
    Store {
        store: String,
        #[source]
        source: StoreError,
    },
}

impl SyncError {
    fn store(store: &dyn Store, source: StoreError) -> Self {
        SyncError::Store {
            store: store.name().to_string(),
            source,
        }
    }
}

/// What to sync and where it belongs.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub scope: SpaceScope,
    pub site_url: String,
    pub space: SpaceInfo,
    pub audience: Audience,
    pub options: ListOptions,
    pub batch_size: usize,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Items Confluence listed (and every store now holds).
    pub items: u64,
    /// Bodies fetched because they were new or changed in at least one store.
    pub fetched: u64,
    /// Items removed from stores because Confluence no longer lists them.
    pub deleted: u64,
    /// Items already up to date everywhere.
    pub unchanged: u64,
}

/// Brings every store in line with Confluence for one space.
pub async fn sync_space(
    source: &dyn ConfluenceApi,
    stores: &[Arc<dyn Store>],
    req: &SyncRequest,
) -> Result<SyncReport, SyncError> {
    // A failed listing returns early: absence from an incomplete listing must
    // never be read as deletion.
    let listed = source.list(&req.space, &req.options).await?;
    let listed_ids: BTreeSet<&str> = listed.iter().map(|r| r.id.as_str()).collect();

    let mut stored: Vec<HashMap<String, u64>> = Vec::with_capacity(stores.len());
    for store in stores {
        let versions = store
            .versions(&req.scope)
            .await
            .map_err(|e| SyncError::store(store.as_ref(), e))?;
        stored.push(versions);
    }

    // Viewer changes apply to what is already stored, without a re-fetch.
    for store in stores {
        store
            .set_audience(&req.scope, &req.audience)
            .await
            .map_err(|e| SyncError::store(store.as_ref(), e))?;
    }

    let stale: Vec<&PageRef> = listed
        .iter()
        .filter(|r| stored.iter().any(|s| s.get(&r.id) != Some(&r.version)))
        .collect();

    let mut report = SyncReport {
        items: listed.len() as u64,
        unchanged: (listed.len() - stale.len()) as u64,
        ..SyncReport::default()
    };

    // Several batches are fetched at once (the client's per-site limit still
    // bounds requests in flight) while stores commit them one by one, in
    // order, so each committed batch stays a durable step.
    let batches: Vec<Vec<PageRef>> = stale
        .chunks(req.batch_size.max(1))
        .map(|batch| batch.iter().map(|r| (*r).clone()).collect())
        .collect();
    let mut fetches = futures::stream::iter(batches)
        .map(|refs| async move { source.fetch(&req.space, &refs).await })
        .buffered(FETCH_AHEAD);
    while let Some(pages) = fetches.next().await {
        let pages = pages?;
        report.fetched += pages.len() as u64;
        let docs: Vec<Document> = pages
            .into_iter()
            .map(|page| Document {
                scope: req.scope.clone(),
                site: req.site_url.clone(),
                space_key: req.space.key.clone(),
                space_name: req.space.name.clone(),
                page,
                audience: req.audience.clone(),
            })
            .collect();
        for store in stores {
            store
                .upsert(&docs)
                .await
                .map_err(|e| SyncError::store(store.as_ref(), e))?;
        }
    }

    let mut deleted: BTreeSet<String> = BTreeSet::new();
    for (store, versions) in stores.iter().zip(&stored) {
        let gone: Vec<String> = versions
            .keys()
            .filter(|id| !listed_ids.contains(id.as_str()))
            .cloned()
            .collect();
        if gone.is_empty() {
            continue;
        }
        store
            .delete(&req.scope, &gone)
            .await
            .map_err(|e| SyncError::store(store.as_ref(), e))?;
        deleted.extend(gone);
    }
    report.deleted = deleted.len() as u64;
    // Items that vanished between listing and fetching are not stored.
    report.items = report.unchanged + report.fetched;
    Ok(report)
}

/// Removes a space's content from every store (disconnect / deletion).
pub async fn purge_space(stores: &[Arc<dyn Store>], scope: &SpaceScope) -> Result<(), SyncError> {
    for store in stores {
        store
            .delete_space(scope)
            .await
            .map_err(|e| SyncError::store(store.as_ref(), e))?;
    }
    Ok(())
}
