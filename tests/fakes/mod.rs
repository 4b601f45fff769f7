//! An in-memory stand-in for a Confluence site: the sync engine's source in
//! store tests, and injected through the operator's `SourceFactory` in
//! controller tests that do not need HTTP. Pages are built with
//! `common::page`.
//!
//! Use it from a test file with `mod fakes;` (after `mod common;`).

#![allow(dead_code)]

use crate::common::page;
use async_trait::async_trait;
use confluence_operator::confluence::{
    ConfluenceApi, ConfluenceError, ListOptions, Listing, SiteConfig, SpaceInfo, SpaceKind,
};
use confluence_operator::controller::SourceFactory;
use confluence_operator::model::{Page, PageRef};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A Confluence site holding its spaces' pages in memory, counting what it
/// is asked for.
#[derive(Default)]
pub struct FakeConfluence {
    /// Pages by space key, in the order listings return them.
    spaces: Mutex<BTreeMap<String, Vec<Page>>>,
    /// Listings made.
    pub lists: AtomicUsize,
    /// Fetch requests made, failed ones included.
    fetch_calls: AtomicUsize,
    /// Items asked for by the fetches that answered.
    pub fetched: AtomicUsize,
    /// The n-th and later fetches fail, like a connection dropped mid-sync.
    fail_fetch_after: Mutex<Option<usize>>,
    pub reject_credentials: AtomicBool,
    /// Per space key: how long its listing takes.
    list_delays: Mutex<BTreeMap<String, Duration>>,
    /// Listings in progress now, and the most seen at once.
    pub listing_now: AtomicUsize,
    pub listing_peak: AtomicUsize,
}

impl FakeConfluence {
    /// A site with one space, `key`, holding `pages` in this order.
    pub fn with_pages(key: &str, pages: impl IntoIterator<Item = Page>) -> Self {
        let fake = Self::default();
        fake.put_space(key, pages.into_iter().collect());
        fake
    }

    /// Adds (or replaces) space `key` with `pages` pages titled
    /// "`key` page n", ids `key-n`, each at version 1.
    pub fn with_space(self: &Arc<Self>, key: &str, pages: usize) -> Arc<Self> {
        let pages = (1..=pages)
            .map(|n| {
                let title = format!("{key} page {n}");
                page(
                    &format!("{key}-{n}"),
                    1,
                    &title,
                    &format!("Body of {title}."),
                )
            })
            .collect();
        self.put_space(key, pages);
        self.clone()
    }

    /// Makes every listing of `key` take `delay` (a slow space).
    pub fn slow_listing(self: &Arc<Self>, key: &str, delay: Duration) -> Arc<Self> {
        self.list_delays
            .lock()
            .expect("lock")
            .insert(key.to_string(), delay);
        self.clone()
    }

    /// From the `calls`-th fetch on (counting from 0), fetches fail; `None`
    /// lets them answer again.
    pub fn fail_after(&self, calls: Option<usize>) {
        *self.fail_fetch_after.lock().expect("lock") = calls;
    }

    /// Deletes page `id` of space `key`, as an editor would in Confluence.
    pub fn remove_page(&self, key: &str, id: &str) {
        if let Some(pages) = self.lock().get_mut(key) {
            pages.retain(|p| p.id != id);
        }
    }

    /// Ids of every page of every space, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lock()
            .values()
            .flatten()
            .map(|p| p.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub fn list_count(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }

    fn put_space(&self, key: &str, pages: Vec<Page>) {
        self.lock().insert(key.to_string(), pages);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<Page>>> {
        self.spaces.lock().expect("lock")
    }
}

/// What the site answers for space `key`.
fn info(key: &str) -> SpaceInfo {
    SpaceInfo {
        id: format!("id-{key}"),
        key: key.to_string(),
        name: format!("Space {key}"),
        // Cloud personal spaces can have ordinary-looking keys; the type tells.
        kind: if key.starts_with('~') || key.starts_with("PERSONAL") {
            SpaceKind::Personal
        } else {
            SpaceKind::Global
        },
        url: format!("https://fake.example/wiki/spaces/{key}"),
    }
}

#[async_trait]
impl ConfluenceApi for FakeConfluence {
    async fn whoami(&self) -> Result<String, ConfluenceError> {
        if self.reject_credentials.load(Ordering::SeqCst) {
            return Err(ConfluenceError::Unauthorized);
        }
        Ok("operator@example.com".into())
    }

    async fn space(&self, key: &str) -> Result<SpaceInfo, ConfluenceError> {
        self.whoami().await?;
        if self.lock().contains_key(key) {
            Ok(info(key))
        } else {
            Err(ConfluenceError::SpaceNotFound(key.to_string()))
        }
    }

    async fn spaces(&self, _query: Option<&str>) -> Result<Vec<SpaceInfo>, ConfluenceError> {
        self.whoami().await?;
        Ok(self.lock().keys().map(|k| info(k)).collect())
    }

    async fn list_detailed(
        &self,
        space: &SpaceInfo,
        _options: &ListOptions,
    ) -> Result<Listing, ConfluenceError> {
        self.whoami().await?;
        self.lists.fetch_add(1, Ordering::SeqCst);
        let now = self.listing_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.listing_peak.fetch_max(now, Ordering::SeqCst);
        let delay = self
            .list_delays
            .lock()
            .expect("lock")
            .get(&space.key)
            .copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.listing_now.fetch_sub(1, Ordering::SeqCst);
        Ok(Listing::complete(
            self.lock()
                .get(&space.key)
                .map(|pages| {
                    pages
                        .iter()
                        .map(|p| PageRef {
                            id: p.id.clone(),
                            version: p.version,
                            content_type: p.content_type,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }

    async fn fetch(
        &self,
        space: &SpaceInfo,
        items: &[PageRef],
    ) -> Result<Vec<Page>, ConfluenceError> {
        let call = self.fetch_calls.fetch_add(1, Ordering::SeqCst);
        let limit = *self.fail_fetch_after.lock().expect("lock");
        if limit.is_some_and(|limit| call >= limit) {
            return Err(ConfluenceError::Transient("connection reset".into()));
        }
        self.fetched.fetch_add(items.len(), Ordering::SeqCst);
        let spaces = self.lock();
        let pages = spaces
            .get(&space.key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|r| pages.iter().find(|p| p.id == r.id).cloned())
            .collect())
    }
}

/// Hands the same fake to every site.
pub struct FakeFactory(pub Arc<FakeConfluence>);

impl SourceFactory for FakeFactory {
    fn connect(&self, _config: &SiteConfig) -> Result<Arc<dyn ConfluenceApi>, ConfluenceError> {
        Ok(self.0.clone())
    }
}
