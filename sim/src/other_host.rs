//! A second origin for redirect tests: it answers every request with an
//! empty listing (`200 {"results": []}`, which a client that followed a
//! redirect would take for an emptied space) and records whether each
//! request carried credentials.

use super::{SimError, lock};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One request the other host received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub path: String,
    /// The request had an `Authorization` header.
    pub authorization: bool,
    /// The request had a `Cookie` header.
    pub cookie: bool,
}

type Seen = Arc<Mutex<Vec<Visit>>>;

/// A running other host. Dropping it stops the server.
pub struct OtherHost {
    addr: SocketAddr,
    seen: Seen,
    stop: watch::Sender<bool>,
}

impl OtherHost {
    /// Listens on 127.0.0.2 (another host on the loopback network), or on
    /// another port of 127.0.0.1 (still another origin) where 127.0.0.2 is
    /// not routed.
    pub async fn start() -> Result<OtherHost, SimError> {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.2", 0)).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| SimError::Io(format!("binding the other host: {e}")))?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| SimError::Io(e.to_string()))?;
        let seen: Seen = Arc::default();
        let app = Router::new().fallback(visit).with_state(seen.clone());
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(OtherHost { addr, seen, stop })
    }

    /// `http://127.0.0.2:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn visits(&self) -> Vec<Visit> {
        lock(&self.seen).clone()
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn visit(State(seen): State<Seen>, req: Request) -> Response {
    lock(&seen).push(Visit {
        path: req.uri().path().to_string(),
        authorization: req.headers().contains_key(header::AUTHORIZATION),
        cookie: req.headers().contains_key(header::COOKIE),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"results": [], "_links": {}}"#,
    )
        .into_response()
}
