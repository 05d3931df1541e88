//! PersistentVolumeClaim: class, access modes, volume mode, selector and a set volume name are
//! immutable, and so is a smaller size; ready when `Bound` (or deferred to its first consumer).
//! The binding controller writes `volumeName` when the spec does not.

use super::{Kind, KindRules, ObjectRef, resource_of, str_at};
use crate::plan::ops::WaitRule;
use crate::spec::quantity::Quantity;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::ApiResource;
use serde_json::{Map, Value};
use std::cmp::Ordering;

pub struct Rules;

/// The claim's requested size.
pub fn size(v: &Value) -> Option<Quantity> {
    v.pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(|s| Quantity::parse(s).ok())
}

/// True when `desired` asks for more storage than `live` has requested.
pub fn grows(desired: &Value, live: &Value) -> bool {
    matches!((size(desired), size(live)), (Some(want), Some(have)) if want.cmp_exact(&have) == Ordering::Greater)
}

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<PersistentVolumeClaim>()
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "pvc"
    }
    fn plural(&self) -> &'static str {
        "PersistentVolumeClaims"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[
            "/spec/accessModes",
            "/spec/storageClassName",
            "/spec/volumeMode",
            "/spec/selector",
            "/spec/volumeName",
        ]
    }
    fn extra_immutable_changes(&self, desired: &Value, live: &Value) -> Vec<String> {
        // Lowering the request back to at least the current capacity recovers a failed
        // expansion (RecoverVolumeExpansionFailure, GA in 1.34); below it is a real shrink.
        let capacity = live
            .pointer("/status/capacity/storage")
            .and_then(Value::as_str)
            .and_then(|s| Quantity::parse(s).ok())
            .or_else(|| size(live));
        match (size(desired), capacity) {
            (Some(want), Some(have)) if want.cmp_exact(&have) == Ordering::Less => {
                vec!["spec.resources.requests.storage".into()]
            }
            _ => Vec::new(),
        }
    }
    fn normalize(&self, obj: &mut Map<String, Value>, desired: &Value) {
        if desired.pointer("/spec/volumeName").is_none()
            && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.remove("volumeName");
        }
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        Some(WaitRule::ClaimBound)
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a claim deletes it; if its volume's reclaim policy is Delete, the data is deleted with it"
    }
    /// The volume it is pinned to (`spec.volumeName`) and the snapshot it is restored from.
    fn dependencies(&self, manifest: &Value, namespace: &str) -> Vec<ObjectRef> {
        let volume = str_at(manifest, "/spec/volumeName")
            .map(|v| ObjectRef::new(Kind::PersistentVolume, namespace, v));
        let snapshot = manifest
            .pointer("/spec/dataSourceRef")
            .filter(|r| r["kind"] == "VolumeSnapshot")
            .and_then(|r| r["name"].as_str())
            .map(|s| ObjectRef::new(Kind::VolumeSnapshot, namespace, s));
        volume.into_iter().chain(snapshot).collect()
    }
}
