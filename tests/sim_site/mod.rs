//! Client configurations for the simulator, as the operator would build them
//! from a ConfluenceSite: Cloud with basic auth (user + API token), Data Center
//! with a personal access token; and the one-space simulator, client and sync
//! request many tests start from. Shared by tests and benchmarks; the
//! simulator crate itself knows nothing of the operator's types.
#![allow(dead_code)]

use confluence_operator::confluence::{
    ClientOptions, ConfluenceApi, Credentials, Flavor, ListOptions, SiteConfig, SpaceRef,
    connect_with,
};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::sync::{SyncError, SyncReport, SyncRequest, sync_space};
use confluence_sim::{SimConfig, Simulator};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The simulator's site of `flavor`.
pub fn site_url(sim: &Simulator, flavor: Flavor) -> Url {
    match flavor {
        Flavor::Cloud => sim.cloud_site_url(),
        Flavor::DataCenter => sim.datacenter_site_url(),
    }
}

/// `flavor` as command lines and settings spell it (`cloud`, `datacenter`).
pub fn flavor_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Cloud => "cloud",
        Flavor::DataCenter => "datacenter",
    }
}

pub fn site_config(sim: &Simulator, flavor: Flavor) -> SiteConfig {
    let credentials = match flavor {
        Flavor::Cloud => Credentials::Basic {
            username: sim.user().to_owned(),
            token: sim.token().to_owned(),
        },
        Flavor::DataCenter => Credentials::Bearer {
            token: sim.token().to_owned(),
        },
    };
    SiteConfig {
        base_url: site_url(sim, flavor),
        flavor,
        credentials,
        max_concurrency: 8,
        request_timeout: Duration::from_secs(10),
        max_retries: 5,
        ca_bundle: None,
    }
}

/// A simulator with one space (`ENG`) of `pages` pages and no blog posts.
pub async fn one_space(pages: usize) -> Simulator {
    Simulator::start(SimConfig {
        spaces: 1,
        pages,
        blogposts: 0,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A client of `flavor` asking for `page_limit` items a request, retrying
/// at once (tests inject failures and should not wait for them).
pub fn quick_client(sim: &Simulator, flavor: Flavor, page_limit: usize) -> Arc<dyn ConfluenceApi> {
    connect_with(
        site_config(sim, flavor),
        ClientOptions {
            page_limit,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            retry_after_max: Duration::from_millis(5),
        },
    )
    .expect("client")
}

/// A sync of `space` (looked up already, or a lookup to run beside the
/// listing) into the `default/eng` scope for everyone, with the default
/// options and small batches (several commits in a small space).
pub fn sync_request<'a>(space: impl Into<SpaceRef<'a>>) -> SyncRequest<'a> {
    SyncRequest {
        scope: SpaceScope::new("default", "eng"),
        site_url: "http://sim".into(),
        space: space.into(),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: 7,
    }
}

/// Starts a sync of `req` into `stores` on a task of its own and returns it
/// once `watched` holds a first page: the listing is then under way, for a
/// test to change Confluence in the middle of it.
pub async fn sync_under_way(
    client: &Arc<dyn ConfluenceApi>,
    stores: Vec<Arc<dyn Store>>,
    req: &SyncRequest<'static>,
    watched: &MemoryStore,
) -> tokio::task::JoinHandle<Result<SyncReport, SyncError>> {
    let sync = {
        let client = Arc::clone(client);
        let req = req.clone();
        tokio::spawn(async move { sync_space(client.as_ref(), &stores, &req).await })
    };
    let waited = tokio::time::Instant::now();
    while watched.documents(&req.scope).is_empty() {
        assert!(waited.elapsed() < Duration::from_secs(30), "no page stored");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sync
}

/// One test per flavor of each scenario `async fn scenario(flavor: Flavor)`
/// of the calling file (which imports `Flavor`): `cloud::scenario` and
/// `data_center::scenario`.
#[allow(unused_macros)]
macro_rules! both_flavors {
    ($($scenario:ident),* $(,)?) => {
        mod cloud {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Flavor::Cloud).await;
                }
            )*
        }
        mod data_center {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Flavor::DataCenter).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_flavors;
