//! The source side: a Confluence REST client behind one trait, with a Cloud
//! (REST v2) and a Data Center (REST v1) implementation chosen by flavor.

use crate::model::{ContentType, Page, PageRef};
use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Which REST API a site speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flavor {
    /// Atlassian Cloud, REST v2 under `/wiki/api/v2`.
    Cloud,
    /// Confluence Data Center / Server, REST v1 under `/rest/api`.
    DataCenter,
}

impl Flavor {
    /// Cloud sites live on `*.atlassian.net` (or serve under `/wiki`);
    /// everything else is assumed to be Data Center.
    pub fn infer(base_url: &url::Url) -> Flavor {
        let host = base_url.host_str().unwrap_or_default();
        if host.ends_with(".atlassian.net")
            || host.ends_with(".jira.com")
            || is_cloud_gateway(base_url)
        {
            Flavor::Cloud
        } else {
            Flavor::DataCenter
        }
    }
}

/// Atlassian's API gateway path for Cloud sites, used by OAuth 2.0 apps and
/// scoped API tokens: `https://api.atlassian.com/ex/confluence/{cloudId}/wiki`.
pub fn is_cloud_gateway(base_url: &url::Url) -> bool {
    base_url.host_str() == Some("api.atlassian.com")
        && base_url
            .path_segments()
            .is_some_and(|mut s| s.next() == Some("ex") && s.next() == Some("confluence"))
}

/// How the operator authenticates. `Debug` never prints the secret parts.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Email (Cloud) or username (Data Center) plus API token or password, sent as HTTP basic.
    Basic { username: String, token: String },
    /// Personal access token (Data Center) or OAuth 2.0 access token (Cloud).
    Bearer { token: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
            Credentials::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Deadline of one request, body included, unless the operator is told
/// otherwise (`--confluence-request-timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to talk to one site.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Base URL as the user sees it, e.g. `https://acme.atlassian.net/wiki` or
    /// `https://confluence.example.com`.
    pub base_url: url::Url,
    pub flavor: Flavor,
    pub credentials: Credentials,
    /// Requests in flight at once against this site.
    pub max_concurrency: usize,
    pub request_timeout: Duration,
    /// Retries of a transient failure (429, 503, 5xx, timeouts) before giving up.
    pub max_retries: u32,
    /// Extra CA certificates trusted for this site, besides the system roots.
    pub ca_bundle: Option<CaBundle>,
}

/// The kind of a space as Confluence reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpaceKind {
    Global,
    Personal,
    /// Newer Cloud types (collaboration, knowledge_base, ...) are treated like global spaces.
    Other,
}

/// A space as discovered on a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceInfo {
    /// Confluence's id (numeric string on Cloud v2; on Data Center the v1 id).
    pub id: String,
    pub key: String,
    pub name: String,
    pub kind: SpaceKind,
    /// Link to the space's home in the web UI.
    pub url: String,
}

impl SpaceInfo {
    /// Personal spaces never leave Confluence: their keys start with `~`.
    pub fn is_personal(&self) -> bool {
        self.kind == SpaceKind::Personal || self.key.starts_with('~')
    }
}

/// The space a sync is for: its key at once, and what Confluence says about
/// it (id, name, link, kind) once its lookup answers. The lookup is one
/// request whose answer only some requests need (Cloud's v2 listing asks by
/// id; its search and Data Center's listing ask by key), so listings start
/// beside it instead of after it. Cheap to clone; the lookup runs once.
#[derive(Clone)]
pub struct SpaceRef<'a> {
    key: String,
    info: Shared<BoxFuture<'a, Result<SpaceInfo, ConfluenceError>>>,
}

impl<'a> SpaceRef<'a> {
    /// A space already looked up.
    pub fn known(info: SpaceInfo) -> Self {
        SpaceRef {
            key: info.key.clone(),
            info: futures::future::ready(Ok(info)).boxed().shared(),
        }
    }

    /// A space whose lookup on `source` starts when first awaited.
    pub fn lookup(source: &'a dyn ConfluenceApi, key: &str) -> Self {
        let owned = key.to_string();
        SpaceRef {
            key: key.to_string(),
            info: async move { source.space(&owned).await }.boxed().shared(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// What the lookup answered (the same answer every time).
    pub async fn info(&self) -> Result<SpaceInfo, ConfluenceError> {
        self.info.clone().await
    }
}

impl From<SpaceInfo> for SpaceRef<'_> {
    fn from(info: SpaceInfo) -> Self {
        SpaceRef::known(info)
    }
}

impl fmt::Debug for SpaceRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpaceRef")
            .field("key", &self.key)
            .field("info", &self.info.peek())
            .finish()
    }
}

/// What to list from a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    pub content_types: Vec<ContentType>,
    /// Only content carrying at least one of these labels (empty: no filter).
    pub include_labels: Vec<String>,
    /// Never content carrying any of these labels.
    pub exclude_labels: Vec<String>,
    /// Include pages with page-level view restrictions. Off by default: such
    /// content must not reach a wider audience than Confluence allows.
    pub include_restricted: bool,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            content_types: vec![ContentType::Page],
            include_labels: Vec::new(),
            exclude_labels: Vec::new(),
            include_restricted: false,
        }
    }
}

/// Errors from the source client. Messages never contain credentials.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfluenceError {
    #[error("Confluence rejected the credentials (HTTP 401): check the Secret's token")]
    Unauthorized,
    #[error("the credentials lack permission for {0} (HTTP 403)")]
    Forbidden(String),
    #[error("space {0:?} was not found or is not visible to these credentials")]
    SpaceNotFound(String),
    #[error("space {0:?} is a personal space; personal spaces are never synced")]
    PersonalSpace(String),
    #[error("rate limited by Confluence after {retries} retries")]
    RateLimited { retries: u32 },
    #[error("transient error talking to Confluence: {0}")]
    Transient(String),
    #[error("unexpected response from Confluence: {0}")]
    Protocol(String),
    /// An answer over the client's size cap (`http::MAX_RESPONSE_BYTES`);
    /// a request for fewer items may fit.
    #[error(
        "unexpected response from Confluence: the answer of {path} is larger than {limit_mib} MiB; not read"
    )]
    TooLarge { path: String, limit_mib: usize },
    #[error("invalid site configuration: {0}")]
    Config(String),
    /// The site's certificate was not accepted (unknown CA, wrong host name,
    /// expired): retrying cannot help until the site or its CA bundle changes.
    #[error("TLS with the site failed: {0}")]
    Tls(String),
}

impl ConfluenceError {
    /// Permanent errors will not go away by retrying; the user must act.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConfluenceError::Unauthorized
                | ConfluenceError::Forbidden(_)
                | ConfluenceError::SpaceNotFound(_)
                | ConfluenceError::PersonalSpace(_)
                | ConfluenceError::Config(_)
                | ConfluenceError::Tls(_)
        )
    }
}

/// One Confluence site. Implementations must be cheap to share (`Arc`).
#[async_trait]
pub trait ConfluenceApi: Send + Sync {
    /// Checks the connection and returns who the credentials belong to.
    async fn whoami(&self) -> Result<String, ConfluenceError>;

    /// Looks up a space by key.
    async fn space(&self, key: &str) -> Result<SpaceInfo, ConfluenceError>;

    /// Lists non-personal spaces whose key or name contains `query` (all when `None`).
    async fn spaces(&self, query: Option<&str>) -> Result<Vec<SpaceInfo>, ConfluenceError>;

    /// Lists every matching item of the space with its version, without
    /// bodies, and what the listing saw but left out, and why. Either the
    /// complete listing or an error: never a partial list, because the caller
    /// treats absence as deletion.
    async fn list_detailed(
        &self,
        space: &SpaceInfo,
        options: &ListOptions,
    ) -> Result<Listing, ConfluenceError>;

    /// Fetches bodies, labels and ancestors for the given items. Items that
    /// vanished between listing and fetching are left out of the result.
    async fn fetch(
        &self,
        space: &SpaceInfo,
        items: &[PageRef],
    ) -> Result<Vec<Page>, ConfluenceError>;

    /// Whether [`ConfluenceApi::list_streaming`] carries bodies in the
    /// listing itself and so saves requests (the sync then chooses it for
    /// mostly empty stores). Both flavors do.
    fn lists_bodies(&self) -> bool {
        false
    }

    /// [`ConfluenceApi::list_detailed`] that also hands the listed items'
    /// pages to `sink`, for when most of them must be fetched anyway. Each
    /// page goes as soon as it may be stored (vetted: its own restrictions
    /// and every ancestor's are known and open, unless restricted content is
    /// included), so the caller stores them while the listing goes on and
    /// memory holds a window of the space rather than all of it. Returns the
    /// complete listing; a kept item whose page was not handed over (held
    /// past the client's budget, below a parent that is not a listed page,
    /// missed by the search index) is for the caller to fetch. A failed
    /// listing returns the error after the pages already handed over, which
    /// were current and permitted. Requests that ask by key need not wait
    /// for `space`'s lookup. The default looks up, lists and fetches first
    /// (pages of items that vanished meanwhile are missing).
    async fn list_streaming(
        &self,
        space: &SpaceRef<'_>,
        options: &ListOptions,
        sink: PageSink,
    ) -> Result<Listing, ConfluenceError> {
        let space = space.info().await?;
        let listing = self.list_detailed(&space, options).await?;
        let pages = self.fetch(&space, &listing.items).await?;
        let mut pages = pages.into_iter().peekable();
        while pages.peek().is_some() {
            let chunk: Vec<Page> = pages.by_ref().take(SINK_CHUNK).collect();
            if sink.send(chunk).await.is_err() {
                return Err(sink_closed());
            }
        }
        Ok(listing)
    }

    /// Looks one item up directly, to confirm that an item missing from a
    /// listing is really gone before it is removed from stores. Clients
    /// without a direct lookup trust their listing.
    async fn presence(
        &self,
        _space: &SpaceInfo,
        _id: &str,
        _types: &[ContentType],
    ) -> Result<Presence, ConfluenceError> {
        Ok(Presence::Gone)
    }
}

/// Where [`ConfluenceApi::list_streaming`] hands pages over, a few at a
/// time; a bounded channel, so a slow consumer slows the listing down
/// instead of letting pages pile up.
pub type PageSink = tokio::sync::mpsc::Sender<Vec<Page>>;

/// Pages handed over at once by the default [`ConfluenceApi::list_streaming`].
const SINK_CHUNK: usize = 250;

/// The error a streaming listing ends with when its consumer stopped taking
/// pages (the consumer reports its own reason).
pub(crate) fn sink_closed() -> ConfluenceError {
    ConfluenceError::Transient("the sync stopped taking pages".into())
}

/// What a direct lookup says about an item a listing did not return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// 404, trashed, archived, or moved to another space.
    Gone,
    /// Still current in the space: the listing missed it.
    Present,
}

/// Items a listing saw but left out, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    /// The item itself has a view restriction.
    pub restricted: u64,
    /// A parent (page, folder, whiteboard, ...) up the tree has one.
    pub restricted_ancestor: u64,
    /// Its restrictions, an ancestor's, or its labels could not be read:
    /// left out until a later sync can vet it.
    pub unverifiable: u64,
    /// Excluded by the space's label filters.
    pub labels: u64,
}

impl LeftOut {
    pub fn total(&self) -> u64 {
        self.restricted + self.restricted_ancestor + self.unverifiable + self.labels
    }

    fn count(&mut self, reason: LeftOutReason) {
        match reason {
            LeftOutReason::Restricted => self.restricted += 1,
            LeftOutReason::RestrictedAncestor => self.restricted_ancestor += 1,
            LeftOutReason::Unverifiable => self.unverifiable += 1,
            LeftOutReason::Labels => self.labels += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeftOutReason {
    Restricted,
    RestrictedAncestor,
    Unverifiable,
    Labels,
}

/// A complete listing after filtering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Items to sync.
    pub items: Vec<PageRef>,
    /// Every id the listing returned, kept or left out: an id outside this
    /// set is missing, which is not yet proof that it was deleted.
    pub seen: std::collections::HashSet<String>,
    pub left_out: LeftOut,
    /// Most page bodies a streaming listing held at once while waiting to
    /// vet them (0 for listings that hold none).
    pub held_at_most: usize,
}

impl Listing {
    /// A listing that kept everything it saw (for sources that cannot tell
    /// what they left out).
    pub fn complete(items: Vec<PageRef>) -> Self {
        Listing {
            seen: items.iter().map(|i| i.id.clone()).collect(),
            items,
            left_out: LeftOut::default(),
            held_at_most: 0,
        }
    }
}

pub mod cloud;
pub(crate) mod convert;
pub mod datacenter;
pub(crate) mod held;
pub(crate) mod http;
pub mod storage;
pub mod tls;
pub use tls::CaBundle;
pub(crate) mod v1;
pub(crate) mod verdict;

/// Tuning knobs of the client that are not part of a site's configuration.
/// The defaults suit production; tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Items per listing request. Cloud v2 accepts up to 250; Data Center
    /// caps expanded listings itself (typically 100-200) and we follow its
    /// `_links.next` whatever size it returns.
    pub page_limit: usize,
    /// First backoff step for transient failures; doubles per retry.
    pub backoff_base: Duration,
    /// Ceiling of one backoff step.
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured; a longer one is clamped so one sync
    /// is not parked for an hour by a misconfigured proxy.
    pub retry_after_max: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            page_limit: 250,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            retry_after_max: Duration::from_secs(120),
        }
    }
}

/// Builds the client for a site, choosing the REST flavor from the config.
pub fn connect(config: SiteConfig) -> Result<std::sync::Arc<dyn ConfluenceApi>, ConfluenceError> {
    connect_with(config, ClientOptions::default())
}

/// [`connect`] with explicit tuning (page size, backoff).
pub fn connect_with(
    config: SiteConfig,
    options: ClientOptions,
) -> Result<std::sync::Arc<dyn ConfluenceApi>, ConfluenceError> {
    if !matches!(config.base_url.scheme(), "http" | "https") {
        return Err(ConfluenceError::Config(format!(
            "base URL must be http(s), got {:?}",
            config.base_url.scheme()
        )));
    }
    if config.base_url.host_str().is_none() {
        return Err(ConfluenceError::Config("base URL has no host".into()));
    }
    Ok(match config.flavor {
        Flavor::Cloud => std::sync::Arc::new(cloud::CloudClient::new(&config, options)?),
        Flavor::DataCenter => {
            std::sync::Arc::new(datacenter::DataCenterClient::new(&config, options)?)
        }
    })
}

/// What a flavor learned about one listed item before filtering.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub page: PageRef,
    /// Ids of the item's ancestors (any order).
    pub ancestors: Vec<String>,
    /// Whether the item itself carries a read restriction; `None` when the
    /// listing could not tell.
    pub restricted: Option<bool>,
    /// The item's labels; `None` when not known.
    pub labels: Option<Vec<String>>,
}

/// Applies label and restriction filters to a complete listing.
///
/// Read restrictions inherit down the page tree through every parent type
/// (pages, folders, whiteboards, databases, embeds), so an item is restricted
/// when it or any ancestor is. `outside` holds the direct restriction of
/// ancestors that are not themselves listed (non-page parents, looked up one
/// by one); `None` there means the lookup failed. Anything that cannot be
/// vetted (restriction or labels unknown, an ancestor neither listed nor
/// looked up) is left out and counted: it is picked up by a later sync once
/// it can be vetted, while the opposite mistake would leak content.
pub(crate) fn apply_filters(
    items: Vec<Listed>,
    outside: &std::collections::HashMap<String, Option<bool>>,
    options: &ListOptions,
) -> Listing {
    use std::collections::HashMap;
    let direct: HashMap<&str, Option<bool>> = items
        .iter()
        .map(|i| (i.page.id.as_str(), i.restricted))
        .collect();
    let labels = LabelFilter::new(options);
    let visibility = |i: &Listed| -> Option<LeftOutReason> {
        // The listing is complete: an ancestor neither listed nor looked up
        // is one that cannot be vetted.
        let above = verdict::Known::all(i.ancestors.iter().map(|a| {
            verdict::Known::of(
                direct
                    .get(a.as_str())
                    .or_else(|| outside.get(a))
                    .copied()
                    .flatten(),
            )
        }));
        verdict::verdict(
            verdict::Known::of(i.restricted),
            above,
            options.include_restricted,
        )
        .left_out()
    };
    let verdicts: Vec<Option<LeftOutReason>> = items
        .iter()
        .map(|i| visibility(i).or_else(|| labels.verdict(i.labels.as_deref())))
        .collect();
    let mut listing = Listing::default();
    for (item, verdict) in items.into_iter().zip(verdicts) {
        listing.seen.insert(item.page.id.clone());
        match verdict {
            None => listing.items.push(item.page),
            Some(reason) => listing.left_out.count(reason),
        }
    }
    listing
}

/// A space's label filters, compared without regard to case.
pub(crate) struct LabelFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl LabelFilter {
    pub(crate) fn new(options: &ListOptions) -> Self {
        let lower = |ls: &[String]| ls.iter().map(|l| l.to_lowercase()).collect();
        LabelFilter {
            include: lower(&options.include_labels),
            exclude: lower(&options.exclude_labels),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Why an item with these labels (`None`: not known) is left out, if it is.
    fn verdict(&self, labels: Option<&[String]>) -> Option<LeftOutReason> {
        if self.is_empty() {
            return None;
        }
        let Some(labels) = labels else {
            return Some(LeftOutReason::Unverifiable);
        };
        let has = |wanted: &String| labels.iter().any(|l| l.eq_ignore_ascii_case(wanted));
        let wanted = (self.include.is_empty() || self.include.iter().any(has))
            && !self.exclude.iter().any(has);
        (!wanted).then_some(LeftOutReason::Labels)
    }
}

/// Ancestor ids (of any parent type) whose restrictions a listing must look
/// up because they are not listed themselves.
pub(crate) fn unlisted_ancestors(items: &[Listed]) -> Vec<String> {
    let listed: std::collections::HashSet<&str> =
        items.iter().map(|i| i.page.id.as_str()).collect();
    let mut out: Vec<String> = items
        .iter()
        .flat_map(|i| i.ancestors.iter())
        .filter(|a| !a.is_empty() && !listed.contains(a.as_str()))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether a listing must learn restrictions/labels, or ids and versions suffice.
pub(crate) fn needs_annotations(options: &ListOptions) -> bool {
    !options.include_restricted
        || !options.include_labels.is_empty()
        || !options.exclude_labels.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn item(id: &str, ancestors: &[&str], restricted: Option<bool>) -> Listed {
        Listed {
            page: PageRef {
                id: id.into(),
                version: 1,
                content_type: ContentType::Page,
            },
            ancestors: ancestors.iter().map(|a| a.to_string()).collect(),
            restricted,
            labels: Some(vec!["faq".into()]),
        }
    }

    #[test]
    fn left_out_items_are_counted_by_reason_and_unknown_parents_fail_closed() {
        let outside: HashMap<String, Option<bool>> = [
            ("open-folder".to_string(), Some(false)),
            ("closed-folder".to_string(), Some(true)),
            ("unreadable-folder".to_string(), None),
        ]
        .into();
        let items = vec![
            item("root", &[], Some(false)),
            item("mine", &["root"], Some(true)),
            item("below-mine", &["root", "mine"], Some(false)),
            item("in-open", &["root", "open-folder"], Some(false)),
            item("in-closed", &["closed-folder"], Some(false)),
            item("in-unreadable", &["unreadable-folder"], Some(false)),
            item("never-looked-up", &["elsewhere"], Some(false)),
            item("unknown-itself", &[], None),
        ];
        let options = ListOptions {
            exclude_labels: vec!["FAQ".into()],
            ..ListOptions::default()
        };
        let listing = apply_filters(items.clone(), &outside, &ListOptions::default());
        let kept: Vec<&str> = listing.items.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(kept, ["root", "in-open"]);
        assert_eq!(
            listing.left_out,
            LeftOut {
                restricted: 1,
                restricted_ancestor: 2,
                unverifiable: 3,
                labels: 0,
            }
        );
        assert_eq!(listing.seen.len(), items.len());
        let by_label = apply_filters(items, &outside, &options);
        assert!(by_label.items.is_empty());
        assert_eq!(by_label.left_out.labels, 2);
    }
}
