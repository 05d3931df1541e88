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
