//! Sensitive values: environment values whose name looks like a secret (`*PASSWORD*`, `*TOKEN*`,
//! `*SECRET*`, `*KEY*`) are replaced by `(sensitive value)` in every view of a plan, like
//! terraform's sensitive values. The saved plan file keeps them, since apply sends them.

use super::Plan;
use crate::spec::looks_secret;
use serde_json::Value;

/// What a masked value shows.
pub const MASK: &str = "(sensitive value)";

/// A copy of the plan with sensitive values masked in every manifest and diff side.
pub fn masked(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for step in &mut plan.steps {
        mask_object(&mut step.manifest);
        for side in [&mut step.before, &mut step.after].into_iter().flatten() {
            mask_object(side);
        }
    }
    plan
}

/// The sides of a step's diff with sensitive values masked: copies of only what one step shows,
/// for views that render step by step (a large plan is never copied whole).
pub fn masked_sides(step: &super::Step) -> (Option<Value>, Option<Value>) {
    let mask = |side: &Option<Value>| {
        side.clone().map(|mut v| {
            mask_object(&mut v);
            v
        })
    };
    (mask(&step.before), mask(&step.after))
}

/// Masks the plain `value` of secret-looking variables anywhere in an object: every container
/// and init container, and whatever a `patch` added.
pub fn mask_object(obj: &mut Value) {
    match obj {
        Value::Object(map) => {
            if let Some(Value::Array(env)) = map.get_mut("env") {
                for var in env.iter_mut() {
                    let secret = var["name"].as_str().is_some_and(looks_secret);
                    if secret && let Some(v) = var.get_mut("value").filter(|v| v.is_string()) {
                        *v = Value::from(MASK);
                    }
                }
            }
            map.values_mut().for_each(mask_object);
        }
        Value::Array(items) => items.iter_mut().for_each(mask_object),
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
}
