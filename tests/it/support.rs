//! Shared helpers: one real control plane per test binary (or the one `tests/cluster/run`
//! started), a unique namespace and name prefix per test, and runners for the plugin binary.
//!
//! A missing or broken control plane fails the tests that need it; nothing is skipped.

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The control plane the tests use.
pub struct TestCluster {
    pub kubeconfig: PathBuf,
    /// A directory with a `kubectl` built from the Kubernetes sources (for plugin discovery).
    pub kubectl_dir: PathBuf,
    /// Keeps the owned cluster alive; its stdin closes when this process exits, and kcluster
    /// then stops every component and removes its directory (which it created).
    _owned: Option<Child>,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// The cluster: from `STATEFUL_TEST_KUBECONFIG` when `tests/cluster/run` started one, else one
/// started now for this test binary.
pub fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| match std::env::var_os("STATEFUL_TEST_KUBECONFIG") {
        Some(path) => {
            let kubeconfig = PathBuf::from(path);
            assert!(
                kubeconfig.exists(),
                "STATEFUL_TEST_KUBECONFIG={} does not exist",
                kubeconfig.display()
            );
            let bin = build_kcluster();
            TestCluster {
                kubeconfig,
                kubectl_dir: kubectl_dir(&bin),
                _owned: None,
            }
        }
        None => start_cluster(),
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn build_kcluster() -> PathBuf {
    let out = Command::new(repo().join("tests/cluster/build"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/cluster/build (needs bash and Go)");
    assert!(out.status.success(), "tests/cluster/build failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn kubectl_dir(kcluster: &Path) -> PathBuf {
    let dir = kcluster.parent().unwrap().join("kubectl-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl");
    if !link.exists() {
        let _ = std::os::unix::fs::symlink(kcluster, &link);
    }
    dir
}

fn start_cluster() -> TestCluster {
    let bin = build_kcluster();
    // A path that does not exist yet: kcluster creates it and removes it entirely at shutdown.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("kstateful-it-{}-{nanos}", std::process::id()));
    let mut child = Command::new(&bin)
        .args(["up", "--dir"])
        .arg(&dir)
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kcluster");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(path) = line.strip_prefix("READY KUBECONFIG=") {
                let _ = tx.send(PathBuf::from(path));
            }
        }
    });
    let kubeconfig = rx
        .recv_timeout(Duration::from_secs(240))
        .unwrap_or_else(|_| {
            panic!(
                "the test control plane did not become ready; logs in {}",
                dir.display()
            )
        });
    TestCluster {
        kubeconfig,
        kubectl_dir: kubectl_dir(&bin),
        _owned: Some(child),
    }
}

/// A kube client for the test cluster.
pub async fn client() -> Client {
    let kc = Kubeconfig::read_from(&cluster().kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One test's own namespace and name prefix.
pub struct TestCtx {
    pub ns: String,
    pub prefix: String,
    pub dir: tempfile::TempDir,
}

impl TestCtx {
    /// Creates a unique namespace named after the test.
    pub async fn new(test: &str) -> TestCtx {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let salt = format!("{:x}{n}", std::process::id() % 0xffff);
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect::<String>()
            .to_lowercase();
        let prefix = format!("{short}-{salt}");
        let ns = format!("t-{prefix}");
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client().await);
        let obj = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        api.create(&Default::default(), &obj)
            .await
            .expect("create test namespace");
        // Pods need the namespace's default ServiceAccount.
        let sa: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(client().await, &ns);
        let deadline = Instant::now() + Duration::from_secs(30);
        while sa.get_opt("default").await.unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "no default ServiceAccount in {ns}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        TestCtx {
            ns,
            prefix,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes a spec into the test's directory, with cluster-scoped names made unique.
    pub fn spec(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, uniquify(text, &self.prefix)).unwrap();
        path
    }

    /// Writes an example from `examples/` (made unique).
    pub fn example(&self, name: &str) -> PathBuf {
        let text = std::fs::read_to_string(repo().join(format!("examples/{name}.toml"))).unwrap();
        self.spec(name, &text)
    }

    /// PATH for running the plugin through kubectl: a directory with a `kubectl-stateful`
    /// link to the built binary, then the cluster's kubectl, then the inherited PATH.
    pub fn plugin_path(&self) -> String {
        let bin_dir = self.dir.path().join("bin");
        if !bin_dir.exists() {
            std::fs::create_dir_all(&bin_dir).unwrap();
            std::os::unix::fs::symlink(
                env!("CARGO_BIN_EXE_kubectl-stateful"),
                bin_dir.join("kubectl-stateful"),
            )
            .unwrap();
        }
        format!(
            "{}:{}:{}",
            bin_dir.display(),
            cluster().kubectl_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// How many objects of kind `K` the test's namespace holds.
    pub async fn count<K>(&self) -> usize
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: kube::Api<K> = kube::Api::namespaced(client().await, &self.ns);
        api.list(&Default::default()).await.unwrap().items.len()
    }

    /// Writes `first` and applies it, then writes `second` and applies that: the second run.
    pub fn apply_then_change(&self, name: &str, first: &str, second: &str) -> Run {
        let spec = self.spec(name, first);
        let spec = spec.to_str().unwrap();
        self.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
            .expect_code(0);
        self.spec(name, second);
        self.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
    }

    /// The unique name of a cluster-scoped object of a spec.
    pub fn unique(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Runs the plugin with the test cluster and namespace.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["-n".to_string(), self.ns.clone()]);
        run_plugin(&all, None)
    }
}

/// A test leaves nothing behind when it passes: its namespace (with its claims, pods and
/// snapshots), the namespaces named after it, and the cluster-scoped objects it made —
/// PersistentVolumes, StorageClasses, VolumeSnapshotContents, ClusterRoles and their bindings
/// named with its prefix, or bound to its namespace — are deleted (without waiting). Otherwise a control plane that runs the suite again and again (`tests/cluster/up`)
/// fills up: the simulated nodes hold 330 pods, and past 500 PersistentVolumes their LIST takes
/// two pages, which the request-counting tests would see. A failed test keeps everything, for
/// debugging, and says so.
impl Drop for TestCtx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "kept for debugging: namespace {} and the cluster-scoped objects named {}-*",
                self.ns, self.prefix
            );
            return;
        }
        clean_up(&self.ns, &self.prefix);
    }
}

fn clean_up(ns: &str, prefix: &str) {
    let kubectl = |args: &[&str]| {
        Command::new(cluster().kubectl_dir.join("kubectl"))
            .args(args)
            .env("KUBECONFIG", &cluster().kubeconfig)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    };
    let report = |what: &str, out: std::io::Result<Output>| match out {
        Ok(o) if o.status.success() => Some(o.stdout),
        Ok(o) => {
            eprintln!(
                "cleaning up after {ns}: {what}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("cleaning up after {ns}: {what}: {e}");
            None
        }
    };
    report(
        "delete the namespace",
        kubectl(&[
            "delete",
            "namespace",
            ns,
            "--wait=false",
            "--ignore-not-found",
        ]),
    );
    let kinds = "namespaces,persistentvolumes,storageclasses,volumesnapshotcontents,clusterroles,clusterrolebindings";
    let Some(listed) = report("list", kubectl(&["get", kinds, "-o", "json"])) else {
        return;
    };
    let Ok(list) = serde_json::from_slice::<serde_json::Value>(&listed) else {
        return;
    };
    let own = format!("{prefix}-");
    // Namespaces a test made beside its own are named after it (`t-…-stack`).
    let own_namespaces = format!("{ns}-");
    let mut doomed = Vec::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let bound_here = [
            "/spec/claimRef/namespace",
            "/spec/volumeSnapshotRef/namespace",
        ]
        .iter()
        .any(|p| item.pointer(p).and_then(|v| v.as_str()) == Some(ns));
        let kind = item["kind"].as_str().unwrap_or_default();
        let own_name = if kind == "Namespace" {
            name.starts_with(&own_namespaces)
        } else {
            name.starts_with(&own)
        };
        if own_name || bound_here {
            let kind = kind.to_lowercase();
            doomed.push(format!("{kind}/{name}"));
        }
    }
    if !doomed.is_empty() {
        let mut args = vec!["delete", "--wait=false", "--ignore-not-found"];
        args.extend(doomed.iter().map(String::as_str));
        report("delete its cluster-scoped objects", kubectl(&args));
    }
}

/// Prefixes the names of StorageClasses and PersistentVolumes (cluster-scoped) and every
/// reference to them, so parallel tests never share them. Classes that the test cluster
/// installs (`standard`, `local-storage`) are renamed too when the spec defines them.
pub fn uniquify(text: &str, prefix: &str) -> String {
    let mut doc: toml::Table = toml::from_str(text).expect("valid TOML");
    let rename = |v: &mut toml::Value| {
        if let Some(s) = v.as_str()
            && !s.is_empty()
        {
            *v = toml::Value::String(format!("{prefix}-{s}"));
        }
    };
    let mut defined_classes: Vec<String> = table_names(&doc, "storage_class");
    // Classes carried only by volumes (static binding, e.g. "manual") are per test too; the
    // test cluster's own classes are not.
    for t in tables(&mut doc, "volume") {
        if let Some(class) = t.get("class").and_then(toml::Value::as_str)
            && !["standard", "local-storage", "fast", "fast-immediate", ""].contains(&class)
        {
            defined_classes.push(class.to_string());
        }
    }
    let rename_class = |v: Option<&mut toml::Value>| {
        if let Some(v) = v
            && defined_classes
                .iter()
                .any(|c| Some(c.as_str()) == v.as_str())
        {
            rename(v);
        }
    };
    for key in ["storage_class", "volume"] {
        for t in tables(&mut doc, key) {
            rename(t.get_mut("name").unwrap());
        }
    }
    for t in tables(&mut doc, "volume") {
        rename_class(t.get_mut("class"));
    }
    for t in tables(&mut doc, "claim") {
        rename_class(t.get_mut("class"));
        if let Some(v) = t.get_mut("volume") {
            rename(v);
        }
    }
    for t in tables(&mut doc, "statefulset") {
        if let Some(toml::Value::Array(tpls)) = t.get_mut("volume_claim") {
            for tpl in tpls.iter_mut().filter_map(toml::Value::as_table_mut) {
                rename_class(tpl.get_mut("class"));
            }
        }
    }
    toml::to_string(&doc).unwrap()
}

fn table_names(doc: &toml::Table, key: &str) -> Vec<String> {
    doc.get(key)
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn tables<'a>(doc: &'a mut toml::Table, key: &str) -> Vec<&'a mut toml::Table> {
    match doc.get_mut(key) {
        Some(toml::Value::Array(a)) => a.iter_mut().filter_map(toml::Value::as_table_mut).collect(),
        _ => Vec::new(),
    }
}

/// A finished plugin run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Panics with the output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the plugin binary against the test cluster, without a terminal and without color.
pub fn run_plugin(args: &[String], stdin: Option<&str>) -> Run {
    run_plugin_env(args, &[], stdin)
}

/// The plugin binary with the test defaults: the test cluster's kubeconfig, no color, no user
/// config file; then `env` (`None` removes a variable).
pub fn plugin_command(args: &[String], env: &[(&str, Option<&str>)]) -> Command {
    let c = cluster();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"));
    cmd.args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .env("NO_COLOR", "1")
        .env(
            "KUBECTL_STATEFUL_CONFIG",
            "/nonexistent/kubectl-stateful.toml",
        );
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

/// Like [`run_plugin`], with changes to the environment (`None` removes a variable).
pub fn run_plugin_env(args: &[String], env: &[(&str, Option<&str>)], stdin: Option<&str>) -> Run {
    let mut cmd = plugin_command(args, env);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let start = Instant::now();
    let mut child = cmd.spawn().expect("run kubectl-stateful");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out: Output = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Asserts that `text` contains `needle`, showing the whole text otherwise.
#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

/// The step of a JSON plan for the first object of `kind`.
pub fn step_of<'a>(plan: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    plan["steps"]
        .as_array()
        .expect("plan steps")
        .iter()
        .find(|s| s["object"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the plan"))
}

/// Strings from `&str`s, for argument lists.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A run of the plugin on a pseudo-terminal (stdin, stdout and stderr all the terminal).
#[derive(Debug)]
pub struct TtyRun {
    pub code: i32,
    /// Everything written to the terminal (stdout and stderr interleaved, `\r\n` line ends).
    pub output: String,
}

/// Runs the plugin on a pseudo-terminal with `TERM=xterm` and no `NO_COLOR` (then `env`). For
/// each `(prompt, answer)` in `dialog`, waits for `prompt` and types `answer` and Enter.
pub fn run_on_terminal(
    args: &[String],
    env: &[(&str, Option<&str>)],
    dialog: &[(&str, &str)],
) -> TtyRun {
    run_on_terminal_with(args, env, dialog, |_| {})
}

/// Like [`run_on_terminal`], calling `meanwhile` with each prompt once it is shown and before
/// it is answered (to change the cluster while the plugin waits).
pub fn run_on_terminal_with(
    args: &[String],
    env: &[(&str, Option<&str>)],
    dialog: &[(&str, &str)],
    mut meanwhile: impl FnMut(&str),
) -> TtyRun {
    let mut all_env: Vec<(&str, Option<&str>)> = vec![("NO_COLOR", None), ("TERM", Some("xterm"))];
    all_env.extend_from_slice(env);
    let cmd = plugin_command(args, &all_env);
    let mut session =
        rexpect::session::spawn_command(cmd, Some(120_000)).expect("spawn on a pseudo-terminal");
    let mut output = String::new();
    for (prompt, answer) in dialog {
        let before = session
            .exp_string(prompt)
            .unwrap_or_else(|e| panic!("no prompt {prompt:?} on the terminal: {e}"));
        output.push_str(&before);
        output.push_str(prompt);
        meanwhile(prompt);
        session.send_line(answer).expect("type the answer");
    }
    output.push_str(&session.exp_eof().expect("the plugin ends"));
    let code = match session.process().wait().expect("wait for the plugin") {
        rexpect::process::WaitStatus::Exited(_, code) => code,
        other => panic!("the plugin did not exit normally: {other:?}\n{output}"),
    };
    TtyRun { code, output }
}

/// Writes a kubeconfig into `dir` (named `name`) from the test cluster's, changed by `edit`.
pub fn kubeconfig_with(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut serde_yaml::Value),
) -> PathBuf {
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster().kubeconfig).unwrap()).unwrap();
    edit(&mut kc);
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

/// The JSON lines of an `apply -o json` run.
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `check` every 200ms until it returns true, for at most `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the test cluster's kubectl — in namespace `ns` when given, with `stdin` as its input —
/// asserts that it succeeded and returns what it printed.
pub fn kubectl(ns: Option<&str>, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut command = Command::new(cluster().kubectl_dir.join("kubectl"));
    command.args(args);
    if let Some(ns) = ns {
        command.args(["-n", ns]);
    }
    let mut child = command
        .env("KUBECONFIG", &cluster().kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let input = child.stdin.take().expect("kubectl's stdin");
    if let Some(text) = stdin {
        let mut input = input;
        input
            .write_all(text.as_bytes())
            .expect("write kubectl's input");
    } else {
        drop(input);
    }
    let out = child.wait_with_output().expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The data oracle: where a volume's data lives in the test bed, so that tests can tell whether
// data survived an operation. Nothing mounts these directories (no container ever runs); the
// tests write and read them directly, standing in for the workload.
//
// * csi.stateful.test volumes: the simulated driver keeps each volume's content in
//   `<cluster dir>/csi-data/volumes/<volumeHandle>/` from CreateVolume (empty, or a copy of the
//   snapshot it is restored from) to DeleteVolume (reclaim Delete), and each snapshot's copy in
//   `<cluster dir>/csi-data/snapshots/<snapshotHandle>/` from CreateSnapshot to DeleteSnapshot
//   (tests/cluster/README.md). The cluster dir is the kubeconfig's directory.
// * hostPath volumes: the directory `spec.hostPath.path`. The controller-manager's host-path
//   provisioner (class `standard`) creates `/tmp/hostpath_pv/<uuid>` and its deleter removes it
//   (reclaim Delete); a static `host_path` volume's directory is made by nobody (no kubelet
//   runs): `write_marker` makes it, below the temp dir only.
// * local volumes: `spec.local.path`, like a static hostPath.

/// The file a test's marker is kept in, inside a volume's directory.
pub const MARKER_FILE: &str = "kstateful-marker";

/// The directory the test cluster keeps its state in (kcluster's `--dir`).
pub fn cluster_dir() -> PathBuf {
    cluster()
        .kubeconfig
        .parent()
        .expect("the kubeconfig's directory")
        .to_path_buf()
}

/// Where the simulated CSI driver keeps its volumes and snapshots.
fn csi_data_dir() -> PathBuf {
    let dir = cluster_dir().join("csi-data");
    assert!(
        dir.is_dir(),
        "{} does not exist: the test cluster's kcluster predates the data oracle (rebuild it with tests/cluster/build and restart the cluster)",
        dir.display()
    );
    dir
}

/// A volume's data in the test bed, resolved from its claim while the claim is bound: it stays
/// usable after the claim and the volume are deleted, to check that the data went too.
#[derive(Debug, Clone)]
pub struct VolumeData {
    /// The PersistentVolume.
    pub volume: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Made by a provisioner (and removed by it with reclaim Delete), not by a test.
    pub provisioned: bool,
}

impl VolumeData {
    /// Whether the volume's directory exists (false: the data is gone).
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Writes `text` as the volume's marker, as the workload would write its data.
    #[track_caller]
    pub fn write_marker(&self, text: &str) {
        if !self.provisioned && !self.exists() {
            // A static volume: nobody made its directory. Only ever below the temp dir.
            assert!(
                self.dir.starts_with(std::env::temp_dir()) || self.dir.starts_with("/tmp"),
                "{}: the static volume {}'s directory {} is outside the temp dir; not creating it",
                self.volume,
                self.volume,
                self.dir.display()
            );
            std::fs::create_dir_all(&self.dir).unwrap();
        }
        assert!(
            self.exists(),
            "volume {}: its directory {} does not exist (not provisioned, or deleted)",
            self.volume,
            self.dir.display()
        );
        std::fs::write(self.dir.join(MARKER_FILE), text).unwrap();
    }

    /// The volume's marker: `None` when its directory is gone or holds no marker.
    pub fn read_marker(&self) -> Option<String> {
        read_marker_in(&self.dir)
    }

    /// Waits (at most `timeout`) until the volume's directory is gone.
    pub async fn wait_gone(&self, timeout: Duration) {
        let what = format!(
            "the data of volume {} ({}) to be deleted",
            self.volume,
            self.dir.display()
        );
        eventually(&what, timeout, || async { !self.exists() }).await;
    }
}

fn read_marker_in(dir: &Path) -> Option<String> {
    match std::fs::read_to_string(dir.join(MARKER_FILE)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("reading {}: {e}", dir.join(MARKER_FILE).display()),
    }
}

/// The bound volume of claim `ns/claim` (`None` when the claim does not exist or is unbound).
async fn bound_volume(
    ns: &str,
    claim: &str,
) -> Option<k8s_openapi::api::core::v1::PersistentVolume> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, ns);
    let pvc = claims.get_opt(claim).await.unwrap()?;
    let name = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|n| !n.is_empty())?;
    let volumes: kube::Api<PersistentVolume> = kube::Api::all(client().await);
    let pv = volumes.get_opt(&name).await.unwrap()?;
    // Bound both ways (a claimRef to another claim is not this claim's data).
    let uid = pvc.metadata.uid;
    let claim_ref = pv.spec.as_ref()?.claim_ref.as_ref()?;
    (claim_ref.name.as_deref() == Some(claim)
        && claim_ref.namespace.as_deref() == Some(ns)
        && (claim_ref.uid.is_none() || claim_ref.uid == uid))
        .then_some(pv)
}

/// Where a PersistentVolume's data lives, or why the oracle cannot tell.
fn volume_dir(pv: &k8s_openapi::api::core::v1::PersistentVolume) -> Result<VolumeData, String> {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let spec = pv.spec.as_ref().ok_or("no spec")?;
    let provisioned_by = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("pv.kubernetes.io/provisioned-by"))
        .cloned();
    if let Some(csi) = &spec.csi {
        if csi.driver != "csi.stateful.test" {
            return Err(format!(
                "{name}: CSI driver {} keeps no data here",
                csi.driver
            ));
        }
        return Ok(VolumeData {
            volume: name,
            dir: csi_data_dir().join("volumes").join(&csi.volume_handle),
            provisioned: true,
        });
    }
    let (path, provisioned) = match (&spec.host_path, &spec.local) {
        (Some(h), _) => (
            &h.path,
            provisioned_by.as_deref() == Some("kubernetes.io/host-path"),
        ),
        (None, Some(l)) => (&l.path, false),
        _ => return Err(format!("{name}: no data oracle for this kind of volume")),
    };
    Ok(VolumeData {
        volume: name,
        dir: PathBuf::from(path),
        provisioned,
    })
}

/// The data of claim `ns/claim`'s bound volume (panics when the claim is not bound or its
/// volume keeps no data in the test bed).
pub async fn volume_data(ns: &str, claim: &str) -> VolumeData {
    let pv = bound_volume(ns, claim)
        .await
        .unwrap_or_else(|| panic!("pvc {ns}/{claim} is not bound to a volume"));
    volume_dir(&pv).unwrap_or_else(|e| panic!("pvc {ns}/{claim}: {e}"))
}

/// Like [`volume_data`], `None` when the claim is not bound or its volume keeps no data in the
/// test bed (an NFS volume, another CSI driver).
pub async fn try_volume_data(ns: &str, claim: &str) -> Option<VolumeData> {
    volume_dir(&bound_volume(ns, claim).await?).ok()
}

/// Writes `text` as the marker of claim `ns/claim`'s volume and returns where it went.
pub async fn write_marker(ns: &str, claim: &str, text: &str) -> VolumeData {
    let data = volume_data(ns, claim).await;
    data.write_marker(text);
    data
}

/// The marker of claim `ns/claim`'s volume, resolved now: `None` when the claim is gone or
/// unbound, or its volume's data is gone or holds no marker.
pub async fn read_marker(ns: &str, claim: &str) -> Option<String> {
    let pv = bound_volume(ns, claim).await?;
    volume_dir(&pv)
        .unwrap_or_else(|e| panic!("pvc {ns}/{claim}: {e}"))
        .read_marker()
}

/// The directory of VolumeSnapshot `ns/name`'s copy in the simulated driver (`None` when the
/// snapshot has no bound content with a snapshot handle yet).
pub async fn snapshot_dir(ns: &str, name: &str) -> Option<PathBuf> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let gvk = |kind: &str| GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind);
    let snapshots: kube::Api<DynamicObject> = kube::Api::namespaced_with(
        client().await,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk("VolumeSnapshot"), "volumesnapshots"),
    );
    let snap = snapshots.get_opt(name).await.unwrap()?;
    let content_name = snap.data["status"]["boundVolumeSnapshotContentName"]
        .as_str()?
        .to_string();
    let contents: kube::Api<DynamicObject> = kube::Api::all_with(
        client().await,
        &ApiResource::from_gvk_with_plural(&gvk("VolumeSnapshotContent"), "volumesnapshotcontents"),
    );
    let content = contents.get_opt(&content_name).await.unwrap()?;
    assert_eq!(
        content.data["spec"]["driver"], "csi.stateful.test",
        "snapshot {ns}/{name}: only the simulated driver's snapshots keep data"
    );
    let handle = content.data["status"]["snapshotHandle"].as_str()?;
    Some(csi_data_dir().join("snapshots").join(handle))
}

/// The marker in VolumeSnapshot `ns/name`'s copy: `None` when the snapshot (or its copy) does
/// not exist or holds no marker.
pub async fn snapshot_marker(ns: &str, name: &str) -> Option<String> {
    read_marker_in(&snapshot_dir(ns, name).await?)
}
