//! Fault matrix, hostile Confluence: the simulator's fault API
//! gives answers no well-behaved Confluence gives (malformed JSON, a 200 HTML
//! login page, invalid UTF-8, a body that never ends or trickles, a redirect
//! to another host) and holds pages no sane one holds (10 MB, 100,000 levels
//! deep). The operator is the real binary, run as a child process with the
//! embedded store against the real control plane, so its peak RSS (VmHWM)
//! is measured.
//!
//! Each row checks: while the fault lasts the space's conditions say what is
//! wrong (reason and message) or the sync succeeds with the odd page handled;
//! what was synced before stays searchable; the operator keeps running; the
//! credentials reach no other host and no log line; once the fault is gone
//! and a resync has run, the store holds exactly what Confluence lists (ids
//! and versions).

mod fault_table;
mod harness;
mod operator_process;
mod proc_status;
mod support;

use confluence_operator::api::ConfluenceSpace;
use confluence_operator::api::space::SyncPhase;
use confluence_operator::confluence::Flavor;
use confluence_operator::model::SpaceScope;
use confluence_operator::store::Store;
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_sim::{ContentType, FaultConfig, Hostile, OtherHost, SimConfig, Simulator};
use fault_table::Outcome;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use operator_process::OperatorProcess;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const SPACE: &str = "eng";
const KEY: &str = "ENG";
const USER: &str = "operator@example.com";
/// Distinctive, so a leak into the operator's log is unmistakable.
const TOKEN: &str = "hostile-test-token-5ecr3t";
/// Request deadline given to the operator, so a trickling answer fails fast.
const REQUEST_TIMEOUT: &str = "2s";
/// Peak RSS allowed to the (debug) operator in any row: the response cap is
/// 64 MiB and a 10 MB page is held a few times over while it is converted
/// and indexed.
const PEAK_RSS_BOUND_MIB: f64 = 768.0;

const MUST_FAIL_CLEARLY: &str = "the space reports the fault (Ready=False, reason and message) while it lasts; synced content stays searchable; no crash; peak RSS bounded; credentials reach no other host and no log; after it, one resync makes store = Confluence (ids, versions)";
const MUST_SYNC: &str = "the odd page syncs (or is reported) without a crash; peak RSS bounded; synced content stays; after it, one resync makes store = Confluence (ids, versions)";

/// The simulator, a namespace with a site and one space, and the operator
/// binary syncing it.
struct Rig {
    sim: Simulator,
    client: kube::Client,
    namespace: String,
    op: OperatorProcess,
    api: String,
    dir: tempfile::TempDir,
    first_page: u64,
}

impl Rig {
    async fn start(prefix: &str) -> Rig {
        Rig::start_as(prefix, Flavor::Cloud).await
    }

    async fn start_as(prefix: &str, flavor: Flavor) -> Rig {
        Rig::start_with(prefix, flavor, REQUEST_TIMEOUT, |_| {}).await
    }

    /// `prepare` changes Confluence before the space is created.
    async fn start_with(
        prefix: &str,
        flavor: Flavor,
        request_timeout: &str,
        prepare: impl FnOnce(&Simulator),
    ) -> Rig {
        let sim = Simulator::start(SimConfig {
            spaces: 1,
            pages: 20,
            blogposts: 0,
            user: USER.into(),
            token: TOKEN.into(),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        prepare(&sim);
        let client = support::client().await;
        harness::install_crds(&client).await;
        let namespace = support::test_namespace(&client, prefix).await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                    "stringData": match flavor {
                        Flavor::Cloud => json!({"email": USER, "apiToken": TOKEN}),
                        // a personal access token, sent as a bearer token
                        Flavor::DataCenter => json!({"token": TOKEN}),
                    }
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let op = OperatorProcess::spawn_with(
            &namespace,
            &dir.path().join("data"),
            prefix,
            &["--confluence-request-timeout", request_timeout],
        );
        let first_page = sim
            .pages(KEY)
            .into_iter()
            .find(|p| p.content_type == ContentType::Page && !p.restricted)
            .map(|p| p.id)
            .unwrap();
        let rig = Rig {
            sim,
            client,
            namespace,
            api: format!("http://127.0.0.1:{}", op.port),
            op,
            dir,
            first_page,
        };
        rig.apply(
            "ConfluenceSite",
            "wiki",
            match flavor {
                Flavor::Cloud => {
                    json!({"url": rig.sim.cloud_site_url().as_str(), "insecureAllowHttp": true,
                    "flavor": "Cloud", "credentialsSecretRef": {"name": "creds"}})
                }
                Flavor::DataCenter => {
                    json!({"url": rig.sim.datacenter_site_url().as_str(), "insecureAllowHttp": true,
                    "flavor": "DataCenter", "credentialsSecretRef": {"name": "creds"}})
                }
            },
        )
        .await;
        rig.apply(
            "ConfluenceSpace",
            SPACE,
            json!({"siteRef": {"name": "wiki"}, "spaceKey": KEY, "viewers": {"visibility": "Everyone"}}),
        )
        .await;
        let spaces = rig.spaces();
        support::wait_for("first sync of the space", Duration::from_secs(300), || {
            let spaces = spaces.clone();
            async move {
                let s = spaces.get(SPACE).await.map_err(|e| e.to_string())?;
                let st = s.status.unwrap_or_default();
                if st.phase == Some(SyncPhase::Synced) {
                    return Ok(Some(()));
                }
                Err(format!(
                    "phase {:?}, last result {:?}",
                    st.phase,
                    st.last_sync_result.map(|r| r.message)
                ))
            }
        })
        .await;
        rig
    }

    async fn apply(&self, kind: &str, name: &str, spec: serde_json::Value) {
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "confluence-operator.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": self.namespace}, "spec": spec
        }))
        .unwrap();
        let plural = if kind == "ConfluenceSite" {
            "confluencesites"
        } else {
            "confluencespaces"
        };
        let ar = kube::api::ApiResource {
            group: "confluence-operator.io".into(),
            version: "v1alpha1".into(),
            api_version: "confluence-operator.io/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<kube::api::DynamicObject>::namespaced_with(self.client.clone(), &self.namespace, &ar)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {kind} {name}: {e}"));
    }

    fn spaces(&self) -> Api<ConfluenceSpace> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn resync(&self, value: &str) {
        self.spaces()
            .patch(
                SPACE,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"confluence-operator.io/requestedAt": value}}}),
                ),
            )
            .await
            .unwrap();
    }

    /// Waits until the resync `value` was handled and the sync failed with
    /// `reason`; returns the Ready message and how long it took.
    async fn wait_failed(&self, value: &str, reason: &str) -> Result<(String, Duration), String> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        let mut last = String::from("never read");
        while Instant::now() < deadline {
            let s = self.spaces().get(SPACE).await.map_err(|e| e.to_string())?;
            let st = s.status.unwrap_or_default();
            let ready = st.conditions.iter().find(|c| c.type_ == "Ready");
            if st.last_handled_resync_at.as_deref() == Some(value)
                && st.phase == Some(SyncPhase::Failed)
                && let Some(c) = ready
            {
                if c.status == "False" && c.reason == reason {
                    return Ok((c.message.clone(), started.elapsed()));
                }
                return Err(format!(
                    "the sync failed with Ready={} {}: {}",
                    c.status, c.reason, c.message
                ));
            }
            last = format!(
                "phase {:?}, Ready {:?}",
                st.phase,
                ready.map(|c| &c.message)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("resync {value} did not fail within 120s ({last})"))
    }

    /// Waits until the resync `value` was handled and synced; returns the
    /// sync's figures and how long it took.
    async fn wait_synced(&self, value: &str) -> Result<(String, Duration), String> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        let mut last = String::from("never read");
        while Instant::now() < deadline {
            let s = self.spaces().get(SPACE).await.map_err(|e| e.to_string())?;
            let st = s.status.unwrap_or_default();
            if st.last_handled_resync_at.as_deref() == Some(value) {
                match st.phase {
                    Some(SyncPhase::Synced) => {
                        let r = st.last_sync_result.unwrap_or_default();
                        return Ok((
                            format!(
                                "{} fetched, {} deleted, {} unchanged",
                                r.fetched, r.deleted, r.unchanged
                            ),
                            started.elapsed(),
                        ));
                    }
                    Some(SyncPhase::Failed) => {
                        let msg = st.last_sync_result.map(|r| r.message).unwrap_or_default();
                        return Err(format!("resync {value} failed: {msg}"));
                    }
                    _ => {}
                }
            }
            last = format!("phase {:?}", st.phase);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("resync {value} not synced within 120s ({last})"))
    }

    /// The stored document of a page as the search API serves it to an
    /// anonymous caller (the space is visible to everyone).
    async fn document(&self, page: u64) -> Option<String> {
        let id = SpaceScope::new(&self.namespace, SPACE).document_id(&page.to_string());
        let resp = reqwest::get(format!("{}/v1/documents/{id}", self.api))
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.text().await.ok()
    }

    fn running(&mut self) -> bool {
        self.op.exited().is_none()
    }

    /// Peak resident set size of the operator so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        proc_status::mib(proc_status::Process::Pid(self.op.pid()), "VmHWM:")
    }

    /// Stops the operator (SIGTERM) and compares its store with what
    /// Confluence lists; checks the log holds no credential.
    async fn finish(mut self, o: &mut Outcome) {
        o.check(self.running(), "the operator process died");
        let _ = Command::new("kill")
            .args(["-TERM", &self.op.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.op.kill();
        let log = std::fs::read(&self.op.log).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let basic = base64_basic(USER, TOKEN);
        o.check(
            !log.contains(TOKEN) && !log.contains(&basic),
            "the credentials appear in the operator's log",
        );
        o.check(!log.contains("panicked"), "the operator log shows a panic");
        let listed: BTreeMap<String, u64> = self
            .sim
            .pages(KEY)
            .into_iter()
            .filter(|p| {
                p.content_type == ContentType::Page
                    && p.status == confluence_sim::Status::Current
                    && !p.restricted
            })
            .map(|p| (p.id.to_string(), p.version))
            .collect();
        let path = self.dir.path().join("data/index");
        let stored = tokio::task::spawn_blocking(move || EmbeddedStore::open(&path))
            .await
            .unwrap();
        let stored: BTreeMap<String, u64> = match stored {
            Ok(store) => match store
                .versions(&SpaceScope::new(&self.namespace, SPACE))
                .await
            {
                Ok(v) => v.into_iter().collect(),
                Err(e) => {
                    o.check(false, format!("store unreadable: {e}"));
                    return;
                }
            },
            Err(e) => {
                o.check(false, format!("store does not open: {e}"));
                return;
            }
        };
        let missing = listed
            .iter()
            .filter(|(id, v)| stored.get(*id) != Some(v))
            .count();
        let extra = stored.keys().filter(|id| !listed.contains_key(*id)).count();
        o.check(
            missing == 0 && extra == 0,
            format!("store differs from Confluence: {missing} missing or stale, {extra} orphans"),
        );
    }
}

fn base64_basic(user: &str, token: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
}

fn outcome() -> Outcome {
    Outcome {
        observed: String::new(),
        figures: String::new(),
        failures: Vec::new(),
    }
}

/// A fault the sync cannot get past: while it lasts the space must say so
/// with `reason` and a message containing `says`; then it is cleared,
/// Confluence changes, and one resync must bring the store in line.
async fn failing_fault(
    prefix: &'static str,
    flavor: Flavor,
    faults: FaultConfig,
    reason: &'static str,
    says: &'static str,
    other: Option<OtherHost>,
) -> Outcome {
    let mut o = outcome();
    let mut rig = Rig::start_as(prefix, flavor).await;
    let baseline = rig.peak_rss_mib();
    rig.sim.set_faults(faults);
    rig.resync("during-fault").await;
    let during = rig.wait_failed("during-fault", reason).await;
    let (message, took) = match during {
        Ok(v) => v,
        Err(e) => {
            o.check(false, e);
            (String::new(), Duration::ZERO)
        }
    };
    o.check(
        message.contains(says),
        format!("the Ready message does not say {says:?}: {message:?}"),
    );
    o.check(
        !message.contains(TOKEN),
        "the condition message holds the token",
    );
    o.check(
        rig.document(rig.first_page).await.is_some(),
        "a page synced before the fault is no longer served",
    );
    o.check(rig.running(), "the operator process died during the fault");
    let hostile = rig.sim.stats().hostile;
    o.check(hostile > 0, "the simulator gave no hostile answer");
    let mut visits = String::new();
    if let Some(other) = &other {
        let v = other.visits();
        o.check(
            v.iter().all(|v| !v.authorization && !v.cookie),
            format!("credentials reached the other host: {v:?}"),
        );
        visits = format!(
            "; other host got {} request(s), none with credentials",
            v.len()
        );
    }
    let peak_fault = rig.peak_rss_mib();

    rig.sim.set_faults(FaultConfig::default());
    rig.sim
        .edit_page(rig.first_page, "<p>edited after the fault</p>")
        .unwrap();
    let after = rig.wait_after("after-fault").await;
    let (figures, recovered) = match after {
        Ok(v) => v,
        Err(e) => {
            o.check(false, e);
            (String::new(), Duration::ZERO)
        }
    };
    let peak = rig.peak_rss_mib();
    o.check(
        peak <= PEAK_RSS_BOUND_MIB,
        format!("peak RSS {peak:.0} MiB over {PEAK_RSS_BOUND_MIB} MiB"),
    );
    rig.finish(&mut o).await;
    o.observed = format!(
        "Ready=False {reason}: \"{}\"; earlier content still served{visits}; after the fault: resync {figures}; store = Confluence",
        message.chars().take(220).collect::<String>()
    );
    o.figures = format!(
        "peak RSS {peak_fault:.0} MiB during (idle {baseline:.0}), {peak:.0} MiB at the end; condition after {:.1}s; recovered in {:.1}s",
        took.as_secs_f64(),
        recovered.as_secs_f64()
    );
    o
}

impl Rig {
    async fn wait_after(&self, value: &str) -> Result<(String, Duration), String> {
        self.resync(value).await;
        self.wait_synced(value).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json() {
    fault_table::run_fault(
        "hostile Confluence: malformed JSON (200 application/json) on every listing/fetch",
        MUST_FAIL_CLEARLY,
        failing_fault(
            "hostile-json",
            Flavor::Cloud,
            FaultConfig {
                hostile: Some(Hostile::MalformedJson),
                hostile_path: "/pages".into(),
                ..FaultConfig::default()
            },
            "InvalidResponse",
            "undecodable JSON",
            None,
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_login_page() {
    fault_table::run_fault(
        "hostile Confluence: wrong content type (200 text/html login page of an SSO proxy) on every request",
        MUST_FAIL_CLEARLY,
        failing_fault(
            "hostile-html",
            Flavor::Cloud,
            FaultConfig {
                hostile: Some(Hostile::HtmlLoginPage),
                ..FaultConfig::default()
            },
            "InvalidResponse",
            "text/html instead of JSON",
            None,
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_body() {
    fault_table::run_fault(
        "hostile Confluence: a listing response that never ends (endless fast body)",
        MUST_FAIL_CLEARLY,
        failing_fault(
            "hostile-endless",
            Flavor::Cloud,
            FaultConfig {
                hostile: Some(Hostile::EndlessBody),
                hostile_path: "/pages".into(),
                ..FaultConfig::default()
            },
            "InvalidResponse",
            "larger than 64 MiB",
            None,
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_body() {
    fault_table::run_fault(
        "hostile Confluence: a listing response that trickles forever (1 byte / 200 ms), request deadline 2s",
        MUST_FAIL_CLEARLY,
        failing_fault(
            "hostile-trickle",
            Flavor::Cloud,
            FaultConfig {
                hostile: Some(Hostile::Trickle { interval_ms: 200 }),
                hostile_path: "/pages".into(),
                ..FaultConfig::default()
            },
            "ConnectionFailed",
            "no complete answer within 2s",
            None,
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_another_host() {
    fault_table::run_fault(
        "hostile Confluence: listing redirected (302) to another host that answers an empty listing",
        MUST_FAIL_CLEARLY,
        async {
            let other = OtherHost::start().await.unwrap();
            let to = other.url();
            failing_fault(
                "hostile-redirect",
                Flavor::Cloud,
                FaultConfig {
                    hostile: Some(Hostile::Redirect { to }),
                    hostile_path: "/pages".into(),
                    ..FaultConfig::default()
                },
                "InvalidResponse",
                "redirect to another host",
                Some(other),
            )
            .await
        },
    )
    .await;
}

/// An odd page the sync must get through: `check` inspects its stored
/// document; afterwards the page is deleted and one resync must remove it.
async fn odd_page(
    prefix: &'static str,
    body: String,
    faults: FaultConfig,
    check: fn(&str) -> Result<String, String>,
) -> Outcome {
    let mut o = outcome();
    let rig = Rig::start(prefix).await;
    let baseline = rig.peak_rss_mib();
    let size = body.len();
    let page = rig
        .sim
        .create_page(KEY, "An odd page", None, &body)
        .unwrap();
    drop(body);
    rig.sim.set_faults(faults);
    let during = rig.wait_after("with-odd-page").await;
    let (figures, took) = match during {
        Ok(v) => v,
        Err(e) => {
            o.check(false, e);
            (String::new(), Duration::ZERO)
        }
    };
    let seen = match rig.document(page).await {
        None => {
            o.check(false, "the odd page is not served");
            String::new()
        }
        Some(doc) => match check(&doc) {
            Ok(s) => s,
            Err(e) => {
                o.check(false, e);
                String::new()
            }
        },
    };
    o.check(
        rig.document(rig.first_page).await.is_some(),
        "a page synced before is no longer served",
    );
    let peak_fault = rig.peak_rss_mib();
    rig.sim.set_faults(FaultConfig::default());
    rig.sim.delete_page(page).unwrap();
    let (after, recovered) = match rig.wait_after("odd-page-gone").await {
        Ok(v) => v,
        Err(e) => {
            o.check(false, e);
            (String::new(), Duration::ZERO)
        }
    };
    let peak = rig.peak_rss_mib();
    o.check(
        peak <= PEAK_RSS_BOUND_MIB,
        format!("peak RSS {peak:.0} MiB over {PEAK_RSS_BOUND_MIB} MiB"),
    );
    rig.finish(&mut o).await;
    o.observed = format!(
        "synced ({figures}); {seen}; after the page was deleted: resync {after}; store = Confluence"
    );
    o.figures = format!(
        "body {:.1} MB; peak RSS {peak_fault:.0} MiB (idle {baseline:.0}); sync {:.1}s; recovered in {:.1}s",
        size as f64 / 1e6,
        took.as_secs_f64(),
        recovered.as_secs_f64()
    );
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_page() {
    fault_table::run_fault(
        "hostile Confluence: a 10 MB page body",
        MUST_SYNC,
        odd_page(
            "hostile-10mb",
            "<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p>".repeat(170_000)
                + "<p>needle-at-the-end</p>",
            FaultConfig::default(),
            |doc| {
                if doc.contains("needle-at-the-end") {
                    Ok(format!(
                        "stored whole ({:.1} MB served)",
                        doc.len() as f64 / 1e6
                    ))
                } else {
                    Err("the end of the 10 MB page is missing".into())
                }
            },
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_storage() {
    fault_table::run_fault(
        "hostile Confluence: deeply nested storage XML (100,000 nested elements of each kind)",
        MUST_SYNC,
        odd_page(
            "hostile-nested",
            "<div>".repeat(100_000)
                + "deep-text"
                + &"</div>".repeat(100_000)
                + &"<ul><li>x".repeat(100_000)
                + &"<ac:structured-macro ac:name=\"info\"><ac:rich-text-body>".repeat(100_000)
                + "after-the-macros",
            FaultConfig::default(),
            |doc| {
                if doc.contains("deep-text") && doc.contains("after-the-macros") {
                    Ok("converted, text kept (nesting flattened)".into())
                } else {
                    Err("text of the nested page is missing".into())
                }
            },
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8() {
    fault_table::run_fault(
        "hostile Confluence: invalid UTF-8 bytes inside one page's body",
        MUST_SYNC,
        odd_page(
            "hostile-utf8",
            "<p>before @@NOT-UTF8@@ after</p>".into(),
            FaultConfig {
                hostile: Some(Hostile::InvalidUtf8 {
                    marker: "@@NOT-UTF8@@".into(),
                }),
                ..FaultConfig::default()
            },
            |doc| {
                if doc.contains('\u{FFFD}') && doc.contains("after") {
                    Ok("stored with the bad bytes as U+FFFD (lossy decoding)".into())
                } else {
                    Err(format!(
                        "the page was not decoded lossily: {}",
                        doc.chars().take(300).collect::<String>()
                    ))
                }
            },
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_redirect_to_another_host() {
    fault_table::run_fault(
        "hostile Confluence (Data Center, bearer token): listing redirected (302) to another host",
        MUST_FAIL_CLEARLY,
        async {
            let other = OtherHost::start().await.unwrap();
            let to = other.url();
            failing_fault(
                "hostile-dc-redirect",
                Flavor::DataCenter,
                FaultConfig {
                    hostile: Some(Hostile::Redirect { to }),
                    hostile_path: "/rest/api/content".into(),
                    ..FaultConfig::default()
                },
                "InvalidResponse",
                "redirect to another host",
                Some(other),
            )
            .await
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_center_endless_body() {
    fault_table::run_fault(
        "hostile Confluence (Data Center): a listing response that never ends (endless fast body)",
        MUST_FAIL_CLEARLY,
        failing_fault(
            "hostile-dc-endless",
            Flavor::DataCenter,
            FaultConfig {
                hostile: Some(Hostile::EndlessBody),
                hostile_path: "/rest/api/content".into(),
                ..FaultConfig::default()
            },
            "InvalidResponse",
            "larger than 64 MiB",
            None,
        ),
    )
    .await;
}

/// The hostile modes are part of the simulator's admin API too (for the
/// standalone `confluence-sim`): a budget of one answers one request.
#[tokio::test]
async fn hostile_modes_through_the_admin_api() {
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 2,
        user: USER.into(),
        token: TOKEN.into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({"hostile": {"mode": "html_login_page"}, "hostile_path": "/user/current", "hostile_budget": 1}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let get = || {
        http.get(format!("{}/wiki/rest/api/user/current", sim.base_url()))
            .basic_auth(USER, Some(TOKEN))
            .send()
    };
    let first = get().await.unwrap();
    let kind = first.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert!(kind.to_str().unwrap().starts_with("text/html"), "{kind:?}");
    let second = get().await.unwrap();
    assert!(second.status().is_success());
    let kind = second.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert!(
        kind.to_str().unwrap().starts_with("application/json"),
        "{kind:?}"
    );
    assert_eq!(sim.stats().hostile, 1);
    assert_eq!(sim.faults().hostile_budget, Some(0));
}

/// A space whose page text is more than one answer may carry: the listing
/// with bodies is refused past the 64 MiB cap, so it is listed bare and the
/// bodies are fetched in halved groups until each answer fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow (the debug simulator serves 78 MB several times); run by hack/faults"]
async fn bodies_over_the_response_cap() {
    fault_table::run_fault(
        "hostile Confluence: 260 pages of 300 KB (78 MB of page text, more than one 64 MiB answer)",
        "the first sync still stores every page (bare listing, groups halved until each answer fits); peak RSS bounded; after the big pages are deleted, one resync makes store = Confluence (ids, versions)",
        async {
            let mut o = outcome();
            const BIG: usize = 260;
            let started = Instant::now();
            let rig = Rig::start_with("hostile-cap", Flavor::Cloud, "60s", |sim| {
                let text = format!("<p>{}</p>", "lorem ipsum dolor sit amet ".repeat(11_200));
                for i in 0..BIG {
                    sim.create_page(KEY, &format!("Big page {i}"), None, &format!("{text}<p>needle-{i}</p>"))
                        .unwrap();
                }
            })
            .await;
            let first_sync = started.elapsed();
            let status = rig.spaces().get(SPACE).await.unwrap().status.unwrap_or_default();
            let items = status.items.unwrap_or(0);
            o.check(items == 20 + BIG as u64, format!("{items} items synced, expected {}", 20 + BIG));
            let big: Vec<u64> = rig
                .sim
                .pages(KEY)
                .into_iter()
                .filter(|p| p.title.starts_with("Big page"))
                .map(|p| p.id)
                .collect();
            let last = *big.last().unwrap();
            let doc = rig.document(last).await.unwrap_or_default();
            o.check(doc.contains(&format!("needle-{}", BIG - 1)), "the last big page is not stored whole");
            let stats = rig.sim.stats();
            let peak_sync = rig.peak_rss_mib();
            for id in &big {
                rig.sim.delete_page(*id).unwrap();
            }
            let (after, recovered) = match rig.wait_after("big-pages-gone").await {
                Ok(v) => v,
                Err(e) => {
                    o.check(false, e);
                    (String::new(), Duration::ZERO)
                }
            };
            let peak = rig.peak_rss_mib();
            o.check(peak <= PEAK_RSS_BOUND_MIB, format!("peak RSS {peak:.0} MiB over {PEAK_RSS_BOUND_MIB} MiB"));
            rig.finish(&mut o).await;
            o.observed = format!(
                "first sync stored all {items} items ({} bulk page requests, {} listing requests); after the big pages were deleted: resync {after}; store = Confluence",
                stats.get("GET /wiki/api/v2/pages"),
                stats.get("GET /wiki/api/v2/spaces/{id}/pages")
            );
            o.figures = format!(
                "peak RSS {peak_sync:.0} MiB; first sync within {:.1}s of start; recovered in {:.1}s",
                first_sync.as_secs_f64(),
                recovered.as_secs_f64()
            );
            o
        },
    )
    .await;
}
