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

/// The seed of a randomized test: `KSTATEFUL_SEED` replays a printed one, otherwise the clock.
/// Never 0 (the generator would only ever draw 0).
fn seed() -> u64 {
    let seed = match std::env::var("KSTATEFUL_SEED") {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("KSTATEFUL_SEED={text:?} is not a u64: {e}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    seed.max(1)
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

/// The drifts the randomized test draws from. Each one is valid in some states only (a Service
/// that is gone cannot be patched or deleted again); `Drift::valid` says which.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Drift {
    /// `kubectl scale` of a StatefulSet.
    Scale,
    /// Someone else's label on a claim, or the spec's label overwritten.
    LabelClaim,
    /// Someone else's annotation on a volume.
    AnnotateVolume,
    /// Another manager changes a field of a generated Service (which the stack creates only
    /// when it is missing: nothing to plan).
    PatchService,
    /// A generated Service deleted.
    DeleteService,
    /// Re-created by someone else: same name and labels, a new uid (deleted first if present).
    RecreateService,
    /// The spec changes: the other image for one StatefulSet.
    NewImage,
    /// A field the spec set is dropped (the server's default takes its place), or set again.
    ToggleMinReady,
}

impl Drift {
    /// In the order the draw numbers them (kept, so that a seed printed before the draws were
    /// checked for validity still replays the same drifts up to its first invalid one).
    const ALL: [Drift; 8] = [
        Drift::Scale,
        Drift::LabelClaim,
        Drift::AnnotateVolume,
        Drift::PatchService,
        Drift::DeleteService,
        Drift::RecreateService,
        Drift::NewImage,
        Drift::ToggleMinReady,
    ];

    fn valid(self, service_present: bool) -> bool {
        match self {
            Drift::PatchService | Drift::DeleteService => service_present,
            _ => true,
        }
    }
}

/// What the test's spec file says now; the file is always written from this, so a drift of the
/// spec never depends on text an earlier drift rewrote.
struct DriftSpec {
    images: [&'static str; 2],
    min_ready: bool,
}

impl DriftSpec {
    const IMAGES: [&'static str; 2] = ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.9"];

    fn text(&self) -> String {
        // The claims carry a label of the spec's, which another writer may overwrite.
        let mut s = stack(6, 0, "").replace(
            "size = \"1Gi\"\nvolume = ",
            "size = \"1Gi\"\nlabels = { tier = \"db\" }\nvolume = ",
        );
        for (i, image) in self.images.iter().enumerate() {
            let min_ready = if i == 0 && self.min_ready {
                "min_ready_seconds = 0\n"
            } else {
                ""
            };
            s.push_str(&format!(
                "[[statefulset]]\nname = \"db-{i}\"\n{min_ready}image = \"{image}\"\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nmount = \"/data\"\n\n"
            ));
        }
        s
    }
}

/// Randomized drift — fields taken by other managers, labels and annotations added, objects
/// deleted, objects re-created by someone else, the spec changed (a field dropped for the
/// server to default, another image) — and after each round the plan from the record equals
/// the plan from a dry run of every object. Each draw is among the drifts valid for the state the
/// round left (the round tracks which Services it deleted); `KSTATEFUL_SEED=N` replays a run.
#[tokio::test]
async fn the_fast_path_plans_exactly_what_the_dry_run_plans() {
    let ctx = TestCtx::new("fastequal").await;
    let seed = seed();
    println!("seed {seed} (replay with KSTATEFUL_SEED={seed})");
    let mut rng = Rng(seed);
    let mut desired = DriftSpec {
        images: [DriftSpec::IMAGES[0]; 2],
        min_ready: false,
    };
    let spec_path = ctx.spec("drift", &desired.text());
    let spec = spec_path.to_str().unwrap().to_string();
    ctx.run(&["apply", "-f", &spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let ns = ctx.ns.clone();
    let mut changed_rounds = 0;
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        let mut done = Vec::new();
        // The converging apply of the previous round re-created every Service.
        let mut service_present = [true; 2];
        for draw in 0..3 {
            let i = rng.next(6).to_string();
            let n = rng.next(2);
            let set = format!("db-{n}");
            let mut drift = Drift::ALL[rng.next(Drift::ALL.len())];
            if !drift.valid(service_present[n]) {
                let valid: Vec<Drift> = Drift::ALL
                    .into_iter()
                    .filter(|d| d.valid(service_present[n]))
                    .collect();
                drift = valid[rng.next(valid.len())];
            }
            // The last round changes the plan if no round did yet, so that the comparison of a
            // plan with changes is never left to chance.
            if round == ROUNDS - 1 && draw == 0 && changed_rounds == 0 {
                drift = Drift::NewImage;
            }
            match drift {
                Drift::Scale => {
                    kubectl(&ns, &["scale", "statefulset", &set, "--replicas=2"]);
                    done.push(format!("scaled {set}"));
                }
                Drift::LabelClaim => {
                    // Even claims get a label of someone else's (nothing to plan); odd ones have
                    // the spec's label overwritten: a field the stack owns changes without a
                    // generation (only the record of our field set tells).
                    let claim = format!("claim-{i}");
                    let label = if i.parse::<usize>().unwrap() % 2 == 0 {
                        "team=other"
                    } else {
                        "tier=other"
                    };
                    kubectl(&ns, &["label", "pvc", &claim, label, "--overwrite"]);
                    done.push(format!("labelled {claim} {label}"));
                }
                Drift::AnnotateVolume => {
                    let pv = ctx.unique(&format!("pv-{i}"));
                    kubectl(&ns, &["annotate", "pv", &pv, "note=drift", "--overwrite"]);
                    done.push(format!("annotated {pv}"));
                }
                Drift::PatchService => {
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
                Drift::DeleteService => {
                    kubectl(&ns, &["delete", "service", &set, "--wait=true"]);
                    service_present[n] = false;
                    done.push(format!("deleted service {set}"));
                }
                Drift::RecreateService => {
                    if service_present[n] {
                        kubectl(&ns, &["delete", "service", &set, "--wait=true"]);
                    }
                    let svc = format!(
                        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{set}","labels":{{"app.kubernetes.io/managed-by":"kubectl-stateful","kubectl-stateful/stack":"drift"}}}},"spec":{{"clusterIP":"None","selector":{{"app.kubernetes.io/name":"{set}"}},"ports":[{{"port":80}}]}}}}"#
                    );
                    let file = ctx.dir.path().join("svc.json");
                    std::fs::write(&file, svc).unwrap();
                    kubectl(&ns, &["create", "-f", file.to_str().unwrap()]);
                    service_present[n] = true;
                    done.push(format!("re-created service {set}"));
                }
                Drift::NewImage => {
                    let other = if desired.images[n] == DriftSpec::IMAGES[0] {
                        DriftSpec::IMAGES[1]
                    } else {
                        DriftSpec::IMAGES[0]
                    };
                    desired.images[n] = other;
                    ctx.spec("drift", &desired.text());
                    done.push(format!("image {other} for {set}"));
                }
                Drift::ToggleMinReady => {
                    desired.min_ready = !desired.min_ready;
                    ctx.spec("drift", &desired.text());
                    done.push(format!("min_ready_seconds set: {}", desired.min_ready));
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
            "round {round} (seed {seed}) ({done:?}):\n{}\n{}",
            apply.stdout, apply.stderr
        );
        // Right after an apply, nothing to do — from the record alone.
        let after = plan_of(&ctx, &spec, false);
        assert_eq!(
            after["summary"]["unchanged"].as_u64(),
            after["steps"].as_array().map(|s| s.len() as u64),
            "round {round} (seed {seed}): not converged: {after:#}"
        );
    }
    assert!(
        changed_rounds > 0,
        "no round changed anything (seed {seed})"
    );
}
