//! The Confluence client honours HTTPS_PROXY and NO_PROXY, as a cluster
//! behind an egress proxy needs. A tiny CONNECT proxy on loopback counts the
//! tunnels it opens. Its own test binary: it sets process environment.

mod listing_ext;
mod pki;
mod sim_site;

use confluence_operator::confluence::{CaBundle, Flavor, ListOptions, connect};
use confluence_sim::{SimConfig, Simulator};
use listing_ext::ListingExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Tunnels opened, and to where.
#[derive(Default)]
struct Tunnels {
    count: AtomicUsize,
    targets: std::sync::Mutex<Vec<String>>,
}

/// Accepts `CONNECT host:port`, only to loopback targets, then relays bytes.
async fn connect_proxy(tunnels: Arc<Tunnels>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let tunnels = tunnels.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("CONNECT "))
                    .and_then(|l| l.split_whitespace().next())
                    .unwrap_or_default()
                    .to_string();
                let loopback = target
                    .parse::<SocketAddr>()
                    .is_ok_and(|a| a.ip().is_loopback());
                if !loopback {
                    let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
                    return;
                }
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                tunnels.count.fetch_add(1, Ordering::SeqCst);
                tunnels.targets.lock().unwrap().push(target);
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    addr
}

fn set_proxy_env(https_proxy: &str, no_proxy: Option<&str>) {
    // SAFETY: this binary holds one test, which sets the environment before
    // any client reads it; no other thread touches the environment.
    unsafe {
        for v in PROXY_VARS {
            std::env::remove_var(v);
        }
        std::env::set_var("HTTPS_PROXY", https_proxy);
        if let Some(n) = no_proxy {
            std::env::set_var("NO_PROXY", n);
        }
    }
}

#[tokio::test]
async fn https_proxy_is_used_and_no_proxy_bypasses_it() {
    let ca = pki::TestCa::new("Proxy test CA");
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 5,
        blogposts: 0,
        tls: Some(ca.server_identity()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tunnels = Arc::new(Tunnels::default());
    let proxy = connect_proxy(tunnels.clone()).await;
    let bundle = CaBundle::from_pem(ca.pem().as_bytes()).unwrap();

    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        set_proxy_env(&format!("http://{proxy}"), None);
        let before = tunnels.count.load(Ordering::SeqCst);
        let mut config = sim_site::site_config(&sim, flavor);
        config.ca_bundle = Some(bundle.clone());
        let client = connect(config).unwrap();
        let space = client.space("ENG").await.expect("space through the proxy");
        let listed = client.list(&space, &ListOptions::default()).await.unwrap();
        assert!(!listed.is_empty());
        assert!(
            tunnels.count.load(Ordering::SeqCst) > before,
            "{flavor:?}: HTTPS_PROXY was not used"
        );
        assert!(
            tunnels
                .targets
                .lock()
                .unwrap()
                .iter()
                .all(|t| *t == sim.addr().to_string()),
            "tunnels go to the site"
        );

        // NO_PROXY lists the site's host: straight to it, no new tunnel.
        set_proxy_env(&format!("http://{proxy}"), Some("127.0.0.1"));
        let before = tunnels.count.load(Ordering::SeqCst);
        let mut config = sim_site::site_config(&sim, flavor);
        config.ca_bundle = Some(bundle.clone());
        let client = connect(config).unwrap();
        let space = client.space("ENG").await.expect("space without the proxy");
        client.list(&space, &ListOptions::default()).await.unwrap();
        assert_eq!(
            tunnels.count.load(Ordering::SeqCst),
            before,
            "{flavor:?}: NO_PROXY was ignored"
        );
    }
}
