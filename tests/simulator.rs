//! The simulator's admin API and lifecycle.

use confluence_sim::{FaultConfig, SimConfig, Simulator, Stats};
use serde_json::{Value, json};
use std::time::Duration;

async fn sim() -> Simulator {
    Simulator::start(SimConfig {
        spaces: 1,
        pages: 10,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

#[tokio::test]
async fn admin_api_changes_content_and_faults() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let base = sim.base_url();

    let created: Value = http
        .post(format!("{base}/_sim/pages"))
        .json(&json!({ "space_key": "ENG", "title": "From admin", "body": "<p>x</p>", "labels": ["faq"] }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_u64().expect("id");
    assert_eq!(sim.page(id).expect("page").labels, ["faq"]);

    let edited: Value = http
        .put(format!("{base}/_sim/pages/{id}"))
        .json(&json!({ "body": "<p>y</p>" }))
        .send()
        .await
        .expect("edit")
        .json()
        .await
        .expect("json");
    assert_eq!(edited["version"], 2);

    let status = http
        .put(format!("{base}/_sim/pages/{id}/restriction"))
        .send()
        .await
        .expect("restrict")
        .status();
    assert_eq!(status, 204);
    let page = sim.page(id).expect("page");
    assert!(page.restricted);
    assert_eq!(page.version, 2, "restrictions do not bump the version");

    // API requests need credentials; the admin API does not.
    let unauthorized = http
        .get(format!("{base}/rest/api/content/{id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(unauthorized.status(), 401);
    let ok: Value = http
        .get(format!(
            "{base}/rest/api/content/{id}?expand=restrictions.read.restrictions.group,version"
        ))
        .bearer_auth("demo-token")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(ok["version"]["number"], 2);
    assert_eq!(
        ok["restrictions"]["read"]["restrictions"]["group"]["size"],
        1
    );

    let faults = FaultConfig {
        rate_limit_budget: 2,
        retry_after_secs: 7,
        ..FaultConfig::default()
    };
    http.put(format!("{base}/_sim/faults"))
        .json(&faults)
        .send()
        .await
        .expect("faults");
    assert_eq!(sim.faults(), faults);
    let limited = http
        .get(format!("{base}/wiki/api/v2/spaces"))
        .basic_auth("demo@example.com", Some("demo-token"))
        .send()
        .await
        .expect("get");
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");

    let stats: Stats = http
        .get(format!("{base}/_sim/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats, sim.stats());
    assert_eq!(stats.get("GET /rest/api/content/{id}"), 2);
    assert_eq!(stats.get("GET /wiki/api/v2/spaces"), 1);
    assert_eq!(stats.rate_limited, 1);

    http.post(format!("{base}/_sim/stats/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(sim.stats().total, 0);
    let status = http
        .delete(format!("{base}/_sim/pages/{id}"))
        .send()
        .await
        .expect("delete")
        .status();
    assert_eq!(status, 204);
    assert!(sim.page(id).is_none());
}

#[tokio::test]
async fn content_is_deterministic_per_seed() {
    let a = sim().await;
    let b = sim().await;
    assert_eq!(a.pages("ENG"), b.pages("ENG"));
    let keys: Vec<String> = a.spaces().into_iter().map(|s| s.key).collect();
    assert_eq!(keys, ["ENG", "~alice"]);
}

#[tokio::test]
async fn server_stops_on_shutdown_and_on_drop() {
    for explicit in [true, false] {
        let sim = sim().await;
        let addr = sim.addr();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
        if explicit {
            sim.shutdown().await;
        } else {
            drop(sim);
        }
        let mut refused = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "explicit={explicit}: still listening");
    }
}

/// Each endpoint's documented `status` default: v2 page listings return
/// current and archived items, v1 current only; direct v2 lookups see every
/// status. Folders answer on their own endpoint, not on `/pages/{id}`.
#[tokio::test]
async fn statuses_and_folders_follow_each_endpoints_rules() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(format!("{}{path}", sim.base_url()))
            .basic_auth(sim.user(), Some(sim.token()));
        async move {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let pages = sim.pages("ENG");
    let (archived, trashed) = (pages[8].id, pages[9].id);
    sim.set_status(archived, confluence_sim::Status::Archived)
        .unwrap();
    sim.set_status(trashed, confluence_sim::Status::Trashed)
        .unwrap();
    let space_id = sim.spaces()[0].id;
    let count = |v: &Value| v["results"].as_array().map_or(0, Vec::len);

    let (_, v2) = get(format!("/wiki/api/v2/spaces/{space_id}/pages?limit=50")).await;
    assert_eq!(count(&v2), 9, "v2 default: current and archived");
    let (_, v2) = get(format!(
        "/wiki/api/v2/spaces/{space_id}/pages?limit=50&status=current"
    ))
    .await;
    assert_eq!(count(&v2), 8);
    let (_, v1) = get("/rest/api/content?spaceKey=ENG&limit=50".into()).await;
    assert_eq!(count(&v1), 8, "v1 default: current");
    let (code, one) = get(format!("/wiki/api/v2/pages/{trashed}")).await;
    assert_eq!((code, one["status"].as_str()), (200, Some("trashed")));
    let (code, _) = get(format!("/rest/api/content/{trashed}")).await;
    assert_eq!(code, 404, "v1 lookups default to current");

    let folder = sim
        .create_parent(
            "ENG",
            confluence_sim::ContentType::Folder,
            "F",
            Some(pages[0].id),
        )
        .unwrap();
    let (code, f) = get(format!("/wiki/api/v2/folders/{folder}")).await;
    assert_eq!(code, 200);
    assert_eq!(f["parentId"], pages[0].id.to_string());
    assert_eq!(f["parentType"], "page");
    let (code, _) = get(format!("/wiki/api/v2/pages/{folder}")).await;
    assert_eq!(code, 404);
    let child = sim
        .create_page("ENG", "Child", Some(folder), "<p>c</p>")
        .unwrap();
    let (_, c) = get(format!("/wiki/api/v2/pages/{child}")).await;
    assert_eq!(c["parentType"], "folder");
}
