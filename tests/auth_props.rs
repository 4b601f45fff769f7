//! Property test of `segments=` and query parsing behind authentication:
//! whatever the query string, token and `segments=`, the server answers
//! 200, 400 or 401 (never a panic or a 5xx), and never returns a document
//! the caller's bindings do not allow.

mod auth_common;
mod common;
mod loopback;
mod python_venv;

use async_trait::async_trait;
use auth_common::*;
use axum::body::Body;
use axum::http::Request;
use confluence_operator::api::{ViewerBinding, ViewerBindingSpec};
use confluence_operator::auth::{AuthError, Authenticator, Identity, Verifier};
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::server::{AppState, SearchResponse, router};
use confluence_operator::store::Store;
use confluence_operator::store::embedded::EmbeddedStore;
use proptest::prelude::*;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tower::ServiceExt;

/// A unit-test stand-in for the token verifier: two known tokens.
struct Tokens;

#[async_trait]
impl Verifier for Tokens {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let username = match token {
            "reader-token" => "reader",
            "agent-token" => "agent",
            _ => return Err(AuthError::Refused("unknown")),
        };
        Ok(Identity {
            username: username.into(),
            ..Default::default()
        })
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(AGENTS.to_string()),
        Just("signed-in-users".to_string()),
        Just("sre".to_string()),
        Just(" agents-and-admins ".to_string()),
        Just("".to_string()),
        "[a-z,% -]{0,12}",
        any::<String>(),
    ]
}

#[test]
fn no_query_string_widens_what_a_caller_sees() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let app = rt.block_on(async {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let scope = |s: &str| SpaceScope::new("docs", s);
        store
            .upsert(&[
                common::doc(
                    &scope("kb"),
                    "KB",
                    Audience::Everyone,
                    common::page("1", 1, "Router a", "x"),
                ),
                common::doc(
                    &scope("kb"),
                    "KB",
                    Audience::Everyone,
                    common::page("2", 1, "Router b", "y"),
                ),
                common::doc(
                    &scope("siu"),
                    "SIU",
                    common::segments(&["signed-in-users"]),
                    common::page("5", 1, "Router c", "z"),
                ),
                common::doc(
                    &scope("ops"),
                    "OPS",
                    common::segments(&[AGENTS]),
                    common::page("9", 1, "Router d", "w"),
                ),
            ])
            .await
            .expect("upsert");
        let bindings = vec![ViewerBinding::new(
            "agents",
            ViewerBindingSpec {
                segments: vec![AGENTS.into()],
                subjects: serde_json::from_value(
                    serde_json::json!([{"kind": "User", "name": "agent"}]),
                )
                .expect("subjects"),
            },
        )];
        let auth = Authenticator::bearer(Arc::new(Tokens), Arc::new(bindings));
        router(
            AppState::standalone(Arc::new(store), Arc::new(AtomicBool::new(true))).with_auth(auth),
        )
    });
    let allowed = |token: Option<&str>| -> Vec<&'static str> {
        match token {
            None => vec!["docs.kb.1", "docs.kb.2"],
            Some("reader-token") => vec!["docs.kb.1", "docs.kb.2", "docs.siu.5"],
            Some("agent-token") => vec!["docs.kb.1", "docs.kb.2", "docs.siu.5", "docs.ops.9"],
            Some(_) => vec![],
        }
    };

    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        q in prop_oneof![Just("router".to_string()), "[a-z \"():*~^-]{0,20}", any::<String>()],
        segments in proptest::collection::vec(segment(), 0..70),
        raw_segments in any::<bool>(),
        limit in prop_oneof![Just(None), (0u32..200).prop_map(|n| Some(n.to_string())), any::<String>().prop_map(Some)],
        token in prop_oneof![Just(None), Just(Some("reader-token")), Just(Some("agent-token")), Just(Some("forged"))],
        doc in prop_oneof![Just("docs.ops.9"), Just("docs.siu.5"), Just("docs.kb.1"), Just("x")],
    )| {
        let joined = segments.join(",");
        let seg_param = if raw_segments { joined.replace(['&', '#', ' '], "") } else { encode(&joined) };
        let mut query = format!("q={}&segments={seg_param}", encode(&q));
        if let Some(limit) = &limit {
            query.push_str(&format!("&limit={}", encode(limit)));
        }
        let allowed = allowed(token);
        for uri in [format!("/v1/search?{query}"), format!("/v1/documents/{doc}?segments={seg_param}")] {
            let mut req = Request::get(&uri);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let Ok(req) = req.body(Body::empty()) else { continue };
            let (status, body) = rt.block_on(async {
                let res = app.clone().oneshot(req).await.expect("infallible");
                let status = res.status().as_u16();
                let body = axum::body::to_bytes(res.into_body(), 10 << 20).await.expect("body");
                (status, body)
            });
            prop_assert!(matches!(status, 200 | 400 | 401 | 404), "{uri}: {status}");
            if token == Some("forged") {
                prop_assert_eq!(status, 401, "{}", uri);
            }
            if status != 200 {
                continue;
            }
            if uri.starts_with("/v1/search") {
                let res: SearchResponse = serde_json::from_slice(&body).expect("json");
                for hit in &res.hits {
                    prop_assert!(allowed.contains(&hit.id.as_str()), "{uri}: {} leaked", hit.id);
                }
                prop_assert!(res.total.unwrap_or_default() <= allowed.len() as u64, "{uri}: total leaks");
            } else {
                prop_assert!(allowed.contains(&doc), "{uri}: document leaked");
            }
        }
    });
}
