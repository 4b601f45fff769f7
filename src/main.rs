//! The operator binary: reconcilers, stores and the search API in one process.

use anyhow::Context as _;
use clap::Parser;
use confluence_operator::api::duration;
use confluence_operator::auth::{
    self, AuthMode, Authenticator, BindingIndex, CachingVerifier, OidcConfig, OidcVerifier,
    TokenReviewVerifier, Verifier,
};
use confluence_operator::controller::{self, Context, Settings};
use confluence_operator::leader::LeaderElector;
use confluence_operator::server::spaces::SpaceIndex;
use confluence_operator::server::{self, ApiMetrics, AppState};
use confluence_operator::store::integrity;
use confluence_operator::store::opensearch::{OpenSearchAuth, OpenSearchConfig};
use confluence_operator::store::select::{self as stores, StoreKind, StoreOptions};
use confluence_operator::telemetry::{self, LogFormat, Metrics};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    #[arg(long, env = "DEFAULT_SYNC_INTERVAL", default_value = "24h", value_parser = duration::parse)]
    default_sync_interval: Duration,

    /// Spaces synced at once (0: no bound). Bounds memory with many spaces;
    /// a slow space holds one slot while the others go on.
    #[arg(long, env = "MAX_CONCURRENT_SYNCS", default_value_t = controller::DEFAULT_MAX_CONCURRENT_SYNCS)]
    max_concurrent_syncs: u16,

    /// Deadline of one request to Confluence, body included (Go duration).
    /// A server that stops or trickles mid-answer fails the request then
    /// (retried with backoff).
    #[arg(long, env = "CONFLUENCE_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    confluence_request_timeout: Duration,

    /// Stores every space writes to: embedded, opensearch, memory, zendesk (comma-separated).
    #[arg(long, env = "STORES", default_value = "embedded", value_parser = stores::parse_kinds)]
    stores: std::vec::Vec<StoreKind>,

    /// The store the search API reads (default: opensearch when listed, else embedded).
    #[arg(long, env = "SEARCH_STORE", value_parser = stores::parse_kind)]
    search_store: Option<StoreKind>,

    /// OpenSearch URL for the opensearch store. Credentials come from
    /// OPENSEARCH_USERNAME + OPENSEARCH_PASSWORD or OPENSEARCH_API_KEY.
    #[arg(long, env = "OPENSEARCH_URL")]
    opensearch_url: Option<url::Url>,

    /// Alias the opensearch store reads and writes through (indices are `<alias>-v<N>`).
    #[arg(long, env = "OPENSEARCH_INDEX", default_value = "confluence")]
    opensearch_index: String,

    /// PEM bundle of CAs to trust for OpenSearch, in addition to the system roots.
    #[arg(long, env = "OPENSEARCH_CA_FILE")]
    opensearch_ca_file: Option<PathBuf>,

    /// Directory of the embedded index and the Zendesk sink's state.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    data_dir: PathBuf,

    /// Documents the embedded index stages before it commits (it also commits
    /// by size and after a second). Lower means smaller, more frequent
    /// commits; the default suits bulk loads.
    #[arg(long, env = "INDEX_COMMIT_DOCS", value_parser = clap::value_parser!(u64).range(1..))]
    index_commit_docs: Option<u64>,

    /// How often the embedded index's files are checked against their
    /// checksums while the operator runs (each check reads the whole index).
    /// Damage makes the operator exit, and its restart rebuilds the index from
    /// Confluence. `0s` turns the check off (it still runs at start-up). An
    /// index that can take no more writes (its files removed under the
    /// process) makes the operator exit at once, whatever this is.
    #[arg(long, env = "INDEX_CHECK_INTERVAL", default_value = "1h", value_parser = duration::parse)]
    index_check_interval: Duration,

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

    /// How callers of the search API and /mcp authenticate: kubernetes
    /// (TokenReview), oidc, trusted-header (gateway headers, on
    /// --trusted-header-listen only) or none (believe `segments=`; local
    /// development only).
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "kubernetes")]
    auth: AuthMode,

    /// Audience bearer tokens must be issued for (TokenReview audience, OIDC `aud`).
    #[arg(long, env = "AUTH_AUDIENCE", default_value = "confluence-operator")]
    auth_audience: String,

    /// How long an accepted token is remembered (Go duration; never beyond its `exp`).
    #[arg(long, env = "AUTH_CACHE_TTL", default_value = "60s", value_parser = duration::parse)]
    auth_cache_ttl: Duration,

    /// OIDC issuer (`iss`), e.g. https://login.example.com. Required with --auth=oidc.
    #[arg(long, env = "OIDC_ISSUER_URL")]
    oidc_issuer_url: Option<url::Url>,

    /// OIDC key set; default: the issuer's discovery document's `jwks_uri`.
    #[arg(long, env = "OIDC_JWKS_URL")]
    oidc_jwks_url: Option<url::Url>,

    #[arg(long, env = "OIDC_USERNAME_CLAIM", default_value = "sub")]
    oidc_username_claim: String,

    #[arg(long, env = "OIDC_GROUPS_CLAIM", default_value = "groups")]
    oidc_groups_claim: String,

    /// With --auth=trusted-header: the listener for the authenticating
    /// gateway, the only one that believes X-Remote-User / X-Remote-Group.
    /// Expose it to the gateway alone.
    #[arg(long, env = "TRUSTED_HEADER_LISTEN")]
    trusted_header_listen: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

/// The OpenSearch connection from flags and the environment (secrets only
/// from the environment, which the chart fills from a Secret).
fn opensearch_config(args: &Args) -> anyhow::Result<Option<OpenSearchConfig>> {
    let Some(url) = args.opensearch_url.clone() else {
        return Ok(None);
    };
    let mut config = OpenSearchConfig::new(url, args.opensearch_index.clone());
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    config.auth = match (
        env("OPENSEARCH_API_KEY"),
        env("OPENSEARCH_USERNAME"),
        env("OPENSEARCH_PASSWORD"),
    ) {
        (Some(key), None, None) => OpenSearchAuth::ApiKey(key),
        (None, Some(username), Some(password)) => OpenSearchAuth::Basic { username, password },
        (None, None, None) => OpenSearchAuth::None,
        _ => anyhow::bail!(
            "OpenSearch credentials: set OPENSEARCH_API_KEY, or OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD, not a mix"
        ),
    };
    if let Some(path) = &args.opensearch_ca_file {
        config.ca_bundle_pem = Some(
            std::fs::read(path)
                .with_context(|| format!("reading --opensearch-ca-file {}", path.display()))?,
        );
    }
    Ok(Some(config))
}

fn main() -> anyhow::Result<()> {
    confluence_operator::allocator::tune();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async_main())
}

async fn async_main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init_logging(args.log_format);
    tokio::spawn(confluence_operator::allocator::trim_periodically(
        confluence_operator::allocator::TRIM_EVERY,
    ));
    // Every site's client starts from the system's roots: read them beside
    // the start-up work, so that no first sync waits for them.
    tokio::task::spawn_blocking(|| confluence_operator::confluence::tls::system_roots().len());
    if let Err(e) = run(args).await {
        tracing::error!(error = format!("{e:#}"), "confluence-operator failed");
        return Err(e);
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating --data-dir {}", args.data_dir.display()))?;
    let stores = stores::open(StoreOptions {
        kinds: &args.stores,
        search_store: args.search_store,
        data_dir: &args.data_dir,
        index_commit_docs: args.index_commit_docs.map(|n| n as usize),
        opensearch: opensearch_config(&args)?,
        zendesk_config: args.zendesk_config.as_deref(),
        zendesk_email: std::env::var("ZENDESK_EMAIL").ok(),
        zendesk_token: std::env::var("ZENDESK_API_TOKEN").ok(),
    })
    .await?;

    let client = confluence_operator::kubeclient::connect()
        .await
        .context("connecting to Kubernetes")?;
    let (auth, gateway_auth) = authenticators(&args, &client).await?;
    let (spaces, watch_spaces) = SpaceIndex::watch(client.clone(), args.namespace.as_deref());
    tokio::spawn(watch_spaces);

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let api_metrics = ApiMetrics::register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState::new(
        stores.search.clone(),
        Arc::new(registry),
        api_metrics,
        ready.clone(),
    )
    .with_spaces(Arc::new(spaces));
    let gateway = match (gateway_auth, args.trusted_header_listen) {
        (Some(gateway_auth), Some(addr)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            tracing::info!(listen = %addr, "gateway listener (trusted headers) listening");
            let router = server::router(state.clone().with_auth(gateway_auth));
            Some(tokio::spawn(
                async move { axum::serve(listener, router).await },
            ))
        }
        _ => None,
    };
    let state = state.with_auth(auth);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "search API listening");
    let http = tokio::spawn(async move { axum::serve(listener, server::router(state)).await });

    let settings = Settings {
        default_sync_interval: args.default_sync_interval,
        max_concurrent_syncs: args.max_concurrent_syncs,
        request_timeout: args.confluence_request_timeout,
        store_rebuilt: stores.rebuilt.clone(),
        ..Settings::default()
    };
    let identity = settings.instance.clone();
    let opensearch = stores.opensearch.clone();
    let index_trouble = stores.embedded.clone();
    let ctx = Context::new(
        client.clone(),
        stores.writers,
        Arc::new(controller::ClientFactory),
        metrics,
        settings,
    );
    // The index answers queries as soon as it is open.
    ready.store(true, Ordering::SeqCst);

    let client_for_bindings = client.clone();
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
    // Only the leader writes, so only the leader moves the index to a new
    // mapping (followers keep answering from the alias meanwhile). It runs
    // beside `hold` so the Lease is renewed during a long reindex.
    let namespace = args.namespace;
    let stores_in_use = args.stores.clone();
    let work = async move {
        if let Some(store) = &opensearch {
            let migration = store
                .migrate()
                .await
                .context("migrating the OpenSearch index")?;
            tracing::info!(?migration, "OpenSearch index ready");
        }
        tracing::info!(?namespace, stores = ?stores_in_use, "controllers starting");
        tokio::join!(
            controller::run(ctx, namespace),
            controller::binding::run(client_for_bindings)
        );
        anyhow::Ok(())
    };
    tokio::select! {
        res = work => {
            // The controllers stop by themselves on SIGTERM, often before the
            // shutdown branch below is polled: the Lease must be released here
            // too, or a standby waits for it to expire instead of taking over.
            release_lease(elector.as_ref()).await;
            res?;
            tracing::info!("controllers stopped");
        }
        lost = async {
            match &elector {
                Some(e) => e.hold().await,
                None => std::future::pending().await,
            }
        } => return Err(anyhow::Error::new(lost).context("leadership lost; exiting so a standby takes over")),
        res = http => {
            res.context("search API task")?.context("search API server")?;
        }
        res = async {
            match gateway {
                Some(task) => task.await,
                None => std::future::pending().await,
            }
        } => {
            res.context("gateway listener task")?.context("gateway listener")?;
        }
        trouble = async {
            match index_trouble {
                Some(store) => integrity::wait_for_trouble(store, args.index_check_interval).await,
                None => std::future::pending().await,
            }
        } => {
            return Err(anyhow::anyhow!("{trouble}"));
        }
        () = &mut shutdown => {
            tracing::info!("shutting down");
            release_lease(elector.as_ref()).await;
        }
    }
    Ok(())
}

/// Frees the leader Lease on the way out, so a standby takes over at once
/// instead of when the Lease expires.
async fn release_lease(elector: Option<&LeaderElector>) {
    if let Some(elector) = elector
        && let Err(e) = elector.release().await
    {
        tracing::warn!(error = %e, "could not release the leader Lease; it expires on its own");
    }
}

/// The authenticator of the main listener and, in `trusted-header` mode,
/// of the gateway listener.
async fn authenticators(
    args: &Args,
    client: &kube::Client,
) -> anyhow::Result<(Authenticator, Option<Authenticator>)> {
    if args.auth != AuthMode::TrustedHeader && args.trusted_header_listen.is_some() {
        anyhow::bail!("--trusted-header-listen is only used with --auth=trusted-header");
    }
    let verifier: Arc<dyn Verifier> = match args.auth {
        AuthMode::None => {
            tracing::warn!(
                "--auth=none: the search API and /mcp believe the caller's `segments=`; \
                 anyone who can reach them can read every space. Local development only."
            );
            return Ok((Authenticator::none(), None));
        }
        AuthMode::TrustedHeader => {
            if args.trusted_header_listen.is_none() {
                anyhow::bail!("--auth=trusted-header needs --trusted-header-listen");
            }
            tracing::info!("trusted-header mode: the main listener serves anonymous callers only");
            return Ok((
                Authenticator::anonymous_only(),
                Some(Authenticator::trusted_headers(bindings(client).await)),
            ));
        }
        AuthMode::Kubernetes => Arc::new(TokenReviewVerifier::new(
            client.clone(),
            args.auth_audience.clone(),
        )),
        AuthMode::Oidc => {
            let issuer = args
                .oidc_issuer_url
                .clone()
                .context("--auth=oidc needs --oidc-issuer-url")?;
            Arc::new(OidcVerifier::new(OidcConfig {
                issuer,
                audience: args.auth_audience.clone(),
                jwks_url: args.oidc_jwks_url.clone(),
                username_claim: args.oidc_username_claim.clone(),
                groups_claim: args.oidc_groups_claim.clone(),
            })?)
        }
    };
    let cached = Arc::new(CachingVerifier::new(
        verifier,
        args.auth_cache_ttl,
        auth::cache::REFUSED_TTL,
    ));
    Ok((Authenticator::bearer(cached, bindings(client).await), None))
}

/// The ViewerBinding watch, started and given a short while to list
/// everything: until it has, callers hold fewer segments, never more.
async fn bindings(client: &kube::Client) -> Arc<BindingIndex> {
    let (index, watch) = BindingIndex::watch(client.clone());
    tokio::spawn(watch);
    if tokio::time::timeout(Duration::from_secs(30), index.ready())
        .await
        .is_err()
    {
        tracing::warn!(
            "ViewerBindings not listed after 30s (is the CRD installed?); \
             callers get signed-in-users only until they are"
        );
    }
    Arc::new(index)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("confluence-operator").chain(args.iter().copied()))
    }

    #[test]
    fn flags_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn duration_flags_take_go_durations() {
        let args = parse(&[
            "--default-sync-interval=1h30m",
            "--confluence-request-timeout=250ms",
            "--index-check-interval=0s",
            "--auth-cache-ttl=1.5m",
        ])
        .unwrap();
        assert_eq!(args.default_sync_interval, Duration::from_secs(5_400));
        assert_eq!(args.confluence_request_timeout, Duration::from_millis(250));
        assert_eq!(args.index_check_interval, Duration::ZERO);
        assert_eq!(args.auth_cache_ttl, Duration::from_secs(90));
    }

    #[test]
    fn duration_flags_refuse_what_the_parser_refuses() {
        for bad in ["10", "10d", "-5m", ""] {
            let err = parse(&[&format!("--default-sync-interval={bad}")])
                .err()
                .unwrap_or_else(|| panic!("{bad:?} should be refused"));
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn duration_defaults() {
        let env = [
            "DEFAULT_SYNC_INTERVAL",
            "CONFLUENCE_REQUEST_TIMEOUT",
            "INDEX_CHECK_INTERVAL",
            "AUTH_CACHE_TTL",
        ];
        // The environment of the test run may set them.
        if env.iter().any(|name| std::env::var_os(name).is_some()) {
            return;
        }
        let args = parse(&[]).unwrap();
        assert_eq!(args.default_sync_interval, Duration::from_secs(86_400));
        assert_eq!(args.confluence_request_timeout, Duration::from_secs(30));
        assert_eq!(args.index_check_interval, Duration::from_secs(3_600));
        assert_eq!(args.auth_cache_ttl, Duration::from_secs(60));
    }
}
