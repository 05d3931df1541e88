//! Namespace: created first when the stack's namespace does not exist yet.

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ApiResource;
use serde_json::{Map, Value};

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<Namespace>()
    }
    fn namespaced(&self) -> bool {
        false
    }
    fn short(&self) -> &'static str {
        "namespace"
    }
    fn plural(&self) -> &'static str {
        "Namespaces"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[]
    }
    fn normalize(&self, obj: &mut Map<String, Value>, _desired: &Value) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("finalizers");
            if spec.is_empty() {
                obj.remove("spec");
            }
        }
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        None
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a namespace deletes everything in it"
    }
}
