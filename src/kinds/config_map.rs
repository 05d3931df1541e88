//! ConfigMap: not an object of the spec; the stack's inventory is kept in one.

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ApiResource;

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<ConfigMap>()
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "configmap"
    }
    fn plural(&self) -> &'static str {
        "ConfigMaps"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[]
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        None
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a ConfigMap deletes and recreates it"
    }
}
