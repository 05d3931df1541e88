//! The README's documented machine interfaces against real output: the plan JSON example and the
//! JSON event lines of `apply -o json`.

use crate::support::{TestCtx, assert_contains, json_lines};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The README's plan document example, with its `{ … }` placeholders made empty objects.
fn readme_plan_example() -> Value {
    let text = readme();
    let after = text
        .split("`-o json` prints the plan document")
        .nth(1)
        .expect("the README introduces the plan document");
    let block = after
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a json block follows");
    serde_json::from_str(&block.replace("{ … }", "{}"))
        .unwrap_or_else(|e| panic!("the README's plan example does not parse: {e}\n{block}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(Map::keys)
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

/// Compares one level: every key of the example exists in the real document (or is an empty list
/// in the example, which real output omits), and every real key is in the example.
fn same_keys(what: &str, example: &Value, real: &Value, failures: &mut Vec<String>) {
    for key in keys(example).difference(&keys(real)) {
        if example[key] != serde_json::json!([]) {
            failures.push(format!(
                "{what}: the README shows {key:?}, real output has none"
            ));
        }
    }
    for key in keys(real).difference(&keys(example)) {
        failures.push(format!(
            "{what}: real output has {key:?}, the README does not show it"
        ));
    }
}

/// The README's example is the postgres example scaled from 3 to 5 replicas; made for real here.
#[tokio::test]
async fn readme_plan_json_example_matches_real_output() {
    let ctx = TestCtx::new("readmejson").await;
    let spec = ctx.example("postgres");
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    let text = std::fs::read_to_string(spec).unwrap();
    std::fs::write(spec, text.replace("replicas = 3", "replicas = 5")).unwrap();
    let run = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    run.expect_code(0);
    // The README's namespace is `demo`.
    let real: Value =
        serde_json::from_str(&run.stdout.replace(&format!("\"{}\"", ctx.ns), "\"demo\"")).unwrap();
    let example = readme_plan_example();

    let mut failures = Vec::new();
    same_keys("plan", &example, &real, &mut failures);
    same_keys(
        "summary",
        &example["summary"],
        &real["summary"],
        &mut failures,
    );
    // The steps, in the real order, with their keys and identifying values.
    let ex_steps = example["steps"].as_array().unwrap();
    let steps = real["steps"].as_array().unwrap();
    assert_eq!(ex_steps.len(), steps.len(), "the README shows every step");
    for (i, (ex_step, step)) in ex_steps.iter().zip(steps).enumerate() {
        let what = format!("steps[{i}]");
        same_keys(&what, ex_step, step, &mut failures);
        for part in ["object", "live", "wait"] {
            same_keys(
                &format!("{what}.{part}"),
                &ex_step[part],
                &step[part],
                &mut failures,
            );
        }
        for key in ["action", "origin", "changed_paths", "object"] {
            if ex_step.get(key).is_some() && ex_step[key] != serde_json::json!([]) {
                assert_eq!(ex_step[key], step[key], "{what}.{key}");
            }
        }
        if let Some(g) = ex_step["live"].get("generation") {
            assert_eq!(g, &step["live"]["generation"], "{what}.live.generation");
        }
    }
    assert_eq!(
        ex_steps[1]["wait"]["template_claims"][0],
        steps[1]["wait"]["template_claims"][0]
    );
    // The operations shown are the first ones of the real plan, value for value (ids, steps,
    // rules, dependencies and gates); only the resource version is an elision.
    let ex_ops = example["operations"].as_array().unwrap();
    let ops = real["operations"].as_array().unwrap();
    assert!(ops.len() >= ex_ops.len(), "{ops:#?}");
    for (i, (ex_op, op)) in ex_ops.iter().zip(ops).enumerate() {
        let what = format!("operations[{i}]");
        same_keys(&what, ex_op, op, &mut failures);
        for (key, value) in ex_op.as_object().unwrap() {
            if key == "resource_version" {
                assert!(op[key].is_string(), "{what}.{key}");
            } else {
                assert_eq!(value, &op[key], "{what}.{key}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    assert_eq!(example["format_version"], real["format_version"]);
    assert_eq!(example["stack"], real["stack"]);
    assert_eq!(example["summary"], real["summary"]);

    // The human example of the same plan.
    let human = ctx.run(&["plan", "-f", spec]);
    for line in [
        "~ statefulset/postgres will be updated in place  (statefulset[0])",
        "    -  replicas: 3\n    +  replicas: 5\n",
        "Plan: 0 to create, 1 to update, 0 to replace, 1 unchanged.",
    ] {
        assert!(
            readme().contains(line),
            "the README's human example lacks {line:?}"
        );
        assert_contains(&human.stdout, line);
    }
}

/// Every event type the README lists appears in real runs, with the documented fields.
#[tokio::test]
async fn every_json_event_type_is_emitted_with_its_fields() {
    let ctx = TestCtx::new("jsonevents").await;
    let stack = r#"
[[storage_class]]
name = "late"
provisioner = "kubernetes.io/no-provisioner"
binding_mode = "WaitForFirstConsumer"

[[volume]]
name = "disk"
capacity = "1Gi"
class = "late"
node = "node-1"
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
"#;
    let spec = ctx.spec("events", stack);
    let apply = || {
        ctx.run(&[
            "apply",
            "-f",
            spec.to_str().unwrap(),
            "--yes",
            "-o",
            "json",
            "--timeout",
            "1m",
        ])
    };
    let first = apply();
    first.expect_code(0);
    // Again with a claim that never binds: unchanged objects, a wait that fails.
    ctx.spec(
        "events",
        &format!(
            "{stack}\n[[claim]]\nname = \"orphan\"\nsize = \"1Gi\"\nclass = \"\"\nselector = {{ absent = \"by-design\" }}\n"
        ),
    );
    let second = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "-o",
        "json",
        "--timeout",
        "10s",
    ]);
    second.expect_code(1);
    // And with everything pruned away: deletions.
    // Everything else leaves the spec (an empty spec is an error: destroy removes a stack).
    ctx.spec("events", "[[claim]]\nname = \"stays\"\nsize = \"1Gi\"\n");
    let third = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--prune",
        "-o",
        "json",
        "--timeout",
        "1m",
    ]);
    third.expect_code(0);

    let mut all = json_lines(&first.stdout);
    all.extend(json_lines(&second.stdout));
    all.extend(json_lines(&third.stdout));
    // `{"kind", "namespace", "name"}`, without a namespace for cluster-scoped kinds.
    let object = |e: &Value| {
        let cluster_scoped = ["Namespace", "StorageClass", "PersistentVolume"]
            .contains(&e["object"]["kind"].as_str().unwrap_or_default());
        let want: &[&str] = if cluster_scoped {
            &["kind", "name"]
        } else {
            &["kind", "name", "namespace"]
        };
        assert_eq!(
            keys(&e["object"]),
            want.iter().map(|k| k.to_string()).collect(),
            "{e}"
        );
    };
    let documented = readme();
    let mut seen = BTreeSet::new();
    for e in &all {
        let kind = e["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event: {e}"));
        seen.insert(kind.to_string());
        let fields: Vec<&str> = match kind {
            "plan" => vec!["plan"],
            "phase" => vec!["kind", "name", "objects"],
            "deleted" => vec!["object", "seconds"],
            "error" => vec!["message", "spec_errors"],
            "retrying" => vec!["message"],
            "applied" => vec!["object", "action", "seconds"],
            "unchanged" => vec!["object"],
            "waiting" | "deferred" => vec!["object", "message"],
            "ready" => vec!["object", "message", "seconds"],
            "failed" => vec!["object", "message", "details"],
            "finished" => vec!["ok", "applied", "unchanged", "failed", "seconds"],
            other => panic!("undocumented event {other:?}: {e}"),
        };
        let mut want: BTreeSet<String> = fields.iter().map(|f| f.to_string()).collect();
        want.insert("event".into());
        assert_eq!(keys(e), want, "{e}");
        if fields.contains(&"object") {
            object(e);
        }
    }
    let listed = documented
        .split("events: ")
        .nth(1)
        .and_then(|s| s.split(").").next())
        .expect("the README lists the events");
    let listed: BTreeSet<String> = listed
        .split(", ")
        .map(|s| s.trim_matches('`').to_string())
        .collect();
    // `retrying` (described after the list) appears only when the API server refuses or drops a
    // request, which these applies do not arrange: allowed, not required.
    seen.remove("retrying");
    assert_eq!(seen, listed, "events seen vs. the README's list");

    let plan = all.iter().find(|e| e["event"] == "plan").unwrap();
    assert_eq!(plan["plan"]["format_version"], 4);
    let ready = all.iter().find(|e| e["event"] == "ready").unwrap();
    assert!(ready["seconds"].is_f64(), "{ready}");
    let failed = all.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["object"]["name"], "orphan");
    // A failed rollout: `finished` with ok false, then the `error` document.
    let lines = json_lines(&second.stdout);
    let finished = &lines[lines.len() - 2];
    assert_eq!(
        (finished["event"].as_str(), finished["ok"].as_bool()),
        (Some("finished"), Some(false))
    );
    assert_eq!(lines.last().unwrap()["event"], "error");
}
