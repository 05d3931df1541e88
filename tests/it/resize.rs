//! Changes stateful users fear, on the real control plane with the simulated CSI driver
//! (`fast` classes): claim expansion online and deferred, StatefulSet claim-template resize
//! without restarting pods (a scaled-down ordinal's claim included), refusals, and replacing
//! with consent.

use crate::support::{TestCtx, assert_contains, client, read_marker, volume_data, write_marker};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use std::collections::BTreeMap;

pub(crate) async fn pod_uids(ctx: &TestCtx) -> BTreeMap<String, String> {
    let api: kube::Api<Pod> = kube::Api::namespaced(client().await, &ctx.ns);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
        .collect()
}

pub(crate) async fn capacity(ctx: &TestCtx, claim: &str) -> String {
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let c = api.get(claim).await.unwrap();
    c.status
        .and_then(|s| s.capacity)
        .and_then(|c| c.get("storage").map(|q| q.0.clone()))
        .unwrap_or_default()
}

fn sts(replicas: u32, size: &str, class: &str) -> String {
    format!(
        "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = {replicas}\nretention = {{ when_deleted = \"Delete\", when_scaled = \"Retain\" }}\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"{size}\"\nclass = \"{class}\"\nmount = \"/data\"\n"
    )
}

#[tokio::test]
async fn growing_claim_templates_expands_every_claim_and_keeps_the_pods() {
    let ctx = TestCtx::new("tplresize").await;
    let spec = ctx.spec("r", &sts(3, "1Gi", "fast"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    // Scale down: ordinal 2's claim stays (whenScaled: Retain) and must grow too.
    ctx.spec("r", &sts(2, "1Gi", "fast"));
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let before = pod_uids(&ctx).await;
    assert_eq!(before.len(), 2);
    // The data oracle: each claim's volume holds a marker that must survive the resize.
    let mut volumes = Vec::new();
    for n in 0..3 {
        let claim = format!("data-db-{n}");
        volumes.push(write_marker(&ctx.ns, &claim, &format!("tplresize {claim}")).await);
    }

    ctx.spec("r", &sts(2, "2Gi", "fast"));
    let plan = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_contains(
        &plan.stdout,
        "~+ statefulset/db claim templates will be resized (claims expanded, pods kept)",
    );
    assert_contains(&plan.stdout, "first: retention whenDeleted Delete → Retain");
    for n in 0..3 {
        assert_contains(&plan.stdout, &format!("expand pvc/data-db-{n}: 1Gi → 2Gi"));
    }
    assert_contains(&plan.stdout, "1 to resize");

    let apply = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    apply.expect_code(0);
    assert_contains(&apply.stdout, "\"event\":\"deleted\"");
    for n in 0..2 {
        assert_eq!(
            capacity(&ctx, &format!("data-db-{n}")).await,
            "2Gi",
            "data-db-{n}"
        );
    }
    // No pod mounts the scaled-away ordinal's claim: the volume grew, its file system grows
    // when a pod mounts it again, and apply says so instead of waiting.
    assert_contains(
        &apply.stdout,
        "\"event\":\"deferred\",\"object\":{\"kind\":\"PersistentVolumeClaim\",\"namespace\":\"",
    );
    assert_contains(
        &apply.stdout,
        "data-db-2\"},\"message\":\"expanded; the file system grows when a pod next mounts it",
    );
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let request = api
        .get("data-db-2")
        .await
        .unwrap()
        .spec
        .unwrap()
        .resources
        .unwrap()
        .requests
        .unwrap();
    assert_eq!(request["storage"].0, "2Gi");
    assert_eq!(pod_uids(&ctx).await, before, "no pod was re-created");
    // Every claim keeps its volume and the volume its data.
    for (n, data) in volumes.iter().enumerate() {
        let claim = format!("data-db-{n}");
        assert_eq!(
            volume_data(&ctx.ns, &claim).await.volume,
            data.volume,
            "{claim}"
        );
        assert_eq!(
            read_marker(&ctx.ns, &claim).await.as_deref(),
            Some(format!("tplresize {claim}").as_str()),
            "{claim}'s data survives the resize"
        );
    }
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);
}

#[tokio::test]
async fn a_resize_interrupted_after_the_orphan_delete_finishes_on_the_next_apply() {
    let ctx = TestCtx::new("resume").await;
    let spec = ctx.spec("r", &sts(2, "1Gi", "fast"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let before = pod_uids(&ctx).await;
    // As if apply was killed right after deleting the StatefulSet with --cascade=orphan.
    let api: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    let dp = kube::api::DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..Default::default()
    };
    api.delete("db", &dp).await.unwrap();
    // The garbage collector removes the orphan finalizer: shared with every other test.
    crate::support::eventually(
        "the StatefulSet deleted with --cascade=orphan is gone",
        std::time::Duration::from_secs(60),
        || {
            let api = api.clone();
            async move { api.get_opt("db").await.unwrap().is_none() }
        },
    )
    .await;
    ctx.spec("r", &sts(2, "2Gi", "fast"));
    let plan = ctx.run(&["plan", "-f", spec]);
    assert_contains(&plan.stdout, "+ statefulset/db will be created");
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    assert_eq!(
        pod_uids(&ctx).await,
        before,
        "the orphaned pods were adopted"
    );
    // The claims made before keep their size until expanded; the next plan says so.
    let again = ctx.run(&["plan", "-f", spec]);
    again.expect_code(0);
}

#[tokio::test]
async fn a_template_resize_on_a_class_without_expansion_is_refused_naming_claims_and_class() {
    let ctx = TestCtx::new("noexpand").await;
    let spec = ctx.spec("r", &sts(1, "1Gi", "standard"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    ctx.spec("r", &sts(1, "2Gi", "standard"));
    let plan = ctx.run(&["plan", "-f", spec]);
    plan.expect_code(1);
    assert_contains(
        &plan.stdout,
        "the claim templates cannot be resized: pvc/data-db-0: class \"standard\" does not allow expansion",
    );
    let apply = ctx.run(&["apply", "-f", spec, "--yes"]);
    apply.expect_code(1);
    assert_eq!(capacity(&ctx, "data-db-0").await, "1Gi");
}

const MOUNTED: &str = r#"
[[claim]]
name = "data"
size = "SIZE"
class = "fast-immediate"

[[deployment]]
name = "app"
image = "app:1"
[[deployment.mount]]
claim = "data"
path = "/data"
"#;

#[tokio::test]
async fn growing_a_mounted_claim_waits_until_its_file_system_has_the_space() {
    let ctx = TestCtx::new("expand").await;
    let spec = ctx.spec("e", &MOUNTED.replace("SIZE", "1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    ctx.spec("e", &MOUNTED.replace("SIZE", "2Gi"));
    let plan = ctx.run(&["plan", "-f", spec]);
    plan.expect_code(0);
    assert_contains(&plan.stdout, "~ pvc/data will be updated in place");
    assert_contains(&plan.stdout, "expand 1Gi → 2Gi");
    let apply = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"]);
    apply.expect_code(0);
    assert_contains(&apply.stdout, "pvc/data: ready: capacity 2Gi");
    assert_eq!(capacity(&ctx, "data").await, "2Gi");
}

#[tokio::test]
async fn growing_a_claim_no_pod_mounts_is_deferred_not_waited_for() {
    let ctx = TestCtx::new("deferexp").await;
    let text = "[[claim]]\nname = \"idle\"\nsize = \"SIZE\"\nclass = \"fast-immediate\"\n";
    let spec = ctx.spec("d", &text.replace("SIZE", "1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    ctx.spec("d", &text.replace("SIZE", "2Gi"));
    let apply = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"]);
    apply.expect_code(0);
    assert_contains(
        &apply.stdout,
        "pvc/idle: expanded; the file system grows when a pod next mounts it",
    );
}

#[tokio::test]
async fn replacing_a_statefulset_needs_its_name_and_keeps_its_pods() {
    let ctx = TestCtx::new("replacests").await;
    let base = "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = 2\npod_management_policy = \"POLICY\"\n";
    let spec = ctx.spec("s", &base.replace("POLICY", "OrderedReady"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let before = pod_uids(&ctx).await;
    ctx.spec("s", &base.replace("POLICY", "Parallel"));
    let refused = ctx.run(&["apply", "-f", spec, "--yes"]);
    refused.expect_code(1);
    assert_contains(&refused.stderr, "apply --replace statefulset/db");
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--replace",
        "statefulset/db",
        "--timeout",
        "2m",
    ])
    .expect_code(0);
    assert_eq!(pod_uids(&ctx).await, before);
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);
}

#[tokio::test]
async fn replacing_a_claim_is_refused_without_allow_replace_with_the_manual_steps() {
    let ctx = TestCtx::new("replacepvc").await;
    let text = "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\nclass = \"CLASS\"\n";
    let spec = ctx.spec("c", &text.replace("CLASS", "fast-immediate"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    ctx.spec("c", &text.replace("CLASS", "standard"));
    let refused = ctx.run(&["apply", "-f", spec, "--yes", "--replace", "pvc/data"]);
    refused.expect_code(1);
    assert_contains(&refused.stderr, "which would delete or detach data");
    assert_contains(&refused.stderr, "By hand: back up the data");
    assert_contains(&refused.stderr, "allow_replace = true");
    assert_eq!(capacity(&ctx, "data").await, "1Gi");
    // With allow_replace and the name, it is replaced.
    let allowed = format!(
        "{}allow_replace = true\n",
        text.replace("CLASS", "standard")
    );
    ctx.spec("c", &allowed);
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--replace",
        "pvc/data",
        "--timeout",
        "2m",
    ])
    .expect_code(0);
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let class = api
        .get("data")
        .await
        .unwrap()
        .spec
        .unwrap()
        .storage_class_name;
    assert_eq!(class.as_deref(), Some("standard"));
}

#[tokio::test]
async fn scaling_down_with_when_scaled_delete_names_the_claims_and_needs_delete_data() {
    let ctx = TestCtx::new("scaledel").await;
    let text = "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = N\nretention = { when_scaled = \"Delete\" }\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nmount = \"/data\"\n";
    let spec = ctx.spec("s", &text.replace("N", "3"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let mut volumes = Vec::new();
    for n in 0..3 {
        let claim = format!("data-db-{n}");
        volumes.push(write_marker(&ctx.ns, &claim, &claim).await);
    }
    ctx.spec("s", &text.replace("N", "1"));
    let plan = ctx.run(&["plan", "-f", spec]);
    assert_contains(
        &plan.stdout,
        "with whenScaled: Delete, 1 replicas delete the claims of the ordinals above: data-db-1 (1Gi), data-db-2 (1Gi)",
    );
    let refused = ctx.run(&["apply", "-f", spec, "--yes"]);
    refused.expect_code(1);
    assert_contains(
        &refused.stderr,
        "the plan deletes claims with their data: statefulset/db deletes data-db-1, data-db-2",
    );
    assert_eq!(
        ctx.count::<PersistentVolumeClaim>().await,
        3,
        "refused: nothing deleted"
    );
    // A saved plan whose list of deleted claims was emptied by hand (so that apply asks for no
    // consent): the executor's gate recomputes what the write deletes from the live StatefulSet
    // and refuses before writing.
    let saved = ctx.dir.path().join("scale.json");
    let saved = saved.to_str().unwrap();
    ctx.run(&["plan", "-f", spec, "--out", saved])
        .expect_code(0);
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    for step in doc["steps"].as_array_mut().unwrap() {
        if step["object"]["kind"] == "StatefulSet" {
            assert_eq!(
                step["deletes_claims"],
                serde_json::json!(["data-db-1", "data-db-2"])
            );
            step.as_object_mut().unwrap().remove("deletes_claims");
        }
    }
    std::fs::write(saved, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let tampered = ctx.run(&["apply", saved, "--yes", "--timeout", "1m"]);
    tampered.expect_code(1);
    assert_contains(
        &tampered.stderr,
        "would delete or put at risk the claims data-db-1, data-db-2, which the plan did not show",
    );
    for (n, data) in volumes.iter().enumerate() {
        assert_eq!(
            data.read_marker(),
            Some(format!("data-db-{n}")),
            "refused: data-db-{n}'s data kept"
        );
    }
    assert_eq!(
        ctx.count::<k8s_openapi::api::core::v1::Pod>().await,
        3,
        "refused before writing: no pod scaled away"
    );
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--delete-data",
        "--timeout",
        "2m",
    ])
    .expect_code(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ctx.count::<PersistentVolumeClaim>().await > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the controller did not delete the claims"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Consented with --delete-data: the scaled-away ordinals' data goes (reclaim Delete), the
    // remaining ordinal's stays.
    for data in &volumes[1..] {
        data.wait_gone(std::time::Duration::from_secs(60)).await;
    }
    assert_eq!(
        read_marker(&ctx.ns, "data-db-0").await.as_deref(),
        Some("data-db-0")
    );
}

/// A class of the simulated driver whose expansions take a while, so that apply can be killed
/// while a claim is resizing.
const SLOW_CLASS: &str = "[[storage_class]]\nname = \"slow\"\nprovisioner = \"csi.stateful.test\"\nallow_volume_expansion = true\nparameters = { \"stateful.test/resize-delay\" = \"2s\" }\n";

/// Runs apply with `-o json` and kills it (SIGKILL) right after the first event for which
/// `stop` is true. Returns the events it printed, the last one being that event.
fn apply_killed_at(
    ctx: &TestCtx,
    spec: &str,
    stop: &dyn Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let args: Vec<String> = [
        "apply",
        "-f",
        spec,
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
        "-n",
        &ctx.ns,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cmd = crate::support::plugin_command(&args, &[]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .stdin(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else {
            continue;
        };
        let hit = stop(&event);
        seen.push(event);
        if hit {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert!(
        seen.last().is_some_and(stop),
        "apply ended before the kill point: {seen:#?}"
    );
    seen
}

fn is(event: &serde_json::Value, name: &str, kind: &str, object: &str) -> bool {
    event["event"] == name && event["object"]["kind"] == kind && event["object"]["name"] == object
}

/// A 3-replica template resize killed at one point of its recipe, then applied again: it
/// converges, no pod is re-created, no claim is lost, and every claim has the new size.
async fn resize_killed_then_resumed(test: &str, stop: &dyn Fn(&serde_json::Value) -> bool) {
    let ctx = TestCtx::new(test).await;
    let spec = ctx.spec("k", &format!("{SLOW_CLASS}{}", sts(3, "1Gi", "slow")));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "3m"])
        .expect_code(0);
    let before = pod_uids(&ctx).await;
    assert_eq!(before.len(), 3);
    for n in 0..3 {
        let claim = format!("data-db-{n}");
        write_marker(&ctx.ns, &claim, &format!("{test} {claim}")).await;
    }
    ctx.spec("k", &format!("{SLOW_CLASS}{}", sts(3, "2Gi", "slow")));
    let seen = apply_killed_at(&ctx, spec, stop);
    let last = seen.last().unwrap();
    eprintln!("{test}: killed after {last}");
    // What the next plan finds.
    let plan = ctx.run(&["plan", "-f", spec]);
    let sts_api: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    if sts_api.get_opt("db").await.unwrap().is_none() {
        assert_contains(&plan.stdout, "+ statefulset/db will be created");
        assert_contains(
            &plan.stdout,
            "the StatefulSet is missing but its pods db-0, db-1, db-2 and claims data-db-0, data-db-1, data-db-2 are there",
        );
    }
    // The killed apply still holds the stack's lease until it expires.
    let again = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--timeout",
        "3m",
        "--lock-timeout",
        "90s",
    ]);
    again.expect_code(0);
    assert_eq!(pod_uids(&ctx).await, before, "no pod was re-created");
    for n in 0..3 {
        let claim = format!("data-db-{n}");
        assert_eq!(capacity(&ctx, &claim).await, "2Gi", "{claim}");
        assert_eq!(
            read_marker(&ctx.ns, &claim).await,
            Some(format!("{test} {claim}")),
            "{claim}'s data survives the killed and resumed resize"
        );
    }
    let sts = sts_api.get("db").await.unwrap();
    let templates = sts.spec.unwrap().volume_claim_templates.unwrap();
    let size = &templates[0]
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"];
    assert_eq!(size.0, "2Gi");
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);
}

#[tokio::test]
async fn a_resize_killed_after_the_retention_change_resumes() {
    resize_killed_then_resumed("killretain", &|e| {
        is(e, "applied", "StatefulSet", "db") && e["action"] == "update"
    })
    .await;
}

#[tokio::test]
async fn a_resize_killed_while_a_claim_expands_resumes() {
    resize_killed_then_resumed("killexpand", &|e| {
        is(e, "applied", "PersistentVolumeClaim", "data-db-0")
    })
    .await;
}

#[tokio::test]
async fn a_resize_killed_after_a_claim_expanded_resumes() {
    resize_killed_then_resumed("killexpanded", &|e| {
        is(e, "ready", "PersistentVolumeClaim", "data-db-0")
    })
    .await;
}

#[tokio::test]
async fn a_resize_killed_right_after_the_orphan_delete_resumes() {
    resize_killed_then_resumed("killdelete", &|e| is(e, "deleted", "StatefulSet", "db")).await;
}

#[tokio::test]
async fn a_resize_killed_once_the_statefulset_is_gone_resumes() {
    resize_killed_then_resumed("killgone", &|e| is(e, "ready", "StatefulSet", "db")).await;
}

#[tokio::test]
async fn a_resize_killed_after_the_create_resumes() {
    resize_killed_then_resumed("killcreate", &|e| {
        is(e, "applied", "StatefulSet", "db") && e["action"] == "create"
    })
    .await;
}

/// A StatefulSet scaled by someone else (`kubectl scale`, an HPA) to more replicas than the spec
/// says, with `whenScaled: Delete`: growing its claim templates re-creates it with the replicas
/// it runs, so no pod and no claim of the ordinals above the spec's count is deleted. (Re-created
/// from the spec's manifest, the controller deleted `data-db-3`, and the plan said nothing.) The
/// plan says so; the spec's count is then an update that needs `--delete-data`.
#[tokio::test]
async fn a_template_resize_of_a_scaled_statefulset_keeps_every_replica_and_claim() {
    let ctx = TestCtx::new("resizescaled").await;
    let spec_of = |size: &str| {
        sts(2, size, "fast").replace(
            "when_deleted = \"Delete\", when_scaled = \"Retain\"",
            "when_deleted = \"Retain\", when_scaled = \"Delete\"",
        )
    };
    let spec = ctx.spec("r", &spec_of("1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    crate::support::kubectl(
        Some(&ctx.ns),
        &["scale", "statefulset", "db", "--replicas=4"],
        None,
    );
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    crate::support::eventually(
        "4 claims bound",
        std::time::Duration::from_secs(120),
        || {
            let claims = claims.clone();
            async move {
                claims
                    .list(&Default::default())
                    .await
                    .unwrap()
                    .items
                    .iter()
                    .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
                    .count()
                    == 4
            }
        },
    )
    .await;
    let uids = |list: Vec<PersistentVolumeClaim>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|c| (c.metadata.name.unwrap(), c.metadata.uid.unwrap()))
            .collect()
    };
    let before = uids(claims.list(&Default::default()).await.unwrap().items);

    ctx.spec("r", &spec_of("2Gi"));
    let plan = ctx.run(&["plan", "-f", spec]);
    for n in 0..4 {
        assert_contains(&plan.stdout, &format!("expand pvc/data-db-{n}: 1Gi → 2Gi"));
    }
    let apply = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "3m"]);
    let after = uids(claims.list(&Default::default()).await.unwrap().items);
    assert_eq!(after, before, "every claim kept:\n{}", apply.stdout);
    apply.expect_code(0);
    assert_contains(
        &plan.stdout,
        "re-created with the 4 replicas it runs now, not the spec's 2",
    );
    for n in 0..4 {
        assert_eq!(capacity(&ctx, &format!("data-db-{n}")).await, "2Gi");
    }
    let sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    assert_eq!(
        sets.get("db").await.unwrap().spec.unwrap().replicas,
        Some(4),
        "re-created with the replicas it ran with"
    );
    // The spec's 2 replicas are now a scale-down that deletes claims: it needs consent.
    let apply = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"]);
    apply.expect_code(1);
    assert_contains(&apply.stderr, "--delete-data");
    assert_eq!(
        uids(claims.list(&Default::default()).await.unwrap().items),
        before,
        "still every claim"
    );
}
