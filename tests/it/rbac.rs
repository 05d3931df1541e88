//! The RBAC rules of examples/rbac.yaml are enough to plan and apply; read-only rights get a
//! clear message that server-side dry-run needs patch rights.

use crate::support::{TestCtx, assert_contains, client, cluster, run_plugin};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use serde_json::json;
use std::path::PathBuf;

/// Creates a ServiceAccount bound to `role` and returns a kubeconfig that authenticates as it.
pub(crate) async fn account_with(ctx: &TestCtx, name: &str, role: ClusterRole) -> PathBuf {
    let c = client().await;
    let role_name = ctx.unique(name);
    let mut role = role;
    role.metadata = serde_json::from_value(json!({ "name": role_name })).unwrap();
    Api::<ClusterRole>::all(c.clone())
        .create(&Default::default(), &role)
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), &ctx.ns);
    let sa = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    sas.create(&Default::default(), &sa).await.unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": role_name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": ctx.ns }]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(c.clone())
        .create(&Default::default(), &binding)
        .await
        .unwrap();
    // The API server's RBAC authorizer sees a new binding through its informer, a moment after
    // the create: wait until it grants the role's first rule, or the plugin's first requests
    // may still be refused.
    if let Some(rule) = role.rules.as_ref().and_then(|r| r.first()) {
        let first = |list: &Option<Vec<String>>| {
            list.as_ref()
                .and_then(|l| l.first())
                .cloned()
                .unwrap_or_default()
        };
        let review: SubjectAccessReview = serde_json::from_value(json!({
            "spec": {
                "user": format!("system:serviceaccount:{}:{name}", ctx.ns),
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", ctx.ns), "system:authenticated"],
                "resourceAttributes": {
                    "verb": rule.verbs.first().cloned().unwrap_or_default(),
                    "group": first(&rule.api_groups),
                    "resource": first(&rule.resources),
                    "namespace": ctx.ns,
                }
            }
        }))
        .unwrap();
        let reviews: Api<SubjectAccessReview> = Api::all(c.clone());
        crate::support::eventually(
            "the new ClusterRoleBinding is in effect",
            std::time::Duration::from_secs(30),
            || {
                let reviews = reviews.clone();
                let review = review.clone();
                async move {
                    reviews
                        .create(&Default::default(), &review)
                        .await
                        .ok()
                        .and_then(|r| r.status)
                        .is_some_and(|s| s.allowed)
                }
            },
        )
        .await;
    }
    let request: TokenRequest =
        serde_json::from_value(json!({ "spec": { "audiences": [], "expirationSeconds": 3600 } }))
            .unwrap();
    let token = sas
        .create_token_request(name, &Default::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .expect("a token");
    // The admin kubeconfig with its user swapped for the token.
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster().kubeconfig).unwrap()).unwrap();
    for user in kc["users"].as_sequence_mut().unwrap() {
        user["user"] = serde_yaml::from_str(&format!("token: {token}")).unwrap();
    }
    let path = ctx.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

/// The documented role less `verbs` on `resource`.
pub(crate) fn example_role_without(resource: &str, verbs: &[&str]) -> ClusterRole {
    let mut role = example_role();
    for rule in role.rules.as_mut().unwrap() {
        if rule
            .resources
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r == resource))
        {
            rule.verbs.retain(|v| !verbs.contains(&v.as_str()));
        }
    }
    role
}

pub(crate) fn example_role() -> ClusterRole {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rbac.yaml"))
        .unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .find(|doc| doc["kind"] == "ClusterRole")
        .map(|doc| serde_yaml::from_value(doc).unwrap())
        .expect("examples/rbac.yaml has a ClusterRole")
}

use serde::Deserialize;

/// A stack that needs every rule of the documented role: a StorageClass and a PersistentVolume
/// (cluster-scoped), a namespace that does not exist yet, a claim, a Service, a StatefulSet whose
/// second replica cannot be scheduled until a second disk exists. The failed rollout is explained
/// with its pods' conditions and Events, which the role lets the plugin read. The StatefulSet's
/// environment comes from Secrets (a `secret` reference and `env_from`), which the role gives no
/// right to read: the plugin never reads them.
const RBAC_STACK: &str = r#"
namespace = "NAMESPACE"

[[storage_class]]
name = "disks"
provisioner = "kubernetes.io/no-provisioner"
binding_mode = "WaitForFirstConsumer"

[[volume]]
name = "disk-1"
capacity = "1Gi"
class = "disks"
node = "node-2"
local = { path = "/mnt/disks/a" }

[[claim]]
name = "scratch"
size = "1Gi"

[[statefulset]]
name = "db"
replicas = 2
image = "registry.k8s.io/pause:3.10"
pod_management_policy = "Parallel"
env = { DB_PASSWORD = { secret = "db-credentials", key = "password" } }
env_from = [{ secret = "db-settings" }]
[[statefulset.volume_claim]]
name = "data"
size = "1Gi"
class = "disks"
mount = "/data"
"#;

const SECOND_DISK: &str = r#"
[[volume]]
name = "disk-2"
capacity = "1Gi"
class = "disks"
node = "node-3"
local = { path = "/mnt/disks/a" }
"#;

#[tokio::test]
async fn the_documented_role_can_plan_and_apply() {
    let ctx = TestCtx::new("rbac").await;
    let role = example_role();
    // The stack's Secret references work without any right on Secrets.
    for rule in role.rules.iter().flatten() {
        let resources = rule.resources.iter().flatten();
        assert!(
            !resources.clone().any(|r| r == "secrets" || r == "*"),
            "the documented role grants {rule:?}"
        );
    }
    let kubeconfig = account_with(&ctx, "deployer", role).await;
    let kc = kubeconfig.to_str().unwrap().to_string();
    let ns = format!("{}-stack", ctx.ns);
    let stack = RBAC_STACK.replace("NAMESPACE", &ns);
    let spec = ctx.spec("stack", &stack);
    let spec = spec.to_str().unwrap().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(["-f".into(), spec.clone(), "--kubeconfig".into(), kc.clone()]);
        a
    };
    let plan = run_plugin(&args(&["plan", "--detailed-exitcode"]), None);
    plan.expect_code(2);
    assert_contains(&plan.stdout, &format!("+ namespace/{ns} will be created"));
    assert_contains(&plan.stdout, "Plan: 6 to create");

    // The second replica cannot be placed: the failure is explained with what only the events
    // and pods rules can read.
    let failed = run_plugin(&args(&["apply", "--yes", "--timeout", "20s"]), None);
    failed.expect_code(1);
    assert_contains(&failed.stdout, &format!("namespace/{ns}: created"));
    assert_contains(
        &failed.stdout,
        &format!("storageclass/{}: created", ctx.unique("disks")),
    );
    assert_contains(&failed.stdout, "pvc/scratch: ready: Bound to");
    assert_contains(&failed.stdout, "statefulset/db: FAILED: timed out after");
    assert_contains(
        &failed.stdout,
        "PodScheduled false: 0/3 nodes are available",
    );
    assert_contains(&failed.stdout, "Warning FailedScheduling");
    assert!(
        !failed.stdout.contains("forbidden"),
        "the role lacks a right:\n{}",
        failed.stdout
    );

    // A second disk: apply again converges, and the plan after it is clean.
    ctx.spec("stack", &format!("{stack}{SECOND_DISK}"));
    let apply = run_plugin(&args(&["apply", "--yes", "--timeout", "2m"]), None);
    apply.expect_code(0);
    assert_contains(&apply.stdout, "statefulset/db: ready: 2/2 replicas ready");
    run_plugin(&args(&["plan", "--detailed-exitcode"]), None).expect_code(0);
}

#[tokio::test]
async fn read_only_account_is_told_that_dry_run_needs_patch() {
    let ctx = TestCtx::new("readonly").await;
    let read_only: ClusterRole = serde_json::from_value(json!({ "rules": [
        { "apiGroups": ["", "apps", "storage.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"] }
    ]}))
    .unwrap();
    let kubeconfig = account_with(&ctx, "reader", read_only).await;
    let spec = ctx.example("postgres");
    let run = run_plugin(
        &[
            "plan".into(),
            "-f".into(),
            spec.to_str().unwrap().into(),
            "-n".into(),
            ctx.ns.clone(),
            "--kubeconfig".into(),
            kubeconfig.to_str().unwrap().into(),
        ],
        None,
    );
    run.expect_code(1);
    assert_contains(&run.stdout, "! statefulset/postgres could not be planned");
    // Who was refused, which verb on which resource, and what the plugin needs instead.
    assert_contains(
        &run.stdout,
        &format!(
            "User \"system:serviceaccount:{}:reader\" cannot create resource \"statefulsets\" in API group \"apps\"",
            ctx.ns
        ),
    );
    assert_contains(
        &run.stdout,
        "validate the create with a dry run, which needs the create verb on statefulsets",
    );
    assert_contains(
        &run.stdout,
        "cannot create resource \"services\" in API group \"\"",
    );
    assert_contains(&run.stdout, "examples/rbac.yaml");
    assert_contains(&run.stdout, "2 failed to plan");
}

/// An account without the read rights planning starts with: the message names the context, the
/// request and the refusal.
#[tokio::test]
async fn account_that_cannot_list_is_told_which_request_was_refused() {
    let ctx = TestCtx::new("nolist").await;
    let nothing: ClusterRole = serde_json::from_value(json!({ "rules": [
        { "apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"] }
    ]}))
    .unwrap();
    let kubeconfig = account_with(&ctx, "nobody", nothing).await;
    let context: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    let context = context["current-context"].as_str().unwrap().to_string();
    let spec = ctx.spec("c", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let run = run_plugin(
        &[
            "plan".into(),
            "-f".into(),
            spec.to_str().unwrap().into(),
            "-n".into(),
            ctx.ns.clone(),
            "--kubeconfig".into(),
            kubeconfig.to_str().unwrap().into(),
        ],
        None,
    );
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        &format!("cannot plan against context {context:?}"),
    );
    let user = format!("User \"system:serviceaccount:{}:nobody\"", ctx.ns);
    let refusals = [
        (
            "listing StorageClasses",
            "cannot list resource \"storageclasses\"",
        ),
        (
            "listing PersistentVolumes",
            "cannot list resource \"persistentvolumes\"",
        ),
    ];
    assert!(
        refusals
            .iter()
            .any(|(what, verb)| run.stderr.contains(what) && run.stderr.contains(verb)),
        "{}",
        run.stderr
    );
    assert_contains(&run.stderr, &user);
    assert_contains(
        &run.stderr,
        "the account needs the RBAC rules in examples/rbac.yaml",
    );
}

/// The inventory is the only record of what the stack created: an apply that cannot read it
/// writes nothing, and one that cannot write it fails (exit 1) after the rollout's report, instead
/// of a warning and exit 0.
#[tokio::test]
async fn an_inventory_that_cannot_be_read_or_recorded_is_an_error() {
    let ctx = TestCtx::new("noinventory").await;
    let spec = ctx.spec("inv", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let apply_as = |kubeconfig: &std::path::Path| {
        run_plugin(
            &[
                "apply",
                "-f",
                spec.to_str().unwrap(),
                "--yes",
                "--timeout",
                "1m",
                "-n",
                &ctx.ns,
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
            ]
            .map(String::from),
            None,
        )
    };
    let without = |verbs: &[&str]| example_role_without("configmaps", verbs);
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client().await, &ctx.ns);

    let unreadable = account_with(&ctx, "noread", without(&["get"])).await;
    let run = apply_as(&unreadable);
    run.expect_code(1);
    assert_contains(&format!("{}{}", run.stdout, run.stderr), "configmaps");
    assert!(
        claims.get_opt("data").await.unwrap().is_none(),
        "nothing written:\n{}\n{}",
        run.stdout,
        run.stderr
    );

    let unwritable = account_with(&ctx, "nowrite", without(&["create", "patch"])).await;
    let run = apply_as(&unwritable);
    run.expect_code(1);
    assert_contains(&run.stdout, "pvc/data: created");
    assert_contains(
        &run.stderr,
        "the rollout finished, but the stack's inventory could not be recorded in configmap/kubectl-stateful-inv",
    );
}

/// Snapshots fail closed: an account that cannot list VolumeSnapshotClasses cannot learn
/// whether a claim could be snapshotted before `--prune-data` deletes it, so nothing is deleted.
#[tokio::test]
async fn a_deletion_whose_snapshot_classes_cannot_be_read_deletes_nothing() {
    let ctx = TestCtx::new("nosnapclasses").await;
    let claim = "[[claim]]\nname = \"gone\"\nsize = \"1Gi\"\nclass = \"fast-immediate\"\n";
    let keep = "[[claim]]\nname = \"keep\"\nsize = \"1Gi\"\n";
    let spec = ctx.spec("snap", &format!("{claim}\n{keep}"));
    ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    let role = example_role_without("volumesnapshotclasses", &["list"]);
    let kubeconfig = account_with(&ctx, "nosnap", role).await;
    ctx.spec("snap", keep);
    let run = run_plugin(
        &[
            "apply",
            "-f",
            spec.to_str().unwrap(),
            "--prune",
            "--prune-data",
            "--yes",
            "--timeout",
            "1m",
            "-n",
            &ctx.ns,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]
        .map(String::from),
        None,
    );
    run.expect_code(1);
    assert_contains(
        &format!("{}{}", run.stdout, run.stderr),
        "cannot list VolumeSnapshotClasses",
    );
    assert_contains(
        &format!("{}{}", run.stdout, run.stderr),
        "whether pvc/gone can be snapshotted before its data is deleted is unknown, so nothing is deleted",
    );
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client().await, &ctx.ns);
    let gone = claims.get("gone").await.unwrap();
    assert!(
        gone.metadata.deletion_timestamp.is_none(),
        "the claim was kept"
    );
}
