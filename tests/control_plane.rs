//! Checks that the test control plane (hack/testenv) behaves like a real
//! cluster where the operator relies on it: CRDs get Established, the garbage
//! collector deletes dependents, the namespace controller empties and removes
//! namespaces, and MutatingAdmissionPolicy is served.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

fn config_map(name: &str, owner: Option<OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

/// Owner ConfigMap plus a dependent ConfigMap owned by it (blockOwnerDeletion).
async fn owner_and_dependent(cms: &Api<ConfigMap>) -> (ConfigMap, ConfigMap) {
    let pp = PostParams::default();
    let owner = cms
        .create(&pp, &config_map("owner", None))
        .await
        .expect("create owner");
    let owner_ref = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().expect("owner uid"),
        block_owner_deletion: Some(true),
        controller: Some(true),
    };
    let dependent = cms
        .create(&pp, &config_map("dependent", Some(owner_ref)))
        .await
        .expect("create dependent");
    (owner, dependent)
}

async fn gone<K>(api: &Api<K>, name: &str) -> Result<Option<()>, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(None) => Ok(Some(())),
        Ok(Some(obj)) => Err(format!(
            "{name} still exists (deletionTimestamp {:?}, finalizers {:?})",
            obj.meta().deletion_timestamp,
            obj.meta().finalizers
        )),
        Err(e) => Err(format!("get {name}: {e}")),
    }
}

#[tokio::test]
async fn crd_becomes_established_and_serves_objects() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "crd").await;
    // CRDs are cluster scoped: make the name unique to this run.
    let plural = format!("widgets{}", ns.rsplit('-').next().unwrap());
    let group = "testenv.confluence-operator.io";
    let crd_name = format!("{plural}.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": plural, "singular": plural, "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "properties": { "size": { "type": "integer", "minimum": 1 } }
                    }}
                }}
            }]
        }
    }))
    .expect("CRD json");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &crd_name,
        &PatchParams::apply("control-plane-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");

    support::wait_for(
        &format!("CRD {crd_name} to be Established"),
        TIMEOUT,
        || async {
            let crd = crds.get(&crd_name).await.map_err(|e| e.to_string())?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                Ok(Some(()))
            } else {
                Err(format!("conditions: {conditions:?}"))
            }
        },
    )
    .await;

    // The new resource is served: create an object, and the schema is enforced.
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Widget"), &plural);
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let widget = |size: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": format!("{group}/v1"),
            "kind": "Widget",
            "metadata": { "name": format!("w{size}") },
            "spec": { "size": size }
        }))
        .unwrap()
    };
    // Discovery of a fresh CRD can lag a moment behind Established.
    support::wait_for("the custom resource to be served", TIMEOUT, || async {
        match widgets.create(&PostParams::default(), &widget(3)).await {
            Ok(_) => Ok(Some(())),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let got = widgets.get("w3").await.expect("get widget");
    assert_eq!(got.data["spec"]["size"], json!(3));
    match widgets.create(&PostParams::default(), &widget(0)).await {
        Err(kube::Error::Api(s)) if s.code == 422 => {}
        other => panic!("expected 422 Invalid for size 0 (minimum 1), got {other:?}"),
    }

    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .expect("delete CRD");
    support::wait_for(&format!("CRD {crd_name} to be deleted"), TIMEOUT, || {
        gone(&crds, &crd_name)
    })
    .await;
    support::delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn garbage_collector_deletes_dependents_in_background() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "gc-bg").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let (_owner, dependent) = owner_and_dependent(&cms).await;
    assert!(dependent.metadata.owner_references.is_some());

    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    support::wait_for("owner to be deleted", TIMEOUT, || gone(&cms, "owner")).await;
    support::wait_for(
        "garbage collector to delete the dependent of a deleted owner",
        TIMEOUT,
        || gone(&cms, "dependent"),
    )
    .await;
    support::delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn garbage_collector_honours_foreground_deletion() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "gc-fg").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    owner_and_dependent(&cms).await;

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete owner");
    // The owner waits (foregroundDeletion finalizer) until the GC removed the
    // blocking dependent; then both are gone.
    support::wait_for(
        "foreground deletion of owner and dependent",
        TIMEOUT,
        || async {
            gone(&cms, "dependent").await?;
            gone(&cms, "owner").await
        },
    )
    .await;
    support::delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn namespace_controller_removes_namespace_and_content() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "ns-del").await;
    let pp = PostParams::default();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(&pp, &config_map("content", None))
        .await
        .expect("create configmap");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "content" },
        "stringData": { "password": "hunter2" }
    }))
    .unwrap();
    secrets.create(&pp, &secret).await.expect("create secret");
    // A finalizer on content makes the namespace controller's ordering visible:
    // the namespace stays Terminating until the finalizer is removed.
    cms.patch(
        "content",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": ["confluence-operator.test/hold"] } })),
    )
    .await
    .expect("add finalizer");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");

    // The namespace controller deletes the content (the configmap gets a
    // deletionTimestamp, the secret disappears) while the namespace is Terminating.
    support::wait_for(
        "namespace controller to delete the namespace's content",
        TIMEOUT,
        || async {
            let cm = cms.get("content").await.map_err(|e| e.to_string())?;
            if cm.metadata.deletion_timestamp.is_none() {
                return Err("configmap has no deletionTimestamp yet".into());
            }
            gone(&secrets, "content").await
        },
    )
    .await;
    let phase = namespaces
        .get(&ns)
        .await
        .expect("namespace")
        .status
        .and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Terminating"));

    cms.patch(
        "content",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .expect("remove finalizer");
    support::wait_for(&format!("namespace {ns} to be gone"), TIMEOUT, || {
        gone(&namespaces, &ns)
    })
    .await;
    assert!(
        cms.get_opt("content")
            .await
            .expect("get configmap")
            .is_none(),
        "configmap survived its namespace"
    );
}

#[tokio::test]
async fn mutating_admission_policy_is_served() {
    let client: Client = support::client().await;
    let resources = client
        .list_api_group_resources("admissionregistration.k8s.io/v1")
        .await
        .expect("discovery of admissionregistration.k8s.io/v1");
    let names: Vec<&str> = resources
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    for want in [
        "mutatingadmissionpolicies",
        "mutatingadmissionpolicybindings",
    ] {
        assert!(
            names.contains(&want),
            "{want} not served in admissionregistration.k8s.io/v1: {names:?}"
        );
    }
}

#[tokio::test]
async fn kubectl_talks_to_the_test_cluster() {
    // Make sure the control plane is resolved (and started) first.
    let client = support::client().await;
    let ns = support::test_namespace(&client, "kubectl").await;
    let out = support::kubectl()
        .args(["get", "namespace", &ns, "-o", "jsonpath={.status.phase}"])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Active");
    support::delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn applying_the_generated_crds_prints_no_warning() {
    support::client().await;
    // What a first `kubectl apply -f crds/` shows: the create path's schema
    // warnings. The group is renamed and the create is a server-side dry run,
    // so the CRDs other tests use are left alone.
    let path = support::repo_root().join("crds/confluence-operator.yaml");
    let yaml = std::fs::read_to_string(&path).expect("read crds/");
    let renamed = yaml.replace("confluence-operator.io", "warncheck.example.com");
    let out = support::kubectl_with_stdin(&["create", "--dry-run=server"], &renamed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl create failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("created")
            .count(),
        confluence_operator::api::crds::all().len(),
        "every CRD must be accepted"
    );
    assert!(
        !stderr.to_lowercase().contains("warning"),
        "applying crds/ printed warnings:\n{stderr}"
    );
}

/// What the space reconciler relies on to skip a quorum read before a sync
/// (`controller::written`): a GET at the resourceVersion of our own write is
/// answered with that write or newer, even when the copy in hand is older,
/// and an object deleted since reads as gone.
#[tokio::test]
async fn a_read_at_our_own_write_sees_it_even_from_a_stale_copy() {
    use confluence_operator::controller::written::Written;
    let client = support::client().await;
    let ns = support::test_namespace(&client, "written").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let stale = cms
        .create(&PostParams::default(), &config_map("cm", None))
        .await
        .expect("create");
    let written = Written::default();
    // Nothing of ours recorded: the copy in hand is taken as it is.
    let same = written.fresh(&cms, "cm", &stale).await.expect("read");
    assert_eq!(same.and_then(|c| c.data), stale.data);

    let ours = cms
        .patch(
            "cm",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "ours"}})),
        )
        .await
        .expect("patch");
    written.record("cm", &ours);
    let fresh = written
        .fresh(&cms, "cm", &stale)
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(
        fresh.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("ours"),
        "a stale copy must be replaced by one that shows our write"
    );

    cms.delete("cm", &DeleteParams::default())
        .await
        .expect("delete");
    support::wait_for("the ConfigMap to be gone", TIMEOUT, || gone(&cms, "cm")).await;
    assert!(
        written
            .fresh(&cms, "cm", &stale)
            .await
            .expect("read")
            .is_none(),
        "a deleted object reads as gone"
    );
    support::delete_namespace(&client, &ns).await;
}
