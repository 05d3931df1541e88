//! Removes what the server writes on its own from objects before they are compared or shown, so
//! that a plan lists only changes the spec makes (no false diffs).

use crate::kinds::Kind;
use serde_json::{Map, Value};

/// Annotation prefixes the control plane writes (binding, provisioning, kubectl bookkeeping).
const SERVER_ANNOTATION_PREFIXES: &[&str] = &[
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/",
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/",
];

/// Metadata keys that change on every write and never reflect the spec.
const VOLATILE_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "finalizers",
    "deletionGracePeriodSeconds",
];

/// Returns a copy of `obj` without status, volatile metadata, server-written annotations and the
/// binding fields the controllers fill in (`claimRef`, a claim's `volumeName` the spec did not set).
pub fn normalize(kind: Kind, obj: &Value, desired: &Value) -> Value {
    let mut v = obj.clone();
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    map.remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in VOLATILE_METADATA {
            meta.remove(*k);
        }
        strip_annotations(meta);
    }
    kind.rules().normalize(map, desired);
    v
}

fn strip_annotations(meta: &mut Map<String, Value>) {
    if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
        ann.retain(|k, _| !SERVER_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)));
        if ann.is_empty() {
            meta.remove("annotations");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_binding_fields_the_server_fills_in() {
        let live = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "uid": "1", "resourceVersion": "7",
                "annotations": {"pv.kubernetes.io/bind-completed": "yes", "team": "db"},
                "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"volumeName": "pvc-123", "storageClassName": "standard", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}
        });
        let desired = json!({"spec": {}});
        let n = normalize(Kind::PersistentVolumeClaim, &live, &desired);
        assert_eq!(
            n,
            json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "c", "annotations": {"team": "db"}},
                "spec": {"storageClassName": "standard", "volumeMode": "Filesystem"}
            })
        );
    }

    #[test]
    fn keeps_volume_name_the_spec_sets() {
        let live = json!({"spec": {"volumeName": "pv-1"}});
        let desired = json!({"spec": {"volumeName": "pv-1"}});
        assert_eq!(
            normalize(Kind::PersistentVolumeClaim, &live, &desired),
            live
        );
    }

    #[test]
    fn strips_status_inside_claim_templates() {
        let live = json!({"spec": {"volumeClaimTemplates": [
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}}
        ]}});
        let n = normalize(Kind::StatefulSet, &live, &json!({}));
        assert_eq!(
            n,
            json!({"spec": {"volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
            ]}})
        );
    }

    #[test]
    fn strips_claim_ref_of_volumes() {
        let live = json!({"spec": {"claimRef": {"name": "c"}, "capacity": {"storage": "1Gi"}}});
        assert_eq!(
            normalize(Kind::PersistentVolume, &live, &json!({})),
            json!({"spec": {"capacity": {"storage": "1Gi"}}})
        );
    }
}
