//! The patch an imported object needs: whatever the live object holds that the spec's keys do
//! not generate, without the server's defaults. Pure.
//!
//! Three views of the object are compared: `live` (normalized like the planner does), the
//! `generated` manifest of the keys, and `defaulted`, the server's answer to a dry-run create of
//! `generated` — the keys' values plus every default the server fills in. A live field that
//! `defaulted` holds with the same value needs no patch. When the object carries kubectl's
//! last-applied configuration (`intent`), a field the user never set is left out too.
//!
//! Lists are patched whole (a JSON merge patch replaces lists), their items cleaned of defaults
//! by their counterpart items (matched by `name`, `mountPath` or `containerPort`).
//!
//! Leaving a field out never changes the object: server-side apply removes only fields this
//! plugin owned before, so an imported spec changes nothing that it does not mention.

use crate::spec::quantity::Quantity;
use serde_json::{Map, Value};

/// Paths never patched: identity, bookkeeping and what the server or controllers write.
const IGNORED: &[&str] = &[
    "apiVersion",
    "kind",
    "status",
    "metadata.name",
    "metadata.generateName",
    "metadata.namespace",
    "metadata.ownerReferences",
];

/// What the live object holds beyond the keys.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Residue {
    /// The patch table's content (a JSON object; empty when none is needed).
    pub patch: Map<String, Value>,
    /// Fields the keys generate that the live object does not have (the spec cannot leave them
    /// out; a plan would show them).
    pub unexpressed: Vec<String>,
}

/// Lists that server-side apply treats as one value (`x-kubernetes-list-type: atomic`) among
/// the fields of the kinds the spec describes. Sending one that differs in any way from the
/// stored value — even by a default or a template's `status` — conflicts with its owner, so
/// such a list is patched exactly as stored.
const ATOMIC_LISTS: &[&str] = &[
    "volumeClaimTemplates",
    "tolerations",
    "readinessGates",
    "accessModes",
    "mountOptions",
    "nodeSelectorTerms",
    "allowedTopologies",
];

/// What the user gave: unknown (no last-applied configuration), or known and possibly absent.
type Intent<'a> = Option<Option<&'a Value>>;

fn child<'a>(intent: Intent<'a>, key: &str) -> Intent<'a> {
    intent.map(|u| u.and_then(|u| u.get(key)))
}

/// Computes the residue of `live` against the keys' `generated` manifest and its `defaulted`
/// form.
/// `stored` is the live object as the server returned it (lists of [`ATOMIC_LISTS`] are taken
/// from it verbatim), `live` the same normalized.
pub fn residue(
    stored: &Value,
    live: &Value,
    defaulted: &Value,
    generated: &Value,
    intent: Option<&Value>,
) -> Residue {
    let mut out = Residue::default();
    let live = without_bookkeeping(live);
    let empty = Map::new();
    let mut patch = Map::new();
    walk_into(
        &Ctx { stored },
        live.as_object().unwrap_or(&empty),
        defaulted.as_object(),
        generated.as_object(),
        intent.map(Some),
        "",
        "",
        &mut patch,
        &mut out,
    );
    out.patch = patch;
    out
}

struct Ctx<'a> {
    stored: &'a Value,
}

/// `live` without this plugin's labels and the annotations the server keeps for itself.
fn without_bookkeeping(live: &Value) -> Value {
    let mut live = live.clone();
    if let Some(meta) = live.get_mut("metadata").and_then(Value::as_object_mut) {
        for (field, keys) in [
            (
                "labels",
                &[crate::kinds::MANAGED_BY.0, crate::kinds::STACK_LABEL][..],
            ),
            (
                "annotations",
                &[
                    "deprecated.daemonset.template.generation",
                    "kubectl.kubernetes.io/last-applied-configuration",
                ][..],
            ),
        ] {
            if let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) {
                for k in keys {
                    map.remove(*k);
                }
                if map.is_empty() {
                    meta.remove(field);
                }
            }
        }
    }
    live
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn ignored(path: &str) -> bool {
    IGNORED.contains(&path)
}

#[allow(clippy::too_many_arguments)]
fn walk_into(
    ctx: &Ctx<'_>,
    live: &Map<String, Value>,
    defaulted: Option<&Map<String, Value>>,
    generated: Option<&Map<String, Value>>,
    intent: Intent<'_>,
    path: &str,
    pointer: &str,
    patch: &mut Map<String, Value>,
    out: &mut Residue,
) {
    for (k, lv) in live {
        let p = join(path, k);
        let ptr = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
        if ignored(&p) {
            continue;
        }
        let dv = defaulted.and_then(|d| d.get(k));
        let gv = generated.and_then(|g| g.get(k));
        let uv = child(intent, k);
        if uv == Some(None) && gv.is_none() {
            // Never given by the user: a default or a controller's field.
            continue;
        }
        if lv.is_array() && ATOMIC_LISTS.contains(&k.as_str()) {
            let stored = ctx.stored.pointer(&ptr).unwrap_or(lv);
            if gv != Some(stored) {
                patch.insert(k.clone(), stored.clone());
            }
            continue;
        }
        match (lv, dv) {
            (Value::Object(lo), Some(Value::Object(dobj))) => {
                let mut sub = Map::new();
                walk_into(
                    ctx,
                    lo,
                    Some(dobj),
                    gv.and_then(Value::as_object),
                    uv,
                    &p,
                    &ptr,
                    &mut sub,
                    out,
                );
                if !sub.is_empty() {
                    patch.insert(k.clone(), Value::Object(sub));
                }
            }
            (_, Some(dv)) if same(lv, dv) => {}
            _ => {
                if let Some(v) = prune(lv, dv, gv, uv) {
                    patch.insert(k.clone(), v);
                }
            }
        }
    }
    if let Some(d) = defaulted {
        for (k, dv) in d {
            let p = join(path, k);
            if live.contains_key(k) || ignored(&p) || p.starts_with("metadata.labels") {
                continue;
            }
            if generated.and_then(|g| g.get(k)).is_some() && !dv.is_null() {
                out.unexpressed.push(p);
            }
        }
    }
}

/// `v` for the patch, without the fields that are defaults (the counterpart `d` holds them
/// with the same value and the keys do not set them) or that the user never gave.
fn prune(v: &Value, d: Option<&Value>, g: Option<&Value>, u: Intent<'_>) -> Option<Value> {
    match v {
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, vv) in obj {
                let dk = d.and_then(|d| d.get(k));
                let gk = g.and_then(|g| g.get(k));
                let uk = child(u, k);
                if uk == Some(None) && gk.is_none() {
                    continue;
                }
                if gk.is_none() && dk.is_some_and(|dk| same(vv, dk)) {
                    continue;
                }
                if let Some(pruned) = prune(vv, dk, gk, uk) {
                    out.insert(k.clone(), pruned);
                }
            }
            (!out.is_empty() || obj.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let pick = |list: Option<&Value>, i: usize, item: &Value| -> Option<Value> {
                counterpart(list?.as_array()?, i, item).cloned()
            };
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let di = pick(d, i, item);
                let gi = pick(g, i, item);
                let ui: Intent<'_> = match u {
                    None => None,
                    Some(None) => Some(None),
                    Some(Some(list)) => Some(list.as_array().and_then(|l| counterpart(l, i, item))),
                };
                if item.is_object() && ui == Some(None) && gi.is_none() {
                    // An item the user never listed (e.g. injected by a webhook).
                    continue;
                }
                out.push(prune(item, di.as_ref(), gi.as_ref(), ui).unwrap_or(item.clone()));
            }
            Some(Value::Array(out))
        }
        Value::Null => None,
        other => Some(other.clone()),
    }
}

/// The item of `list` that corresponds to `item`: same merge key, or (without one) same index.
fn counterpart<'a>(list: &'a [Value], index: usize, item: &Value) -> Option<&'a Value> {
    for key in ["name", "mountPath", "containerPort", "devicePath"] {
        if let Some(k) = item.get(key) {
            return list.iter().find(|other| other.get(key) == Some(k));
        }
    }
    list.get(index)
}

/// Equal, with quantities compared by value (`1Gi` = `1024Mi`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x == y
                || matches!((Quantity::parse(x), Quantity::parse(y)),
                    (Ok(p), Ok(q)) if p.cmp_exact(&q) == std::cmp::Ordering::Equal)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(extra: Value) -> Value {
        let mut c = json!({"name": "db", "image": "postgres:17",
            "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent",
            "resources": {}});
        json_patch::merge(&mut c, &extra);
        c
    }

    fn sts(container: Value, extra: Value) -> Value {
        let mut s = json!({"metadata": {"name": "db", "labels": {"app": "db"}},
            "spec": {"replicas": 1, "revisionHistoryLimit": 10,
                "template": {"spec": {"containers": [container], "dnsPolicy": "ClusterFirst",
                    "terminationGracePeriodSeconds": 30}}}});
        json_patch::merge(&mut s, &extra);
        s
    }

    #[test]
    fn defaults_are_left_out_and_extra_fields_kept() {
        let generated = json!({"metadata": {"labels": {"app": "db"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}});
        let defaulted = sts(container(json!({})), json!({}));
        let live = sts(
            container(json!({})),
            json!({"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 60,
                "priorityClassName": "high"}}}, "metadata": {"annotations": {"team": "data"}}}),
        );
        let r = residue(&live, &live, &defaulted, &generated, None);
        assert_eq!(
            Value::Object(r.patch),
            json!({"metadata": {"annotations": {"team": "data"}},
                   "spec": {"template": {"spec": {"terminationGracePeriodSeconds": 60,
                       "priorityClassName": "high"}}}})
        );
        assert!(r.unexpressed.is_empty());
    }

    #[test]
    fn a_list_that_differs_is_patched_whole_without_item_defaults() {
        let generated = json!({"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}});
        let defaulted = sts(container(json!({})), json!({}));
        let probe = json!({"readinessProbe": {"exec": {"command": ["true"]}}});
        let live = sts(container(probe), json!({}));
        let r = residue(&live, &live, &defaulted, &generated, None);
        assert_eq!(
            Value::Object(r.patch),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "db", "image": "postgres:17", "readinessProbe": {"exec": {"command": ["true"]}}}
            ]}}}})
        );
    }

    #[test]
    fn without_a_counterpart_the_last_applied_configuration_tells_what_was_given() {
        let generated = json!({"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}});
        let defaulted = sts(container(json!({})), json!({}));
        let sidecar = json!({"name": "log", "image": "busybox", "terminationMessagePath": "/dev/termination-log",
            "imagePullPolicy": "Always"});
        let mut live = sts(container(json!({})), json!({}));
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(sidecar);
        let intent = json!({"metadata": {"name": "db", "labels": {"app": "db"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "db", "image": "postgres:17"}, {"name": "log", "image": "busybox"}]}}}});
        let r = residue(&live, &live, &defaulted, &generated, Some(&intent));
        assert_eq!(
            Value::Object(r.patch),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "db", "image": "postgres:17"}, {"name": "log", "image": "busybox"}]}}}})
        );
    }

    #[test]
    fn quantities_compare_by_value_and_generated_extras_are_reported() {
        let live = json!({"spec": {"capacity": {"storage": "1Gi"}}});
        let defaulted =
            json!({"spec": {"capacity": {"storage": "1024Mi"}, "volumeMode": "Filesystem"}});
        let generated =
            json!({"spec": {"capacity": {"storage": "1024Mi"}, "volumeMode": "Filesystem"}});
        let r = residue(&live, &live, &defaulted, &generated, None);
        assert!(r.patch.is_empty());
        assert_eq!(r.unexpressed, vec!["spec.volumeMode"]);
    }

    #[test]
    fn atomic_lists_are_patched_exactly_as_stored() {
        let tpl = json!({"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        let mut stored_tpl = tpl.clone();
        stored_tpl["apiVersion"] = json!("v1");
        stored_tpl["kind"] = json!("PersistentVolumeClaim");
        stored_tpl["status"] = json!({"phase": "Pending"});
        let stored = json!({"spec": {"volumeClaimTemplates": [stored_tpl]}});
        let live = json!({"spec": {"volumeClaimTemplates": [tpl]}});
        let generated = live.clone();
        let r = residue(&stored, &live, &live, &generated, None);
        assert_eq!(Value::Object(r.patch), stored);
        let r = residue(&live, &live, &live, &generated, None);
        assert!(r.patch.is_empty(), "sent exactly as stored: no patch");
    }

    #[test]
    fn our_labels_and_server_bookkeeping_are_never_patched() {
        let live = json!({"metadata": {"name": "x", "namespace": "n",
            "labels": {"kubectl-stateful/stack": "old"},
            "annotations": {"deprecated.daemonset.template.generation": "3"}}});
        let r = residue(&live, &live, &json!({"metadata": {}}), &json!({}), None);
        assert!(r.patch.is_empty(), "{:?}", r.patch);
    }
}
