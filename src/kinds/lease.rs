//! Lease: not an object of the spec; one per stack serializes applies (see `crate::lock`).

use super::{KindRules, resource_of};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::ApiResource;

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<Lease>()
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "lease"
    }
    fn plural(&self) -> &'static str {
        "Leases"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[]
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        None
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a Lease deletes and recreates it"
    }
}
