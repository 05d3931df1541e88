//! Snapshot tests of the views, on a plan built by hand.

use super::*;
use crate::kinds::{Kind, ObjectRef};
use crate::plan::{LiveVersion, Step, WaitPlan};
use serde_json::json;

fn step(kind: Kind, name: &str, action: Action) -> Step {
    Step {
        object: ObjectRef {
            kind,
            namespace: kind.namespaced().then(|| "demo".into()),
            name: name.into(),
        },
        action,
        origin: "statefulset[0]".into(),
        changed_paths: vec![],
        replace_paths: vec![],
        conflicts: vec![],
        reasons: vec![],
        error: None,
        location: None,
        before: None,
        after: None,
        manifest: json!({}),
        live: None,
        wait: WaitPlan::default(),
        adopt: false,
        protect: false,
        resize: None,
        deletes_claims: Vec::new(),
        data_at_risk: Vec::new(),
        allow_replace: false,
        snapshots: Vec::new(),
    }
}

fn sample() -> Plan {
    let mut create = step(Kind::PersistentVolume, "pv-1", Action::Create);
    create.origin = "volume[0]".into();
    create.after = Some(
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
        "spec": {"capacity": {"storage": "1Gi"}}}),
    );
    let mut update = step(Kind::StatefulSet, "db", Action::Update);
    update.before =
        Some(json!({"metadata": {"name": "db"}, "spec": {"replicas": 1, "serviceName": "db"}}));
    update.after =
        Some(json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "serviceName": "db"}}));
    update.changed_paths = vec!["spec.replicas".into()];
    update.live = Some(LiveVersion {
        uid: "u".into(),
        resource_version: "1".into(),
        ..Default::default()
    });
    let mut replace = step(Kind::StatefulSet, "cache", Action::Replace);
    replace.before = Some(
        json!({"spec": {"volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "1Gi"}}}}]}}),
    );
    replace.after = Some(
        json!({"spec": {"volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}]}}),
    );
    replace.replace_paths =
        vec!["spec.volumeClaimTemplates[0].spec.resources.requests.storage".into()];
    replace.reasons =
        vec!["replacing a StatefulSet means deleting it with --cascade=orphan".into()];
    let mut error = step(Kind::PersistentVolumeClaim, "broken", Action::Error);
    error.origin = "claim[0]".into();
    error.error = Some("PersistentVolumeClaim \"broken\" is invalid (Invalid, HTTP 422)".into());
    let noop = step(Kind::Service, "db", Action::NoOp);
    let mut plan = Plan::new(
        "demo-stack".into(),
        "demo".into(),
        "https://127.0.0.1:6443/".into(),
        vec![create, update, replace, error, noop],
    );
    plan.not_in_spec = vec![ObjectRef {
        kind: Kind::PersistentVolumeClaim,
        namespace: Some("demo".into()),
        name: "old-cache".into(),
    }];
    plan
}

#[test]
fn summary_line() {
    assert_eq!(
        sample().summary_line(),
        "Plan: 1 to create, 1 to update, 1 to replace, 1 unchanged, 1 failed to plan."
    );
    let empty = Plan::new("s".into(), "n".into(), String::new(), vec![]);
    assert_eq!(
        empty.summary_line(),
        "Plan: 0 to create, 0 to update, 0 to replace, 0 unchanged."
    );
    assert!(!empty.summary.has_changes());
}

#[test]
fn human_view() {
    insta::assert_snapshot!(human(&sample(), Style { color: false }));
}

#[test]
fn human_view_colors_only_when_asked() {
    let plain = human(&sample(), Style { color: false });
    assert!(!plain.contains('\u{1b}'));
    let colored = human(&sample(), Style { color: true });
    assert!(colored.contains("\u{1b}[32m"), "creates are green");
}

#[test]
fn markdown_view() {
    insta::assert_snapshot!(markdown(&sample()));
}

#[test]
fn json_view_is_stable() {
    let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
    assert_eq!(v["format_version"], 4);
    assert_eq!(
        v["summary"],
        json!({"create": 1, "update": 1, "adopt": 0, "replace": 1, "resize": 0, "delete": 0, "release": 0, "unchanged": 1, "error": 1})
    );
    // The typed operations apply runs: none for the step that failed to plan.
    let ops = v["operations"].as_array().unwrap();
    assert!(
        ops.iter()
            .any(|o| o["op"] == "create" && o["object"]["name"] == "pv-1")
    );
    assert!(
        ops.iter().all(|o| o["object"]["name"] != "broken"),
        "{ops:?}"
    );
    assert_eq!(v["steps"][1]["action"], "update");
    assert_eq!(
        v["steps"][1]["object"],
        json!({"kind": "StatefulSet", "namespace": "demo", "name": "db"})
    );
    assert_eq!(v["steps"][1]["changed_paths"], json!(["spec.replicas"]));
    assert_eq!(v["steps"][2]["action"], "replace");
    assert_eq!(v["steps"][4]["action"], "no-op");
    let back: Plan = serde_json::from_str(&json(&sample())).unwrap();
    assert_eq!(back, sample());
}
