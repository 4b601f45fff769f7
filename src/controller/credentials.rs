//! Turns a ConfluenceSite and its Secret into a `SiteConfig` for the client.

use crate::api::ConfluenceSite;
use crate::api::site::{CaBundleKind, CaBundleRef, SiteFlavor};
use crate::confluence::tls::CaBundleError;
use crate::confluence::{CaBundle, Credentials, Flavor, SiteConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, ResourceExt};

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(
        "Secret {name:?} (credentialsSecretRef of ConfluenceSite {site:?}) not found in namespace {namespace:?}"
    )]
    SecretNotFound {
        name: String,
        site: String,
        namespace: String,
    },
    #[error(
        "Secret {name:?} has no usable credentials: set `email` + `apiToken`, `username` + `password`, `token` (personal access token) or `accessToken` (OAuth)"
    )]
    NoCredentials { name: String },
    #[error("spec.url {url:?} is not a valid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("spec.url must use https:// (set insecureAllowHttp: true only for tests)")]
    InsecureUrl,
    #[error(
        "{kind:?} {name:?} with key {key:?} (caBundleRef of ConfluenceSite {site:?}) not found"
    )]
    CaBundleNotFound {
        kind: CaBundleKind,
        name: String,
        key: String,
        site: String,
    },
    #[error("CA bundle in key {key:?} of {kind:?} {name:?} cannot be used: {reason}")]
    CaBundleInvalid {
        kind: CaBundleKind,
        name: String,
        key: String,
        reason: CaBundleError,
    },
    #[error("reading {name}: {source}")]
    Kube {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl SiteError {
    /// Errors the user must fix in a spec or Secret (rather than wait out).
    /// A missing Secret is expected to appear (GitOps applies in any order),
    /// so it is retried rather than reported as Stalled.
    pub fn needs_user_action(&self) -> bool {
        !matches!(
            self,
            SiteError::Kube { .. }
                | SiteError::SecretNotFound { .. }
                | SiteError::CaBundleNotFound { .. }
        )
    }
}

/// Reads the Secret and builds the client configuration. Secret values are
/// only moved into `Credentials` (whose Debug output is redacted).
pub async fn site_config(client: &Client, site: &ConfluenceSite) -> Result<SiteConfig, SiteError> {
    let namespace = site.namespace().unwrap_or_default();
    let base_url = parse_url(site)?;
    let secret_name = site.spec.credentials_secret_ref.name.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    // Both reads are known from the spec; side by side they cost one API
    // server round trip before the first request to Confluence, not two.
    // The Secret's verdict is still given first.
    let (secret, ca_bundle) = tokio::join!(secrets.get_opt(&secret_name), async {
        match &site.spec.ca_bundle_ref {
            Some(r) => ca_bundle(client, site, &namespace, r).await.map(Some),
            None => Ok(None),
        }
    });
    let secret = secret
        .map_err(|source| SiteError::Kube {
            name: format!("Secret {secret_name:?}"),
            source,
        })?
        .ok_or_else(|| SiteError::SecretNotFound {
            name: secret_name.clone(),
            site: site.name_any(),
            namespace: namespace.clone(),
        })?;
    let credentials =
        credentials_from(&secret).ok_or(SiteError::NoCredentials { name: secret_name })?;
    let ca_bundle = ca_bundle?;
    let flavor = match site.spec.flavor {
        Some(SiteFlavor::Cloud) => Flavor::Cloud,
        Some(SiteFlavor::DataCenter) => Flavor::DataCenter,
        None => Flavor::infer(&base_url),
    };
    Ok(SiteConfig {
        base_url,
        flavor,
        credentials,
        max_concurrency: site.spec.max_concurrency.unwrap_or(4).clamp(1, 64) as usize,
        request_timeout: crate::confluence::DEFAULT_REQUEST_TIMEOUT,
        max_retries: 6,
        ca_bundle,
    })
}

/// Reads and parses the CA bundle a site names. Trust bundles are shipped as
/// Secrets (cert-manager's `ca.crt`) or ConfigMaps (trust-manager,
/// OpenShift's injected bundles), so both are accepted.
async fn ca_bundle(
    client: &Client,
    site: &ConfluenceSite,
    namespace: &str,
    r: &CaBundleRef,
) -> Result<CaBundle, SiteError> {
    let kube_error = |source| SiteError::Kube {
        name: format!("{:?} {:?}", r.kind, r.name),
        source,
    };
    let pem: Option<Vec<u8>> = match r.kind {
        CaBundleKind::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(&r.name)
            .await
            .map_err(kube_error)?
            .and_then(|s| s.data?.remove(&r.key))
            .map(|b| b.0),
        CaBundleKind::ConfigMap => {
            let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await
                .map_err(kube_error)?;
            cm.and_then(|cm| {
                let text = cm.data.and_then(|mut d| d.remove(&r.key));
                text.map(String::into_bytes)
                    .or_else(|| cm.binary_data?.remove(&r.key).map(|b| b.0))
            })
        }
    };
    let pem = pem.ok_or_else(|| SiteError::CaBundleNotFound {
        kind: r.kind,
        name: r.name.clone(),
        key: r.key.clone(),
        site: site.name_any(),
    })?;
    CaBundle::from_pem(&pem).map_err(|reason| SiteError::CaBundleInvalid {
        kind: r.kind,
        name: r.name.clone(),
        key: r.key.clone(),
        reason,
    })
}

fn parse_url(site: &ConfluenceSite) -> Result<url::Url, SiteError> {
    let raw = site.spec.url.trim();
    let url = url::Url::parse(raw).map_err(|e| SiteError::InvalidUrl {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if site.spec.insecure_allow_http == Some(true) => Ok(url),
        "http" => Err(SiteError::InsecureUrl),
        other => Err(SiteError::InvalidUrl {
            url: raw.to_string(),
            reason: format!("unsupported scheme {other:?}"),
        }),
    }
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    let value = String::from_utf8(bytes.0.clone()).ok()?;
    let value = value.trim().to_string();
    (!value.is_empty()).then_some(value)
}

/// Picks credentials by the keys present, most specific first.
fn credentials_from(secret: &Secret) -> Option<Credentials> {
    let get = |k: &str| secret_value(secret, k);
    if let (Some(username), Some(token)) = (get("email"), get("apiToken")) {
        return Some(Credentials::Basic { username, token });
    }
    if let (Some(username), Some(token)) = (get("username"), get("password")) {
        return Some(Credentials::Basic { username, token });
    }
    if let Some(token) = get("accessToken").or_else(|| get("token")) {
        return Some(Credentials::Bearer { token });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn picks_credentials_by_keys() {
        assert!(matches!(
            credentials_from(&secret(&[("email", "a@b.c"), ("apiToken", "t")])),
            Some(Credentials::Basic { .. })
        ));
        assert!(matches!(
            credentials_from(&secret(&[("token", "pat")])),
            Some(Credentials::Bearer { .. })
        ));
        assert!(credentials_from(&secret(&[("email", "a@b.c")])).is_none());
        assert!(credentials_from(&secret(&[("token", "  ")])).is_none());
    }

    #[test]
    fn debug_output_hides_the_token() {
        let c = credentials_from(&secret(&[("email", "a@b.c"), ("apiToken", "s3cr3t")]));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
