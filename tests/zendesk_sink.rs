//! The Zendesk sink against a local stand-in of the Help Center federated
//! search API. The stand-in enforces the documented request shapes (paths,
//! methods, auth header, the `record` wrapper and its mandatory fields) and
//! keeps records, so tests assert what a Help Center visitor would find.

mod common;
mod fakes;
mod loopback;
mod zendesk_standin;

use common::*;
use confluence_operator::confluence::ListOptions;
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::zendesk::{ZendeskConfig, ZendeskSink};
use confluence_operator::store::{Store, StoreError};
use confluence_operator::sync::{SyncRequest, sync_space};
use fakes::FakeConfluence;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use zendesk_standin::*;

fn scope() -> SpaceScope {
    SpaceScope::new("support", "kb")
}

fn kb_doc(
    id: &str,
    version: u64,
    title: &str,
    audience: Audience,
) -> confluence_operator::model::Document {
    doc(
        &scope(),
        "KB",
        audience,
        page(id, version, title, &format!("Body of {title}.")),
    )
}

#[tokio::test]
async fn creates_source_type_and_records_then_updates_and_deletes() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("zendesk.json")).expect("sink");

    sink.upsert(&[
        kb_doc("1", 1, "Reset your router", Audience::Everyone),
        kb_doc("2", 1, "Billing", Audience::Everyone),
    ])
    .await
    .expect("create");
    let records = zd.records();
    assert_eq!(records.len(), 2);
    let r = &records["support.kb.1"];
    assert_eq!(r["title"], "Reset your router");
    assert_eq!(r["body"], "Body of Reset your router.");
    assert_eq!(r["url"], "https://wiki.example.com/pages/1");
    assert_eq!(r["locale"], "en-us");
    assert_eq!(r["user_segment_id"], Value::Null);
    assert_eq!(r["source"]["name"], "Confluence");
    assert_eq!(r["type"]["name"], "Wiki page");
    let first_id = r["id"].clone();
    {
        let fake = zd.fake.lock().expect("lock");
        assert_eq!(fake.sources.len(), 1);
        assert_eq!(fake.types.len(), 1);
    }
    assert_eq!(
        sink.versions(&scope()).await.expect("versions"),
        HashMap::from([("1".to_string(), 1), ("2".to_string(), 1)])
    );
    assert_eq!(sink.count(&scope()).await.expect("count"), 2);

    // Update: same record, new content, no new source/type.
    zd.clear_log();
    sink.upsert(&[kb_doc("1", 2, "Reset your modem", Audience::Everyone)])
        .await
        .expect("update");
    let records = zd.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records["support.kb.1"]["id"], first_id);
    assert_eq!(records["support.kb.1"]["title"], "Reset your modem");
    assert_eq!(
        zd.log(),
        vec![format!(
            "PUT {PREFIX}/records/{}",
            first_id.as_str().unwrap_or_default()
        )]
    );
    assert_eq!(sink.versions(&scope()).await.expect("versions")["1"], 2);

    // Delete one page, then the whole space.
    sink.delete(&scope(), &strings(&["2"]))
        .await
        .expect("delete");
    assert_eq!(
        zd.records().keys().cloned().collect::<Vec<_>>(),
        vec!["support.kb.1"]
    );
    sink.delete_space(&scope()).await.expect("delete_space");
    assert!(zd.records().is_empty());
    assert!(sink.versions(&scope()).await.expect("versions").is_empty());
}

#[tokio::test]
async fn reuses_an_existing_source_and_type() {
    let zd = Zendesk::start().await;
    {
        let mut fake = zd.fake.lock().expect("lock");
        // Several pages of sources; ours is on the last one.
        for name in ["Forum", "Blog", "LMS", "Confluence"] {
            let id = fake.ulid();
            fake.sources.push(json!({ "id": id, "name": name }));
        }
        let id = fake.ulid();
        fake.types.push(json!({ "id": id, "name": "Wiki page" }));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("state.json")).expect("sink");
    sink.upsert(&[kb_doc("1", 1, "A", Audience::Everyone)])
        .await
        .expect("upsert");
    let fake = zd.fake.lock().expect("lock");
    assert_eq!(fake.sources.len(), 4);
    assert_eq!(fake.types.len(), 1);
    assert!(
        !fake
            .log
            .iter()
            .any(|l| l.starts_with("POST") && !l.ends_with("/records"))
    );
}

#[tokio::test]
async fn audiences_map_to_user_segments() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = zd.config();
    config.everyone_segment = Some(999);
    let sink = ZendeskSink::new(config, &dir.path().join("state.json")).expect("sink");
    sink.upsert(&[
        kb_doc("1", 1, "Public", Audience::Everyone),
        kb_doc("2", 1, "Agents", segments(&["agents-and-admins"])),
        // Two names mapped to one Zendesk segment: publishable.
        kb_doc("3", 1, "Channel", segments(&["partners", "resellers"])),
    ])
    .await
    .expect("upsert");
    let records = zd.records();
    assert_eq!(records["support.kb.1"]["user_segment_id"], "999");
    assert_eq!(records["support.kb.2"]["user_segment_id"], "111");
    assert_eq!(records["support.kb.3"]["user_segment_id"], "333");
}

#[tokio::test]
async fn audience_change_rewrites_records_without_confluence() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("state.json")).expect("sink");
    sink.upsert(&[
        kb_doc("1", 1, "One", Audience::Everyone),
        kb_doc("2", 1, "Two", Audience::Everyone),
    ])
    .await
    .expect("upsert");

    sink.set_audience(&scope(), &segments(&["signed-in-users"]))
        .await
        .expect("narrow");
    let records = zd.records();
    assert!(
        records.values().all(|r| r["user_segment_id"] == "222"),
        "{records:?}"
    );
    // Content is untouched.
    assert_eq!(records["support.kb.1"]["title"], "One");
    assert_eq!(records["support.kb.2"]["body"], "Body of Two.");

    // Unchanged audience: no request at all.
    zd.clear_log();
    sink.set_audience(&scope(), &segments(&["signed-in-users"]))
        .await
        .expect("same");
    assert!(zd.log().is_empty(), "{:?}", zd.log());
}

#[tokio::test]
async fn unmapped_segments_never_widen_the_audience() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("state.json")).expect("sink");

    // Publishing content for an unmapped segment fails before any write.
    let err = sink
        .upsert(&[kb_doc("1", 1, "Secret", segments(&["internal-only"]))])
        .await
        .expect_err("unmapped segment");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(err.to_string().contains("internal-only"));
    assert!(zd.records().is_empty());

    // Segments mapping to two different Zendesk segments cannot be one record.
    let err = sink
        .upsert(&[kb_doc(
            "1",
            1,
            "Mixed",
            segments(&["agents-and-admins", "partners"]),
        )])
        .await
        .expect_err("ambiguous");
    assert!(matches!(err, StoreError::Config(_)), "{err}");

    // A public space narrowed to an unmapped segment is withdrawn.
    sink.upsert(&[kb_doc("1", 1, "Was public", Audience::Everyone)])
        .await
        .expect("upsert");
    assert_eq!(zd.records().len(), 1);
    let err = sink
        .set_audience(&scope(), &segments(&["internal-only"]))
        .await
        .expect_err("unmapped");
    assert!(matches!(err, StoreError::Config(_)));
    assert!(zd.records().is_empty(), "records must not stay public");
    assert!(sink.versions(&scope()).await.expect("versions").is_empty());
}

#[tokio::test]
async fn versions_survive_a_restart_and_lost_state_is_rebuilt() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    {
        let sink = ZendeskSink::new(zd.config(), &state).expect("sink");
        sink.upsert(&[
            kb_doc("1", 4, "A", Audience::Everyone),
            kb_doc("2", 7, "B", Audience::Everyone),
        ])
        .await
        .expect("upsert");
    }
    let sink = ZendeskSink::new(zd.config(), &state).expect("reopen");
    assert_eq!(
        sink.versions(&scope()).await.expect("versions"),
        HashMap::from([("1".to_string(), 4), ("2".to_string(), 7)])
    );
    sink.upsert(&[kb_doc("1", 5, "A2", Audience::Everyone)])
        .await
        .expect("update");
    assert_eq!(zd.records().len(), 2, "updated in place, no duplicate");

    // The state file is lost: records are adopted by external id, and a
    // full resync converges without duplicates.
    let fresh = ZendeskSink::new(zd.config(), &dir.path().join("other.json")).expect("fresh");
    assert!(fresh.versions(&scope()).await.expect("versions").is_empty());
    let source =
        FakeConfluence::with_pages("KB", [page("1", 5, "A2", "x"), page("3", 1, "C", "y")]);
    let req = SyncRequest {
        scope: scope(),
        site_url: "https://wiki.example.com".into(),
        space: space("KB").into(),
        audience: Audience::Everyone,
        options: ListOptions::default(),
        batch_size: 50,
    };
    let stores: Vec<Arc<dyn Store>> = vec![Arc::new(fresh)];
    sync_space(&source, &stores, &req).await.expect("sync");
    let mut ids: Vec<String> = zd.records().into_keys().collect();
    ids.sort();
    // Page 2 is not in Confluence any more; it stays until a delete_space
    // or a sync that knows about it, but nothing is duplicated.
    assert_eq!(ids, ["support.kb.1", "support.kb.2", "support.kb.3"]);
    stores[0]
        .delete_space(&scope())
        .await
        .expect("delete_space");
    assert!(
        zd.records().is_empty(),
        "orphans of the space are removed too"
    );
}

#[tokio::test]
async fn sync_publishes_exactly_the_space() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink: Arc<dyn Store> =
        Arc::new(ZendeskSink::new(zd.config(), &dir.path().join("s.json")).expect("sink"));
    let source = FakeConfluence::with_pages(
        "KB",
        (1..=5).map(|i| page(&i.to_string(), 1, &format!("P{i}"), "text")),
    );
    let mut req = SyncRequest {
        scope: scope(),
        site_url: "https://wiki.example.com".into(),
        space: space("KB").into(),
        audience: segments(&["agents-and-admins"]),
        options: ListOptions::default(),
        batch_size: 2,
    };
    sync_space(&source, std::slice::from_ref(&sink), &req)
        .await
        .expect("sync");
    assert_eq!(zd.records().len(), 5);
    source.remove_page("KB", "3");
    req.audience = Audience::Everyone;
    let report = sync_space(&source, std::slice::from_ref(&sink), &req)
        .await
        .expect("resync");
    assert_eq!(report.fetched, 0);
    assert_eq!(report.deleted, 1);
    let records = zd.records();
    assert_eq!(records.len(), 4);
    assert!(
        records
            .values()
            .all(|r| r["user_segment_id"] == Value::Null)
    );
}

#[tokio::test]
async fn wrong_credentials_fail_without_leaking_the_token() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = zd.config();
    config.api_token = "wrong-token-value".into();
    let debug = format!("{config:?}");
    assert!(!debug.contains("wrong-token-value"), "{debug}");
    let sink = ZendeskSink::new(config, &dir.path().join("s.json")).expect("sink");
    assert!(!format!("{sink:?}").contains("wrong-token-value"));
    let err = sink
        .upsert(&[kb_doc("1", 1, "A", Audience::Everyone)])
        .await
        .expect_err("401");
    let text = format!("{err} {err:?}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("wrong-token-value"), "{text}");
}

#[tokio::test]
async fn long_bodies_are_cut_to_the_documented_limit() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("s.json")).expect("sink");
    let mut d = kb_doc("1", 1, "Long", Audience::Everyone);
    d.page.body_text = "é".repeat(12_000);
    sink.upsert(&[d]).await.expect("upsert");
    let body = zd.records()["support.kb.1"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(body.chars().count(), 10_000);
}

#[test]
fn subdomains_and_bad_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ZendeskConfig {
        subdomain_or_base_url: "acme".into(),
        email: EMAIL.into(),
        api_token: TOKEN.into(),
        locale: "en-us".into(),
        source_name: "Confluence".into(),
        type_name: "Wiki page".into(),
        segment_map: HashMap::new(),
        everyone_segment: None,
    };
    assert!(ZendeskSink::new(config.clone(), &dir.path().join("s.json")).is_ok());
    config.subdomain_or_base_url = "not a host!".into();
    let err = ZendeskSink::new(config.clone(), &dir.path().join("s.json")).expect_err("bad host");
    assert!(matches!(err, StoreError::Config(_)));
    config.subdomain_or_base_url = "acme".into();
    config.locale = String::new();
    assert!(ZendeskSink::new(config, &dir.path().join("s.json")).is_err());
}

#[tokio::test]
async fn rate_limits_are_retried() {
    let zd = Zendesk::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = ZendeskSink::new(zd.config(), &dir.path().join("s.json")).expect("sink");
    zd.fake.lock().expect("lock").throttle = 2;
    sink.upsert(&[kb_doc("1", 1, "A", Audience::Everyone)])
        .await
        .expect("upsert despite 429s");
    assert_eq!(zd.records().len(), 1);
}
