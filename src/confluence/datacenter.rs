//! Confluence Data Center / Server over REST v1 (`/rest/api`).
//!
//! Listings page by offset (`start`/`limit`), which needs no chain of
//! requests one after another: the first answer's `next` link tells how many
//! items the site grants a request, and the later pages are read side by
//! side, as many at once as the site's `maxConcurrency` allows
//! ([`v1::collect_offsets`]). Items carry their version, ancestors, direct
//! read restrictions and labels; restrictions do not bump versions, so they
//! are re-read on every listing, and expanding them on the listing itself
//! is the cheapest way (no per-page restriction calls). When neither
//! restriction nor label filtering is needed, only `version` is expanded,
//! which Data Center serves faster and with a higher page size.
//!
//! Request budget of a full sync of N items of one content type, with W the
//! site's `maxConcurrency` and B the bodies granted a request (50 on stock
//! Data Center): one listing with bodies, ceil(N/B) requests plus at most
//! W-1 read past the end, in about 1 + ceil(N/B)/W rounds, each page handed
//! to the stores as soon as it is vetted ([`stream`]). Pages waiting for an
//! ancestor listed later are held up to 16 MiB of page text; those dropped
//! past it are fetched by CQL `id in (…)`, B ids a request, side by side.
//! An incremental sync lists ids (L items a request, up to the `limit`
//! asked for: ceil(N/L) + W-1 requests) and fetches changed items,
//! ceil(changed/B) requests.
//! Ancestors that are not listed items (non-page parents) cost one
//! `GET /content/{id}` each for their view restriction; a deletion is
//! confirmed with one `GET /content/{id}` per missing (or sampled) item.

use super::http::Http;
use super::v1::{self, Content, OffsetPaging, SpaceJson};
use super::{
    ClientOptions, ConfluenceApi, ConfluenceError, ListOptions, Listed, Listing, PageSink,
    Presence, SiteConfig, SpaceInfo, SpaceRef, apply_filters, needs_annotations,
    unlisted_ancestors,
};
use crate::model::{ContentType, Page, PageRef};
use async_trait::async_trait;
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

const LIST_EXPAND_FULL: &str = "version,ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group,metadata.labels";
const LIST_EXPAND_MIN: &str = "version";
/// A listing with bodies carries what [`FETCH_EXPAND`] does, so its pages
/// are exactly those `fetch` returns.
const BODY_LIST_EXPAND_FULL: &str = "body.storage,version,ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group,metadata.labels";
const BODY_LIST_EXPAND_MIN: &str = "body.storage,version,ancestors,metadata.labels";
const FETCH_EXPAND: &str = "body.storage,version,ancestors,metadata.labels";
const BODY: &str = "body.storage";

mod stream;

pub struct DataCenterClient {
    http: Http,
    /// Site root including the context path, without trailing slash.
    root: String,
    /// Requests one listing keeps in flight: the site's request limit.
    window: usize,
    /// Items the site grants a request with bodies expanded, once seen
    /// (0 before): fetches ask for that many ids at a time, side by side.
    body_page: AtomicUsize,
}

impl DataCenterClient {
    pub fn new(config: &SiteConfig, options: ClientOptions) -> Result<Self, ConfluenceError> {
        let root = config.base_url.as_str().trim_end_matches('/').to_string();
        Ok(Self {
            http: Http::new(config, options)?,
            root,
            window: config.max_concurrency.max(1),
            body_page: AtomicUsize::new(0),
        })
    }

    fn api(&self, path: &str) -> Result<url::Url, ConfluenceError> {
        v1::parse_url(&format!("{}/rest/api{path}", self.root))
    }

    /// The first offset page of one content type of `space`, current items
    /// only, with `expand`.
    fn space_listing(
        &self,
        key: &str,
        ct: ContentType,
        expand: &str,
    ) -> Result<url::Url, ConfluenceError> {
        let mut url = self.api("/content")?;
        url.query_pairs_mut()
            .append_pair("spaceKey", key)
            .append_pair("type", ct.as_str())
            .append_pair("status", "current")
            .append_pair("limit", &self.limit())
            .append_pair("expand", expand);
        Ok(url)
    }

    fn page_limit(&self) -> usize {
        self.http.options().page_limit.clamp(1, 1000)
    }

    fn limit(&self) -> String {
        self.page_limit().to_string()
    }

    fn learn_body_page(&self, granted: Option<usize>) {
        if let Some(g) = granted {
            self.body_page.store(g, Ordering::Relaxed);
        }
    }

    /// Ids asked for in one fetch request.
    fn fetch_chunk(&self) -> usize {
        match self.body_page.load(Ordering::Relaxed) {
            0 => self.page_limit(),
            g => g.min(self.page_limit()),
        }
    }
}

#[async_trait]
impl ConfluenceApi for DataCenterClient {
    async fn whoami(&self) -> Result<String, ConfluenceError> {
        v1::current_user(
            &self.http,
            &self.api("/user/current")?,
            "Confluence Data Center site",
        )
        .await
    }

    async fn space(&self, key: &str) -> Result<SpaceInfo, ConfluenceError> {
        let mut url = self.api("/space")?;
        url.path_segments_mut()
            .map_err(|_| ConfluenceError::Config("base URL cannot have a path".into()))?
            .push(key);
        let space = self
            .http
            .get_json::<SpaceJson>(&url)
            .await
            .map_err(|f| v1::not_found_as(f, ConfluenceError::SpaceNotFound(key.to_string())))?
            .body
            .into_info(&self.root);
        if space.is_personal() {
            return Err(ConfluenceError::PersonalSpace(key.to_string()));
        }
        Ok(space)
    }

    async fn spaces(&self, query: Option<&str>) -> Result<Vec<SpaceInfo>, ConfluenceError> {
        let mut url = self.api("/space")?;
        url.query_pairs_mut()
            .append_pair("type", "global")
            .append_pair("limit", &self.limit());
        let all: Vec<SpaceJson> = v1::collect(&self.http, &self.root, url, || {
            ConfluenceError::Protocol("no /rest/api/space".into())
        })
        .await?;
        Ok(filter_spaces(
            all.into_iter().map(|s| s.into_info(&self.root)),
            query,
        ))
    }

    async fn list_detailed(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<Listing, ConfluenceError> {
        self.list_bare(space, options).await
    }

    /// Data Center serves at most 50 bodies a request, but its offset paging
    /// needs no chain: pages are read side by side, so one listing with
    /// bodies costs fewer requests (and rounds) than listing ids and then
    /// fetching every body.
    fn lists_bodies(&self) -> bool {
        true
    }

    /// Asks by key only, so it does not wait for the space's lookup.
    async fn list_streaming(
        &self,
        space: &SpaceRef<'_>,
        options: &ListOptions,
        sink: PageSink,
    ) -> Result<Listing, ConfluenceError> {
        self.stream_listing(space.key(), options, sink).await
    }

    async fn presence(
        &self,
        space: &SpaceInfo,
        id: &str,
        types: &[ContentType],
    ) -> Result<Presence, ConfluenceError> {
        let mut url = self.api("/content")?;
        url.path_segments_mut()
            .map_err(|_| ConfluenceError::Config("base URL cannot have a path".into()))?
            .push(id);
        url.query_pairs_mut().append_pair("expand", "space");
        // One v1 lookup answers for every content type; an item of a type
        // no longer synced is gone from this space's point of view.
        match self.http.get_json::<Content>(&url).await {
            Ok(r) if !types.contains(&r.body.content_type()) => Ok(Presence::Gone),
            Ok(r) => Ok(v1::presence_of(&r.body, &space.key)),
            Err(super::http::HttpFailure::NotFound) => Ok(Presence::Gone),
            Err(super::http::HttpFailure::Other(e)) => Err(e),
        }
    }

    async fn fetch(
        &self,
        space: &SpaceInfo,
        items: &[PageRef],
    ) -> Result<Vec<Page>, ConfluenceError> {
        let ids: Vec<&str> = items.iter().map(|r| r.id.as_str()).collect();
        // One CQL request per chunk instead of one GET per page, the chunks
        // side by side (the site's request limit bounds them).
        let chunks = ids
            .chunks(self.fetch_chunk())
            .map(|chunk| self.fetch_chunk_of(chunk));
        let found: Vec<Content> = futures::future::try_join_all(chunks)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(found
            .into_iter()
            .map(|c| v1::to_page(c, &self.root, &space.key))
            .collect())
    }
}

impl DataCenterClient {
    /// Bodies of `ids` by CQL; ids the search index missed (it can lag
    /// behind edits) are read directly, and a 404 there means the item is
    /// gone. Too much page text for one answer: half as many at a time (a
    /// single page over the cap still fails).
    fn fetch_chunk_of<'a>(
        &'a self,
        ids: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Content>, ConfluenceError>> {
        Box::pin(async move {
            let mut url = self.api("/content/search")?;
            url.query_pairs_mut()
                .append_pair("cql", &format!("id in ({})", ids.join(",")))
                .append_pair("expand", FETCH_EXPAND)
                .append_pair("limit", &ids.len().to_string());
            let not_found = || ConfluenceError::Protocol("no /rest/api/content/search".into());
            let found = match v1::collect_offsets::<Content, Content>(
                &self.http,
                &self.root,
                url,
                &OffsetPaging {
                    at_most: Some(ids.len()),
                    ..OffsetPaging::plain(self.window)
                },
                &not_found,
            )
            .await
            {
                Ok(found) => found,
                Err(ConfluenceError::TooLarge { .. }) if ids.len() > 1 => {
                    let (a, b) = ids.split_at(ids.len() / 2);
                    let (a, b) =
                        futures::future::try_join(self.fetch_chunk_of(a), self.fetch_chunk_of(b))
                            .await?;
                    return Ok(a.into_iter().chain(b).collect());
                }
                Err(e) => return Err(e),
            };
            self.learn_body_page(found.granted);
            let wanted: HashSet<&str> = ids.iter().copied().collect();
            let mut seen: HashSet<String> = HashSet::new();
            let mut out: Vec<Content> = found
                .items
                .into_iter()
                .filter(|c| wanted.contains(c.id.as_str()) && seen.insert(c.id.clone()))
                .collect();
            let missed = ids
                .iter()
                .filter(|id| !seen.contains(**id))
                .map(|id| self.content(id));
            out.extend(
                futures::future::try_join_all(missed)
                    .await?
                    .into_iter()
                    .flatten(),
            );
            Ok(out)
        })
    }

    /// The listing without bodies: ids, versions and what the filters need.
    async fn list_bare(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<Listing, ConfluenceError> {
        let annotate = needs_annotations(options);
        // Each content type is its own listing; run them side by side.
        let listings = options.content_types.iter().map(|ct| async move {
            let expand = if annotate {
                LIST_EXPAND_FULL
            } else {
                LIST_EXPAND_MIN
            };
            let url = self.space_listing(&space.key, *ct, expand)?;
            let not_found = || ConfluenceError::SpaceNotFound(space.key.clone());
            let keep = |c: Content| listed(&c, *ct, annotate);
            let paging = OffsetPaging {
                window: self.window,
                lighter: &|_| None,
                keep: &keep,
                at_most: None,
                hand_over: None,
            };
            let found =
                v1::collect_offsets(&self.http, &self.root, url, &paging, &not_found).await?;
            Ok::<_, ConfluenceError>(found.items)
        });
        let mut listed: Vec<Listed> = futures::future::try_join_all(listings)
            .await?
            .into_iter()
            .flatten()
            .collect();
        // Offset paging repeats an item when the space changes during the
        // listing: its first sighting counts.
        dedup(&mut listed);
        let outside = self.outside_ancestors(&listed, options).await?;
        Ok(apply_filters(listed, &outside, options))
    }

    /// The direct restriction of ancestors that are not listed pages
    /// (folders and other parents, or pages of another type), looked up one
    /// by one, when restrictions matter at all.
    async fn outside_ancestors(
        &self,
        listed: &[Listed],
        options: &ListOptions,
    ) -> Result<HashMap<String, Option<bool>>, ConfluenceError> {
        if !needs_annotations(options) || options.include_restricted {
            return Ok(HashMap::new());
        }
        v1::read_restrictions(
            &self.http,
            &format!("{}/rest/api", self.root),
            &unlisted_ancestors(listed),
        )
        .await
    }

    async fn content(&self, id: &str) -> Result<Option<Content>, ConfluenceError> {
        let mut url = self.api("/content")?;
        url.path_segments_mut()
            .map_err(|_| ConfluenceError::Config("base URL cannot have a path".into()))?
            .push(id);
        url.query_pairs_mut().append_pair("expand", FETCH_EXPAND);
        match self.http.get_json::<Content>(&url).await {
            Ok(r) => Ok(Some(r.body)),
            Err(super::http::HttpFailure::NotFound) => Ok(None),
            Err(super::http::HttpFailure::Other(e)) => Err(e),
        }
    }
}

/// What the filters need of a listed item.
fn listed(c: &Content, ct: ContentType, annotate: bool) -> Listed {
    Listed {
        page: PageRef {
            id: c.id.clone(),
            version: c.version.as_ref().map_or(0, |v| v.number),
            content_type: ct,
        },
        ancestors: c.ancestors.iter().flatten().map(|a| a.id.clone()).collect(),
        restricted: if annotate {
            c.read_restricted()
        } else {
            Some(false)
        },
        labels: c.labels(),
    }
}

fn has_body(c: &Content) -> bool {
    v1::storage_text(c.body.as_ref()).is_some()
}

impl super::held::Body for Content {
    fn body_len(&self) -> usize {
        v1::storage_text(self.body.as_ref()).map_or(0, str::len)
    }
}

/// Drops repeated ids (offset paging can repeat an item when the space
/// changes during the listing).
pub(crate) fn dedup(listed: &mut Vec<Listed>) {
    let mut seen = HashSet::new();
    listed.retain(|l| seen.insert(l.page.id.clone()));
}

/// Non-personal spaces whose key or name contains `query` (case-insensitive).
pub(crate) fn filter_spaces(
    spaces: impl Iterator<Item = SpaceInfo>,
    query: Option<&str>,
) -> Vec<SpaceInfo> {
    let q = query
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty());
    let mut out: Vec<SpaceInfo> = spaces
        .filter(|s| !s.is_personal())
        .filter(|s| match &q {
            None => true,
            Some(q) => s.key.to_lowercase().contains(q) || s.name.to_lowercase().contains(q),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}
