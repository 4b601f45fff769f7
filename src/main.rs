//! The operator binary: reconcilers, stores and the search API in one process.

use anyhow::Context as _;
use clap::Parser;
use confluence_operator::controller::{self, Context, Settings};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::telemetry::{self, LogFormat, Metrics};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Syncs Confluence spaces into permission-aware knowledge stores"
)]
struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,

    /// Sync interval when neither site nor space sets one (Go duration).
    #[arg(long, env = "DEFAULT_SYNC_INTERVAL", default_value = "24h")]
    default_sync_interval: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init_logging(args.log_format);

    let interval = confluence_operator::api::duration::parse(&args.default_sync_interval)
        .context("--default-sync-interval")?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster config or KUBECONFIG)")?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(MemoryStore::new())];
    let settings = Settings {
        default_sync_interval: interval,
        ..Settings::default()
    };
    let ctx = Context::new(
        client,
        stores,
        Arc::new(controller::ClientFactory),
        metrics,
        settings,
    );
    tracing::info!(namespace = ?args.namespace, "confluence-operator starting");
    controller::run(ctx, args.namespace).await;
    tracing::info!("confluence-operator stopped");
    Ok(())
}
