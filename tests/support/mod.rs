//! Test support shared by the integration tests: a real Kubernetes control plane
//! (etcd + kube-apiserver + kube-controller-manager from `hack/testenv`).
//!
//! * If `KUBECONFIG` is set and its server answers, that cluster is used.
//! * Otherwise `hack/testenv/up --no-build` is run once per test process (it
//!   serialises concurrent callers from several test processes with a file
//!   lock) and its kubeconfig, `target/testenv/kubeconfig`, is used. The control
//!   plane is left running for the next test binary; `hack/testenv/down` stops it.
//! * A plain `cargo test` never builds Kubernetes: when the binaries are not
//!   built yet, each cluster test fails at once saying to run `hack/test` (which
//!   builds and starts everything) or `hack/testenv/build`, or to set `KUBECONFIG`.
//!
//! Use it from a test file with `mod support;`.
#![allow(dead_code)]

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Label put on every namespace made by [`test_namespace`].
pub const TEST_NAMESPACE_LABEL: &str = "confluence-operator.test/ephemeral";

/// How the tests reach the cluster, resolved once per process.
#[derive(Debug, Clone)]
struct ControlPlane {
    /// Value for `KUBECONFIG` (may list several files, as the variable allows).
    kubeconfig: OsString,
    /// True when the cluster is the one `hack/testenv/up` started.
    testenv: bool,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// A loopback port that was free a moment ago (for a child process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Root of the repository (the crate's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory of the built control-plane binaries (kubectl, helm, ...).
pub fn testenv_bin_dir() -> PathBuf {
    std::env::var_os("TESTENV_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/testenv/bin"))
}

fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(resolve_control_plane) {
        Ok(cp) => cp,
        Err(e) => panic!("test control plane unavailable: {e}"),
    }
}

fn resolve_control_plane() -> Result<ControlPlane, String> {
    if let Some(kc) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        match run_async(reachable_from_env()) {
            Ok(()) => {
                eprintln!(
                    "[support] using the cluster of KUBECONFIG={}",
                    kc.to_string_lossy()
                );
                return Ok(ControlPlane {
                    kubeconfig: kc,
                    testenv: false,
                });
            }
            Err(e) => eprintln!(
                "[support] KUBECONFIG={} is not usable ({e}); starting hack/testenv instead",
                kc.to_string_lossy()
            ),
        }
    }
    let kubeconfig = run_testenv_up()?;
    Ok(ControlPlane {
        kubeconfig: kubeconfig.into_os_string(),
        testenv: true,
    })
}

/// Runs a future to completion on a private runtime on its own thread, so this
/// works from sync code and from inside any caller's runtime.
fn run_async<F, T>(fut: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(fut)
    })
    .join()
    .expect("runtime thread panicked")
}

async fn reachable_from_env() -> Result<(), String> {
    let kubeconfig = Kubeconfig::from_env()
        .map_err(|e| format!("cannot read kubeconfig: {e}"))?
        .ok_or("KUBECONFIG lists no file")?;
    reachable(kubeconfig).await
}

async fn reachable(kubeconfig: Kubeconfig) -> Result<(), String> {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("bad kubeconfig: {e}"))?;
    let client = Client::try_from(config).map_err(|e| format!("cannot build client: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("GET /version failed: {e}")),
        Err(_) => Err("GET /version timed out after 10s".into()),
    }
}

/// Exit status of `hack/testenv/up --no-build` when something must be built first.
const TESTENV_NEEDS_BUILD: i32 = 3;

/// What a cluster test says when the control plane or node is not built.
const NEEDS_BUILD_HINT: &str = "this test needs a Kubernetes cluster: run `hack/test` (builds \
     and starts one from Go modules, then runs every test), or `hack/testenv/build --node` once, \
     or set KUBECONFIG to a cluster of your own";

/// Runs `hack/testenv/up --no-build` and returns the kubeconfig path it prints.
fn run_testenv_up() -> Result<PathBuf, String> {
    let script = repo_root().join("hack/testenv/up");
    eprintln!("[support] running {} --no-build", script.display());
    let started = Instant::now();
    // stderr (progress, build output, error log tails) goes straight to the test's stderr.
    let out = Command::new(&script)
        .arg("--no-build")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.code() == Some(TESTENV_NEEDS_BUILD) {
        return Err(NEEDS_BUILD_HINT.into());
    }
    if !out.status.success() {
        return Err(format!(
            "{} failed with {} (its stderr is above; logs in target/testenv/logs)",
            script.display(),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("export KUBECONFIG="))
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "{} printed no `export KUBECONFIG=` line: {stdout:?}",
                script.display()
            )
        })?;
    eprintln!(
        "[support] control plane ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// A client for the test cluster, starting the control plane if needed.
pub async fn client() -> Client {
    let cp = control_plane().clone();
    let kubeconfig = if cp.testenv {
        Kubeconfig::read_from(Path::new(&cp.kubeconfig))
    } else {
        Kubeconfig::from_env().map(|k| k.expect("KUBECONFIG was set when resolved"))
    }
    .unwrap_or_else(|e| {
        panic!(
            "cannot read kubeconfig {}: {e}",
            cp.kubeconfig.to_string_lossy()
        )
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}", cp.kubeconfig.to_string_lossy()));
    confluence_operator::kubeclient::client(config).expect("kube client")
}

/// Path or list of paths to pass as `KUBECONFIG` to tools run by tests.
pub fn kubeconfig_env() -> OsString {
    control_plane().kubeconfig.clone()
}

/// `kubectl` of the test control plane's release with `KUBECONFIG` set for the
/// test cluster. Falls back to `kubectl` on `PATH` when a foreign cluster is used
/// and hack/testenv was never built.
pub fn kubectl() -> Command {
    tool("kubectl")
}

/// `kubectl <args> -f -` with `yaml` on standard input; returns what it printed.
pub fn kubectl_with_stdin(args: &[&str], yaml: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = kubectl()
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("kubectl stdin")
        .write_all(yaml.as_bytes())
        .expect("write to kubectl");
    child.wait_with_output().expect("wait for kubectl")
}

/// `helm` built by hack/testenv/build, with `KUBECONFIG` set for the test cluster.
pub fn helm() -> Command {
    tool("helm")
}

fn tool(name: &str) -> Command {
    let cp = control_plane();
    let built = testenv_bin_dir().join(name);
    let program = if built.exists() {
        built
    } else {
        PathBuf::from(name)
    };
    let mut cmd = Command::new(program);
    cmd.env("KUBECONFIG", &cp.kubeconfig);
    cmd
}

/// Creates a namespace with a unique name starting with `prefix` and returns
/// its name. The namespace carries the label [`TEST_NAMESPACE_LABEL`]`=true`.
pub async fn test_namespace(client: &Client, prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let suffix = format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 0x1_0000_0000
    );
    let mut base: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(63 - suffix.len() - 1);
    let base = base.trim_matches('-');
    let name = if base.is_empty() {
        format!("t-{suffix}")
    } else {
        format!("{base}-{suffix}")
    };

    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("cannot create test namespace {name}: {e}"));
    name
}

/// Deletes a namespace made by [`test_namespace`] without waiting for it to go.
pub async fn delete_namespace(client: &Client, name: &str) {
    match Api::<Namespace>::all(client.clone())
        .delete(name, &Default::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => panic!("cannot delete namespace {name}: {e}"),
    }
}

/// Polls `check` every 250 ms until it returns `Some`, and panics with `what`
/// and the last observation after `timeout`.
///
/// `check` returns `Ok(Some(v))` when done, `Ok(None)` to keep waiting, or
/// `Err(observation)` to keep waiting while recording what it saw (shown on
/// timeout).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("(nothing observed)");
    loop {
        match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(seen) => last = seen,
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last observation: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The test node (`hack/testenv/up --node`) and the images built for it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The pod bridge's gateway: an address of this machine that pods reach
    /// (the simulator listens there).
    pub gateway: std::net::Ipv4Addr,
    /// Repository and tag of the operator image built by `hack/image`.
    pub operator_repository: String,
    pub operator_tag: String,
    /// curl only: a client pod for Services and /metrics.
    pub probe_image: String,
}

static NODE: OnceLock<Result<Node, String>> = OnceLock::new();

/// Starts the test node once per process (kubelet, containerd, scheduler,
/// kube-proxy; see hack/testenv/node.sh) and builds and imports the operator
/// and probe images with `hack/image`. Tests that need no node never call this,
/// so they do not pay for it.
pub fn node() -> &'static Node {
    match NODE.get_or_init(start_node) {
        Ok(n) => n,
        Err(e) => panic!("test node unavailable: {e}"),
    }
}

fn start_node() -> Result<Node, String> {
    let cp = control_plane();
    let run = |script: &str, args: &[&str]| -> Result<String, String> {
        let started = Instant::now();
        let mut cmd = Command::new(repo_root().join(script));
        // hack/image runs cargo: without the variables cargo sets for this test
        // process, so its release build matches (and reuses) one run by hand.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let from_cargo = key == "CARGO"
                || key == "OUT_DIR"
                || (key.starts_with("CARGO_")
                    && !matches!(key.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR"));
            if from_cargo {
                cmd.env_remove(key.as_ref());
            }
        }
        let out = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if out.status.code() == Some(TESTENV_NEEDS_BUILD) {
            return Err(NEEDS_BUILD_HINT.into());
        }
        if !out.status.success() {
            return Err(format!("{script} {args:?} failed with {}", out.status));
        }
        eprintln!(
            "[support] {script} {} took {:.1}s",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // The node joins hack/testenv's cluster only; it must be the one in use.
    let up = run("hack/testenv/up", &["--node", "--no-build"])?;
    let kubeconfig = up
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("export KUBECONFIG="))
        .ok_or("hack/testenv/up --node printed no KUBECONFIG")?;
    if Path::new(kubeconfig) != Path::new(&cp.kubeconfig) {
        return Err(format!(
            "the tests use KUBECONFIG={}, not hack/testenv's {kubeconfig}",
            cp.kubeconfig.to_string_lossy()
        ));
    }
    run("hack/image", &["--import", "operator", "probe"])?;
    let gateway = std::env::var("TESTENV_POD_CIDR")
        .ok()
        .and_then(|cidr| {
            let net: std::net::Ipv4Addr = cidr.split('/').next()?.parse().ok()?;
            let [a, b, c, _] = net.octets();
            Some(std::net::Ipv4Addr::new(a, b, c, 1))
        })
        .unwrap_or(std::net::Ipv4Addr::new(10, 244, 0, 1));
    Ok(Node {
        gateway,
        operator_repository: "localhost/confluence-operator".into(),
        operator_tag: "dev".into(),
        probe_image: "localhost/testenv/probe:dev".into(),
    })
}
