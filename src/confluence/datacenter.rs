//! Confluence Data Center / Server over REST v1 (`/rest/api`).
//!
//! Request cost of a listing of N items of one content type with limit L:
//! ceil(N/L) requests of `/rest/api/content` that carry, per item, its
//! version, ancestors, direct read restrictions and labels. Restrictions do
//! not bump versions, so this is re-read on every listing; expanding them on
//! the listing itself is the cheapest way (no per-page restriction calls).
//! When neither restriction nor label filtering is needed, only `version` is
//! expanded, which Data Center serves faster and with a higher page size.
//! Data Center does not list with bodies (see `lists_bodies`): a full sync
//! lists ids as above and fetches bodies by CQL, ceil(N/50) requests (Data
//! Center serves at most 50 items a request once bodies are expanded), side
//! by side.
//! Ancestors that are not listed items (non-page parents) cost one
//! `GET /content/{id}` each for their view restriction; a deletion is
//! confirmed with one `GET /content/{id}` per missing (or sampled) item.

use super::http::Http;
use super::v1::{self, Content, SpaceJson};
use super::{
    ClientOptions, ConfluenceApi, ConfluenceError, ListOptions, Listed, Listing, Presence,
    SiteConfig, SpaceInfo, apply_filters, needs_annotations, unlisted_ancestors,
};
use crate::model::{ContentType, Page, PageRef};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};

const LIST_EXPAND_FULL: &str = "version,ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group,metadata.labels";
const LIST_EXPAND_MIN: &str = "version";
const FETCH_EXPAND: &str = "body.storage,version,ancestors,metadata.labels";

pub struct DataCenterClient {
    http: Http,
    /// Site root including the context path, without trailing slash.
    root: String,
}

impl DataCenterClient {
    pub fn new(config: &SiteConfig, options: ClientOptions) -> Result<Self, ConfluenceError> {
        let root = config.base_url.as_str().trim_end_matches('/').to_string();
        Ok(Self {
            http: Http::new(config, options)?,
            root,
        })
    }

    fn api(&self, path: &str) -> Result<url::Url, ConfluenceError> {
        v1::parse_url(&format!("{}/rest/api{path}", self.root))
    }

    fn limit(&self) -> String {
        self.http.options().page_limit.clamp(1, 1000).to_string()
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
        let annotate = needs_annotations(options);
        // Each content type is its own paging chain; run them side by side.
        let chains = options.content_types.iter().map(|ct| async move {
            let mut url = self.api("/content")?;
            url.query_pairs_mut()
                .append_pair("spaceKey", &space.key)
                .append_pair("type", ct.as_str())
                .append_pair("status", "current")
                .append_pair("limit", &self.limit())
                .append_pair(
                    "expand",
                    if annotate {
                        LIST_EXPAND_FULL
                    } else {
                        LIST_EXPAND_MIN
                    },
                );
            let items: Vec<Content> = v1::collect(&self.http, &self.root, url, || {
                ConfluenceError::SpaceNotFound(space.key.clone())
            })
            .await?;
            Ok::<_, ConfluenceError>(
                items
                    .into_iter()
                    .map(|c| Listed {
                        page: PageRef {
                            id: c.id.clone(),
                            version: c.version.as_ref().map_or(0, |v| v.number),
                            content_type: *ct,
                        },
                        ancestors: c.ancestors().into_iter().map(|a| a.id).collect(),
                        restricted: if annotate {
                            c.read_restricted()
                        } else {
                            Some(false)
                        },
                        labels: c.labels(),
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let mut listed: Vec<Listed> = futures::future::try_join_all(chains)
            .await?
            .into_iter()
            .flatten()
            .collect();
        dedup(&mut listed);
        // Ancestors that are not listed pages (folders and other parents,
        // or pages of another type) are vetted one by one.
        let outside = if annotate && !options.include_restricted {
            v1::read_restrictions(
                &self.http,
                &format!("{}/rest/api", self.root),
                &unlisted_ancestors(&listed),
            )
            .await?
        } else {
            HashMap::new()
        };
        Ok(apply_filters(listed, &outside, options))
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
        let mut pages = Vec::with_capacity(items.len());
        let limit = self.http.options().page_limit.clamp(1, 1000);
        for chunk in items.chunks(limit) {
            // One CQL request per batch instead of one GET per page.
            let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
            let mut url = self.api("/content/search")?;
            url.query_pairs_mut()
                .append_pair("cql", &format!("id in ({})", ids.join(",")))
                .append_pair("expand", FETCH_EXPAND)
                .append_pair("limit", &chunk.len().to_string());
            let found: Vec<Content> = v1::collect(&self.http, &self.root, url, || {
                ConfluenceError::Protocol("no /rest/api/content/search".into())
            })
            .await?;
            let mut seen: HashSet<String> = HashSet::new();
            for c in found {
                if ids.contains(&c.id.as_str()) && seen.insert(c.id.clone()) {
                    pages.push(v1::to_page(c, &self.root, &space.key));
                }
            }
            // The search index can lag behind edits; anything it missed is
            // read directly. A 404 there means the item is gone.
            for id in ids.iter().filter(|id| !seen.contains(**id)) {
                if let Some(c) = self.content(id).await? {
                    pages.push(v1::to_page(c, &self.root, &space.key));
                }
            }
        }
        Ok(pages)
    }
}

impl DataCenterClient {
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
