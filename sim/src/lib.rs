//! A Confluence simulator for tests, benchmarks and the demo. It is test
//! tooling, independent of the operator crate: the operator only talks to it
//! over HTTP, as it would to Confluence.
//!
//! One axum server on 127.0.0.1 serves both flavors at once over the same
//! deterministic content: Cloud (REST v2 under `/wiki/api/v2`, v1 under
//! `/wiki/rest/api`) and Data Center (REST v1 under `/rest/api`). Content
//! and faults can be changed at runtime through the [`Simulator`] handle or
//! the admin API under `/_sim`:
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /_sim/stats`, `POST /_sim/stats/reset` | request counters per endpoint |
//! | `GET /_sim/spaces` | spaces with item counts |
//! | `POST /_sim/pages` `{space_key,title,parent_id?,body?,labels?,content_type?}` | create |
//! | `PUT /_sim/pages/{id}` `{title?,body?,labels?}` | edit (bumps the version) |
//! | `DELETE /_sim/pages/{id}` | delete |
//! | `PUT` / `DELETE /_sim/pages/{id}/restriction` | set / clear a view restriction |
//! | `GET` / `PUT /_sim/faults` | fault configuration ([`FaultConfig`], hostile answers: [`Hostile`]) |
//!
//! With [`SimConfig::tls`] it serves HTTPS instead of HTTP. The Cloud APIs are
//! also served under Atlassian's API gateway path
//! (`/ex/confluence/{CLOUD_ID}/wiki`, [`Simulator::gateway_site_url`]), with
//! `_links.base` still naming the site. For third-party clients it serves
//! `…/content/{id}/restriction/byOperation` and the `body.view` /
//! `body.export_view` representations (storage rendered to HTML).
//!
//! Beyond pages and blog posts, the page tree holds folders, whiteboards and
//! databases ([`Simulator::create_parent`], restrictable like pages), and
//! items carry a status (current, archived, trashed) that listings honour
//! with each endpoint's documented default. For tests of fidelity the
//! handle can record every exchange ([`Simulator::start_recording`]), hide
//! items from direct lookups, and delete an item in the middle of a listing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), confluence_sim::SimError> {
//! use confluence_sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig { pages: 50, ..SimConfig::default() }).await?;
//! println!("Cloud site at {}", sim.cloud_site_url());
//! let id = sim.create_page("ENG", "New page", None, "<p>hi</p>")?;
//! sim.edit_page(id, "<p>changed</p>")?;
//! println!("{:?}", sim.stats());
//! # Ok(()) }
//! ```

mod alarm;
pub mod data;
mod journal;
mod other_host;
mod render;
mod server;
mod tls;

pub use data::{ContentType, SimPage, SimSpace, Status};
pub use journal::Exchange;
pub use other_host::{OtherHost, Visit};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
pub use server::NewPage;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use tls::TlsIdentity;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator I/O: {0}")]
    Io(String),
    #[error("no such page {0}")]
    NoSuchPage(u64),
    #[error("no such space {0:?}")]
    NoSuchSpace(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Faults injected into API requests (never into `/_sim`). Rates are
/// probabilities per request drawn from a seeded RNG, so a run is repeatable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// The least time every API answer takes from the request's arrival,
    /// rendering included.
    pub latency_ms: u64,
    /// Share of requests answered 429.
    pub rate_limit_rate: f64,
    /// The next N requests are answered 429 (before the rate applies).
    pub rate_limit_budget: u64,
    /// `Retry-After` sent with 429 (and 503) answers.
    pub retry_after_secs: u64,
    /// Send `Retry-After` as an HTTP date instead of seconds.
    pub retry_after_as_date: bool,
    /// Share of requests answered with `error_status`.
    pub error_rate: f64,
    /// The next N requests are answered with `error_status`.
    pub error_budget: u64,
    /// A 5xx status; 503 answers carry `Retry-After`.
    pub error_status: u16,
    /// Share of requests that hang for `hang_ms` before answering.
    pub hang_rate: f64,
    pub hang_ms: u64,
    /// Share of successful responses whose body is cut in half.
    pub truncate_rate: f64,
    /// A hostile answer given instead of the real one, to API
    /// requests whose path contains [`FaultConfig::hostile_path`].
    pub hostile: Option<Hostile>,
    /// Path fragment a request must contain to get [`FaultConfig::hostile`]
    /// (e.g. `/pages`); empty: every API request.
    pub hostile_path: String,
    /// Only the next N matching requests get it; `None`: all of them.
    pub hostile_budget: Option<u64>,
    /// API requests whose path and query (`/rest/api/content?...&start=200`)
    /// contain this take [`FaultConfig::slow_ms`] longer: one answer late,
    /// so that the others overtake it. Empty: none.
    pub slow_match: String,
    pub slow_ms: u64,
}

/// Answers no well-behaved Confluence gives, for testing clients against
/// broken proxies, misconfigured sites and hostile servers. In JSON (the
/// admin API): `{"mode": "trickle", "interval_ms": 500}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Hostile {
    /// `200 application/json` whose body is not JSON.
    MalformedJson,
    /// `200 text/html`: the login page an SSO proxy serves in place of the API.
    HtmlLoginPage,
    /// The real answer with every `marker` replaced by bytes that are not
    /// UTF-8 (put the marker in a page body to corrupt just that page).
    InvalidUtf8 { marker: String },
    /// `200 application/json` headers, then a body that never ends, as fast
    /// as the client reads.
    EndlessBody,
    /// `200 application/json` headers, then one byte every `interval_ms`,
    /// forever.
    Trickle { interval_ms: u64 },
    /// `302 Found` to the same path and query under `to` (another origin,
    /// e.g. an [`OtherHost`]).
    Redirect { to: String },
    /// The request reaches Confluence without query parameter `name`, as
    /// behind a proxy or rewrite rule that drops it (`start`: every page
    /// request is answered with the first page).
    DropQueryParam { name: String },
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            rate_limit_rate: 0.0,
            rate_limit_budget: 0,
            retry_after_secs: 1,
            retry_after_as_date: false,
            error_rate: 0.0,
            error_budget: 0,
            error_status: 500,
            hang_rate: 0.0,
            hang_ms: 30_000,
            truncate_rate: 0.0,
            hostile: None,
            hostile_path: String::new(),
            hostile_budget: None,
            slow_match: String::new(),
            slow_ms: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Global spaces (a personal space `~alice` is always added).
    pub spaces: usize,
    /// Pages per space.
    pub pages: usize,
    /// Blog posts per space.
    pub blogposts: usize,
    pub seed: u64,
    /// Accepted as HTTP basic `user:token` or as `Bearer token`.
    pub user: String,
    pub token: String,
    pub faults: FaultConfig,
    /// Largest `limit` honoured by v2 listings (Cloud's is 250).
    pub max_limit_v2: usize,
    /// Largest `limit` honoured by v1 listings.
    pub max_limit_v1: usize,
    /// Serve HTTPS with this identity instead of plain HTTP.
    pub tls: Option<TlsIdentity>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            spaces: 3,
            pages: 200,
            blogposts: 3,
            seed: 42,
            user: "demo@example.com".into(),
            token: "demo-token".into(),
            faults: FaultConfig::default(),
            max_limit_v2: 250,
            max_limit_v1: 200,
            tls: None,
        }
    }
}

/// Request counters, by endpoint (`GET /wiki/api/v2/spaces/{id}/pages`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub by_endpoint: BTreeMap<String, u64>,
    pub total: u64,
    /// Requests answered by an injected fault.
    pub rate_limited: u64,
    pub errors: u64,
    pub hangs: u64,
    pub truncated: u64,
    /// Requests given a [`Hostile`] answer.
    pub hostile: u64,
    /// Connections accepted (TLS: sessions established).
    pub connections: u64,
}

impl Stats {
    /// Count for an endpoint label, 0 if never called.
    pub fn get(&self, endpoint: &str) -> u64 {
        self.by_endpoint.get(endpoint).copied().unwrap_or(0)
    }

    /// Sum over endpoints whose label contains `fragment`.
    pub fn matching(&self, fragment: &str) -> u64 {
        self.by_endpoint
            .iter()
            .filter(|(k, _)| k.contains(fragment))
            .map(|(_, v)| v)
            .sum()
    }
}

pub(crate) struct State {
    pub data: RwLock<data::Data>,
    pub stats: Mutex<Stats>,
    pub faults: Mutex<(FaultConfig, StdRng)>,
    pub origin: String,
    pub user: String,
    pub token: String,
    pub max_limit_v2: usize,
    pub max_limit_v1: usize,
    pub shutdown: watch::Receiver<bool>,
    /// Exchanges recorded while a test asked for them (`None`: not recording).
    pub journal: Mutex<Option<Vec<journal::Exchange>>>,
    /// Deleted just before the next v1 content listing request past the
    /// first page is answered (see [`Simulator::delete_during_listing`]).
    pub delete_mid_listing: Mutex<Option<u64>>,
    /// Ids whose direct lookups answer 404, as Confluence answers for items
    /// the caller may not view (see [`Simulator::hide_from_lookups`]).
    pub hidden: Mutex<std::collections::HashSet<u64>>,
}

/// The Cloud id under which the simulator also serves the Cloud APIs at
/// `/ex/confluence/{cloudId}/wiki`, the path Atlassian's API gateway
/// (`api.atlassian.com`) uses for OAuth 2.0 apps and scoped API tokens.
pub const CLOUD_ID: &str = "5a1c0ffe-0000-4000-8000-000000000042";

/// Poisoned locks are recovered: every mutation is a single step, so state
/// is consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The content for reading: many requests render side by side, as a real
/// server serves them (one lock for every request made side-by-side
/// listings render one after another on the machine's cores).
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

/// The content for changing (test setup, deletions, moves).
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    state: Arc<State>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    config: SimConfig,
    cloud_url: url::Url,
    dc_url: url::Url,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| SimError::Io(format!("binding {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SimError::Io(e.to_string()))?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let parse = |s: String| url::Url::parse(&s).map_err(|e| SimError::Io(format!("{s}: {e}")));
        let cloud_url = parse(format!("{scheme}://{addr}/wiki"))?;
        let dc_url = parse(format!("{scheme}://{addr}/"))?;
        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(State {
            data: RwLock::new(data::generate(
                config.seed,
                config.spaces,
                config.pages,
                config.blogposts,
            )),
            stats: Mutex::new(Stats::default()),
            faults: Mutex::new((
                config.faults.clone(),
                StdRng::seed_from_u64(config.seed ^ 0xfa17),
            )),
            origin: format!("{scheme}://{addr}"),
            user: config.user.clone(),
            token: config.token.clone(),
            max_limit_v2: config.max_limit_v2.max(1),
            max_limit_v1: config.max_limit_v1.max(1),
            shutdown: stopped.clone(),
            journal: Mutex::new(None),
            delete_mid_listing: Mutex::new(None),
            hidden: Mutex::new(Default::default()),
        });
        let app = server::router(state.clone());
        let task = match &config.tls {
            // Answers leave at once, as from a web server or proxy in front
            // of Confluence (nginx and most others set TCP_NODELAY): the
            // last segment of an answer never waits for the client's ACK.
            None => spawn_server(
                axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                app,
                stopped,
                state.clone(),
            ),
            Some(identity) => {
                let tls = tls::TlsListener::new(listener, tls::acceptor(identity)?)?;
                spawn_server(tls, app, stopped, state.clone())
            }
        };
        tracing::info!(%addr, scheme, "Confluence simulator listening");
        Ok(Simulator {
            state,
            addr,
            stop,
            task: Some(task),
            config,
            cloud_url,
            dc_url,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.state.origin.clone()
    }

    /// The Cloud site as a user would paste it: `http://127.0.0.1:PORT/wiki`.
    pub fn cloud_site_url(&self) -> url::Url {
        self.cloud_url.clone()
    }

    /// The Cloud site as an OAuth 2.0 app or scoped token reaches it, through
    /// the API gateway path: `http://127.0.0.1:PORT/ex/confluence/{CLOUD_ID}/wiki`.
    /// Responses still name [`Simulator::cloud_site_url`] as `_links.base`.
    pub fn gateway_site_url(&self) -> url::Url {
        let mut url = self.cloud_url.clone();
        url.set_path(&format!("/ex/confluence/{CLOUD_ID}/wiki"));
        url
    }

    /// The Data Center site: `http://127.0.0.1:PORT`.
    pub fn datacenter_site_url(&self) -> url::Url {
        self.dc_url.clone()
    }

    /// The user name the simulator accepts (basic auth, with [`Simulator::token`]).
    pub fn user(&self) -> &str {
        &self.config.user
    }

    /// The API token (Cloud basic auth) and personal access token (Data Center bearer).
    pub fn token(&self) -> &str {
        &self.config.token
    }

    /// Starts recording every API exchange (dropping any earlier record).
    pub fn start_recording(&self) {
        *lock(&self.state.journal) = Some(Vec::new());
    }

    /// The exchanges recorded since [`Simulator::start_recording`]; recording
    /// goes on.
    pub fn recorded(&self) -> Vec<Exchange> {
        lock(&self.state.journal).clone().unwrap_or_default()
    }

    pub fn stats(&self) -> Stats {
        lock(&self.state.stats).clone()
    }

    pub fn reset_stats(&self) {
        *lock(&self.state.stats) = Stats::default();
    }

    pub fn faults(&self) -> FaultConfig {
        lock(&self.state.faults).0.clone()
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.state.faults).0 = faults;
    }

    pub fn spaces(&self) -> Vec<SimSpace> {
        read(&self.state.data).spaces.clone()
    }

    /// Every item of a space, ordered by id.
    pub fn pages(&self, space_key: &str) -> Vec<SimPage> {
        read(&self.state.data)
            .pages
            .values()
            .filter(|p| p.space_key == space_key)
            .cloned()
            .collect()
    }

    pub fn page(&self, id: u64) -> Option<SimPage> {
        read(&self.state.data).pages.get(&id).cloned()
    }

    /// Creates a page (version 1) and returns its id.
    pub fn create_page(
        &self,
        space_key: &str,
        title: &str,
        parent_id: Option<u64>,
        body: &str,
    ) -> Result<u64, SimError> {
        self.create(server::NewPage {
            space_key: space_key.to_string(),
            title: title.to_string(),
            parent_id,
            body: Some(body.to_string()),
            labels: Vec::new(),
            content_type: ContentType::Page,
        })
    }

    /// Creates a non-page item of the page tree (folder, whiteboard,
    /// database) and returns its id. Pages can then be created below it.
    pub fn create_parent(
        &self,
        space_key: &str,
        kind: ContentType,
        title: &str,
        parent_id: Option<u64>,
    ) -> Result<u64, SimError> {
        if kind.is_document() {
            return Err(SimError::Invalid(format!(
                "{} is not a non-page parent type",
                kind.as_str()
            )));
        }
        self.create(server::NewPage {
            space_key: space_key.to_string(),
            title: title.to_string(),
            parent_id,
            body: Some(String::new()),
            labels: Vec::new(),
            content_type: kind,
        })
    }

    /// Creates an item with full control (labels, blog post, parent).
    pub fn create(&self, new: NewPage) -> Result<u64, SimError> {
        server::create_page(&self.state, new)
    }

    /// Replaces the body and bumps the version.
    pub fn edit_page(&self, id: u64, body: &str) -> Result<u64, SimError> {
        server::edit_page(&self.state, id, None, Some(body.to_string()), None)
    }

    /// Replaces the labels and bumps the version.
    pub fn set_labels(&self, id: u64, labels: &[&str]) -> Result<u64, SimError> {
        let labels = labels.iter().map(|l| l.to_string()).collect();
        server::edit_page(&self.state, id, None, None, Some(labels))
    }

    /// Moves an item below another item of its space (`None`: to the top
    /// of the space), as moving a page in Confluence does. Since ids grow
    /// with creation, this is how a tree gets a parent with a higher id
    /// than its child, which listings ordered by id return after the child.
    pub fn move_page(&self, id: u64, parent_id: Option<u64>) -> Result<(), SimError> {
        let mut data = write(&self.state.data);
        let space = data
            .pages
            .get(&id)
            .ok_or(SimError::NoSuchPage(id))?
            .space_key
            .clone();
        let mut cur = parent_id;
        let mut steps = 0;
        while let Some(p) = cur {
            let parent = data.pages.get(&p).ok_or(SimError::NoSuchPage(p))?;
            steps += 1;
            if p == id || parent.space_key != space || steps > data.pages.len() {
                return Err(SimError::Invalid(format!(
                    "{id} cannot move below {p}: a cycle or another space"
                )));
            }
            cur = parent.parent_id;
        }
        let page = data.pages.get_mut(&id).ok_or(SimError::NoSuchPage(id))?;
        page.parent_id = parent_id;
        Ok(())
    }

    pub fn delete_page(&self, id: u64) -> Result<(), SimError> {
        write(&self.state.data)
            .pages
            .remove(&id)
            .map(|_| ())
            .ok_or(SimError::NoSuchPage(id))
    }

    /// Moves an item to the trash or the archive (or back to current), as
    /// Confluence does: it leaves default listings, and direct lookups
    /// report the new status.
    pub fn set_status(&self, id: u64, status: data::Status) -> Result<(), SimError> {
        let mut data = write(&self.state.data);
        let page = data.pages.get_mut(&id).ok_or(SimError::NoSuchPage(id))?;
        page.status = status;
        Ok(())
    }

    /// Deletes `id` while a listing is under way: just before the next v1
    /// `GET .../content` request for a later page (`start > 0`) is answered.
    /// With offset paging every item after `id` then moves one place up, so
    /// the item at the page boundary is never listed, as happens on Data
    /// Center when content is deleted during a listing.
    pub fn delete_during_listing(&self, id: u64) {
        *lock(&self.state.delete_mid_listing) = Some(id);
    }

    /// Makes direct lookups of `id` (v2 `GET /folders/{id}` and the like,
    /// v1 `GET .../content/{id}`) answer 404, as Confluence does when the
    /// caller may not view an item; listings are unchanged.
    pub fn hide_from_lookups(&self, id: u64) {
        lock(&self.state.hidden).insert(id);
    }

    /// Sets or clears a view restriction. Like Confluence, this does not
    /// change the page's version.
    pub fn set_restricted(&self, id: u64, restricted: bool) -> Result<(), SimError> {
        let mut data = write(&self.state.data);
        let page = data.pages.get_mut(&id).ok_or(SimError::NoSuchPage(id))?;
        page.restricted = restricted;
        Ok(())
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Serves `app` on `listener`, counting the connections it accepts in
/// `state`'s stats.
fn spawn_server<L>(
    listener: L,
    app: axum::Router,
    mut signal: watch::Receiver<bool>,
    state: Arc<State>,
) -> tokio::task::JoinHandle<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let counted = axum::serve::ListenerExt::tap_io(listener, move |_| {
        lock(&state.stats).connections += 1;
    });
    tokio::spawn(async move {
        let serve = axum::serve(counted, app).with_graceful_shutdown(async move {
            let _ = signal.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "simulator server stopped");
        }
    })
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Graceful shutdown finishes in the background; hanging requests
        // watch the same signal and end at once.
        let _ = self.stop.send(true);
    }
}
