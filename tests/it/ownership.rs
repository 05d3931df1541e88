//! Ownership made visible (the foundations issue): field-manager conflicts, adoption of objects
//! the stack does not own, objects that appear between plan and apply, strict field
//! validation of `patch`, and an API server that stops answering.

use crate::support::{TestCtx, assert_contains, client, run_plugin};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::Value;

fn kubectl(ctx: &TestCtx, args: &[&str]) {
    crate::support::kubectl(Some(&ctx.ns), args, None);
}

const STS: &str = "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = 1\n";

#[tokio::test]
async fn kubectl_scale_is_a_conflict_named_in_the_plan_and_refused_without_force() {
    let ctx = TestCtx::new("scaleconflict").await;
    let spec = ctx.spec("s", STS);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    kubectl(&ctx, &["scale", "statefulset/db", "--replicas=2"]);

    let plan = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    plan.expect_code(0);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    let sts = crate::support::step_of(&v, "StatefulSet");
    assert_eq!(sts["action"], "update", "{}", plan.stdout);
    assert_eq!(
        sts["conflicts"],
        serde_json::json!([{"manager": "kubectl", "field": "spec.replicas"}]),
        "{}",
        plan.stdout
    );
    let human = ctx.run(&["plan", "-f", spec]);
    assert_contains(
        &human.stdout,
        "spec.replicas is owned by field manager \"kubectl\"; apply overrides them only with --force-conflicts",
    );

    let refused = ctx.run(&["apply", "-f", spec, "--yes"]);
    refused.expect_code(1);
    assert_contains(
        &refused.stderr,
        "the plan sets fields other field managers own",
    );
    assert_contains(&refused.stderr, "--force-conflicts");
    let api: kube::Api<StatefulSet> = kube::Api::namespaced(client().await, &ctx.ns);
    let replicas = |s: StatefulSet| s.spec.unwrap().replicas;
    assert_eq!(
        replicas(api.get("db").await.unwrap()),
        Some(2),
        "refused: nothing written"
    );

    ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "--force-conflicts",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    assert_eq!(replicas(api.get("db").await.unwrap()), Some(1));
    // Forced once, owned again: the next plan is clean and conflict-free.
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);
}

#[tokio::test]
async fn an_existing_unlabelled_object_is_adopted_only_with_consent() {
    let ctx = TestCtx::new("adopt").await;
    let claim = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": {"team": "db"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    });
    let file = ctx.dir.path().join("claim.json");
    std::fs::write(&file, claim.to_string()).unwrap();
    kubectl(&ctx, &["create", "-f", file.to_str().unwrap()]);

    let spec = ctx.spec("a", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let spec = spec.to_str().unwrap();
    let plan = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_contains(&plan.stdout, "<~ pvc/data will be adopted into this stack");
    assert_contains(&plan.stdout, "was not created by kubectl-stateful");
    assert_contains(&plan.stdout, "1 to adopt");

    let refused = ctx.run(&["apply", "-f", spec, "--yes"]);
    refused.expect_code(1);
    assert_contains(
        &refused.stderr,
        "takes over objects this stack does not own: pvc/data",
    );
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let labels = |c: PersistentVolumeClaim| c.metadata.labels.unwrap_or_default();
    assert!(!labels(api.get("data").await.unwrap()).contains_key("kubectl-stateful/stack"));

    ctx.run(&["apply", "-f", spec, "--yes", "--adopt", "--timeout", "1m"])
        .expect_code(0);
    let now = labels(api.get("data").await.unwrap());
    assert_eq!(
        now.get("kubectl-stateful/stack").map(String::as_str),
        Some("a")
    );
    assert_eq!(
        now.get("team").map(String::as_str),
        Some("db"),
        "others' labels stay"
    );
    ctx.run(&["plan", "-f", spec, "--detailed-exitcode"])
        .expect_code(0);

    // `adopt = true` in the spec is consent too.
    let ctx2 = TestCtx::new("adoptspec").await;
    let file = ctx2.dir.path().join("claim.json");
    std::fs::write(&file, claim.to_string()).unwrap();
    kubectl(&ctx2, &["create", "-f", file.to_str().unwrap()]);
    let spec = ctx2.spec(
        "b",
        "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\nadopt = true\n",
    );
    ctx2.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
}

#[tokio::test]
async fn an_object_created_by_someone_else_after_the_plan_is_not_taken_over() {
    let ctx = TestCtx::new("racecreate").await;
    let spec = ctx.spec("r", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let planfile = ctx.dir.path().join("plan.json");
    ctx.run(&[
        "plan",
        "-f",
        spec.to_str().unwrap(),
        "--out",
        planfile.to_str().unwrap(),
    ])
    .expect_code(0);
    let theirs = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": {"owner": "someone-else"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    });
    let file = ctx.dir.path().join("theirs.json");
    std::fs::write(&file, theirs.to_string()).unwrap();
    kubectl(&ctx, &["create", "-f", file.to_str().unwrap()]);

    let apply = ctx.run(&["apply", planfile.to_str().unwrap(), "--yes"]);
    apply.expect_code(1);
    assert_contains(
        &apply.stderr,
        "pvc/data was created since the plan was made",
    );
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let labels = api.get("data").await.unwrap().metadata.labels.unwrap();
    assert_eq!(
        labels.get("owner").map(String::as_str),
        Some("someone-else")
    );
    assert!(
        !labels.contains_key("kubectl-stateful/stack"),
        "not taken over"
    );
}

#[tokio::test]
async fn a_misspelled_field_in_patch_is_refused_at_its_line() {
    let ctx = TestCtx::new("strictpatch").await;
    let text = format!(
        "{STS}\n[statefulset.patch.spec.template.spec]\nterminationGracePeriodSecond = 60\n"
    );
    let spec = ctx.spec("p", &text);
    let plan = ctx.run(&["plan", "-f", spec.to_str().unwrap()]);
    plan.expect_code(1);
    assert_contains(&plan.stdout, "! statefulset/db could not be planned");
    assert_contains(
        &plan.stdout,
        "unknown field \"spec.template.spec.terminationGracePeriodSecond\"",
    );
    assert_contains(
        &plan.stdout,
        &format!(
            "at {}:7:1: statefulset[0].patch.spec.template.spec.terminationGracePeriodSecond",
            spec.display()
        ),
    );
    // Nothing was written.
    let apply = ctx.run(&["apply", "-f", spec.to_str().unwrap(), "--yes"]);
    apply.expect_code(1);
    assert_eq!(ctx.count::<StatefulSet>().await, 0);

    // The same typo on an existing StatefulSet goes through the server-side apply path.
    ctx.run(&[
        "apply",
        "-f",
        ctx.spec("p", STS).to_str().unwrap(),
        "--yes",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    let spec = ctx.spec("p", &text);
    let plan = ctx.run(&["plan", "-f", spec.to_str().unwrap()]);
    plan.expect_code(1);
    assert_contains(&plan.stdout, "field not declared in schema");
    assert_contains(
        &plan.stdout,
        "statefulset[0].patch.spec.template.spec.terminationGracePeriodSecond",
    );
}

#[tokio::test]
async fn an_api_server_that_stops_answering_times_out_with_a_clear_message() {
    let ctx = TestCtx::new("silent").await;
    // A listener on loopback that accepts connections and never answers (not even TLS).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(64) {
            held.push(conn);
        }
    });
    let kubeconfig = ctx.dir.path().join("silent.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: silent\nclusters:\n- name: silent\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: silent\n  context: {{cluster: silent, user: u}}\nusers:\n- name: u\n  user: {{token: abc}}\n"
        ),
    )
    .unwrap();
    let spec = ctx.spec("q", STS);
    let run = run_plugin(
        &[
            "plan".into(),
            "-f".into(),
            spec.to_str().unwrap().into(),
            "--kubeconfig".into(),
            kubeconfig.to_str().unwrap().into(),
            "--request-timeout".into(),
            "1s".into(),
        ],
        None,
    );
    run.expect_code(1);
    assert_contains(&run.stderr, "no answer from the API server within 1s");
    assert_contains(&run.stderr, "--request-timeout");
    assert!(!run.stderr.contains("abc"), "never print the token");
}
