//! Helpers shared by the store integration tests: documents and a scripted
//! Confluence source.
#![allow(dead_code)]

use async_trait::async_trait;
use confluence_operator::confluence::{
    ConfluenceApi, ConfluenceError, ListOptions, Listing, SpaceInfo, SpaceKind,
};
use confluence_operator::model::{
    Ancestor, Audience, ContentType, Document, Page, PageRef, SpaceScope,
};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn page(id: &str, version: u64, title: &str, body: &str) -> Page {
    Page {
        id: id.to_string(),
        content_type: ContentType::Page,
        title: title.to_string(),
        body_markdown: format!("# {title}\n\n{body}"),
        body_text: body.to_string(),
        url: format!("https://wiki.example.com/pages/{id}"),
        version,
        labels: vec!["kb".into(), format!("v{version}")],
        ancestors: vec![Ancestor {
            id: "1".into(),
            title: "Home".into(),
        }],
        updated_at: Some("2025-03-04T05:06:07.123456789Z".parse().expect("timestamp")),
    }
}

pub fn doc(scope: &SpaceScope, space_key: &str, audience: Audience, page: Page) -> Document {
    Document {
        scope: scope.clone(),
        site: "https://wiki.example.com".into(),
        space_key: space_key.into(),
        space_name: format!("{space_key} space"),
        page,
        audience,
    }
}

pub fn segments(names: &[&str]) -> Audience {
    Audience::Segments(names.iter().map(|s| s.to_string()).collect())
}

pub fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub fn space(key: &str) -> SpaceInfo {
    SpaceInfo {
        id: format!("id-{key}"),
        key: key.into(),
        name: format!("{key} space"),
        kind: SpaceKind::Global,
        url: format!("https://wiki.example.com/spaces/{key}"),
    }
}

/// A Confluence source holding pages in memory. `fail_fetch_after` makes the
/// n-th and later `fetch` calls fail, like a connection dropped mid-sync.
#[derive(Default)]
pub struct FakeConfluence {
    pub pages: Mutex<BTreeMap<String, Page>>,
    pub fetch_calls: AtomicUsize,
    pub fetched_items: AtomicUsize,
    pub fail_fetch_after: Mutex<Option<usize>>,
}

impl FakeConfluence {
    pub fn with_pages(pages: impl IntoIterator<Item = Page>) -> Self {
        let fake = Self::default();
        {
            let mut map = fake.pages.lock().expect("lock");
            for p in pages {
                map.insert(p.id.clone(), p);
            }
        }
        fake
    }

    pub fn fail_after(&self, calls: Option<usize>) {
        *self.fail_fetch_after.lock().expect("lock") = calls;
    }

    pub fn ids(&self) -> Vec<String> {
        self.pages.lock().expect("lock").keys().cloned().collect()
    }
}

#[async_trait]
impl ConfluenceApi for FakeConfluence {
    async fn whoami(&self) -> Result<String, ConfluenceError> {
        Ok("fake".into())
    }

    async fn space(&self, key: &str) -> Result<SpaceInfo, ConfluenceError> {
        Ok(space(key))
    }

    async fn spaces(&self, _query: Option<&str>) -> Result<Vec<SpaceInfo>, ConfluenceError> {
        Ok(vec![])
    }

    async fn list_detailed(
        &self,
        _space: &SpaceInfo,
        _options: &ListOptions,
    ) -> Result<Listing, ConfluenceError> {
        Ok(Listing::complete(
            self.pages
                .lock()
                .expect("lock")
                .values()
                .map(|p| PageRef {
                    id: p.id.clone(),
                    version: p.version,
                    content_type: p.content_type,
                })
                .collect(),
        ))
    }

    async fn fetch(
        &self,
        _space: &SpaceInfo,
        items: &[PageRef],
    ) -> Result<Vec<Page>, ConfluenceError> {
        let call = self.fetch_calls.fetch_add(1, Ordering::SeqCst);
        let limit = *self.fail_fetch_after.lock().expect("lock");
        if limit.is_some_and(|limit| call >= limit) {
            return Err(ConfluenceError::Transient("connection reset".into()));
        }
        self.fetched_items.fetch_add(items.len(), Ordering::SeqCst);
        let pages = self.pages.lock().expect("lock");
        Ok(items
            .iter()
            .filter_map(|r| pages.get(&r.id).cloned())
            .collect())
    }
}

/// Writes in `dir` (replacing any index there) an index another release of
/// the operator could have left: the embedded store's place, another schema.
pub fn write_index_of_another_release(dir: &std::path::Path) -> Result<(), String> {
    use tantivy::schema::{STORED, STRING, Schema};
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("remove the index: {e}"))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("index dir: {e}"))?;
    let mut schema = Schema::builder();
    let id = schema.add_text_field("id", STRING | STORED);
    let index = tantivy::Index::create_in_dir(dir, schema.build()).map_err(|e| e.to_string())?;
    let mut writer: tantivy::IndexWriter = index.writer(15_000_000).map_err(|e| e.to_string())?;
    writer
        .add_document(tantivy::doc!(id => "old"))
        .map_err(|e| e.to_string())?;
    writer.commit().map_err(|e| e.to_string())?;
    Ok(())
}
