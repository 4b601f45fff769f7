//! One Confluence client per site, shared by all of its spaces so the
//! per-site concurrency limit holds across them.

use crate::confluence::{ConfluenceApi, ConfluenceError, SiteConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Builds a client for a site. The real one calls `confluence::connect`;
/// tests inject fakes.
pub trait SourceFactory: Send + Sync {
    fn connect(&self, config: &SiteConfig) -> Result<Arc<dyn ConfluenceApi>, ConfluenceError>;
}

/// Cached client plus the fingerprint of the configuration it was built from.
type CachedClient = (String, Arc<dyn ConfluenceApi>);

pub struct SourceCache {
    factory: Arc<dyn SourceFactory>,
    // site key -> (fingerprint of the config, client)
    clients: Mutex<HashMap<String, CachedClient>>,
}

impl SourceCache {
    pub fn new(factory: Arc<dyn SourceFactory>) -> Self {
        Self {
            factory,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The cached client for `site_key`, rebuilt when the configuration
    /// (URL, flavor, credentials, limits) changed.
    pub fn get(
        &self,
        site_key: &str,
        config: &SiteConfig,
    ) -> Result<Arc<dyn ConfluenceApi>, ConfluenceError> {
        let fingerprint = fingerprint(config);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((fp, client)) = clients.get(site_key)
            && *fp == fingerprint
        {
            return Ok(client.clone());
        }
        let client = self.factory.connect(config)?;
        clients.insert(site_key.to_string(), (fingerprint, client.clone()));
        Ok(client)
    }

    pub fn forget(&self, site_key: &str) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.remove(site_key);
    }
}

/// A hash of the configuration, so the secret itself is never kept as a key.
fn fingerprint(config: &SiteConfig) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    config.base_url.as_str().hash(&mut h);
    format!("{:?}", config.flavor).hash(&mut h);
    match &config.credentials {
        crate::confluence::Credentials::Basic { username, token } => {
            username.hash(&mut h);
            token.hash(&mut h);
        }
        crate::confluence::Credentials::Bearer { token } => token.hash(&mut h),
    }
    config.max_concurrency.hash(&mut h);
    config.ca_bundle.as_ref().map(|b| b.digest()).hash(&mut h);
    format!("{:x}", h.finish())
}

/// The production factory.
pub struct ClientFactory;

impl SourceFactory for ClientFactory {
    fn connect(&self, config: &SiteConfig) -> Result<Arc<dyn ConfluenceApi>, ConfluenceError> {
        crate::confluence::connect(config.clone())
    }
}
