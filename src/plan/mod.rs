//! The plan: what applying the spec would do to each object, computed once and rendered by
//! several views. [`compute`] decides each object's action (pure); [`ops`] turns the steps into
//! typed operations with dependencies (pure); [`build`] gathers the inputs through the gateway.

pub mod build;
pub mod compute;
pub mod fingerprint;
pub mod mask;
pub mod normalize;
pub mod observe;
pub mod ops;
pub mod ownership;
pub mod prune;
pub mod resume;
pub mod safety;
pub mod saved;

use crate::gateway::FieldConflict;
use crate::kinds::ObjectRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the JSON plan document; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 4;

/// What applying does to one object. The executor branches on this only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    /// The object exists but is not this stack's (no labels, or another stack's): applying takes
    /// it over, which needs `--adopt` or `adopt = true` in the spec.
    Adopt,
    /// An immutable field changes: the object would have to be deleted and created again.
    Replace,
    /// Only a StatefulSet's claim templates grow: its claims are expanded and it is re-created
    /// without restarting its pods (`resize` lists the claims).
    Resize,
    NoOp,
    /// The object left the spec and is pruned (`--prune`, `destroy`); `reasons` say what goes
    /// with it.
    Delete,
    /// An adopted object left the spec: the stack's labels and field ownership are removed, the
    /// object stays.
    Release,
    /// The object could not be planned; `error` says why.
    Error,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Adopt => "adopt",
            Action::Replace => "replace",
            Action::Resize => "resize",
            Action::NoOp => "no-op",
            Action::Delete => "delete",
            Action::Release => "release",
            Action::Error => "error",
        }
    }
}

/// Identity of the live object a step was planned against, to refuse a stale saved plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveVersion {
    pub uid: String,
    pub resource_version: String,
    /// The fingerprint of our field manager's fields (see [`fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// What apply waits for after writing an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WaitPlan {
    /// A claim whose class binds `WaitForFirstConsumer`: it binds only once a pod uses it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_consumer: bool,
    /// For a StatefulSet: the claims its templates create, which must be Bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template_claims: Vec<String>,
    /// For a workload: standalone claims it mounts that wait for their first consumer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumed_claims: Vec<String>,
    /// A claim that cannot bind yet, and why (no StorageClass and no volume of its class): it
    /// is reported, not waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stays_pending: Option<String>,
}

/// One object's planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub object: ObjectRef,
    pub action: Action,
    /// Where it is defined in the spec (`claim[0]`).
    pub origin: String,
    /// Dotted paths of the fields that change (`spec.replicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_paths: Vec<String>,
    /// For `replace`: the immutable fields that force it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_paths: Vec<String>,
    /// Fields another field manager owns that this change would take (`--force-conflicts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<FieldConflict>,
    /// Human explanations: why this action, what replacing would cost, what is left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// For `error`: the API server's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `error`: where in the spec the refused field comes from (`stack.toml:12:1: key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The live object, normalized (absent for a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The object after applying, normalized: the server's dry-run result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The manifest apply sends.
    pub manifest: Value,
    /// The live object's identity when planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveVersion>,
    #[serde(default)]
    pub wait: WaitPlan,
    /// The spec says `adopt = true`: taking over this existing object needs no flag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
    /// For `resize`: the claims to expand, and whether the retention policy must first become
    /// `Retain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<ResizePlan>,
    /// `protect = true` (in the spec, or remembered in the inventory): never deleted or replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protect: bool,
    /// Claims this change deletes with their data: a StatefulSet scaled down with
    /// `whenScaled: Delete` (apply needs `--delete-data`), or deleted with `whenDeleted: Delete`
    /// (planned only with `--prune-data` or `destroy --delete-data`). The executor's gate
    /// refuses a write that would delete any other claim (see `apply::gate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deletes_claims: Vec<String>,
    /// Data this change makes deletable later, without deleting it now (a volume's reclaim
    /// policy turned to `Delete`: its data goes when its claim does): apply needs
    /// `--delete-data`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_at_risk: Vec<String>,
    /// `allow_replace = true` on a claim or volume: `--replace` may delete and re-create it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_replace: bool,
    /// Snapshots taken before this change deletes data (a claim replaced or pruned, claims a
    /// scale-down deletes): each is created and waited for until `readyToUse` before anything
    /// is deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SafetySnapshot>,
}

/// A snapshot of a claim taken before a change deletes its data (see [`safety`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetySnapshot {
    /// The claim, in the snapshot's namespace.
    pub claim: String,
    pub namespace: String,
    /// The VolumeSnapshot's name: `<claim>-before-<change>-<UTC timestamp of the plan>`.
    pub name: String,
    /// The VolumeSnapshotClass for the claim's driver.
    pub class: String,
    /// The change it precedes: `replace`, `prune`, `destroy`, `scale-down`.
    pub before: String,
}

/// What a StatefulSet claim-template resize does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizePlan {
    /// Every existing claim of the templates, including those of ordinals scaled away.
    pub claims: Vec<ClaimResize>,
    /// The StatefulSet's retention policy says `whenDeleted: Delete`: it is set to `Retain`
    /// before the StatefulSet is deleted, so the claims cannot go with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain_first: bool,
    /// The live StatefulSet with `whenDeleted: Retain` (the intermediate manifest), when
    /// `retain_first`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_manifest: Option<Value>,
    /// The pods that mount the claims once the StatefulSet is back (ordinals below its
    /// replicas), in ordinal order, each with its claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodClaims>,
    /// `--restart-pods`: after the re-create, each pod whose claims still wait for their file
    /// system (a driver that grows file systems only on mount) is deleted and waited for until
    /// its replacement is Ready, one at a time in ordinal order. Without it those claims are
    /// reported as deferred.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_pods: bool,
}

/// What a claim-template resize does with the pods when the driver grows file systems only on
/// mount (offline expansion): restarts them with `--restart-pods`, else reports their claims as
/// deferred. `None` when no pod mounts the claims.
pub fn restart_note(r: &ResizePlan) -> Option<String> {
    if r.pods.is_empty() {
        return None;
    }
    let pods = r
        .pods
        .iter()
        .map(|p| format!("pod/{}", p.pod))
        .collect::<Vec<_>>()
        .join(", ");
    Some(if r.restart_pods {
        format!(
            "then, where the driver grows file systems only on mount: restarts {pods} one at a time in ordinal order, each Ready before the next (--restart-pods); a pod whose claims grew online is not restarted"
        )
    } else {
        format!(
            "where the driver grows file systems only on mount, the claims of {pods} are reported as deferred until those pods restart (--restart-pods restarts them)"
        )
    })
}

/// A pod of a resized StatefulSet and the claims it mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodClaims {
    pub pod: String,
    pub claims: Vec<String>,
}

/// One claim to expand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResize {
    pub name: String,
    pub from: String,
    pub to: String,
}

/// An object that left the spec and is not deleted, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub object: ObjectRef,
    pub reason: String,
    /// The object's uid, so the inventory keeps recording it as the stack's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Whether the stack provably created it (an inventory entry saying so, or a claim of a
    /// StatefulSet it created): only then does the inventory keep recording it as the stack's,
    /// so that a later `destroy --delete-data` may delete it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_by_stack: bool,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    #[serde(default)]
    pub adopt: usize,
    pub replace: usize,
    #[serde(default)]
    pub resize: usize,
    #[serde(default)]
    pub delete: usize,
    #[serde(default)]
    pub release: usize,
    pub unchanged: usize,
    pub error: usize,
}

impl Summary {
    /// True when applying would change something.
    pub fn has_changes(&self) -> bool {
        self.create
            + self.update
            + self.adopt
            + self.replace
            + self.resize
            + self.delete
            + self.release
            > 0
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub stack: String,
    pub namespace: String,
    /// The API server the plan was made against.
    #[serde(default)]
    pub server: String,
    /// Serialized masked, a step at a time, inside [`mask::masking_views`].
    #[serde(serialize_with = "mask::serialize_steps")]
    pub steps: Vec<Step>,
    pub summary: Summary,
    /// Objects of this stack that the spec no longer has. Without `--prune` they stay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_in_spec: Vec<ObjectRef>,
    /// With `--prune` or `destroy`: objects that left the spec but are kept, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Kept>,
    /// "kept: 3 claims, 3 volumes with 30Gi of data", when claims or volumes are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_data: Option<String>,
    /// Located spec warnings (they never change the exit code).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<crate::spec::IssueEntry>,
    /// The operations apply runs, with their dependencies (see [`ops`]). Serialized with the
    /// manifests of `apply-manifest` operations masked inside [`mask::masking_views`].
    #[serde(default, serialize_with = "mask::serialize_operations")]
    pub operations: Vec<ops::Operation>,
}

impl Plan {
    /// Builds a plan from steps, computing the summary.
    pub fn new(stack: String, namespace: String, server: String, steps: Vec<Step>) -> Plan {
        let mut summary = Summary::default();
        for s in &steps {
            match s.action {
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Adopt => summary.adopt += 1,
                Action::Replace => summary.replace += 1,
                Action::NoOp => summary.unchanged += 1,
                Action::Delete => summary.delete += 1,
                Action::Resize => summary.resize += 1,
                Action::Release => summary.release += 1,
                Action::Error => summary.error += 1,
            }
        }
        let operations = ops::schedule(&steps);
        Plan {
            format_version: FORMAT_VERSION,
            stack,
            namespace,
            server,
            steps,
            summary,
            not_in_spec: Vec::new(),
            kept: Vec::new(),
            kept_data: None,
            warnings: Vec::new(),
            operations,
        }
    }

    /// `Plan: 2 to create, 1 to update, 0 to replace, 4 unchanged.`
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let mut line = format!("Plan: {} to create, {} to update", s.create, s.update);
        if s.adopt > 0 {
            line.push_str(&format!(", {} to adopt", s.adopt));
        }
        line.push_str(&format!(", {} to replace", s.replace));
        if s.resize > 0 {
            line.push_str(&format!(", {} to resize", s.resize));
        }
        if s.delete > 0 {
            line.push_str(&format!(", {} to delete", s.delete));
        }
        if s.release > 0 {
            line.push_str(&format!(", {} to release", s.release));
        }
        line.push_str(&format!(", {} unchanged", s.unchanged));
        if s.error > 0 {
            line.push_str(&format!(", {} failed to plan", s.error));
        }
        line.push('.');
        line
    }
}
