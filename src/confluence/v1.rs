//! REST v1 response shapes and helpers shared by Data Center (which only has
//! v1) and Cloud (which still needs v1 for CQL search, restrictions and
//! ancestors with titles).

use super::http::{Http, HttpFailure};
use super::storage::{self, SiteLinks};
use super::{ConfluenceError, SpaceInfo, SpaceKind};
use crate::model::{Ancestor, ContentType, Page};
use serde::{Deserialize, Deserializer};

/// Paging loops stop after this many requests: a server that keeps handing
/// out `next` links is broken, and a partial listing must not be returned.
pub(crate) const MAX_PAGES: usize = 100_000;

/// Accepts ids sent as JSON numbers (v1 space ids) or strings.
pub(crate) fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Links {
    pub webui: Option<String>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct List<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    /// Offset of the first result, as the server understood the request.
    #[serde(default)]
    pub start: Option<usize>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Version {
    pub number: u64,
    pub when: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AncestorJson {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(default)]
    pub title: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    #[serde(default)]
    pub results: Vec<serde_json::Value>,
    pub size: Option<u64>,
}

impl Named {
    fn any(&self) -> bool {
        !self.results.is_empty() || self.size.unwrap_or(0) > 0
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct OpRestrictions {
    pub user: Option<Named>,
    pub group: Option<Named>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Operation {
    pub restrictions: Option<OpRestrictions>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Restrictions {
    pub read: Option<Operation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Label {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    pub labels: Option<List<Label>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Storage {
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Body {
    pub storage: Option<Storage>,
}

/// An item's text in storage format, when its answer carried it (v1 and
/// v2 answers nest it alike: `body.storage.value`).
pub(crate) fn storage_text(body: Option<&Body>) -> Option<&str> {
    body.and_then(|b| b.storage.as_ref())
        .map(|s| s.value.as_str())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Content {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `current`, `trashed`, `archived`, ...; absent in some expansions.
    pub status: Option<String>,
    /// With `expand=space`.
    pub space: Option<SpaceKey>,
    #[serde(default)]
    pub title: String,
    pub version: Option<Version>,
    pub ancestors: Option<Vec<AncestorJson>>,
    pub restrictions: Option<Restrictions>,
    pub metadata: Option<Metadata>,
    pub body: Option<Body>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SpaceKey {
    pub key: String,
}

/// Whether a directly looked-up item still belongs in `space_key`'s listing.
pub(crate) fn presence_of(content: &Content, space_key: &str) -> super::Presence {
    let current = content.status.as_deref().is_none_or(|s| s == "current");
    let here = content.space.as_ref().is_none_or(|s| s.key == space_key);
    if current && here {
        super::Presence::Present
    } else {
        super::Presence::Gone
    }
}

impl Content {
    /// Whether the item itself has a read restriction; `None` if the
    /// response did not include the `restrictions.read` expansion.
    pub fn read_restricted(&self) -> Option<bool> {
        let ops = self
            .restrictions
            .as_ref()?
            .read
            .as_ref()?
            .restrictions
            .as_ref()?;
        let user = ops.user.as_ref().is_some_and(Named::any);
        let group = ops.group.as_ref().is_some_and(Named::any);
        Some(user || group)
    }

    pub fn labels(&self) -> Option<Vec<String>> {
        let list = self.metadata.as_ref()?.labels.as_ref()?;
        Some(list.results.iter().map(|l| l.name.clone()).collect())
    }

    pub fn ancestors(&self) -> Vec<Ancestor> {
        self.ancestors
            .iter()
            .flatten()
            .map(|a| Ancestor {
                id: a.id.clone(),
                title: a.title.clone(),
            })
            .collect()
    }

    pub fn content_type(&self) -> ContentType {
        if self.kind == "blogpost" {
            ContentType::Blogpost
        } else {
            ContentType::Page
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SpaceJson {
    #[serde(deserialize_with = "de_id")]
    pub id: String,
    pub key: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

pub(crate) fn space_kind(kind: &str) -> SpaceKind {
    match kind {
        "global" => SpaceKind::Global,
        "personal" => SpaceKind::Personal,
        _ => SpaceKind::Other,
    }
}

impl SpaceJson {
    pub fn into_info(self, root: &str) -> SpaceInfo {
        let url = match &self.links.webui {
            Some(w) => absolute(root, w),
            None => format!("{root}/display/{}", self.key),
        };
        SpaceInfo {
            id: self.id,
            kind: space_kind(&self.kind),
            key: self.key,
            name: self.name,
            url,
        }
    }
}

/// `GET /user/current` (both flavors).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub account_id: Option<String>,
}

impl User {
    pub fn into_name(self) -> Result<String, ConfluenceError> {
        // Confluence answers anonymous callers with a 200 "anonymous" user
        // when anonymous access is on: the credentials were not accepted.
        if self.kind == "anonymous" {
            return Err(ConfluenceError::Unauthorized);
        }
        self.email
            .or(self.username)
            .or(self.display_name)
            .or(self.account_id)
            .ok_or_else(|| ConfluenceError::Protocol("current user has no name".into()))
    }
}

/// `GET {url}` (`…/rest/api/user/current`, both flavors): who the
/// credentials belong to. A 404 means the URL is not that flavor's API.
pub(crate) async fn current_user(
    http: &Http,
    url: &url::Url,
    flavor_hint: &str,
) -> Result<String, ConfluenceError> {
    let user = http.get_json::<User>(url).await.map_err(|f| {
        not_found_as(
            f,
            ConfluenceError::Protocol(format!("no {}: is this a {flavor_hint}?", url.path())),
        )
    })?;
    user.body.into_name()
}

/// Expansion that reads an item's own view restriction (users and groups).
pub(crate) const RESTRICTIONS_EXPAND: &str =
    "restrictions.read.restrictions.user,restrictions.read.restrictions.group";

/// `GET {api}/content/{id}?expand=restrictions.read...`: the direct view
/// restriction of any content item (page, folder, whiteboard, ...).
/// `Ok(None)` when the item cannot be read (404) or the answer does not
/// say: the caller must then treat it as unvettable.
pub(crate) async fn read_restriction(
    http: &Http,
    api: &str,
    id: &str,
) -> Result<Option<bool>, ConfluenceError> {
    let mut url = parse_url(&format!("{api}/content"))?;
    url.path_segments_mut()
        .map_err(|_| ConfluenceError::Config("base URL cannot have a path".into()))?
        .push(id);
    url.query_pairs_mut()
        .append_pair("expand", RESTRICTIONS_EXPAND);
    match http.get_json::<Content>(&url).await {
        Ok(r) => Ok(r.body.read_restricted()),
        Err(HttpFailure::NotFound) => Ok(None),
        Err(HttpFailure::Other(e)) => Err(e),
    }
}

/// Direct restriction of each id, looked up concurrently (the site's
/// request limit still bounds what is in flight).
pub(crate) async fn read_restrictions(
    http: &Http,
    api: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Option<bool>>, ConfluenceError> {
    let lookups = ids.iter().map(|id| async move {
        read_restriction(http, api, id)
            .await
            .map(|state| (id.clone(), state))
    });
    Ok(futures::future::try_join_all(lookups)
        .await?
        .into_iter()
        .collect())
}

/// Joins a server-relative link (`/display/X`) to a root URL.
pub(crate) fn absolute(root: &str, link: &str) -> String {
    if link.starts_with("http://") || link.starts_with("https://") {
        link.to_string()
    } else {
        format!("{}{}", root.trim_end_matches('/'), link)
    }
}

pub(crate) fn parse_url(s: &str) -> Result<url::Url, ConfluenceError> {
    url::Url::parse(s).map_err(|e| ConfluenceError::Protocol(format!("bad URL {s:?}: {e}")))
}

pub(crate) fn timestamp(s: Option<&str>) -> Option<jiff::Timestamp> {
    s.and_then(|s| s.parse::<jiff::Timestamp>().ok())
}

/// Maps a 404 on a content endpoint to "not found" for the caller.
pub(crate) fn not_found_as(f: HttpFailure, e: ConfluenceError) -> ConfluenceError {
    match f {
        HttpFailure::NotFound => e,
        HttpFailure::Other(e) => e,
    }
}

/// Follows v1 `start`/`limit` paging via `_links.next` until the end.
/// `root` is the site root that `next` links are relative to.
pub(crate) async fn collect<T: serde::de::DeserializeOwned>(
    http: &Http,
    root: &str,
    first: url::Url,
    not_found: impl Fn() -> ConfluenceError,
) -> Result<Vec<T>, ConfluenceError> {
    let mut out = Vec::new();
    let mut url = first;
    for _ in 0..MAX_PAGES {
        let resp = http
            .get_json::<List<T>>(&url)
            .await
            .map_err(|f| not_found_as(f, not_found()))?;
        let got = resp.body.results.len();
        out.extend(resp.body.results);
        match resp.body.links.next {
            // An empty page with a next link would loop forever.
            Some(next) if got > 0 => url = parse_url(&absolute(root, &next))?,
            _ => return Ok(out),
        }
    }
    Err(ConfluenceError::Protocol(format!(
        "listing did not end after {MAX_PAGES} requests"
    )))
}

/// Builds a [`Page`] from a v1 content object with body, version,
/// ancestors and labels expanded.
pub(crate) fn to_page(content: Content, root: &str, space_key: &str) -> Page {
    let links = SiteLinks {
        root: root.to_string(),
        space_key: space_key.to_string(),
        page_id: content.id.clone(),
    };
    let storage_body = storage_text(content.body.as_ref()).unwrap_or_default();
    let converted = storage::convert(storage_body, &links);
    let url = match &content.links.webui {
        Some(w) => absolute(root, w),
        None => format!("{root}/pages/viewpage.action?pageId={}", content.id),
    };
    Page {
        content_type: content.content_type(),
        labels: content.labels().unwrap_or_default(),
        ancestors: content.ancestors(),
        version: content.version.as_ref().map_or(0, |v| v.number),
        updated_at: timestamp(content.version.as_ref().and_then(|v| v.when.as_deref())),
        title: content.title,
        body_markdown: converted.markdown,
        body_text: converted.text,
        url,
        id: content.id,
    }
}

/// What an offset listing read.
pub(crate) struct Offsets<T> {
    pub items: Vec<T>,
    /// Items a request was granted (the first page's step), when paging
    /// went past one page.
    pub granted: Option<usize>,
}

/// How [`collect_offsets`] reads a listing of `T`, keeping a `U` of each.
pub(crate) struct OffsetPaging<'a, T, U = T> {
    /// Requests in flight at once (the site's request limit bounds them too).
    pub window: usize,
    /// The same request asking for less per item (without bodies), for an
    /// answer over the client's size cap; `None` when there is nothing to drop.
    pub lighter: &'a (dyn Fn(&url::Url) -> Option<url::Url> + Send + Sync),
    /// What is kept of each item, applied as its page arrives, so that work
    /// on items (converting bodies) overlaps the requests still in flight.
    pub keep: &'a (dyn Fn(T) -> U + Send + Sync),
    /// Items the listing can hold at most, when known (a search for given
    /// ids): no page is asked for at or past it.
    pub at_most: Option<usize>,
    /// Where each page's kept items go as the page is taken, in listing
    /// order, instead of into [`Offsets::items`] (which then stays empty):
    /// a bounded channel, so a slow consumer slows the listing down.
    pub hand_over: Option<&'a tokio::sync::mpsc::Sender<Vec<U>>>,
}

impl<T> OffsetPaging<'_, T, T> {
    /// Every page, nothing to drop, items kept as they are.
    pub fn plain(window: usize) -> Self {
        OffsetPaging {
            window,
            lighter: &|_| None,
            keep: &|item| item,
            at_most: None,
            hand_over: None,
        }
    }
}

/// The value of query parameter `name`.
pub(crate) fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with query parameter `name` set to `value` (replacing any).
pub(crate) fn with_query_param(url: &url::Url, name: &str, value: &str) -> url::Url {
    let mut out = without_query_param(url, name);
    out.query_pairs_mut().append_pair(name, value);
    out
}

/// `url` without any `name=` query parameter (a cursor link repeats the
/// first request's parameters).
pub(crate) fn without_query_param(url: &url::Url, name: &str) -> url::Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(kept);
    out
}

/// `url` without `expansion` in its `expand` list; `None` if it had none.
pub(crate) fn without_expansion(url: &url::Url, expansion: &str) -> Option<url::Url> {
    let expand = query_param(url, "expand")?;
    let kept: Vec<&str> = expand.split(',').filter(|e| *e != expansion).collect();
    if kept.len() == expand.split(',').count() {
        return None;
    }
    Some(with_query_param(url, "expand", &kept.join(",")))
}

/// One page of an offset listing. The request is sent at once, not when
/// the returned future is first polled: pages are asked for while earlier
/// ones are still being taken, and must not wait for that to finish.
fn offset_page<'a, T: serde::de::DeserializeOwned + Send + 'static, U>(
    http: &'a Http,
    url: url::Url,
    paging: &'a OffsetPaging<'_, T, U>,
    not_found: &'a (dyn Fn() -> ConfluenceError + Send + Sync),
) -> impl Future<Output = Result<List<T>, ConfluenceError>> + 'a {
    let mut pending = http.start_json::<List<T>>(&url);
    async move { offset_answer(http, url, pending.answer().await, paging, not_found).await }
}

async fn offset_answer<T: serde::de::DeserializeOwned + Send + 'static, U>(
    http: &Http,
    url: url::Url,
    answer: Result<super::http::JsonResponse<List<T>>, HttpFailure>,
    paging: &OffsetPaging<'_, T, U>,
    not_found: &(dyn Fn() -> ConfluenceError + Send + Sync),
) -> Result<List<T>, ConfluenceError> {
    match answer {
        Ok(r) => Ok(r.body),
        Err(HttpFailure::Other(ConfluenceError::TooLarge { path, limit_mib })) => {
            match (paging.lighter)(&url) {
                // Same offset and limit, so the page covers the same items;
                // they come without what did not fit and are read later.
                Some(lighter) => http
                    .get_json::<List<T>>(&lighter)
                    .await
                    .map(|r| r.body)
                    .map_err(|f| not_found_as(f, not_found())),
                None => Err(ConfluenceError::TooLarge { path, limit_mib }),
            }
        }
        Err(f) => Err(not_found_as(f, not_found())),
    }
}

/// Keeps one page's items: collected, or handed over.
async fn take<U: Send>(
    items: &mut Vec<U>,
    page: Vec<U>,
    hand_over: Option<&tokio::sync::mpsc::Sender<Vec<U>>>,
) -> Result<(), ConfluenceError> {
    match hand_over {
        None => items.extend(page),
        Some(_) if page.is_empty() => {}
        Some(out) => out.send(page).await.map_err(|_| super::sink_closed())?,
    }
    Ok(())
}

fn offset_of(url: &url::Url) -> Option<usize> {
    query_param(url, "start").and_then(|s| s.parse().ok())
}

/// Reads a v1 `start`/`limit` listing without a chain of requests one after
/// another. Offset paging does not need one: the first answer's `next` link
/// tells how many items the server grants a request (often fewer than
/// `limit`, e.g. with bodies expanded), so later pages are asked for at
/// their offsets, up to `window` at once, and taken in order. Each answer's
/// own `next` link is checked against the offset predicted for it: the pages
/// read are exactly those a client following `next` one by one would read
/// (a server granting another size midway is followed from there, the
/// predictions in flight dropped), and the listing ends at the first page
/// without `next`. At most `window - 1` requests past the end are wasted.
///
/// An answer for another offset than asked for, or a `next` link that does
/// not move forward (a server or proxy ignoring `start`), is an error rather
/// than a listing of repeated pages; after [`MAX_PAGES`] requests the
/// listing fails. `next` links without `start` are followed one by one.
pub(crate) async fn collect_offsets<T: serde::de::DeserializeOwned + Send + 'static, U: Send>(
    http: &Http,
    root: &str,
    first: url::Url,
    paging: &OffsetPaging<'_, T, U>,
    not_found: &(dyn Fn() -> ConfluenceError + Send + Sync),
) -> Result<Offsets<U>, ConfluenceError> {
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;
    use std::collections::BTreeMap;

    let first_offset = offset_of(&first).unwrap_or(0);
    let page = offset_page(http, first, paging, not_found).await?;
    check_start(&page, first_offset)?;
    let got = page.results.len();
    let mut items: Vec<U> = Vec::new();
    let first_items = page.results.into_iter().map(paging.keep).collect();
    take(&mut items, first_items, paging.hand_over).await?;
    let Some(next) = page.links.next.filter(|_| got > 0) else {
        return Ok(Offsets {
            items,
            granted: None,
        });
    };
    let mut template = parse_url(&absolute(root, &next))?;
    let Some(next_offset) = offset_of(&template) else {
        return collect_chain(http, root, template, paging, not_found, items).await;
    };
    let mut step = advance(first_offset, next_offset)?;
    let granted = Some(step);
    // Offset of the next page to ask for, and of the next to take.
    let mut issue_at = next_offset;
    let mut take_at = next_offset;
    let mut issued: usize = 1;
    // A slot is freed as soon as any answer arrives, not when the oldest
    // does: answers are taken in listing order from `arrived`, but waiting
    // for the oldest would march the requests in lockstep rounds, each
    // round's decoding after its answers rather than beside other requests'
    // round trips.
    let mut in_flight = FuturesUnordered::new();
    let mut arrived: BTreeMap<usize, Result<List<T>, ConfluenceError>> = BTreeMap::new();
    // The lowest offset whose answer showed the end (no next link, or no
    // items). Answers come back in any order, and those past the end are
    // empty and quick: without this bound each one would free a slot for
    // yet another page past the end while the last real page is on its way.
    let mut end_at: Option<usize> = None;
    let window = paging.window.max(1);
    loop {
        while in_flight.len() < window
            && in_flight.len() + arrived.len() < 2 * window
            && issued < MAX_PAGES
            && paging.at_most.is_none_or(|n| issue_at < n)
            && end_at.is_none_or(|end| issue_at < end)
        {
            let url = with_query_param(&template, "start", &issue_at.to_string());
            let offset = issue_at;
            in_flight
                .push(async move { (offset, offset_page(http, url, paging, not_found).await) });
            issue_at += step;
            issued += 1;
        }
        let Some(page) = arrived.remove(&take_at) else {
            match in_flight.next().await {
                Some((offset, page)) => {
                    let ends = page
                        .as_ref()
                        .is_ok_and(|p| p.results.is_empty() || p.links.next.is_none());
                    if ends {
                        end_at = Some(end_at.map_or(offset, |end| end.min(offset)));
                    }
                    arrived.insert(offset, page);
                    continue;
                }
                None => {
                    if paging.at_most.is_some_and(|n| issue_at >= n) {
                        // Every item there can be is read.
                        return Ok(Offsets { items, granted });
                    }
                    return Err(ConfluenceError::Protocol(format!(
                        "listing did not end after {MAX_PAGES} requests"
                    )));
                }
            }
        };
        let offset = take_at;
        let page = page?;
        check_start(&page, offset)?;
        let got = page.results.len();
        let kept = page.results.into_iter().map(paging.keep).collect();
        take(&mut items, kept, paging.hand_over).await?;
        // An empty page with a next link would loop forever.
        let Some(next) = page.links.next.filter(|_| got > 0) else {
            return Ok(Offsets { items, granted });
        };
        let next = parse_url(&absolute(root, &next))?;
        let Some(next_offset) = offset_of(&next) else {
            return collect_chain(http, root, next, paging, not_found, items).await;
        };
        take_at = next_offset;
        if next_offset != offset + step {
            // The server granted another size here: follow it from its own
            // link; the predictions in flight would leave a gap or overlap.
            step = advance(offset, next_offset)?;
            template = next;
            in_flight = FuturesUnordered::new();
            arrived.clear();
            end_at = None;
            issue_at = next_offset;
        }
    }
}

/// The items between two offsets; a link that does not move forward would
/// repeat pages for ever.
fn advance(from: usize, to: usize) -> Result<usize, ConfluenceError> {
    to.checked_sub(from).filter(|s| *s > 0).ok_or_else(|| {
        ConfluenceError::Protocol(format!(
            "listing paging does not move forward (the page at start={from} links to start={to}); is a proxy dropping the start parameter?"
        ))
    })
}

fn check_start<T>(page: &List<T>, asked: usize) -> Result<(), ConfluenceError> {
    match page.start {
        Some(start) if start != asked => Err(ConfluenceError::Protocol(format!(
            "asked for a listing page from start={asked} and got one from start={start}; is a proxy dropping the start parameter?"
        ))),
        _ => Ok(()),
    }
}

/// Follows `next` links one after another (paging without offsets).
async fn collect_chain<T: serde::de::DeserializeOwned + Send + 'static, U: Send>(
    http: &Http,
    root: &str,
    mut url: url::Url,
    paging: &OffsetPaging<'_, T, U>,
    not_found: &(dyn Fn() -> ConfluenceError + Send + Sync),
    mut items: Vec<U>,
) -> Result<Offsets<U>, ConfluenceError> {
    for _ in 1..MAX_PAGES {
        let page = offset_page(http, url, paging, not_found).await?;
        let got = page.results.len();
        let kept = page.results.into_iter().map(paging.keep).collect();
        take(&mut items, kept, paging.hand_over).await?;
        match page.links.next {
            Some(next) if got > 0 => url = parse_url(&absolute(root, &next))?,
            _ => {
                return Ok(Offsets {
                    items,
                    granted: None,
                });
            }
        }
    }
    Err(ConfluenceError::Protocol(format!(
        "listing did not end after {MAX_PAGES} requests"
    )))
}
