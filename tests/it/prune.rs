//! Removing things without losing data: prune, destroy and the stack's inventory, on the real
//! control plane.

use crate::support::{TestCtx, assert_contains, client, try_volume_data, write_marker};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

fn kubectl(ns: &str, args: &[&str], stdin: Option<&str>) {
    crate::support::kubectl(Some(ns), args, stdin);
}

use crate::support::json_lines as events;

async fn exists<K>(ns: Option<&str>, name: &str) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let ar = kube::api::ApiResource::erase::<K>(&());
    let api: kube::Api<kube::api::DynamicObject> = match ns {
        Some(ns) => kube::Api::namespaced_with(client().await, ns, &ar),
        None => kube::Api::all_with(client().await, &ar),
    };
    api.get_opt(name).await.unwrap().is_some()
}

const FULL: &str = r#"
[[claim]]
name = "keep"
size = "1Gi"

[[claim]]
name = "scratch"
size = "1Gi"

[[deployment]]
name = "web"
image = "nginx"
"#;

const SMALL: &str = "[[claim]]\nname = \"keep\"\nsize = \"1Gi\"\n";

#[tokio::test]
async fn objects_that_left_the_spec_go_only_with_prune_and_data_only_with_prune_data() {
    let ctx = TestCtx::new("prune").await;
    let spec = ctx.spec("p", FULL);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let volume = {
        let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
        api.get("scratch")
            .await
            .unwrap()
            .spec
            .unwrap()
            .volume_name
            .unwrap()
    };
    let keep = write_marker(&ctx.ns, "keep", "prune keep").await;
    let scratch = write_marker(&ctx.ns, "scratch", "prune scratch").await;
    ctx.spec("p", SMALL);

    // Without --prune: listed, kept.
    let apply = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"]);
    apply.expect_code(0);
    assert_contains(
        &apply.stdout,
        "apply leaves them in place (prune them with --prune)",
    );
    assert!(exists::<Deployment>(Some(&ctx.ns), "web").await);

    // --prune: the Deployment goes, the claim holds data and stays.
    let plan = ctx.run(&["plan", "-f", spec, "--prune", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_contains(&plan.stdout, "- deployment/web will be deleted");
    assert_contains(
        &plan.stdout,
        "pvc/scratch: a claim holds data (1Gi): deleted only with --prune-data",
    );
    ctx.run(&["apply", "-f", spec, "--prune", "--yes", "--timeout", "1m"])
        .expect_code(0);
    assert!(!exists::<Deployment>(Some(&ctx.ns), "web").await);
    assert!(exists::<PersistentVolumeClaim>(Some(&ctx.ns), "scratch").await);
    assert_eq!(
        scratch.read_marker().as_deref(),
        Some("prune scratch"),
        "--prune without --prune-data keeps the data"
    );

    // --prune-data: the claim goes, and its Delete-policy volume with it, as the plan says.
    let plan = ctx.run(&["plan", "-f", spec, "--prune", "--prune-data"]);
    assert_contains(
        &plan.stdout,
        &format!(
            "its volume {volume} (reclaim policy Delete) and its 1Gi of data are deleted with it"
        ),
    );
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "--yes",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    assert!(!exists::<PersistentVolumeClaim>(Some(&ctx.ns), "scratch").await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while exists::<PersistentVolume>(None, &volume).await {
        assert!(
            std::time::Instant::now() < deadline,
            "{volume} was not deleted with its claim"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(exists::<PersistentVolumeClaim>(Some(&ctx.ns), "keep").await);
    // The data oracle: consented with --prune-data, scratch's data is gone; keep's stays.
    scratch.wait_gone(std::time::Duration::from_secs(60)).await;
    assert_eq!(keep.read_marker().as_deref(), Some("prune keep"));
    ctx.run(&[
        "plan",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "--detailed-exitcode",
    ])
    .expect_code(0);
}

#[tokio::test]
async fn a_claim_in_use_by_a_pod_outside_the_stack_names_the_pod() {
    let ctx = TestCtx::new("inuse").await;
    let spec = ctx.spec("u", "[[claim]]\nname = \"shared\"\nsize = \"1Gi\"\n");
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "outsider"},
        "spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                 "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "shared"}}]}}"#;
    kubectl(&ctx.ns, &["create", "-f", "-"], Some(pod));
    // Everything else leaves the spec (an empty spec is an error: destroy removes a stack).
    ctx.spec("u", "[[claim]]\nname = \"stays\"\nsize = \"1Gi\"\n");
    let apply = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "--yes",
        "--timeout",
        "20s",
    ]);
    apply.expect_code(1);
    assert_contains(
        &apply.stdout,
        "held by finalizers kubernetes.io/pvc-protection: in use by pod/outsider",
    );
    assert_contains(&apply.stderr, "pvc/shared: timed out");
}

#[tokio::test]
async fn an_adopted_class_is_released_never_deleted_and_a_shared_class_is_kept() {
    let ctx = TestCtx::new("release").await;
    let class = ctx.unique("adopted");
    let sc = format!(
        r#"{{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {{"name": "{class}", "labels": {{"team": "storage"}}}}, "provisioner": "kubernetes.io/no-provisioner"}}"#
    );
    kubectl(&ctx.ns, &["create", "-f", "-"], Some(&sc));
    let with_class = "[[storage_class]]\nname = \"adopted\"\nprovisioner = \"kubernetes.io/no-provisioner\"\nadopt = true\n\n[[storage_class]]\nname = \"shared\"\nprovisioner = \"kubernetes.io/no-provisioner\"\n";
    let spec = ctx.spec("r", with_class);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    // A volume outside the stack uses the "shared" class.
    let shared = ctx.unique("shared");
    let outsider = ctx.unique("outsider");
    let pv = format!(
        r#"{{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {{"name": "{outsider}"}},
            "spec": {{"capacity": {{"storage": "1Gi"}}, "accessModes": ["ReadWriteOnce"], "storageClassName": "{shared}",
                      "nfs": {{"server": "nfs.example", "path": "/x"}}}}}}"#
    );
    kubectl(&ctx.ns, &["create", "-f", "-"], Some(&pv));

    // Everything else leaves the spec (an empty spec is an error: destroy removes a stack).
    ctx.spec("r", "[[claim]]\nname = \"stays\"\nsize = \"1Gi\"\n");
    let plan = ctx.run(&["plan", "-f", spec, "--prune", "--prune-data"]);
    plan.expect_code(0);
    assert_contains(
        &plan.stdout,
        &format!("~> storageclass/{class} will be released from this stack"),
    );
    assert_contains(
        &plan.stdout,
        &format!("storageclass/{shared}: used outside the stack by pv/{outsider}"),
    );
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "--yes",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    let api: kube::Api<StorageClass> = kube::Api::all(client().await);
    let labels = api
        .get(&class)
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default();
    assert!(
        !labels.contains_key("kubectl-stateful/stack"),
        "released: {labels:?}"
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("storage"));
    assert!(exists::<StorageClass>(None, &shared).await);
}

#[tokio::test]
async fn keep_annotations_protect_and_recreated_objects_hold() {
    let ctx = TestCtx::new("keepers").await;
    let full = r#"
[[claim]]
name = "precious"
size = "1Gi"
protect = true

[[deployment]]
name = "kept"
image = "x"
[deployment.patch.metadata.annotations]
"helm.sh/resource-policy" = "keep"

[[deployment]]
name = "swapped"
image = "x"
"#;
    let spec = ctx.spec("k", full);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    // Someone deletes "swapped" and creates it again, with our labels.
    kubectl(&ctx.ns, &["delete", "deployment", "swapped"], None);
    let again = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "swapped",
        "labels": {"app.kubernetes.io/managed-by": "kubectl-stateful", "kubectl-stateful/stack": "k"}},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "y"}]}}}}"#;
    kubectl(&ctx.ns, &["create", "-f", "-"], Some(again));

    // Everything else leaves the spec (an empty spec is an error: destroy removes a stack).
    ctx.spec("k", "[[claim]]\nname = \"stays\"\nsize = \"1Gi\"\n");
    let plan = ctx.run(&["plan", "-f", spec, "--prune", "--prune-data"]);
    plan.expect_code(1);
    assert_contains(
        &plan.stdout,
        "pvc/precious is protected (protect = true when it was last applied)",
    );
    assert_contains(
        &plan.stdout,
        "deployment/kept: annotation helm.sh/resource-policy: keep",
    );
    assert_contains(
        &plan.stdout,
        "deployment/swapped: re-created by someone else since this stack recorded it",
    );
    let apply = ctx.run(&["apply", "-f", spec, "--prune", "--prune-data", "--yes"]);
    apply.expect_code(1);
    for name in ["kept", "swapped"] {
        assert!(
            exists::<Deployment>(Some(&ctx.ns), name).await,
            "{name} was deleted"
        );
    }
    assert!(exists::<PersistentVolumeClaim>(Some(&ctx.ns), "precious").await);
}

async fn destroy_round_trip(example: &str) {
    let ctx = TestCtx::new(&format!("destroy{example}")).await;
    let spec = ctx.example(example);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let claims = |ns: String| async move {
        let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ns);
        api.list(&Default::default()).await.unwrap().items.len()
    };
    let before = claims(ctx.ns.clone()).await;
    assert!(before > 0);
    // The data oracle, on the claims whose volumes a provisioner made (static volumes keep their
    // data outside the test bed's directories, an NFS volume has none here).
    let mut data = Vec::new();
    {
        let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
        for pvc in api.list(&Default::default()).await.unwrap().items {
            let name = pvc.metadata.name.unwrap();
            let Some(d) = try_volume_data(&ctx.ns, &name).await else {
                continue;
            };
            if d.provisioned {
                d.write_marker(&name);
                data.push((name, d));
            }
        }
    }
    assert!(
        !data.is_empty() || example == "local-pv",
        "{example}: no claim with a provisioned volume to check"
    );

    let plan = ctx.run(&["destroy", "-f", spec, "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_contains(&plan.stdout, "(kept: ");
    let destroy = ctx.run(&["destroy", "-f", spec, "--yes", "--timeout", "2m"]);
    destroy.expect_code(0);
    assert_eq!(
        claims(ctx.ns.clone()).await,
        before,
        "claims are kept by default"
    );
    for (claim, d) in &data {
        assert_eq!(
            d.read_marker().as_deref(),
            Some(claim.as_str()),
            "destroy without --delete-data keeps {claim}'s data"
        );
    }
    assert_eq!(
        ctx.count::<k8s_openapi::api::apps::v1::StatefulSet>().await,
        0
    );

    let wipe = ctx.run(&[
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
    wipe.expect_code(0);
    assert_eq!(
        claims(ctx.ns.clone()).await,
        0,
        "--delete-data leaves no claim"
    );
    for (_, d) in &data {
        d.wait_gone(std::time::Duration::from_secs(60)).await;
    }
    assert_eq!(
        ctx.count::<ConfigMap>().await,
        1,
        "only kube-root-ca.crt is left"
    );
    let ev = events(&wipe.stdout);
    let first = |kind: &str| {
        ev.iter()
            .position(|e| e["event"] == "deleted" && e["object"]["kind"] == kind)
    };
    // Reverse rollout order: claims before the volumes they hold.
    if let (Some(c), Some(v)) = (first("PersistentVolumeClaim"), first("PersistentVolume")) {
        assert!(c < v, "claims go before volumes");
    }
    ctx.run(&[
        "destroy",
        "-f",
        spec,
        "--delete-data",
        "--detailed-exitcode",
    ])
    .expect_code(0);
    let api: kube::Api<PersistentVolume> = kube::Api::all(client().await);
    let left: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|pv| {
            pv.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.namespace.as_deref())
                == Some(ctx.ns.as_str())
        })
        .filter(|pv| pv.metadata.deletion_timestamp.is_none())
        .filter(|pv| {
            pv.spec
                .as_ref()
                .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
                != Some("Delete")
        })
        .map(|pv| pv.metadata.name.unwrap_or_default())
        .collect();
    assert!(left.is_empty(), "volumes left: {left:?}");
}

#[tokio::test]
async fn destroy_local_pv_keeps_data_by_default_and_leaves_nothing_with_delete_data() {
    destroy_round_trip("local-pv").await;
}

#[tokio::test]
async fn destroy_postgres_keeps_data_by_default_and_leaves_nothing_with_delete_data() {
    destroy_round_trip("postgres").await;
}

#[tokio::test]
async fn destroy_shared_claim_keeps_data_by_default_and_leaves_nothing_with_delete_data() {
    destroy_round_trip("shared-claim").await;
}

#[tokio::test]
async fn destroy_events_run_in_reverse_rollout_order() {
    let ctx = TestCtx::new("reverse").await;
    let spec = ctx.example("local-pv");
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let wipe = ctx.run(&[
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
    wipe.expect_code(0);
    let kinds: Vec<String> = events(&wipe.stdout)
        .iter()
        .filter(|e| e["event"] == "deleted")
        .map(|e| e["object"]["kind"].as_str().unwrap().to_string())
        .collect();
    let mut order: Vec<String> = kinds.clone();
    order.dedup();
    assert_eq!(
        order,
        vec![
            "StatefulSet",
            "Service",
            "PersistentVolumeClaim",
            "PersistentVolume",
            "StorageClass"
        ],
        "{kinds:?}"
    );
}

/// The inventory names a cluster-scoped object, but the object no longer carries the stack's
/// labels: the entry alone (it may have been edited to name any volume) does not make it the
/// stack's to delete. Without the labels, the volume stays, even with `--prune-data`.
#[tokio::test]
async fn a_cluster_scoped_object_without_the_stacks_labels_is_not_pruned_on_the_inventorys_word() {
    let ctx = TestCtx::new("unlabelledpv").await;
    let volume = "[[volume]]\nname = \"pv-x\"\ncapacity = \"1Gi\"\nhost_path = { path = \"/tmp/kstateful-unlabelled\" }\n";
    let other = "[[claim]]\nname = \"other\"\nsize = \"1Gi\"\n";
    let spec = ctx.spec("u", &format!("{volume}\n{other}"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let pv = ctx.unique("pv-x");
    crate::support::kubectl(
        None,
        &[
            "label",
            "pv",
            &pv,
            "app.kubernetes.io/managed-by-",
            "kubectl-stateful/stack-",
        ],
        None,
    );
    ctx.spec("u", other);
    let run = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "--yes",
        "--timeout",
        "1m",
    ]);
    run.expect_code(0);
    let pvs: kube::Api<k8s_openapi::api::core::v1::PersistentVolume> =
        kube::Api::all(crate::support::client().await);
    let live = pvs.get_opt(&pv).await.unwrap();
    assert!(
        live.is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "the volume was kept:\n{}",
        run.stdout
    );
}

/// Releasing an adopted object removes the stack's labels and nothing else: a value only this
/// tool set (a label of the spec's here; env or resources in a pod template alike) stays, its
/// field handed to the manager `kubectl-stateful-released`. (Released with an empty manifest,
/// every field only this tool owned was removed.)
#[tokio::test]
async fn a_release_keeps_every_value_the_stack_set() {
    let ctx = TestCtx::new("releasevalues").await;
    let pvc = r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}"#;
    kubectl(&ctx.ns, &["create", "-f", "-"], Some(pvc));
    let spec = ctx.spec(
        "r",
        "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\nadopt = true\nlabels = { tier = \"db\" }\n\n[[claim]]\nname = \"stays\"\nsize = \"1Gi\"\n",
    );
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    ctx.spec("r", "[[claim]]\nname = \"stays\"\nsize = \"1Gi\"\n");
    let plan = ctx.run(&["plan", "-f", spec, "--prune"]);
    assert_contains(&plan.stdout, "~> pvc/data will be released from this stack");
    ctx.run(&["apply", "-f", spec, "--prune", "--yes", "--timeout", "1m"])
        .expect_code(0);
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(client().await, &ctx.ns);
    let released = claims.get("data").await.unwrap();
    let labels = released.metadata.labels.clone().unwrap_or_default();
    assert!(
        !labels.contains_key("kubectl-stateful/stack")
            && !labels.contains_key("app.kubernetes.io/managed-by"),
        "the stack's labels are gone: {labels:?}"
    );
    assert_eq!(
        labels.get("tier").map(String::as_str),
        Some("db"),
        "the value the stack set stays"
    );
    let managers: Vec<(String, String)> = released
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("kubectl-stateful-released".into(), "Update".into())),
        "{managers:?}"
    );
    assert!(
        !managers.contains(&("kubectl-stateful".into(), "Apply".into())),
        "{managers:?}"
    );
}

/// The stack's inventory ConfigMap, deleted by hand (or lost).
fn delete_inventory(ns: &str) {
    let names = crate::support::kubectl(Some(ns), &["get", "configmap", "-o", "name"], None);
    let inventory: Vec<&str> = names
        .lines()
        .filter(|n| n.starts_with("configmap/kubectl-stateful-"))
        .collect();
    assert_eq!(inventory.len(), 1, "one inventory: {names}");
    kubectl(ns, &["delete", inventory[0]], None);
}

/// The inventory is checked, not trusted. A claim made with kubectl and adopted, then the
/// inventory deleted by hand and the same spec applied once more: the claim must still count
/// as adopted, so that when it leaves the spec `--prune --prune-data` releases it with its data.
/// (Read as empty, the lost inventory made the next apply record it as created, and the prune
/// deleted it.) An object the stack did create is, once its record is lost, released too:
/// nothing proves it is the stack's.
#[tokio::test]
async fn a_lost_inventory_never_turns_an_adopted_claim_into_one_prune_deletes() {
    let ctx = TestCtx::new("lostinv").await;
    kubectl(
        &ctx.ns,
        &["create", "-f", "-"],
        Some(
            r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}"#,
        ),
    );
    let both = "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\nadopt = true\n\n[[claim]]\nname = \"scratch\"\nsize = \"1Gi\"\n\n[[deployment]]\nname = \"web\"\nimage = \"nginx\"\n";
    let spec = ctx.spec("lost", both);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let data = write_marker(&ctx.ns, "data", "adopted data").await;
    let scratch = write_marker(&ctx.ns, "scratch", "created data").await;

    delete_inventory(&ctx.ns);
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);

    // Everything but the Deployment leaves the spec.
    ctx.spec(
        "lost",
        "[[deployment]]\nname = \"web\"\nimage = \"nginx\"\n",
    );
    let prune = [
        "apply",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "--yes",
        "--timeout",
        "1m",
    ];
    let plan = ctx.run(&["plan", "-f", spec, "--prune", "--prune-data"]);
    plan.expect_code(0);
    assert_contains(&plan.stdout, "pvc/data will be released from this stack");
    assert_contains(&plan.stdout, "pvc/scratch will be released from this stack");
    ctx.run(&prune).expect_code(0);
    for (claim, marker, text) in [
        ("data", &data, "adopted data"),
        ("scratch", &scratch, "created data"),
    ] {
        assert!(
            exists::<PersistentVolumeClaim>(Some(&ctx.ns), claim).await,
            "pvc/{claim} was deleted"
        );
        assert_eq!(marker.read_marker().as_deref(), Some(text), "pvc/{claim}");
    }

    // No apply in between: the labels alone do not make the Deployment the stack's to delete.
    ctx.spec("lost", "[[claim]]\nname = \"other\"\nsize = \"1Gi\"\n");
    delete_inventory(&ctx.ns);
    let plan = ctx.run(&["plan", "-f", spec, "--prune", "--prune-data"]);
    assert_contains(
        &plan.stdout,
        "deployment/web will be released from this stack",
    );
    assert_contains(&plan.stdout, "not recorded in the stack's inventory");
    ctx.run(&prune).expect_code(0);
    assert!(exists::<Deployment>(Some(&ctx.ns), "web").await);
}
