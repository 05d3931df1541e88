//! The no-change plan in a number of requests that does not grow with the stack, and proof that
//! skipping the dry run of untouched objects plans exactly what the dry run plans.

use crate::proxy::Proxy;
use crate::support::{TestCtx, cluster, run_plugin};
use serde_json::Value;

/// A stack of `n` static volumes with a claim each and `sets` StatefulSets with a claim
/// template (and their Services).
fn stack(n: usize, sets: usize, image: &str) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "[[volume]]\nname = \"pv-{i}\"\ncapacity = \"1Gi\"\nhost_path = {{ path = \"/tmp/kstateful-fast-{i}\" }}\n\n[[claim]]\nname = \"claim-{i}\"\nsize = \"1Gi\"\nvolume = \"pv-{i}\"\n\n"
        ));
    }
    for i in 0..sets {
        s.push_str(&format!(
            "[[statefulset]]\nname = \"db-{i}\"\nimage = \"{image}\"\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nmount = \"/data\"\n\n"
        ));
    }
    s
}

fn plan_through(ctx: &TestCtx, kubeconfig: &std::path::Path, spec: &str, extra: &[&str]) -> i32 {
    let mut args: Vec<String> = ["plan", "-f", spec, "--detailed-exitcode", "--kubeconfig"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(kubeconfig.to_str().unwrap().into());
    args.extend(["-n".into(), ctx.ns.clone()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = run_plugin(&args, None);
    assert_ne!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    run.code
}

/// After an apply, a plan that finds nothing to do reads one list per kind and the inventory,
/// and asks for no dry run; `--full` asks for one per object. Counted on the wire, between
/// the plugin and the API server (other tests share the API server, so its own metrics cannot
/// tell this plan's requests apart; scripts/bench counts with them on a quiet server).
#[tokio::test]
async fn a_no_change_plan_reads_once_per_kind() {
    let ctx = TestCtx::new("fastcount").await;
    let spec = ctx.spec("fast", &stack(12, 2, "registry.k8s.io/pause:3.10"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let objects = 12 * 2 + 2 * 2;

    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    assert_eq!(plan_through(&ctx, &kc, spec, &[]), 0, "no changes");
    let fast = proxy.log();
    let dry_runs =
        |log: &[crate::proxy::Logged]| log.iter().filter(|l| l.path.contains("dryRun=All")).count();
    assert_eq!(dry_runs(&fast), 0, "no dry run: {fast:#?}");
    assert!(
        fast.len() <= 10,
        "{} requests for a no-change plan of {objects} objects: {fast:#?}",
        fast.len()
    );
    let gets = fast
        .iter()
        .filter(|l| l.method == "GET" && !l.path.contains("/configmaps/"))
        .filter(|l| !l.path.ends_with(&format!("/namespaces/{}", ctx.ns)))
        .filter(|l| {
            // Lists name a collection, not an object.
            let last = l
                .path
                .split('?')
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            ![
                "storageclasses",
                "persistentvolumes",
                "persistentvolumeclaims",
                "services",
                "statefulsets",
                "deployments",
                "daemonsets",
            ]
            .contains(&last)
        })
        .count();
    assert_eq!(gets, 0, "no object read on its own: {fast:#?}");

    assert_eq!(plan_through(&ctx, &kc, spec, &["--full"]), 0);
    let full = proxy.log()[fast.len()..].to_vec();
    assert_eq!(
        dry_runs(&full),
        objects,
        "--full dry-runs every object: {full:#?}"
    );
}

/// A small deterministic generator (the seed is printed, so a failing round can be replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn kubectl(ns: &str, args: &[&str]) {
    crate::support::kubectl(Some(ns), args, None);
}

/// What a plan says, without what changes between two reads of the same cluster
/// (resourceVersions move with every status write).
fn plan_of(ctx: &TestCtx, spec: &str, full: bool) -> Value {
    let mut args = vec!["plan", "-f", spec, "-o", "json"];
    if full {
        args.push("--full");
    }
    let run = ctx.run(&args);
    assert_ne!(run.code, 101, "{}", run.stderr);
    let mut v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    for step in v["steps"].as_array_mut().unwrap() {
        if let Some(live) = step["live"].as_object_mut() {
            live.remove("resource_version");
        }
    }
    for op in v["operations"].as_array_mut().unwrap() {
        op.as_object_mut().unwrap().remove("resource_version");
    }
    v
}

/// Randomized drift — fields taken by other managers, labels and annotations added, objects
/// deleted, objects re-created by someone else, the spec changed (a field dropped for the
/// server to default, another image) — and after each round the plan from the record equals
/// the plan from a dry run of every object.
#[tokio::test]
async fn the_fast_path_plans_exactly_what_the_dry_run_plans() {
    let ctx = TestCtx::new("fastequal").await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let spec_path = ctx.spec("drift", &stack(6, 2, "registry.k8s.io/pause:3.10"));
    let spec = spec_path.to_str().unwrap().to_string();
    ctx.run(&["apply", "-f", &spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let ns = ctx.ns.clone();
    let mut changed_rounds = 0;
    for round in 0..5 {
        let mut done = Vec::new();
        for _ in 0..3 {
            let i = rng.next(6).to_string();
            let set = format!("db-{}", rng.next(2));
            match rng.next(8) {
                0 => {
                    kubectl(&ns, &["scale", "statefulset", &set, "--replicas=2"]);
                    done.push(format!("scaled {set}"));
                }
                1 => {
                    let claim = format!("claim-{i}");
                    kubectl(&ns, &["label", "pvc", &claim, "team=other", "--overwrite"]);
                    done.push(format!("labelled {claim}"));
                }
                2 => {
                    let pv = ctx.unique(&format!("pv-{i}"));
                    kubectl(&ns, &["annotate", "pv", &pv, "note=drift", "--overwrite"]);
                    done.push(format!("annotated {pv}"));
                }
                3 => {
                    // Another manager changes a field the spec sets.
                    kubectl(
                        &ns,
                        &[
                            "patch",
                            "service",
                            &set,
                            "--type=merge",
                            "--field-manager=someone",
                            "-p",
                            r#"{"spec":{"publishNotReadyAddresses":true}}"#,
                        ],
                    );
                    done.push(format!("patched service {set}"));
                }
                4 => {
                    kubectl(&ns, &["delete", "service", &set, "--wait=true"]);
                    done.push(format!("deleted service {set}"));
                }
                5 => {
                    // Re-created by someone else: same name and labels, a new uid.
                    kubectl(&ns, &["delete", "service", &set, "--wait=true"]);
                    let svc = format!(
                        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{set}","labels":{{"app.kubernetes.io/managed-by":"kubectl-stateful","kubectl-stateful/stack":"drift"}}}},"spec":{{"clusterIP":"None","selector":{{"app.kubernetes.io/name":"{set}"}},"ports":[{{"port":80}}]}}}}"#
                    );
                    let file = ctx.dir.path().join("svc.json");
                    std::fs::write(&file, svc).unwrap();
                    kubectl(&ns, &["create", "-f", file.to_str().unwrap()]);
                    done.push(format!("re-created service {set}"));
                }
                6 => {
                    // The spec changes: another image for one StatefulSet.
                    let text = std::fs::read_to_string(&spec_path).unwrap();
                    let text = text.replacen(
                        &format!("name = \"{set}\"\nimage = \"registry.k8s.io/pause:3.10\""),
                        &format!("name = \"{set}\"\nimage = \"registry.k8s.io/pause:3.9\""),
                        1,
                    );
                    std::fs::write(&spec_path, text).unwrap();
                    done.push(format!("new image for {set}"));
                }
                _ => {
                    // A field the spec set is dropped: the server's default takes its place.
                    let text = std::fs::read_to_string(&spec_path).unwrap();
                    let text = if text.contains("min_ready_seconds") {
                        text.replace("min_ready_seconds = 0\n", "")
                    } else {
                        text.replacen("image = ", "min_ready_seconds = 0\nimage = ", 1)
                    };
                    std::fs::write(&spec_path, text).unwrap();
                    done.push("min_ready_seconds toggled".into());
                }
            }
        }
        let fast = plan_of(&ctx, &spec, false);
        let full = plan_of(&ctx, &spec, true);
        assert_eq!(
            fast, full,
            "round {round} (seed {seed}) after {done:?}: the plans differ"
        );
        if fast["summary"]["create"].as_u64().unwrap_or(0)
            + fast["summary"]["update"].as_u64().unwrap_or(0)
            > 0
        {
            changed_rounds += 1;
        }
        // Converge for the next round (another manager may own a field now: take it back).
        let apply = ctx.run(&[
            "apply",
            "-f",
            &spec,
            "--yes",
            "--force-conflicts",
            "--adopt",
            "--timeout",
            "2m",
        ]);
        assert_eq!(
            apply.code, 0,
            "round {round} ({done:?}):\n{}\n{}",
            apply.stdout, apply.stderr
        );
        // Right after an apply, nothing to do — from the record alone.
        let after = plan_of(&ctx, &spec, false);
        assert_eq!(
            after["summary"]["unchanged"].as_u64(),
            after["steps"].as_array().map(|s| s.len() as u64),
            "round {round}: not converged: {after:#}"
        );
    }
    assert!(
        changed_rounds > 0,
        "no round changed anything (seed {seed})"
    );
}
