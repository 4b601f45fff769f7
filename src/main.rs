//! The operator binary: reconcilers, stores and the search API in one process.

use anyhow::Context as _;
use clap::Parser;
use confluence_operator::controller::{self, Context, Settings};
use confluence_operator::leader::LeaderElector;
use confluence_operator::server::{self, ApiMetrics, AppState};
use confluence_operator::stores::{self, StoreKind, StoreOptions};
use confluence_operator::telemetry::{self, LogFormat, Metrics};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

    /// Stores every space writes to: embedded, memory, zendesk (comma-separated).
    #[arg(long, env = "STORES", default_value = "embedded", value_parser = stores::parse_kinds)]
    stores: std::vec::Vec<StoreKind>,

    /// Directory of the embedded index and the Zendesk sink's state.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    data_dir: PathBuf,

    /// Zendesk sink configuration (JSON: url, locale, sourceName, typeName,
    /// segmentMap, everyoneSegmentId). Credentials come from ZENDESK_EMAIL and
    /// ZENDESK_API_TOKEN.
    #[arg(long, env = "ZENDESK_CONFIG")]
    zendesk_config: Option<PathBuf>,

    /// Address of the search API, health and metrics endpoints.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Run controllers only while holding a Lease, so replicas never reconcile twice.
    #[arg(long, env = "LEADER_ELECTION")]
    leader_election: bool,

    #[arg(long, env = "LEADER_ELECTION_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,

    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE",
        default_value = "confluence-operator"
    )]
    leader_election_lease: String,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init_logging(args.log_format);
    if let Err(e) = run(args).await {
        tracing::error!(error = format!("{e:#}"), "confluence-operator failed");
        return Err(e);
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let interval = confluence_operator::api::duration::parse(&args.default_sync_interval)
        .context("--default-sync-interval")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating --data-dir {}", args.data_dir.display()))?;
    let stores = stores::open(StoreOptions {
        kinds: &args.stores,
        data_dir: &args.data_dir,
        zendesk_config: args.zendesk_config.as_deref(),
        zendesk_email: std::env::var("ZENDESK_EMAIL").ok(),
        zendesk_token: std::env::var("ZENDESK_API_TOKEN").ok(),
    })?;

    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster config or KUBECONFIG)")?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let api_metrics = ApiMetrics::register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState::new(
        stores.search.clone(),
        Arc::new(registry),
        api_metrics,
        ready.clone(),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "search API listening");
    let http = tokio::spawn(async move { axum::serve(listener, server::router(state)).await });

    let settings = Settings {
        default_sync_interval: interval,
        ..Settings::default()
    };
    let identity = settings.instance.clone();
    let ctx = Context::new(
        client.clone(),
        stores.writers,
        Arc::new(controller::ClientFactory),
        metrics,
        settings,
    );
    // The index answers queries as soon as it is open.
    ready.store(true, Ordering::SeqCst);

    let elector = args.leader_election.then(|| {
        LeaderElector::new(
            client,
            &args.leader_election_namespace,
            &args.leader_election_lease,
            &identity,
        )
    });
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    if let Some(elector) = &elector {
        tokio::select! {
            res = elector.acquire() => res?,
            () = &mut shutdown => {
                tracing::info!("shutting down before becoming leader");
                return Ok(());
            }
        }
    }
    tracing::info!(namespace = ?args.namespace, stores = ?args.stores, "controllers starting");
    let controllers = controller::run(ctx, args.namespace);
    tokio::select! {
        () = controllers => tracing::info!("controllers stopped"),
        lost = async {
            match &elector {
                Some(e) => e.hold().await,
                None => std::future::pending().await,
            }
        } => return Err(anyhow::Error::new(lost).context("leadership lost; exiting so a standby takes over")),
        res = http => {
            res.context("search API task")?.context("search API server")?;
        }
        () = &mut shutdown => {
            tracing::info!("shutting down");
            if let Some(elector) = &elector
                && let Err(e) = elector.release().await
            {
                tracing::warn!(error = %e, "could not release the leader Lease; it expires on its own");
            }
        }
    }
    Ok(())
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C. As PID 1 of its container
/// the operator gets no default action for SIGTERM: without this, deleting or
/// rolling its pod would wait out the whole termination grace period.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
