//! The no-change plan in a number of requests that does not grow with the stack, and proof that
//! skipping the dry run of untouched objects plans exactly what the dry run plans.

use crate::counted::{Counted, Requests};
use crate::support::TestCtx;
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

/// Plans `spec` as `user` (`--detailed-exitcode`: 0 when nothing changes).
fn plan_as(ctx: &TestCtx, user: &str, spec: &str, extra: &[&str]) -> i32 {
    let mut args = vec!["plan", "-f", spec, "--detailed-exitcode", "--as", user];
    args.extend(extra);
    let run = ctx.run(&args);
    assert_ne!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    run.code
}

/// After an apply, a plan that finds nothing to do makes the same requests for a stack of 10
/// objects as for one of 30: the credential check (a SelfSubjectReview), the namespace and the
/// inventory (two GETs), and one LIST per kind — StorageClasses, PersistentVolumes, claims,
/// Services, StatefulSets, Deployments, DaemonSets — and no dry run; `--full` dry-runs every
/// object. Counted by the API server itself, for this test's user only (see `counted`).
#[tokio::test]
async fn a_no_change_plan_reads_once_per_kind() {
    let ctx = TestCtx::new("fastcount").await;
    let counted = Counted::new(&ctx);
    let expected = Requests(
        [("create", 1), ("get", 2), ("list", 7)]
            .map(|(verb, n)| (verb.to_string(), n))
            .into(),
    );
    let mut seen = Vec::new();
    for (volumes, sets) in [(4, 1), (12, 3)] {
        let objects = (2 * volumes + 2 * sets) as u64;
        let spec = ctx.spec("fast", &stack(volumes, sets, "registry.k8s.io/pause:3.10"));
        let spec = spec.to_str().unwrap();
        ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
            .expect_code(0);

        let (code, fast) = counted.during(|| plan_as(&ctx, &counted.user, spec, &[]));
        assert_eq!(code, 0, "no changes");
        assert_eq!(
            fast, expected,
            "requests of a no-change plan of {objects} objects"
        );
        let (code, full) = counted.during(|| plan_as(&ctx, &counted.user, spec, &["--full"]));
        assert_eq!(code, 0, "no changes");
        assert_eq!(
            full.verb("patch"),
            objects,
            "--full dry-runs every one of {objects} objects: {full:?}"
        );
        eprintln!("{objects} objects: no-change plan {fast:?}; with --full {full:?}");
        seen.push(fast);
    }
    assert_eq!(
        seen[0], seen[1],
        "the same requests for 10 objects as for 30"
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
