//! Adoptions that change nothing but ownership. Taking over an object the spec describes exactly
//! (as `kubectl stateful import` writes it) only adds this stack's two labels; when the spec
//! consents to it (`adopt = true`), `plan --detailed-exitcode` does not count it as a change.

use super::{Action, Plan, Step};
use crate::kinds::{MANAGED_BY, STACK_LABEL};
use serde_json::Value;

impl Step {
    /// True for an adoption the spec consents to whose only difference is this stack's labels.
    pub fn takes_ownership_only(&self) -> bool {
        self.action == Action::Adopt
            && self.adopt
            && self.conflicts.is_empty()
            && labels_only(self.before.as_ref(), self.after.as_ref())
    }
}

impl Plan {
    /// True when applying would change more than the ownership labels of objects the spec
    /// adopts with consent (what `plan --detailed-exitcode` reports as exit code 2).
    pub fn has_content_changes(&self) -> bool {
        self.steps
            .iter()
            .any(|s| !matches!(s.action, Action::NoOp | Action::Error) && !s.takes_ownership_only())
    }
}

/// True when `after` is `before` plus (or with other values of) this stack's labels.
pub fn labels_only(before: Option<&Value>, after: Option<&Value>) -> bool {
    let (Some(before), Some(after)) = (before, after) else {
        return false;
    };
    without_ownership(before) == without_ownership(after)
}

fn without_ownership(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut)
    {
        labels.remove(MANAGED_BY.0);
        labels.remove(STACK_LABEL);
        if labels.is_empty() {
            meta.remove("labels");
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Kind, ObjectRef};
    use serde_json::json;

    fn step(action: Action, adopt: bool, after_labels: Value) -> Step {
        // From JSON, so that fields added to Step later take their defaults.
        serde_json::from_value(json!({
            "object": ObjectRef::new(Kind::PersistentVolumeClaim, "ns", "data"),
            "action": action,
            "origin": "claim[0]",
            "before": {"metadata": {"name": "data"}, "spec": {"x": 1}},
            "after": {"metadata": {"name": "data", "labels": after_labels}, "spec": {"x": 1}},
            "manifest": {},
            "adopt": adopt,
        }))
        .unwrap()
    }

    #[test]
    fn a_consented_adoption_of_an_exact_description_is_no_content_change() {
        let ours = json!({"app.kubernetes.io/managed-by": "kubectl-stateful", "kubectl-stateful/stack": "s"});
        let s = step(Action::Adopt, true, ours.clone());
        assert!(s.takes_ownership_only());
        let plan = Plan::new("s".into(), "ns".into(), String::new(), vec![s]);
        assert!(
            plan.summary.has_changes(),
            "still an adoption in the summary"
        );
        assert!(!plan.has_content_changes());

        assert!(
            !step(Action::Adopt, false, ours).takes_ownership_only(),
            "no consent"
        );
        let more = json!({"kubectl-stateful/stack": "s", "team": "db"});
        assert!(
            !step(Action::Adopt, true, more).takes_ownership_only(),
            "another label"
        );
        let plan = Plan::new(
            "s".into(),
            "ns".into(),
            String::new(),
            vec![step(Action::Update, true, json!({}))],
        );
        assert!(plan.has_content_changes());
    }
}
