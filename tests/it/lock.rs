//! One apply at a time, and a spec changed under a running apply, on the real control plane.

use crate::support::{TestCtx, assert_contains, cluster};
use std::process::Command;
use std::time::Duration;

fn kubectl(ns: &str, args: &[&str]) {
    let out = Command::new(cluster().kubectl_dir.join("kubectl"))
        .args(args)
        .args(["-n", ns])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the stack's lease exists.
fn lease_exists(ns: &str, stack: &str) -> bool {
    Command::new(cluster().kubectl_dir.join("kubectl"))
        .args([
            "get",
            "lease",
            &format!("kubectl-stateful-{stack}"),
            "-n",
            ns,
            "-o",
            "name",
        ])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .unwrap()
        .status
        .success()
}

/// Waits (at most a minute) until the apply running in `apply` holds the stack's lease; it must
/// not end before.
fn wait_for_lease<T>(ns: &str, stack: &str, apply: &std::thread::JoinHandle<T>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !lease_exists(ns, stack) {
        assert!(
            std::time::Instant::now() < deadline,
            "the apply never took the lease"
        );
        assert!(
            !apply.is_finished(),
            "the apply ended before it held the lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A StatefulSet whose wait lasts a few seconds (minReadySeconds).
const SLOW: &str =
    "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = 1\nmin_ready_seconds = 6\n";

/// The first apply holds the lock until the test lets it finish: its claim binds only to a
/// volume with the test's label, which the test creates once the second apply was refused. (A
/// wait of a few seconds instead would race the second apply's own planning under load.)
#[tokio::test]
async fn a_second_apply_of_the_same_stack_is_refused_while_the_first_runs() {
    let ctx = TestCtx::new("lock").await;
    let spec = ctx.spec(
        "l",
        &format!(
            "[[claim]]\nname = \"wait\"\nsize = \"1Gi\"\nclass = \"\"\nselector = {{ lock = \"{}\" }}\n",
            ctx.prefix
        ),
    );
    let spec = spec.to_str().unwrap().to_string();
    let apply_in_background = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "apply",
            "-f",
            &spec,
            "--yes",
            "--timeout",
            "2m",
            "-n",
            &ctx.ns,
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        std::thread::spawn(move || crate::support::run_plugin(&args, None))
    };
    let first = apply_in_background(&[]);
    // Wait until the first apply holds the lease.
    wait_for_lease(&ctx.ns, "l", &first);
    let second = ctx.run(&["apply", "-f", &spec, "--yes"]);
    second.expect_code(1);
    assert_contains(&second.stderr, "stack l is being applied by ");
    assert_contains(&second.stderr, "--lock-timeout");
    // Every command that writes takes the lock: an on-demand snapshot too.
    let snapshot = ctx.run(&["snapshot", "-f", &spec]);
    snapshot.expect_code(1);
    assert_contains(&snapshot.stderr, "stack l is being applied by ");
    // With --lock-timeout it waits for the first one and then runs.
    let waiting = apply_in_background(&["--lock-timeout", "2m"]);
    assert!(
        !first.is_finished(),
        "the first apply still waits for its volume"
    );
    // The volume the claim waits for: the first apply finishes, then the waiting one runs.
    let pv = format!(
        r#"{{"apiVersion":"v1","kind":"PersistentVolume","metadata":{{"name":"{}","labels":{{"lock":"{}"}}}},"spec":{{"capacity":{{"storage":"1Gi"}},"accessModes":["ReadWriteOnce"],"storageClassName":"","hostPath":{{"path":"/tmp/kstateful-lock"}}}}}}"#,
        ctx.unique("pv"),
        ctx.prefix
    );
    crate::support::kubectl(None, &["create", "-f", "-"], Some(&pv));
    first.join().unwrap().expect_code(0);
    waiting.join().unwrap().expect_code(0);
    assert!(!lease_exists(&ctx.ns, "l"), "released at the end");
}

#[tokio::test]
async fn a_spec_changed_by_another_writer_during_apply_is_reported_as_theirs() {
    let ctx = TestCtx::new("underapply").await;
    // A long wait, so that the other writer surely comes while apply still waits.
    let spec = ctx.spec(
        "u",
        &SLOW.replace("min_ready_seconds = 6", "min_ready_seconds = 30"),
    );
    let spec = spec.to_str().unwrap().to_string();
    let apply = {
        let ns = ctx.ns.clone();
        std::thread::spawn(move || {
            crate::support::run_plugin(
                &["apply", "-f", &spec, "--yes", "--timeout", "1m", "-n", &ns].map(String::from),
                None,
            )
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(cluster().kubectl_dir.join("kubectl"))
            .args(["get", "statefulset", "db", "-n", &ctx.ns, "-o", "name"])
            .env("KUBECONFIG", &cluster().kubeconfig)
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    kubectl(&ctx.ns, &["scale", "statefulset/db", "--replicas=2"]);
    let run = apply.join().unwrap();
    run.expect_code(1);
    assert_contains(&run.stdout, "changed by kubectl during apply");
}

/// A lock lost mid-rollout (the lease taken over by another holder) stops the apply like a
/// signal: nothing more is started, exit 1, and it says why.
#[tokio::test]
async fn an_apply_that_loses_its_lock_starts_nothing_more() {
    let ctx = TestCtx::new("locklost").await;
    // The claim waits for a volume that never comes; the StatefulSet mounting it waits behind it.
    let spec = ctx.spec(
        "k",
        &format!(
            "[[claim]]\nname = \"wait\"\nsize = \"1Gi\"\nclass = \"\"\nselector = {{ lost = \"{}\" }}\n\n[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\n[[statefulset.mount]]\nclaim = \"wait\"\npath = \"/data\"\n",
            ctx.prefix
        ),
    );
    let spec = spec.to_str().unwrap().to_string();
    let apply = {
        let ns = ctx.ns.clone();
        std::thread::spawn(move || {
            crate::support::run_plugin(
                &["apply", "-f", &spec, "--yes", "--timeout", "3m", "-n", &ns].map(String::from),
                None,
            )
        })
    };
    wait_for_lease(&ctx.ns, "k", &apply);
    kubectl(
        &ctx.ns,
        &[
            "patch",
            "lease",
            "kubectl-stateful-k",
            "--type=merge",
            "-p",
            r#"{"spec":{"holderIdentity":"someone@else (pid 7)"}}"#,
        ],
    );
    let run = apply.join().unwrap();
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        "the stack's lock was lost (lease kubectl-stateful-k is now held by someone@else (pid 7))",
    );
    assert_contains(&run.stderr, "interrupted by the loss of the stack's lock");
    assert_contains(&run.stderr, "statefulset/db");
    assert_eq!(
        ctx.count::<k8s_openapi::api::apps::v1::StatefulSet>().await,
        0,
        "nothing started after the loss"
    );
}

/// The lock is taken before planning and held through the rollout. Held by another command:
/// an apply that may not wait refuses before it plans (it printed a plan, then refused); one
/// that waits (`--lock-timeout`) plans once it holds the lock, against what the cluster is
/// then — here a Service deleted while it waited is created again (planned before waiting, it
/// was "unchanged", and stayed deleted).
#[tokio::test]
async fn the_lock_is_taken_before_planning() {
    let ctx = TestCtx::new("lockfirst").await;
    let spec = ctx.spec("f", SLOW);
    let spec = spec.to_str().unwrap().to_string();
    ctx.run(&["apply", "-f", &spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    // Another command holds the lease, and keeps it (renewed for an hour).
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string();
    let lease = format!(
        r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"kubectl-stateful-f"}},
            "spec":{{"holderIdentity":"someone@else (pid 7)","leaseDurationSeconds":3600,"acquireTime":"{now}","renewTime":"{now}"}}}}"#
    );
    crate::support::kubectl(Some(&ctx.ns), &["create", "-f", "-"], Some(&lease));

    let refused = ctx.run(&["apply", "-f", &spec, "--yes", "--lock-timeout", "1s"]);
    refused.expect_code(1);
    assert_contains(
        &refused.stderr,
        "stack f is being applied by someone@else (pid 7)",
    );
    // Nothing planned, so nothing shown (a plan made before the lock was printed, then refused).
    assert_eq!(refused.stdout, "", "planned before taking the lock");
    let destroy = ctx.run(&["destroy", "-f", &spec, "--yes", "--lock-timeout", "1s"]);
    destroy.expect_code(1);
    assert_eq!(destroy.stdout, "", "planned before taking the lock");

    let waiting = {
        let args: Vec<String> = [
            "apply",
            "-f",
            &spec,
            "--yes",
            "--timeout",
            "2m",
            "--lock-timeout",
            "2m",
            "-n",
            &ctx.ns,
        ]
        .map(String::from)
        .to_vec();
        std::thread::spawn(move || crate::support::run_plugin(&args, None))
    };
    // While it waits, the stack's headless Service is deleted by hand; then the lease is given up.
    kubectl(&ctx.ns, &["delete", "service", "db"]);
    assert!(
        !waiting.is_finished(),
        "the apply did not wait for the lock"
    );
    kubectl(&ctx.ns, &["delete", "lease", "kubectl-stateful-f"]);
    let run = waiting.join().unwrap();
    run.expect_code(0);
    assert_contains(&run.stdout, "service/db");
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(crate::support::client().await, &ctx.ns);
    assert!(
        api.get_opt("db").await.unwrap().is_some(),
        "planned before it held the lock: the deleted Service was not created again"
    );
}
