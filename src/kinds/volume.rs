//! PersistentVolume: cluster-scoped; its source and volume mode are immutable; ready when
//! `Available` or `Bound`. The binding controller writes `claimRef`, which is never a change.

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::ApiResource;
use serde_json::{Map, Value};

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<PersistentVolume>()
    }
    fn namespaced(&self) -> bool {
        false
    }
    fn short(&self) -> &'static str {
        "pv"
    }
    fn plural(&self) -> &'static str {
        "PersistentVolumes"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[
            "/spec/local",
            "/spec/hostPath",
            "/spec/nfs",
            "/spec/csi",
            "/spec/volumeMode",
        ]
    }
    fn normalize(&self, obj: &mut Map<String, Value>, _desired: &Value) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("claimRef");
        }
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        Some(WaitRule::VolumeAvailable)
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a volume deletes the PersistentVolume object and unbinds its claim; with reclaim policy Retain the data stays on the backing storage"
    }
}

/// What a volume's reclaim policy turning to `Delete` puts at risk: until now its data outlived
/// its claim; from then on it is deleted with it. `None` when the policy does not change to
/// `Delete` (a manifest without a policy keeps the live one).
pub fn reclaim_turns_to_delete(manifest: &Value, live: &Value) -> Option<String> {
    let policy = |v: &Value| {
        v.pointer("/spec/persistentVolumeReclaimPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let now = policy(live).unwrap_or_else(|| "Retain".into());
    if policy(manifest).as_deref() != Some("Delete") || now == "Delete" {
        return None;
    }
    let size = live
        .pointer("/spec/capacity/storage")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let claim = match (
        live.pointer("/spec/claimRef/namespace")
            .and_then(Value::as_str),
        live.pointer("/spec/claimRef/name").and_then(Value::as_str),
    ) {
        (Some(ns), Some(name)) => format!(", with claim {ns}/{name}"),
        _ => String::new(),
    };
    Some(format!(
        "reclaim policy {now} → Delete: the volume's data ({size}) is then deleted when its claim is{claim}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reclaim_policy_turning_to_delete_puts_the_data_at_risk() {
        let pv = |policy: Option<&str>| {
            let mut v = json!({"spec": {"capacity": {"storage": "10Gi"},
                "claimRef": {"namespace": "db", "name": "data"}}});
            if let Some(p) = policy {
                v["spec"]["persistentVolumeReclaimPolicy"] = json!(p);
            }
            v
        };
        let risk =
            reclaim_turns_to_delete(&pv(Some("Delete")), &pv(Some("Retain"))).expect("at risk");
        assert_eq!(
            risk,
            "reclaim policy Retain → Delete: the volume's data (10Gi) is then deleted when its claim is, with claim db/data"
        );
        assert!(reclaim_turns_to_delete(&pv(Some("Delete")), &pv(None)).is_some());
        assert_eq!(
            reclaim_turns_to_delete(&pv(Some("Delete")), &pv(Some("Delete"))),
            None
        );
        assert_eq!(
            reclaim_turns_to_delete(&pv(Some("Retain")), &pv(Some("Retain"))),
            None
        );
        assert_eq!(
            reclaim_turns_to_delete(&pv(None), &pv(Some("Retain"))),
            None
        );
    }
}
