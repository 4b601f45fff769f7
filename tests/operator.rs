//! The operator on the real control plane: what a platform team sees after
//! `kubectl apply`, `kubectl annotate`, spec edits and deletions.

mod common;
mod fakes;
mod harness;
mod support;

use confluence_operator::api::conditions;
use confluence_operator::api::space::SyncPhase;
use confluence_operator::model::{Audience, SpaceScope};
use confluence_operator::store::Store;
use confluence_operator::store::memory::MemoryStore;
use fakes::{FakeConfluence, FakeFactory};
use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const EVERYONE: fn() -> serde_json::Value = || json!({"visibility": "Everyone"});

async fn operator(
    prefix: &str,
    fake: &Arc<FakeConfluence>,
) -> (harness::Operator, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let op = harness::start(
        prefix,
        Arc::new(FakeFactory(fake.clone())),
        vec![store.clone() as Arc<dyn Store>],
    )
    .await;
    (op, store)
}

#[tokio::test]
async fn applied_site_and_space_become_ready_with_items_counted() {
    let fake = Arc::new(FakeConfluence::default()).with_space("ENG", 23);
    let (op, store) = operator("ready", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("eng", "acme", "ENG", EVERYONE()).await;

    let space = op.wait_ready("eng").await;
    let status = space.status.unwrap();
    assert_eq!(status.items, Some(23));
    assert_eq!(
        status.url.as_deref(),
        Some("https://fake.example/wiki/spaces/ENG")
    );
    assert!(status.created_at.is_some() && status.last_synced_at.is_some());
    assert_eq!(status.last_sync_result.unwrap().fetched, 23);
    assert_eq!(
        store
            .documents(&SpaceScope::new(&op.namespace, "eng"))
            .len(),
        23
    );

    // The space is owned by the site (for garbage collection) and guarded by the finalizer.
    let owners = space.metadata.owner_references.unwrap_or_default();
    assert!(owners.iter().any(|o| o.kind == "ConfluenceSite"
        && o.name == "acme"
        && o.block_owner_deletion == Some(true)));
    assert!(
        space
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == "confluence-operator.io/content-cleanup")
    );

    // The site reports its connection.
    let site = harness_wait_site_ready(&op, "acme").await;
    let site_status = site.status.unwrap();
    assert_eq!(
        site_status.connected_as.as_deref(),
        Some("operator@example.com")
    );
    assert_eq!(site_status.spaces, Some(1));
}

async fn harness_wait_site_ready(
    op: &harness::Operator,
    name: &str,
) -> confluence_operator::api::ConfluenceSite {
    let api = op.sites();
    support::wait_for(
        &format!("site {name} Ready"),
        Duration::from_secs(60),
        || {
            let api = api.clone();
            let name = name.to_string();
            async move {
                let s = api.get(&name).await.map_err(|e| e.to_string())?;
                let conds = s.status.clone().unwrap_or_default().conditions;
                if conditions::is_true(&conds, "Ready") {
                    Ok(Some(s))
                } else {
                    Err(format!("{conds:?}"))
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn resync_annotation_triggers_exactly_one_sync() {
    let fake = Arc::new(FakeConfluence::default()).with_space("OPS", 5);
    let (op, _store) = operator("resync", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("ops", "acme", "OPS", EVERYONE()).await;
    op.wait_ready("ops").await;
    // Let any follow-up reconciles of our own status writes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fake.list_count();

    op.request_resync(&op.spaces(), "ops", "2026-11-25T10:00:00Z")
        .await;
    op.wait_status("ops", "lastHandledResyncAt echoes the annotation", |st| {
        (st.last_handled_resync_at.as_deref() == Some("2026-11-25T10:00:00Z")
            && st.phase == Some(SyncPhase::Synced))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fake.list_count(),
        before + 1,
        "one annotation change must give exactly one sync"
    );
}

#[tokio::test]
async fn changing_viewers_updates_the_store_without_refetching() {
    let fake = Arc::new(FakeConfluence::default()).with_space("SUP", 4);
    let (op, store) = operator("viewers", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("sup", "acme", "SUP", EVERYONE()).await;
    op.wait_ready("sup").await;
    let fetched_before = fake.fetched.load(std::sync::atomic::Ordering::SeqCst);

    op.spaces()
        .patch(
            "sup",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"viewers": {"visibility": "Segments", "segments": ["agents-and-admins", "partners"]}}})),
        )
        .await
        .unwrap();
    let space = op.wait_ready("sup").await;
    assert_eq!(
        space.status.unwrap().viewers.as_deref(),
        Some("agents-and-admins,partners")
    );
    let docs = store.documents(&SpaceScope::new(&op.namespace, "sup"));
    assert_eq!(docs.len(), 4);
    for d in docs {
        assert_eq!(
            d.audience,
            Audience::Segments(vec!["agents-and-admins".into(), "partners".into()])
        );
    }
    assert_eq!(
        fake.fetched.load(std::sync::atomic::Ordering::SeqCst),
        fetched_before,
        "viewer change must not refetch bodies"
    );
}

#[tokio::test]
async fn deleting_a_space_removes_its_content_then_the_object() {
    let fake = Arc::new(FakeConfluence::default()).with_space("DOC", 6);
    let (op, store) = operator("delete-space", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("doc", "acme", "DOC", EVERYONE()).await;
    op.wait_ready("doc").await;
    assert_eq!(store.total(), 6);

    op.spaces()
        .delete("doc", &DeleteParams::default())
        .await
        .unwrap();
    op.wait_space_gone("doc").await;
    assert_eq!(
        store.total(),
        0,
        "content must be purged before the object goes"
    );
}

#[tokio::test]
async fn deleting_a_site_garbage_collects_its_spaces_and_their_content() {
    let fake = Arc::new(FakeConfluence::default())
        .with_space("AAA", 3)
        .with_space("BBB", 4);
    let (op, store) = operator("delete-site", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("aaa", "acme", "AAA", EVERYONE()).await;
    op.create_space(
        "bbb",
        "acme",
        "BBB",
        json!({"visibility": "Segments", "segments": ["signed-in-users"]}),
    )
    .await;
    op.wait_ready("aaa").await;
    op.wait_ready("bbb").await;
    assert_eq!(store.total(), 7);

    let bg = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    op.sites().delete("acme", &bg).await.unwrap();
    op.wait_space_gone("aaa").await;
    op.wait_space_gone("bbb").await;
    assert_eq!(store.total(), 0);
}

#[tokio::test]
async fn personal_space_is_rejected_by_the_api_server() {
    let fake = Arc::new(FakeConfluence::default());
    let (op, _store) = operator("personal", &fake).await;
    let err = op
        .try_create_space("mine", "acme", "~alice", EVERYONE())
        .await
        .expect_err("a personal space key must be refused");
    let msg = err.to_string();
    assert!(msg.contains("personal spaces"), "unexpected error: {msg}");
}

#[tokio::test]
async fn eleven_segments_are_rejected() {
    let fake = Arc::new(FakeConfluence::default());
    let (op, _store) = operator("segments", &fake).await;
    let segments: Vec<String> = (1..=11).map(|n| format!("seg-{n}")).collect();
    let err = op
        .try_create_space(
            "many",
            "acme",
            "ENG",
            json!({"visibility": "Segments", "segments": segments}),
        )
        .await
        .expect_err("11 segments must be refused");
    assert!(
        err.to_string().contains("must have at most 10 items"),
        "unexpected error: {err}"
    );

    let err = op
        .try_create_space(
            "dupes",
            "acme",
            "ENG",
            json!({"visibility": "Segments", "segments": ["a", "a"]}),
        )
        .await
        .expect_err("duplicate segments must be refused");
    assert!(
        err.to_string().contains("Duplicate value"),
        "unexpected error: {err}"
    );

    let err = op
        .try_create_space("empty", "acme", "ENG", json!({"visibility": "Segments"}))
        .await
        .expect_err("Segments without segments must be refused");
    assert!(
        err.to_string().contains("1 to 10 segments"),
        "unexpected error: {err}"
    );
}

#[tokio::test]
async fn missing_secret_gives_a_condition_then_recovers() {
    let fake = Arc::new(FakeConfluence::default()).with_space("HR", 2);
    let (op, _store) = operator("secret", &fake).await;
    op.create_site("acme", "http://confluence.test", "late-creds")
        .await;
    op.create_space("hr", "acme", "HR", EVERYONE()).await;

    let message = op
        .wait_status("hr", "SecretNotFound condition", |st| {
            conditions::get(&st.conditions, "Ready")
                .filter(|c| c.status == "False" && c.reason == "SecretNotFound")
                .map(|c| c.message.clone())
        })
        .await;
    assert!(
        message.contains("\"late-creds\""),
        "message should name the Secret: {message}"
    );

    op.create_secret("late-creds").await;
    let space = op.wait_ready("hr").await;
    assert_eq!(space.status.unwrap().items, Some(2));
}

#[tokio::test]
async fn missing_site_gives_a_condition_then_recovers() {
    let fake = Arc::new(FakeConfluence::default()).with_space("FIN", 3);
    let (op, _store) = operator("site", &fake).await;
    op.create_space("fin", "acme", "FIN", EVERYONE()).await;
    op.wait_status("fin", "SiteNotFound condition naming the site", |st| {
        conditions::get(&st.conditions, "Ready")
            .filter(|c| c.reason == "SiteNotFound" && c.message.contains("\"acme\""))
            .map(|_| ())
    })
    .await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    let space = op.wait_ready("fin").await;
    assert_eq!(space.status.unwrap().items, Some(3));
}

#[tokio::test]
async fn connected_by_records_who_created_the_space() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::api::PostParams;
    let fake = Arc::new(FakeConfluence::default()).with_space("KB", 2);
    let (op, _store) = operator("connected-by", &fake).await;
    harness::kubectl_apply("charts/confluence-operator/files/connected-by-policy.yaml");

    // alice may manage spaces in this namespace, nothing else.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "space-editor"},
        "rules": [{"apiGroups": ["confluence-operator.io"], "resources": ["confluencespaces"], "verbs": ["create", "get", "patch", "update"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "alice-space-editor"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "space-editor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}]
    }))
    .unwrap();
    kube::Api::<Role>::namespaced(op.client.clone(), &op.namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    kube::Api::<RoleBinding>::namespaced(op.client.clone(), &op.namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    let alice: kube::Api<confluence_operator::api::ConfluenceSpace> = kube::Api::namespaced(
        harness::impersonating("alice@example.com").await,
        &op.namespace,
    );
    let forged = |name: &str| -> confluence_operator::api::ConfluenceSpace {
        serde_json::from_value(json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSpace",
            "metadata": {"name": name, "annotations": {"confluence-operator.io/connected-by": "mallory"}},
            "spec": {"siteRef": {"name": "acme"}, "spaceKey": "KB", "viewers": {"visibility": "Everyone"}}
        }))
        .unwrap()
    };
    // A new policy takes a moment to be picked up by the API server.
    support::wait_for(
        "the connected-by policy to be active",
        Duration::from_secs(30),
        || {
            let alice = alice.clone();
            let probe = forged("probe");
            async move {
                let pp = PostParams {
                    dry_run: true,
                    ..PostParams::default()
                };
                let made = alice.create(&pp, &probe).await.map_err(|e| e.to_string())?;
                let by = made
                    .metadata
                    .annotations
                    .unwrap_or_default()
                    .get("confluence-operator.io/connected-by")
                    .cloned();
                Ok((by.as_deref() == Some("alice@example.com")).then_some(()))
            }
        },
    )
    .await;

    alice
        .create(&PostParams::default(), &forged("kb"))
        .await
        .unwrap();
    let space = op.wait_ready("kb").await;
    assert_eq!(
        space.status.unwrap().connected_by.as_deref(),
        Some("alice@example.com")
    );

    // Nobody can rewrite it later.
    alice
        .patch("kb", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"confluence-operator.io/connected-by": "mallory"}}})))
        .await
        .unwrap();
    let space = op.spaces().get("kb").await.unwrap();
    assert_eq!(
        space
            .metadata
            .annotations
            .unwrap_or_default()
            .get("confluence-operator.io/connected-by")
            .map(String::as_str),
        Some("alice@example.com")
    );
}

#[tokio::test]
async fn annotating_a_site_resyncs_all_of_its_spaces() {
    let fake = Arc::new(FakeConfluence::default())
        .with_space("ONE", 2)
        .with_space("TWO", 3);
    let (op, _store) = operator("site-resync", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("one", "acme", "ONE", EVERYONE()).await;
    op.create_space("two", "acme", "TWO", EVERYONE()).await;
    op.wait_ready("one").await;
    op.wait_ready("two").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fake.list_count();

    op.request_resync(&op.sites(), "acme", "now-1").await;
    for name in ["one", "two"] {
        op.wait_status(name, "handled the site resync", |st| {
            (st.last_handled_site_resync_at.as_deref() == Some("now-1")
                && st.phase == Some(SyncPhase::Synced))
            .then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.list_count(),
        before + 2,
        "each space syncs exactly once"
    );
}

// Multi-threaded: `kubectl wait` blocks a thread while the controller runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_and_wait_show_what_users_expect() {
    let fake = Arc::new(FakeConfluence::default()).with_space("ENG", 12);
    let (op, _store) = operator("kubectl", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space(
        "eng",
        "acme",
        "ENG",
        json!({"visibility": "Segments", "segments": ["agents-and-admins"]}),
    )
    .await;

    let wait = support::kubectl()
        .args([
            "wait",
            "-n",
            &op.namespace,
            "confluencespace/eng",
            "--for=condition=Ready",
            "--timeout=60s",
        ])
        .output()
        .unwrap();
    assert!(
        wait.status.success(),
        "kubectl wait failed: {}",
        String::from_utf8_lossy(&wait.stderr)
    );

    let out = support::kubectl()
        .args(["get", "cspace", "-n", &op.namespace])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "SITE", "SPACE", "ITEMS", "STATUS", "LAST", "SYNCED", "AGE"
        ],
        "{text}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..5], ["eng", "acme", "ENG", "12", "Synced"], "{text}");

    // The `confluence` category lists both kinds.
    let out = support::kubectl()
        .args(["get", "confluence", "-n", &op.namespace, "-o", "name"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("confluencesite.confluence-operator.io/acme"),
        "{text}"
    );
    assert!(
        text.contains("confluencespace.confluence-operator.io/eng"),
        "{text}"
    );
}

#[tokio::test]
async fn a_space_confluence_reports_as_personal_is_stalled_with_a_clear_condition() {
    let fake = Arc::new(FakeConfluence::default()).with_space("PERSONALBOB", 3);
    let (op, store) = operator("personal-type", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("bob", "acme", "PERSONALBOB", EVERYONE())
        .await;
    let stalled = op
        .wait_status("bob", "Stalled condition", |st| {
            conditions::get(&st.conditions, "Stalled")
                .filter(|c| c.status == "True")
                .cloned()
        })
        .await;
    assert_eq!(stalled.reason, "PersonalSpaceRefused");
    assert!(
        stalled.message.contains("personal space"),
        "{}",
        stalled.message
    );
    assert_eq!(store.total(), 0);
}

#[tokio::test]
async fn suspended_space_keeps_content_and_stops_syncing() {
    let fake = Arc::new(FakeConfluence::default()).with_space("SUS", 3);
    let (op, store) = operator("suspend", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("sus", "acme", "SUS", EVERYONE()).await;
    op.wait_ready("sus").await;
    op.spaces()
        .patch(
            "sus",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    op.wait_status("sus", "phase Suspended", |st| {
        (st.phase == Some(SyncPhase::Suspended)).then_some(())
    })
    .await;
    let before = fake.list_count();
    op.request_resync(&op.spaces(), "sus", "while-suspended")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.list_count(), before, "a suspended space must not sync");
    assert_eq!(store.total(), 3, "suspending keeps what was synced");
}

#[tokio::test]
async fn sync_events_are_recorded_for_kubectl_describe() {
    use k8s_openapi::api::events::v1::Event;
    let fake = Arc::new(FakeConfluence::default()).with_space("EVT", 2);
    let (op, _store) = operator("events", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("evt", "acme", "EVT", EVERYONE()).await;
    op.wait_ready("evt").await;
    let events: kube::Api<Event> = kube::Api::namespaced(op.client.clone(), &op.namespace);
    let reasons = support::wait_for(
        "SyncStarted and Synced events",
        Duration::from_secs(20),
        || {
            let events = events.clone();
            async move {
                let list = events
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let reasons: Vec<String> = list
                    .items
                    .iter()
                    .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("evt"))
                    .filter_map(|e| e.reason.clone())
                    .collect();
                let done = reasons.iter().any(|r| r == "SyncStarted")
                    && reasons.iter().any(|r| r == "Synced");
                if done {
                    Ok(Some(reasons))
                } else {
                    Err(format!("{reasons:?}"))
                }
            }
        },
    )
    .await;
    assert!(!reasons.iter().any(|r| r == "SyncFailed"), "{reasons:?}");

    // Each later sync shows its own trigger and counts, not the first sync's note.
    for at in ["2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"] {
        op.request_resync(&op.spaces(), "evt", at).await;
        op.wait_status("evt", "the resync to finish", |st| {
            (st.last_handled_resync_at.as_deref() == Some(at)
                && st.phase == Some(SyncPhase::Synced))
            .then_some(())
        })
        .await;
    }
    let notes = support::wait_for("one event per sync", Duration::from_secs(20), || {
        let events = events.clone();
        async move {
            let list = events
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let notes: Vec<String> = list
                .items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("evt"))
                .filter(|e| e.reason.as_deref() == Some("SyncStarted"))
                .filter_map(|e| e.note.clone())
                .collect();
            if notes.len() >= 3 {
                Ok(Some(notes))
            } else {
                Err(format!("{notes:?}"))
            }
        }
    })
    .await;
    for at in ["2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"] {
        assert!(
            notes.iter().any(|n| n.contains(at)),
            "no SyncStarted event names the resync request {at}: {notes:?}"
        );
    }
    let synced: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("evt"))
        .filter(|e| e.reason.as_deref() == Some("Synced"))
        .filter_map(|e| e.note)
        .collect();
    assert!(
        synced.iter().any(|n| n.contains("2 fetched"))
            && synced.iter().any(|n| n.contains("0 fetched")),
        "Synced events must carry each sync's own counts: {synced:?}"
    );
}

#[tokio::test]
async fn a_restarted_operator_refills_an_emptied_store_without_waiting_a_day() {
    let fake = Arc::new(FakeConfluence::default()).with_space("MEM", 5);
    let (op, _store) = operator("restart", &fake).await;
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("mem", "acme", "MEM", EVERYONE()).await;
    op.wait_ready("mem").await;
    let (client, namespace) = (op.client.clone(), op.namespace.clone());
    drop(op);

    // A new process with an empty (in-memory) store.
    let fresh = Arc::new(MemoryStore::new());
    let op = harness::start_in(
        client,
        namespace,
        Arc::new(FakeFactory(fake.clone())),
        vec![fresh.clone() as Arc<dyn Store>],
    );
    support::wait_for("the store to be refilled", Duration::from_secs(30), || {
        let fresh = fresh.clone();
        async move { Ok((fresh.total() == 5).then_some(())) }
    })
    .await;
    let space = op.spaces().get("mem").await.unwrap();
    assert_eq!(space.status.unwrap().items, Some(5));
}

#[tokio::test]
async fn syncs_at_once_are_bounded_and_a_slow_space_does_not_hold_up_the_others() {
    // Two slots; one space whose listing takes far longer than the others'.
    let fake = Arc::new(FakeConfluence::default())
        .with_space("SLOW", 3)
        .slow_listing("SLOW", Duration::from_secs(30));
    let keys: Vec<String> = (1..=6).map(|i| format!("Q{i}")).collect();
    for key in &keys {
        fake.with_space(key, 2)
            .slow_listing(key, Duration::from_millis(700));
    }
    let client = support::client().await;
    harness::install_crds(&client).await;
    let namespace = support::test_namespace(&client, "bounded").await;
    let store = Arc::new(MemoryStore::new());
    let op = harness::start_in_with(
        client,
        namespace,
        Arc::new(FakeFactory(fake.clone())),
        vec![store.clone() as Arc<dyn Store>],
        confluence_operator::controller::Settings {
            max_concurrent_syncs: 2,
            ..harness::test_settings()
        },
    );
    op.create_secret("creds").await;
    op.create_site("acme", "http://confluence.test", "creds")
        .await;
    op.create_space("slow", "acme", "SLOW", EVERYONE()).await;
    // Let the slow space take its slot first.
    support::wait_for("the slow listing to start", Duration::from_secs(20), || {
        let fake = fake.clone();
        async move {
            Ok::<_, String>(
                (fake.listing_now.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(()),
            )
        }
    })
    .await;
    for key in &keys {
        op.create_space(&key.to_lowercase(), "acme", key, EVERYONE())
            .await;
    }
    // All the quick spaces finish through the one free slot while the slow
    // one is still listing.
    for key in &keys {
        op.wait_ready(&key.to_lowercase()).await;
    }
    let slow = op.spaces().get("slow").await.unwrap();
    assert_ne!(
        slow.status.and_then(|s| s.phase),
        Some(SyncPhase::Synced),
        "the slow space should still be syncing"
    );
    let peak = fake.listing_peak.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        peak, 2,
        "at most two syncs at once, and two did run together"
    );
}

#[tokio::test]
async fn a_repeated_event_message_is_one_series_and_a_new_message_a_new_event() {
    use confluence_operator::controller::events::{EventRecorder, Note};
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event;
    use kube::runtime::events::EventType;
    let fake = Arc::new(FakeConfluence::default());
    let (op, _store) = operator("series", &fake).await;
    let recorder = EventRecorder::new(op.client.clone(), "test".into(), "test-0".into());
    let regarding = ObjectReference {
        api_version: Some("confluence-operator.io/v1alpha1".into()),
        kind: Some("ConfluenceSpace".into()),
        name: Some("eng".into()),
        namespace: Some(op.namespace.clone()),
        uid: Some("11111111-2222-3333-4444-555555555555".into()),
        ..ObjectReference::default()
    };
    let note = |text| Note {
        type_: EventType::Warning,
        reason: "SyncFailed",
        action: "Sync",
        note: text,
    };
    for text in [
        "site unreachable",
        "site unreachable",
        "site unreachable",
        "bad token",
    ] {
        recorder.publish(&note(text), &regarding).await.unwrap();
    }
    let events: kube::Api<Event> = kube::Api::namespaced(op.client.clone(), &op.namespace);
    let mut seen: Vec<(String, i32)> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SyncFailed"))
        .map(|e| (e.note.unwrap_or_default(), e.series.map_or(1, |s| s.count)))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("bad token".to_string(), 1),
            ("site unreachable".to_string(), 3)
        ]
    );
}
