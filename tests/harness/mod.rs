//! Runs the operator's controllers in-process against the real test control
//! plane, scoped to one namespace per test.

#![allow(dead_code)]

use crate::support;
use confluence_operator::api::space::ConfluenceSpaceStatus;
use confluence_operator::api::{ConfluenceSite, ConfluenceSpace};
use confluence_operator::controller::{self, Context, Settings, SourceFactory};
use confluence_operator::store::Store;
use confluence_operator::telemetry::Metrics;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs the CRDs from the Rust types (what `crds/` is generated from).
pub async fn install_crds(client: &Client) {
    CRDS.get_or_init(|| async {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in confluence_operator::api::crds::all() {
            let name = crd.metadata.name.clone().unwrap();
            api.patch(
                &name,
                &PatchParams::apply("confluence-operator-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
            support::wait_for(
                &format!("CRD {name} Established"),
                Duration::from_secs(60),
                || {
                    let api = api.clone();
                    let name = name.clone();
                    async move {
                        let crd = api.get(&name).await.map_err(|e| e.to_string())?;
                        let established = crd
                            .status
                            .and_then(|s| s.conditions)
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True");
                        Ok(established.then_some(()))
                    }
                },
            )
            .await;
        }
    })
    .await;
}

pub struct Operator {
    pub client: Client,
    pub namespace: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fast retries so recovery tests finish quickly.
pub fn test_settings() -> Settings {
    Settings {
        min_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(3),
        site_check_interval: Duration::from_secs(60),
        batch_size: 7,
        ..Settings::default()
    }
}

/// Starts the controllers for a fresh namespace, acting with `client`.
pub async fn start_as(
    client: Client,
    prefix: &str,
    factory: Arc<dyn SourceFactory>,
    stores: Vec<Arc<dyn Store>>,
) -> Operator {
    let admin = support::client().await;
    install_crds(&admin).await;
    let namespace = support::test_namespace(&admin, prefix).await;
    let mut op = start_in(client, namespace, factory, stores);
    op.client = admin;
    op
}

/// Starts the controllers for a fresh namespace.
pub async fn start(
    prefix: &str,
    factory: Arc<dyn SourceFactory>,
    stores: Vec<Arc<dyn Store>>,
) -> Operator {
    let client = support::client().await;
    install_crds(&client).await;
    let namespace = support::test_namespace(&client, prefix).await;
    start_in(client, namespace, factory, stores)
}

/// Starts the controllers for an existing namespace (e.g. to simulate an
/// operator restart).
pub fn start_in(
    client: Client,
    namespace: String,
    factory: Arc<dyn SourceFactory>,
    stores: Vec<Arc<dyn Store>>,
) -> Operator {
    start_in_with(client, namespace, factory, stores, test_settings())
}

/// Like [`start_in`], with explicit settings.
pub fn start_in_with(
    client: Client,
    namespace: String,
    factory: Arc<dyn SourceFactory>,
    stores: Vec<Arc<dyn Store>>,
    settings: Settings,
) -> Operator {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let ctx = Context::new(client.clone(), stores, factory, metrics, settings);
    let ns = namespace.clone();
    let task = tokio::spawn(async move { controller::run(ctx, Some(ns)).await });
    Operator {
        client,
        namespace,
        task,
    }
}

impl Operator {
    /// False once the controllers' task has ended (returned or panicked).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    pub fn sites(&self) -> Api<ConfluenceSite> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn spaces(&self) -> Api<ConfluenceSpace> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn create_secret(&self, name: &str) {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {"email": "operator@example.com", "apiToken": "test-token-123"}
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    pub async fn create_site(&self, name: &str, url: &str, secret: &str) -> ConfluenceSite {
        let site: ConfluenceSite = serde_json::from_value(json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
            "metadata": {"name": name},
            "spec": {"url": url, "insecureAllowHttp": true, "credentialsSecretRef": {"name": secret}}
        }))
        .unwrap();
        self.sites()
            .create(&PostParams::default(), &site)
            .await
            .unwrap()
    }

    pub async fn try_create_space(
        &self,
        name: &str,
        site: &str,
        key: &str,
        viewers: serde_json::Value,
    ) -> Result<ConfluenceSpace, kube::Error> {
        let space: ConfluenceSpace = serde_json::from_value(json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
            "metadata": {"name": name},
            "spec": {"siteRef": {"name": site}, "spaceKey": key, "viewers": viewers}
        }))
        .unwrap();
        self.spaces().create(&PostParams::default(), &space).await
    }

    pub async fn create_space(
        &self,
        name: &str,
        site: &str,
        key: &str,
        viewers: serde_json::Value,
    ) -> ConfluenceSpace {
        self.try_create_space(name, site, key, viewers)
            .await
            .unwrap()
    }

    /// Waits until the space's Ready condition is True for its current generation.
    pub async fn wait_ready(&self, name: &str) -> ConfluenceSpace {
        let api = self.spaces();
        let name = name.to_string();
        support::wait_for(
            &format!("space {name} Ready"),
            Duration::from_secs(60),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let s = api.get(&name).await.map_err(|e| e.to_string())?;
                    let status = s.status.clone().unwrap_or_default();
                    let ready = status.conditions.iter().any(|c| {
                        c.type_ == "Ready"
                            && c.status == "True"
                            && c.observed_generation == s.metadata.generation
                    });
                    if ready {
                        Ok(Some(s))
                    } else {
                        Err(format!("{:?}", status.conditions))
                    }
                }
            },
        )
        .await
    }

    /// Polls the space until `check` accepts its status (or times out, showing the last status).
    pub async fn wait_status<T>(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ConfluenceSpaceStatus) -> Option<T>,
    ) -> T {
        let api = self.spaces();
        let check = &check;
        support::wait_for(
            &format!("space {name}: {what}"),
            Duration::from_secs(60),
            || {
                let api = api.clone();
                async move {
                    let s = api.get(name).await.map_err(|e| e.to_string())?;
                    let status = s.status.unwrap_or_default();
                    check(&status)
                        .map(Some)
                        .ok_or_else(|| format!("{status:?}"))
                }
            },
        )
        .await
    }

    /// Sets the resync annotation on a space or site, as `kubectl annotate --overwrite` does.
    pub async fn request_resync<K>(&self, api: &Api<K>, name: &str, value: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"confluence-operator.io/requestedAt": value}}}),
            ),
        )
        .await
        .unwrap();
    }

    /// Waits until the object is gone from the API server.
    pub async fn wait_space_gone(&self, name: &str) {
        let api = self.spaces();
        let name = name.to_string();
        support::wait_for(
            &format!("space {name} deleted"),
            Duration::from_secs(90),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    match api.get_opt(&name).await.map_err(|e| e.to_string())? {
                        None => Ok(Some(())),
                        Some(s) => Err(format!(
                            "still there: finalizers {:?}, owners {:?}",
                            s.metadata.finalizers, s.metadata.owner_references
                        )),
                    }
                }
            },
        )
        .await
    }
}

/// `kubectl apply -f <repo file>` against the test cluster.
pub fn kubectl_apply(path: &str) {
    let file = support::repo_root().join(path);
    let out = support::kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&file)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -f {path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client acting as `user` (the admin identity may impersonate anyone).
pub async fn impersonating(user: &str) -> Client {
    impersonating_with_groups(user, &[]).await
}

/// A client acting as a ServiceAccount, with the groups Kubernetes gives it.
pub async fn as_service_account(namespace: &str, name: &str) -> Client {
    let user = format!("system:serviceaccount:{namespace}:{name}");
    let groups = [
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".to_string(),
    ];
    impersonating_with_groups(&user, &groups).await
}

async fn impersonating_with_groups(user: &str, groups: &[String]) -> Client {
    let kubeconfig = support::kubeconfig_env();
    let kc = kube::config::Kubeconfig::read_from(std::path::Path::new(&kubeconfig)).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    if !groups.is_empty() {
        config.auth_info.impersonate_groups = Some(groups.to_vec());
    }
    confluence_operator::kubeclient::client(config).unwrap()
}
