//! Runs the Confluence simulator (both Cloud and Data Center APIs) on one port.
//!
//! `confluence-sim --listen 127.0.0.1:8090 --spaces 3 --pages 200 --seed 42`

use clap::Parser;
use confluence_sim::{FaultConfig, SimConfig, Simulator};
use std::net::SocketAddr;

#[derive(Debug, Parser)]
#[command(about = "Confluence Cloud + Data Center REST simulator")]
struct Args {
    /// Address to listen on (loopback only is recommended).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Global spaces to generate (a personal space `~alice` is always added).
    #[arg(long, default_value_t = 3)]
    spaces: usize,
    /// Pages per space.
    #[arg(long, default_value_t = 200)]
    pages: usize,
    /// Blog posts per space.
    #[arg(long, default_value_t = 3)]
    blogposts: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Least time each API answer takes from the request's arrival, rendering included.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of API requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Share of API requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// User (email) accepted for HTTP basic auth.
    #[arg(long, env = "SIM_USER", default_value = "demo@example.com")]
    user: String,
    /// Token accepted as the basic-auth password or as a bearer token.
    #[arg(
        long,
        env = "SIM_TOKEN",
        default_value = "demo-token",
        hide_env_values = true
    )]
    token: String,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(confluence_sim::TlsIdentity {
            cert_chain_pem: std::fs::read_to_string(cert)?,
            key_pem: std::fs::read_to_string(key)?,
        }),
        _ => None,
    };
    let sim = Simulator::start(SimConfig {
        listen: args.listen,
        spaces: args.spaces,
        pages: args.pages,
        blogposts: args.blogposts,
        seed: args.seed,
        user: args.user,
        token: args.token,
        faults: FaultConfig {
            latency_ms: args.latency_ms,
            rate_limit_rate: args.rate_limit_rate,
            error_rate: args.error_rate,
            ..FaultConfig::default()
        },
        tls,
        ..SimConfig::default()
    })
    .await?;
    println!("Confluence simulator on {}", sim.base_url());
    println!("  Cloud site:       {}", sim.cloud_site_url());
    println!("  Data Center site: {}", sim.datacenter_site_url());
    println!("  Cloud via gateway: {}", sim.gateway_site_url());
    println!("  Admin API:        {}/_sim/stats", sim.base_url());
    for s in sim.spaces() {
        println!("  space {:<8} {} ({})", s.key, s.name, s.kind);
    }
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
