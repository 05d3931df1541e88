//! VolumeSnapshot (`snapshot.storage.k8s.io/v1`, a CRD of the external-snapshotter project, so
//! k8s-openapi has no type for it: its resource is described here). Its spec is immutable;
//! ready when `status.readyToUse`.

use super::{Kind, KindRules, ObjectRef, str_at};
use crate::plan::ops::WaitRule;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

pub struct Rules;

/// The snapshot API's group and version.
pub const GROUP: &str = "snapshot.storage.k8s.io";
pub const VERSION: &str = "v1";

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, VERSION, "VolumeSnapshot"),
            "volumesnapshots",
        )
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "volumesnapshot"
    }
    fn plural(&self) -> &'static str {
        "VolumeSnapshots"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &["/spec"]
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        Some(WaitRule::SnapshotReady)
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a snapshot deletes it (and, with deletionPolicy Delete, its content) and takes a new one"
    }
    /// The claim it is taken of.
    fn dependencies(&self, manifest: &Value, namespace: &str) -> Vec<ObjectRef> {
        str_at(manifest, "/spec/source/persistentVolumeClaimName")
            .map(|c| ObjectRef::new(Kind::PersistentVolumeClaim, namespace, c))
            .into_iter()
            .collect()
    }
}

/// What deleting VolumeSnapshot `name` takes: the copy of its claim it holds (with its class's
/// `deletionPolicy: Delete`, the usual one, the copy on the storage goes too).
pub fn data_of(name: &str) -> String {
    format!("the data of volumesnapshot/{name}")
}
