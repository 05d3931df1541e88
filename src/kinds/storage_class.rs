//! StorageClass: cluster-scoped; provisioner, parameters, reclaim policy and binding mode are
//! immutable.

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::ApiResource;

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
