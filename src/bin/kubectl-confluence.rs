//! `kubectl confluence`: a kubectl plugin for the people who connect spaces.
//!
//!   kubectl confluence spaces SITE [-n NS] [--query TEXT]   which spaces can be connected
//!   kubectl confluence resync (space|site) NAME [-n NS]      sync now and wait for the result
//!
//! Install by putting the binary on PATH; kubectl finds `kubectl-confluence`.

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use confluence_operator::api::{ConfluenceSite, ConfluenceSpace, RESYNC_ANNOTATION};
use confluence_operator::controller::credentials;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl confluence",
    version,
    about = "Work with Confluence sites and spaces"
)]
struct Cli {
    /// Namespace of the site or space (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the spaces a site's credentials can see (personal spaces excluded).
    Spaces {
        /// ConfluenceSite name.
        site: String,
        /// Only spaces whose key or name contains this text.
        #[arg(long)]
        query: Option<String>,
    },
    /// Request an immediate sync (sets the resync annotation) and wait for it.
    Resync {
        kind: Kind,
        name: String,
        /// How long to wait for the sync to be handled (0: do not wait).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Space,
    Site,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    confluence_operator::api::duration::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = confluence_operator::kubeclient::connect()
        .await
        .context("connecting to Kubernetes")?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    match cli.command {
        Command::Spaces { site, query } => spaces(client, &namespace, &site, query).await,
        Command::Resync {
            kind,
            name,
            timeout,
        } => resync(client, &namespace, kind, &name, timeout).await,
    }
}

async fn spaces(
    client: Client,
    namespace: &str,
    site: &str,
    query: Option<String>,
) -> anyhow::Result<()> {
    let sites: Api<ConfluenceSite> = Api::namespaced(client.clone(), namespace);
    let Some(site) = sites.get_opt(site).await? else {
        bail!("ConfluenceSite {site:?} not found in namespace {namespace:?}");
    };
    let config = credentials::site_config(&client, &site).await?;
    let source = confluence_operator::confluence::connect(config)?;
    let mut found = source.spaces(query.as_deref()).await?;
    found.sort_by(|a, b| a.key.cmp(&b.key));
    println!("{:<12} {:<36} URL", "KEY", "NAME");
    for s in found {
        println!("{:<12} {:<36} {}", s.key, s.name, s.url);
    }
    Ok(())
}

async fn resync(
    client: Client,
    namespace: &str,
    kind: Kind,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let token = jiff::Timestamp::now().to_string();
    let patch = Patch::Merge(json!({"metadata": {"annotations": {RESYNC_ANNOTATION: token}}}));
    let started = Instant::now();
    match kind {
        Kind::Space => {
            let api: Api<ConfluenceSpace> = Api::namespaced(client, namespace);
            api.patch(name, &PatchParams::default(), &patch).await?;
            println!("resync requested for confluencespace/{name}");
            while !timeout.is_zero() {
                let status = api.get(name).await?.status.unwrap_or_default();
                if status.phase == Some(confluence_operator::api::space::SyncPhase::Suspended) {
                    bail!(
                        "confluencespace/{name} is suspended (spec.suspend or its site's); it will not sync"
                    );
                }
                let handled = status.last_handled_resync_at.as_deref() == Some(token.as_str());
                let finished =
                    status.phase != Some(confluence_operator::api::space::SyncPhase::Syncing);
                if handled && finished {
                    let result = status.last_sync_result.unwrap_or_default();
                    println!("{}: {}", result.result, result.message);
                    if result.result != confluence_operator::api::Outcome::Succeeded {
                        bail!("sync failed");
                    }
                    return Ok(());
                }
                if started.elapsed() > timeout {
                    bail!("timed out after {timeout:?} waiting for the sync");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Kind::Site => {
            let api: Api<ConfluenceSite> = Api::namespaced(client, namespace);
            api.patch(name, &PatchParams::default(), &patch).await?;
            println!("resync requested for confluencesite/{name} and its spaces");
        }
    }
    Ok(())
}
