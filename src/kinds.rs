//! The object kinds the plugin manages, their API coordinates and their rollout order.

use kube::api::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};

/// Label every object written by the plugin carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-stateful");
/// Label naming the stack an object belongs to.
pub const STACK_LABEL: &str = "kubectl-stateful/stack";
/// Field manager used for server-side apply.
pub const FIELD_MANAGER: &str = "kubectl-stateful";

/// A managed kind. The declaration order is the rollout order (phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Namespace,
    StorageClass,
    PersistentVolume,
    PersistentVolumeClaim,
    Service,
    StatefulSet,
}

impl Kind {
    /// Every kind, in rollout order.
    pub const ALL: [Kind; 6] = [
        Kind::Namespace,
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::Service,
        Kind::StatefulSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::StorageClass => "StorageClass",
            Kind::PersistentVolume => "PersistentVolume",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::Service => "Service",
            Kind::StatefulSet => "StatefulSet",
        }
    }

    /// The kind's plural, for phase headings.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespaces",
            Kind::StorageClass => "StorageClasses",
            Kind::PersistentVolume => "PersistentVolumes",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaims",
            Kind::Service => "Services",
            Kind::StatefulSet => "StatefulSets",
        }
    }

    /// kubectl's short name, used in compact output (`pvc/data-db-0`).
    pub fn short(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::StorageClass => "storageclass",
            Kind::PersistentVolume => "pv",
            Kind::PersistentVolumeClaim => "pvc",
            Kind::Service => "service",
            Kind::StatefulSet => "statefulset",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::StorageClass => "storage.k8s.io/v1",
            Kind::StatefulSet => "apps/v1",
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Kind::PersistentVolumeClaim | Kind::Service | Kind::StatefulSet
        )
    }

    /// The kube-rs resource description for dynamic API calls.
    pub fn api_resource(self) -> ApiResource {
        let (group, version) = match self.api_version().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version()),
        };
        let plural = match self {
            Kind::Namespace => "namespaces",
            Kind::StorageClass => "storageclasses",
            Kind::PersistentVolume => "persistentvolumes",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
            Kind::Service => "services",
            Kind::StatefulSet => "statefulsets",
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, self.as_str()),
            plural,
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one object: kind, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} (namespace {ns})", self.kind.short(), self.name),
            None => write!(f, "{}/{}", self.kind.short(), self.name),
        }
    }
}

impl ObjectRef {
    /// `pvc/data-db-0`, without the namespace.
    pub fn short(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}
