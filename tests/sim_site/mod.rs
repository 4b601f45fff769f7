//! Client configurations for the simulator, as the operator would build them
//! from a ConfluenceSite: Cloud with basic auth (user + API token), Data Center
//! with a personal access token. Shared by tests and benchmarks; the simulator
//! crate itself knows nothing of the operator's types.
#![allow(dead_code)]

use confluence_operator::confluence::{Credentials, Flavor, SiteConfig};
use confluence_sim::Simulator;
use std::time::Duration;

pub fn site_config(sim: &Simulator, flavor: Flavor) -> SiteConfig {
    let (base_url, credentials) = match flavor {
        Flavor::Cloud => (
            sim.cloud_site_url(),
            Credentials::Basic {
                username: sim.user().to_owned(),
                token: sim.token().to_owned(),
            },
        ),
        Flavor::DataCenter => (
            sim.datacenter_site_url(),
            Credentials::Bearer {
                token: sim.token().to_owned(),
            },
        ),
    };
    SiteConfig {
        base_url,
        flavor,
        credentials,
        max_concurrency: 8,
        request_timeout: Duration::from_secs(10),
        max_retries: 5,
        ca_bundle: None,
    }
}
