//! Fault runs against the real control plane: an API server that goes away mid-apply, watches
//! cut mid-wait, a writer that keeps changing a field apply sets, a missing RBAC verb, SIGINT
//! and SIGTERM, throttling and server errors, a refused credential, very large specs. Each ends
//! in a clear report and exit code, and then a plain re-run of apply converges with no claim or
//! volume deleted and no pod re-created.
//!
//! Network faults are injected by [`crate::proxy::Proxy`], a TLS-terminating proxy between the
//! plugin and the API server.

use crate::proxy::Proxy;
use crate::support::{TestCtx, assert_contains, client, cluster, run_plugin};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A volume, a claim bound to it, and a StatefulSet of `REPLICAS` mounting the claim.
const STACK: &str = r#"
[[volume]]
name = "pv"
capacity = "1Gi"
host_path = { path = "/tmp/kstateful-faults" }

[[claim]]
name = "data"
size = "1Gi"
volume = "pv"

[[statefulset]]
name = "db"
image = "img:1"
replicas = REPLICAS
[[statefulset.mount]]
claim = "data"
path = "/data"
"#;

fn stack(replicas: u32) -> String {
    STACK.replace("REPLICAS", &replicas.to_string())
}

/// The plugin running in the background, its stdout read line by line.
struct Background {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Background {
    fn start(args: &[&str], kubeconfig: &Path) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .env("KUBECTL_STATEFUL_CONFIG", "/nonexistent")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        Background {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// Reads stdout until a line matches (panics after two minutes or at the end of output).
    #[track_caller]
    fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    let hit = matches(&line);
                    self.stdout.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no {what} in the output:\n{}\n--- stderr\n{}",
                    self.stdout.join("\n"),
                    self.kill_and_stderr()
                ),
            }
        }
    }

    fn kill_and_stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        String::new()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the end; returns the exit code, all of stdout and stderr.
    fn finish(mut self) -> (i32, String, String) {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        let stderr = self.stderr.join().unwrap();
        (status.code().unwrap_or(-1), self.stdout.join("\n"), stderr)
    }
}

/// An event line of `apply -o json`.
fn event(line: &str, name: &str, kind: &str) -> bool {
    line.contains(&format!("\"event\":\"{name}\""))
        && line.contains(&format!("\"kind\":\"{kind}\""))
}

/// Uids of the stack's volume, claims and pods: a re-run must keep every one of them.
async fn uids(ctx: &TestCtx, pv: &str) -> BTreeMap<String, String> {
    let c = client().await;
    let mut out = BTreeMap::new();
    let pvs: kube::Api<PersistentVolume> = kube::Api::all(c.clone());
    if let Some(v) = pvs.get_opt(pv).await.unwrap() {
        out.insert(format!("pv/{pv}"), v.metadata.uid.unwrap_or_default());
    }
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(c.clone(), &ctx.ns);
    for c in claims.list(&Default::default()).await.unwrap().items {
        out.insert(
            format!("pvc/{}", c.metadata.name.unwrap_or_default()),
            c.metadata.uid.unwrap_or_default(),
        );
    }
    let pods: kube::Api<Pod> = kube::Api::namespaced(c, &ctx.ns);
    for p in pods.list(&Default::default()).await.unwrap().items {
        out.insert(
            format!("pod/{}", p.metadata.name.unwrap_or_default()),
            p.metadata.uid.unwrap_or_default(),
        );
    }
    out
}

/// A plain re-run of apply (no proxy) has nothing to do and keeps every volume, claim and pod.
async fn converges(ctx: &TestCtx, spec: &str, before: &BTreeMap<String, String>) {
    let again = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"]);
    again.expect_code(0);
    assert_contains(
        &again.stdout,
        "Plan: 0 to create, 0 to update, 0 to replace",
    );
    let after = uids(ctx, &ctx.unique("pv")).await;
    for (what, uid) in before {
        assert_eq!(
            after.get(what),
            Some(uid),
            "{what} was deleted or re-created"
        );
    }
}

fn args<'a>(ctx: &'a TestCtx, spec: &'a str, kubeconfig: &'a str) -> Vec<&'a str> {
    vec![
        "apply",
        "-f",
        spec,
        "--yes",
        "--timeout",
        "2m",
        "-o",
        "json",
        "-n",
        &ctx.ns,
        "--kubeconfig",
        kubeconfig,
    ]
}

/// 1. The API server goes away after the volumes are written and comes back 8 s later: apply
///    keeps retrying with backoff within --timeout and finishes.
#[tokio::test]
async fn the_api_server_going_away_mid_apply_is_waited_out() {
    let ctx = TestCtx::new("faultrestart").await;
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let spec = ctx.spec("stack", &stack(1));
    let (spec, kc) = (spec.to_str().unwrap(), kc.to_str().unwrap());
    let mut run = Background::start(&args(&ctx, spec, kc), &cluster().kubeconfig);
    run.wait_for("a ready volume", |l| event(l, "ready", "PersistentVolume"));
    proxy.set_down(true);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let refused = proxy.refused();
    proxy.set_down(false);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stdout}\n--- stderr\n{stderr}");
    assert!(
        refused > 0,
        "the plugin did not try to reach the server while it was away"
    );
    assert_contains(&stdout, "\"event\":\"finished\",\"ok\":true");
    let before = uids(&ctx, &ctx.unique("pv")).await;
    converges(&ctx, spec, &before).await;
}

/// 2. Every connection (watches included) is cut while apply waits for the StatefulSet: the
///    waits resume (re-listing as needed) and nothing is written twice.
#[tokio::test]
async fn watches_cut_mid_wait_resume_without_writing_again() {
    let ctx = TestCtx::new("faultwatch").await;
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let spec = ctx.spec("stack", &stack(3));
    let (spec, kc) = (spec.to_str().unwrap(), kc.to_str().unwrap());
    let mut run = Background::start(&args(&ctx, spec, kc), &cluster().kubeconfig);
    run.wait_for("the StatefulSet written", |l| {
        event(l, "applied", "StatefulSet")
    });
    for _ in 0..3 {
        proxy.drop_connections();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stdout}\n--- stderr\n{stderr}");
    let applied = stdout
        .lines()
        .filter(|l| l.contains("\"event\":\"applied\""))
        .count();
    assert_eq!(applied, 4, "each object written once:\n{stdout}");
    let creates: Vec<String> = proxy
        .log()
        .iter()
        .filter(|l| l.is_real_write() && l.method == "POST" && stack_object(&l.path))
        .map(|l| l.path.clone())
        .collect();
    assert_eq!(
        creates.len(),
        4,
        "creates that reached the server: {creates:#?}"
    );
    let before = uids(&ctx, &ctx.unique("pv")).await;
    converges(&ctx, spec, &before).await;
}

/// A write to one of the stack's objects, not the apply's own bookkeeping (the credential check,
/// the stack's lock).
fn stack_object(path: &str) -> bool {
    !path.contains("/selfsubject") && !path.contains("/leases")
}

/// 6. Throttling (429), server errors (500, 503) and a create whose answer is lost: retried
///    with backoff, reported, and nothing is created twice.
#[tokio::test]
async fn throttling_and_server_errors_are_retried_without_duplicate_writes() {
    let ctx = TestCtx::new("faulterrors").await;
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let spec = ctx.spec("stack", &stack(1));
    let (spec, kc) = (spec.to_str().unwrap(), kc.to_str().unwrap());
    proxy.fail_next(&[503, 429, 500, 503, 429, 503]);
    proxy.lie_about_next_writes(1);
    let run = Background::start(&args(&ctx, spec, kc), &cluster().kubeconfig);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stdout}\n--- stderr\n{stderr}");
    let log = proxy.log();
    let injected = log.iter().filter(|l| !l.forwarded).count();
    assert_eq!(injected, 6, "every injected failure was met");
    // The lost answer of the first create is found out and reported.
    assert_contains(&stdout, "\"event\":\"retrying\"");
    assert_contains(
        &stdout,
        "the earlier attempt whose answer was lost created it",
    );
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for l in log.iter().filter(|l| {
        l.is_real_write() && l.method == "POST" && l.status == 201 && stack_object(&l.path)
    }) {
        *created.entry(l.path.clone()).or_default() += 1;
    }
    assert_eq!(created.len(), 4, "{created:#?}");
    assert!(
        created.values().all(|n| *n == 1),
        "created twice: {created:#?}"
    );
    let before = uids(&ctx, &ctx.unique("pv")).await;
    converges(&ctx, spec, &before).await;
}

/// 3. Another writer keeps changing a field the spec sets (`kubectl scale` in a loop): apply
///    refuses the conflict, or finds the object changed since the plan, and says so; with
///    --force-conflicts, once the writer stops, it converges.
#[tokio::test]
async fn a_writer_that_keeps_changing_a_field_is_never_silently_overwritten() {
    let ctx = TestCtx::new("faultwriter").await;
    let spec = ctx.spec("w", &stack(1));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, ns) = (stop.clone(), ctx.ns.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let _ = Command::new(cluster().kubectl_dir.join("kubectl"))
                    .args([
                        "scale",
                        "statefulset/db",
                        &format!("--replicas={}", 2 + n % 2),
                        "-n",
                        &ns,
                    ])
                    .env("KUBECONFIG", &cluster().kubeconfig)
                    .output();
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    // Wait until the writer owns the field (the first `kubectl scale` has landed).
    let sets: kube::Api<StatefulSet> = kube::Api::namespaced(client().await, &ctx.ns);
    for _ in 0..600 {
        let sts = sets.get("db").await.unwrap();
        let managers: Vec<String> = sts
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        if managers.iter().any(|m| m == "kubectl") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The spec now changes the image too: an update that touches replicas, owned by kubectl.
    std::fs::write(
        spec,
        std::fs::read_to_string(spec)
            .unwrap()
            .replace("img:1", "img:2"),
    )
    .unwrap();
    let refused = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"]);
    refused.expect_code(1);
    assert_contains(
        &refused.stderr,
        "spec.replicas is owned by field manager \"kubectl\"",
    );
    let sts: kube::Api<StatefulSet> = kube::Api::namespaced(client().await, &ctx.ns);
    let image = |s: StatefulSet| {
        s.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
    };
    assert_eq!(
        image(sts.get("db").await.unwrap()).as_deref(),
        Some("img:1"),
        "nothing written"
    );
    // Forced while the writer goes on: either it lands, or the write finds the object changed
    // since the plan and stops, saying so. Never an unexplained failure.
    let forced = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--force-conflicts",
        "--timeout",
        "20s",
    ]);
    if forced.code != 0 {
        forced.expect_code(1);
        let text = format!("{}{}", forced.stdout, forced.stderr);
        assert!(
            text.contains("changed since the plan was made")
                || text.contains("kept changing")
                || text.contains("timed out")
                || text.contains("replicas"),
            "{text}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let before = uids(&ctx, &ctx.unique("pv")).await;
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--force-conflicts",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    assert_eq!(
        image(sts.get("db").await.unwrap()).as_deref(),
        Some("img:2")
    );
    let after = uids(&ctx, &ctx.unique("pv")).await;
    for what in before.keys().filter(|k| !k.starts_with("pod/")) {
        assert_eq!(before.get(what), after.get(what), "{what} was deleted");
    }
}

/// 4. An account without `patch` on StatefulSets: plan and apply name the verb, the resource
///    and the object that needed it; apply writes nothing, not even the objects it could plan.
#[tokio::test]
async fn a_missing_rbac_verb_is_named_and_nothing_is_written() {
    let ctx = TestCtx::new("faultrbac").await;
    let spec = ctx.spec("r", &stack(1));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let role = crate::rbac::example_role_without("statefulsets", &["patch"]);
    let kubeconfig = crate::rbac::account_with(&ctx, "nopatch", role).await;
    let kubeconfig = kubeconfig.to_str().unwrap();
    // Two changes: the claim's labels (allowed) and the StatefulSet's replicas (not allowed).
    std::fs::write(
        spec,
        std::fs::read_to_string(spec)
            .unwrap()
            .replace("replicas = 1", "replicas = 2")
            .replace("volume = ", "labels = { tier = \"gold\" }\nvolume = "),
    )
    .unwrap();
    let as_account = |extra: &[&str]| {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend([
            "-f".into(),
            spec.into(),
            "-n".into(),
            ctx.ns.clone(),
            "--kubeconfig".into(),
            kubeconfig.into(),
        ]);
        run_plugin(&a, None)
    };
    let plan = as_account(&["plan"]);
    plan.expect_code(1);
    assert_contains(&plan.stdout, "! statefulset/db could not be planned");
    assert_contains(
        &plan.stdout,
        &format!(
            "needs the patch verb on statefulsets in namespace {}",
            ctx.ns
        ),
    );
    assert_contains(&plan.stdout, "~ pvc/data will be updated in place");
    let apply = as_account(&["apply", "--yes"]);
    apply.expect_code(1);
    assert_contains(&apply.stderr, "could not be planned: statefulset/db");
    assert_contains(&apply.stderr, "patch verb on statefulsets");
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let labels = claims
        .get("data")
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default();
    assert!(
        !labels.contains_key("tier"),
        "apply wrote the claim: {labels:?}"
    );
}

/// 5. SIGINT and SIGTERM while apply waits: in-flight writes finish, waits are abandoned, the
///    summary says what was not done, exit 130 / 143; a later apply continues and converges.
#[tokio::test]
async fn sigint_and_sigterm_stop_apply_with_a_summary() {
    let ctx = TestCtx::new("faultsignal").await;
    // A claim that binds only to a volume with this label: none exists until the test makes one.
    let text = format!(
        "[[claim]]\nname = \"wait\"\nsize = \"1Gi\"\nclass = \"\"\nselector = {{ fault = \"{}\" }}\n\n[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\n[[statefulset.mount]]\nclaim = \"wait\"\npath = \"/data\"\n",
        ctx.prefix
    );
    let spec = ctx.spec("sig", &text);
    let spec = spec.to_str().unwrap();
    let kc = cluster().kubeconfig.to_str().unwrap().to_string();
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let mut run = Background::start(&args(&ctx, spec, &kc), &cluster().kubeconfig);
        run.wait_for("the claim's wait", |l| {
            event(l, "waiting", "PersistentVolumeClaim")
        });
        run.signal(signal);
        let (got, stdout, stderr) = run.finish();
        assert_eq!(got, code, "SIG{signal}\n{stdout}\n--- stderr\n{stderr}");
        assert_contains(
            &stdout,
            &format!("\"event\":\"interrupted\",\"signal\":\"SIG{signal}\""),
        );
        assert_contains(&stdout, "\"name\":\"db\"");
        assert_contains(&stderr, &format!("interrupted by SIG{signal}"));
        assert_contains(&stderr, "not done: pvc/wait, service/db, statefulset/db");
        let last = stdout.lines().last().unwrap_or_default();
        assert!(last.contains("\"event\":\"error\""), "{last}");
    }
    assert_eq!(
        ctx.count::<StatefulSet>().await,
        0,
        "nothing was started after the signal"
    );
    // The volume the claim waits for appears: the next apply continues and finishes.
    let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
        "metadata": {"name": ctx.unique("pv"), "labels": {"fault": ctx.prefix}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "", "hostPath": {"path": "/tmp/kstateful-faults"}}
    }))
    .unwrap();
    kube::Api::<PersistentVolume>::all(client().await)
        .create(&Default::default(), &pv)
        .await
        .unwrap();
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let uid = claims.get("wait").await.unwrap().metadata.uid;
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    assert_eq!(
        claims.get("wait").await.unwrap().metadata.uid,
        uid,
        "the claim was kept"
    );
}

/// 7. An invalid credential: one error naming the context, and the token appears nowhere.
#[tokio::test]
async fn a_refused_credential_names_the_context_and_never_the_token() {
    let ctx = TestCtx::new("faultcreds").await;
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster().kubeconfig).unwrap()).unwrap();
    let token = "kst-fault-token-1b9f0c2e7d";
    for user in kc["users"].as_sequence_mut().unwrap() {
        user["user"] = serde_yaml::from_str(&format!("token: {token}")).unwrap();
    }
    for c in kc["contexts"].as_sequence_mut().unwrap() {
        c["name"] = "ci-deployer".into();
    }
    kc["current-context"] = "ci-deployer".into();
    let path = ctx.dir.path().join("expired.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    let spec = ctx.spec("c", &stack(1));
    for command in ["plan", "apply"] {
        let mut a = vec![
            command.to_string(),
            "-f".into(),
            spec.to_str().unwrap().into(),
            "--kubeconfig".into(),
            path.to_str().unwrap().into(),
            "-n".into(),
            ctx.ns.clone(),
        ];
        if command == "apply" {
            a.push("--yes".into());
        }
        let run = run_plugin(&a, None);
        run.expect_code(1);
        assert_contains(&run.stderr, "context \"ci-deployer\"");
        assert_contains(&run.stderr, "rejected the credentials");
        assert_contains(&run.stderr, "(401 Unauthorized)");
        let first = run
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        assert!(
            first.contains("401"),
            "the first line says it all: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains(token) && !run.stderr.contains(token),
            "the token was printed"
        );
    }
}

/// 8. Very large inputs: 10,000 objects cost about ten times 1,000 (no quadratic step in
///    loading, validation, objects and scheduling), and a 5 MB spec is read in bounded memory.
#[tokio::test]
async fn very_large_specs_scale_linearly_in_bounded_memory() {
    use kubectl_stateful::plan::compute::{DryRun, StepInput, compute_step};
    use kubectl_stateful::{desired, plan, spec};
    let ctx = TestCtx::new("faultlarge").await;
    let make = |n: usize| -> String {
        let mut s = String::new();
        for i in 0..n / 4 {
            s.push_str(&format!(
                "[[volume]]\nname = \"pv-{i}\"\ncapacity = \"1Gi\"\nhost_path = {{ path = \"/d/{i}\" }}\n\n[[claim]]\nname = \"c-{i}\"\nsize = \"1Gi\"\nvolume = \"pv-{i}\"\n\n[[statefulset]]\nname = \"s-{i}\"\nimage = \"img:1\"\n[[statefulset.mount]]\nclaim = \"c-{i}\"\npath = \"/data\"\n\n"
            ));
        }
        s
    };
    // The CPU time of this thread (on-CPU nanoseconds, the first field of its schedstat), not
    // wall time: the other tests and the control plane share the two cores and would otherwise
    // decide the ratio.
    let thread_cpu = || -> Duration {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
            .expect("read /proc/thread-self/schedstat");
        let ns: u64 = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .expect("schedstat starts with the on-CPU nanoseconds");
        Duration::from_nanos(ns)
    };
    let cost = |n: usize| -> Duration {
        let text = make(n);
        let start = thread_cpu();
        let spec = spec::load("big.toml", &text, "big").expect("a valid spec");
        let objects = desired::desired_objects(
            &spec,
            &desired::Context {
                namespace: "ns".into(),
                ..Default::default()
            },
        );
        assert_eq!(objects.len(), n);
        let steps = objects
            .iter()
            .map(|d| {
                compute_step(StepInput {
                    desired: d,
                    live: None,
                    dry_run: DryRun::Ok(d.manifest.clone()),
                    wait: Default::default(),
                    stack: "big",
                    conflicts: Vec::new(),
                })
            })
            .collect();
        let p = plan::Plan::new("big".into(), "ns".into(), String::new(), steps);
        assert!(!p.operations.is_empty());
        thread_cpu().saturating_sub(start)
    };
    cost(400); // warm up
    // The best of three runs each (caches, allocator): a linear cost (a ratio near 10) is told
    // from a quadratic one (near 100) without being a benchmark.
    let best = |n: usize| (0..3).map(|_| cost(n)).min().unwrap_or_default();
    let small = best(1_000);
    let large = best(10_000);
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
    assert!(
        ratio < 50.0,
        "10,000 objects took {ratio:.1} times as long as 1,000 ({small:?} → {large:?}): something is quadratic"
    );

    // A 5 MB spec through the binary, against a server that refuses connections: it is read,
    // validated and fails to connect, in bounded memory.
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 5 << 20 {
        text.push_str(&format!(
            "[[claim]]\nname = \"claim-{i}\"\nsize = \"1Gi\"\n\n"
        ));
        i += 1;
    }
    let path = ctx.dir.path().join("five-mb.toml");
    std::fs::write(&path, &text).unwrap();
    let nowhere = ctx.dir.path().join("nowhere.kubeconfig");
    std::fs::write(
        &nowhere,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: x\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: x\n  context: {cluster: x, user: u}\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"))
        .args([
            "plan",
            "-f",
            path.to_str().unwrap(),
            "--kubeconfig",
            nowhere.to_str().unwrap(),
        ])
        .env("KUBECTL_STATEFUL_CONFIG", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            for line in status.lines().filter(|l| l.starts_with("VmHWM:")) {
                let kb: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                peak_kb = peak_kb.max(kb);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.1:1"),
        "it got as far as connecting: {stderr}"
    );
    assert!(
        peak_kb > 0 && peak_kb < 400 * 1024,
        "peak memory {} MB for a 5 MB spec",
        peak_kb / 1024
    );
}
