//! Pure plan computation: given the desired object, the live object and the server's dry-run
//! result, decide the action and explain it.

use super::normalize::normalize;
use super::{Action, LiveVersion, Step, WaitPlan};
use crate::desired::DesiredObject;
pub use crate::gateway::ApiFailure;
use crate::gateway::FieldConflict;
use crate::kinds::{Kind, MANAGED_BY, STACK_LABEL};
use crate::spec::quantity::Quantity;
use serde_json::Value;
use std::cmp::Ordering;

/// The outcome of the server-side dry-run apply of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum DryRun {
    /// The object the server would store.
    Ok(Value),
    /// Not asked, with the reason (e.g. its namespace does not exist yet).
    Skipped(String),
    /// The server refused it. `rbac_denied`: the account lacks the verb (asked with a
    /// SelfSubjectAccessReview), as opposed to an admission plugin refusing the change.
    Failed {
        failure: ApiFailure,
        rbac_denied: bool,
    },
}

/// Everything needed to plan one object.
pub struct StepInput<'a> {
    pub desired: &'a DesiredObject,
    pub live: Option<&'a Value>,
    pub dry_run: DryRun,
    pub wait: WaitPlan,
    /// The stack the plan is for (an object labelled for another stack is adopted, not updated).
    pub stack: &'a str,
    /// Fields other managers own that this change would take (from a dry run without force).
    pub conflicts: Vec<FieldConflict>,
}

/// Decides the action for one object.
pub fn compute_step(input: StepInput<'_>) -> Step {
    let d = input.desired;
    let kind = d.id.kind;
    let mut step = Step {
        object: d.id.clone(),
        action: Action::NoOp,
        origin: d.origin.clone(),
        changed_paths: Vec::new(),
        replace_paths: Vec::new(),
        reasons: Vec::new(),
        error: None,
        location: None,
        before: None,
        after: None,
        manifest: d.manifest.clone(),
        live: None,
        wait: input.wait,
        conflicts: input.conflicts,
        adopt: d.adopt,
        protect: d.protect,
        resize: None,
        deletes_claims: Vec::new(),
        data_at_risk: Vec::new(),
        allow_replace: d.allow_replace,
        snapshots: Vec::new(),
    };
    let Some(live) = input.live else {
        match input.dry_run {
            DryRun::Ok(_) => step.action = Action::Create,
            DryRun::Skipped(why) => {
                step.action = Action::Create;
                step.reasons.push(why);
            }
            DryRun::Failed { failure, .. } => {
                step.action = Action::Error;
                step.error = Some(failure.text());
            }
        }
        if step.action == Action::Create {
            step.after = Some(d.manifest.clone());
        }
        return step;
    };
    step.live = Some(LiveVersion {
        uid: str_at(live, "/metadata/uid"),
        resource_version: str_at(live, "/metadata/resourceVersion"),
        fields: super::fingerprint::fields(live),
        generation: super::fingerprint::generation(live),
    });
    step.before = Some(normalize(kind, live, &d.manifest));
    if d.only_if_absent && !is_managed(live) {
        step.reasons.push(format!(
            "{} exists and is not managed by kubectl-stateful; it is left as it is",
            d.id.short()
        ));
        step.after = step.before.clone();
        return step;
    }
    let immutable = immutable_changes(kind, &d.manifest, live);
    let owner = stack_of(live);
    let adopt = owner.as_deref() != Some(input.stack);
    match input.dry_run {
        DryRun::Ok(result) => {
            let after = normalize(kind, &result, &d.manifest);
            step.changed_paths = diff_paths(step.before.as_ref().unwrap_or(&Value::Null), &after);
            step.action = if adopt {
                step.reasons.push(match owner {
                    Some(other) => format!(
                        "{} belongs to stack {other:?}; applying takes it over for stack {:?} (needs --adopt, or adopt = true on it in the spec)",
                        d.id.short(),
                        input.stack
                    ),
                    None => format!(
                        "{} exists but was not created by kubectl-stateful; applying takes it over (needs --adopt, or adopt = true on it in the spec)",
                        d.id.short()
                    ),
                });
                Action::Adopt
            } else if step.changed_paths.is_empty() {
                Action::NoOp
            } else {
                Action::Update
            };
            if !step.conflicts.is_empty() {
                step.reasons.push(format!(
                    "{}; apply overrides them only with --force-conflicts",
                    conflict_text(&step.conflicts)
                ));
            }
            // Nothing changes: the planned object is the live one (`before`); not kept twice.
            step.after = (step.action != Action::NoOp).then_some(after);
            if step.takes_ownership_only() {
                step.reasons.push(
                    "only this stack's labels are added; the spec describes the object as it is"
                        .into(),
                );
            }
        }
        DryRun::Skipped(why) => {
            step.action = Action::Update;
            step.reasons.push(why);
            step.after = Some(d.manifest.clone());
        }
        DryRun::Failed {
            failure: f,
            rbac_denied,
        } => {
            let mut paths = immutable;
            let invalid = f.is_immutable_change();
            // Admission refusing an in-place change (e.g. growing a claim whose class does not
            // allow expansion) is a 403 too, but not an RBAC denial.
            let refused = f.is_forbidden() && !rbac_denied;
            if refused
                && kind == Kind::PersistentVolumeClaim
                && crate::kinds::claim_grows(&d.manifest, live)
            {
                paths.push("spec.resources.requests.storage".into());
            }
            let template_growth = kind == Kind::StatefulSet
                && !paths.is_empty()
                && paths.iter().all(|p| is_template_size(p))
                && templates_only_grow(&d.manifest, live);
            if invalid && template_growth {
                // Only claim templates grow: expand the claims, then re-create the StatefulSet
                // without its pods (see `ops::resize_recipe`).
                step.action = Action::Resize;
                step.replace_paths = paths;
                step.reasons.push(
                    "volumeClaimTemplates are immutable: apply expands every existing claim of the templates, \
                     then deletes the StatefulSet with --cascade=orphan and creates it again with the new templates; \
                     its pods are adopted, not restarted"
                        .into(),
                );
                // What changes: every value the manifest sets (the templates' sizes, and
                // whatever else changes with them, like an image: the re-create sends it all),
                // on top of the object as it is.
                let mut after = step.before.clone().unwrap_or_else(|| d.manifest.clone());
                overlay(&mut after, &normalize(kind, &d.manifest, &d.manifest));
                step.after = Some(after);
            } else if invalid || (refused && !paths.is_empty()) {
                step.action = Action::Replace;
                step.replace_paths = if paths.is_empty() { f.fields() } else { paths };
                step.reasons.push(format!(
                    "{} cannot be changed in place: {}",
                    step.replace_paths.join(", "),
                    f.message
                ));
                step.reasons.push(kind.rules().replace_cost().to_string());
                step.after = Some(d.manifest.clone());
            } else {
                step.action = Action::Error;
                step.error = Some(f.text());
            }
        }
    }
    step
}

/// `spec.volumeClaimTemplates[0].spec.resources.requests.storage`.
fn is_template_size(path: &str) -> bool {
    path.starts_with("spec.volumeClaimTemplates[")
        && path.ends_with("].spec.resources.requests.storage")
}

/// True when the desired StatefulSet has the same claim templates as the live one (same names,
/// in order) and none is smaller.
fn templates_only_grow(desired: &Value, live: &Value) -> bool {
    let names = |v: &Value| -> Vec<String> {
        v.pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| str_at(t, "/metadata/name"))
            .collect()
    };
    if names(desired) != names(live) {
        return false;
    }
    let sizes = |v: &Value| -> Vec<Option<Quantity>> {
        v.pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| {
                t.pointer("/spec/resources/requests/storage")
                    .and_then(Value::as_str)
                    .and_then(|s| Quantity::parse(s).ok())
            })
            .collect()
    };
    sizes(desired)
        .iter()
        .zip(sizes(live))
        .all(|(d, l)| match (d, l) {
            (Some(d), Some(l)) => d.cmp_exact(&l) != Ordering::Less,
            _ => false,
        })
}

/// `spec.replicas owned by "kubectl"` for each conflicting field.
pub fn conflict_text(conflicts: &[FieldConflict]) -> String {
    conflicts
        .iter()
        .map(|c| format!("{} is owned by field manager {:?}", c.field, c.manager))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stack an object is labelled for, when it carries the plugin's labels.
pub fn stack_of(obj: &Value) -> Option<String> {
    if !is_managed(obj) {
        return None;
    }
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(STACK_LABEL))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// True when the object carries the plugin's managed-by label.
pub fn is_managed(obj: &Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY.0))
        .and_then(Value::as_str)
        == Some(MANAGED_BY.1)
}

/// The immutable fields whose desired value differs from the live one (only fields the spec
/// sets are compared, so server defaults never count). A shrinking claim counts too.
pub fn immutable_changes(kind: Kind, desired: &Value, live: &Value) -> Vec<String> {
    let rules = kind.rules();
    let mut out = Vec::new();
    for root in rules.immutable_roots() {
        if let Some(d) = desired.pointer(root) {
            subset_diff(
                d,
                live.pointer(root).unwrap_or(&Value::Null),
                &pointer_to_path(root),
                &mut out,
            );
        }
    }
    out.extend(rules.extra_immutable_changes(desired, live));
    out
}

fn pointer_to_path(p: &str) -> String {
    p.trim_start_matches('/').replace('/', ".")
}

/// The paths of the fields `desired` sets (its `spec` and labels) whose live value differs:
/// what another writer changed of ours. Server defaults and fields we do not set never count.
pub fn changed_from(desired: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for root in ["/spec", "/metadata/labels"] {
        if let Some(d) = desired.pointer(root) {
            subset_diff(
                d,
                live.pointer(root).unwrap_or(&Value::Null),
                &pointer_to_path(root),
                &mut out,
            );
        }
    }
    out
}

/// Paths where `desired` (a partial object) differs from `live`.
fn subset_diff(desired: &Value, live: &Value, path: &str, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                subset_diff(dv, l.get(k).unwrap_or(&Value::Null), &join(path, k), out);
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                subset_diff(dv, lv, &format!("{path}[{i}]"), out);
            }
        }
        (Value::String(a), Value::String(b)) if same_quantity(a, b) => {}
        (a, b) if a == b => {}
        (Value::String(a), Value::Null) if a.is_empty() => {}
        _ => out.push(path.to_string()),
    }
}

/// `shown` with every value `manifest` sets put on top: what the object is after the manifest
/// is written over it, for a step whose server dry run could not say (a claim-template
/// resize). A value the shown object already has in another form (`1024Mi` for `1Gi`), and an
/// empty value it lacks, leave it as it is; see [`first_unshown`], which this satisfies.
pub fn overlay(shown: &mut Value, manifest: &Value) {
    overlay_at(shown, manifest, "", "");
}

fn overlay_at(shown: &mut Value, manifest: &Value, key: &str, parent: &str) {
    match (shown, manifest) {
        (Value::Object(s), Value::Object(m)) => {
            for (k, mv) in m {
                match s.get_mut(k) {
                    Some(sv) => overlay_at(sv, mv, k, key),
                    None if omitted(mv, k) => {}
                    None => {
                        s.insert(k.clone(), mv.clone());
                    }
                }
            }
        }
        (Value::Array(s), Value::Array(m)) if s.len() == m.len() => {
            for (sv, mv) in s.iter_mut().zip(m) {
                overlay_at(sv, mv, key, parent);
            }
        }
        (s, m) if same_value(m, s, key, parent) => {}
        (s, m) => *s = m.clone(),
    }
}

/// The first path (`spec.template.spec.containers[0].image`) where `manifest` sets a value that
/// `shown` does not have: a manifest is shown faithfully when every value it sets is there,
/// equal, at the same place (the server adds its defaults around it). Lists line up element by
/// element: by `name` (or `metadata.name`) when the element has one, else by index when both
/// lists are as long, else with any element of the shown list (the server may merge in elements
/// of other field managers). Allowed differences, which the server makes itself: a quantity in
/// another form (`1024Mi` for `1Gi`, `0.5` for `500m`, the number `1` for `"1"`) and an empty
/// value (`""`, `{}`, `[]`, `null`, `false`, and `0` where the API omits it) that is not there.
///
/// A manifest that takes more than [`COMPARISONS`] comparisons (lists of unnamed elements nested
/// in each other, which only an edited plan has) is not shown, at its root.
pub fn first_unshown(manifest: &Value, shown: &Value) -> Option<String> {
    let budget = std::cell::Cell::new(COMPARISONS);
    unshown_at(manifest, Some(shown), "", "", "", &budget)
}

/// How many values [`first_unshown`] compares at most: far more than a real object has, few
/// enough that lists matched with every element of lists matched with every element… end soon.
const COMPARISONS: usize = 1_000_000;

/// Integer fields the API omits when they are 0 (`omitempty` on a plain int32): a manifest that
/// sets them to 0 reads back without them. Any other 0 must be shown (`runAsUser: 0` is root).
const OMITTED_ZEROS: &[&str] = &[
    "minReadySeconds",
    "hostPort",
    "nodePort",
    "initialDelaySeconds",
    "start",
];

/// A value the API server does not keep: empty, or a zero it omits.
fn omitted(v: &Value, key: &str) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.iter().all(|(k, v)| omitted(v, k)),
        Value::Number(n) => n.as_i64() == Some(0) && OMITTED_ZEROS.contains(&key),
        Value::Bool(true) => false,
    }
}

/// Whether the manifest's scalar `m` is shown as `s`, at `key` inside `parent`: equal, or, for
/// a resource quantity, the same quantity.
fn same_value(m: &Value, s: &Value, key: &str, parent: &str) -> bool {
    if m == s {
        return true;
    }
    let quantity = matches!(parent, "requests" | "limits" | "capacity") || key == "sizeLimit";
    let text = |v: &Value| match v {
        Value::String(t) => Some(t.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    quantity && matches!((text(m), text(s)), (Some(a), Some(b)) if same_quantity(&a, &b))
}

/// The name a list element is matched by.
fn element_name(v: &Value) -> Option<&str> {
    v.get("name")
        .or_else(|| v.pointer("/metadata/name"))
        .and_then(Value::as_str)
}

fn unshown_at(
    manifest: &Value,
    shown: Option<&Value>,
    key: &str,
    parent: &str,
    path: &str,
    budget: &std::cell::Cell<usize>,
) -> Option<String> {
    let at = || {
        Some(if path.is_empty() {
            "(object)".into()
        } else {
            path.to_string()
        })
    };
    if budget.get() == 0 {
        return Some("(object)".into());
    }
    budget.set(budget.get() - 1);
    let Some(shown) = shown.filter(|s| !s.is_null()) else {
        // Named at the first value it sets (`securityContext.runAsUser`).
        return match manifest {
            Value::Object(m) => m
                .iter()
                .find_map(|(k, mv)| unshown_at(mv, None, k, key, &join(path, k), budget)),
            m if omitted(m, key) => None,
            _ => at(),
        };
    };
    match (manifest, shown) {
        (Value::Object(m), Value::Object(s)) => m
            .iter()
            .find_map(|(k, mv)| unshown_at(mv, s.get(k), k, key, &join(path, k), budget)),
        // A list of values (`args`, `accessModes`) is the manifest's own: the same values in
        // the same order.
        (Value::Array(m), Value::Array(s)) if m.iter().any(|v| !v.is_object()) => {
            if m.len() != s.len() {
                return at();
            }
            m.iter().zip(s).enumerate().find_map(|(i, (mv, sv))| {
                unshown_at(mv, Some(sv), key, parent, &format!("{path}[{i}]"), budget)
            })
        }
        // An empty list sets nothing, unless the shown one holds values it would replace.
        (Value::Array(m), Value::Array(s)) if m.is_empty() => {
            if s.iter().all(Value::is_object) {
                None
            } else {
                at()
            }
        }
        (Value::Array(m), Value::Array(s)) => m.iter().enumerate().find_map(|(i, mv)| {
            let here = format!("{path}[{i}]");
            let same_place = (m.len() == s.len()).then(|| &s[i]);
            let candidates: Vec<&Value> = match element_name(mv) {
                Some(name) => s.iter().filter(|e| element_name(e) == Some(name)).collect(),
                None => match same_place {
                    Some(e) => vec![e],
                    None => s.iter().collect(),
                },
            };
            let check = |c: &Value| unshown_at(mv, Some(c), key, parent, &here, budget);
            if candidates.iter().any(|c| check(c).is_none()) {
                return None;
            }
            // Named where the difference is: in the element at the same place, when it is one
            // of the candidates, else in the first.
            match same_place
                .filter(|e| candidates.iter().any(|c| std::ptr::eq(*c, *e)))
                .or(candidates.first().copied())
            {
                Some(c) => check(c),
                None => (!omitted(mv, key)).then_some(here),
            }
        }),
        (m, s) if same_value(m, s, key, parent) => None,
        _ => at(),
    }
}

fn same_quantity(a: &str, b: &str) -> bool {
    a == b
        || matches!((Quantity::parse(a), Quantity::parse(b)), (Ok(x), Ok(y)) if x.cmp_exact(&y) == Ordering::Equal)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Every path where `before` and `after` differ, at the deepest level that still lines up.
pub fn diff_paths(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_diff(before, after, "", &mut out);
    out
}

fn walk_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, av) in x {
                walk_diff(av, y.get(k).unwrap_or(&Value::Null), &join(path, k), out);
            }
            for (k, bv) in y {
                if !x.contains_key(k) {
                    walk_diff(&Value::Null, bv, &join(path, k), out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (av, bv)) in x.iter().zip(y).enumerate() {
                walk_diff(av, bv, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        _ => out.push(if path.is_empty() {
            "(object)".into()
        } else {
            path.to_string()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::ObjectRef;
    use serde_json::json;

    fn desired(kind: Kind, manifest: Value) -> DesiredObject {
        DesiredObject {
            id: ObjectRef {
                kind,
                namespace: Some("ns".into()),
                name: "db".into(),
            },
            manifest,
            origin: "statefulset[0]".into(),
            template_claims: vec![],
            only_if_absent: false,
            adopt: false,
            protect: false,
            allow_replace: false,
        }
    }

    fn sts(replicas: i64, storage: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u1", "resourceVersion": "10",
                         "labels": {"app.kubernetes.io/managed-by": "kubectl-stateful", "kubectl-stateful/stack": "s"}},
            "spec": {"replicas": replicas, "serviceName": "db",
                     "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                                 "resources": {"requests": {"storage": storage}}},
                        "status": {"phase": "Pending"}}]},
            "status": {"replicas": replicas}
        })
    }

    fn desired_sts(replicas: i64, storage: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"replicas": replicas, "serviceName": "db", "volumeClaimTemplates": [
                   {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": storage}}}}]}})
    }

    #[test]
    fn create_when_absent() {
        let d = desired(Kind::StatefulSet, desired_sts(3, "1Gi"));
        let step = compute_step(StepInput {
            desired: &d,
            live: None,
            dry_run: DryRun::Ok(sts(3, "1Gi")),
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Create);
        assert_eq!(step.after.as_ref(), Some(&d.manifest));
        assert!(step.live.is_none());
    }

    #[test]
    fn no_op_when_dry_run_matches_live_despite_server_fields() {
        let d = desired(Kind::StatefulSet, desired_sts(3, "1024Mi"));
        let mut result = sts(3, "1Gi");
        result["metadata"]["resourceVersion"] = json!("11");
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&sts(3, "1Gi")),
            dry_run: DryRun::Ok(result),
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::NoOp, "{:?}", step.changed_paths);
        assert_eq!(
            step.live,
            Some(LiveVersion {
                uid: "u1".into(),
                resource_version: "10".into(),
                ..Default::default()
            })
        );
    }

    #[test]
    fn update_names_changed_paths() {
        let d = desired(Kind::StatefulSet, desired_sts(5, "1Gi"));
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&sts(3, "1Gi")),
            dry_run: DryRun::Ok(sts(5, "1Gi")),
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Update);
        assert_eq!(step.changed_paths, vec!["spec.replicas"]);
    }

    #[test]
    fn replace_names_the_immutable_template_field() {
        let d = desired(Kind::StatefulSet, desired_sts(3, "2Gi"));
        let failure = ApiFailure {
            code: 422,
            reason: "Invalid".into(),
            message: "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', ... are forbidden".into(),
            causes: vec![crate::gateway::Cause {
                reason: "FieldValueForbidden".into(),
                field: "spec".into(),
                message: String::new(),
            }],
            ..Default::default()
        };
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&sts(3, "1Gi")),
            dry_run: DryRun::Failed {
                failure,
                rbac_denied: false,
            },
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Resize, "only a template grows");
        assert_eq!(
            step.replace_paths,
            vec!["spec.volumeClaimTemplates[0].spec.resources.requests.storage"]
        );
        assert!(step.reasons[0].contains("--cascade=orphan"));
        assert_eq!(
            step.after.as_ref().unwrap()["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
                ["storage"],
            "2Gi"
        );

        // Another immutable change next to the growth is a replace, with its cost.
        let mut other = desired_sts(3, "2Gi");
        other["spec"]["serviceName"] = json!("db-headless");
        let d = desired(Kind::StatefulSet, other);
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&sts(3, "1Gi")),
            dry_run: DryRun::Failed {
                failure: ApiFailure {
                    code: 422,
                    reason: "Invalid".into(),
                    message: "spec: Forbidden".into(),
                    causes: vec![crate::gateway::Cause {
                        reason: "FieldValueForbidden".into(),
                        field: "spec".into(),
                        message: String::new(),
                    }],
                    ..Default::default()
                },
                rbac_denied: false,
            },
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Replace);
        assert!(step.replace_paths.contains(&"spec.serviceName".to_string()));
        assert!(step.reasons[1].contains("--cascade=orphan"));
    }

    /// A resize re-creates the StatefulSet from its manifest: what the plan shows is the live
    /// object with every value the manifest sets (an image that changes with the templates too),
    /// without false changes from the forms the server gives them.
    #[test]
    fn a_resize_shows_every_value_the_re_create_sends() {
        let with_image = |mut v: Value, image: &str| {
            v["spec"]["template"] = json!({"spec": {"containers": [{"name": "db", "image": image,
                "resources": {"requests": {"memory": "1024Mi"}}}]}});
            v
        };
        let d = desired(Kind::StatefulSet, with_image(desired_sts(3, "2Gi"), "db:2"));
        let mut live = with_image(sts(3, "1Gi"), "db:1");
        live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] =
            json!("1Gi");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        let failure = ApiFailure {
            code: 422,
            reason: "Invalid".into(),
            message: "spec: Forbidden".into(),
            causes: vec![crate::gateway::Cause {
                reason: "FieldValueForbidden".into(),
                field: "spec".into(),
                message: String::new(),
            }],
            ..Default::default()
        };
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&live),
            dry_run: DryRun::Failed {
                failure,
                rbac_denied: false,
            },
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Resize);
        let after = step.after.as_ref().unwrap();
        assert_eq!(
            diff_paths(step.before.as_ref().unwrap(), after),
            vec![
                "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
                "spec.template.spec.containers[0].image"
            ]
        );
        assert_eq!(first_unshown(&d.manifest, after), None);
    }

    #[test]
    fn a_manifest_is_shown_when_every_value_it_sets_is_there() {
        let shown = json!({"spec": {"replicas": 2, "minReadySeconds": 5,
            "containers": [{"name": "side", "image": "s"},
                           {"name": "app", "image": "a", "args": ["x", "y"], "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}]}});
        let shown_as = |manifest: Value| first_unshown(&manifest, &shown);
        assert_eq!(
            shown_as(
                json!({"spec": {"replicas": 2, "hostPort": 0, "paused": false, "labels": {},
                "containers": [{"name": "app", "image": "a", "args": ["x", "y"], "ports": [{"containerPort": 80}],
                                "resources": {"limits": {"cpu": 0.5, "memory": "1024Mi"}}}]}})
            ),
            None
        );
        for (manifest, path) in [
            (json!({"spec": {"replicas": 3}}), "spec.replicas"),
            (json!({"spec": {"runAsUser": 0}}), "spec.runAsUser"),
            (
                json!({"spec": {"minReadySeconds": 0}}),
                "spec.minReadySeconds",
            ),
            (json!({"spec": {"new": {"deep": "x"}}}), "spec.new.deep"),
            (
                json!({"spec": {"containers": [{"name": "app", "args": ["x"]}]}}),
                "spec.containers[0].args",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "args": ["y", "x"]}]}}),
                "spec.containers[0].args[0]",
            ),
            (
                json!({"spec": {"containers": [{"name": "app"}, {"name": "other"}]}}),
                "spec.containers[1]",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 81}]}]}}),
                "spec.containers[0].ports[0].containerPort",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "1"}}}]}}),
                "spec.containers[0].resources.limits.cpu",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "image": "500m"}]}}),
                "spec.containers[0].image",
            ),
        ] {
            assert_eq!(shown_as(manifest.clone()), Some(path.into()), "{manifest}");
        }
        // Lists of unnamed elements nested in each other, each element compared with every
        // other: refused once the comparisons run out, not after 2^40 of them.
        let (mut manifest, mut shown) = (json!("x"), json!("y"));
        for _ in 0..40 {
            manifest = json!([{ "a": manifest }]);
            shown = json!([{ "a": shown }, { "b": 1 }]);
        }
        assert_eq!(first_unshown(&manifest, &shown), Some("(object)".into()));
    }

    #[test]
    fn other_failures_are_errors_with_the_server_reason() {
        let d = desired(Kind::StatefulSet, desired_sts(3, "1Gi"));
        let failure = ApiFailure {
            code: 403,
            reason: "Forbidden".into(),
            message: "statefulsets.apps \"db\" is forbidden: User \"x\" cannot patch".into(),
            ..Default::default()
        };
        let step = compute_step(StepInput {
            desired: &d,
            live: None,
            dry_run: DryRun::Failed {
                failure,
                rbac_denied: false,
            },
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Error);
        assert!(step.error.unwrap().contains("cannot patch"));
    }

    #[test]
    fn unmanaged_existing_service_is_left_alone() {
        let mut d = desired(Kind::Service, json!({"spec": {"clusterIP": "None"}}));
        d.only_if_absent = true;
        let live =
            json!({"metadata": {"name": "db", "uid": "s"}, "spec": {"clusterIP": "10.0.0.7"}});
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&live),
            dry_run: DryRun::Skipped("x".into()),
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::NoOp);
        assert!(step.reasons[0].contains("not managed by kubectl-stateful"));
    }

    #[test]
    fn claim_growth_refused_by_admission_is_a_replace_naming_the_size() {
        let mut d = desired(
            Kind::PersistentVolumeClaim,
            json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
        );
        d.id.name = "data".into();
        let live = json!({"metadata": {"uid": "c"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        let failure = ApiFailure {
            code: 403,
            reason: "Forbidden".into(),
            message: "persistentvolumeclaims \"data\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize".into(),
            ..Default::default()
        };
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&live),
            dry_run: DryRun::Failed {
                failure,
                rbac_denied: false,
            },
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Replace);
        assert_eq!(step.replace_paths, vec!["spec.resources.requests.storage"]);
        assert!(step.reasons[0].contains("must support resize"));
    }

    #[test]
    fn rbac_denials_are_errors_not_replacements() {
        let mut d = desired(
            Kind::PersistentVolumeClaim,
            json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
        );
        d.id.name = "data".into();
        let live = json!({"metadata": {"uid": "c"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&live),
            dry_run: DryRun::Failed {
                failure: ApiFailure {
                    code: 403,
                    reason: "Forbidden".into(),
                    message: "persistentvolumeclaims \"data\" is forbidden".into(),
                    ..Default::default()
                },
                rbac_denied: true,
            },
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![],
        });
        assert_eq!(step.action, Action::Error);
    }

    #[test]
    fn existing_objects_of_no_stack_or_another_stack_are_adopted() {
        let d = desired(Kind::StatefulSet, desired_sts(3, "1Gi"));
        for labels in [
            json!({}),
            json!({"app.kubernetes.io/managed-by": "kubectl-stateful", "kubectl-stateful/stack": "other"}),
        ] {
            let mut live = sts(3, "1Gi");
            live["metadata"]["labels"] = labels;
            let step = compute_step(StepInput {
                desired: &d,
                live: Some(&live),
                dry_run: DryRun::Ok(sts(3, "1Gi")),
                wait: WaitPlan::default(),
                stack: "s",
                conflicts: vec![],
            });
            assert_eq!(step.action, Action::Adopt);
            assert!(step.reasons[0].contains("--adopt"), "{:?}", step.reasons);
        }
    }

    #[test]
    fn conflicts_are_explained() {
        let d = desired(Kind::StatefulSet, desired_sts(5, "1Gi"));
        let step = compute_step(StepInput {
            desired: &d,
            live: Some(&sts(3, "1Gi")),
            dry_run: DryRun::Ok(sts(5, "1Gi")),
            wait: WaitPlan::default(),
            stack: "s",
            conflicts: vec![FieldConflict {
                manager: "kubectl".into(),
                field: "spec.replicas".into(),
            }],
        });
        assert_eq!(step.action, Action::Update);
        assert_eq!(
            step.reasons,
            vec![
                "spec.replicas is owned by field manager \"kubectl\"; apply overrides them only with --force-conflicts"
            ]
        );
    }

    #[test]
    fn claim_shrink_is_immutable_but_growth_is_not() {
        let live = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}});
        let shrink = json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        let grow = json!({"spec": {"resources": {"requests": {"storage": "3Gi"}}}});
        assert_eq!(
            immutable_changes(Kind::PersistentVolumeClaim, &shrink, &live),
            vec!["spec.resources.requests.storage"]
        );
        assert!(immutable_changes(Kind::PersistentVolumeClaim, &grow, &live).is_empty());
    }

    #[test]
    fn diff_paths_reports_added_and_removed_keys() {
        let a = json!({"spec": {"a": 1, "b": [1, 2]}});
        let b = json!({"spec": {"b": [1, 3], "c": true}});
        assert_eq!(diff_paths(&a, &b), vec!["spec.a", "spec.b[1]", "spec.c"]);
    }
}
