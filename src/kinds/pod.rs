//! Pod: not an object of the spec; a StatefulSet claim-template resize with `--restart-pods`
//! restarts the pods whose claims wait for their file system to grow on mount.

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ApiResource;

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<Pod>()
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "pod"
    }
    fn plural(&self) -> &'static str {
        "Pods"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[]
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        None
    }
    fn replace_cost(&self) -> &'static str {
        "restarting a pod stops its containers; its controller starts a new one"
    }
}
