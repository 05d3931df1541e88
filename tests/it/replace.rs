//! Every replace-forcing field the README lists, on the real control plane: the server refuses the
//! change, and the plan names the immutable field (volumeClaimTemplates and claim growth have
//! their own tests in rollout.rs).

use crate::support::{TestCtx, read_marker, step_of, write_marker};
use serde_json::Value;

const BASE: &str = r#"
[[storage_class]]
name = "sc"
provisioner = "example.com/nothing"
parameters = { tier = "a" }
reclaim_policy = "Retain"
binding_mode = "Immediate"

# Of class sc, so that no other test's claim without a class can bind it.
[[volume]]
name = "vol"
capacity = "1Gi"
class = "sc"
host_path = { path = "/tmp/kstateful-replace-a" }

[[claim]]
name = "data"
size = "2Gi"
class = "standard"
access_modes = ["ReadWriteOnce"]

[[statefulset]]
name = "db"
image = "registry.k8s.io/pause:3.10"
pod_management_policy = "OrderedReady"
"#;

const SELECTOR_PATCH: &str = r#"
[statefulset.patch.spec.selector.matchLabels]
extra = "x"
[statefulset.patch.spec.template.metadata.labels]
extra = "x"
"#;

#[tokio::test]
async fn each_immutable_field_is_a_replace_naming_it() {
    let ctx = TestCtx::new("replacefields").await;
    let spec = ctx.spec("stack", BASE);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    // The data oracle: planning replaces touches no data.
    write_marker(&ctx.ns, "data", "replacefields data").await;

    let edit = |from: &str, to: &str| {
        assert!(BASE.contains(from), "{from}");
        BASE.replacen(from, to, 1)
    };
    let cases: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "statefulset selector",
            format!("{BASE}{SELECTOR_PATCH}"),
            "StatefulSet",
            vec!["spec.selector.matchLabels.extra"],
        ),
        (
            "statefulset serviceName",
            format!("{BASE}service = \"db-other\"\n"),
            "StatefulSet",
            vec!["spec.serviceName"],
        ),
        (
            "statefulset podManagementPolicy",
            edit(
                "pod_management_policy = \"OrderedReady\"",
                "pod_management_policy = \"Parallel\"",
            ),
            "StatefulSet",
            vec!["spec.podManagementPolicy"],
        ),
        (
            "claim class",
            edit("class = \"standard\"", "class = \"sc\""),
            "PersistentVolumeClaim",
            vec!["spec.storageClassName"],
        ),
        (
            "claim access modes",
            edit(
                "access_modes = [\"ReadWriteOnce\"]",
                "access_modes = [\"ReadWriteMany\"]",
            ),
            "PersistentVolumeClaim",
            vec!["spec.accessModes[0]"],
        ),
        (
            "claim shrink",
            edit("size = \"2Gi\"", "size = \"1Gi\""),
            "PersistentVolumeClaim",
            vec!["spec.resources.requests.storage"],
        ),
        (
            "volume source",
            edit("/tmp/kstateful-replace-a", "/tmp/kstateful-replace-b"),
            "PersistentVolume",
            vec!["spec.hostPath.path"],
        ),
        (
            "storage class provisioner",
            edit("example.com/nothing", "example.com/other"),
            "StorageClass",
            vec!["provisioner"],
        ),
        (
            "storage class parameters",
            edit("tier = \"a\"", "tier = \"b\""),
            "StorageClass",
            vec!["parameters.tier"],
        ),
        (
            "storage class reclaim policy",
            edit("reclaim_policy = \"Retain\"", "reclaim_policy = \"Delete\""),
            "StorageClass",
            vec!["reclaimPolicy"],
        ),
        (
            "storage class binding mode",
            edit(
                "binding_mode = \"Immediate\"",
                "binding_mode = \"WaitForFirstConsumer\"",
            ),
            "StorageClass",
            vec!["volumeBindingMode"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, kind, paths) in &cases {
        ctx.spec("stack", text);
        let plan = ctx.run(&["plan", "-f", spec, "-o", "json", "--detailed-exitcode"]);
        plan.expect_code(2);
        let v: Value = serde_json::from_str(&plan.stdout).unwrap();
        let step = step_of(&v, kind);
        if step["action"] != "replace" || step["replace_paths"] != serde_json::json!(paths) {
            failures.push(format!(
                "{what}: {kind} is {} with replace_paths {} (reasons {})",
                step["action"], step["replace_paths"], step["reasons"]
            ));
            continue;
        }
        let others: Vec<String> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["object"]["kind"] != *kind && s["action"] == "replace")
            .map(|s| s["object"].to_string())
            .collect();
        if !others.is_empty() {
            failures.push(format!("{what}: other objects replaced too: {others:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        read_marker(&ctx.ns, "data").await.as_deref(),
        Some("replacefields data"),
        "plans keep the claim's data"
    );
}

/// Conflicts are checked for every kind of write. A re-created object keeps no other manager's
/// value: a StatefulSet whose image someone set with `kubectl set image`, replaced for an
/// immutable field, is refused without `--force-conflicts` (it was re-created with the spec's
/// image, silently), and nothing is written.
#[tokio::test]
async fn a_replace_that_would_drop_another_managers_value_needs_force_conflicts() {
    let ctx = TestCtx::new("replaceconflict").await;
    let base = "[[statefulset]]\nname = \"db\"\nimage = \"registry.k8s.io/pause:3.10\"\npod_management_policy = \"OrderedReady\"\n";
    let spec = ctx.spec("stack", base);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    crate::support::kubectl(
        Some(&ctx.ns),
        &[
            "set",
            "image",
            "statefulset/db",
            "*=registry.k8s.io/pause:3.9",
        ],
        None,
    );
    let sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(crate::support::client().await, &ctx.ns);
    let uid = sets.get("db").await.unwrap().metadata.uid;
    ctx.spec("stack", &base.replace("OrderedReady", "Parallel"));
    let plan = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let step = step_of(&plan, "StatefulSet");
    assert_eq!(step["action"], "replace");
    let reasons = step["reasons"].to_string();
    assert!(
        reasons.contains("owned by field manager \\\"kubectl-set\\\"")
            && reasons.contains("only with --force-conflicts"),
        "{reasons}"
    );
    let apply = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--replace",
        "statefulset/db",
        "--yes",
        "--timeout",
        "2m",
    ]);
    apply.expect_code(1);
    crate::support::assert_contains(&apply.stderr, "--force-conflicts");
    let live = sets.get("db").await.unwrap();
    assert_eq!(live.metadata.uid, uid, "not re-created");
    let image = |sts: &k8s_openapi::api::apps::v1::StatefulSet| {
        sts.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
    };
    assert_eq!(image(&live).as_deref(), Some("registry.k8s.io/pause:3.9"));
    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--replace",
        "statefulset/db",
        "--force-conflicts",
        "--yes",
        "--timeout",
        "2m",
    ])
    .expect_code(0);
    let live = sets.get("db").await.unwrap();
    assert_ne!(live.metadata.uid, uid, "re-created");
    assert_eq!(image(&live).as_deref(), Some("registry.k8s.io/pause:3.10"));
}
