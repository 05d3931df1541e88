//! `kubectl stateful status` on the real control plane: a healthy stack (exit 0), a claim stuck
//! Pending and a pod that cannot be scheduled (exit 1, with their reasons), and `--watch`
//! redrawing while the stack comes up.

use crate::support::{TestCtx, assert_contains, cluster};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const HEALTHY: &str = r#"
[[claim]]
name = "shared"
size = "1Gi"

[[deployment]]
name = "web"
image = "nginx:1"
[[deployment.mount]]
claim = "shared"
path = "/data"

[[statefulset]]
name = "db"
image = "postgres:17"
replicas = 2
[[statefulset.volume_claim]]
name = "data"
size = "1Gi"
mount = "/var/lib/postgresql"
"#;

/// A volume bound to a claim of the stack, besides [`HEALTHY`].
const ARCHIVE: &str = r#"
[[volume]]
name = "archive"
capacity = "2Gi"
host_path = { path = "/srv/archive" }

[[claim]]
name = "archive"
size = "2Gi"
volume = "archive"
"#;

#[tokio::test]
async fn a_healthy_stack_exits_0_with_every_object_and_its_template_claims() {
    let ctx = TestCtx::new("statushealthy").await;
    let spec = ctx.spec("s", &format!("{ARCHIVE}{HEALTHY}"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let volume = ctx.unique("archive");

    let status = ctx.run(&["status", "-f", spec]);
    status.expect_code(0);
    assert_contains(&status.stdout, "all 8 objects healthy");
    let row = status
        .stdout
        .lines()
        .find(|l| l.contains(&format!("pv/{volume}")))
        .unwrap_or_else(|| panic!("no row of pv/{volume}:\n{}", status.stdout));
    assert_contains(row, "Bound");
    assert_contains(row, &format!("2Gi, claim {}/archive", ctx.ns));
    assert_contains(&status.stdout, "pvc/data-db-0");
    assert_contains(&status.stdout, "1Gi of 1Gi requested");
    assert_contains(&status.stdout, "2/2 replicas ready");
    assert!(!status.stdout.contains("\n!"), "{}", status.stdout);

    let json = ctx.run(&["status", "-f", spec, "-o", "json"]);
    json.expect_code(0);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["healthy"], true);
    assert_eq!(doc["summary"]["unhealthy"], 0);
    let kinds: Vec<(&str, &str)> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["object"]["kind"].as_str().unwrap(),
                o["object"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("PersistentVolume", volume.as_str()),
            ("PersistentVolumeClaim", "archive"),
            ("PersistentVolumeClaim", "shared"),
            ("Service", "db"),
            ("StatefulSet", "db"),
            ("PersistentVolumeClaim", "data-db-0"),
            ("PersistentVolumeClaim", "data-db-1"),
            ("Deployment", "web"),
        ]
    );
    let pv = &doc["objects"][0];
    assert_eq!(pv["state"], "Bound");
    assert_eq!(pv["healthy"], true);
    assert_eq!(
        (&pv["details"]["phase"], &pv["details"]["claim"]),
        (
            &Value::from("Bound"),
            &Value::from(format!("{}/archive", ctx.ns))
        )
    );
    let sts = &doc["objects"][4]["details"];
    assert_eq!(sts["ready"], 2);
    assert_eq!(sts["current_revision"], sts["update_revision"]);
    let claim = &doc["objects"][2]["details"];
    assert_eq!(
        (&claim["phase"], &claim["capacity"], &claim["request"]),
        (
            &Value::from("Bound"),
            &Value::from("1Gi"),
            &Value::from("1Gi")
        )
    );
    assert_eq!(
        doc["objects"][5]["origin"],
        "statefulset[0].volume_claim[data]"
    );
}

#[tokio::test]
async fn a_claim_stuck_pending_and_an_unschedulable_pod_give_exit_1_with_their_reasons() {
    let ctx = TestCtx::new("statuspending").await;
    let spec = ctx.spec(
        "p",
        "[[claim]]\nname = \"stuck\"\nsize = \"1Gi\"\nclass = \"no-such-class\"\n\n[[deployment]]\nname = \"web\"\nimage = \"nginx:1\"\n",
    );
    let spec = spec.to_str().unwrap();
    let before = ctx.run(&["status", "-f", spec]);
    before.expect_code(1);
    assert_contains(&before.stdout, "2 of 2 objects not healthy");
    assert_contains(&before.stdout, "! pvc/stuck");
    assert_contains(
        &before.stdout,
        "does not exist; `kubectl stateful apply` creates it",
    );

    // The claim stays Pending: apply says so instead of waiting for it.
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let reason = "storageclass.storage.k8s.io \"no-such-class\" not found";
    let mut status = ctx.run(&["status", "-f", spec]);
    // The PersistentVolume controller records its event a moment after the claim appears.
    for _ in 0..100 {
        if status.stdout.contains(reason) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = ctx.run(&["status", "-f", spec]);
    }
    status.expect_code(1);
    assert_contains(&status.stdout, "1 of 2 objects not healthy");
    assert_contains(&status.stdout, "! pvc/stuck");
    assert_contains(&status.stdout, reason);
    let json = ctx.run(&["status", "-f", spec, "-o", "json"]);
    json.expect_code(1);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["healthy"], false);
    assert_eq!(doc["objects"][0]["state"], "Pending");
    assert!(
        doc["objects"][0]["problems"][0]
            .as_str()
            .unwrap()
            .contains(reason),
        "{doc:#}"
    );
    assert_eq!(doc["objects"][1]["healthy"], true);

    // A new template that no node can run: the rollout stalls on an unschedulable pod.
    let out = Command::new(cluster().kubectl_dir.join("kubectl"))
        .args([
            "-n",
            &ctx.ns,
            "patch",
            "deployment/web",
            "--type=merge",
            "-p",
        ])
        .arg(r#"{"spec":{"template":{"spec":{"nodeSelector":{"disk":"none"}}}}}"#)
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut status = ctx.run(&["status", "-f", spec]);
    for _ in 0..100 {
        if status.stdout.contains("Unschedulable") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = ctx.run(&["status", "-f", spec]);
    }
    status.expect_code(1);
    assert_contains(&status.stdout, "! deployment/web");
    assert_contains(
        &status.stdout,
        "not ready: Unschedulable: 0/3 nodes are available",
    );
}

#[tokio::test]
async fn watch_redraws_as_the_stack_comes_up() {
    let ctx = TestCtx::new("statuswatch").await;
    let spec = ctx.spec("w", HEALTHY);
    let spec = spec.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"))
        .args([
            "status",
            "-f",
            spec,
            "--watch",
            "-o",
            "json",
            "--timeout",
            "3m",
        ])
        .args(["-n", &ctx.ns])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("NO_COLOR", "1")
        .env(
            "KUBECTL_STATEFUL_CONFIG",
            "/nonexistent/kubectl-stateful.toml",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a first report");
    assert_eq!(first["healthy"], false);
    assert_eq!(first["objects"][0]["state"], "missing");

    // The claim first (the same stack, from a spec of its own): a report must show it Bound
    // while the rest is still missing, whatever the timing of the redraws.
    let first_dir = ctx.dir.path().join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let claim_only = first_dir.join("w.toml");
    std::fs::write(
        &claim_only,
        "[[claim]]\nname = \"shared\"\nsize = \"1Gi\"\n",
    )
    .unwrap();
    ctx.run(&[
        "apply",
        "-f",
        claim_only.to_str().unwrap(),
        "--yes",
        "--timeout",
        "2m",
    ])
    .expect_code(0);
    let mut docs = vec![first];
    while docs.last().unwrap()["objects"][0]["state"] != "Bound" {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(doc) => docs.push(doc),
            Err(e) => panic!("no report of the bound claim ({e}); reports so far:\n{docs:#?}"),
        }
    }
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    while docs.last().unwrap()["healthy"] != true {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(doc) => docs.push(doc),
            Err(e) => panic!("no healthy report ({e}); reports so far:\n{docs:#?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Drawn again as objects appeared and became ready, not only at the start and the end.
    assert!(docs.len() > 2, "{docs:#?}");
    assert!(
        docs.iter()
            .any(|d| d["objects"][0]["state"] == "Bound" && d["healthy"] == false),
        "{docs:#?}"
    );
}

/// `--watch` lists each collection once and then watches it: through the logging proxy, a
/// stack that does not change for its whole run gets one LIST per collection, a watch of each,
/// and no object or collection read again.
#[tokio::test]
async fn watch_watches_rather_than_polls() {
    let ctx = TestCtx::new("statuswatchreq").await;
    let spec = ctx.spec("q", "[[claim]]\nname = \"quiet\"\nsize = \"1Gi\"\n");
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);

    let proxy = crate::proxy::Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    // Stops by itself: --timeout ends the watch (exit 0: the stack is healthy).
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"))
        .args([
            "status",
            "-f",
            spec,
            "--watch",
            "-o",
            "json",
            "--timeout",
            "8s",
        ])
        .args(["-n", &ctx.ns, "--kubeconfig", kc.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .env(
            "KUBECTL_STATEFUL_CONFIG",
            "/nonexistent/kubectl-stateful.toml",
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "drawn once, nothing changed:\n{stdout}"
    );

    let log = proxy.log();
    let gets: Vec<_> = log.iter().filter(|l| l.method == "GET").collect();
    let path = |p: &str| p.split('?').next().unwrap().to_string();
    let is_watch = |p: &str| p.contains("watch=true") || p.contains("watch=1");
    let collections = [
        "/apis/storage.k8s.io/v1/storageclasses".to_string(),
        "/api/v1/persistentvolumes".to_string(),
        format!("/api/v1/namespaces/{}/persistentvolumeclaims", ctx.ns),
        format!("/api/v1/namespaces/{}/services", ctx.ns),
        format!("/apis/apps/v1/namespaces/{}/statefulsets", ctx.ns),
        format!("/apis/apps/v1/namespaces/{}/deployments", ctx.ns),
        format!("/apis/apps/v1/namespaces/{}/daemonsets", ctx.ns),
        format!("/api/v1/namespaces/{}/pods", ctx.ns),
        format!("/api/v1/namespaces/{}/events", ctx.ns),
    ];
    for c in &collections {
        let lists = gets
            .iter()
            .filter(|l| path(&l.path) == *c && !is_watch(&l.path))
            .count();
        assert_eq!(lists, 1, "one LIST of {c}: {gets:#?}");
        assert!(
            gets.iter()
                .any(|l| path(&l.path) == *c && is_watch(&l.path)),
            "a watch of {c}: {gets:#?}"
        );
    }
    let mut reads: Vec<String> = gets
        .iter()
        .filter(|l| !is_watch(&l.path))
        .map(|l| l.path.clone())
        .collect();
    let all = reads.len();
    reads.sort();
    reads.dedup();
    assert_eq!(reads.len(), all, "a read repeated (polling): {gets:#?}");
    let watches = gets.iter().filter(|l| is_watch(&l.path)).count();
    assert!(
        watches <= 2 * collections.len(),
        "{watches} watches in 8 s for {} collections (re-watching in a loop?): {gets:#?}",
        collections.len()
    );
}
