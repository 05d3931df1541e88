//! Snapshots before data loss, on the real control plane with the simulated CSI driver (`fast`
//! classes, VolumeSnapshotClass `fast-snapshots`): an allowed claim replace, `--prune-data` and
//! `destroy --delete-data`, and a scale-down with `whenScaled: Delete` under `--snapshot-before`
//! each snapshot the claims first and wait for `readyToUse` before deleting anything; the
//! snapshots stay afterwards. A claim of a driver without a VolumeSnapshotClass is named.

use crate::support::{
    TestCtx, assert_contains, client, json_lines, read_marker, snapshot_marker, write_marker,
};
use serde_json::Value;
use std::time::Duration;

async fn snapshot_api(ns: &str) -> kube::Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    );
    kube::Api::namespaced_with(client().await, ns, &ar)
}

/// The stack's snapshots: name → (claim, ready, labels).
async fn snapshots(ctx: &TestCtx) -> Vec<Value> {
    let api = snapshot_api(&ctx.ns).await;
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

fn named<'a>(list: &'a [Value], prefix: &str) -> Option<&'a Value> {
    list.iter().find(|s| {
        s["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with(prefix)
    })
}

/// Index of the first event matching `event` about an object whose name starts with `name`.
fn position(events: &[Value], event: &str, kind: &str, name: &str) -> usize {
    events
        .iter()
        .position(|e| {
            e["event"] == event
                && e["object"]["kind"] == kind
                && e["object"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(name)
        })
        .unwrap_or_else(|| panic!("no {event} of {kind} {name} in {events:#?}"))
}

/// Seconds the wait for a snapshot took.
fn snapshot_wait(events: &[Value], name: &str) -> f64 {
    events[position(events, "ready", "VolumeSnapshot", name)]["seconds"]
        .as_f64()
        .unwrap()
}

async fn claim_exists(ctx: &TestCtx, name: &str) -> bool {
    let api: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(client().await, &ctx.ns);
    api.get_opt(name).await.unwrap().is_some()
}

fn claim(name: &str, class: &str, modes: &str, allow: bool) -> String {
    format!(
        "[[claim]]\nname = \"{name}\"\nsize = \"1Gi\"\nclass = \"{class}\"\naccess_modes = [\"{modes}\"]\nallow_replace = {allow}\n"
    )
}

#[tokio::test]
async fn an_allowed_claim_replace_snapshots_the_claim_first() {
    let ctx = TestCtx::new("safereplace").await;
    let spec = ctx.spec("s", &claim("data", "fast-immediate", "ReadWriteOnce", true));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let old = write_marker(&ctx.ns, "data", "safereplace data").await;
    ctx.spec("s", &claim("data", "fast-immediate", "ReadWriteMany", true));
    let plan = ctx.run(&["plan", "-f", spec]);
    assert_contains(
        &plan.stdout,
        "snapshot data first (class fast-snapshots): volumesnapshot/data-before-replace-",
    );
    let apply = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--replace",
        "pvc/data",
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    apply.expect_code(0);
    let events = json_lines(&apply.stdout);
    let plan = &events[0]["plan"];
    let planned = plan["steps"][0]["snapshots"][0]["name"].as_str().unwrap();
    // Created, ready, and only then the claim deleted.
    let created = position(&events, "applied", "VolumeSnapshot", planned);
    let ready = position(&events, "ready", "VolumeSnapshot", planned);
    let deleted = position(&events, "deleted", "PersistentVolumeClaim", "data");
    assert!(created < ready && ready < deleted, "{events:#?}");
    eprintln!(
        "snapshot wait before the replace: {:.1}s",
        snapshot_wait(&events, planned)
    );
    let list = snapshots(&ctx).await;
    let snap = named(&list, planned).expect("the snapshot stays");
    assert_eq!(snap["spec"]["source"]["persistentVolumeClaimName"], "data");
    assert_eq!(snap["spec"]["volumeSnapshotClassName"], "fast-snapshots");
    assert_eq!(snap["status"]["readyToUse"], true);
    assert_eq!(
        snap["metadata"]["labels"]["kubectl-stateful/snapshot-of"],
        "data"
    );
    assert_eq!(snap["metadata"]["labels"]["kubectl-stateful/stack"], "s");
    assert_eq!(
        snap["metadata"]["annotations"]["kubectl-stateful/snapshot-before"],
        "replace"
    );
    // The stack's listing shows it.
    let listing = ctx.run(&["snapshots", "-f", spec]);
    listing.expect_code(0);
    assert_contains(&listing.stdout, planned);
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);

    // The data oracle: the replaced claim has a new, empty volume; the snapshot holds the old
    // data, and a claim restored from it brings the data back.
    assert_ne!(
        crate::support::volume_data(&ctx.ns, "data").await.volume,
        old.volume
    );
    assert_eq!(read_marker(&ctx.ns, "data").await, None, "a new volume");
    assert_eq!(
        snapshot_marker(&ctx.ns, planned).await.as_deref(),
        Some("safereplace data"),
        "the snapshot holds the replaced claim's data"
    );
    ctx.spec(
        "s",
        &format!(
            "{}[[claim]]\nname = \"restored\"\nsize = \"1Gi\"\nclass = \"fast-immediate\"\nfrom_snapshot = \"{planned}\"\n",
            claim("data", "fast-immediate", "ReadWriteMany", true)
        ),
    );
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    assert_eq!(
        read_marker(&ctx.ns, "restored").await.as_deref(),
        Some("safereplace data"),
        "the restore brings the data back"
    );
}

#[tokio::test]
async fn prune_data_and_destroy_snapshot_claims_first_and_keep_the_snapshots() {
    let ctx = TestCtx::new("safeprune").await;
    let all = format!(
        "{}{}{}",
        claim("keep", "fast-immediate", "ReadWriteOnce", false),
        claim("gone", "fast-immediate", "ReadWriteOnce", false),
        claim("plain", "standard", "ReadWriteOnce", false)
    );
    let spec = ctx.spec("p", &all);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let keep = write_marker(&ctx.ns, "keep", "safeprune keep").await;
    let gone = write_marker(&ctx.ns, "gone", "safeprune gone").await;
    let plain_data = write_marker(&ctx.ns, "plain", "safeprune plain").await;
    ctx.spec(
        "p",
        &claim("keep", "fast-immediate", "ReadWriteOnce", false),
    );
    let plan = ctx.run(&["plan", "-f", spec, "--prune", "--prune-data"]);
    assert_contains(
        &plan.stdout,
        "snapshot gone first (class fast-snapshots): volumesnapshot/gone-before-prune-",
    );
    assert_contains(
        &plan.stdout,
        "no VolumeSnapshotClass for driver kubernetes.io/host-path: no snapshot of pvc/plain is taken",
    );
    // Without --prune-data nothing is deleted, so nothing is snapshotted.
    let plain = ctx.run(&["plan", "-f", spec, "--prune"]);
    assert!(
        !plain.stdout.contains("snapshot gone first"),
        "{}",
        plain.stdout
    );

    let apply = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    apply.expect_code(0);
    let events = json_lines(&apply.stdout);
    let ready = position(&events, "ready", "VolumeSnapshot", "gone-before-prune-");
    // Both deletions (the one without a snapshot too) wait for the snapshots.
    assert!(ready < position(&events, "deleted", "PersistentVolumeClaim", "gone"));
    assert!(ready < position(&events, "deleted", "PersistentVolumeClaim", "plain"));
    eprintln!(
        "snapshot wait before the prune: {:.1}s",
        snapshot_wait(&events, "gone-before-prune-")
    );
    assert!(!claim_exists(&ctx, "gone").await);
    // The data oracle: consented with --prune-data, the pruned claims' data goes (reclaim
    // Delete; the host-path one too); the snapshot holds `gone`'s, and `keep`'s stays.
    gone.wait_gone(Duration::from_secs(60)).await;
    plain_data.wait_gone(Duration::from_secs(60)).await;
    let gone_snap = named(&snapshots(&ctx).await, "gone-before-prune-")
        .and_then(|s| s["metadata"]["name"].as_str().map(str::to_string))
        .expect("gone's snapshot");
    assert_eq!(
        snapshot_marker(&ctx.ns, &gone_snap).await.as_deref(),
        Some("safeprune gone")
    );
    assert_eq!(keep.read_marker().as_deref(), Some("safeprune keep"));

    let destroy = ctx.run(&[
        "destroy",
        "-f",
        spec,
        "--delete-data",
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    destroy.expect_code(0);
    let events = json_lines(&destroy.stdout);
    assert!(
        position(&events, "ready", "VolumeSnapshot", "keep-before-destroy-")
            < position(&events, "deleted", "PersistentVolumeClaim", "keep")
    );
    assert!(!claim_exists(&ctx, "keep").await);
    keep.wait_gone(Duration::from_secs(60)).await;
    // The safety net stays: neither the prune nor the destroy deleted a snapshot.
    let list = snapshots(&ctx).await;
    for prefix in ["gone-before-prune-", "keep-before-destroy-"] {
        let s = named(&list, prefix).unwrap_or_else(|| panic!("{prefix} kept: {list:#?}"));
        assert_eq!(s["status"]["readyToUse"], true);
    }
    assert_eq!(list.len(), 2, "{list:#?}");
    // ... and each still holds its claim's data.
    for (prefix, text) in [
        ("gone-before-prune-", "safeprune gone"),
        ("keep-before-destroy-", "safeprune keep"),
    ] {
        let name = named(&list, prefix).unwrap()["metadata"]["name"]
            .as_str()
            .unwrap();
        assert_eq!(
            snapshot_marker(&ctx.ns, name).await.as_deref(),
            Some(text),
            "{name}"
        );
    }
}

fn two_statefulsets(db: u32, cache: u32) -> String {
    let sts = |name: &str, replicas: u32, class: &str| {
        format!(
            "[[statefulset]]\nname = \"{name}\"\nimage = \"img:1\"\nreplicas = {replicas}\nretention = {{ when_deleted = \"Retain\", when_scaled = \"Delete\" }}\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nclass = \"{class}\"\nmount = \"/data\"\n"
        )
    };
    format!(
        "{}{}",
        sts("db", db, "fast"),
        sts("cache", cache, "standard")
    )
}

#[tokio::test]
async fn a_scale_down_that_deletes_claims_is_snapshotted_with_snapshot_before() {
    let ctx = TestCtx::new("safescale").await;
    let spec = ctx.spec("d", &two_statefulsets(3, 2));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "3m"])
        .expect_code(0);
    let mut db = Vec::new();
    for n in 0..3 {
        let claim = format!("data-db-{n}");
        db.push(write_marker(&ctx.ns, &claim, &claim).await);
    }
    let cache1 = write_marker(&ctx.ns, "data-cache-1", "data-cache-1").await;

    // A driver without a VolumeSnapshotClass: --snapshot-before refuses, naming it, and
    // writes nothing.
    ctx.spec("d", &two_statefulsets(3, 1));
    let refused = ctx.run(&["apply", "-f", spec, "--yes", "--snapshot-before"]);
    refused.expect_code(1);
    assert_contains(
        &refused.stderr,
        "no VolumeSnapshotClass for driver kubernetes.io/host-path: no snapshot of pvc/data-cache-1 is taken",
    );
    let api: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    let cache = api.get("cache").await.unwrap();
    assert_eq!(cache.spec.unwrap().replicas, Some(2), "nothing written");
    assert_eq!(cache1.read_marker().as_deref(), Some("data-cache-1"));

    ctx.spec("d", &two_statefulsets(1, 2));
    // Without a flag: refused as before, now naming --snapshot-before.
    let bare = ctx.run(&["apply", "-f", spec, "--yes"]);
    bare.expect_code(1);
    assert_contains(&bare.stderr, "--snapshot-before");
    let plan = ctx.run(&["plan", "-f", spec, "--snapshot-before"]);
    for n in 1..3 {
        assert_contains(
            &plan.stdout,
            &format!(
                "snapshot data-db-{n} first (class fast-snapshots): volumesnapshot/data-db-{n}-before-scale-down-"
            ),
        );
    }
    let apply = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--snapshot-before",
        "-o",
        "json",
        "--timeout",
        "3m",
    ]);
    apply.expect_code(0);
    let events = json_lines(&apply.stdout);
    let written = position(&events, "applied", "StatefulSet", "db");
    for n in 1..3 {
        let name = format!("data-db-{n}-before-scale-down-");
        assert!(position(&events, "ready", "VolumeSnapshot", &name) < written);
        eprintln!(
            "snapshot wait before the scale-down ({name}): {:.1}s",
            snapshot_wait(&events, &name)
        );
    }
    crate::support::eventually(
        "the scaled-away claims are deleted",
        std::time::Duration::from_secs(60),
        || async {
            !claim_exists(&ctx, "data-db-1").await && !claim_exists(&ctx, "data-db-2").await
        },
    )
    .await;
    let list = snapshots(&ctx).await;
    for (n, data) in db.iter().enumerate().skip(1) {
        let s = named(&list, &format!("data-db-{n}-before-scale-down-")).unwrap();
        assert_eq!(s["status"]["readyToUse"], true);
        // The data oracle: the scaled-away claim's data is gone, its snapshot holds it.
        data.wait_gone(Duration::from_secs(60)).await;
        let name = s["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            snapshot_marker(&ctx.ns, name).await,
            Some(format!("data-db-{n}")),
            "{name}"
        );
    }
    assert_eq!(db[0].read_marker().as_deref(), Some("data-db-0"));
    assert_eq!(
        read_marker(&ctx.ns, "data-cache-1").await.as_deref(),
        Some("data-cache-1")
    );
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);
}

/// A volume's reclaim policy turning from Retain to Delete deletes nothing now, but from then on
/// the volume's data goes with its claim: the plan names it, and apply needs --delete-data.
#[tokio::test]
async fn a_reclaim_policy_turning_to_delete_is_named_and_needs_delete_data() {
    let ctx = crate::support::TestCtx::new("reclaimdelete").await;
    let stack = |policy: &str| {
        format!(
            "[[volume]]\nname = \"pv-a\"\ncapacity = \"1Gi\"\nreclaim_policy = \"{policy}\"\nhost_path = {{ path = \"/tmp/kstateful-reclaim\" }}\n\n[[claim]]\nname = \"data\"\nsize = \"1Gi\"\nvolume = \"pv-a\"\n"
        )
    };
    let spec = ctx.spec("r", &stack("Retain"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    ctx.spec("r", &stack("Delete"));
    let plan = ctx.run(&["plan", "-f", spec]);
    crate::support::assert_contains(
        &plan.stdout,
        &format!(
            "reclaim policy Retain → Delete: the volume's data (1Gi) is then deleted when its claim is, with claim {}/data (apply needs --delete-data)",
            ctx.ns
        ),
    );
    let refused = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"]);
    refused.expect_code(1);
    crate::support::assert_contains(&refused.stderr, "the plan makes data deletable");
    let pvs: kube::Api<k8s_openapi::api::core::v1::PersistentVolume> =
        kube::Api::all(crate::support::client().await);
    let policy = || async {
        pvs.get(&ctx.unique("pv-a"))
            .await
            .unwrap()
            .spec
            .unwrap()
            .persistent_volume_reclaim_policy
    };
    assert_eq!(policy().await.as_deref(), Some("Retain"), "nothing written");
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--delete-data",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    assert_eq!(policy().await.as_deref(), Some("Delete"));
}
