//! Snapshots and restores with the simulated CSI driver: `[[snapshot]]` in the spec, claims
//! restored from one, and on-demand snapshots of a StatefulSet's template claims.

use crate::support::{
    TestCtx, assert_contains, client, json_lines, read_marker, snapshot_marker, write_marker,
};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::Value;

#[tokio::test]
async fn a_snapshot_of_a_first_consumer_claim_and_a_claim_restored_from_it_bind_in_order() {
    let ctx = TestCtx::new("restore").await;
    let spec = ctx.example("backup-restore");
    let plan = ctx.run(&["plan", "-f", spec.to_str().unwrap()]);
    plan.expect_code(0);
    assert_contains(
        &plan.stdout,
        "taken in the workloads' phase, once pvc/orders is Bound: its class binds WaitForFirstConsumer, so it binds once deployment/orders-app's pods are scheduled",
    );
    assert_contains(
        &plan.stdout,
        "created in the workloads' phase, once volumesnapshot/orders-before-migration is ready",
    );
    let apply = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    apply.expect_code(0);
    let events = json_lines(&apply.stdout);
    let at = |event: &str, name: &str| position(&events, event, name);
    // `orders` binds WaitForFirstConsumer: deferred, bound once its Deployment's pod is
    // scheduled, then snapshotted, then restored.
    assert_contains(
        events[at("deferred", "orders")]["message"]
            .as_str()
            .unwrap(),
        "confirmed after deployment/orders-app's pods are scheduled",
    );
    assert!(at("applied", "orders-app") < at("ready", "orders"));
    assert!(at("ready", "orders") < at("applied", "orders-before-migration"));
    assert!(at("ready", "orders-before-migration") < at("applied", "orders-copy"));
    assert!(
        !events.iter().any(|e| e["event"] == "failed"),
        "{events:#?}"
    );
    assert_contains(
        events[at("ready", "orders-before-migration")]["message"]
            .as_str()
            .unwrap(),
        "ready to use, 1Gi",
    );
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let copy = api.get("orders-copy").await.unwrap();
    assert_eq!(copy.status.unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(
        copy.spec.unwrap().data_source_ref.unwrap().name,
        "orders-before-migration"
    );
    // The data oracle: the snapshot has its copy and the restored claim its own volume (both
    // empty: one apply takes the snapshot right after the claim binds, before anything writes).
    let snap = crate::support::snapshot_dir(&ctx.ns, "orders-before-migration")
        .await
        .expect("the snapshot's copy");
    assert!(snap.is_dir(), "{}", snap.display());
    let restored = crate::support::volume_data(&ctx.ns, "orders-copy").await;
    assert!(restored.exists(), "{}", restored.dir.display());
    assert_eq!(restored.read_marker(), None);
}

#[tokio::test]
async fn a_snapshot_of_a_template_claim_is_taken_once_its_statefulset_made_it() {
    let ctx = TestCtx::new("tplsnap").await;
    let spec = ctx.spec(
        "t",
        r#"
[[statefulset]]
name = "db"
image = "img:1"
[[statefulset.volume_claim]]
name = "data"
size = "1Gi"
class = "fast"
mount = "/data"

[[snapshot]]
name = "db-backup"
claim = "data-db-0"

[[claim]]
name = "db-copy"
size = "1Gi"
class = "fast-immediate"
from_snapshot = "db-backup"
"#,
    );
    let apply = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    apply.expect_code(0);
    let events = json_lines(&apply.stdout);
    let at = |event: &str, name: &str| position(&events, event, name);
    assert!(at("ready", "data-db-0") < at("applied", "db-backup"));
    assert!(at("ready", "db-backup") < at("applied", "db-copy"));
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let copy = api.get("db-copy").await.unwrap();
    assert_eq!(copy.status.unwrap().phase.as_deref(), Some("Bound"));
}

#[tokio::test]
async fn on_demand_snapshots_cover_a_statefulsets_template_claims() {
    let ctx = TestCtx::new("ondemand").await;
    let spec = ctx.spec(
        "o",
        "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = 2\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nclass = \"fast\"\nmount = \"/data\"\n",
    );
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    for n in 0..2 {
        let claim = format!("data-db-{n}");
        write_marker(&ctx.ns, &claim, &format!("ondemand {claim}")).await;
    }
    let take = ctx.run(&["snapshot", "-f", spec, "--timeout", "1m"]);
    take.expect_code(0);
    assert_contains(&take.stdout, "of pvc/data-db-0: ready to use, 1Gi");
    assert_contains(&take.stdout, "of pvc/data-db-1: ready to use, 1Gi");
    let list = ctx.run(&["snapshots", "-f", spec, "-o", "json"]);
    list.expect_code(0);
    let rows: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    let claims: Vec<&str> = rows.iter().map(|r| r["claim"].as_str().unwrap()).collect();
    assert_eq!(claims.len(), 2, "{rows:?}");
    assert!(claims.contains(&"data-db-0") && claims.contains(&"data-db-1"));
    assert!(
        rows.iter()
            .all(|r| r["ready"] == true && r["size"] == "1Gi")
    );
    // Named `<claim>-<UTC stamp>`, labelled with the stack, the claim and when it was taken.
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    );
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client().await, &ctx.ns, &ar);
    let taken = api.list(&Default::default()).await.unwrap().items;
    assert_eq!(taken.len(), 2);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for snap in &taken {
        let name = snap.metadata.name.as_deref().unwrap();
        let labels = snap.metadata.labels.as_ref().unwrap();
        let claim = labels["kubectl-stateful/snapshot-of"].as_str();
        assert!(claim == "data-db-0" || claim == "data-db-1", "{labels:?}");
        assert_eq!(labels["kubectl-stateful/stack"], "o", "{labels:?}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "kubectl-stateful");
        // <claim>-YYYYMMDD-HHMMSS
        let stamp = name.strip_prefix(&format!("{claim}-")).unwrap();
        let (day, time) = stamp.split_once('-').unwrap();
        assert!(
            day.len() == 8 && digits(day) && time.len() == 6 && digits(time),
            "{name}"
        );
        // YYYYMMDDTHHMMSSZ, the same moment as the name's.
        let at = &labels["kubectl-stateful/taken-at"];
        assert_eq!(at, &format!("{day}T{time}Z"), "{labels:?}");
        // The data oracle: the snapshot holds its claim's data as it was when taken.
        assert_eq!(
            snapshot_marker(&ctx.ns, name).await,
            Some(format!("ondemand {claim}")),
            "{name}"
        );
    }
    let one = ctx.run(&["snapshot", "-f", spec, "--claim", "data-db-1"]);
    one.expect_code(0);
    assert!(!one.stdout.contains("data-db-0"));
    let wrong = ctx.run(&["snapshot", "-f", spec, "--claim", "other"]);
    wrong.expect_code(1);
    assert_contains(&wrong.stderr, "pvc/other is not a claim of stack o");

    // Data written after the snapshot does not reach it; a claim restored from it gets the data
    // as it was when taken.
    write_marker(&ctx.ns, "data-db-0", "changed later").await;
    let db0 = taken
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .find(|n| n.starts_with("data-db-0-"))
        .unwrap();
    let restore = format!(
        "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = 2\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nclass = \"fast\"\nmount = \"/data\"\n\n[[claim]]\nname = \"db-copy\"\nsize = \"1Gi\"\nclass = \"fast-immediate\"\nfrom_snapshot = \"{db0}\"\n"
    );
    ctx.spec("o", &restore);
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    assert_eq!(
        read_marker(&ctx.ns, "db-copy").await.as_deref(),
        Some("ondemand data-db-0"),
        "the restore brings back the data as it was when {db0} was taken"
    );
    assert_eq!(
        snapshot_marker(&ctx.ns, &db0).await.as_deref(),
        Some("ondemand data-db-0")
    );
    assert_eq!(
        read_marker(&ctx.ns, "data-db-0").await.as_deref(),
        Some("changed later")
    );
}

/// Where the event `event` of the object `name` is in an apply's JSON events.
fn position(events: &[Value], event: &str, name: &str) -> usize {
    events
        .iter()
        .position(|e| e["event"] == event && e["object"]["name"] == name)
        .unwrap_or_else(|| panic!("no {event} of {name}: {events:#?}"))
}

/// Snapshot data is data. A `[[snapshot]]` whose claim changes cannot be changed in place: the
/// replace deletes the snapshot (and, with its class's deletionPolicy, the copy it holds) before
/// taking it again. The plan names the data it puts at risk; apply refuses without
/// `--delete-data` even with `--replace` naming it, and the copy survives.
#[tokio::test]
async fn replacing_a_snapshot_deletes_its_data_only_with_delete_data() {
    let ctx = TestCtx::new("snapreplace").await;
    let claims = "[[claim]]\nname = \"a\"\nsize = \"1Gi\"\nclass = \"fast-immediate\"\n\n[[claim]]\nname = \"b\"\nsize = \"1Gi\"\nclass = \"fast-immediate\"\n";
    let spec = ctx.spec("s", claims);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    write_marker(&ctx.ns, "a", "a's data").await;
    let snapshot_of =
        |claim: &str| format!("{claims}\n[[snapshot]]\nname = \"s\"\nclaim = \"{claim}\"\n");
    ctx.spec("s", &snapshot_of("a"));
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    assert_eq!(
        snapshot_marker(&ctx.ns, "s").await.as_deref(),
        Some("a's data")
    );

    ctx.spec("s", &snapshot_of("b"));
    let plan = ctx.run(&["plan", "-f", spec]);
    assert_contains(&plan.stdout, "volumesnapshot/s");
    assert_contains(
        &plan.stdout,
        "the data it holds now (a copy of pvc/a) is deleted",
    );
    let replace = [
        "apply",
        "-f",
        spec,
        "--replace",
        "volumesnapshot/s",
        "--yes",
        "--timeout",
        "2m",
    ];
    let refused = ctx.run(&replace);
    refused.expect_code(1);
    assert_contains(&refused.stderr, "--delete-data");
    assert_eq!(
        snapshot_marker(&ctx.ns, "s").await.as_deref(),
        Some("a's data"),
        "refused: the snapshot's copy is kept"
    );
    let mut consented = replace.to_vec();
    consented.push("--delete-data");
    ctx.run(&consented).expect_code(0);
    assert_eq!(
        snapshot_marker(&ctx.ns, "s").await,
        None,
        "a snapshot of b now"
    );
}
