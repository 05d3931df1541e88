//! Deployments and DaemonSets on claims, static classes, warnings and sensitive values, on the
//! real control plane.

use crate::support::{TestCtx, assert_contains, client};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use serde_json::Value;

use crate::support::json_lines as events;

fn position(events: &[Value], event: &str, name: &str) -> usize {
    events
        .iter()
        .position(|e| e["event"] == event && e["object"]["name"] == name)
        .unwrap_or_else(|| panic!("no {event} for {name} in {events:#?}"))
}

#[tokio::test]
async fn a_deployment_of_two_and_a_daemonset_over_three_nodes_share_a_claim() {
    let ctx = TestCtx::new("workloads").await;
    let spec = ctx.example("shared-files");
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
    let ev = events(&apply.stdout);
    // Both workloads roll out in the workload phase, after the claim is Bound.
    assert!(position(&ev, "ready", "uploads") < position(&ev, "applied", "web"));
    assert!(position(&ev, "ready", "uploads") < position(&ev, "applied", "log-shipper"));
    let phase = ev
        .iter()
        .find(|e| e["event"] == "phase" && e["name"] == "Workloads")
        .expect("workload phase");
    assert_eq!(phase["objects"], 2);
    let ready = &ev[position(&ev, "ready", "log-shipper")];
    assert_eq!(ready["message"], "3/3 pods ready");
    let ready = &ev[position(&ev, "ready", "web")];
    assert_eq!(ready["message"], "2/2 replicas available");

    let ds: kube::Api<DaemonSet> = kube::Api::namespaced(client().await, &ctx.ns);
    let status = ds.get("log-shipper").await.unwrap().status.unwrap();
    assert_eq!(
        (status.desired_number_scheduled, status.number_ready),
        (3, 3)
    );
    let deploy: kube::Api<Deployment> = kube::Api::namespaced(client().await, &ctx.ns);
    let d = deploy.get("web").await.unwrap();
    let pod = d.spec.unwrap().template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    let token = env.iter().find(|e| e.name == "API_TOKEN").unwrap();
    assert_eq!(
        token
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key,
        "token"
    );
    assert_eq!(
        pod.volumes.unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "uploads"
    );
}

#[tokio::test]
async fn a_first_consumer_claim_is_confirmed_after_its_deployment() {
    let ctx = TestCtx::new("wffcdeploy").await;
    let spec = ctx.spec(
        "w",
        r#"
[[storage_class]]
name = "late"
provisioner = "kubernetes.io/no-provisioner"
binding_mode = "WaitForFirstConsumer"

[[volume]]
name = "disk"
capacity = "1Gi"
class = "late"
node = "node-2"
local = { path = "/mnt/disk" }

[[claim]]
name = "data"
size = "1Gi"
class = "late"

[[deployment]]
name = "app"
image = "app:1"
[[deployment.mount]]
claim = "data"
path = "/data"
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
    let ev = events(&apply.stdout);
    let deferred = position(&ev, "deferred", "data");
    assert_contains(
        ev[deferred]["message"].as_str().unwrap(),
        "waits for first consumer (class binds WaitForFirstConsumer); confirmed after deployment/app's pods are scheduled",
    );
    assert!(deferred < position(&ev, "applied", "app"));
    assert!(position(&ev, "ready", "app") < position(&ev, "ready", "data"));
    assert_contains(
        ev[position(&ev, "ready", "data")]["message"]
            .as_str()
            .unwrap(),
        "Bound to",
    );
}

#[tokio::test]
async fn a_class_nobody_has_is_a_warning_and_the_claim_is_not_waited_for() {
    let ctx = TestCtx::new("nosuchclass").await;
    let spec = ctx.spec(
        "n",
        "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\nclass = \"gold\"\n",
    );
    let spec = spec.to_str().unwrap();
    let plan = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    plan.expect_code(2);
    assert_contains(
        &plan.stdout,
        &format!(
            "Warning: {spec}:4:9: claim[0].class: no StorageClass and no volume has class \"gold\": the claim stays Pending until a volume of class \"gold\" exists"
        ),
    );
    let json = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    json.expect_code(0);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["warnings"][0]["key"], "claim[0].class");
    assert_eq!(
        (
            v["warnings"][0]["line"].as_u64(),
            v["warnings"][0]["column"].as_u64()
        ),
        (Some(4), Some(9))
    );
    let md = ctx.run(&["plan", "-f", spec, "-o", "markdown"]);
    assert_contains(&md.stdout, "**Warning** `");
    assert_contains(&md.stdout, "claim[0].class");

    let apply = ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"]);
    apply.expect_code(0);
    assert_contains(
        &apply.stdout,
        "pvc/data: stays Pending until a volume of class \"gold\" exists",
    );
    // Applied: nothing to change, so 0, not 2, although the warning still shows.
    let again = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    again.expect_code(0);
    assert_contains(
        &again.stdout,
        &format!(
            "Warning: {spec}:4:9: claim[0].class: no StorageClass and no volume has class \"gold\""
        ),
    );
    assert_contains(
        &again.stdout,
        "Plan: 0 to create, 0 to update, 0 to replace",
    );
}

#[tokio::test]
async fn a_readwriteonce_claim_under_a_deployment_of_two_is_a_warning_in_the_plan() {
    let ctx = TestCtx::new("rwowarn").await;
    let spec = ctx.spec(
        "r",
        r#"[[claim]]
name = "data"
size = "1Gi"
access_modes = ["ReadWriteOnce"]

[[deployment]]
name = "web"
image = "web:1"
replicas = 2
[[deployment.mount]]
claim = "data"
path = "/data"
"#,
    );
    let spec = spec.to_str().unwrap();
    let message = "claim \"data\" is ReadWriteOnce but 2 replicas may run on different nodes: pods on other nodes cannot mount it and stay Pending";
    let human = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    // A warning leaves the exit code to the changes: 2, as without it.
    human.expect_code(2);
    assert_contains(
        &human.stdout,
        &format!("Warning: {spec}:12:9: deployment[0].mount[0].claim: {message}"),
    );
    let json = ctx.run(&["plan", "-f", spec, "-o", "json", "--detailed-exitcode"]);
    json.expect_code(2);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0]["key"], "deployment[0].mount[0].claim");
    assert_eq!(warnings[0]["message"], message);
    assert_eq!(
        (warnings[0]["line"].as_u64(), warnings[0]["column"].as_u64()),
        (Some(12), Some(9))
    );
    assert_eq!(v["summary"]["error"], 0);
}

#[tokio::test]
async fn secret_references_are_rendered_and_plain_secrets_masked_everywhere() {
    let ctx = TestCtx::new("secrets").await;
    let spec = ctx.spec(
        "s",
        r#"
[[deployment]]
name = "api"
image = "api:1"
env = { DB_PASSWORD = "hunter2-plain", DB_HOST = "db", API_TOKEN = { secret = "api-secrets", key = "token" } }
env_from = [{ config_map = "api-settings" }]
"#,
    );
    let spec = spec.to_str().unwrap();
    let secret = "hunter2-plain";
    let human = ctx.run(&["plan", "-f", spec]);
    let json = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    let md = ctx.run(&["plan", "-f", spec, "-o", "markdown"]);
    for run in [&human, &json, &md] {
        run.expect_code(0);
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "leaked:\n{}",
            run.stdout
        );
        assert_contains(&run.stdout, "(sensitive value)");
    }
    assert_contains(
        &human.stdout,
        "deployment[0].env.DB_PASSWORD: DB_PASSWORD looks like a secret",
    );
    assert_contains(&human.stdout, "secretKeyRef:");
    assert_contains(&human.stdout, "value: db");
    let planfile = ctx.dir.path().join("plan.json");
    ctx.run(&["plan", "-f", spec, "--out", planfile.to_str().unwrap()])
        .expect_code(0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&planfile).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the saved plan holds the value: only its owner may read it"
    );

    let apply = ctx.run(&[
        "apply",
        planfile.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
        "--timeout",
        "1m",
    ]);
    apply.expect_code(0);
    assert!(!apply.stdout.contains(secret), "leaked in apply events");
    let deploy: kube::Api<Deployment> = kube::Api::namespaced(client().await, &ctx.ns);
    let c = deploy
        .get("api")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .clone();
    let env = c.env.unwrap();
    assert_eq!(
        env.iter()
            .find(|e| e.name == "DB_PASSWORD")
            .unwrap()
            .value
            .as_deref(),
        Some(secret)
    );
    assert_eq!(
        c.env_from.unwrap()[0].config_map_ref.as_ref().unwrap().name,
        "api-settings"
    );
}

#[tokio::test]
async fn a_changed_sensitive_value_shows_as_a_change_in_every_view_without_either_value() {
    let ctx = TestCtx::new("secretchange").await;
    let stack = |password: &str| {
        format!(
            "[[deployment]]\nname = \"api\"\nimage = \"api:1\"\nenv = {{ DB_PASSWORD = \"{password}\", DB_HOST = \"db\" }}\n"
        )
    };
    let (old, new) = ("first-hunter2", "second-hunter3");
    let spec = ctx.spec("c", &stack(old));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    std::fs::write(spec, stack(new)).unwrap();
    let human = ctx.run(&["plan", "-f", spec, "--detailed-exitcode"]);
    let json = ctx.run(&["plan", "-f", spec, "-o", "json", "--detailed-exitcode"]);
    let md = ctx.run(&["plan", "-f", spec, "-o", "markdown", "--detailed-exitcode"]);
    for run in [&human, &json, &md] {
        run.expect_code(2);
        for value in [old, new] {
            assert!(
                !run.stdout.contains(value) && !run.stderr.contains(value),
                "{value} leaked:\n{}",
                run.stdout
            );
        }
        assert_contains(&run.stdout, "(sensitive value, changed)");
    }
    // The diff shows the change: the masked value before, the changed mark after.
    let diff_line = |text: &str, sign: char, value: &str| {
        text.lines().any(|l| {
            l.trim_start().starts_with(sign) && l.trim_end().ends_with(&format!("value: {value}"))
        })
    };
    for text in [&human.stdout, &md.stdout] {
        assert!(diff_line(text, '-', "(sensitive value)"), "{text}");
        assert!(diff_line(text, '+', "(sensitive value, changed)"), "{text}");
    }
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let step = &v["steps"][0];
    assert_eq!(step["action"], "update");
    let value = |side: &str| {
        step[side]["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "DB_PASSWORD")
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(value("before"), "(sensitive value)");
    assert_eq!(value("after"), "(sensitive value, changed)");
}
