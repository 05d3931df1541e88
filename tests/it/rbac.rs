//! The RBAC rules of examples/rbac.yaml are enough to plan and apply; read-only rights get a
//! clear message that server-side dry-run needs patch rights.

use crate::support::{TestCtx, assert_contains, client, cluster, run_plugin};
use k8s_openapi::api::authentication::v1::TokenRequest;
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

#[tokio::test]
async fn the_documented_role_can_plan_and_apply() {
    let ctx = TestCtx::new("rbac").await;
    let kubeconfig = account_with(&ctx, "deployer", example_role()).await;
    let kc = kubeconfig.to_str().unwrap().to_string();
    let spec = ctx.example("shared-claim");
    let spec = spec.to_str().unwrap().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend([
            "-f".into(),
            spec.clone(),
            "-n".into(),
            ctx.ns.clone(),
            "--kubeconfig".into(),
            kc.clone(),
        ]);
        a
    };
    run_plugin(&args(&["plan", "--detailed-exitcode"]), None).expect_code(2);
    run_plugin(&args(&["apply", "--yes", "--timeout", "2m"]), None).expect_code(0);
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
    assert_contains(
        &run.stdout,
        "validate the create with a dry run, which needs the create verb on statefulsets",
    );
    assert_contains(&run.stdout, "examples/rbac.yaml");
    assert_contains(&run.stdout, "2 failed to plan");
}
