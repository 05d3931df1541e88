//! StorageClass: cluster-scoped; provisioner, parameters, reclaim policy and binding mode are
//! immutable.

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::ApiResource;
use serde_json::Value;

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<StorageClass>()
    }
    fn namespaced(&self) -> bool {
        false
    }
    fn short(&self) -> &'static str {
        "storageclass"
    }
    fn plural(&self) -> &'static str {
        "StorageClasses"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[
            "/provisioner",
            "/parameters",
            "/reclaimPolicy",
            "/volumeBindingMode",
        ]
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        None
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a StorageClass deletes and recreates it; volumes it already provisioned are not affected"
    }
}

/// What a class's reclaim policy turning to `Delete` puts at risk: the volumes it provisions
/// from then on are deleted with their claims (those it provisioned already keep their policy).
pub fn reclaim_turns_to_delete(manifest: &Value, live: &Value) -> Option<String> {
    let policy = |v: &Value| {
        v.get("reclaimPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let now = policy(live).unwrap_or_else(|| "Delete".into());
    (policy(manifest).as_deref() == Some("Delete") && now != "Delete").then(|| {
        format!(
            "reclaim policy {now} → Delete: the volumes the class provisions from now on are deleted with their claims, data included"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_class_turning_to_delete_puts_future_volumes_at_risk() {
        let c = |p: &str| json!({"reclaimPolicy": p});
        assert!(
            reclaim_turns_to_delete(&c("Delete"), &c("Retain"))
                .unwrap()
                .starts_with("reclaim policy Retain → Delete")
        );
        assert_eq!(reclaim_turns_to_delete(&c("Delete"), &c("Delete")), None);
        assert_eq!(reclaim_turns_to_delete(&c("Retain"), &c("Delete")), None);
        // No policy on the live class is the server's default, Delete.
        assert_eq!(reclaim_turns_to_delete(&c("Delete"), &json!({})), None);
    }
}
