//! Confluence Cloud over REST v2 (`/wiki/api/v2`), with the few v1 calls v2
//! has no equivalent for.
//!
//! Request cost of a listing of N items (limit L, default 250):
//! - ceil(N/L) v2 requests (`/spaces/{id}/pages`, `/spaces/{id}/blogposts`):
//!   ids, versions and parent ids. This is the authoritative listing.
//! - Only when restrictions or labels must be filtered: ceil(N/L') v1 CQL
//!   searches (`/wiki/rest/api/content/search?cql=space=… and type in (…)`)
//!   expanding `restrictions.read` and `metadata.labels` (L' is whatever page
//!   size Cloud grants for those expansions). v2 exposes neither restrictions
//!   nor bulk labels, and the per-page v1 restriction endpoint would cost N
//!   requests. Inheritance down the tree is computed locally from the v2
//!   parent ids. CQL runs on the search index, which can lag: an item it does
//!   not return cannot be vetted and is left out until a later listing.
//! - Per parent that is not a listed item (folders, whiteboards, databases,
//!   embeds; typically few): one v2 `GET /{type}s/{id}` for its own parent
//!   and one v1 `GET /content/{id}` for its view restriction, concurrently,
//!   level by level up the tree.
//!
//! Confirming that an item missing from the listing is gone costs one v2
//! `GET /pages/{id}` (or `/blogposts/{id}`) per item, or per sampled item
//! when many vanished at once (see `sync`).
//!
//! A full sync (`list_streaming`, chosen when a store is mostly empty) adds
//! `body-format=storage` to the v2 listing and always runs the v1 CQL pass
//! (for labels when nothing is filtered): ceil(N/L) + ceil(N/L') requests
//! give every page, with ancestors from the v2 parent ids and the listed
//! titles. Each page is handed to the sync as soon as it is vetted, while
//! the listing goes on (`listing`). Items with a non-page ancestor, that the
//! search index missed, or whose body was dropped while waiting, are fetched
//! as below.
//!
//! A fetch of B items costs ceil(B/L) v2 bulk requests (`/pages?id=…` with
//! `body-format=storage`) plus ceil(B/L') v1 CQL requests for ancestors with
//! titles and labels (each pair sent concurrently), plus one direct v1 GET
//! per item the index missed. The v2 listing and the CQL pass of `list` also
//! run concurrently, so wall time is that of the longer chain; each is
//! walked from both ends at once (`listing`), so a pass of M answers is a
//! chain of 1 + ceil((M-1)/2) requests, for up to two requests more where
//! the ends meet.

mod listing;

use super::datacenter::filter_spaces;
use super::held;
use super::http::{Http, HttpFailure, link_next};
use super::storage::{self, SiteLinks};
use super::v1::{self, Content, MAX_PAGES};
use super::{
    ClientOptions, ConfluenceApi, ConfluenceError, ListOptions, Listing, PageSink, Presence,
    SiteConfig, SpaceInfo, SpaceRef,
};
use crate::model::{Ancestor, ContentType, Page, PageRef};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

const FETCH_EXPAND: &str = "ancestors,metadata.labels";
/// Deeper parent chains are treated as unvettable (Confluence trees are far
/// shallower; this only bounds work on corrupt data).
const MAX_TREE_DEPTH: usize = 1_000;

pub struct CloudClient {
    http: Http,
    /// Site without `/wiki`, e.g. `https://acme.atlassian.net`; v2 `next`
    /// links (`/wiki/api/v2/...`) are relative to it.
    site: String,
    /// `{site}/wiki`: v1 links and web UI links are relative to it.
    wiki: String,
}

#[derive(Debug, Default, Deserialize)]
struct V2Links {
    next: Option<String>,
    base: Option<String>,
    webui: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2List<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
    #[serde(rename = "_links", default)]
    links: V2Links,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Version {
    number: u64,
    created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Content {
    #[serde(deserialize_with = "v1::de_id")]
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default, deserialize_with = "de_opt_id")]
    parent_id: Option<String>,
    /// `page`, `folder`, `whiteboard`, `database` or `embed`.
    #[serde(default)]
    parent_type: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    space_id: Option<String>,
    version: Option<V2Version>,
    body: Option<v1::Body>,
    #[serde(rename = "_links", default)]
    links: V2Links,
}

/// Where a non-page parent (folder, whiteboard, ...) sits in the tree.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2TreeNode {
    #[serde(default, deserialize_with = "de_opt_id")]
    parent_id: Option<String>,
    #[serde(default)]
    parent_type: Option<String>,
}

/// A parent in the page tree: its id and v2 `parentType`.
type ParentLink = (String, Option<String>);

#[derive(Debug, Deserialize)]
struct V2Space {
    #[serde(deserialize_with = "v1::de_id")]
    id: String,
    key: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(rename = "_links", default)]
    links: V2Links,
}

fn de_opt_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Option::<Id>::deserialize(d)? {
        Some(Id::S(s)) if !s.is_empty() => Some(s),
        Some(Id::N(n)) => Some(n.to_string()),
        _ => None,
    })
}

impl CloudClient {
    pub fn new(config: &SiteConfig, options: ClientOptions) -> Result<Self, ConfluenceError> {
        // Users paste either `https://x.atlassian.net` or `.../wiki`.
        let trimmed = config.base_url.as_str().trim_end_matches('/');
        let site = trimmed.strip_suffix("/wiki").unwrap_or(trimmed).to_string();
        let wiki = format!("{site}/wiki");
        Ok(Self {
            http: Http::new(config, options)?,
            site,
            wiki,
        })
    }

    fn v2(&self, path: &str) -> Result<url::Url, ConfluenceError> {
        v1::parse_url(&format!("{}/wiki/api/v2{path}", self.site))
    }

    fn v1(&self, path: &str) -> Result<url::Url, ConfluenceError> {
        v1::parse_url(&format!("{}/rest/api{path}", self.wiki))
    }

    fn limit(&self) -> usize {
        self.http.options().page_limit.clamp(1, 250)
    }

    /// Follows v2 cursor paging (`Link: <…>; rel="next"`, else `_links.next`).
    async fn collect_v2<T: serde::de::DeserializeOwned>(
        &self,
        first: url::Url,
        not_found: impl Fn() -> ConfluenceError,
    ) -> Result<(Vec<T>, Option<String>), ConfluenceError> {
        let mut out = Vec::new();
        let mut base = None;
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let resp = self
                .http
                .get_json::<V2List<T>>(&url)
                .await
                .map_err(|f| v1::not_found_as(f, not_found()))?;
            let next = link_next(&resp.headers).or(resp.body.links.next);
            if base.is_none() {
                base = resp.body.links.base;
            }
            let got = resp.body.results.len();
            out.extend(resp.body.results);
            match next {
                Some(next) if got > 0 => url = v1::parse_url(&v1::absolute(&self.site, &next))?,
                _ => return Ok((out, base)),
            }
        }
        Err(ConfluenceError::Protocol(format!(
            "listing did not end after {MAX_PAGES} requests"
        )))
    }

    /// Web links are relative to the site's own address, which a response
    /// names in `_links.base`: behind the API gateway the request URL
    /// (`api.atlassian.com/ex/confluence/…`) is no page a person can open.
    fn web_root(&self, base: Option<&str>) -> String {
        base.filter(|b| b.starts_with("http://") || b.starts_with("https://"))
            .map_or_else(
                || self.wiki.clone(),
                |b| b.trim_end_matches('/').to_string(),
            )
    }

    fn space_info(&self, s: V2Space, base: Option<&str>) -> SpaceInfo {
        let root = self.web_root(base);
        let url = match &s.links.webui {
            Some(w) => v1::absolute(&root, w),
            None => format!("{root}/spaces/{}", s.key),
        };
        SpaceInfo {
            id: s.id,
            kind: v1::space_kind(&s.kind),
            key: s.key,
            name: s.name,
            url,
        }
    }

    fn collection(ct: ContentType) -> &'static str {
        match ct {
            ContentType::Page => "pages",
            ContentType::Blogpost => "blogposts",
        }
    }

    /// v1 CQL search, all result pages.
    async fn cql(
        &self,
        cql: &str,
        expand: &str,
        limit: usize,
    ) -> Result<Vec<Content>, ConfluenceError> {
        let mut url = self.v1("/content/search")?;
        url.query_pairs_mut()
            .append_pair("cql", cql)
            .append_pair("expand", expand)
            .append_pair("limit", &limit.to_string());
        v1::collect(&self.http, &self.wiki, url, || {
            ConfluenceError::Protocol("no /wiki/rest/api/content/search".into())
        })
        .await
    }

    /// Follows parents that are not listed items (`frontier`, and their
    /// own parents in turn) up the tree, level by level, and returns where
    /// each sits and its direct restriction (`None`: could not be read, so
    /// it cannot be vetted).
    async fn resolve_parents(
        &self,
        mut frontier: Vec<ParentLink>,
        listed: impl Fn(&str) -> bool,
    ) -> Result<HashMap<String, (Option<String>, Option<bool>)>, ConfluenceError> {
        let api = format!("{}/rest/api", self.wiki);
        let mut outside: HashMap<String, (Option<String>, Option<bool>)> = HashMap::new();
        for _ in 0..MAX_TREE_DEPTH {
            if frontier.is_empty() {
                break;
            }
            let lookups = frontier.iter().map(|(id, kind)| {
                let api = &api;
                async move {
                    let (node, restricted) = tokio::try_join!(
                        self.tree_node(id, kind.as_deref()),
                        v1::read_restriction(&self.http, api, id)
                    )?;
                    Ok::<_, ConfluenceError>((id.clone(), node, restricted))
                }
            });
            let mut next: Vec<ParentLink> = Vec::new();
            for (id, node, restricted) in futures::future::try_join_all(lookups).await? {
                // A parent that cannot be placed in the tree cannot be vetted.
                let restricted = if node.is_some() { restricted } else { None };
                let above = node.and_then(|n| n.parent_id.map(|p| (p, n.parent_type)));
                if let Some(link) = &above {
                    next.push(link.clone());
                }
                outside.insert(id, (above.map(|(p, _)| p), restricted));
            }
            next.retain(|(id, _)| !listed(id) && !outside.contains_key(id));
            next.sort();
            next.dedup_by(|a, b| a.0 == b.0);
            frontier = next;
        }
        Ok(outside)
    }

    /// `GET /wiki/api/v2/{folders|whiteboards|databases|embeds|pages}/{id}`.
    /// `None` when the type is unknown or the item cannot be read.
    async fn tree_node(
        &self,
        id: &str,
        kind: Option<&str>,
    ) -> Result<Option<V2TreeNode>, ConfluenceError> {
        let collection = match kind.unwrap_or("page") {
            "page" => "pages",
            "folder" => "folders",
            "whiteboard" => "whiteboards",
            "database" => "databases",
            "embed" => "embeds",
            _ => return Ok(None),
        };
        let mut url = self.v2(&format!("/{collection}"))?;
        url.path_segments_mut()
            .map_err(|_| ConfluenceError::Config("base URL cannot have a path".into()))?
            .push(id);
        match self.http.get_json::<V2TreeNode>(&url).await {
            Ok(r) => Ok(Some(r.body)),
            Err(HttpFailure::NotFound) => Ok(None),
            Err(HttpFailure::Other(e)) => Err(e),
        }
    }

    async fn content_v1(&self, id: &str) -> Result<Option<Content>, ConfluenceError> {
        let mut url = self.v1("/content")?;
        url.path_segments_mut()
            .map_err(|_| ConfluenceError::Config("base URL cannot have a path".into()))?
            .push(id);
        url.query_pairs_mut().append_pair("expand", FETCH_EXPAND);
        match self.http.get_json::<Content>(&url).await {
            Ok(r) => Ok(Some(r.body)),
            Err(HttpFailure::NotFound) => Ok(None),
            Err(HttpFailure::Other(e)) => Err(e),
        }
    }
}

#[async_trait]
impl ConfluenceApi for CloudClient {
    async fn whoami(&self) -> Result<String, ConfluenceError> {
        v1::current_user(
            &self.http,
            &self.v1("/user/current")?,
            "Confluence Cloud site",
        )
        .await
    }

    async fn space(&self, key: &str) -> Result<SpaceInfo, ConfluenceError> {
        let mut url = self.v2("/spaces")?;
        url.query_pairs_mut().append_pair("keys", key);
        let resp = self
            .http
            .get_json::<V2List<V2Space>>(&url)
            .await
            .map_err(|f| v1::not_found_as(f, ConfluenceError::SpaceNotFound(key.to_string())))?;
        let base = resp.body.links.base;
        let space = resp
            .body
            .results
            .into_iter()
            .find(|s| s.key == key)
            .map(|s| self.space_info(s, base.as_deref()))
            .ok_or_else(|| ConfluenceError::SpaceNotFound(key.to_string()))?;
        if space.is_personal() {
            return Err(ConfluenceError::PersonalSpace(key.to_string()));
        }
        Ok(space)
    }

    async fn spaces(&self, query: Option<&str>) -> Result<Vec<SpaceInfo>, ConfluenceError> {
        let mut url = self.v2("/spaces")?;
        url.query_pairs_mut()
            .append_pair("status", "current")
            .append_pair("limit", &self.limit().to_string());
        let (all, base) = self
            .collect_v2::<V2Space>(url, || {
                ConfluenceError::Protocol("no /wiki/api/v2/spaces".into())
            })
            .await?;
        Ok(filter_spaces(
            all.into_iter().map(|s| self.space_info(s, base.as_deref())),
            query,
        ))
    }

    async fn list_detailed(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<Listing, ConfluenceError> {
        self.stream_listing(&SpaceRef::known(space.clone()), options, None)
            .await
    }

    fn lists_bodies(&self) -> bool {
        true
    }

    async fn list_streaming(
        &self,
        space: &SpaceRef<'_>,
        options: &ListOptions,
        sink: PageSink,
    ) -> Result<Listing, ConfluenceError> {
        self.stream_listing(space, options, Some(sink)).await
    }

    async fn presence(
        &self,
        space: &SpaceInfo,
        id: &str,
        types: &[ContentType],
    ) -> Result<Presence, ConfluenceError> {
        // The store does not remember an item's type: try each listed type.
        for ct in types {
            let mut url = self.v2(&format!("/{}", Self::collection(*ct)))?;
            url.path_segments_mut()
                .map_err(|_| ConfluenceError::Config("base URL cannot have a path".into()))?
                .push(id);
            match self.http.get_json::<V2Content>(&url).await {
                Ok(r) => {
                    let c = r.body;
                    let current = c.status.as_deref().is_none_or(|s| s == "current");
                    let here = c.space_id.as_deref().is_none_or(|s| s == space.id);
                    if current && here {
                        return Ok(Presence::Present);
                    }
                }
                Err(HttpFailure::NotFound) => {}
                Err(HttpFailure::Other(e)) => return Err(e),
            }
        }
        Ok(Presence::Gone)
    }

    async fn fetch(
        &self,
        space: &SpaceInfo,
        items: &[PageRef],
    ) -> Result<Vec<Page>, ConfluenceError> {
        let mut pages = Vec::with_capacity(items.len());
        for ct in [ContentType::Page, ContentType::Blogpost] {
            let of_type: Vec<&str> = items
                .iter()
                .filter(|r| r.content_type == ct)
                .map(|r| r.id.as_str())
                .collect();
            let mut queue: std::collections::VecDeque<&[&str]> =
                of_type.chunks(self.limit()).collect();
            while let Some(chunk) = queue.pop_front() {
                // Bodies (v2) and ancestors/labels (v1 CQL) in parallel.
                let bodies = async {
                    let mut url = self.v2(&format!("/{}", Self::collection(ct)))?;
                    // Without `status`, v2 returns archived items too.
                    url.query_pairs_mut()
                        .append_pair("id", &chunk.join(","))
                        .append_pair("status", "current")
                        .append_pair("body-format", "storage")
                        .append_pair("limit", &chunk.len().to_string());
                    self.collect_v2::<V2Content>(url, || {
                        ConfluenceError::Protocol("no v2 bulk endpoint".into())
                    })
                    .await
                };
                let id_cql = format!("id in ({})", chunk.join(","));
                let notes = self.cql(&id_cql, FETCH_EXPAND, chunk.len());
                let ((bodies, base), notes) = match tokio::try_join!(bodies, notes) {
                    Ok(v) => v,
                    // Too much page text for one answer: half as many at a
                    // time (a single page over the cap still fails).
                    Err(ConfluenceError::TooLarge { .. }) if chunk.len() > 1 => {
                        let (first, second) = chunk.split_at(chunk.len() / 2);
                        queue.push_front(second);
                        queue.push_front(first);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let base = self.web_root(base.as_deref());
                let wanted: HashSet<&str> = chunk.iter().copied().collect();
                let mut notes: HashMap<String, Content> =
                    notes.into_iter().map(|c| (c.id.clone(), c)).collect();
                for body in bodies
                    .into_iter()
                    .filter(|b| wanted.contains(b.id.as_str()))
                {
                    let note = match notes.remove(&body.id) {
                        Some(n) => Some(n),
                        // Not in the search index yet: read it directly.
                        None => self.content_v1(&body.id).await?,
                    };
                    // Gone between the bulk read and now: leave it out.
                    let Some(note) = note else { continue };
                    let (labels, ancestors) = (note.labels().unwrap_or_default(), note.ancestors());
                    pages.push(to_page(body, labels, ancestors, ct, &base, &space.key));
                }
            }
        }
        Ok(pages)
    }
}

fn has_body(c: &V2Content) -> bool {
    v1::storage_text(c.body.as_ref()).is_some()
}

impl held::Body for V2Content {
    fn body_len(&self) -> usize {
        v1::storage_text(self.body.as_ref()).map_or(0, str::len)
    }
}

/// The page of a v2 item with its body, labels and ancestors.
fn to_page(
    body: V2Content,
    labels: Vec<String>,
    ancestors: Vec<Ancestor>,
    ct: ContentType,
    base: &str,
    space_key: &str,
) -> Page {
    let links = SiteLinks {
        root: base.to_string(),
        space_key: space_key.to_string(),
        page_id: body.id.clone(),
    };
    let storage_body = v1::storage_text(body.body.as_ref()).unwrap_or_default();
    let converted = storage::convert(storage_body, &links);
    let url = match &body.links.webui {
        Some(w) => v1::absolute(base, w),
        None => format!("{base}/pages/viewpage.action?pageId={}", body.id),
    };
    Page {
        content_type: ct,
        labels,
        ancestors,
        version: body.version.as_ref().map_or(0, |v| v.number),
        updated_at: v1::timestamp(body.version.as_ref().and_then(|v| v.created_at.as_deref())),
        title: body.title,
        body_markdown: converted.markdown,
        body_text: converted.text,
        url,
        id: body.id,
    }
}
