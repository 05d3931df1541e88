//! The spec's data model, one struct per TOML table. Every table rejects unknown keys; fields that
//! validation points at are `Spanned` so messages can show where they are.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A whole stack file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Stack name, used in the `kubectl-stateful/stack` label. Defaults to the file's stem.
    pub name: Option<Spanned<String>>,
    /// Namespace of the namespaced objects. Defaults to the kubeconfig context's namespace.
    pub namespace: Option<Spanned<String>>,
    /// Labels added to every object of the stack.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, rename = "storage_class")]
    pub storage_classes: Vec<Spanned<StorageClassSpec>>,
    #[serde(default, rename = "volume")]
    pub volumes: Vec<Spanned<VolumeSpec>>,
    #[serde(default, rename = "claim")]
    pub claims: Vec<Spanned<ClaimSpec>>,
    #[serde(default, rename = "statefulset")]
    pub statefulsets: Vec<Spanned<StatefulSetSpec>>,
    #[serde(default, rename = "deployment")]
    pub deployments: Vec<Spanned<WorkloadSpec>>,
    #[serde(default, rename = "daemonset")]
    pub daemonsets: Vec<Spanned<WorkloadSpec>>,
    #[serde(default, rename = "snapshot")]
    pub snapshots: Vec<Spanned<SnapshotSpec>>,
    #[serde(skip)]
    pub source_file: String,
    #[serde(skip)]
    pub default_name: String,
    /// The file's text, for diagnostics found after loading.
    #[serde(skip)]
    pub source_text: String,
}

impl Spec {
    /// The stack's name: the `name` key, or the file's stem.
    pub fn stack_name(&self) -> &str {
        self.name
            .as_ref()
            .map_or(&self.default_name, |n| n.get_ref())
    }
}

/// `[[storage_class]]`: a StorageClass.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageClassSpec {
    pub name: Spanned<String>,
    pub provisioner: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    pub reclaim_policy: Option<ReclaimPolicy>,
    pub binding_mode: Option<BindingMode>,
    pub allow_volume_expansion: Option<bool>,
    #[serde(default)]
    pub mount_options: Vec<String>,
    /// Makes this the cluster's default class.
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Take this object over if it exists without this stack's labels (see `--adopt`).
    #[serde(default)]
    pub adopt: bool,
    /// Never delete or replace this object (like terraform's `prevent_destroy`); remembered in
    /// the stack's inventory, so it holds even after the table leaves the spec.
    #[serde(default)]
    pub protect: bool,
    /// Raw JSON merge patch applied to the generated object.
    pub patch: Option<toml::Table>,
}

/// `[[volume]]`: a PersistentVolume.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub name: Spanned<String>,
    pub capacity: Spanned<String>,
    #[serde(default = "default_access_modes")]
    pub access_modes: Spanned<Vec<AccessMode>>,
    pub volume_mode: Option<VolumeMode>,
    pub reclaim_policy: Option<ReclaimPolicy>,
    /// StorageClass name; absent means no class (`""`).
    pub class: Option<Spanned<String>>,
    /// Shorthand for node affinity to `kubernetes.io/hostname=<node>`.
    pub node: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub mount_options: Vec<String>,
    pub local: Option<LocalSource>,
    pub host_path: Option<HostPathSource>,
    pub nfs: Option<NfsSource>,
    pub csi: Option<CsiSource>,
    /// Take this object over if it exists without this stack's labels (see `--adopt`).
    #[serde(default)]
    pub adopt: bool,
    /// Never delete or replace this object (like terraform's `prevent_destroy`); remembered in
    /// the stack's inventory, so it holds even after the table leaves the spec.
    #[serde(default)]
    pub protect: bool,
    /// Allow `apply --replace` to delete and re-create this object (its data may go with it).
    #[serde(default)]
    pub allow_replace: bool,
    pub patch: Option<toml::Table>,
}

/// `volume.local`: a local disk on one node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSource {
    pub path: String,
    pub fs_type: Option<String>,
}

/// `volume.host_path`: a directory on the node (single-node testing only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPathSource {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `volume.nfs`: an NFS export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsSource {
    pub server: String,
    pub path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// `volume.csi`: a pre-provisioned CSI volume.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsiSource {
    pub driver: String,
    pub volume_handle: String,
    pub fs_type: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// `[[claim]]`: a standalone PersistentVolumeClaim.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSpec {
    pub name: Spanned<String>,
    pub size: Spanned<String>,
    #[serde(default = "default_access_modes")]
    pub access_modes: Spanned<Vec<AccessMode>>,
    /// StorageClass; absent means the cluster default (or the named volume's class), `""` means none.
    pub class: Option<Spanned<String>>,
    /// Binds to this PersistentVolume.
    pub volume: Option<Spanned<String>>,
    /// Binds to a volume with these labels.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Restores the claim from this VolumeSnapshot (`spec.dataSourceRef`).
    pub from_snapshot: Option<Spanned<String>>,
    pub volume_mode: Option<VolumeMode>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Take this object over if it exists without this stack's labels (see `--adopt`).
    #[serde(default)]
    pub adopt: bool,
    /// Never delete or replace this object (like terraform's `prevent_destroy`); remembered in
    /// the stack's inventory, so it holds even after the table leaves the spec.
    #[serde(default)]
    pub protect: bool,
    /// Allow `apply --replace` to delete and re-create this object (its data may go with it).
    #[serde(default)]
    pub allow_replace: bool,
    pub patch: Option<toml::Table>,
}

/// `[[statefulset]]`, `[[deployment]]` and `[[daemonset]]`: one schema for every workload kind.
/// Keys that do not apply to a kind (a claim template on a Deployment, `replicas` on a
/// DaemonSet) are refused by validation at their line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub name: Spanned<String>,
    /// StatefulSets and Deployments; default 1.
    pub replicas: Option<Spanned<i32>>,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// In the file's order: a variable may refer to the ones before it (`$(NAME)`), and
    /// Kubernetes keeps the order it is given.
    #[serde(default)]
    pub env: indexmap::IndexMap<String, Spanned<EnvValue>>,
    /// Every key of Secrets and ConfigMaps as environment variables.
    #[serde(default)]
    pub env_from: Vec<Spanned<EnvFromSpec>>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub resources: ResourcesSpec,
    /// StatefulSets: name of the governing headless Service; defaults to the StatefulSet's name.
    pub service: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// StatefulSets.
    pub pod_management_policy: Option<PodManagementPolicy>,
    /// StatefulSets and DaemonSets.
    pub update_strategy: Option<UpdateStrategySpec>,
    /// StatefulSets.
    pub retention: Option<RetentionSpec>,
    pub min_ready_seconds: Option<i32>,
    /// StatefulSets.
    #[serde(default, rename = "volume_claim")]
    pub volume_claims: Vec<Spanned<ClaimTemplateSpec>>,
    #[serde(default, rename = "mount")]
    pub mounts: Vec<Spanned<MountSpec>>,
    /// Deployments: `{ type = "RollingUpdate", max_unavailable = 1, max_surge = "25%" }` or
    /// `{ type = "Recreate" }`.
    pub strategy: Option<Spanned<DeploymentStrategySpec>>,
    /// DaemonSets: run only on nodes with these labels.
    pub node_selector: Option<Spanned<BTreeMap<String, String>>>,
    /// Take this object over if it exists without this stack's labels (see `--adopt`).
    #[serde(default)]
    pub adopt: bool,
    /// Never delete or replace this object (like terraform's `prevent_destroy`); remembered in
    /// the stack's inventory, so it holds even after the table leaves the spec.
    #[serde(default)]
    pub protect: bool,
    pub patch: Option<toml::Table>,
}

/// A StatefulSet's table: the shared workload schema.
pub type StatefulSetSpec = WorkloadSpec;

impl WorkloadSpec {
    /// The replica count (default 1).
    pub fn replicas(&self) -> i32 {
        self.replicas.as_ref().map_or(1, |r| *r.get_ref())
    }
}

/// An environment value: a plain string, or a reference to a key of a Secret or ConfigMap
/// (`{ secret = "pg", key = "password" }`). The plugin never reads the referenced data.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "an env value is a string (quote numbers: \"5432\"), { secret = \"NAME\", key = \"KEY\" } or { config_map = \"NAME\", key = \"KEY\" }"
)]
pub enum EnvValue {
    Plain(String),
    Ref(EnvRef),
}

/// `{ secret = "pg", key = "password" }` or `{ config_map = "settings", key = "mode" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvRef {
    pub secret: Option<String>,
    pub config_map: Option<String>,
    pub key: String,
    #[serde(default)]
    pub optional: bool,
}

/// `env_from = [{ secret = "pg" }, { config_map = "settings", prefix = "APP_" }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFromSpec {
    pub secret: Option<String>,
    pub config_map: Option<String>,
    pub prefix: Option<String>,
}

/// A Deployment's `strategy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentStrategySpec {
    #[serde(rename = "type")]
    pub kind: DeploymentStrategyType,
    pub max_unavailable: Option<IntOrPercent>,
    pub max_surge: Option<IntOrPercent>,
}

/// `1` or `"25%"`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(untagged, expecting = "a number or a percentage such as \"25%\"")]
pub enum IntOrPercent {
    Int(i32),
    Percent(String),
}

/// `[[snapshot]]`: a VolumeSnapshot of a claim of the stack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    pub name: Spanned<String>,
    /// The claim to snapshot.
    pub claim: Spanned<String>,
    /// VolumeSnapshotClass; absent means the default class of the claim's driver.
    pub class: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub adopt: bool,
    #[serde(default)]
    pub protect: bool,
    pub patch: Option<toml::Table>,
}

/// A container port; `ports = [5432]` or `ports = [{ name = "pg", port = 5432 }]`.
#[derive(Debug, Clone)]
pub enum PortSpec {
    Number(i32),
    Full(FullPortSpec),
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Port;
        impl<'de> serde::de::Visitor<'de> for Port {
            type Value = PortSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a port number (5432) or a table like { name = \"pg\", port = 5432, protocol = \"TCP\" }",
                )
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortSpec, E> {
                i32::try_from(v)
                    .map(PortSpec::Number)
                    .map_err(|_| E::custom(format!("port {v} is not between 1 and 65535")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortSpec, E> {
                i32::try_from(v)
                    .map(PortSpec::Number)
                    .map_err(|_| E::custom(format!("port {v} is not between 1 and 65535")))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<PortSpec, A::Error> {
                FullPortSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(PortSpec::Full)
            }
        }
        d.deserialize_any(Port)
    }
}

/// The long form of [`PortSpec`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullPortSpec {
    pub name: Option<String>,
    pub port: i32,
    pub protocol: Option<String>,
}

/// Container resource requests and limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    #[serde(default)]
    pub requests: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub limits: BTreeMap<String, Spanned<String>>,
}

/// `update_strategy = { type = "RollingUpdate", partition = 1 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateStrategySpec {
    #[serde(rename = "type")]
    pub kind: UpdateStrategyType,
    pub partition: Option<i32>,
    pub max_unavailable: Option<IntOrPercent>,
}

/// `retention = { when_deleted = "Retain", when_scaled = "Delete" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSpec {
    pub when_deleted: Option<RetentionPolicy>,
    pub when_scaled: Option<RetentionPolicy>,
}

/// `[[statefulset.volume_claim]]`: a volumeClaimTemplate and where it is mounted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimTemplateSpec {
    pub name: Spanned<String>,
    pub size: Spanned<String>,
    #[serde(default = "default_access_modes")]
    pub access_modes: Spanned<Vec<AccessMode>>,
    pub class: Option<Spanned<String>>,
    pub volume_mode: Option<VolumeMode>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Mount path in the container.
    pub mount: Spanned<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[[statefulset.mount]]`: mounts a standalone claim into every pod.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    pub claim: Spanned<String>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub read_only: bool,
    pub sub_path: Option<String>,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
        pub enum $name { $( $(#[serde(alias = $alias)])* $variant ),+ }
        impl $name {
            /// The Kubernetes spelling.
            pub fn as_str(&self) -> &'static str {
                match self { $( $name::$variant => stringify!($variant) ),+ }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// A volume access mode; the short forms RWO, ROX, RWX and RWOP are accepted.
    AccessMode { ReadWriteOnce | "RWO", ReadOnlyMany | "ROX", ReadWriteMany | "RWX", ReadWriteOncePod | "RWOP" }
);
string_enum!(
    /// PersistentVolume reclaim policy.
    ReclaimPolicy { Retain, Delete, Recycle }
);
string_enum!(
    /// StorageClass volumeBindingMode.
    BindingMode { Immediate, WaitForFirstConsumer }
);
string_enum!(
    /// Filesystem or Block.
    VolumeMode { Filesystem, Block }
);
string_enum!(
    /// StatefulSet podManagementPolicy.
    PodManagementPolicy { OrderedReady, Parallel }
);
string_enum!(
    /// StatefulSet updateStrategy type.
    UpdateStrategyType { RollingUpdate, OnDelete }
);
string_enum!(
    /// Deployment strategy type.
    DeploymentStrategyType { RollingUpdate, Recreate }
);
string_enum!(
    /// PVC retention policy of a StatefulSet.
    RetentionPolicy { Retain, Delete }
);

fn default_access_modes() -> Spanned<Vec<AccessMode>> {
    Spanned::new(0..0, vec![AccessMode::ReadWriteOnce])
}
