//! Apply waits on one watch per kind, not one per object: counted on the wire (every request
//! goes through the test proxy, which logs it) and, independently, by the API server itself for
//! this test's user only (see `counted`).

use crate::counted::Counted;
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

/// The kinds apply waits on.
const WAITED: [&str; 3] = [
    "persistentvolumes",
    "persistentvolumeclaims",
    "statefulsets",
];

#[tokio::test]
async fn apply_waits_on_one_watch_per_kind() {
    let ctx = TestCtx::new("watchcount").await;
    let counted = Counted::new(&ctx);
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
        "--as",
        &counted.user,
    ]
    .map(str::to_string)
    .to_vec();
    for round in ["first apply", "apply with nothing to change"] {
        let seen = proxy.log().len();
        let (run, served) = counted.during(|| run_plugin(&args, None));
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
        // On the wire: one watch per kind waited on, each opened once (nothing cut them). The
        // proxy logs a watch when its connection ends, which may be just after the plugin exits.
        let watches_logged = || {
            let mut by_resource: BTreeMap<String, usize> = BTreeMap::new();
            for l in &proxy.log()[seen..] {
                if let Some(r) = watched(&l.path) {
                    *by_resource.entry(r).or_default() += 1;
                }
            }
            by_resource
        };
        let mut by_resource = watches_logged();
        for _ in 0..50 {
            if by_resource.values().sum::<usize>() as u64 >= served.verb("watch") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            by_resource = watches_logged();
        }
        let total: usize = by_resource.values().sum();
        assert!(
            total <= WAITED.len() && by_resource.values().all(|n| *n == 1),
            "{round}: watches opened: {by_resource:?}"
        );
        // The API server's own count, of this test's requests only, agrees.
        assert!(
            served.verb("watch") <= WAITED.len() as u64,
            "{round}: the API server served {} watches: {served:?}",
            served.verb("watch")
        );
        // (A watch the plugin opened just before exiting is dispatched by the server but may
        // never get its answer through the proxy, so the proxy may see fewer, never more.)
        assert!(
            total as u64 <= served.verb("watch"),
            "{round}: the proxy saw watches the API server did not count: {by_resource:?}, {served:?}"
        );
        eprintln!(
            "{round}: watches on the wire {by_resource:?}; requests served by the API server: {served:?}"
        );
    }
}
