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

/// Masks the plain `value` of secret-looking variables in every container of a workload.
pub fn mask_object(obj: &mut Value) {
    for group in ["containers", "initContainers"] {
        let Some(containers) = obj
            .pointer_mut(&format!("/spec/template/spec/{group}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers {
            let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) else {
                continue;
            };
            for var in env {
                let secret = var["name"].as_str().is_some_and(looks_secret);
                if secret && let Some(v) = var.get_mut("value") {
                    *v = Value::from(MASK);
                }
            }
        }
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
