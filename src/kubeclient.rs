//! The Kubernetes API client: kube's, with TCP_NODELAY on its sockets.
//!
//! kube 5 opens its connections with Nagle's algorithm on
//! (kube-rs/kube#2056). On a kept-alive connection, a request that leaves in
//! more than one segment (a TLS flight, a body after its headers) then waits
//! for the API server's delayed ACK, about 40 ms, before its last segment is
//! sent. Here that showed as a 40–50 ms stall in one sync in two, before the
//! first Confluence request; with TCP_NODELAY it is gone.
//!
//! The service stack is kube's own (base URI, retries of 429/503/504,
//! authentication, extra headers) minus its request tracing; behind a proxy
//! kube builds the client itself, Nagle's algorithm included.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG): {0}")]
    Config(#[from] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// A client for the cluster that `KUBECONFIG` or the pod's service account names.
pub async fn connect() -> Result<kube::Client, Error> {
    let config = kube::Config::infer().await?;
    Ok(client(config)?)
}

/// A client for `config`.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config);
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let tls = config.rustls_https_connector_with_connector(tcp)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}
