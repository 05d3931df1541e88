//! The plan as typed operations with dependencies, produced by a pure scheduler from the plan's
//! steps and run by one generic executor (`apply::executor`).
//!
//! Each object's change becomes one or more operations: a write (`apply`, a real `create`, or
//! `keep` for no change), then a `wait` with the kind's rule. A change that takes several steps
//! is a recipe of operations linked by dependencies, never a branch in the executor: replacing is
//! `delete` (orphan, uid precondition) → `wait` until gone → `create` → `wait`. The rollout order
//! is [`ROLLOUT_ORDER`]: every write of a phase depends on the completion of the phases before,
//! except where the objects it needs are known (`related`: a claim's volume, a workload's
//! claims and Service), and then on those alone.

use super::{Action, Step};
use crate::gateway::Propagation;
use crate::kinds::{Kind, ObjectRef, ROLLOUT_ORDER};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What a wait waits for. Each rule is a pure function of the object (see `apply::waits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitRule {
    /// A PersistentVolume is `Available` or `Bound`.
    VolumeAvailable,
    /// A claim is `Bound`.
    ClaimBound,
    /// A StatefulSet's pods are ready and updated.
    StatefulSetReady,
    /// A Deployment's replicas are updated and available.
    DeploymentReady,
    /// A DaemonSet's pods are scheduled, updated and ready on every selected node.
    DaemonSetReady,
    /// The object no longer exists.
    Gone,
    /// A VolumeSnapshot is `readyToUse`.
    SnapshotReady,
    /// A claim's `status.capacity` has reached its request (an expansion is done); a claim whose
    /// file system waits for a pod that no pod provides is reported as deferred.
    ClaimResized,
    /// The controller part of a claim's expansion is done: `status.capacity` has reached the
    /// request, or the claim waits only for the node (`FileSystemResizePending`). What a
    /// claim-template resize waits for before it re-creates the StatefulSet.
    ClaimExpanded,
    /// A pod is Ready and is not the one a `restart-pod` operation deleted (its controller
    /// created a new one).
    PodReplaced,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: usize,
    pub object: ObjectRef,
    /// The plan step this operation belongs to (its manifest, its live version).
    pub step: usize,
    #[serde(flatten)]
    pub op: Op,
    /// Operations that must have succeeded before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<usize>,
    /// Starts only once the rollout phase with this index (see [`ROLLOUT_ORDER`]) is complete:
    /// every operation marked with `completes_phase` of that index has succeeded. One gate per
    /// phase instead of a list of every operation before it keeps the plan linear in size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_phase: Option<usize>,
    /// This operation is one of those that complete the phase with this index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completes_phase: Option<usize>,
}

/// The operation types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Server-side apply of the step's manifest. With `resource_version`, the write fails if the
    /// object changed since (other than in status).
    Apply {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_version: Option<String>,
    },
    /// A real create of the step's manifest: fails if the object appeared meanwhile.
    Create,
    /// Server-side apply of a manifest of its own (a step of a recipe: a claim's new size, a
    /// StatefulSet's retention policy set to `Retain` first).
    ApplyManifest {
        manifest: serde_json::Value,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    /// Nothing to write: the object is as the spec says.
    Keep,
    /// Deletes the object if its uid is still `uid`.
    Delete {
        uid: String,
        propagation: Propagation,
    },
    /// Watches the object until the rule is met.
    Wait { rule: WaitRule },
    /// Reports that a wait happens later, or not at all (a claim waiting for its consumer).
    Defer { message: String },
    /// Creates a VolumeSnapshot (the operation's object) of `claim` with `class`, labelled with
    /// the stack and the claim, before a change deletes the claim's data (`before`: `replace`,
    /// `prune`, `destroy`, `scale-down`). A snapshot of that name and claim that exists already
    /// (an apply interrupted after taking it) counts as taken.
    Snapshot {
        claim: String,
        class: String,
        before: String,
    },
    /// Deletes the pod (the operation's object, uid precondition) when one of `claims` still
    /// waits for its file system to grow on mount (`FileSystemResizePending`); otherwise leaves
    /// it running. Its controller creates it again, and the new pod's mount grows the file
    /// system (a driver that expands only offline).
    RestartPod { claims: Vec<String> },
}

/// Deferral of a claim whose class binds on first consumer, confirmed after `consumer` (the
/// workload of the plan that mounts it) when there is one.
pub fn defer_to_consumer(consumer: Option<&ObjectRef>) -> String {
    match consumer {
        Some(w) => format!(
            "waits for first consumer (class binds WaitForFirstConsumer); confirmed after {}'s pods are scheduled",
            w.short()
        ),
        None => "waits for first consumer (class binds WaitForFirstConsumer); it binds when a pod mounts it".into(),
    }
}
/// A claim that waits for a consumer no workload of the stack provides.
pub const NO_CONSUMER: &str = "still waits for its first consumer: no workload of this stack mounts it, so it binds when a pod uses it";

struct Builder {
    ops: Vec<Operation>,
    /// The phase gate every operation pushed now waits for (the last completed phase).
    gate: Option<usize>,
    /// The next gate's index.
    gates: usize,
    /// Operations of the current step that end parallel branches of its recipe: they
    /// complete the phase alongside the step's last operation.
    extra_done: Vec<usize>,
}

impl Builder {
    fn push(&mut self, step: usize, object: &ObjectRef, op: Op, mut after: Vec<usize>) -> usize {
        let id = self.ops.len();
        // Each dependency once, in the order given.
        let mut seen = std::collections::HashSet::new();
        after.retain(|a| seen.insert(*a));
        self.ops.push(Operation {
            id,
            object: object.clone(),
            step,
            op,
            // An operation with dependencies is gated through them.
            after_phase: if after.is_empty() { self.gate } else { None },
            after,
            completes_phase: None,
        });
        id
    }

    /// Closes a phase: the operations in `done` complete it, and every operation pushed from
    /// now on waits for them through one gate (not a list of them each).
    fn close_phase(&mut self, done: Vec<usize>) {
        if done.is_empty() {
            return;
        }
        let g = self.gates;
        self.gates += 1;
        for id in done {
            self.ops[id].completes_phase = Some(g);
        }
        self.gate = Some(g);
    }
}

/// The state of the scheduling of one plan.
#[derive(Default)]
struct State {
    /// Claims whose wait is deferred to their consumer: name → step index.
    deferred: Vec<(String, usize)>,
    consumed: Vec<String>,
    /// The last operation of each object's change, for dependencies inside a phase (a snapshot
    /// after its claim is Bound, a restored claim after its snapshot is ready).
    done_of: HashMap<ObjectRef, usize>,
    /// The `ClaimBound` wait of each claim bound in the workloads' phase (see
    /// [`bound_by_workload`]).
    bound: HashMap<ObjectRef, usize>,
}

/// The object a step's object is made from: a snapshot's claim, a restored claim's snapshot.
fn source(step: &Step) -> Option<ObjectRef> {
    let ns = step.object.namespace.clone().unwrap_or_default();
    let made_from = match step.object.kind {
        Kind::VolumeSnapshot => Kind::PersistentVolumeClaim,
        Kind::PersistentVolumeClaim => Kind::VolumeSnapshot,
        _ => return None,
    };
    step.object
        .kind
        .rules()
        .dependencies(&step.manifest, &ns)
        .into_iter()
        .find(|d| d.kind == made_from)
}

fn planned(step: &Step) -> bool {
    !matches!(step.action, Action::Error | Action::Delete)
}

/// Claims that are Bound only in the workloads' phase, each with the step of the workload that
/// binds it: a claim of a `WaitForFirstConsumer` class that a workload of the plan mounts (the
/// first such workload), and a claim made from a StatefulSet's template.
fn bound_by_workload(steps: &[Step]) -> HashMap<ObjectRef, usize> {
    let deferred: HashSet<&ObjectRef> = steps
        .iter()
        .filter(|s| {
            s.object.kind == Kind::PersistentVolumeClaim
                && planned(s)
                && s.wait.first_consumer
                && s.wait.stays_pending.is_none()
        })
        .map(|s| &s.object)
        .collect();
    let mut out = HashMap::new();
    for (i, w) in steps.iter().enumerate() {
        if !w.object.kind.is_workload() || !planned(w) {
            continue;
        }
        let ns = w.object.namespace.clone().unwrap_or_default();
        for c in &w.wait.template_claims {
            out.entry(ObjectRef::new(Kind::PersistentVolumeClaim, &ns, c))
                .or_insert(i);
        }
        for c in &w.wait.consumed_claims {
            let id = ObjectRef::new(Kind::PersistentVolumeClaim, &ns, c);
            if deferred.contains(&id) {
                out.entry(id).or_insert(i);
            }
        }
    }
    out
}

/// Steps of the claims' phase that need a claim Bound only in the workloads' phase (see
/// [`bound_by_workload`]), and so are scheduled there: a snapshot of such a claim, a claim
/// restored from such a snapshot, a snapshot of that claim… Each with the object it needs
/// (that claim, or that snapshot).
fn late_steps(steps: &[Step], bound_by: &HashMap<ObjectRef, usize>) -> BTreeMap<usize, ObjectRef> {
    let mut late = BTreeMap::new();
    if bound_by.is_empty() {
        return late;
    }
    let mut needed: HashSet<ObjectRef> = bound_by.keys().cloned().collect();
    // Each round adds a link of a chain claim → snapshot → restored claim → …; bounded by the
    // number of steps.
    loop {
        let mut grew = false;
        for (i, s) in steps.iter().enumerate() {
            if late.contains_key(&i) || !planned(s) {
                continue;
            }
            if let Some(src) = source(s).filter(|src| needed.contains(src)) {
                late.insert(i, src);
                needed.insert(s.object.clone());
                grew = true;
            }
        }
        if !grew {
            return late;
        }
    }
}

/// The steps applied in the workloads' phase although their kind is applied with the claims
/// (see [`late_steps`]).
pub fn late_step_indices(steps: &[Step]) -> Vec<usize> {
    late_steps(steps, &bound_by_workload(steps))
        .into_keys()
        .collect()
}

/// What the plan says of the steps scheduled in the workloads' phase although their kind is
/// applied with the claims (see [`late_steps`]): one reason each, for steps that change.
pub fn explain_order(steps: &mut [Step]) {
    let bound_by = bound_by_workload(steps);
    let late = late_steps(steps, &bound_by);
    for (i, needs) in late {
        if steps[i].action == Action::NoOp {
            continue;
        }
        let why = match bound_by.get(&needs) {
            Some(w) => {
                let workload = &steps[*w];
                let how = if workload.wait.template_claims.contains(&needs.name) {
                    format!(
                        "{} creates it from its claim template",
                        workload.object.short()
                    )
                } else {
                    format!(
                        "its class binds WaitForFirstConsumer, so it binds once {}'s pods are scheduled",
                        workload.object.short()
                    )
                };
                format!(
                    "taken in the workloads' phase, once {} is Bound: {how}",
                    needs.short()
                )
            }
            None if needs.kind == Kind::VolumeSnapshot => format!(
                "created in the workloads' phase, once {} is ready",
                needs.short()
            ),
            None => format!(
                "taken in the workloads' phase, once {} is Bound",
                needs.short()
            ),
        };
        steps[i].reasons.push(why);
    }
}

/// The operations that carry out `steps`, in rollout order. Steps that failed to plan get none.
pub fn schedule(steps: &[Step]) -> Vec<Operation> {
    let mut b = Builder {
        ops: Vec::new(),
        gate: None,
        gates: 0,
        extra_done: Vec::new(),
    };
    let mut st = State::default();
    let bound_by = bound_by_workload(steps);
    // Steps that wait for a claim bound in the workloads' phase, not yet scheduled.
    let late = late_steps(steps, &bound_by);
    let mut waiting: Vec<usize> = late.keys().copied().collect();
    for phase in ROLLOUT_ORDER {
        let mut next_gate = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if !phase.contains(&step.object.kind) || !planned(step) || late.contains_key(&i) {
                continue;
            }
            let consumer = bound_by.get(&step.object).map(|w| &steps[*w].object);
            let defer = defer_to_consumer(consumer);
            schedule_step(&mut b, &mut st, i, step, Vec::new(), &defer, &mut next_gate);
            if !step.object.kind.is_workload() || waiting.is_empty() {
                continue;
            }
            // The steps this workload's claims were waited for: each once what it needs is
            // done (a claim Bound, a snapshot ready), in this phase.
            loop {
                let ready: Vec<(usize, usize)> = waiting
                    .iter()
                    .filter_map(|j| {
                        let needs = &late[j];
                        let done = if bound_by.contains_key(needs) {
                            st.bound.get(needs)
                        } else {
                            st.done_of.get(needs)
                        };
                        done.map(|d| (*j, *d))
                    })
                    .collect();
                if ready.is_empty() {
                    break;
                }
                for (j, after) in ready {
                    waiting.retain(|w| *w != j);
                    let consumer = bound_by.get(&steps[j].object).map(|w| &steps[*w].object);
                    let defer = defer_to_consumer(consumer);
                    schedule_step(
                        &mut b,
                        &mut st,
                        j,
                        &steps[j],
                        vec![after],
                        &defer,
                        &mut next_gate,
                    );
                }
            }
        }
        b.close_phase(next_gate);
    }
    // What waited for a workload that did not bind its claim (none is planned): after the
    // rollout, as before.
    let mut next_gate = Vec::new();
    for j in waiting {
        schedule_step(
            &mut b,
            &mut st,
            j,
            &steps[j],
            Vec::new(),
            &defer_to_consumer(bound_by.get(&steps[j].object).map(|w| &steps[*w].object)),
            &mut next_gate,
        );
    }
    b.close_phase(next_gate);
    let State {
        deferred, consumed, ..
    } = st;
    // Claims deleted with their data are snapshotted before the first deletion.
    let mut snapshots = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if step.action == Action::Delete {
            snapshots.extend(snapshot_ops(&mut b, i, step, Vec::new()));
        }
    }
    b.close_phase(snapshots);
    // Deletions run after the rollout, in reverse phase order, each waited for until gone.
    for phase in ROLLOUT_ORDER.iter().rev() {
        let mut next_gate = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if !phase.contains(&step.object.kind) || step.action != Action::Delete {
                continue;
            }
            let uid = step
                .live
                .as_ref()
                .map(|l| l.uid.clone())
                .unwrap_or_default();
            let delete = b.push(
                i,
                &step.object,
                Op::Delete {
                    uid,
                    propagation: Propagation::Background,
                },
                Vec::new(),
            );
            let gone = b.push(
                i,
                &step.object,
                Op::Wait {
                    rule: WaitRule::Gone,
                },
                vec![delete],
            );
            next_gate.push(gone);
        }
        b.close_phase(next_gate);
    }
    for (name, i) in &deferred {
        if !consumed.contains(name) {
            b.push(
                *i,
                &steps[*i].object,
                Op::Defer {
                    message: NO_CONSUMER.into(),
                },
                Vec::new(),
            );
        }
    }
    b.ops
}

/// The operations of one step: its write, its wait, and for a workload the waits of the claims
/// it binds. `extra`: operations it waits for besides those it needs by its kind; `defer`: the
/// message of a claim deferred to its first consumer. The operations that end the step go to
/// `next_gate`.
fn schedule_step(
    b: &mut Builder,
    st: &mut State,
    i: usize,
    step: &Step,
    extra: Vec<usize>,
    defer: &str,
    next_gate: &mut Vec<usize>,
) {
    let rule = step.object.kind.rules().wait_rule();
    let mut gate = extra;
    if let Some(dep) = source(step).and_then(|s| st.done_of.get(&s)) {
        gate.push(*dep);
    }
    gate.extend(related(step, &st.done_of));
    gate.sort_unstable();
    gate.dedup();
    // Data this change deletes is snapshotted first, and every write waits for that.
    let snapshots = snapshot_ops(b, i, step, gate.clone());
    if !snapshots.is_empty() {
        gate = snapshots;
    }
    let written = match step.action {
        Action::Replace => replace_recipe(b, i, step, gate.clone()),
        Action::Resize => resize_recipe(b, i, step, gate.clone()),
        Action::Create => b.push(i, &step.object, Op::Create, gate.clone()),
        Action::Update | Action::Adopt | Action::Release => b.push(
            i,
            &step.object,
            Op::Apply {
                resource_version: step.live.as_ref().map(|l| l.resource_version.clone()),
            },
            gate,
        ),
        Action::NoOp | Action::Error | Action::Delete => {
            b.push(i, &step.object, Op::Keep, gate.clone())
        }
    };
    if let Some(why) = &step.wait.stays_pending {
        let id = b.push(
            i,
            &step.object,
            Op::Defer {
                message: why.clone(),
            },
            vec![written],
        );
        st.done_of.insert(step.object.clone(), id);
        next_gate.push(id);
        return;
    }
    if step.wait.first_consumer {
        let id = b.push(
            i,
            &step.object,
            Op::Defer {
                message: defer.into(),
            },
            vec![written],
        );
        st.deferred.push((step.object.name.clone(), i));
        st.done_of.insert(step.object.clone(), id);
        next_gate.push(id);
        return;
    }
    let grows = step.object.kind == Kind::PersistentVolumeClaim
        && step
            .changed_paths
            .iter()
            .any(|p| p == "spec.resources.requests.storage");
    let rule = if grows {
        Some(WaitRule::ClaimResized)
    } else {
        rule
    };
    let done = match (rule, step.action) {
        // A replaced or resized object's recipe ends with its own wait; a released one
        // is no longer the stack's to wait for.
        (_, Action::Replace | Action::Resize | Action::Release) | (None, _) => written,
        (Some(rule), _) => b.push(i, &step.object, Op::Wait { rule }, vec![written]),
    };
    st.done_of.insert(step.object.clone(), done);
    next_gate.push(done);
    next_gate.append(&mut b.extra_done);
    if step.object.kind.is_workload() {
        let ns = step.object.namespace.clone().unwrap_or_default();
        let claims = step.wait.template_claims.iter().chain(
            step.wait
                .consumed_claims
                .iter()
                .filter(|c| st.deferred.iter().any(|(d, _)| d == *c)),
        );
        for claim in claims {
            let claim_ref = ObjectRef::new(Kind::PersistentVolumeClaim, &ns, claim);
            let owner = st
                .deferred
                .iter()
                .find(|(d, _)| d == claim)
                .map_or(i, |(_, s)| *s);
            let id = b.push(
                owner,
                &claim_ref,
                Op::Wait {
                    rule: WaitRule::ClaimBound,
                },
                vec![done],
            );
            st.bound.entry(claim_ref).or_insert(id);
            next_gate.push(id);
        }
        st.consumed
            .extend(step.wait.consumed_claims.iter().cloned());
    }
}

/// The snapshots a step takes before it deletes data: per claim, a create of the snapshot and a
/// wait until it is `readyToUse`. Returns the waits' ids (what the deletion must wait for).
fn snapshot_ops(b: &mut Builder, i: usize, step: &Step, after: Vec<usize>) -> Vec<usize> {
    step.snapshots
        .iter()
        .map(|s| {
            let id = ObjectRef::new(Kind::VolumeSnapshot, &s.namespace, &s.name);
            let create = b.push(
                i,
                &id,
                Op::Snapshot {
                    claim: s.claim.clone(),
                    class: s.class.clone(),
                    before: s.before.clone(),
                },
                after.clone(),
            );
            b.push(
                i,
                &id,
                Op::Wait {
                    rule: WaitRule::SnapshotReady,
                },
                vec![create],
            )
        })
        .collect()
}

/// What an object's change waits for instead of the whole phase before it, so that it starts as
/// soon as the objects it needs are ready: those of the plan that its kind says it needs
/// ([`crate::kinds::KindRules::dependencies`]: a claim its volume and its snapshot, a snapshot
/// its claim, a workload without claim templates the claims it mounts and its Service). Empty —
/// the phase gate applies — when none of them is in the plan.
fn related(step: &Step, done_of: &HashMap<ObjectRef, usize>) -> Vec<usize> {
    let id = &step.object;
    let ns = id.namespace.clone().unwrap_or_default();
    let needs = id.kind.rules().dependencies(&step.manifest, &ns);
    let mut deps: Vec<usize> = needs
        .iter()
        .filter_map(|n| done_of.get(n).copied())
        .collect();
    deps.sort_unstable();
    deps.dedup();
    deps
}

/// Replace: orphan-delete (uid precondition) → wait until gone → create → wait with the kind's
/// rule. Returns the id of the last operation.
fn replace_recipe(b: &mut Builder, i: usize, step: &Step, after: Vec<usize>) -> usize {
    let id = &step.object;
    let uid = step
        .live
        .as_ref()
        .map(|l| l.uid.clone())
        .unwrap_or_default();
    let delete = b.push(
        i,
        id,
        Op::Delete {
            uid,
            propagation: Propagation::Orphan,
        },
        after,
    );
    let gone = b.push(
        i,
        id,
        Op::Wait {
            rule: WaitRule::Gone,
        },
        vec![delete],
    );
    let create = b.push(i, id, Op::Create, vec![gone]);
    match id.kind.rules().wait_rule() {
        Some(rule) => b.push(i, id, Op::Wait { rule }, vec![create]),
        None => create,
    }
}

/// StatefulSet claim-template resize: (retention set to `Retain` first, when it says
/// `Delete`) → expand every existing claim and wait until the controller part is done (the new
/// capacity, or only the file system left to grow on the node) → orphan-delete the StatefulSet
/// (uid precondition) → wait until gone → create it from the spec → wait until ready → wait for
/// each claim's file system. With `restart_pods`, that last part goes pod by pod in ordinal
/// order: restart the pod if one of its claims still waits for its file system (a driver that
/// grows file systems only on mount) → wait until its replacement is Ready → wait for its
/// claims; the next pod starts after. Without it, a claim whose file system waits for a pod
/// that started before the expansion is reported as deferred. Each step is idempotent, so an
/// interrupted resize finishes when apply runs again: a claim already expanded is expanded again
/// at no cost, and a StatefulSet deleted but not re-created is planned as a create.
fn resize_recipe(b: &mut Builder, i: usize, step: &Step, after: Vec<usize>) -> usize {
    let id = &step.object;
    let ns = id.namespace.clone().unwrap_or_default();
    let plan = step.resize.clone().unwrap_or(super::ResizePlan {
        claims: Vec::new(),
        retain_first: false,
        retain_manifest: None,
        pods: Vec::new(),
        restart_pods: false,
    });
    let mut gate = after;
    if let Some(manifest) = plan.retain_manifest.clone().filter(|_| plan.retain_first) {
        let retain = b.push(
            i,
            id,
            Op::ApplyManifest {
                manifest,
                force: false,
            },
            gate.clone(),
        );
        gate = vec![retain];
    }
    let mut expanded = Vec::new();
    for c in &plan.claims {
        let claim = ObjectRef::new(Kind::PersistentVolumeClaim, &ns, &c.name);
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": { "name": c.name, "namespace": ns },
            "spec": { "resources": { "requests": { "storage": c.to } } },
        });
        // The StatefulSet controller created the claim and owns its request: take that field.
        let expand = b.push(
            i,
            &claim,
            Op::ApplyManifest {
                manifest,
                force: true,
            },
            gate.clone(),
        );
        expanded.push(b.push(
            i,
            &claim,
            Op::Wait {
                rule: WaitRule::ClaimExpanded,
            },
            vec![expand],
        ));
    }
    if !expanded.is_empty() {
        gate = expanded;
    }
    let uid = step
        .live
        .as_ref()
        .map(|l| l.uid.clone())
        .unwrap_or_default();
    let delete = b.push(
        i,
        id,
        Op::Delete {
            uid,
            propagation: Propagation::Orphan,
        },
        gate,
    );
    let gone = b.push(
        i,
        id,
        Op::Wait {
            rule: WaitRule::Gone,
        },
        vec![delete],
    );
    let create = b.push(i, id, Op::Create, vec![gone]);
    let ready = b.push(
        i,
        id,
        Op::Wait {
            rule: WaitRule::StatefulSetReady,
        },
        vec![create],
    );
    // The file systems: pod by pod with `restart_pods`, else every claim at once.
    let resized = |b: &mut Builder, name: &str, after: usize| {
        let claim = ObjectRef::new(Kind::PersistentVolumeClaim, &ns, name);
        b.push(
            i,
            &claim,
            Op::Wait {
                rule: WaitRule::ClaimResized,
            },
            vec![after],
        )
    };
    let mut ends = Vec::new();
    let mut by_pod: Vec<&str> = Vec::new();
    if plan.restart_pods {
        // Each pod restarts once the pod before it is Ready and its claims have grown.
        let mut prev = vec![ready];
        for p in &plan.pods {
            let claims: Vec<String> = p
                .claims
                .iter()
                .filter(|c| plan.claims.iter().any(|r| &r.name == *c))
                .cloned()
                .collect();
            if claims.is_empty() {
                continue;
            }
            let pod = ObjectRef::new(Kind::Pod, &ns, &p.pod);
            let restart = b.push(
                i,
                &pod,
                Op::RestartPod {
                    claims: claims.clone(),
                },
                prev.clone(),
            );
            let replaced = b.push(
                i,
                &pod,
                Op::Wait {
                    rule: WaitRule::PodReplaced,
                },
                vec![restart],
            );
            prev = claims.iter().map(|c| resized(b, c, replaced)).collect();
            by_pod.extend(p.claims.iter().map(String::as_str));
        }
        if prev != [ready] {
            ends.extend(prev);
        }
    }
    for c in plan
        .claims
        .iter()
        .filter(|c| !by_pod.contains(&c.name.as_str()))
    {
        ends.push(resized(b, &c.name, ready));
    }
    // The recipe's result is one operation; the other final waits complete the phase too.
    match ends.split_last() {
        None => ready,
        Some((last, others)) => {
            b.extra_done.extend(others.iter().copied());
            *last
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::{LiveVersion, WaitPlan};
    use serde_json::json;

    pub(crate) fn step(kind: Kind, name: &str, action: Action) -> Step {
        Step {
            object: ObjectRef::new(kind, "ns", name),
            action,
            origin: String::new(),
            changed_paths: vec![],
            replace_paths: vec![],
            conflicts: vec![],
            reasons: vec![],
            error: None,
            location: None,
            before: None,
            after: None,
            manifest: json!({"metadata": {"name": name}}),
            live: (action != Action::Create).then(|| LiveVersion {
                uid: format!("uid-{name}"),
                resource_version: "7".into(),
                ..Default::default()
            }),
            wait: WaitPlan::default(),
            adopt: false,
            protect: false,
            resize: None,
            deletes_claims: Vec::new(),
            data_at_risk: Vec::new(),
            allow_replace: false,
            snapshots: Vec::new(),
        }
    }

    fn describe(ops: &[Operation]) -> Vec<String> {
        ops.iter()
            .map(|o| {
                let what = match &o.op {
                    Op::Apply { .. } => "apply".to_string(),
                    Op::ApplyManifest { force, .. } => format!("apply-manifest force={force}"),
                    Op::Create => "create".into(),
                    Op::Keep => "keep".into(),
                    Op::Delete { .. } => "delete".into(),
                    Op::Wait { rule } => format!("wait {rule:?}"),
                    Op::Defer { .. } => "defer".into(),
                    Op::Snapshot { claim, .. } => format!("snapshot of {claim}"),
                    Op::RestartPod { claims } => format!("restart-pod for {}", claims.join(",")),
                };
                let gate = o
                    .after_phase
                    .map(|p| format!(" after phase {p}"))
                    .unwrap_or_default();
                let completes = o
                    .completes_phase
                    .map(|p| format!(" completes {p}"))
                    .unwrap_or_default();
                format!(
                    "{} {what} after {:?}{gate}{completes}",
                    o.object.short(),
                    o.after
                )
            })
            .collect()
    }

    #[test]
    fn phases_gate_each_other_and_waits_follow_writes() {
        let steps = vec![
            step(Kind::StatefulSet, "db", Action::Update),
            step(Kind::PersistentVolume, "pv-a", Action::Create),
            step(Kind::PersistentVolume, "pv-b", Action::NoOp),
            step(Kind::PersistentVolumeClaim, "c", Action::Create),
        ];
        let ops = schedule(&steps);
        assert_eq!(
            describe(&ops),
            vec![
                "pv/pv-a create after []",
                "pv/pv-a wait VolumeAvailable after [0] completes 0",
                "pv/pv-b keep after []",
                "pv/pv-b wait VolumeAvailable after [2] completes 0",
                "pvc/c create after [] after phase 0",
                "pvc/c wait ClaimBound after [4] completes 1",
                "statefulset/db apply after [] after phase 1",
                "statefulset/db wait StatefulSetReady after [6] completes 2",
            ]
        );
        assert_eq!(
            ops[6].op,
            Op::Apply {
                resource_version: Some("7".into())
            }
        );
    }

    #[test]
    fn claims_and_workloads_wait_for_what_they_use_only() {
        let mut pinned = step(Kind::PersistentVolumeClaim, "pinned", Action::Create);
        pinned.manifest = json!({"metadata": {"name": "pinned"}, "spec": {"volumeName": "pv-b"}});
        let mut elsewhere = step(Kind::PersistentVolumeClaim, "elsewhere", Action::Create);
        elsewhere.manifest =
            json!({"metadata": {"name": "elsewhere"}, "spec": {"volumeName": "not-in-plan"}});
        let mut app = step(Kind::Deployment, "app", Action::Create);
        app.manifest = json!({"metadata": {"name": "app"}, "spec": {"template": {"spec": {
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "pinned"}}]}}}});
        let mut db = step(Kind::StatefulSet, "db", Action::Create);
        db.manifest = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db",
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let steps = vec![
            step(Kind::PersistentVolume, "pv-a", Action::Create),
            step(Kind::PersistentVolume, "pv-b", Action::Create),
            pinned,
            elsewhere,
            step(Kind::Service, "db", Action::Create),
            app,
            db,
        ];
        let ops = schedule(&steps);
        assert_eq!(
            describe(&ops),
            vec![
                "pv/pv-a create after []",
                "pv/pv-a wait VolumeAvailable after [0] completes 0",
                "pv/pv-b create after []",
                "pv/pv-b wait VolumeAvailable after [2] completes 0",
                // Its own volume only, not pv-a.
                "pvc/pinned create after [3]",
                "pvc/pinned wait ClaimBound after [4] completes 1",
                // A volume outside the plan: the whole phase before.
                "pvc/elsewhere create after [] after phase 0",
                "pvc/elsewhere wait ClaimBound after [6] completes 1",
                "service/db create after [] after phase 1 completes 2",
                // The claim it mounts; no Service governs a Deployment.
                "deployment/app create after [5]",
                "deployment/app wait DeploymentReady after [9] completes 3",
                // Claim templates may bind any volume: the phase order.
                "statefulset/db create after [] after phase 2",
                "statefulset/db wait StatefulSetReady after [11] completes 3",
            ]
        );
    }

    #[test]
    fn first_consumer_claims_are_waited_for_after_their_statefulset() {
        let mut claim = step(Kind::PersistentVolumeClaim, "shared", Action::Create);
        claim.wait.first_consumer = true;
        let mut lonely = step(Kind::PersistentVolumeClaim, "lonely", Action::Create);
        lonely.wait.first_consumer = true;
        let mut sts = step(Kind::StatefulSet, "db", Action::Create);
        sts.wait.template_claims = vec!["data-db-0".into()];
        sts.wait.consumed_claims = vec!["shared".into()];
        let ops = schedule(&[claim, lonely, sts]);
        assert_eq!(
            describe(&ops),
            vec![
                "pvc/shared create after []",
                "pvc/shared defer after [0] completes 0",
                "pvc/lonely create after []",
                "pvc/lonely defer after [2] completes 0",
                "statefulset/db create after [] after phase 0",
                "statefulset/db wait StatefulSetReady after [4] completes 1",
                "pvc/data-db-0 wait ClaimBound after [5] completes 1",
                "pvc/shared wait ClaimBound after [5] completes 1",
                "pvc/lonely defer after [] after phase 1",
            ]
        );
        // The deferred claim's wait belongs to the claim's own step.
        assert_eq!(ops[7].step, 0);
        // The deferral names the workload that binds the claim, and promises none otherwise.
        let message = |o: &Operation| match &o.op {
            Op::Defer { message } => message.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            message(&ops[1]),
            "waits for first consumer (class binds WaitForFirstConsumer); confirmed after statefulset/db's pods are scheduled"
        );
        assert_eq!(
            message(&ops[3]),
            "waits for first consumer (class binds WaitForFirstConsumer); it binds when a pod mounts it"
        );
    }

    fn snapshot_of(name: &str, claim: &str) -> Step {
        let mut s = step(Kind::VolumeSnapshot, name, Action::Create);
        s.manifest = json!({"metadata": {"name": name},
            "spec": {"source": {"persistentVolumeClaimName": claim}}});
        s
    }

    fn restored(name: &str, snapshot: &str) -> Step {
        let mut s = step(Kind::PersistentVolumeClaim, name, Action::Create);
        s.manifest = json!({"metadata": {"name": name}, "spec": {"dataSourceRef": {
            "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}}});
        s
    }

    #[test]
    fn a_snapshot_of_a_first_consumer_claim_is_taken_once_its_deployment_bound_it() {
        let mut claim = step(Kind::PersistentVolumeClaim, "orders", Action::Create);
        claim.wait.first_consumer = true;
        let mut app = step(Kind::Deployment, "app", Action::Create);
        app.wait.consumed_claims = vec!["orders".into()];
        let mut steps = vec![
            claim,
            snapshot_of("orders-snap", "orders"),
            restored("orders-copy", "orders-snap"),
            app,
        ];
        let ops = schedule(&steps);
        assert_eq!(
            describe(&ops),
            vec![
                "pvc/orders create after []",
                "pvc/orders defer after [0] completes 0",
                // Nothing else waits in the claims' phase: the Deployment that binds the claim
                // is not held back by its snapshot.
                "deployment/app create after [] after phase 0",
                "deployment/app wait DeploymentReady after [2] completes 1",
                "pvc/orders wait ClaimBound after [3] completes 1",
                "volumesnapshot/orders-snap create after [1, 4]",
                "volumesnapshot/orders-snap wait SnapshotReady after [5] completes 1",
                "pvc/orders-copy create after [6]",
                "pvc/orders-copy wait ClaimBound after [7] completes 1",
            ]
        );
        assert_eq!(
            ops[1].op,
            Op::Defer {
                message: "waits for first consumer (class binds WaitForFirstConsumer); confirmed after deployment/app's pods are scheduled".into()
            }
        );
        explain_order(&mut steps);
        assert_eq!(
            steps[1].reasons,
            vec![
                "taken in the workloads' phase, once pvc/orders is Bound: its class binds WaitForFirstConsumer, so it binds once deployment/app's pods are scheduled"
            ]
        );
        assert_eq!(
            steps[2].reasons,
            vec!["created in the workloads' phase, once volumesnapshot/orders-snap is ready"]
        );
        assert!(steps[0].reasons.is_empty() && steps[3].reasons.is_empty());
    }

    #[test]
    fn a_snapshot_of_a_template_claim_is_taken_once_its_statefulset_bound_it() {
        let mut sts = step(Kind::StatefulSet, "db", Action::Create);
        sts.wait.template_claims = vec!["data-db-0".into()];
        let mut bound = step(Kind::PersistentVolumeClaim, "logs", Action::Create);
        bound.wait = WaitPlan::default();
        let mut steps = vec![
            bound,
            snapshot_of("logs-snap", "logs"),
            snapshot_of("db-snap", "data-db-0"),
            sts,
        ];
        let ops = schedule(&steps);
        assert_eq!(
            describe(&ops),
            vec![
                "pvc/logs create after []",
                "pvc/logs wait ClaimBound after [0] completes 0",
                // A claim Bound in the claims' phase: its snapshot stays there.
                "volumesnapshot/logs-snap create after [1]",
                "volumesnapshot/logs-snap wait SnapshotReady after [2] completes 0",
                "statefulset/db create after [] after phase 0",
                "statefulset/db wait StatefulSetReady after [4] completes 1",
                "pvc/data-db-0 wait ClaimBound after [5] completes 1",
                "volumesnapshot/db-snap create after [6]",
                "volumesnapshot/db-snap wait SnapshotReady after [7] completes 1",
            ]
        );
        explain_order(&mut steps);
        assert!(steps[1].reasons.is_empty());
        assert_eq!(
            steps[2].reasons,
            vec![
                "taken in the workloads' phase, once pvc/data-db-0 is Bound: statefulset/db creates it from its claim template"
            ]
        );
    }

    #[test]
    fn a_snapshot_of_a_claim_no_planned_workload_binds_stays_with_the_claims() {
        let mut claim = step(Kind::PersistentVolumeClaim, "orders", Action::Create);
        claim.wait.first_consumer = true;
        let mut app = step(Kind::Deployment, "app", Action::Error);
        app.wait.consumed_claims = vec!["orders".into()];
        let ops = schedule(&[claim, snapshot_of("orders-snap", "orders"), app]);
        assert_eq!(
            describe(&ops),
            vec![
                "pvc/orders create after []",
                "pvc/orders defer after [0] completes 0",
                "volumesnapshot/orders-snap create after [1]",
                "volumesnapshot/orders-snap wait SnapshotReady after [2] completes 0",
                "pvc/orders defer after [] after phase 0",
            ]
        );
    }

    #[test]
    fn replace_is_a_recipe_of_operations() {
        let ops = schedule(&[step(Kind::StatefulSet, "db", Action::Replace)]);
        assert_eq!(
            describe(&ops),
            vec![
                "statefulset/db delete after []",
                "statefulset/db wait Gone after [0]",
                "statefulset/db create after [1]",
                "statefulset/db wait StatefulSetReady after [2] completes 0",
            ]
        );
        assert_eq!(
            ops[0].op,
            Op::Delete {
                uid: "uid-db".into(),
                propagation: Propagation::Orphan
            }
        );
    }

    #[test]
    fn deletions_follow_the_rollout_in_reverse_order() {
        let steps = vec![
            step(Kind::PersistentVolume, "pv", Action::Delete),
            step(Kind::StatefulSet, "old", Action::Delete),
            step(Kind::PersistentVolumeClaim, "c", Action::Delete),
            step(Kind::StatefulSet, "new", Action::Create),
        ];
        let ops = schedule(&steps);
        assert_eq!(
            describe(&ops),
            vec![
                "statefulset/new create after []",
                "statefulset/new wait StatefulSetReady after [0] completes 0",
                "statefulset/old delete after [] after phase 0",
                "statefulset/old wait Gone after [2] completes 1",
                "pvc/c delete after [] after phase 1",
                "pvc/c wait Gone after [4] completes 2",
                "pv/pv delete after [] after phase 2",
                "pv/pv wait Gone after [6] completes 3",
            ]
        );
    }

    fn resize(claims: &[&str], pods: &[(&str, &[&str])], restart: bool) -> crate::plan::ResizePlan {
        crate::plan::ResizePlan {
            claims: claims
                .iter()
                .map(|c| crate::plan::ClaimResize {
                    name: c.to_string(),
                    from: "1Gi".into(),
                    to: "2Gi".into(),
                })
                .collect(),
            retain_first: false,
            retain_manifest: None,
            pods: pods
                .iter()
                .map(|(p, cs)| crate::plan::PodClaims {
                    pod: p.to_string(),
                    claims: cs.iter().map(|c| c.to_string()).collect(),
                })
                .collect(),
            restart_pods: restart,
        }
    }

    #[test]
    fn a_template_resize_expands_claims_then_recreates_without_pods() {
        let mut sts = step(Kind::StatefulSet, "db", Action::Resize);
        sts.resize = Some(crate::plan::ResizePlan {
            retain_first: true,
            retain_manifest: Some(
                json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"}}}),
            ),
            ..resize(
                &["data-db-0", "data-db-1"],
                &[("db-0", &["data-db-0"]), ("db-1", &["data-db-1"])],
                false,
            )
        });
        let ops = schedule(&[sts]);
        assert_eq!(
            describe(&ops),
            vec![
                "statefulset/db apply-manifest force=false after []",
                "pvc/data-db-0 apply-manifest force=true after [0]",
                "pvc/data-db-0 wait ClaimExpanded after [1]",
                "pvc/data-db-1 apply-manifest force=true after [0]",
                "pvc/data-db-1 wait ClaimExpanded after [3]",
                "statefulset/db delete after [2, 4]",
                "statefulset/db wait Gone after [5]",
                "statefulset/db create after [6]",
                "statefulset/db wait StatefulSetReady after [7]",
                // Without --restart-pods, the file systems are waited for at once (a claim
                // whose pods started before the expansion ends as deferred).
                "pvc/data-db-0 wait ClaimResized after [8] completes 0",
                "pvc/data-db-1 wait ClaimResized after [8] completes 0",
            ]
        );
        assert_eq!(
            ops[5].op,
            Op::Delete {
                uid: "uid-db".into(),
                propagation: Propagation::Orphan
            }
        );
    }

    #[test]
    fn restart_pods_goes_pod_by_pod_in_ordinal_order_after_the_recreate() {
        let mut sts = step(Kind::StatefulSet, "db", Action::Resize);
        // data-db-2 belongs to an ordinal scaled away: no pod to restart, its wait defers.
        sts.resize = Some(resize(
            &["data-db-0", "logs-db-0", "data-db-1", "data-db-2"],
            &[
                ("db-0", &["data-db-0", "logs-db-0"]),
                ("db-1", &["data-db-1"]),
            ],
            true,
        ));
        let ops = schedule(&[sts]);
        assert_eq!(
            describe(&ops),
            vec![
                "pvc/data-db-0 apply-manifest force=true after []",
                "pvc/data-db-0 wait ClaimExpanded after [0]",
                "pvc/logs-db-0 apply-manifest force=true after []",
                "pvc/logs-db-0 wait ClaimExpanded after [2]",
                "pvc/data-db-1 apply-manifest force=true after []",
                "pvc/data-db-1 wait ClaimExpanded after [4]",
                "pvc/data-db-2 apply-manifest force=true after []",
                "pvc/data-db-2 wait ClaimExpanded after [6]",
                "statefulset/db delete after [1, 3, 5, 7]",
                "statefulset/db wait Gone after [8]",
                "statefulset/db create after [9]",
                "statefulset/db wait StatefulSetReady after [10]",
                "pod/db-0 restart-pod for data-db-0,logs-db-0 after [11]",
                "pod/db-0 wait PodReplaced after [12]",
                "pvc/data-db-0 wait ClaimResized after [13]",
                "pvc/logs-db-0 wait ClaimResized after [13]",
                // The next pod only once the one before is Ready and its claims have grown.
                "pod/db-1 restart-pod for data-db-1 after [14, 15]",
                "pod/db-1 wait PodReplaced after [16]",
                "pvc/data-db-1 wait ClaimResized after [17] completes 0",
                "pvc/data-db-2 wait ClaimResized after [11] completes 0",
            ]
        );
        // Every operation belongs to the StatefulSet's step.
        assert!(ops.iter().all(|o| o.step == 0));
    }

    #[test]
    fn the_phase_after_a_resize_waits_for_every_claim_it_grows() {
        let mut sts = step(Kind::StatefulSet, "db", Action::Resize);
        sts.resize = Some(resize(
            &["data-db-0", "data-db-1"],
            &[("db-0", &["data-db-0"]), ("db-1", &["data-db-1"])],
            false,
        ));
        let gone = step(Kind::Service, "old", Action::Delete);
        let ops = schedule(&[sts, gone]);
        let completing: Vec<usize> = ops
            .iter()
            .filter(|o| o.completes_phase == Some(0))
            .map(|o| o.id)
            .collect();
        assert_eq!(completing, vec![8, 9]);
        assert_eq!(ops.last().unwrap().object.short(), "service/old");
    }

    fn safety(claim: &str, before: &str) -> crate::plan::SafetySnapshot {
        crate::plan::SafetySnapshot {
            claim: claim.into(),
            namespace: "ns".into(),
            name: format!("{claim}-before-{before}-1"),
            class: "fast-snapshots".into(),
            before: before.into(),
        }
    }

    #[test]
    fn data_is_snapshotted_and_ready_before_anything_is_deleted() {
        let mut claim = step(Kind::PersistentVolumeClaim, "data", Action::Replace);
        claim.snapshots = vec![safety("data", "replace")];
        let mut sts = step(Kind::StatefulSet, "db", Action::Update);
        sts.snapshots = vec![safety("data-db-2", "scale-down")];
        let mut gone = step(Kind::PersistentVolumeClaim, "old", Action::Delete);
        gone.snapshots = vec![safety("old", "prune")];
        let ops = schedule(&[claim, sts, gone]);
        assert_eq!(
            describe(&ops),
            vec![
                "volumesnapshot/data-before-replace-1 snapshot of data after []",
                "volumesnapshot/data-before-replace-1 wait SnapshotReady after [0]",
                "pvc/data delete after [1]",
                "pvc/data wait Gone after [2]",
                "pvc/data create after [3]",
                "pvc/data wait ClaimBound after [4] completes 0",
                "volumesnapshot/data-db-2-before-scale-down-1 snapshot of data-db-2 after [] after phase 0",
                "volumesnapshot/data-db-2-before-scale-down-1 wait SnapshotReady after [6]",
                "statefulset/db apply after [7]",
                "statefulset/db wait StatefulSetReady after [8] completes 1",
                "volumesnapshot/old-before-prune-1 snapshot of old after [] after phase 1",
                "volumesnapshot/old-before-prune-1 wait SnapshotReady after [10] completes 2",
                "pvc/old delete after [] after phase 2",
                "pvc/old wait Gone after [12] completes 3",
            ]
        );
        assert_eq!(
            ops[0].op,
            Op::Snapshot {
                claim: "data".into(),
                class: "fast-snapshots".into(),
                before: "replace".into()
            }
        );
        // The snapshots belong to the steps of the changes they precede.
        assert_eq!((ops[0].step, ops[6].step, ops[10].step), (0, 1, 2));
    }

    #[test]
    fn failed_steps_get_no_operations() {
        let ops = schedule(&[step(Kind::Service, "s", Action::Error)]);
        assert!(ops.is_empty());
    }
}
