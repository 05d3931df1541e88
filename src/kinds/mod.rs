//! The object kinds the plugin manages. Everything that differs between kinds lives in one module
//! per kind, behind the [`KindRules`] trait: its API resource (from k8s-openapi's types), scope,
//! immutable fields, normalisation, wait rule, what replacing it costs, which objects its change
//! waits for, and which related objects explain a failed wait. The rest of the code asks `kind.rules()` instead of matching on kinds.
//!
//! The rollout order is data too: [`ROLLOUT_ORDER`] lists the phases; deletions run in reverse.

mod claim;
mod config_map;
mod daemonset;
mod deployment;
mod lease;
mod namespace;
mod pod;
mod service;
pub mod statefulset;
pub mod storage_class;
pub mod volume;
pub mod volume_snapshot;

pub use volume_snapshot::{GROUP as SNAPSHOT_GROUP, VERSION as SNAPSHOT_VERSION};

pub use claim::grows as claim_grows;
pub use statefulset::template_claims;

use crate::plan::ops::WaitRule;
use kube::api::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Label every object written by the plugin carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-stateful");
/// Label naming the stack an object belongs to.
pub const STACK_LABEL: &str = "kubectl-stateful/stack";
/// Field manager used for server-side apply.
pub const FIELD_MANAGER: &str = "kubectl-stateful";

/// A managed kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Namespace,
    StorageClass,
    PersistentVolume,
    PersistentVolumeClaim,
    Service,
    StatefulSet,
    Deployment,
    DaemonSet,
    /// Not part of a stack's spec: the stack's inventory is kept in one.
    ConfigMap,
    /// Not part of a stack's spec: one apply of a stack at a time holds it.
    Lease,
    VolumeSnapshot,
    /// Not part of a stack's spec: a claim-template resize with `--restart-pods` restarts the
    /// pods whose file systems grow only on mount.
    Pod,
}

/// The rollout phases, in order: every object of a phase is written and waited for before the
/// next phase starts. Deletions walk the same table backwards.
pub const ROLLOUT_ORDER: &[&[Kind]] = &[
    &[Kind::Namespace],
    &[Kind::StorageClass],
    &[Kind::PersistentVolume],
    &[Kind::PersistentVolumeClaim, Kind::VolumeSnapshot],
    &[Kind::Service, Kind::ConfigMap, Kind::Lease],
    &[
        Kind::StatefulSet,
        Kind::Deployment,
        Kind::DaemonSet,
        Kind::Pod,
    ],
];

/// The kinds a stack's spec can hold, in rollout order.
pub const STACK_KINDS: [Kind; 9] = [
    Kind::Namespace,
    Kind::StorageClass,
    Kind::PersistentVolume,
    Kind::PersistentVolumeClaim,
    Kind::VolumeSnapshot,
    Kind::Service,
    Kind::StatefulSet,
    Kind::Deployment,
    Kind::DaemonSet,
];

/// Where a related object can be found to explain a failed wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Related {
    /// Pods matching a label selector (`a=b,c=d`) in the object's namespace.
    Pods { selector: String },
    /// Claims with exactly these names in the object's namespace.
    Claims { names: Vec<String> },
}

/// What one kind knows about itself.
pub trait KindRules: Sync {
    /// The API resource, derived from the k8s-openapi type.
    fn api_resource(&self) -> ApiResource;
    /// True for namespaced kinds.
    fn namespaced(&self) -> bool;
    /// kubectl's short name (`pvc`).
    fn short(&self) -> &'static str;
    /// Plural for phase headings (`PersistentVolumeClaims`).
    fn plural(&self) -> &'static str;
    /// Fields that cannot change in place, as JSON pointers below the object.
    fn immutable_roots(&self) -> &'static [&'static str];
    /// Immutable changes that are not a plain field comparison (a claim shrinking).
    fn extra_immutable_changes(&self, _desired: &Value, _live: &Value) -> Vec<String> {
        Vec::new()
    }
    /// Removes what the server fills in for this kind (binding fields, template status).
    fn normalize(&self, _obj: &mut Map<String, Value>, _desired: &Value) {}
    /// What apply waits for after writing such an object.
    fn wait_rule(&self) -> Option<WaitRule>;
    /// What replacing an object of this kind would do, in words.
    fn replace_cost(&self) -> &'static str;
    /// Related objects whose state explains a failed wait on `current`.
    fn related(&self, _name: &str, _current: Option<&Value>) -> Vec<Related> {
        Vec::new()
    }
    /// The objects (in `namespace`) that must be ready before a change of an object with
    /// `manifest` starts. Those in the plan replace the whole phase before it as what the change
    /// waits for; with none (or none of them in the plan) the phase gate applies.
    fn dependencies(&self, _manifest: &Value, _namespace: &str) -> Vec<ObjectRef> {
        Vec::new()
    }
}

impl Kind {
    /// Every kind, in rollout order.
    pub const ALL: [Kind; 12] = [
        Kind::Namespace,
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::VolumeSnapshot,
        Kind::Service,
        Kind::ConfigMap,
        Kind::Lease,
        Kind::StatefulSet,
        Kind::Deployment,
        Kind::DaemonSet,
        Kind::Pod,
    ];

    /// The kind's rules.
    pub fn rules(self) -> &'static dyn KindRules {
        match self {
            Kind::Namespace => &namespace::Rules,
            Kind::StorageClass => &storage_class::Rules,
            Kind::PersistentVolume => &volume::Rules,
            Kind::PersistentVolumeClaim => &claim::Rules,
            Kind::Service => &service::Rules,
            Kind::StatefulSet => &statefulset::Rules,
            Kind::Deployment => &deployment::Rules,
            Kind::DaemonSet => &daemonset::Rules,
            Kind::ConfigMap => &config_map::Rules,
            Kind::Lease => &lease::Rules,
            Kind::VolumeSnapshot => &volume_snapshot::Rules,
            Kind::Pod => &pod::Rules,
        }
    }

    /// True for kinds that run pods (and so consume claims).
    pub fn is_workload(self) -> bool {
        matches!(self, Kind::StatefulSet | Kind::Deployment | Kind::DaemonSet)
    }

    /// The index of this kind's phase in [`ROLLOUT_ORDER`].
    pub fn phase(self) -> usize {
        ROLLOUT_ORDER
            .iter()
            .position(|p| p.contains(&self))
            .expect("every kind has a phase")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::StorageClass => "StorageClass",
            Kind::PersistentVolume => "PersistentVolume",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::Service => "Service",
            Kind::StatefulSet => "StatefulSet",
            Kind::Deployment => "Deployment",
            Kind::DaemonSet => "DaemonSet",
            Kind::ConfigMap => "ConfigMap",
            Kind::Lease => "Lease",
            Kind::VolumeSnapshot => "VolumeSnapshot",
            Kind::Pod => "Pod",
        }
    }

    /// Parses the API kind name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind's plural, for phase headings.
    pub fn plural(self) -> &'static str {
        self.rules().plural()
    }

    /// kubectl's short name, used in compact output (`pvc/data-db-0`).
    pub fn short(self) -> &'static str {
        self.rules().short()
    }

    pub fn api_version(self) -> String {
        self.api_resource().api_version
    }

    pub fn namespaced(self) -> bool {
        self.rules().namespaced()
    }

    /// The kube-rs resource description for dynamic API calls.
    pub fn api_resource(self) -> ApiResource {
        self.rules().api_resource()
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

    /// A reference to an object of `kind` named `name`, in `namespace` when the kind is namespaced.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind,
            namespace: kind.namespaced().then(|| namespace.to_string()),
            name: name.to_string(),
        }
    }
}

/// The heading of a rollout phase, e.g. "PersistentVolumeClaims" or "Workloads".
pub fn phase_name(phase: usize) -> &'static str {
    match ROLLOUT_ORDER.get(phase) {
        Some([only]) => only.plural(),
        Some([Kind::Service, ..]) => "Services",
        Some([Kind::PersistentVolumeClaim, ..]) => "PersistentVolumeClaims and VolumeSnapshots",
        _ => "Workloads",
    }
}

/// A label selector (`a=b,c=d`) from a workload's `spec.selector.matchLabels`.
pub(crate) fn match_labels(obj: &Value) -> String {
    obj.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A string at a JSON pointer.
fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// What a workload's change needs: the claims its pods mount and its governing Service. Nothing
/// for one with claim templates: their claims may bind any volume, so it waits for the whole
/// phase before it.
pub(crate) fn workload_dependencies(manifest: &Value, namespace: &str) -> Vec<ObjectRef> {
    let templates = manifest
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if templates {
        return Vec::new();
    }
    let volumes = manifest
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array);
    volumes
        .into_iter()
        .flatten()
        .filter_map(|v| str_at(v, "/persistentVolumeClaim/claimName"))
        .map(|c| ObjectRef::new(Kind::PersistentVolumeClaim, namespace, c))
        .chain(
            str_at(manifest, "/spec/serviceName")
                .map(|s| ObjectRef::new(Kind::Service, namespace, s)),
        )
        .collect()
}

/// The API resource of a k8s-openapi type.
pub(crate) fn resource_of<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_come_from_the_openapi_types() {
        let sts = Kind::StatefulSet.api_resource();
        assert_eq!(
            (
                sts.group.as_str(),
                sts.version.as_str(),
                sts.plural.as_str()
            ),
            ("apps", "v1", "statefulsets")
        );
        assert_eq!(Kind::StorageClass.api_version(), "storage.k8s.io/v1");
        assert_eq!(Kind::PersistentVolumeClaim.api_version(), "v1");
        assert_eq!(
            Kind::PersistentVolume.api_resource().plural,
            "persistentvolumes"
        );
    }

    #[test]
    fn every_kind_is_in_exactly_one_phase_in_declaration_order() {
        let flat: Vec<Kind> = ROLLOUT_ORDER
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect();
        assert_eq!(flat, Kind::ALL.to_vec());
        assert!(Kind::PersistentVolume.phase() < Kind::PersistentVolumeClaim.phase());
    }

    #[test]
    fn dependencies_come_from_each_kind() {
        use serde_json::json;
        let deps = |kind: Kind, manifest: Value| kind.rules().dependencies(&manifest, "ns");
        let r = |kind: Kind, name: &str| ObjectRef::new(kind, "ns", name);
        let restored = json!({"spec": {"volumeName": "pv-1", "dataSourceRef": {
            "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}}});
        assert_eq!(
            deps(Kind::PersistentVolumeClaim, restored),
            vec![
                r(Kind::PersistentVolume, "pv-1"),
                r(Kind::VolumeSnapshot, "snap")
            ]
        );
        // Another kind of data source is not an object of the plan.
        let cloned =
            json!({"spec": {"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "c"}}});
        assert!(deps(Kind::PersistentVolumeClaim, cloned).is_empty());
        assert_eq!(
            deps(
                Kind::VolumeSnapshot,
                json!({"spec": {"source": {"persistentVolumeClaimName": "data"}}})
            ),
            vec![r(Kind::PersistentVolumeClaim, "data")]
        );
        let pod = json!({"volumes": [
            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "t", "emptyDir": {}}]});
        assert_eq!(
            deps(
                Kind::StatefulSet,
                json!({"spec": {"serviceName": "db", "template": {"spec": pod}}})
            ),
            vec![
                r(Kind::PersistentVolumeClaim, "data"),
                r(Kind::Service, "db")
            ]
        );
        for kind in [Kind::Deployment, Kind::DaemonSet] {
            assert_eq!(
                deps(kind, json!({"spec": {"template": {"spec": pod}}})),
                vec![r(Kind::PersistentVolumeClaim, "data")]
            );
        }
        // Claim templates: the whole phase before.
        let templated = json!({"spec": {"serviceName": "db", "template": {"spec": pod},
            "volumeClaimTemplates": [{"metadata": {"name": "t"}}]}});
        assert!(deps(Kind::StatefulSet, templated).is_empty());
        assert!(deps(Kind::Service, json!({"spec": {}})).is_empty());
    }

    #[test]
    fn scope() {
        assert!(!Kind::PersistentVolume.namespaced());
        assert!(Kind::PersistentVolumeClaim.namespaced());
        assert!(!Kind::StorageClass.namespaced());
    }
}
