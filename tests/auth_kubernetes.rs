//! `--auth=kubernetes` on the real control plane: two ServiceAccounts with
//! TokenRequest tokens, one bound to `agents-and-admins` by a ViewerBinding,
//! and an anonymous caller, through `/v1/search`, `/v1/documents` and `/mcp`
//! (the official Python MCP SDK). Deleting the binding takes effect within
//! the stated bound.

mod auth_common;
mod common;
mod harness;
mod loopback;
mod python_venv;
mod support;

use auth_common::*;
use confluence_operator::api::{ViewerBinding, ViewerBindingSpec};
use confluence_operator::auth::{
    Authenticator, BindingIndex, CachingVerifier, TokenReviewVerifier,
};
use confluence_operator::controller;
use confluence_operator::server::spaces::SpaceIndex;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const AUDIENCE: &str = "confluence-operator-test";
/// How soon a deleted binding stops granting (docs/authentication.md states it).
const BINDING_BOUND: Duration = Duration::from_secs(5);

async fn install_binding_crd(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ViewerBinding::crd();
    let name = crd.metadata.name.clone().expect("crd name");
    api.patch(
        &name,
        &PatchParams::apply("confluence-operator-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply ViewerBinding CRD");
    support::wait_for("ViewerBinding CRD served", Duration::from_secs(60), || {
        let api: Api<ViewerBinding> = Api::all(client.clone());
        async move {
            api.list(&Default::default())
                .await
                .map(|_| Some(()))
                .map_err(|e| e.to_string())
        }
    })
    .await;
}

async fn token(client: &Client, ns: &str, sa: &str, audience: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![audience.to_string()]),
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create_token_request(sa, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status")
        .token
        .expect("token")
}

async fn service_account(client: &Client, ns: &str, name: &str) {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
}

#[tokio::test]
async fn service_accounts_see_what_their_bindings_allow() {
    let admin = support::client().await;
    harness::install_crds(&admin).await;
    install_binding_crd(&admin).await;
    let ns = support::test_namespace(&admin, "auth-k8s").await;
    service_account(&admin, &ns, "reader").await;
    service_account(&admin, &ns, "agent").await;

    // Spaces as the operator sees them, for list_spaces.
    let spaces: Api<confluence_operator::api::ConfluenceSpace> =
        Api::namespaced(admin.clone(), &ns);
    for (name, key, viewers) in [
        ("kb", "KB", json!({"visibility": "Everyone"})),
        (
            "siu",
            "SIU",
            json!({"visibility": "Segments", "segments": ["signed-in-users"]}),
        ),
        (
            "ops",
            "OPS",
            json!({"visibility": "Segments", "segments": [AGENTS]}),
        ),
    ] {
        let space = serde_json::from_value(json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
            "metadata": {"name": name},
            "spec": {"siteRef": {"name": "acme"}, "spaceKey": key, "viewers": viewers}
        }))
        .expect("space");
        spaces
            .create(&PostParams::default(), &space)
            .await
            .expect("create space");
    }

    let bindings: Api<ViewerBinding> = Api::all(admin.clone());
    let binding_name = format!("{ns}-agents");
    let binding = ViewerBinding::new(
        &binding_name,
        ViewerBindingSpec {
            segments: vec![AGENTS.into()],
            subjects: serde_json::from_value(
                json!([{"kind": "ServiceAccount", "name": "agent", "namespace": ns}]),
            )
            .expect("subjects"),
        },
    );
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");
    // CEL validation refuses incomplete subjects.
    for (subject, message) in [
        (
            json!({"kind": "ServiceAccount", "name": "agent"}),
            "need name and namespace",
        ),
        (
            json!({"kind": "User", "name": "ann", "namespace": ns}),
            "only they may set namespace",
        ),
        (json!({"kind": "Group"}), "need a name"),
        (
            json!({"kind": "Claim", "claim": "email"}),
            "need claim and value",
        ),
    ] {
        let bad: ViewerBinding = serde_json::from_value(json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ViewerBinding",
            "metadata": {"name": format!("{ns}-bad")},
            "spec": {"segments": [AGENTS], "subjects": [subject]}
        }))
        .expect("binding");
        let err = bindings
            .create(&PostParams::default(), &bad)
            .await
            .expect_err("invalid binding accepted");
        assert!(err.to_string().contains(message), "{subject}: {err}");
    }

    let status_controller = tokio::spawn(controller::binding::run(admin.clone()));

    let (index, watch) = BindingIndex::watch(admin.clone());
    let watch = tokio::spawn(watch);
    index.ready().await;
    let (space_index, space_watch) = SpaceIndex::watch(admin.clone(), Some(&ns));
    let space_watch = tokio::spawn(space_watch);
    let verifier = Arc::new(CachingVerifier::new(
        Arc::new(TokenReviewVerifier::new(admin.clone(), AUDIENCE)),
        Duration::from_secs(60),
        Duration::from_secs(10),
    ));
    let served = serve(
        Authenticator::bearer(verifier, Arc::new(index)),
        Some(Arc::new(space_index)),
    )
    .await;
    let addr = served.addr;

    let reader = token(&admin, &ns, "reader", AUDIENCE).await;
    let agent = token(&admin, &ns, "agent", AUDIENCE).await;

    // The bound agent sees everything, the reader what any signed-in
    // caller sees, the anonymous caller only Everyone.
    let all = ids(&[PUBLIC[0], PUBLIC[1], SIGNED_IN, AGENTS_ONLY]);
    let signed_in = ids(&[PUBLIC[0], PUBLIC[1], SIGNED_IN]);
    let public = ids(&PUBLIC);
    support::wait_for(
        "agent sees agents-only content",
        Duration::from_secs(10),
        || async {
            let (got, _) = search_ids(addr, "q=router", Some(&agent)).await;
            Ok((got == all).then_some(()))
        },
    )
    .await;
    assert_eq!(
        search_ids(addr, "q=router", Some(&agent)).await,
        (all.clone(), 4)
    );
    assert_eq!(
        search_ids(addr, "q=router", Some(&reader)).await,
        (signed_in.clone(), 3)
    );
    assert_eq!(
        search_ids(addr, "q=router", None).await,
        (public.clone(), 2)
    );

    // segments= narrows, never widens.
    let q = format!("q=router&segments={AGENTS}");
    assert_eq!(search_ids(addr, &q, None).await, (public.clone(), 2));
    assert_eq!(
        search_ids(addr, &q, Some(&reader)).await,
        (public.clone(), 2)
    );
    assert_eq!(
        search_ids(addr, &q, Some(&agent)).await,
        (ids(&[PUBLIC[0], PUBLIC[1], AGENTS_ONLY]), 3)
    );
    assert_eq!(
        search_ids(addr, "q=router&segments=sre,signed-in-users", Some(&agent)).await,
        (signed_in.clone(), 3)
    );

    // Documents: hidden looks exactly like missing.
    let path = format!("/v1/documents/{AGENTS_ONLY}");
    assert_eq!(get(addr, &path, Some(&agent)).await.0, 200);
    let hidden = get(addr, &format!("{path}?segments={AGENTS}"), Some(&reader)).await;
    let missing = get(addr, "/v1/documents/docs.ops.404", Some(&reader)).await;
    assert_eq!(hidden.0, 404);
    assert_eq!(hidden, missing);
    assert_eq!(get(addr, &path, None).await.0, 404);

    // Foreign audience, garbage and non-bearer credentials: 401, one answer for all.
    let foreign = token(&admin, &ns, "agent", "some-other-service").await;
    let refused = get(addr, "/v1/search?q=router", Some(&foreign)).await;
    assert_eq!(refused.0, 401, "{}", refused.1);
    assert!(!refused.1.contains("router") && !refused.1.contains("audience"));
    assert_eq!(
        get(addr, "/v1/search?q=router", Some("not-a-token")).await,
        refused
    );
    assert_eq!(get(addr, &path, Some(&foreign)).await, refused);
    let basic = reqwest::Client::new()
        .get(format!("http://{addr}/v1/search?q=router"))
        .basic_auth("agent", Some("x"))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status().as_u16(), 401);
    assert!(basic.headers().contains_key("www-authenticate"));

    // The same rules through MCP, with the official Python SDK.
    let docs = [AGENTS_ONLY, PUBLIC[0], "docs.ops.404"];
    let agent_mcp = mcp(addr, Some(&agent), &docs).await;
    let reader_mcp = mcp(addr, Some(&reader), &docs).await;
    let anon_mcp = mcp(addr, None, &docs).await;
    for out in [&agent_mcp, &reader_mcp, &anon_mcp] {
        assert_eq!(
            out["tools"],
            json!(["get_document", "list_spaces", "search"])
        );
    }
    assert_eq!(mcp_hit_ids(&agent_mcp["search"]), all);
    assert_eq!(mcp_hit_ids(&reader_mcp["search"]), signed_in);
    assert_eq!(mcp_hit_ids(&anon_mcp["search"]), public);
    assert_eq!(mcp_hit_ids(&agent_mcp["search_ops"]), ids(&[AGENTS_ONLY]));
    assert_eq!(mcp_hit_ids(&reader_mcp["search_ops"]), Vec::<String>::new());
    let hit = &agent_mcp["search"]["structured"]["hits"][0];
    for key in ["id", "title", "url", "snippet"] {
        assert!(hit[key].is_string(), "hit lacks {key}: {hit}");
    }
    let keys = |out: &serde_json::Value| -> Vec<String> {
        out["list_spaces"]["structured"]["spaces"]
            .as_array()
            .unwrap_or(&vec![])
            .iter()
            .filter_map(|s| s["key"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(keys(&agent_mcp), ["KB", "OPS", "SIU"]);
    assert_eq!(keys(&reader_mcp), ["KB", "SIU"]);
    assert_eq!(keys(&anon_mcp), ["KB"]);
    let agent_doc = &agent_mcp["documents"][AGENTS_ONLY];
    assert_eq!(agent_doc["error"], json!(false));
    let text = agent_doc["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("# Router outage runbook"), "{text}");
    assert!(text.contains("https://wiki.example.com/pages/9"), "{text}");
    assert!(text.contains("Page on-call."), "{text}");
    let reader_doc = &reader_mcp["documents"][AGENTS_ONLY];
    assert_eq!(reader_doc["error"], json!(true));
    assert_eq!(reader_doc["text"], json!("document not found"));
    assert_eq!(reader_doc, &reader_mcp["documents"]["docs.ops.404"]);
    assert_eq!(anon_mcp["documents"][PUBLIC[0]]["error"], json!(false));

    // A bad token gets no MCP answer at all.
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .bearer_auth(&foreign)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 401);

    let (_, metrics) = get(addr, "/metrics", None).await;
    assert!(
        metrics.contains(r#"api_requests_total{endpoint="mcp",status="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"api_requests_total{endpoint="auth",status="401"}"#),
        "{metrics}"
    );

    // Status for kubectl.
    support::wait_for("binding status", Duration::from_secs(30), || {
        let bindings = bindings.clone();
        let name = binding_name.clone();
        async move {
            let b = bindings.get(&name).await.map_err(|e| e.to_string())?;
            let status = b.status.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok((ready
                && status.subjects == Some(1)
                && status.observed_generation == b.metadata.generation)
                .then_some(()))
        }
    })
    .await;

    let out = support::kubectl()
        .args(["get", "vb", &binding_name])
        .output()
        .expect("kubectl get vb");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("SEGMENTS") && table.contains("SUBJECTS") && table.contains("READY"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|row| row.split_whitespace().take(4).eq([
                binding_name.as_str(),
                AGENTS,
                "1",
                "True"
            ])),
        "{table}"
    );

    // Deleting the binding: the agent's token stays valid (and cached),
    // but it loses agents-and-admins within the bound.
    bindings
        .delete(&binding_name, &DeleteParams::default())
        .await
        .expect("delete binding");
    let deleted = Instant::now();
    support::wait_for("binding deletion in force", BINDING_BOUND, || async {
        let (got, _) = search_ids(addr, "q=router", Some(&agent)).await;
        Ok((got == signed_in).then_some(()))
    })
    .await;
    eprintln!("binding deletion took effect after {:?}", deleted.elapsed());
    assert_eq!(get(addr, &path, Some(&agent)).await.0, 404);

    status_controller.abort();
    watch.abort();
    space_watch.abort();
    support::delete_namespace(&admin, &ns).await;
}

/// A revoked token (its ServiceAccount deleted) is accepted for at most
/// the cache TTL plus the API server's own token cache (10 s), then refused.
#[tokio::test]
async fn revoked_tokens_stop_working_within_the_cache_ttl() {
    const TTL: Duration = Duration::from_secs(2);
    let admin = support::client().await;
    harness::install_crds(&admin).await;
    install_binding_crd(&admin).await;
    let ns = support::test_namespace(&admin, "auth-revoke").await;
    service_account(&admin, &ns, "temp").await;
    let (index, watch) = BindingIndex::watch(admin.clone());
    let watch = tokio::spawn(watch);
    index.ready().await;
    let verifier = Arc::new(CachingVerifier::new(
        Arc::new(TokenReviewVerifier::new(admin.clone(), AUDIENCE)),
        TTL,
        Duration::from_secs(10),
    ));
    let served = serve(Authenticator::bearer(verifier, Arc::new(index)), None).await;
    let temp = token(&admin, &ns, "temp", AUDIENCE).await;
    let signed_in = ids(&[PUBLIC[0], PUBLIC[1], SIGNED_IN]);
    assert_eq!(
        search_ids(served.addr, "q=router", Some(&temp)).await.0,
        signed_in
    );
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .delete("temp", &DeleteParams::default())
        .await
        .expect("delete ServiceAccount");
    let deleted = Instant::now();
    // The API server caches successful token authentications for 10 s.
    let api_server_cache = Duration::from_secs(10);
    support::wait_for(
        "revoked token refused",
        TTL + api_server_cache + Duration::from_secs(3),
        || async {
            Ok((get(served.addr, "/v1/search?q=router", Some(&temp)).await.0 == 401).then_some(()))
        },
    )
    .await;
    eprintln!("revoked token refused after {:?}", deleted.elapsed());
    watch.abort();
    support::delete_namespace(&admin, &ns).await;
}
