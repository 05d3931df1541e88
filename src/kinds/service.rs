//! Service: the governing headless Service of a StatefulSet; its cluster IP is immutable.

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::core::v1::Service;
use kube::api::ApiResource;

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<Service>()
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "service"
    }
    fn plural(&self) -> &'static str {
        "Services"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &["/spec/clusterIP"]
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        None
    }
    fn replace_cost(&self) -> &'static str {
        "replacing the Service deletes and recreates it, and its cluster IP changes"
    }
}
