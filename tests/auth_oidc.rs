//! `--auth=oidc` against a test issuer on loopback (keys generated here,
//! discovery document and JWKS served over HTTP), and `trusted-header` mode.

mod auth_common;
mod common;
mod loopback;
mod python_venv;

use auth_common::*;
use axum::Json;
use axum::routing::get as route;
use base64::Engine as _;
use confluence_operator::api::{ViewerBinding, ViewerBindingSpec};
use confluence_operator::auth::{Authenticator, OidcConfig, OidcVerifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const AUDIENCE: &str = "confluence-operator";

struct Key {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

fn key() -> Key {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    Key {
        public: pair.public_key().as_ref().to_vec(),
        pkcs8: pkcs8.as_ref().to_vec(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn sign(key: &Key, kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&key.pkcs8)).expect("sign")
}

/// Serves discovery and the JWKS of `key` (as `kid` "k1"); returns the issuer URL.
async fn issuer(key: &Key) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key.public);
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}]});
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")});
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            route(move || {
                let d = discovery.clone();
                async move { Json(d) }
            }),
        )
        .route(
            "/keys",
            route(move || {
                let j = jwks.clone();
                async move { Json(j) }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (issuer, task)
}

fn bindings() -> Arc<Vec<ViewerBinding>> {
    let binding = |name: &str, subjects: serde_json::Value| {
        ViewerBinding::new(
            name,
            ViewerBindingSpec {
                segments: vec![AGENTS.into()],
                subjects: serde_json::from_value(subjects).expect("subjects"),
            },
        )
    };
    Arc::new(vec![
        binding("oncall", json!([{"kind": "Group", "name": "oncall"}])),
        binding(
            "bob",
            json!([{"kind": "Claim", "claim": "email", "value": "bob@example.com"}]),
        ),
        binding(
            "sa",
            json!([{"kind": "ServiceAccount", "name": "x", "namespace": "y"}]),
        ),
    ])
}

#[tokio::test]
async fn oidc_tokens_are_checked_against_the_issuers_keys() {
    let good = key();
    let other = key();
    let (iss, issuer_task) = issuer(&good).await;
    let verifier = OidcVerifier::new(OidcConfig {
        issuer: iss.parse().expect("url"),
        audience: AUDIENCE.into(),
        jwks_url: None,
        username_claim: "sub".into(),
        groups_claim: "groups".into(),
    })
    .expect("verifier");
    let served = serve(Authenticator::bearer(Arc::new(verifier), bindings()), None).await;
    let addr = served.addr;
    let claims = |sub: &str, extra: serde_json::Value| {
        let mut c =
            json!({"iss": iss, "aud": AUDIENCE, "sub": sub, "exp": now() + 300, "iat": now()});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    };

    let all = ids(&[PUBLIC[0], PUBLIC[1], SIGNED_IN, AGENTS_ONLY]);
    let signed_in = ids(&[PUBLIC[0], PUBLIC[1], SIGNED_IN]);
    let public = ids(&PUBLIC);

    let alice = sign(&good, "k1", claims("alice", json!({"groups": ["oncall"]})));
    let bob = sign(
        &good,
        "k1",
        claims("bob", json!({"email": "bob@example.com"})),
    );
    let carol = sign(&good, "k1", claims("carol", json!({"groups": ["staff"]})));
    assert_eq!(search_ids(addr, "q=router", Some(&alice)).await.0, all);
    assert_eq!(search_ids(addr, "q=router", Some(&bob)).await.0, all);
    assert_eq!(
        search_ids(addr, "q=router", Some(&carol)).await.0,
        signed_in
    );
    assert_eq!(search_ids(addr, "q=router", None).await.0, public);
    let q = format!("q=router&segments={AGENTS}");
    assert_eq!(search_ids(addr, &q, Some(&carol)).await.0, public);

    let expired = sign(
        &good,
        "k1",
        json!({"iss": iss, "aud": AUDIENCE, "sub": "alice", "groups": ["oncall"], "exp": now() - 600}),
    );
    let wrong_audience = sign(
        &good,
        "k1",
        json!({"iss": iss, "aud": "someone-else", "sub": "alice", "groups": ["oncall"], "exp": now() + 300}),
    );
    let wrong_issuer = sign(
        &good,
        "k1",
        json!({"iss": "https://evil.example", "aud": AUDIENCE, "sub": "alice", "exp": now() + 300}),
    );
    let wrong_signature = sign(&other, "k1", claims("alice", json!({"groups": ["oncall"]})));
    let unknown_key = sign(&other, "k2", claims("alice", json!({"groups": ["oncall"]})));
    // An issuer may not pose as a ServiceAccount of a binding.
    let reserved = sign(&good, "k1", claims("system:serviceaccount:y:x", json!({})));
    let mut tampered = alice.clone();
    tampered.insert(alice.rfind('.').expect("jwt") + 1, 'A');
    let refused = get(addr, "/v1/search?q=router", Some("x.y.z")).await;
    assert_eq!(refused.0, 401);
    for (what, token) in [
        ("expired", &expired),
        ("wrong audience", &wrong_audience),
        ("wrong issuer", &wrong_issuer),
        ("wrong signature", &wrong_signature),
        ("unknown key", &unknown_key),
        ("reserved user name", &reserved),
        ("tampered", &tampered),
    ] {
        for path in ["/v1/search?q=router", "/v1/documents/docs.kb.1"] {
            assert_eq!(get(addr, path, Some(token)).await, refused, "{what} {path}");
        }
    }
    issuer_task.abort();
}

#[tokio::test]
async fn trusted_headers_only_on_the_gateway_listener() {
    let gateway = serve(Authenticator::trusted_headers(bindings()), None).await;
    let main = serve(Authenticator::anonymous_only(), None).await;
    let with_headers = |addr, user: Option<&'static str>, group: Option<&'static str>| async move {
        let mut req = reqwest::Client::new().get(format!("http://{addr}/v1/search?q=router"));
        if let Some(u) = user {
            req = req.header("X-Remote-User", u);
        }
        if let Some(g) = group {
            req = req.header("X-Remote-Group", g);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.expect("json");
        let mut hits: Vec<String> = body["hits"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        hits.sort();
        (status, hits)
    };
    let all = ids(&[PUBLIC[0], PUBLIC[1], SIGNED_IN, AGENTS_ONLY]);
    let signed_in = ids(&[PUBLIC[0], PUBLIC[1], SIGNED_IN]);
    let public = ids(&PUBLIC);
    assert_eq!(
        with_headers(gateway.addr, Some("ann"), Some("staff, oncall")).await,
        (200, all)
    );
    assert_eq!(
        with_headers(gateway.addr, Some("ann"), None).await,
        (200, signed_in)
    );
    assert_eq!(
        with_headers(gateway.addr, None, None).await,
        (200, public.clone())
    );
    // The main listener ignores identity headers: anonymous.
    assert_eq!(
        with_headers(main.addr, Some("ann"), Some("oncall")).await,
        (200, public)
    );
    assert_eq!(
        get(main.addr, "/v1/search?q=router", Some("token")).await.0,
        401
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_without_details() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let iss = format!("http://127.0.0.1:{port}");
    let verifier = OidcVerifier::new(OidcConfig {
        issuer: iss.parse().expect("url"),
        audience: AUDIENCE.into(),
        jwks_url: None,
        username_claim: "sub".into(),
        groups_claim: "groups".into(),
    })
    .expect("verifier");
    let served = serve(Authenticator::bearer(Arc::new(verifier), bindings()), None).await;
    let token = sign(
        &key(),
        "k1",
        json!({"iss": iss, "aud": AUDIENCE, "sub": "alice", "exp": now() + 300}),
    );
    let (status, body) = get(served.addr, "/v1/search?q=router", Some(&token)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"unavailable\""), "{body}");
    assert!(
        !body.contains("127.0.0.1") && !body.contains("router"),
        "{body}"
    );
    // Anonymous callers do not depend on the issuer.
    assert_eq!(
        search_ids(served.addr, "q=router", None).await.0,
        ids(&PUBLIC)
    );
}

#[test]
fn plain_http_issuers_are_refused_unless_loopback() {
    let config = |url: &str| OidcConfig {
        issuer: url.parse().expect("url"),
        audience: AUDIENCE.into(),
        jwks_url: None,
        username_claim: "sub".into(),
        groups_claim: "groups".into(),
    };
    assert!(OidcVerifier::new(config("http://login.example.com")).is_err());
    assert!(OidcVerifier::new(config("https://login.example.com")).is_ok());
    assert!(OidcVerifier::new(config("http://127.0.0.1:9")).is_ok());
}
