//! Pages below folders and other non-page parents (whiteboards, databases):
//! synced when every parent up the tree is open, never when one restricts
//! viewing, and never left out silently.

mod harness;
mod loopback;
mod sim_site;
mod support;
mod zendesk_standin;

use confluence_operator::confluence::{ConfluenceApi, Flavor, LeftOut};
use confluence_operator::controller::ClientFactory;
use confluence_operator::model::SpaceScope;
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_operator::store::memory::MemoryStore;
use confluence_operator::store::zendesk::ZendeskSink;
use confluence_operator::store::{Search, Store};
use confluence_operator::sync::{SyncRequest, sync_space};
use confluence_sim::{ContentType, NewPage, Simulator};
use serde_json::json;
use std::sync::Arc;
use zendesk_standin::Zendesk;

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::DataCenter];

/// Words that only occur in pages that must never leave Confluence.
const SECRET_WORD: &str = "quokkavault";

/// The tree built in ENG below its home page:
///
/// ```text
/// Home
/// ├── Folder "Handbook"            (open)
/// │   ├── Page "Open under folder"
/// │   └── Folder "Nested"          (open)
/// │       └── Page "Deep under folders"
/// └── Folder "Board only"          (view-restricted)
///     ├── Page "Secret in folder"
///     └── Folder "Inner"           (open, inherits the restriction)
///         └── Page "Secret deeper"
/// Whiteboard "Plans"               (view-restricted, top level)
/// └── Page "Secret under whiteboard"
/// Database "Inventory"             (open, top level)
/// └── Page "Open under database"
/// ```
struct Tree {
    handbook: u64,
    nested: u64,
    restricted_folder: u64,
    open: Vec<u64>,
    secret: Vec<u64>,
}

fn page(sim: &Simulator, title: &str, parent: u64, body: &str) -> u64 {
    sim.create(NewPage {
        space_key: "ENG".into(),
        title: title.into(),
        parent_id: Some(parent),
        body: Some(body.into()),
        labels: Vec::new(),
        content_type: ContentType::Page,
    })
    .expect("create page")
}

fn build_tree(sim: &Simulator) -> Tree {
    let home = sim.spaces()[0].homepage_id.expect("home page");
    let folder = |title: &str, parent: Option<u64>| {
        sim.create_parent("ENG", ContentType::Folder, title, parent)
            .expect("create folder")
    };
    let handbook = folder("Handbook", Some(home));
    let nested = folder("Nested", Some(handbook));
    let restricted_folder = folder("Board only", Some(home));
    let inner = folder("Inner", Some(restricted_folder));
    let whiteboard = sim
        .create_parent("ENG", ContentType::Whiteboard, "Plans", None)
        .expect("whiteboard");
    let database = sim
        .create_parent("ENG", ContentType::Database, "Inventory", None)
        .expect("database");
    sim.set_restricted(restricted_folder, true).unwrap();
    sim.set_restricted(whiteboard, true).unwrap();
    let secret = format!("<p>Board minutes {SECRET_WORD} acquisition.</p>");
    Tree {
        handbook,
        nested,
        restricted_folder,
        open: vec![
            page(sim, "Open under folder", handbook, "<p>Handbook intro.</p>"),
            page(sim, "Deep under folders", nested, "<p>Deep page.</p>"),
            page(sim, "Open under database", database, "<p>Inventory.</p>"),
        ],
        secret: vec![
            page(sim, "Secret in folder", restricted_folder, &secret),
            page(sim, "Secret deeper", inner, &secret),
            page(sim, "Secret under whiteboard", whiteboard, &secret),
        ],
    }
}

/// A folder the operator's credentials cannot look up (Confluence answers
/// 404 for items the caller may not view), with a page below it.
fn unreadable_folder_with_page(sim: &Simulator) -> u64 {
    let home = sim.spaces()[0].homepage_id.expect("home page");
    let vault = sim
        .create_parent("ENG", ContentType::Folder, "Vault", Some(home))
        .expect("folder");
    sim.hide_from_lookups(vault);
    page(
        sim,
        "Behind the vault",
        vault,
        &format!("<p>{SECRET_WORD}</p>"),
    )
}

async fn sim() -> Simulator {
    sim_site::one_space(12).await
}

fn client(sim: &Simulator, flavor: Flavor) -> Arc<dyn ConfluenceApi> {
    sim_site::quick_client(sim, flavor, 5)
}

fn request(space: confluence_operator::confluence::SpaceInfo) -> SyncRequest<'static> {
    SyncRequest {
        batch_size: 4,
        ..sim_site::sync_request(space)
    }
}

#[tokio::test]
async fn pages_below_open_folders_sync_with_the_folder_in_their_path_and_restricted_ones_never_do()
{
    for flavor in FLAVORS {
        let sim = sim().await;
        let tree = build_tree(&sim);
        let client = client(&sim, flavor);
        let space = client.space("ENG").await.expect("space");
        let memory = Arc::new(MemoryStore::new());
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(EmbeddedStore::open(&dir.path().join("index")).unwrap());
        // An external sink too: Zendesk Help Center external content.
        let zendesk = Zendesk::start().await;
        let sink =
            Arc::new(ZendeskSink::new(zendesk.config(), &dir.path().join("zd.json")).unwrap());
        let stores: Vec<Arc<dyn Store>> = vec![memory.clone(), index.clone(), sink];
        let req = request(space);
        let published = |zd: &Zendesk| -> Vec<String> {
            zd.records()
                .values()
                .map(|r| format!("{} {}", r["title"], r["body"]))
                .collect()
        };

        let report = sync_space(client.as_ref(), &stores, &req)
            .await
            .expect("sync");
        assert_eq!(
            report.left_out,
            LeftOut {
                restricted_ancestor: 3,
                ..LeftOut::default()
            },
            "{flavor:?}: the three pages below the restricted folder and whiteboard, by reason"
        );
        let docs = memory.documents(&req.scope);
        let stored = |id: u64| docs.iter().find(|d| d.page.id == id.to_string());
        for id in &tree.open {
            assert!(stored(*id).is_some(), "{flavor:?}: open page {id} synced");
        }
        for id in &tree.secret {
            assert!(stored(*id).is_none(), "{flavor:?}: page {id} leaked");
        }
        assert_eq!(
            report.items,
            12 + 3,
            "{flavor:?}: generated pages + open ones"
        );

        // The ancestor path names the folders, root first.
        let deep = stored(tree.open[1]).unwrap();
        let path: Vec<&str> = deep
            .page
            .ancestors
            .iter()
            .map(|a| a.title.as_str())
            .collect();
        assert_eq!(
            path,
            ["Engineering Home", "Handbook", "Nested"],
            "{flavor:?}"
        );
        assert_eq!(
            deep.page.ancestors[1].id,
            tree.handbook.to_string(),
            "{flavor:?}"
        );
        assert_eq!(deep.page.ancestors[2].id, tree.nested.to_string());

        // Neither store's search finds the restricted pages, for any caller.
        let everyone = ["agents-and-admins".to_string()];
        for store in [memory.clone() as Arc<dyn Search>, index.clone()] {
            let hits = store.search(SECRET_WORD, &everyone, 50).await.unwrap();
            assert!(hits.is_empty(), "{flavor:?}: search leaked {hits:?}");
        }

        // Nor does the Help Center: the sink got the open pages only.
        let records = published(&zendesk);
        assert_eq!(
            records.len(),
            docs.len(),
            "{flavor:?}: sink and store agree"
        );
        assert!(
            records.iter().all(|r| !r.contains(SECRET_WORD)),
            "{flavor:?}: a restricted page reached Zendesk"
        );

        // Lifting the folder's restriction brings its subtree in; putting it
        // back takes it out again at the next sync.
        sim.set_restricted(tree.restricted_folder, false).unwrap();
        let report = sync_space(client.as_ref(), &stores, &req).await.unwrap();
        assert_eq!(report.left_out.restricted_ancestor, 1, "{flavor:?}");
        assert_eq!(report.fetched, 2, "{flavor:?}");
        assert!(
            published(&zendesk).iter().any(|r| r.contains(SECRET_WORD)),
            "{flavor:?}: once open, the folder's pages are published (so the checks see bodies)"
        );
        sim.set_restricted(tree.restricted_folder, true).unwrap();
        let report = sync_space(client.as_ref(), &stores, &req).await.unwrap();
        assert_eq!(report.left_out.restricted_ancestor, 3, "{flavor:?}");
        assert_eq!(report.deleted, 2, "{flavor:?}");
        assert_eq!(
            report.kept_unconfirmed, 0,
            "{flavor:?}: left-out items need no lookup"
        );
        for store in [memory.clone() as Arc<dyn Search>, index.clone()] {
            let hits = store.search(SECRET_WORD, &everyone, 50).await.unwrap();
            assert!(hits.is_empty(), "{flavor:?}: search leaked {hits:?}");
        }
        assert!(
            published(&zendesk).iter().all(|r| !r.contains(SECRET_WORD)),
            "{flavor:?}: Zendesk kept a page whose folder was restricted again"
        );
    }
}

#[tokio::test]
async fn a_page_below_a_parent_that_cannot_be_read_is_left_out_as_unverifiable() {
    for flavor in FLAVORS {
        let sim = sim().await;
        build_tree(&sim);
        let behind = unreadable_folder_with_page(&sim);
        let client = client(&sim, flavor);
        let space = client.space("ENG").await.expect("space");
        let memory = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![memory.clone()];
        let req = request(space);
        let report = sync_space(client.as_ref(), &stores, &req).await.unwrap();
        assert_eq!(
            report.left_out,
            LeftOut {
                restricted_ancestor: 3,
                unverifiable: 1,
                ..LeftOut::default()
            },
            "{flavor:?}"
        );
        assert!(
            !memory
                .documents(&req.scope)
                .iter()
                .any(|d| d.page.id == behind.to_string()),
            "{flavor:?}: fails closed"
        );
        assert_eq!(report.items, 15, "{flavor:?}: everything else still syncs");
    }
}

#[tokio::test]
async fn include_restricted_syncs_pages_below_restricted_folders_too() {
    for flavor in FLAVORS {
        let sim = sim().await;
        let tree = build_tree(&sim);
        let client = client(&sim, flavor);
        let space = client.space("ENG").await.expect("space");
        let memory = Arc::new(MemoryStore::new());
        let stores: Vec<Arc<dyn Store>> = vec![memory.clone()];
        let mut req = request(space);
        req.options.include_restricted = true;
        let report = sync_space(client.as_ref(), &stores, &req).await.unwrap();
        assert_eq!(report.left_out, LeftOut::default(), "{flavor:?}");
        let docs = memory.documents(&req.scope);
        for id in tree.open.iter().chain(&tree.secret) {
            assert!(docs.iter().any(|d| d.page.id == id.to_string()));
        }
    }
}

/// On the real control plane: the operator syncs the folder tree, and
/// `kubectl describe` tells the user what was left out and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_describe_count_left_out_pages_by_reason() {
    let sim = sim().await;
    let tree = build_tree(&sim);
    unreadable_folder_with_page(&sim);
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(EmbeddedStore::open(&dir.path().join("index")).unwrap());
    let op = harness::start(
        "folders",
        Arc::new(ClientFactory),
        vec![index.clone() as Arc<dyn Store>],
    )
    .await;
    // The harness Secret holds Cloud-style basic credentials for its own
    // user; the simulator's are needed here.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"email": sim.user(), "apiToken": sim.token()}
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(op.client.clone(), &op.namespace)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    let site: confluence_operator::api::ConfluenceSite = serde_json::from_value(json!({
        "apiVersion": "confluence-operator.io/v1alpha1", "kind": "ConfluenceSite",
        "metadata": {"name": "acme"},
        "spec": {"url": sim.cloud_site_url().as_str(), "flavor": "Cloud",
                 "insecureAllowHttp": true, "credentialsSecretRef": {"name": "creds"}}
    }))
    .unwrap();
    op.sites().create(&Default::default(), &site).await.unwrap();
    op.create_space("eng", "acme", "ENG", json!({"visibility": "Everyone"}))
        .await;

    let status = op.wait_ready("eng").await.status.unwrap();
    assert_eq!(status.items, Some(15));
    let result = status.last_sync_result.unwrap();
    let left_out = result.left_out.expect("left-out counts in status");
    assert_eq!(left_out.restricted_ancestor, 3);
    assert_eq!(left_out.restricted + left_out.labels, 0);
    assert_eq!(left_out.unverifiable, 1);
    assert!(
        result
            .message
            .contains("3 under a restricted parent, 1 could not be vetted"),
        "{}",
        result.message
    );
    let scope = SpaceScope::new(&op.namespace, "eng");
    let hits = index
        .search(SECRET_WORD, &["agents-and-admins".to_string()], 50)
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    let open_hits = index.search("Handbook intro", &[], 10).await.unwrap();
    assert!(
        open_hits
            .iter()
            .any(|h| h.id == scope.document_id(&tree.open[0].to_string())),
        "{open_hits:?}"
    );

    let namespace = op.namespace.clone();
    let describe = tokio::task::spawn_blocking(move || {
        support::kubectl()
            .args(["describe", "confluencespace", "eng", "-n", &namespace])
            .output()
            .expect("kubectl describe")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(describe.status.success(), "{text}");
    assert!(text.contains("Left Out:"), "{text}");
    assert!(text.contains("Restricted Ancestor:  3"), "{text}");
    assert!(text.contains("Unverifiable:         1"), "{text}");
    assert!(text.contains("ItemsNotVetted"), "{text}");
    assert!(text.contains("3 under a restricted parent"), "{text}");
}
