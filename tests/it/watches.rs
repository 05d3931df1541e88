//! Apply waits on one watch per kind, not one per object: counted on the wire (every request
//! goes through the test proxy, which logs it) and, independently, from the API server's own
//! request metrics.

use crate::proxy::Proxy;
use crate::support::{TestCtx, assert_contains, cluster, run_plugin};
use std::collections::BTreeMap;

const VOLUMES: usize = 20;
const STATEFULSETS: usize = 3;

/// `VOLUMES` volumes, each with a claim bound to it, and `STATEFULSETS` StatefulSets of two
/// replicas with a claim template each (dynamically provisioned): with their Services and
/// template claims, 55 objects to wait on, of three kinds.
fn stack() -> String {
    let mut s = String::new();
    for i in 0..VOLUMES {
        s.push_str(&format!(
            "[[volume]]\nname = \"pv-{i}\"\ncapacity = \"1Gi\"\nhost_path = {{ path = \"/tmp/kstateful-watches-{i}\" }}\n\n\
             [[claim]]\nname = \"claim-{i}\"\nsize = \"1Gi\"\nvolume = \"pv-{i}\"\n\n"
        ));
    }
    for i in 0..STATEFULSETS {
        s.push_str(&format!(
            "[[statefulset]]\nname = \"db-{i}\"\nimage = \"img:1\"\nreplicas = 2\npod_management_policy = \"Parallel\"\n\
             [[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nmount = \"/data\"\nclass = \"standard\"\n\n"
        ));
    }
    s
}

/// The resource of a watch request (`persistentvolumes`), or `None` for other requests.
fn watched(path: &str) -> Option<String> {
    let (resource, query) = path.split_once('?')?;
    query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
        .then(|| resource.rsplit('/').next().unwrap_or_default().to_string())
}

/// WATCH requests the API server has served so far, by resource (`apiserver_request_total`).
fn served_watches() -> BTreeMap<String, u64> {
    let out = std::process::Command::new(cluster().kubectl_dir.join("kubectl"))
        .args(["get", "--raw", "/metrics"])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "kubectl get --raw /metrics failed");
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if !line.starts_with("apiserver_request_total{") || !line.contains("verb=\"WATCH\"") {
            continue;
        }
        let resource = line
            .split("resource=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string();
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *counts.entry(resource).or_default() += value as u64;
    }
    counts
}

const WAITED: [&str; 3] = [
    "persistentvolumes",
    "persistentvolumeclaims",
    "statefulsets",
];

fn waited_watches(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> u64 {
    WAITED
        .iter()
        .map(|r| after.get(*r).unwrap_or(&0) - before.get(*r).unwrap_or(&0))
        .sum()
}

#[tokio::test]
async fn apply_waits_on_one_watch_per_kind() {
    let ctx = TestCtx::new("watchcount").await;
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let spec = ctx.spec("stack", &stack());
    let (spec, kc) = (spec.to_str().unwrap(), kc.to_str().unwrap());
    let args: Vec<String> = [
        "apply",
        "-f",
        spec,
        "--yes",
        "--timeout",
        "3m",
        "-o",
        "json",
        "-n",
        &ctx.ns,
        "--kubeconfig",
        kc,
    ]
    .map(str::to_string)
    .to_vec();
    for round in ["first apply", "apply with nothing to change"] {
        let seen = proxy.log().len();
        let before = served_watches();
        let run = run_plugin(&args, None);
        run.expect_code(0);
        assert_contains(&run.stdout, "\"event\":\"finished\",\"ok\":true");
        let ready = run
            .stdout
            .lines()
            .filter(|l| l.contains("\"event\":\"ready\""))
            .count();
        // Every volume, claim (standalone and from templates) and StatefulSet.
        assert_eq!(
            ready,
            2 * VOLUMES + 3 * STATEFULSETS,
            "{round}:\n{}",
            run.stdout
        );
        // On the wire: one watch per kind waited on, each opened once (nothing cut them).
        let mut by_resource: BTreeMap<String, usize> = BTreeMap::new();
        for l in &proxy.log()[seen..] {
            if let Some(r) = watched(&l.path) {
                *by_resource.entry(r).or_default() += 1;
            }
        }
        let total: usize = by_resource.values().sum();
        assert!(
            total <= WAITED.len() && by_resource.values().all(|n| *n == 1),
            "{round}: watches opened: {by_resource:?}"
        );
        // The API server's own count agrees. Other clients' watches that end meanwhile (the
        // controllers', parallel tests') are counted too: hence the margin, far below the 49 a
        // watch per object would take.
        let after = served_watches();
        let served = waited_watches(&before, &after);
        assert!(
            served <= (WAITED.len() + 15) as u64,
            "{round}: the API server served {served} watches of volumes, claims and StatefulSets"
        );
        eprintln!(
            "{round}: watches on the wire {by_resource:?}; served by the API server meanwhile: {served}"
        );
    }
}
