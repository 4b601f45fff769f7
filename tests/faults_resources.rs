//! Fault matrix, bad custom resources: invalid ConfluenceSites,
//! ConfluenceSpaces and ViewerBindings, from a hand table and from a seeded
//! generator, are submitted through the real API server while the operator's
//! controllers run against the simulator. Each must be refused by the schema
//! or its CEL rules with a message naming the field, or be accepted and get a
//! clear condition (Ready=False with a reason). Meanwhile a good space in the
//! same namespace keeps syncing and the controllers keep running.

mod fault_table;
mod harness;
mod support;

use confluence_operator::api::space::SyncPhase;
use confluence_operator::controller::ClientFactory;
use confluence_operator::store::Store;
use confluence_operator::store::embedded::EmbeddedStore;
use confluence_sim::{SimConfig, Simulator};
use fault_table::Outcome;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GOOD: &str = "good";
const KEY: &str = "ENG";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Site,
    Space,
    Binding,
}

/// What the API server and the operator must make of a case.
#[derive(Clone, Debug)]
enum Expect {
    /// Refused at admission with a message containing this.
    Refused(&'static str),
    /// Accepted; its Ready condition turns False with this reason.
    Condition(&'static str),
}

struct Case {
    what: String,
    kind: Kind,
    spec: Value,
    expect: Expect,
}

fn resource(kind: Kind) -> ApiResource {
    let (k, plural) = match kind {
        Kind::Site => ("ConfluenceSite", "confluencesites"),
        Kind::Space => ("ConfluenceSpace", "confluencespaces"),
        Kind::Binding => ("ViewerBinding", "viewerbindings"),
    };
    ApiResource {
        group: "confluence-operator.io".into(),
        version: "v1alpha1".into(),
        api_version: "confluence-operator.io/v1alpha1".into(),
        kind: k.into(),
        plural: plural.into(),
    }
}

fn good_space() -> Value {
    json!({"siteRef": {"name": "wiki"}, "spaceKey": KEY, "viewers": {"visibility": "Everyone"}})
}

fn good_site(url: &str) -> Value {
    json!({"url": url, "insecureAllowHttp": true, "flavor": "Cloud", "credentialsSecretRef": {"name": "creds"}})
}

fn good_binding() -> Value {
    json!({"segments": ["agents-and-admins"], "subjects": [{"kind": "Group", "name": "support"}]})
}

/// `base` with `path` (dot-separated) set to `value`.
fn with(mut base: Value, path: &str, value: Value) -> Value {
    let mut cur = &mut base;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = value;
    base
}

fn case(what: impl Into<String>, kind: Kind, spec: Value, expect: Expect) -> Case {
    Case {
        what: what.into(),
        kind,
        spec,
        expect,
    }
}

/// The hand table: every way to get a field wrong that the matrix covers.
fn hand_table(sim_url: &str) -> Vec<Case> {
    use Expect::{Condition, Refused};
    use Kind::{Binding, Site, Space};
    let sp = good_space;
    let site = || good_site(sim_url);
    let vb = good_binding;
    let segs = |n: usize| json!((0..n).map(|i| format!("seg-{i}")).collect::<Vec<_>>());
    vec![
        // durations
        case(
            "space syncInterval 10d (no such unit)",
            Space,
            with(sp(), "syncInterval", json!("10d")),
            Refused("spec.syncInterval"),
        ),
        case(
            "space syncInterval 0s (a resync storm)",
            Space,
            with(sp(), "syncInterval", json!("0s")),
            Refused("syncInterval must be at least 1m"),
        ),
        case(
            "space syncInterval 500ms",
            Space,
            with(sp(), "syncInterval", json!("500ms")),
            Refused("syncInterval must be at least 1m"),
        ),
        case(
            "space syncInterval 99999999999h (overflows)",
            Space,
            with(sp(), "syncInterval", json!("99999999999h")),
            Refused("syncInterval"),
        ),
        case(
            "space syncInterval 100000h (over 10 years)",
            Space,
            with(sp(), "syncInterval", json!("100000h")),
            Refused("syncInterval must be at most"),
        ),
        case(
            "space syncInterval 1h repeated 40 times",
            Space,
            with(sp(), "syncInterval", json!("1h".repeat(40))),
            Refused("spec.syncInterval"),
        ),
        case(
            "space syncInterval as a number",
            Space,
            with(sp(), "syncInterval", json!(3600)),
            Refused("spec.syncInterval"),
        ),
        case(
            "site syncInterval 1s",
            Site,
            with(site(), "syncInterval", json!("1s")),
            Refused("syncInterval must be at least 1m"),
        ),
        case(
            "site syncInterval 1d",
            Site,
            with(site(), "syncInterval", json!("1d")),
            Refused("spec.syncInterval"),
        ),
        // keys and names
        case(
            "space key empty",
            Space,
            with(sp(), "spaceKey", json!("")),
            Refused("spec.spaceKey"),
        ),
        case(
            "space key unicode ÉNGÜ",
            Space,
            with(sp(), "spaceKey", json!("ÉNGÜ")),
            Refused("spaceKey may contain only"),
        ),
        case(
            "space key with a space and quote",
            Space,
            with(sp(), "spaceKey", json!("EN G\"")),
            Refused("spaceKey may contain only"),
        ),
        case(
            "space key 256 characters",
            Space,
            with(sp(), "spaceKey", json!("K".repeat(256))),
            Refused("spec.spaceKey"),
        ),
        case(
            "space key personal ~alice",
            Space,
            with(sp(), "spaceKey", json!("~alice")),
            Refused("personal spaces"),
        ),
        case(
            "space key as a number",
            Space,
            with(sp(), "spaceKey", json!(42)),
            Refused("spec.spaceKey"),
        ),
        case(
            "space key valid but absent from Confluence",
            Space,
            with(sp(), "spaceKey", json!("NOPE")),
            Condition("SpaceNotFound"),
        ),
        case(
            "space key 255 characters (valid, absent)",
            Space,
            with(sp(), "spaceKey", json!("K".repeat(255))),
            Condition("SpaceNotFound"),
        ),
        case(
            "siteRef name unicode",
            Space,
            with(sp(), "siteRef", json!({"name": "wïki"})),
            Refused("spec.siteRef.name"),
        ),
        case(
            "siteRef name 300 characters",
            Space,
            with(sp(), "siteRef", json!({"name": "w".repeat(300)})),
            Refused("spec.siteRef.name"),
        ),
        case(
            "siteRef without name",
            Space,
            with(sp(), "siteRef", json!({})),
            Refused("spec.siteRef.name"),
        ),
        case(
            "siteRef a string",
            Space,
            with(sp(), "siteRef", json!("wiki")),
            Refused("spec.siteRef"),
        ),
        case(
            "siteRef names no site",
            Space,
            with(sp(), "siteRef", json!({"name": "no-such-site"})),
            Condition("SiteNotFound"),
        ),
        // segments
        case(
            "11 custom segments",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Segments", "segments": segs(11)}),
            ),
            Refused("spec.viewers.segments"),
        ),
        case(
            "500 custom segments",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Segments", "segments": segs(500)}),
            ),
            Refused("spec.viewers.segments"),
        ),
        case(
            "duplicate segments",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Segments", "segments": ["ops", "ops"]}),
            ),
            Refused("Duplicate value"),
        ),
        case(
            "unicode segment",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Segments", "segments": ["sécurité"]}),
            ),
            Refused("spec.viewers.segments"),
        ),
        case(
            "segment 64 characters",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Segments", "segments": ["s".repeat(64)]}),
            ),
            Refused("spec.viewers.segments"),
        ),
        case(
            "segments a string, not a list",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Segments", "segments": "ops"}),
            ),
            Refused("spec.viewers.segments"),
        ),
        case(
            "segments an object",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Segments", "segments": {"ops": true}}),
            ),
            Refused("spec.viewers.segments"),
        ),
        case(
            "Segments visibility without segments",
            Space,
            with(sp(), "viewers", json!({"visibility": "Segments"})),
            Refused("segments must list 1 to 10"),
        ),
        case(
            "Everyone with segments",
            Space,
            with(
                sp(),
                "viewers",
                json!({"visibility": "Everyone", "segments": ["ops"]}),
            ),
            Refused("segments must list 1 to 10"),
        ),
        case(
            "visibility Nobody",
            Space,
            with(sp(), "viewers", json!({"visibility": "Nobody"})),
            Refused("spec.viewers.visibility"),
        ),
        case(
            "viewers a list",
            Space,
            with(sp(), "viewers", json!([])),
            Refused("spec.viewers"),
        ),
        // filters and flags
        case(
            "51 include labels",
            Space,
            with(sp(), "filters", json!({"includeLabels": segs(51)})),
            Refused("spec.filters.includeLabels"),
        ),
        case(
            "label of 300 characters",
            Space,
            with(sp(), "filters", json!({"excludeLabels": ["l".repeat(300)]})),
            Refused("spec.filters.excludeLabels"),
        ),
        case(
            "content type video",
            Space,
            with(sp(), "filters", json!({"contentTypes": ["video"]})),
            Refused("spec.filters.contentTypes"),
        ),
        case(
            "duplicate content types",
            Space,
            with(sp(), "filters", json!({"contentTypes": ["page", "page"]})),
            Refused("Duplicate value"),
        ),
        case(
            "filters a list",
            Space,
            with(sp(), "filters", json!(["page"])),
            Refused("spec.filters"),
        ),
        case(
            "suspend the string yes",
            Space,
            with(sp(), "suspend", json!("yes")),
            Refused("spec.suspend"),
        ),
        // sites
        case(
            "site URL not a URL",
            Site,
            with(site(), "url", json!("not a url at all")),
            Refused("spec.url must use https://"),
        ),
        case(
            "site URL with a space in the host",
            Site,
            with(site(), "url", json!("https://exa mple.com/wiki")),
            Refused("spec.url must be a URL"),
        ),
        case(
            "site URL without a host",
            Site,
            with(site(), "url", json!("https:///wiki")),
            Refused("spec.url must be a URL"),
        ),
        case(
            "site URL with credentials",
            Site,
            with(site(), "url", json!("https://ann:hunter2@wiki.example.com")),
            Refused("must not contain credentials"),
        ),
        case(
            "site URL ftp://",
            Site,
            with(site(), "url", json!("ftp://wiki.example.com")),
            Refused("spec.url must use https://"),
        ),
        case(
            "site URL http:// without insecureAllowHttp",
            Site,
            json!({"url": "http://wiki.example.com", "credentialsSecretRef": {"name": "creds"}}),
            Refused("spec.url must use https://"),
        ),
        case(
            "site URL 3000 characters",
            Site,
            with(
                site(),
                "url",
                json!(format!("https://wiki.example.com/{}", "a".repeat(3000))),
            ),
            Refused("spec.url"),
        ),
        case(
            "site URL port 99999",
            Site,
            with(site(), "url", json!("https://wiki.example.com:99999/wiki")),
            Condition("InvalidSpec"),
        ),
        case(
            "site maxConcurrency 0",
            Site,
            with(site(), "maxConcurrency", json!(0)),
            Refused("spec.maxConcurrency"),
        ),
        case(
            "site maxConcurrency 1000",
            Site,
            with(site(), "maxConcurrency", json!(1000)),
            Refused("spec.maxConcurrency"),
        ),
        case(
            "site maxConcurrency a string",
            Site,
            with(site(), "maxConcurrency", json!("4")),
            Refused("spec.maxConcurrency"),
        ),
        case(
            "site flavor Server",
            Site,
            with(site(), "flavor", json!("Server")),
            Refused("spec.flavor"),
        ),
        case(
            "site without credentialsSecretRef",
            Site,
            json!({"url": "https://wiki.example.com"}),
            Refused("spec.credentialsSecretRef"),
        ),
        case(
            "site Secret missing",
            Site,
            with(
                site(),
                "credentialsSecretRef",
                json!({"name": "no-such-secret"}),
            ),
            Condition("SecretNotFound"),
        ),
        case(
            "site Secret name unicode",
            Site,
            with(site(), "credentialsSecretRef", json!({"name": "crëds"})),
            Refused("spec.credentialsSecretRef.name"),
        ),
        case(
            "caBundleRef kind Vault",
            Site,
            with(
                site(),
                "caBundleRef",
                json!({"kind": "Vault", "name": "ca"}),
            ),
            Refused("spec.caBundleRef.kind"),
        ),
        case(
            "caBundleRef key with a slash",
            Site,
            with(
                site(),
                "caBundleRef",
                json!({"kind": "ConfigMap", "name": "ca", "key": "a/b"}),
            ),
            Refused("spec.caBundleRef.key"),
        ),
        case(
            "caBundleRef empty name",
            Site,
            with(
                site(),
                "caBundleRef",
                json!({"kind": "ConfigMap", "name": ""}),
            ),
            Refused("spec.caBundleRef.name"),
        ),
        case(
            "caBundleRef names no ConfigMap",
            Site,
            with(
                site(),
                "caBundleRef",
                json!({"kind": "ConfigMap", "name": "no-such-ca"}),
            ),
            Condition("CABundleNotFound"),
        ),
        case(
            "caBundleRef holds no certificate",
            Site,
            with(
                site(),
                "caBundleRef",
                json!({"kind": "ConfigMap", "name": "garbage-ca"}),
            ),
            Condition("TLSError"),
        ),
        // viewer bindings
        case(
            "binding without subjects",
            Binding,
            with(vb(), "subjects", json!([])),
            Refused("spec.subjects"),
        ),
        case(
            "binding with 101 subjects",
            Binding,
            with(
                vb(),
                "subjects",
                json!(
                    (0..101)
                        .map(|i| json!({"kind": "User", "name": format!("u{i}")}))
                        .collect::<Vec<_>>()
                ),
            ),
            Refused("spec.subjects"),
        ),
        case(
            "ServiceAccount subject without namespace",
            Binding,
            with(
                vb(),
                "subjects",
                json!([{"kind": "ServiceAccount", "name": "bot"}]),
            ),
            Refused("ServiceAccount subjects need name and namespace"),
        ),
        case(
            "ServiceAccount name not a DNS name",
            Binding,
            with(
                vb(),
                "subjects",
                json!([{"kind": "ServiceAccount", "name": "Bot Ünï", "namespace": "helpdesk"}]),
            ),
            Refused("ServiceAccount name must be a lowercase DNS subdomain"),
        ),
        case(
            "ServiceAccount namespace not a DNS label",
            Binding,
            with(
                vb(),
                "subjects",
                json!([{"kind": "ServiceAccount", "name": "bot", "namespace": "Help_Desk"}]),
            ),
            Refused("namespace"),
        ),
        case(
            "subject kind Robot",
            Binding,
            with(vb(), "subjects", json!([{"kind": "Robot", "name": "r2"}])),
            Refused("kind"),
        ),
        case(
            "Claim subject without value",
            Binding,
            with(
                vb(),
                "subjects",
                json!([{"kind": "Claim", "claim": "email"}]),
            ),
            Refused("Claim subjects need claim and value"),
        ),
        case(
            "User subject with a claim",
            Binding,
            with(
                vb(),
                "subjects",
                json!([{"kind": "User", "name": "ann", "claim": "email", "value": "x"}]),
            ),
            Refused("other kinds may not set claim or value"),
        ),
        case(
            "binding with 11 segments",
            Binding,
            with(vb(), "segments", segs(11)),
            Refused("spec.segments"),
        ),
        case(
            "binding segments empty",
            Binding,
            with(vb(), "segments", json!([])),
            Refused("spec.segments"),
        ),
        case(
            "binding subjects an object",
            Binding,
            with(vb(), "subjects", json!({"kind": "User"})),
            Refused("spec.subjects"),
        ),
    ]
}

/// Hostile values of every JSON type.
fn hostile_value(rng: &mut StdRng) -> Value {
    let pick = |rng: &mut StdRng, pool: &[&str]| pool[rng.random_range(0..pool.len())].to_string();
    let weird = [
        "",
        " ",
        "\u{202e}RTL",
        "👾👾",
        "Ünïcödé",
        "a\u{0007}b",
        "../../etc",
        "${jndi:x}",
        "<script>",
        "1h30",
        "-5m",
        "1e9h",
        "NaN",
        "null",
        "true",
        "ENG ",
        "~",
        "--",
        ".",
        "a..b",
    ];
    match rng.random_range(0..10) {
        0 => Value::String(pick(rng, &weird)),
        1 => Value::String("x".repeat(rng.random_range(256..20_000))),
        2 => json!(rng.random_range(-1_000_000_000i64..1_000_000_000)),
        3 => json!(rng.random::<f64>() * 1e12),
        4 => json!(rng.random_bool(0.5)),
        5 => json!({ pick(rng, &weird): pick(rng, &weird) }),
        6 => json!(
            (0..rng.random_range(11..200))
                .map(|i| format!("s{}", i % 7))
                .collect::<Vec<_>>()
        ),
        7 => json!([pick(rng, &weird), 3, {"a": []}]),
        8 => json!([]),
        _ => Value::String(
            (0..rng.random_range(1..40))
                .map(|_| char::from_u32(rng.random_range(0x20..0x2FFF)).unwrap_or('?'))
                .collect(),
        ),
    }
}

/// Generated invalid specs: one field of a good object replaced by a
/// hostile value. The verdict is not known in advance: each must be refused
/// with a message naming `spec`, or accepted and then either sync or get a
/// clear condition.
fn generated(seed: u64, n: usize, sim_url: &str) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(seed);
    let space_fields = [
        "spaceKey",
        "syncInterval",
        "siteRef.name",
        "siteRef",
        "viewers",
        "viewers.visibility",
        "viewers.segments",
        "filters.includeLabels",
        "filters.contentTypes",
        "filters.includeRestricted",
        "suspend",
    ];
    let site_fields = [
        "url",
        "syncInterval",
        "maxConcurrency",
        "flavor",
        "credentialsSecretRef.name",
        "caBundleRef",
        "caBundleRef.key",
        "insecureAllowHttp",
    ];
    let binding_fields = ["segments", "subjects", "subjects.0"];
    (0..n)
        .map(|i| {
            let value = hostile_value(&mut rng);
            let shown: String = value.to_string().chars().take(40).collect();
            let (kind, field, spec) = match i % 3 {
                0 | 1 => {
                    let f = space_fields[rng.random_range(0..space_fields.len())];
                    (Kind::Space, f, with(good_space(), f, value))
                }
                _ if i % 2 == 0 => {
                    let f = site_fields[rng.random_range(0..site_fields.len())];
                    (Kind::Site, f, with(good_site(sim_url), f, value))
                }
                _ => {
                    let f = binding_fields[rng.random_range(0..binding_fields.len())];
                    let spec = if f == "subjects.0" {
                        with(good_binding(), "subjects", json!([value]))
                    } else {
                        with(good_binding(), f, value)
                    };
                    (Kind::Binding, f, spec)
                }
            };
            case(
                format!("{kind:?} {field} = {shown}"),
                kind,
                spec,
                Expect::Refused("spec"),
            )
        })
        .collect()
}

struct Rig {
    sim: Simulator,
    op: harness::Operator,
    _dir: tempfile::TempDir,
    bindings: Vec<String>,
}

async fn rig(prefix: &str) -> Rig {
    let sim = Simulator::start(SimConfig {
        spaces: 1,
        pages: 15,
        blogposts: 0,
        user: "operator@example.com".into(),
        token: "test-token-123".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("index")).unwrap());
    let op = harness::start(
        prefix,
        Arc::new(ClientFactory),
        vec![store as Arc<dyn Store>],
    )
    .await;
    // As the chart installs it (admissionPolicy.enabled): it sees every
    // site and space before the schema does.
    harness::kubectl_apply("charts/confluence-operator/files/connected-by-policy.yaml");
    op.create_secret("creds").await;
    let cms: Api<ConfigMap> = Api::namespaced(op.client.clone(), &op.namespace);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "garbage-ca"},
            "data": {"ca.crt": "this is not a PEM certificate"}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let r = Rig {
        sim,
        op,
        _dir: dir,
        bindings: Vec::new(),
    };
    let url = r.sim.cloud_site_url().to_string();
    create(&r.op, Kind::Site, "wiki", good_site(&url))
        .await
        .unwrap();
    create(&r.op, Kind::Space, GOOD, good_space())
        .await
        .unwrap();
    r.op.wait_ready(GOOD).await;
    r
}

async fn create(
    op: &harness::Operator,
    kind: Kind,
    name: &str,
    spec: Value,
) -> Result<(), kube::Error> {
    let ar = resource(kind);
    let mut obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": ar.api_version, "kind": ar.kind,
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    let api: Api<DynamicObject> = if kind == Kind::Binding {
        Api::all_with(op.client.clone(), &ar)
    } else {
        obj.metadata.namespace = Some(op.namespace.clone());
        Api::namespaced_with(op.client.clone(), &op.namespace, &ar)
    };
    api.create(&PostParams::default(), &obj).await.map(|_| ())
}

/// The Ready condition (status, reason, message) of an accepted object, once
/// it reports one for its current generation.
async fn ready_of(
    op: &harness::Operator,
    kind: Kind,
    name: &str,
) -> Option<(String, String, String)> {
    let (conditions, generation, observed) = match kind {
        Kind::Site => {
            let s = op.sites().get(name).await.ok()?;
            let st = s.status.unwrap_or_default();
            (st.conditions, s.metadata.generation, st.observed_generation)
        }
        Kind::Space => {
            let s = op.spaces().get(name).await.ok()?;
            let st = s.status.unwrap_or_default();
            (st.conditions, s.metadata.generation, st.observed_generation)
        }
        Kind::Binding => {
            let api: Api<confluence_operator::api::ViewerBinding> = Api::all(op.client.clone());
            let b = api.get(name).await.ok()?;
            let st = b.status.unwrap_or_default();
            (st.conditions, b.metadata.generation, st.observed_generation)
        }
    };
    // A suspended object reports only that (Reconciling=False, Suspended).
    let c = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .or_else(|| {
            conditions
                .iter()
                .find(|c| c.type_ == "Reconciling" && c.reason == "Suspended")
        })?
        .clone();
    let current = c.observed_generation.or(observed) == generation;
    (current && !c.reason.is_empty()).then_some((c.status, c.reason, c.message))
}

#[derive(Default)]
struct Tally {
    refused: usize,
    conditions: Vec<String>,
    synced: usize,
    synced_what: Vec<String>,
    by_policy: usize,
}

/// Submits every case, checks its verdict, then checks that the good space
/// still syncs and the controllers still run.
async fn run_cases(mut r: Rig, cases: Vec<Case>, strict: bool) -> Outcome {
    let mut o = Outcome {
        observed: String::new(),
        figures: String::new(),
        failures: Vec::new(),
    };
    let mut tally = Tally::default();
    let mut accepted: Vec<(String, Kind, Expect, String)> = Vec::new();
    let prefix = r.op.namespace.clone();
    for (i, c) in cases.iter().enumerate() {
        let name = if c.kind == Kind::Binding {
            let n = format!("{prefix}-bad-{i}");
            r.bindings.push(n.clone());
            n
        } else {
            format!("bad-{i}")
        };
        match create(&r.op, c.kind, &name, c.spec.clone()).await {
            Err(kube::Error::Api(e)) => {
                tally.refused += 1;
                // The schema answers 422. With the chart's connected-by
                // MutatingAdmissionPolicy a wrongly typed field is refused
                // earlier, 403 from the policy, naming the field and the
                // type expected.
                let by_policy = e.code == 403
                    && e.message.contains("confluence-operator-connected-by")
                    && e.message.contains(".spec")
                    && e.message.contains("expected");
                tally.by_policy += usize::from(by_policy);
                let clear =
                    ((e.code == 422 || e.code == 400) && !e.message.is_empty()) || by_policy;
                o.check(
                    clear,
                    format!(
                        "{}: refused without a clear answer: {} {}",
                        c.what, e.code, e.message
                    ),
                );
                match &c.expect {
                    Expect::Refused(says) => o.check(
                        e.message.contains(says),
                        format!(
                            "{}: the refusal does not say {says:?}: {}",
                            c.what,
                            e.message.chars().take(400).collect::<String>()
                        ),
                    ),
                    Expect::Condition(reason) if strict => o.check(
                        false,
                        format!(
                            "{}: expected to be accepted (then {reason}), refused: {}",
                            c.what, e.message
                        ),
                    ),
                    Expect::Condition(_) => {}
                }
                o.check(
                    !e.message.contains("hunter2"),
                    format!("{}: the refusal echoes a password", c.what),
                );
            }
            Err(e) => o.check(false, format!("{}: {e}", c.what)),
            Ok(()) => {
                if strict && let Expect::Refused(says) = &c.expect {
                    o.check(
                        false,
                        format!("{}: accepted, expected a refusal saying {says:?}", c.what),
                    );
                }
                accepted.push((name, c.kind, c.expect.clone(), c.what.clone()));
            }
        }
    }
    // Accepted objects must each report a clear Ready condition.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (name, kind, expect, what) in &accepted {
        let got = loop {
            let got = ready_of(&r.op, *kind, name).await;
            let settled = match (&got, expect) {
                (Some((_, reason, _)), Expect::Condition(want)) => reason == want,
                (Some((status, reason, _)), Expect::Refused(_)) => {
                    status == "True" || reason != "Progressing"
                }
                _ => false,
            };
            if settled || Instant::now() > deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        match got {
            Some((status, reason, message)) => {
                if status == "True" {
                    tally.synced += 1;
                    tally.synced_what.push(what.clone());
                    if let Expect::Condition(want) = expect {
                        o.check(false, format!("{what}: Ready=True, expected {want}"));
                    }
                } else {
                    tally.conditions.push(reason.clone());
                    o.check(
                        !message.is_empty() && !message.contains("test-token-123"),
                        format!("{what}: unclear condition message {message:?}"),
                    );
                    if let Expect::Condition(want) = expect {
                        o.check(
                            &reason == want,
                            format!("{what}: reason {reason}, expected {want}: {message}"),
                        );
                    }
                }
            }
            None => o.check(
                false,
                format!("{what}: accepted but never got a Ready condition"),
            ),
        }
    }
    // The good space is not blocked: a change in Confluence reaches it.
    let page = r.sim.pages(KEY)[0].id;
    r.sim
        .edit_page(page, "<p>changed while bad objects were around</p>")
        .unwrap();
    let started = Instant::now();
    r.op.request_resync(&r.op.spaces(), GOOD, "after-bad-objects")
        .await;
    let synced =
        r.op.wait_status(GOOD, "resync after the bad objects", |st| {
            (st.last_handled_resync_at.as_deref() == Some("after-bad-objects")
                && st.phase == Some(SyncPhase::Synced))
            .then(|| st.last_sync_result.clone().unwrap_or_default())
        })
        .await;
    o.check(
        synced.fetched >= 1,
        format!("the good space's resync missed the change: {synced:?}"),
    );
    let good_took = started.elapsed();
    o.check(r.op.is_running(), "the controllers stopped");
    // Sites and spaces in the namespace go with it; bindings are cluster-wide.
    let bindings: Api<DynamicObject> = Api::all_with(r.op.client.clone(), &resource(Kind::Binding));
    for b in std::mem::take(&mut r.bindings) {
        let _ = bindings.delete(&b, &DeleteParams::default()).await;
    }
    let mut reasons = tally.conditions.clone();
    reasons.sort();
    reasons.dedup();
    o.observed = format!(
        "{} cases: {} refused at admission with the field named ({} wrongly typed ones by the chart's connected-by admission policy, 403, before the schema; the rest by the schema/CEL, 422), {} accepted with Ready=False or suspended ({}), {} accepted and synced ({}); good space resynced (fetched {}); controllers running",
        cases.len(),
        tally.refused,
        tally.by_policy,
        tally.conditions.len(),
        reasons.join(", "),
        tally.synced,
        tally.synced_what.join("; "),
        synced.fetched
    );
    o.figures = format!(
        "good space resync {:.1}s after the bad objects",
        good_took.as_secs_f64()
    );
    o
}

const MUST_HOLD: &str = "each bad object is refused by the schema/CEL with a message naming the field, or accepted with Ready=False and a reason; no secret in messages; a good space in the same namespace keeps syncing; the controllers keep running";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_table_of_bad_resources() {
    fault_table::run_fault(
        "bad custom resources: hand table (durations, unicode/oversized names and keys, >10 and duplicate segments, wrong types, bad URLs, caBundleRef, ViewerBinding subjects)",
        MUST_HOLD,
        async {
            let r = rig("bad-hand").await;
            let url = r.sim.cloud_site_url().to_string();
            let cases = hand_table(&url);
            run_cases(r, cases, true).await
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_bad_resources() {
    let seed: u64 = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    fault_table::run_fault(
        &format!("bad custom resources: 60 generated specs (seed {seed}, one field replaced by a hostile value of any JSON type)"),
        MUST_HOLD,
        async move {
            let r = rig("bad-gen").await;
            let url = r.sim.cloud_site_url().to_string();
            let cases = generated(seed, 60, &url);
            run_cases(r, cases, false).await
        },
    )
    .await;
}
