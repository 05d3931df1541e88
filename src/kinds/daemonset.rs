//! DaemonSet: one pod per (selected) node; the selector is immutable; ready when every
//! scheduled pod runs the new template and is ready.

use super::{KindRules, ObjectRef, Related, match_labels, resource_of, workload_dependencies};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::ApiResource;
use serde_json::Value;

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<DaemonSet>()
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "daemonset"
    }
    fn plural(&self) -> &'static str {
        "DaemonSets"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &["/spec/selector"]
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        Some(WaitRule::DaemonSetReady)
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a DaemonSet deletes it and creates it again; its pods are recreated on every node, the claims they mount stay"
    }
    fn related(&self, _name: &str, current: Option<&Value>) -> Vec<Related> {
        let selector = current.map(match_labels).unwrap_or_default();
        if selector.is_empty() {
            Vec::new()
        } else {
            vec![Related::Pods { selector }]
        }
    }
    fn dependencies(&self, manifest: &Value, namespace: &str) -> Vec<ObjectRef> {
        workload_dependencies(manifest, namespace)
    }
}
