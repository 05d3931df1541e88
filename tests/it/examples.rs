//! Every example round-trips: plan → apply → plan reports no changes.

use crate::support::{TestCtx, assert_contains};

async fn round_trip(example: &str) {
    let ctx = TestCtx::new(example).await;
    let spec = ctx.example(example);
    let spec = spec.to_str().unwrap();

    let plan = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_contains(&plan.stdout, "to create");
    assert!(!plan.stdout.contains("failed to plan"), "{}", plan.stdout);

    let apply = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "3m"]);
    apply.expect_code(0);
    assert_contains(&apply.stdout, "Apply complete");
    eprintln!(
        "{example}: plan {:?}, apply {:?}",
        plan.elapsed, apply.elapsed
    );

    let again = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    again.expect_code(0);
    assert!(
        again
            .stdout
            .contains("Plan: 0 to create, 0 to update, 0 to replace"),
        "a plan right after apply must be clean:\n{}",
        again.stdout
    );
    eprintln!("{example}: re-plan {:?}", again.elapsed);
}

#[tokio::test]
async fn example_postgres_round_trips() {
    round_trip("postgres").await;
}

#[tokio::test]
async fn example_local_pv_round_trips() {
    round_trip("local-pv").await;
}

#[tokio::test]
async fn example_shared_claim_round_trips() {
    round_trip("shared-claim").await;
}

#[tokio::test]
async fn example_manual_class_round_trips() {
    round_trip("manual-class").await;
}

#[tokio::test]
async fn example_backup_restore_round_trips() {
    round_trip("backup-restore").await;
}

#[tokio::test]
async fn example_shared_files_round_trips() {
    round_trip("shared-files").await;
}

/// Regression: the demo plans examples/local-pv.toml as it is, against the cluster's own
/// `local-storage` class; a reclaim policy differing from that class's made it a replace.
/// The class exists without the stack's labels, so it is an adoption the spec consents to.
#[tokio::test]
async fn example_local_pv_plans_against_the_clusters_own_class() {
    let ctx = TestCtx::new("localpvstock").await;
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/local-pv.toml");
    let plan = ctx.run(&["plan", "-f", spec, "-o", "json", "--detailed-exitcode"]);
    plan.expect_code(2);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["summary"]["replace"], 0, "{}", plan.stdout);
    assert_eq!(v["summary"]["error"], 0, "{}", plan.stdout);
    let class = &v["steps"][0];
    assert_eq!(class["object"]["name"], "local-storage");
    assert_eq!(class["action"], "adopt");
    assert_eq!(class["adopt"], true, "the example says adopt = true");
    assert_eq!(
        class["changed_paths"],
        serde_json::json!(["metadata.labels"]),
        "only our labels are added to the existing class"
    );
}
