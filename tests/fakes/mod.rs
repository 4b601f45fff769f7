//! An in-process stand-in for a Confluence site, injected through the
//! operator's `SourceFactory`, for controller tests that do not need HTTP.

#![allow(dead_code)]

use async_trait::async_trait;
use confluence_operator::confluence::{
    ConfluenceApi, ConfluenceError, ListOptions, Listing, SiteConfig, SpaceInfo, SpaceKind,
};
use confluence_operator::controller::SourceFactory;
use confluence_operator::model::{ContentType, Page, PageRef};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct FakeConfluence {
    spaces: Mutex<BTreeMap<String, Vec<Page>>>,
    pub lists: AtomicUsize,
    pub fetched: AtomicUsize,
    pub reject_credentials: AtomicBool,
    /// Per space key: how long its listing takes.
    list_delays: Mutex<BTreeMap<String, std::time::Duration>>,
    /// Listings in progress now, and the most seen at once.
    pub listing_now: AtomicUsize,
    pub listing_peak: AtomicUsize,
}

impl FakeConfluence {
    pub fn with_space(self: &Arc<Self>, key: &str, pages: usize) -> Arc<Self> {
        let pages = (1..=pages)
            .map(|n| page(&format!("{key}-{n}"), &format!("{key} page {n}"), 1))
            .collect();
        self.lock().insert(key.to_string(), pages);
        self.clone()
    }

    /// Makes every listing of `key` take `delay` (a slow space).
    pub fn slow_listing(self: &Arc<Self>, key: &str, delay: std::time::Duration) -> Arc<Self> {
        self.list_delays
            .lock()
            .unwrap()
            .insert(key.to_string(), delay);
        self.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Page>>> {
        self.spaces.lock().unwrap()
    }

    pub fn list_count(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }
}

pub fn page(id: &str, title: &str, version: u64) -> Page {
    Page {
        id: id.to_string(),
        content_type: ContentType::Page,
        title: title.to_string(),
        body_markdown: format!("# {title}\n\nBody of {title}."),
        body_text: format!("{title} Body of {title}."),
        url: format!("https://fake.example/wiki/pages/{id}"),
        version,
        labels: vec![],
        ancestors: vec![],
        updated_at: None,
    }
}

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
        let delay = self.list_delays.lock().unwrap().get(&space.key).copied();
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
        self.fetched.fetch_add(items.len(), Ordering::SeqCst);
        let spaces = self.lock();
        let pages = spaces.get(&space.key).cloned().unwrap_or_default();
        Ok(pages
            .into_iter()
            .filter(|p| items.iter().any(|i| i.id == p.id))
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
