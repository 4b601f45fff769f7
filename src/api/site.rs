//! `ConfluenceSite`: one Confluence (Cloud or Data Center) plus the Secret
//! holding the operator's credentials for it.

use super::LocalObjectReference;
use super::outcome::Outcome;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Which REST API the site speaks. Inferred from the URL when omitted
/// (`*.atlassian.net` is Cloud, anything else Data Center).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SiteFlavor {
    Cloud,
    DataCenter,
}

/// A Confluence site the operator connects to.
///
/// The Secret named by `credentialsSecretRef` must hold one of:
/// `email` + `apiToken` (Cloud API token, HTTP basic), `username` + `password`
/// (Data Center basic), `token` (Data Center personal access token, bearer) or
/// `accessToken` (OAuth 2.0 bearer).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "confluence-operator.io",
    version = "v1alpha1",
    kind = "ConfluenceSite",
    namespaced,
    status = "ConfluenceSiteStatus",
    shortname = "csite",
    category = "confluence",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"FLAVOR","type":"string","jsonPath":".status.flavor"}"#,
    printcolumn = r#"{"name":"SPACES","type":"integer","jsonPath":".status.spaces"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"STATUS","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("self.url.startsWith('https://') || (has(self.insecureAllowHttp) && self.insecureAllowHttp && self.url.startsWith('http://'))").message("spec.url must use https:// (http:// only with insecureAllowHttp: true, for tests)"),
    validation = Rule::new("isURL(self.url) && url(self.url).getHostname() != ''").message("spec.url must be a URL with a host, e.g. https://acme.atlassian.net/wiki"),
    validation = Rule::new("!self.url.matches('^[A-Za-z][-+.A-Za-z0-9]*://[^/?#]*@')").message("spec.url must not contain credentials: put them in the Secret named by credentialsSecretRef")
)]
#[serde(rename_all = "camelCase")]
pub struct ConfluenceSiteSpec {
    /// Base URL of the site, e.g. `https://acme.atlassian.net/wiki` or
    /// `https://confluence.example.com`.
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,

    /// Cloud (REST v2) or DataCenter (REST v1). Inferred from the URL if omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<SiteFlavor>,

    /// Secret in the same namespace holding the credentials.
    pub credentials_secret_ref: LocalObjectReference,

    /// How often spaces of this site are resynced (Go duration). Default 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(
        validation = Rule::new("duration(self) >= duration('1m')").message("syncInterval must be at least 1m"),
        validation = Rule::new("duration(self) <= duration('87600h')").message("syncInterval must be at most 87600h (10 years)")
    )]
    pub sync_interval: Option<String>,

    /// Stops all syncing of this site's spaces (content already synced stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// Allow an `http://` URL. Only for tests and local simulators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_allow_http: Option<bool>,

    /// Requests in flight at once against this site (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrency: Option<u32>,

    /// PEM CA certificates to trust for this site in addition to the system
    /// roots (sites behind a private PKI): a key of a Secret or ConfigMap in
    /// the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_ref: Option<CaBundleRef>,
}

/// Where a CA bundle is kept.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum CaBundleKind {
    Secret,
    ConfigMap,
}

/// A key holding PEM certificates, of a Secret or ConfigMap in the site's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleRef {
    /// `Secret` or `ConfigMap`.
    pub kind: CaBundleKind,
    /// Name of the object, in the site's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key whose value is the PEM bundle (default `ca.crt`).
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_string()
}

/// Result of the last connection check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCheck {
    /// When the connection was last checked.
    pub time: Option<Time>,
    /// `Succeeded` or `Failed`.
    #[schemars(with = "String")]
    pub result: Outcome,
    /// What the check found: the identity and the spaces it sees, or why it failed.
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfluenceSiteStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was written for: when it is
    /// behind the object's, the operator has not acted on the latest spec yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// API flavor in use (from spec or inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<SiteFlavor>,
    /// The Confluence identity the credentials belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_as: Option<String>,
    /// Number of non-personal spaces the credentials can see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spaces: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connection_check: Option<ConnectionCheck>,
    /// Last value of the resync annotation this site acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_resync_at: Option<String>,
}
