//! Sensitive values: environment values whose name looks like a secret (`*PASSWORD*`, `*TOKEN*`,
//! `*SECRET*`, `*KEY*`) are replaced by `(sensitive value)` in every view of a plan, like
//! terraform's sensitive values: every manifest a view prints is masked — each step's
//! `manifest`, `before` and `after`, a resize's intermediate `retain_manifest`, and the manifest
//! of every `apply-manifest` operation. The saved plan file keeps them, since apply sends them.

use super::ops::{Op, Operation};
use super::{Plan, Step};
use crate::spec::looks_secret;
use serde_json::Value;

/// What a masked value shows.
pub const MASK: &str = "(sensitive value)";
/// What the after side of a change shows for a masked value that changes: the change is
/// visible, the values are not.
pub const MASK_CHANGED: &str = "(sensitive value, changed)";

/// A copy of the plan with sensitive values masked in every manifest and diff side, and in the
/// manifests of its operations.
pub fn masked(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    plan.steps.iter_mut().for_each(mask_step);
    plan.operations.iter_mut().for_each(mask_operation);
    plan
}

/// Masks one step's manifest, diff sides and recipe manifests in place.
fn mask_step(step: &mut Step) {
    let before = step.before.clone();
    mask_changes(&mut step.manifest, before.as_ref());
    if let Some(after) = &mut step.after {
        mask_changes(after, before.as_ref());
    }
    if let Some(retain) = step
        .resize
        .as_mut()
        .and_then(|r| r.retain_manifest.as_mut())
    {
        mask_changes(retain, before.as_ref());
    }
    if let Some(side) = &mut step.before {
        mask_object(side);
    }
}

/// Masks the manifest an operation carries of its own (a recipe's `apply-manifest`).
fn mask_operation(op: &mut Operation) {
    if let Op::ApplyManifest { manifest, .. } = &mut op.op {
        mask_object(manifest);
    }
}

thread_local! {
    static MASKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a serialization of a plan) with the steps serialized masked, each copied on its own
/// as it is written: a view of a large plan is never a second copy of it. Saved plans are
/// serialized outside, values included.
pub fn masking_views<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            MASKING.with(|m| m.set(self.0));
        }
    }
    let _reset = Reset(MASKING.with(|m| m.replace(true)));
    f()
}

/// `Plan::steps` as serde writes it: as they are, or masked inside [`masking_views`].
pub(super) fn serialize_steps<S: serde::Serializer>(
    steps: &[Step],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    if !MASKING.with(std::cell::Cell::get) {
        return serde::Serialize::serialize(steps, serializer);
    }
    let mut seq = serializer.serialize_seq(Some(steps.len()))?;
    for step in steps {
        let mut step = step.clone();
        mask_step(&mut step);
        seq.serialize_element(&step)?;
    }
    seq.end()
}

/// `Plan::operations` as serde writes them: as they are, or with the manifests of
/// `apply-manifest` operations masked inside [`masking_views`] (only those are copied).
pub(super) fn serialize_operations<S: serde::Serializer>(
    operations: &[Operation],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    if !MASKING.with(std::cell::Cell::get) {
        return serde::Serialize::serialize(operations, serializer);
    }
    let mut seq = serializer.serialize_seq(Some(operations.len()))?;
    for op in operations {
        if matches!(op.op, Op::ApplyManifest { .. }) {
            let mut op = op.clone();
            mask_operation(&mut op);
            seq.serialize_element(&op)?;
        } else {
            seq.serialize_element(op)?;
        }
    }
    seq.end()
}

/// The sides of a step's diff with sensitive values masked: copies of only what one step shows,
/// for views that render step by step (a large plan is never copied whole). A value that
/// differs between the sides shows [`MASK_CHANGED`] on the after side.
pub fn masked_sides(step: &super::Step) -> (Option<Value>, Option<Value>) {
    let after = step.after.clone().map(|mut v| {
        mask_changes(&mut v, step.before.as_ref());
        v
    });
    let before = step.before.clone().map(|mut v| {
        mask_object(&mut v);
        v
    });
    (before, after)
}

/// Masks the plain `value` of secret-looking variables anywhere in an object: every container
/// and init container, and whatever a `patch` added.
pub fn mask_object(obj: &mut Value) {
    mask_changes(obj, None);
}

/// [`mask_object`], where a value that differs from the one of the same variable at the same
/// place in `before` (the other side of a diff) shows [`MASK_CHANGED`]. A variable `before`
/// lacks is an addition, which the diff shows as such: [`MASK`].
fn mask_changes(obj: &mut Value, before: Option<&Value>) {
    match obj {
        Value::Object(map) => {
            if let Some(Value::Array(env)) = map.get_mut("env") {
                let old_env = before.and_then(|b| b.get("env")).and_then(Value::as_array);
                for var in env.iter_mut() {
                    let Some(name) = var["name"].as_str().filter(|n| looks_secret(n)) else {
                        continue;
                    };
                    let old = old_env
                        .and_then(|e| e.iter().find(|o| o["name"].as_str() == Some(name)))
                        .and_then(|o| o.get("value"));
                    if let Some(v) = var.get_mut("value").filter(|v| v.is_string()) {
                        let changed = old.is_some_and(|o| o != v);
                        *v = Value::from(if changed { MASK_CHANGED } else { MASK });
                    }
                }
            }
            for (key, value) in map.iter_mut() {
                if key == "env" && value.is_array() {
                    // Its variables are masked above; values nested deeper are not variables.
                    continue;
                }
                mask_changes(value, before.and_then(|b| b.get(key)));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                mask_changes(item, before.and_then(|b| b.get(i)));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_secret_looking_plain_values_only() {
        let mut obj = json!({"spec": {"template": {"spec": {"containers": [{"env": [
            {"name": "POSTGRES_PASSWORD", "value": "hunter2"},
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}},
            {"name": "MODE", "value": "fast"}
        ]}]}}}});
        mask_object(&mut obj);
        let env = &obj["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], MASK);
        assert_eq!(env[1]["valueFrom"]["secretKeyRef"]["key"], "t");
        assert_eq!(env[2]["value"], "fast");
    }

    #[test]
    fn a_changed_sensitive_value_shows_as_changed_without_either_value() {
        let obj = |password: &str, token: &str| {
            json!({"spec": {"template": {"spec": {"containers": [{"env": [
                {"name": "DB_PASSWORD", "value": password},
                {"name": "API_TOKEN", "value": token},
            ]}]}}}})
        };
        let before = obj("first-secret", "same-token");
        let mut after = obj("second-secret", "same-token");
        mask_changes(&mut after, Some(&before));
        let env = &after["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], MASK_CHANGED);
        assert_eq!(env[1]["value"], MASK);
        // Without a before side (a create), nothing is a change.
        let mut created = obj("second-secret", "same-token");
        mask_changes(&mut created, None);
        assert_eq!(
            created["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            MASK
        );
    }

    /// The JSON view masks while it writes: the same document as serializing a masked copy,
    /// while the saved plan (serialized outside) keeps the values.
    #[test]
    fn views_are_masked_while_written_and_saved_plans_are_not() {
        let env = |password: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [
                {"name": "DB_PASSWORD", "value": password}, {"name": "MODE", "value": "x"}
            ]}]}}}})
        };
        let mut step = crate::plan::ops::tests::step(
            crate::kinds::Kind::Deployment,
            "app",
            crate::plan::Action::Update,
        );
        step.before = Some(env("old-secret"));
        step.after = Some(env("new-secret"));
        step.manifest = env("new-secret");
        let plan = Plan::new("s".into(), "ns".into(), "https://x".into(), vec![step]);

        let view = crate::render::json(&plan);
        let copy = serde_json::to_string_pretty(&masked(&plan)).unwrap() + "\n";
        assert_eq!(view, copy);
        assert!(
            !view.contains("old-secret") && !view.contains("new-secret"),
            "{view}"
        );
        assert!(view.contains(MASK_CHANGED), "{view}");

        let saved = crate::render::plan_file(&plan);
        assert!(saved.contains("old-secret") && saved.contains("new-secret"));
        assert!(!saved.contains(MASK));
    }

    /// A resize recipe carries manifests of its own (the StatefulSet with `whenDeleted:
    /// Retain`, in the step's `resize` and in an `apply-manifest` operation): every view masks
    /// them, and only the saved plan keeps the value.
    #[test]
    fn recipe_manifests_are_masked_in_every_view() {
        let sts = |password: &str| {
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"},
            "template": {"spec": {"containers": [{"name": "db", "env": [
                {"name": "DB_PASSWORD", "value": password}, {"name": "MODE", "value": "x"}
            ]}]}}}})
        };
        let mut step = crate::plan::ops::tests::step(
            crate::kinds::Kind::StatefulSet,
            "db",
            crate::plan::Action::Resize,
        );
        step.before = Some(sts("kst-recipe-secret"));
        step.after = Some(sts("kst-recipe-secret"));
        step.manifest = sts("kst-recipe-secret");
        step.resize = Some(crate::plan::ResizePlan {
            claims: vec![crate::plan::ClaimResize {
                name: "data-db-0".into(),
                from: "1Gi".into(),
                to: "2Gi".into(),
            }],
            retain_first: true,
            retain_manifest: Some(sts("kst-recipe-secret")),
            pods: Vec::new(),
            restart_pods: false,
        });
        let plan = Plan::new("s".into(), "ns".into(), "https://x".into(), vec![step]);
        assert!(
            plan.operations
                .iter()
                .any(|o| matches!(&o.op, Op::ApplyManifest { manifest, .. }
                if manifest.to_string().contains("kst-recipe-secret"))),
            "the recipe writes the StatefulSet with its value"
        );
        let style = crate::render::Style { color: false };
        for (view, text) in [
            ("json", crate::render::json(&plan)),
            ("human", crate::render::human(&plan, style)),
            ("markdown", crate::render::markdown(&plan)),
            ("dot", crate::render::dot(&plan)),
            (
                "masked copy",
                serde_json::to_string(&masked(&plan)).unwrap(),
            ),
        ] {
            assert!(!text.contains("kst-recipe-secret"), "{view}:\n{text}");
        }
        let view = crate::render::json(&plan);
        let doc: Value = serde_json::from_str(&view).unwrap();
        assert_eq!(
            doc["steps"][0]["resize"]["retain_manifest"]["spec"]["template"]["spec"]["containers"]
                [0]["env"][0]["value"],
            MASK
        );
        let op = doc["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["op"] == "apply-manifest" && o["object"]["kind"] == "StatefulSet")
            .expect("the retention change is an apply-manifest");
        assert_eq!(
            op["manifest"]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            MASK
        );
        assert_eq!(
            op["manifest"]["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"],
            "x"
        );
        // The saved plan keeps the value apply sends; a printed one cannot be applied.
        let saved = crate::render::plan_file(&plan);
        assert!(saved.contains("kst-recipe-secret"));
        assert!(crate::plan::saved::parse("saved.json", saved.as_bytes()).is_ok());
        assert!(crate::plan::saved::parse("printed.json", view.as_bytes()).is_err());
    }
}
