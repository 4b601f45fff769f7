//! Structured logging and Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides the default level.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,kube_runtime=warn,tantivy=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Ignore the error of a second init (tests call this repeatedly).
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpaceLabels {
    pub namespace: String,
    pub space: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    pub namespace: String,
    pub space: String,
    /// `success` or `failure`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// The operator's own metrics.
pub struct Metrics {
    pub syncs: Family<SyncLabels, Counter>,
    pub sync_duration: Histogram,
    pub items: Family<SpaceLabels, Gauge>,
    pub pages_fetched: Counter,
    pub pages_deleted: Counter,
    pub reconcile_errors: Family<KindLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them under the `confluence` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            syncs: Family::default(),
            sync_duration: Histogram::new(exponential_buckets(0.05, 2.0, 16)),
            items: Family::default(),
            pages_fetched: Counter::default(),
            pages_deleted: Counter::default(),
            reconcile_errors: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("confluence");
        r.register("space_syncs", "Space syncs by result", m.syncs.clone());
        r.register(
            "space_sync_duration_seconds",
            "Duration of space syncs",
            m.sync_duration.clone(),
        );
        r.register(
            "space_items",
            "Items currently synced per space",
            m.items.clone(),
        );
        r.register(
            "pages_fetched",
            "Page bodies fetched from Confluence",
            m.pages_fetched.clone(),
        );
        r.register(
            "pages_deleted",
            "Pages removed from stores because Confluence no longer lists them",
            m.pages_deleted.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconcile errors by kind",
            m.reconcile_errors.clone(),
        );
        m
    }
}
