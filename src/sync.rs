//! The sync engine: makes every store hold exactly what Confluence lists for
//! a space, fetching bodies only for new or changed items.

use crate::confluence::{
    ConfluenceApi, ConfluenceError, LeftOut, ListOptions, Presence, SpaceInfo, SpaceRef,
};
use crate::model::{Audience, Document, Page, PageRef, SpaceScope};
use crate::store::{Store, StoreError};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

mod ids;
pub mod plan;
use ids::IdSet;
use plan::{Counts, Plan};

/// Items handed to the stores per batch. Each batch is all or nothing in
/// every store; stores that stage writes may commit several batches at once,
/// and every batch handed over is durable when the sync ends (also when it
/// fails), so an interrupted sync keeps every completed batch.
pub const DEFAULT_BATCH_SIZE: usize = 50;

/// Items asked for in one fetch: Cloud's bulk page size, so a group costs
/// one bulk request plus its annotation pass.
const FETCH_GROUP: usize = 250;

/// Groups fetched ahead of the one being committed.
const FETCH_AHEAD: usize = 4;

/// Up to this many items missing from a listing are each looked up before
/// removal; beyond it only a sample is.
const CONFIRM_EACH_UP_TO: usize = 50;

/// Items looked up when more than [`CONFIRM_EACH_UP_TO`] vanished at once.
const CONFIRM_SAMPLE: usize = 20;

/// Direct lookups in flight while confirming deletions.
const CONFIRM_CONCURRENCY: usize = 8;

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
pub struct SyncRequest<'a> {
    pub scope: SpaceScope,
    pub site_url: String,
    /// Looked up beside the listing where the listing allows; nothing is
    /// stored before the lookup has answered and the space is not personal.
    pub space: SpaceRef<'a>,
    pub audience: Audience,
    pub options: ListOptions,
    pub batch_size: usize,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Items every store now holds: those Confluence listed, plus those
    /// it missed but still has (`kept_unconfirmed`).
    pub items: u64,
    /// Bodies fetched because they were new or changed in at least one store.
    pub fetched: u64,
    /// Items removed from stores because Confluence no longer lists them.
    pub deleted: u64,
    /// Items already up to date everywhere.
    pub unchanged: u64,
    /// Listed items not synced, by reason.
    pub left_out: LeftOut,
    /// Items missing from the listing that a direct lookup found still
    /// present: kept, since the listing (not the item) was at fault.
    pub kept_unconfirmed: u64,
    /// How deletions were confirmed, when that is worth telling (a sample
    /// stood for many, or the listing missed items).
    pub deletion_note: Option<String>,
    /// Most page bodies the listing held at once while vetting them (a
    /// streaming listing holds a bounded window, not the space).
    pub bodies_held_at_most: u64,
}

/// Brings every store in line with Confluence for one space.
pub async fn sync_space(
    source: &dyn ConfluenceApi,
    stores: &[Arc<dyn Store>],
    req: &SyncRequest<'_>,
) -> Result<SyncReport, SyncError> {
    let result = sync_stores(source, stores, req).await;
    // Staged batches become durable here, also after a failure, so whatever
    // was handed over survives; and a report is only returned once what it
    // counts is committed.
    let mut flushed = Ok(());
    for store in stores {
        if let Err(e) = store.flush(&req.scope).await
            && flushed.is_ok()
        {
            flushed = Err(SyncError::store(store.as_ref(), e));
        }
    }
    let report = result?;
    flushed?;
    Ok(report)
}

async fn sync_stores(
    source: &dyn ConfluenceApi,
    stores: &[Arc<dyn Store>],
    req: &SyncRequest<'_>,
) -> Result<SyncReport, SyncError> {
    let mut stored: Vec<HashMap<String, u64>> = Vec::with_capacity(stores.len());
    for store in stores {
        let versions = store
            .versions(&req.scope)
            .await
            .map_err(|e| SyncError::store(store.as_ref(), e))?;
        stored.push(versions);
    }
    let chosen = if stores.is_empty() || !source.lists_bodies() {
        Plan::ListIdsFetchChanged
    } else {
        plan::choose(Counts {
            stored_min: stored.iter().map(HashMap::len).min().unwrap_or(0),
            stored_max: stored.iter().map(HashMap::len).max().unwrap_or(0),
        })
    };

    let batch_size = req.batch_size.max(1);
    // A failed listing returns early: absence from an incomplete listing must
    // never be read as deletion. Pages a streaming listing handed over before
    // it failed stay staged: they were current and permitted.
    let (listing, streamed) = match chosen {
        Plan::ListWithBodies => {
            // Viewer changes apply to what is already stored, without a
            // re-fetch; streamed pages carry the new audience already.
            set_audience(stores, req).await?;
            let (sink, pages) = tokio::sync::mpsc::channel(STREAM_AHEAD);
            let (listing, streamed) = tokio::join!(
                source.list_streaming(&req.space, &req.options, sink),
                stage_streamed(stores, req, &stored, pages, batch_size)
            );
            // The stores' own failure (or the space's lookup) is the reason
            // a listing stopped early.
            let streamed = streamed?;
            (listing?, streamed)
        }
        Plan::ListIdsFetchChanged => {
            let space = looked_up(&req.space).await?;
            let listing = source.list_detailed(&space, &req.options).await?;
            set_audience(stores, req).await?;
            (listing, Streamed::default())
        }
    };
    let space = looked_up(&req.space).await?;
    let listed = &listing.items;
    let mut listed_ids = IdSet::default();
    for r in listed {
        listed_ids.insert(&r.id);
    }

    let stale: Vec<&PageRef> = listed
        .iter()
        .filter(|r| stored.iter().any(|s| s.get(&r.id) != Some(&r.version)))
        .collect();

    let mut report = SyncReport {
        items: listed.len() as u64,
        unchanged: (listed.len() - stale.len()) as u64,
        left_out: listing.left_out,
        bodies_held_at_most: listing.held_at_most as u64,
        ..SyncReport::default()
    };

    // A streaming listing brings most pages along; whatever it did not (held
    // past its budget, or needing a lookup of its own) is fetched below like
    // any changed item.
    let mut to_fetch: Vec<&PageRef> = stale;
    to_fetch.retain(|r| !streamed.received(&r.id));
    report.fetched = listed
        .iter()
        .filter(|r| streamed.staged.contains(&r.id))
        .count() as u64;
    // Groups are fetched a few at once (the client's per-site limit still
    // bounds requests in flight) in the listing's page size, so each
    // costs as few requests as the API allows, while stores commit them
    // in batches, in order, so each committed batch stays a durable step.
    let groups: Vec<Vec<PageRef>> = to_fetch
        .chunks(FETCH_GROUP)
        .map(|group| group.iter().map(|r| (*r).clone()).collect())
        .collect();
    let space = &space;
    let mut fetches = futures::stream::iter(groups)
        .map(|refs| async move { source.fetch(space, &refs).await })
        .buffered(FETCH_AHEAD);
    while let Some(pages) = fetches.next().await {
        let pages = pages?;
        report.fetched += pages.len() as u64;
        commit_batches(stores, req, space, pages, batch_size).await?;
    }

    // Stored items the listing returned but left out (now restricted or
    // filtered) go at once. Items it did not return at all may only have been
    // skipped by paging: they go once a direct lookup confirms it.
    let missing: BTreeSet<String> = stored
        .iter()
        .flat_map(|s| s.keys())
        .filter(|id| !listing.seen.contains(id.as_str()))
        .cloned()
        .collect();
    let confirmed = confirm_gone(source, req, space, &missing, &mut report).await?;
    // A page handed over early that the complete listing does not keep (a
    // later record restricted it) goes too: fail closed.
    let unkept: Vec<String> = streamed
        .staged
        .iter()
        .filter(|id| !listed_ids.contains(id))
        .collect();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    for (store, versions) in stores.iter().zip(&stored) {
        let mut gone: Vec<String> = versions
            .keys()
            .filter(|id| !listed_ids.contains(id))
            .filter(|id| listing.seen.contains(id.as_str()) || confirmed.contains(*id))
            .cloned()
            .collect();
        gone.extend(
            unkept
                .iter()
                .filter(|id| !versions.contains_key(id.as_str()))
                .cloned(),
        );
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
    // Items that vanished between listing and fetching are not stored;
    // items kept because Confluence still has them are.
    report.items = report.unchanged + report.fetched + report.kept_unconfirmed;
    Ok(report)
}

/// Page batches a streaming listing may queue ahead of the stores.
const STREAM_AHEAD: usize = 2;

/// What the stores took from a streaming listing: every page handed over,
/// as staged (some store lacked its version) or already up to date
/// everywhere. Kept for the whole listing, so kept compact.
#[derive(Debug, Default)]
struct Streamed {
    staged: IdSet,
    current: IdSet,
}

impl Streamed {
    fn received(&self, id: &str) -> bool {
        self.staged.contains(id) || self.current.contains(id)
    }
}

/// Stages the pages a streaming listing hands over, in batches, as they
/// come; pages every store already holds at that version are skipped.
async fn stage_streamed(
    stores: &[Arc<dyn Store>],
    req: &SyncRequest<'_>,
    stored: &[HashMap<String, u64>],
    mut pages: tokio::sync::mpsc::Receiver<Vec<Page>>,
    batch_size: usize,
) -> Result<Streamed, SyncError> {
    // The first answers of a listing come no sooner than the lookup's.
    let space = looked_up(&req.space).await?;
    let mut streamed = Streamed::default();
    while let Some(arrived) = pages.recv().await {
        let mut fresh: Vec<Page> = Vec::with_capacity(arrived.len());
        for page in arrived {
            if streamed.received(&page.id) {
                continue;
            }
            let stale = stored
                .iter()
                .any(|s| s.get(&page.id) != Some(&page.version));
            if stale {
                streamed.staged.insert(&page.id);
                fresh.push(page);
            } else {
                streamed.current.insert(&page.id);
            }
        }
        commit_batches(stores, req, &space, fresh, batch_size).await?;
    }
    Ok(streamed)
}

/// [`commit`]s `pages` in batches of `batch_size`, in order.
async fn commit_batches(
    stores: &[Arc<dyn Store>],
    req: &SyncRequest<'_>,
    space: &SpaceInfo,
    pages: Vec<Page>,
    batch_size: usize,
) -> Result<(), SyncError> {
    let mut pages = pages.into_iter().peekable();
    while pages.peek().is_some() {
        let batch: Vec<Page> = pages.by_ref().take(batch_size).collect();
        commit(stores, req, space, batch).await?;
    }
    Ok(())
}

async fn set_audience(stores: &[Arc<dyn Store>], req: &SyncRequest<'_>) -> Result<(), SyncError> {
    for store in stores {
        store
            .set_audience(&req.scope, &req.audience)
            .await
            .map_err(|e| SyncError::store(store.as_ref(), e))?;
    }
    Ok(())
}

/// Hands one batch to every store, as one atomic write each (staged: it may
/// be committed together with later batches).
async fn commit(
    stores: &[Arc<dyn Store>],
    req: &SyncRequest<'_>,
    space: &SpaceInfo,
    pages: Vec<Page>,
) -> Result<(), SyncError> {
    let docs: Vec<Document> = pages
        .into_iter()
        .map(|page| Document {
            scope: req.scope.clone(),
            site: req.site_url.clone(),
            space_key: space.key.clone(),
            space_name: space.name.clone(),
            page,
            audience: req.audience.clone(),
        })
        .collect();
    for store in stores {
        store
            .stage(&docs)
            .await
            .map_err(|e| SyncError::store(store.as_ref(), e))?;
    }
    Ok(())
}

/// Which of the `missing` ids are really gone. Each is looked up when few
/// vanished; when many did, an even sample stands for all if every sampled
/// item is gone, and otherwise only the sampled items found gone are.
async fn confirm_gone(
    source: &dyn ConfluenceApi,
    req: &SyncRequest<'_>,
    space: &SpaceInfo,
    missing: &BTreeSet<String>,
    report: &mut SyncReport,
) -> Result<BTreeSet<String>, SyncError> {
    if missing.is_empty() {
        return Ok(BTreeSet::new());
    }
    let all: Vec<String> = missing.iter().cloned().collect();
    let sampled = all.len() > CONFIRM_EACH_UP_TO;
    let checked: Vec<String> = if sampled {
        let step = all.len() / CONFIRM_SAMPLE;
        all.iter()
            .step_by(step.max(1))
            .take(CONFIRM_SAMPLE)
            .cloned()
            .collect()
    } else {
        all.clone()
    };
    let lookups: Vec<_> = checked
        .iter()
        .cloned()
        .map(|id| async move {
            let presence = source
                .presence(space, &id, &req.options.content_types)
                .await;
            presence.map(|p| (id, p))
        })
        .collect();
    let answers: Vec<(String, Presence)> = futures::stream::iter(lookups)
        .buffer_unordered(CONFIRM_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let gone: BTreeSet<String> = answers
        .into_iter()
        .filter(|(_, p)| *p == Presence::Gone)
        .map(|(id, _)| id)
        .collect();
    let confirmed = if sampled && gone.len() == checked.len() {
        report.deletion_note = Some(format!(
            "{} items vanished at once; a sample of {} was looked up and all were gone, so all were removed",
            all.len(),
            checked.len()
        ));
        missing.clone()
    } else {
        gone
    };
    report.kept_unconfirmed = (all.len() - confirmed.len()) as u64;
    if report.kept_unconfirmed > 0 && report.deletion_note.is_none() {
        report.deletion_note = Some(if sampled {
            format!(
                "{} items vanished from the listing but a sample of {} found {} still present: only the {} confirmed gone were removed, the rest kept until a listing accounts for them",
                all.len(),
                checked.len(),
                checked.len() - confirmed.len(),
                confirmed.len()
            )
        } else {
            format!(
                "{} items missing from the listing are still present in Confluence and were kept",
                report.kept_unconfirmed
            )
        });
    }
    Ok(confirmed)
}

/// What the space's lookup answered. A personal space is refused here,
/// before anything of it is stored.
async fn looked_up(space: &SpaceRef<'_>) -> Result<SpaceInfo, SyncError> {
    let info = space.info().await?;
    if info.is_personal() {
        return Err(ConfluenceError::PersonalSpace(info.key).into());
    }
    Ok(info)
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
