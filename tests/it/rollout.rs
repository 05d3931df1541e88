//! Rollouts on the real control plane: late binding, failures explained, immutable changes.

use crate::support::{TestCtx, assert_contains, client, step_of};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::Value;

use crate::support::json_lines as events;

fn position(events: &[Value], kind: &str, object: &str) -> Option<usize> {
    events
        .iter()
        .position(|e| e["event"] == kind && e["object"]["name"] == object)
}

#[tokio::test]
async fn wait_for_first_consumer_claim_is_deferred_then_confirmed() {
    let ctx = TestCtx::new("wfc").await;
    let spec = ctx.spec(
        "wfc",
        r#"
[[storage_class]]
name = "late"
provisioner = "kubernetes.io/no-provisioner"
binding_mode = "WaitForFirstConsumer"

[[volume]]
name = "disk-on-node-2"
capacity = "2Gi"
class = "late"
node = "node-2"
local = { path = "/mnt/disks/a" }

[[claim]]
name = "shared"
size = "1Gi"
class = "late"

[[statefulset]]
name = "app"
image = "registry.k8s.io/pause:3.10"
[[statefulset.mount]]
claim = "shared"
path = "/data"
"#,
    );
    let run = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    run.expect_code(0);
    let ev = events(&run.stdout);
    let deferred = position(&ev, "deferred", "shared").expect("claim deferred");
    assert!(
        ev[deferred]["message"]
            .as_str()
            .unwrap()
            .contains("waits for first consumer")
    );
    let sts_ready = position(&ev, "ready", "app").expect("statefulset ready");
    let claim_ready = ev
        .iter()
        .rposition(|e| e["event"] == "ready" && e["object"]["name"] == "shared")
        .expect("claim confirmed");
    assert!(
        deferred < sts_ready && sts_ready < claim_ready,
        "order: {ev:#?}"
    );
    assert_eq!(ev.last().unwrap()["event"], "finished");
    assert_eq!(ev.last().unwrap()["ok"], true);

    let pods: kube::Api<Pod> = kube::Api::namespaced(client().await, &ctx.ns);
    let pod = pods.get("app-0").await.unwrap();
    assert_eq!(
        pod.spec.unwrap().node_name.as_deref(),
        Some("node-2"),
        "the local volume pins the pod to node-2"
    );
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let claim = claims.get("shared").await.unwrap();
    assert_eq!(
        claim.spec.unwrap().volume_name.as_deref(),
        Some(ctx.unique("disk-on-node-2").as_str())
    );
}

#[tokio::test]
async fn claim_that_can_never_bind_fails_within_timeout_with_the_event() {
    let ctx = TestCtx::new("nobind").await;
    // Volumes are cluster-wide: the label is this test's own, so that no other test's claim
    // takes the volume made below, and no other test's volume satisfies this claim.
    let label = format!("never-{}", ctx.prefix);
    let spec = ctx.spec(
        "nobind",
        &format!("[[claim]]\nname = \"orphan\"\nsize = \"1Gi\"\nclass = \"\"\nselector = {{ never = \"{label}\" }}\n"),
    );
    let run = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--timeout",
        "15s",
    ]);
    run.expect_code(1);
    assert_contains(&run.stdout, "pvc/orphan: FAILED: timed out after");
    assert!(
        run.stdout
            .contains("no persistent volumes available for this claim and no storage class is set"),
        "the report must carry the claim's event:\n{}",
        run.stdout
    );
    assert_contains(&run.stderr, "rollout failed");

    // Fixing the cause and running apply again converges: the claim is unchanged and binds.
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        format!(
            "{text}\n[[volume]]\nname = \"{}\"\ncapacity = \"1Gi\"\nlabels = {{ never = \"{label}\" }}\nhost_path = {{ path = \"/tmp/x\" }}\n",
            ctx.unique("match")
        ),
    )
    .unwrap();
    let again = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--timeout",
        "1m",
    ]);
    again.expect_code(0);
    assert_contains(&again.stdout, "pvc/orphan: unchanged");
    assert_contains(
        &again.stdout,
        &format!("pvc/orphan: ready: Bound to {}", ctx.unique("match")),
    );
}

const STS: &str = r#"
[[statefulset]]
name = "db"
replicas = REPLICAS
image = "registry.k8s.io/pause:3.10"
[[statefulset.volume_claim]]
name = "data"
size = "SIZE"
mount = "/data"
"#;

fn sts(replicas: u32, size: &str) -> String {
    STS.replace("REPLICAS", &replicas.to_string())
        .replace("SIZE", size)
}

#[tokio::test]
async fn immutable_template_change_is_a_replace_that_apply_refuses() {
    let ctx = TestCtx::new("immutable").await;
    let spec = ctx.spec("db", &sts(1, "1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes"]).expect_code(0);

    // A claim template's access modes: not a resize, a replace.
    let rwx = sts(1, "1Gi").replace(
        "mount = \"/data\"",
        "mount = \"/data\"\naccess_modes = [\"ReadWriteMany\"]",
    );
    ctx.spec("db", &rwx);
    let plan = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_contains(&plan.stdout, "-/+ statefulset/db must be replaced");
    assert_contains(
        &plan.stdout,
        "forced by: spec.volumeClaimTemplates[0].spec.accessModes[0]",
    );
    assert_contains(
        &plan.stdout,
        "Plan: 0 to create, 0 to update, 1 to replace, 1 unchanged.",
    );

    let json = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let step = step_of(&v, "StatefulSet");
    assert_eq!(step["action"], "replace");
    assert_eq!(
        step["replace_paths"][0],
        "spec.volumeClaimTemplates[0].spec.accessModes[0]"
    );

    let apply = ctx.run(&["apply", "-f", spec, "--yes"]);
    apply.expect_code(1);
    assert_contains(
        &apply.stderr,
        "the plan replaces statefulset/db, which apply does only when named with --replace",
    );
    assert_contains(&apply.stderr, "--cascade=orphan");

    // Growing the template on a class without expansion is refused at plan time, naming both.
    ctx.spec("db", &sts(1, "2Gi"));
    let plan = ctx.run(&["plan", "-f", spec]);
    plan.expect_code(1);
    assert_contains(
        &plan.stdout,
        "the claim templates cannot be resized: pvc/data-db-0: class \"standard\" does not allow expansion",
    );
}

#[tokio::test]
async fn scaling_is_an_update_and_converges() {
    let ctx = TestCtx::new("scale").await;
    let spec = ctx.spec("db", &sts(1, "1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes"]).expect_code(0);
    ctx.spec("db", &sts(3, "1Gi"));
    let plan = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let step = step_of(&v, "StatefulSet");
    assert_eq!(step["action"], "update");
    assert_eq!(step["changed_paths"], serde_json::json!(["spec.replicas"]));
    let apply = ctx.run(&["apply", "-f", spec, "--yes"]);
    apply.expect_code(0);
    assert_contains(&apply.stdout, "statefulset/db: ready: 3/3 replicas ready");
    assert_contains(&apply.stdout, "pvc/data-db-2: ready: Bound to");
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);
}

#[tokio::test]
async fn missing_namespace_is_planned_and_created_first() {
    let ctx = TestCtx::new("newns").await;
    let ns = format!("{}-new", ctx.ns);
    let spec = ctx.spec("app", &format!("namespace = \"{ns}\"\n{}", sts(1, "1Gi")));
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(["-f".into(), spec.to_str().unwrap().into()]);
        a
    };
    let plan = crate::support::run_plugin(&args(&["plan"]), None);
    plan.expect_code(0);
    assert_contains(&plan.stdout, &format!("+ namespace/{ns} will be created"));
    assert_contains(
        &plan.stdout,
        "validated by dry-run creates in namespace default",
    );
    assert_contains(&plan.stdout, "Plan: 3 to create");
    let apply = crate::support::run_plugin(&args(&["apply", "--yes", "--timeout", "2m"]), None);
    apply.expect_code(0);
    assert_contains(&apply.stdout, &format!("namespace/{ns}: created"));
    crate::support::run_plugin(&args(&["plan", "--detailed-exitcode"]), None).expect_code(0);
}

/// The partial-write defect: when the namespace does not exist yet, every object is still
/// validated by the server before anything is written, so a StatefulSet the server rejects
/// leaves no Namespace, claim or Service behind.
#[tokio::test]
async fn a_rejected_object_in_a_new_namespace_writes_nothing_at_all() {
    let ctx = TestCtx::new("newnsreject").await;
    let ns = format!("{}-new", ctx.ns);
    let text = format!(
        "namespace = \"{ns}\"\n\n[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n\n[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nmin_ready_seconds = -1\n"
    );
    let path = ctx.dir.path().join("rejected.toml");
    std::fs::write(&path, &text).unwrap();
    let spec = path.to_str().unwrap().to_string();
    let plan = crate::support::run_plugin(&["plan".into(), "-f".into(), spec.clone()], None);
    plan.expect_code(1);
    assert_contains(&plan.stdout, "! statefulset/db could not be planned");
    assert_contains(&plan.stdout, "spec.minReadySeconds: Invalid value: -1");
    assert_contains(
        &plan.stdout,
        &format!("at {spec}:10:1: statefulset[0].min_ready_seconds"),
    );
    assert_eq!(plan.stderr, "", "plan reports server errors on stdout only");
    let apply = crate::support::run_plugin(
        &["apply".into(), "-f".into(), spec.clone(), "--yes".into()],
        None,
    );
    apply.expect_code(1);
    assert_contains(&apply.stderr, "statefulset[0].min_ready_seconds");
    let c = crate::support::client().await;
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(c.clone());
    assert!(
        namespaces.get_opt(&ns).await.unwrap().is_none(),
        "the namespace was written"
    );
    // Nothing landed in the namespace used for validation either.
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(c.clone(), "default");
    assert!(services.get_opt("db").await.unwrap().is_none());
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(c, "default");
    assert!(claims.get_opt("data").await.unwrap().is_none());
}

#[tokio::test]
async fn unschedulable_statefulset_reports_the_scheduler_reason() {
    let ctx = TestCtx::new("unsched").await;
    // One local disk on node-2, two replicas that each need one: the second pod cannot be placed.
    let spec = ctx.spec(
        "unsched",
        r#"
[[storage_class]]
name = "disks"
provisioner = "kubernetes.io/no-provisioner"
binding_mode = "WaitForFirstConsumer"

[[volume]]
name = "only-disk"
capacity = "1Gi"
class = "disks"
node = "node-2"
local = { path = "/mnt/disks/a" }

[[statefulset]]
name = "db"
replicas = 2
image = "x"
pod_management_policy = "Parallel"
[[statefulset.volume_claim]]
name = "data"
size = "1Gi"
class = "disks"
mount = "/data"
"#,
    );
    // First the replica that can run, with time to spare; then the second one, whose wait can
    // only time out (a short timeout that also had to cover the first pod would race it).
    let spec = spec.to_str().unwrap();
    let text = std::fs::read_to_string(spec).unwrap();
    std::fs::write(spec, text.replace("replicas = 2", "replicas = 1")).unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    std::fs::write(spec, text).unwrap();
    let run = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "20s"]);
    run.expect_code(1);
    assert_contains(&run.stdout, "statefulset/db: FAILED: timed out after");
    assert_contains(&run.stdout, "1/2 replicas ready");
    assert_contains(&run.stdout, "PodScheduled false: 0/3 nodes are available");
    assert_contains(&run.stdout, "FailedScheduling");
}

#[tokio::test]
async fn growing_a_claim_of_a_class_without_expansion_is_a_replace_with_the_reason() {
    let ctx = TestCtx::new("grow").await;
    let claim = |size: &str| format!("[[claim]]\nname = \"data\"\nsize = \"{size}\"\n");
    let spec = ctx.spec("grow", &claim("1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    ctx.spec("grow", &claim("2Gi"));
    let plan = ctx.run(&["plan", "-f", spec, "-o", "json", "--detailed-exitcode"]);
    plan.expect_code(2);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let step = step_of(&v, "PersistentVolumeClaim");
    assert_eq!(step["action"], "replace");
    assert_eq!(
        step["replace_paths"],
        serde_json::json!(["spec.resources.requests.storage"])
    );
    assert_contains(
        step["reasons"][0].as_str().unwrap(),
        "class \"standard\" does not allow expansion (allowVolumeExpansion is not true)",
    );
    assert_contains(step["reasons"][1].as_str().unwrap(), "must support resize");
    // Shrinking back to the live size is no change at all.
    ctx.spec("grow", &claim("1024Mi"));
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);
}

fn rolling(strategy: &str, image: &str) -> String {
    format!(
        "[[statefulset]]\nname = \"web\"\nreplicas = 3\nimage = \"{image}\"\npod_management_policy = \"Parallel\"\nupdate_strategy = {strategy}\n"
    )
}

/// Applies a StatefulSet `web` of 3 with `strategy`, then changes its image: the second apply.
fn change_image(ctx: &TestCtx, strategy: &str) -> crate::support::Run {
    ctx.apply_then_change(
        "web",
        &rolling(strategy, "img:1"),
        &rolling(strategy, "img:2"),
    )
}

#[tokio::test]
async fn partitioned_rolling_update_finishes_above_the_partition() {
    let ctx = TestCtx::new("partition").await;
    let apply = change_image(&ctx, "{ type = \"RollingUpdate\", partition = 2 }");
    apply.expect_code(0);
    assert_contains(
        &apply.stdout,
        "statefulset/web: ready: 3/3 replicas ready, 1 updated (partition 2: lower ordinals keep the old revision)",
    );
    let pods: kube::Api<Pod> = kube::Api::namespaced(client().await, &ctx.ns);
    let image = |name: &str| {
        let pods = pods.clone();
        let name = name.to_string();
        async move {
            pods.get(&name).await.unwrap().spec.unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        }
    };
    assert_eq!(image("web-2").await, "img:2");
    assert_eq!(image("web-0").await, "img:1");
}

#[tokio::test]
async fn on_delete_update_is_reported_not_waited_for() {
    let ctx = TestCtx::new("ondelete").await;
    let apply = change_image(&ctx, "{ type = \"OnDelete\" }");
    apply.expect_code(0);
    assert_contains(
        &apply.stdout,
        "statefulset/web: ready: 3/3 replicas ready; updateStrategy OnDelete: pods take a new template only when deleted",
    );
    // The new template was written...
    let sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    let set = sets.get("web").await.unwrap();
    assert_eq!(
        set.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("img:2")
    );
    // ...but the running pods keep the old one until they are deleted.
    let pods: kube::Api<Pod> = kube::Api::namespaced(client().await, &ctx.ns);
    let image_of = |pod: &Pod| {
        pod.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    for name in ["web-0", "web-1", "web-2"] {
        assert_eq!(image_of(&pods.get(name).await.unwrap()), "img:1", "{name}");
    }
    let old_uid = pods.get("web-1").await.unwrap().metadata.uid;
    pods.delete("web-1", &Default::default()).await.unwrap();
    crate::support::eventually(
        "web-1 re-created with the new template",
        std::time::Duration::from_secs(60),
        || {
            let pods = pods.clone();
            let old_uid = old_uid.clone();
            async move {
                pods.get_opt("web-1")
                    .await
                    .unwrap()
                    .is_some_and(|p| p.metadata.uid != old_uid && image_of(&p) == "img:2")
            }
        },
    )
    .await;
    assert_eq!(image_of(&pods.get("web-0").await.unwrap()), "img:1");
}

#[tokio::test]
async fn objects_dropped_from_the_spec_are_listed_but_never_deleted() {
    let ctx = TestCtx::new("dropped").await;
    let spec = ctx.spec("db", &sts(1, "1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes"]).expect_code(0);
    ctx.spec("db", "[[claim]]\nname = \"other\"\nsize = \"1Gi\"\n");
    let plan = ctx.run(&["plan", "-f", spec]);
    plan.expect_code(0);
    assert_contains(
        &plan.stdout,
        "Not in the spec any more (2); apply leaves them in place (prune them with --prune):\n    service/db\n    statefulset/db\n",
    );
    assert!(
        !plan.stdout.contains("pvc/data-db-0"),
        "claims made from templates are not the stack's: {}",
        plan.stdout
    );
    let json = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["not_in_spec"][1],
        serde_json::json!({"kind": "StatefulSet", "namespace": ctx.ns, "name": "db"})
    );
    ctx.run(&["apply", "-f", spec, "--yes"]).expect_code(0);
    let sts: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    assert!(
        sts.get_opt("db").await.unwrap().is_some(),
        "apply never deletes"
    );
}

#[tokio::test]
async fn min_ready_seconds_is_waited_for() {
    let ctx = TestCtx::new("minready").await;
    let spec = ctx.spec(
        "app",
        // 10s: the wait must see the replica ready but not yet available; with a few seconds a
        // controller-manager that sees the pod's Ready late under load writes both at once.
        "[[statefulset]]\nname = \"app\"\nimage = \"registry.k8s.io/pause:3.10\"\nmin_ready_seconds = 10\n",
    );
    let run = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
        "--timeout",
        "1m",
    ]);
    run.expect_code(0);
    let ev = events(&run.stdout);
    let available = ev
        .iter()
        .position(|e| {
            e["event"] == "waiting" && e["message"] == "0/1 replicas available (minReadySeconds)"
        })
        .unwrap_or_else(|| panic!("no wait for availability: {ev:#?}"));
    let ready = position(&ev, "ready", "app").expect("ready");
    assert!(available < ready, "{ev:#?}");
    // Ready was reported only once the replica counted as available.
    let sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    let status = sets.get("app").await.unwrap().status.unwrap();
    assert_eq!(status.available_replicas, Some(1));
}

#[tokio::test]
async fn wait_for_first_consumer_claim_without_consumer_is_left_pending() {
    let ctx = TestCtx::new("wfcnoconsumer").await;
    let spec = ctx.spec(
        "late",
        "[[claim]]\nname = \"later\"\nsize = \"1Gi\"\nclass = \"local-storage\"\n",
    );
    let run = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
        "--timeout",
        "1m",
    ]);
    run.expect_code(0);
    let ev = events(&run.stdout);
    let deferred: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "deferred" && e["object"]["name"] == "later")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(deferred.len(), 2, "{ev:#?}");
    assert!(deferred[0].starts_with("waits for first consumer"));
    assert!(
        deferred[1]
            .starts_with("still waits for its first consumer: no workload of this stack mounts it"),
        "{ev:#?}"
    );
    assert!(
        position(&ev, "waiting", "later").is_none() && position(&ev, "ready", "later").is_none(),
        "nothing waits for it: {ev:#?}"
    );
    assert_eq!(ev.last().unwrap()["ok"], true);
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let claim = claims.get("later").await.unwrap();
    assert_eq!(claim.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn unmanaged_service_of_the_same_name_is_left_alone() {
    let ctx = TestCtx::new("unmanagedsvc").await;
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client().await, &ctx.ns);
    let mine: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db", "labels": {"owner": "someone-else"}},
        "spec": {"ports": [{"name": "sql", "port": 3306}], "selector": {"app": "other"}}
    }))
    .unwrap();
    let created = services.create(&Default::default(), &mine).await.unwrap();
    let spec = ctx.spec("db", &sts(1, "1Gi"));
    let spec = spec.to_str().unwrap();
    let plan = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    plan.expect_code(0);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let step = step_of(&v, "Service");
    assert_eq!(step["action"], "no-op");
    assert_contains(
        step["reasons"][0].as_str().unwrap(),
        "service/db exists and is not managed by kubectl-stateful; it is left as it is",
    );
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let after = services.get("db").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, created.metadata.resource_version,
        "the Service was not written"
    );
    assert!(
        after
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .all(|f| f.manager.as_deref() != Some("kubectl-stateful"))
    );
    let sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client().await, &ctx.ns);
    assert_eq!(
        sets.get("db")
            .await
            .unwrap()
            .spec
            .unwrap()
            .service_name
            .as_deref(),
        Some("db")
    );
}

/// The server refuses one object (422): it is shown with the server's reason, everything else is
/// still planned, and apply refuses the plan — from the spec and from a saved plan.
#[tokio::test]
async fn one_object_refused_by_the_server_others_still_planned_apply_refuses() {
    let ctx = TestCtx::new("invalid422").await;
    let spec = ctx.spec(
        "mixed",
        r#"
[[claim]]
name = "good"
size = "1Gi"

[[claim]]
name = "bad"
size = "1Gi"
[claim.patch.spec]
volumeMode = "Sideways"

[[statefulset]]
name = "db"
image = "registry.k8s.io/pause:3.10"
"#,
    );
    let spec = spec.to_str().unwrap();
    let plan_file = ctx.dir.path().join("plan.json");
    let plan = ctx.run(&["plan", "-f", spec, "--out", plan_file.to_str().unwrap()]);
    plan.expect_code(1);
    assert_contains(&plan.stdout, "! pvc/bad could not be planned  (claim[1])");
    assert_contains(&plan.stdout, "Unsupported value: \"Sideways\"");
    assert_contains(&plan.stdout, "(Invalid, HTTP 422)");
    assert_contains(&plan.stdout, "+ pvc/good will be created");
    assert_contains(&plan.stdout, "+ statefulset/db will be created");
    assert_contains(
        &plan.stdout,
        "Plan: 3 to create, 0 to update, 0 to replace, 0 unchanged, 1 failed to plan.",
    );
    let json = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    json.expect_code(1);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let actions: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["object"]["name"].as_str().unwrap(),
                s["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("good", "create"),
            ("bad", "error"),
            ("db", "create"),
            ("db", "create")
        ]
    );
    assert_contains(v["steps"][1]["error"].as_str().unwrap(), "spec.volumeMode");

    for apply in [
        ctx.run(&["apply", "-f", spec, "--yes"]),
        ctx.run(&["apply", plan_file.to_str().unwrap(), "--yes"]),
    ] {
        apply.expect_code(1);
        assert_contains(
            &apply.stderr,
            "the plan has objects that could not be planned: pvc/bad: ",
        );
        assert_contains(&apply.stdout, "! pvc/bad could not be planned");
    }
    assert_eq!(
        ctx.count::<PersistentVolumeClaim>().await,
        0,
        "nothing written"
    );
}
