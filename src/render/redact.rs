//! Secret-looking values never reach an output: the value of every container environment
//! variable whose name looks like a secret (`DB_PASSWORD`, `API_TOKEN`, `AWS_SECRET_ACCESS_KEY`)
//! is replaced by [`HIDDEN`] in every view of a plan — human, Markdown, JSON on stdout, the
//! JSON-lines `plan` event. Only the saved plan file (`plan --out`) keeps them, since apply
//! sends what it holds; a plan printed with hidden values is refused by apply.

use crate::plan::Plan;
use serde_json::Value;

/// What a hidden value is shown as.
pub const HIDDEN: &str = "(hidden by kubectl-stateful: secret-looking value)";

/// True for environment variable names that look like they hold a secret.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "PRIVATE",
        "APIKEY",
        "API_KEY",
        "ACCESS_KEY",
        "AUTH",
    ]
    .iter()
    .any(|w| upper.contains(w))
        || upper.ends_with("_KEY")
        || upper == "KEY"
}

/// Hides secret-looking `env` values anywhere in an object (containers, init containers, and
/// whatever a patch added).
pub fn hide(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(env)) = map.get_mut("env") {
                for var in env.iter_mut() {
                    let secret = var
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(secret_name);
                    if secret && let Some(v) = var.get_mut("value").filter(|v| v.is_string()) {
                        *v = Value::from(HIDDEN);
                    }
                }
            }
            for v in map.values_mut() {
                hide(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide),
        _ => {}
    }
}

/// The plan as it may be shown: secret-looking values hidden.
pub fn shown(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for step in &mut plan.steps {
        hide(&mut step.manifest);
        if let Some(v) = &mut step.before {
            hide(v);
        }
        if let Some(v) = &mut step.after {
            hide(v);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_looking_env_values_are_hidden_and_others_kept() {
        let mut v = json!({"spec": {"template": {"spec": {"containers": [{"env": [
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "aws_secret_access_key", "value": "k"},
            {"name": "SIGNING_KEY", "value": "k"},
            {"name": "PGDATA", "value": "/var/lib"},
            {"name": "TOKEN_FILE", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
        ]}]}}}});
        hide(&mut v);
        let env = &v["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], HIDDEN);
        assert_eq!(env[1]["value"], HIDDEN);
        assert_eq!(env[2]["value"], HIDDEN);
        assert_eq!(env[3]["value"], "/var/lib");
        assert!(env[4].get("value").is_none());
    }
}
