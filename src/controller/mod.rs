//! Reconcilers for ConfluenceSite and ConfluenceSpace.

pub mod binding;
pub mod credentials;
pub mod events;
pub mod failure;
pub mod schedule;
pub mod site;
pub mod sources;
pub mod space;
pub mod written;

use crate::api::conditions::Reason;
use crate::api::{ConfluenceSite, ConfluenceSpace};
use crate::reflect::WatchBackoff;
use crate::store::Store;
use crate::telemetry::Metrics;
use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use sources::{ClientFactory, SourceCache, SourceFactory};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("removing content from stores: {0}")]
    Purge(#[from] crate::sync::SyncError),
}

/// Default of [`Settings::max_concurrent_syncs`] (`--max-concurrent-syncs`).
pub const DEFAULT_MAX_CONCURRENT_SYNCS: u16 = 8;

/// Tunables, set from operator flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interval when neither site nor space sets one.
    pub default_sync_interval: Duration,
    /// Fraction of the interval added as per-object jitter.
    pub jitter: f64,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How often a healthy site's connection is re-checked.
    pub site_check_interval: Duration,
    pub batch_size: usize,
    /// Spaces reconciled (and so synced) at once; 0 means no bound. Each
    /// sync holds its listing and a few groups of pages, so this bounds
    /// memory, and a slow space holds one slot while the others go on.
    pub max_concurrent_syncs: u16,
    /// Deadline of one request to Confluence, body included.
    pub request_timeout: Duration,
    /// Name in Events and the field manager.
    pub controller_name: String,
    pub instance: String,
    /// Set when a store was found damaged at start-up and starts empty: told
    /// once to every space (a Warning Event `IndexRebuilt`), each of which
    /// then resyncs.
    pub store_rebuilt: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_sync_interval: Duration::from_secs(24 * 3600),
            jitter: 0.1,
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            site_check_interval: Duration::from_secs(3600),
            batch_size: crate::sync::DEFAULT_BATCH_SIZE,
            max_concurrent_syncs: DEFAULT_MAX_CONCURRENT_SYNCS,
            request_timeout: crate::confluence::DEFAULT_REQUEST_TIMEOUT,
            controller_name: "confluence-operator".into(),
            instance: default_instance(),
            store_rebuilt: None,
        }
    }
}

/// The pod name in a cluster; host and pid out of cluster, so two local
/// processes never share a leader-election identity.
fn default_instance() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}-{}", std::process::id())
    })
}

/// Shared state of both reconcilers.
pub struct Context {
    pub client: Client,
    pub stores: Vec<Arc<dyn Store>>,
    pub sources: SourceCache,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    recorder: events::EventRecorder,
    failures: Mutex<HashMap<String, (u32, Timestamp)>>,
    /// Spaces already told about `settings.store_rebuilt`.
    told_rebuilt: Mutex<std::collections::HashSet<String>>,
    /// This process's latest write to each space.
    pub written: written::Written,
}

impl Context {
    pub fn new(
        client: Client,
        stores: Vec<Arc<dyn Store>>,
        factory: Arc<dyn SourceFactory>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Arc<Self> {
        let recorder = events::EventRecorder::new(
            client.clone(),
            settings.controller_name.clone(),
            settings.instance.clone(),
        );
        Arc::new(Self {
            client,
            stores,
            sources: SourceCache::new(factory),
            metrics,
            settings,
            recorder,
            failures: Mutex::new(HashMap::new()),
            told_rebuilt: Mutex::new(std::collections::HashSet::new()),
            written: written::Written::default(),
        })
    }

    /// Publishes an Event; failures to do so are logged, never fatal.
    pub async fn event<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: Reason,
        action: events::EventAction,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let note = truncate(&note, 1000);
        let reason = reason.as_str();
        let ev = events::Note {
            type_,
            reason,
            action: action.as_str(),
            note: &note,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Records a failure and returns when to retry.
    pub fn record_failure(&self, key: &str) -> (Duration, Timestamp) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.get(key).map_or(0, |(n, _)| *n);
        let delay = schedule::backoff(count, self.settings.min_backoff, self.settings.max_backoff);
        let at = Timestamp::now()
            .checked_add(delay)
            .unwrap_or_else(|_| Timestamp::now());
        map.insert(key.to_string(), (count + 1, at));
        (delay, at)
    }

    /// What both reconcilers do when a reconcile returns an error: log,
    /// count, and retry with the object's backoff.
    pub fn backoff_after_error(&self, kind: &str, key: &str, err: &Error) -> Action {
        tracing::warn!(object = key, error = %err, "reconcile failed");
        self.metrics
            .reconcile_errors
            .get_or_create(&crate::telemetry::KindLabels { kind: kind.into() })
            .inc();
        let (delay, _) = self.record_failure(key);
        Action::requeue(delay.max(Duration::from_secs(1)))
    }

    pub fn retry_at(&self, key: &str) -> Option<Timestamp> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).map(|(_, at)| *at)
    }

    /// The rebuilt-store notice, the first time it is asked for `key` only.
    pub fn rebuilt_notice_once(&self, key: &str) -> Option<&str> {
        let notice = self.settings.store_rebuilt.as_deref()?;
        let mut told = self.told_rebuilt.lock().unwrap_or_else(|p| p.into_inner());
        told.insert(key.to_string()).then_some(notice)
    }

    pub fn clear_failures(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Writes `status` with a merge patch, skipping the call when the object
/// already carries exactly this status (our own writes trigger reconciles).
/// Returns the object as written, if it was.
pub async fn patch_status<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    status: &S,
) -> Result<Option<K>, Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    let written = api
        .patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await?;
    Ok(Some(written))
}

/// Key for per-object bookkeeping.
pub fn object_key<K: Resource>(kind: &str, obj: &K) -> String {
    format!(
        "{kind}/{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Runs both controllers until shutdown (SIGTERM/SIGINT) or until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let (sites, spaces): (Api<ConfluenceSite>, Api<ConfluenceSpace>) = match &namespace {
        Some(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
        ),
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
    };
    let wc = watcher::Config::default();

    let site_controller = Controller::new(sites.clone(), wc.clone())
        .trigger_backoff(WatchBackoff::default())
        .shutdown_on_signal()
        .run(site::reconcile, site::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "site reconcile loop");
            }
        });

    // The spaces' own watch, kept here rather than by `Controller::new`: its
    // objects are stored without managedFields (most of an object's memory
    // with thousands of spaces), and a `410 Gone` lists again at once.
    let (space_store, space_writer) = kube::runtime::reflector::store();
    let space_objects = kube::runtime::reflector::reflector(
        space_writer,
        crate::reflect::watch_lean(spaces, wc.clone()),
    )
    .applied_objects();
    let space_controller = Controller::for_stream(space_objects, space_store)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(ctx.settings.max_concurrent_syncs),
        )
        .trigger_backoff(WatchBackoff::default());
    let space_store = space_controller.store();
    let space_controller = space_controller
        // A site change (resync annotation, suspend, credentials ref) fans out to its spaces.
        .watches(sites, wc, move |site: ConfluenceSite| {
            let ns = site.namespace();
            let name = site.name_any();
            space_store
                .state()
                .into_iter()
                .filter(|s| s.namespace() == ns && s.spec.site_ref.name == name)
                .map(|s| ObjectRef::from(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(space::reconcile, space::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "space reconcile loop");
            }
        });

    tokio::join!(site_controller, space_controller);
}
