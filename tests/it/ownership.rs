//! Ownership made visible (the foundations issue): field-manager conflicts, adoption of objects
//! the stack does not own, objects that appear between plan and apply, strict field
//! validation of `patch`, and an API server that stops answering.

use crate::proxy::Proxy;
use crate::support::{Run, TestCtx, assert_contains, client, cluster, run_plugin};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::Value;

fn kubectl(ctx: &TestCtx, args: &[&str]) {
    crate::support::kubectl(Some(&ctx.ns), args, None);
}

/// Runs the plugin in the test's namespace with another kubeconfig (the proxy's).
fn run_with(ctx: &TestCtx, kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend([
        "--kubeconfig".into(),
        kubeconfig.to_str().unwrap().into(),
        "-n".into(),
        ctx.ns.clone(),
    ]);
    run_plugin(&all, None)
}

/// The managers of an object's fields, but the cluster's own controllers.
fn managers(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> std::collections::BTreeSet<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .filter(|m| !m.starts_with("kube-controller-manager"))
        .collect()
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

/// The same race on the write itself: the plan finds no claim, the create is held on its way to
/// the API server until someone else has created the claim, and the real create then fails
/// (server-side apply would have taken the claim over).
#[tokio::test]
async fn a_claim_created_while_our_create_is_in_flight_is_not_taken_over() {
    let ctx = TestCtx::new("racewrite").await;
    let spec = ctx.spec("r", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    // A server-side apply would be held too (and, released, take the claim over).
    let creates = proxy.hold("POST|PATCH", "/persistentvolumeclaims");
    let apply = {
        let (ctx_ns, spec, kc) = (ctx.ns.clone(), spec.clone(), kc.clone());
        std::thread::spawn(move || {
            let args: Vec<String> = [
                "apply",
                "-f",
                spec.to_str().unwrap(),
                "--yes",
                "--kubeconfig",
                kc.to_str().unwrap(),
                "-n",
                &ctx_ns,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            run_plugin(&args, None)
        })
    };
    creates.wait_for_one(std::time::Duration::from_secs(60));
    let theirs = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": {"owner": "someone-else"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    });
    let file = ctx.dir.path().join("theirs.json");
    std::fs::write(&file, theirs.to_string()).unwrap();
    kubectl(&ctx, &["create", "-f", file.to_str().unwrap()]);
    let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client().await, &ctx.ns);
    let before = api.get("data").await.unwrap().metadata;
    creates.release();
    let apply = apply.join().unwrap();
    apply.expect_code(1);
    assert_contains(
        &format!("{}{}", apply.stdout, apply.stderr),
        "it exists now: it was created by someone else after the plan was made, and was not taken over",
    );
    let posts: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|l| l.is_real_write() && l.path.contains("/persistentvolumeclaims"))
        .collect();
    assert_eq!(
        posts.len(),
        1,
        "one real create reached the server: {posts:#?}"
    );
    assert_eq!(posts[0].method, "POST");
    assert_eq!(posts[0].status, 409, "{posts:#?}");
    let after = api.get("data").await.unwrap().metadata;
    assert_eq!(after.labels, before.labels, "labels unchanged");
    // The controller manager may bind the claim meanwhile; no other manager may appear.
    assert_eq!(
        managers(&after),
        managers(&before),
        "field managers unchanged"
    );
    assert!(!managers(&after).contains("kubectl-stateful"));
    // Nor is it recorded as the stack's by the create's failure (it was, read back by name):
    // when the spec no longer has it, prune with --prune-data leaves it alone.
    ctx.spec("r", "[[claim]]\nname = \"other\"\nsize = \"1Gi\"\n");
    let plan = ctx.run(&[
        "plan",
        "-f",
        spec.to_str().unwrap(),
        "--prune",
        "--prune-data",
    ]);
    plan.expect_code(0);
    assert!(!plan.stdout.contains("pvc/data"), "{}", plan.stdout);
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
    // Nothing answers at all, so the credential check is the request that times out (the
    // gateway's own timeout, after it: `a_request_that_stops_getting_answers_…`).
    assert_contains(&run.stderr, "no answer from the API server within 1s");
    assert_contains(&run.stderr, "checking the credentials");
    assert_contains(&run.stderr, "--request-timeout");
    assert!(!run.stderr.contains("abc"), "never print the token");
}

/// The API server answers the credential check, then stops answering some requests: the
/// gateway's own timeout ends them, with the request named. A write that gets no answer may
/// have landed, and the report says so.
#[tokio::test]
async fn a_request_that_stops_getting_answers_times_out_with_the_gateways_message() {
    let ctx = TestCtx::new("stall").await;
    let spec = ctx.spec("q", STS);
    let spec = spec.to_str().unwrap();
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let lists = proxy.hold("GET", "/storageclasses");
    // 5s, not less: the flag bounds every request, the credential check included, which is not
    // retried and is the first request through a fresh proxy (two TLS handshakes); on two busy
    // cores that one can take over a second, and this test is about the held requests only.
    let plan = run_with(&ctx, &kc, &["plan", "-f", spec, "--request-timeout", "5s"]);
    plan.expect_code(1);
    assert_contains(
        &plan.stderr,
        "no answer from the API server within 5s (list storageclasses)",
    );
    assert_contains(&plan.stderr, "raise --request-timeout");
    assert!(!plan.stderr.contains("checking the credentials"));
    assert!(lists.held() >= 1);

    // A create that gets no answer.
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let creates = proxy.hold("POST", "/statefulsets");
    let args = [
        "apply",
        "-f",
        spec,
        "--yes",
        "--request-timeout",
        "5s",
        "--timeout",
        "12s",
    ];
    let apply = run_with(&ctx, &kc, &args);
    apply.expect_code(1);
    let out = format!("{}{}", apply.stdout, apply.stderr);
    // The last attempt may get only what is left before the deadline.
    assert_contains(&out, "no answer from the API server within ");
    assert_contains(&out, "s (create statefulset/db)");
    assert_contains(
        &out,
        "the write may have been applied all the same: run apply again to converge",
    );
    assert!(creates.held() >= 1);
    assert_eq!(
        ctx.count::<StatefulSet>().await,
        0,
        "the proxy forwarded nothing"
    );

    // A server-side apply that gets no answer.
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    ctx.spec("q", &STS.replace("img:1", "img:2"));
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let patches = proxy.hold("PATCH", "/statefulsets/db");
    let apply = run_with(&ctx, &kc, &args);
    apply.expect_code(1);
    let out = format!("{}{}", apply.stdout, apply.stderr);
    // The last attempt may get only what is left before the deadline.
    assert_contains(&out, "no answer from the API server within ");
    assert_contains(&out, "s (apply statefulset/db)");
    assert_contains(
        &out,
        "the write may have been applied all the same: run apply again to converge",
    );
    assert!(patches.held() >= 1);
}

/// Planning has a deadline of its own (the config's `timeout`): requests that get no answer end
/// there, however long `--request-timeout` would let each of them wait.
#[tokio::test]
async fn planning_ends_at_its_deadline_whatever_the_request_timeout() {
    let ctx = TestCtx::new("plandeadline").await;
    let spec = ctx.spec("q", STS);
    let proxy = Proxy::start(&cluster().kubeconfig);
    let kc = proxy.kubeconfig(&cluster().kubeconfig, ctx.dir.path());
    let lists = proxy.hold("GET", "/storageclasses");
    let config = ctx.dir.path().join("config.toml");
    std::fs::write(&config, "timeout = \"2s\"\n").unwrap();
    let args: Vec<String> = [
        "plan",
        "-f",
        spec.to_str().unwrap(),
        "--request-timeout",
        "5m",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "-n",
        &ctx.ns,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let plan = crate::support::run_plugin_env(
        &args,
        &[("KUBECTL_STATEFUL_CONFIG", config.to_str())],
        None,
    );
    plan.expect_code(1);
    assert_contains(
        &plan.stderr,
        "planning did not finish within 2s: the API server answers too slowly, or not at all",
    );
    assert_contains(&plan.stderr, "raise `timeout` in the user config file");
    assert!(lists.held() >= 1);
}
