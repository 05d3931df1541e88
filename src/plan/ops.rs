//! The plan as typed operations with dependencies, produced by a pure scheduler from the plan's
//! steps and run by one generic executor (`apply::executor`).
//!
//! Each object's change becomes one or more operations: a write (`apply`, a real `create`, or
//! `keep` for no change), then a `wait` with the kind's rule. A change that takes several steps
//! is a recipe of operations linked by dependencies, never a branch in the executor: replacing is
//! `delete` (orphan, uid precondition) → `wait` until gone → `create` → `wait`. The rollout order
//! is [`ROLLOUT_ORDER`]: every write of a phase depends on the completion of the phase before.

use super::{Action, Step};
use crate::gateway::Propagation;
use crate::kinds::{Kind, ObjectRef, ROLLOUT_ORDER};
use serde::{Deserialize, Serialize};

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
    /// The object no longer exists.
    Gone,
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
}

/// Deferral of a claim whose class binds on first consumer.
pub const DEFER_TO_CONSUMER: &str = "waits for first consumer (class binds WaitForFirstConsumer); confirmed after its StatefulSet's pods are scheduled";
/// A claim that waits for a consumer no workload of the stack provides.
pub const NO_CONSUMER: &str = "still waits for its first consumer: no StatefulSet of this stack mounts it, so it binds when a pod uses it";

struct Builder {
    ops: Vec<Operation>,
}

impl Builder {
    fn push(&mut self, step: usize, object: &ObjectRef, op: Op, after: Vec<usize>) -> usize {
        let id = self.ops.len();
        self.ops.push(Operation {
            id,
            object: object.clone(),
            step,
            op,
            after,
            after_phase: None,
            completes_phase: None,
        });
        id
    }

    /// An operation that starts once the phase `gate` is complete.
    fn gated(&mut self, step: usize, object: &ObjectRef, op: Op, gate: Option<usize>) -> usize {
        let id = self.push(step, object, op, Vec::new());
        self.ops[id].after_phase = gate;
        id
    }
}

/// The operations that carry out `steps`, in rollout order. Steps that failed to plan get none.
pub fn schedule(steps: &[Step]) -> Vec<Operation> {
    let mut b = Builder { ops: Vec::new() };
    let mut gate: Option<usize> = None;
    // Claims whose wait is deferred to their consumer: name → step index.
    let mut deferred: Vec<(String, usize)> = Vec::new();
    let mut consumed: Vec<String> = Vec::new();
    for (p, phase) in ROLLOUT_ORDER.iter().enumerate() {
        let mut next_gate = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if !phase.contains(&step.object.kind) || step.action == Action::Error {
                continue;
            }
            let rule = step.object.kind.rules().wait_rule();
            let written = match step.action {
                Action::Replace => replace_recipe(&mut b, i, step, gate),
                Action::Create => b.gated(i, &step.object, Op::Create, gate),
                Action::Update | Action::Adopt => b.gated(
                    i,
                    &step.object,
                    Op::Apply {
                        resource_version: step.live.as_ref().map(|l| l.resource_version.clone()),
                    },
                    gate,
                ),
                Action::NoOp | Action::Error => b.gated(i, &step.object, Op::Keep, gate),
            };
            if step.wait.first_consumer {
                let id = b.push(
                    i,
                    &step.object,
                    Op::Defer {
                        message: DEFER_TO_CONSUMER.into(),
                    },
                    vec![written],
                );
                deferred.push((step.object.name.clone(), i));
                next_gate.push(id);
                continue;
            }
            let done = match (rule, step.action) {
                // A replaced object's recipe ends with its own wait.
                (_, Action::Replace) | (None, _) => written,
                (Some(rule), _) => b.push(i, &step.object, Op::Wait { rule }, vec![written]),
            };
            next_gate.push(done);
            if step.object.kind == Kind::StatefulSet {
                let ns = step.object.namespace.clone().unwrap_or_default();
                let claims = step.wait.template_claims.iter().chain(
                    step.wait
                        .consumed_claims
                        .iter()
                        .filter(|c| deferred.iter().any(|(d, _)| d == *c)),
                );
                for claim in claims {
                    let claim_ref = ObjectRef::new(Kind::PersistentVolumeClaim, &ns, claim);
                    let owner = deferred
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
                    next_gate.push(id);
                }
                consumed.extend(step.wait.consumed_claims.iter().cloned());
            }
        }
        if !next_gate.is_empty() {
            for id in next_gate {
                b.ops[id].completes_phase = Some(p);
            }
            gate = Some(p);
        }
    }
    for (name, i) in &deferred {
        if !consumed.contains(name) {
            b.gated(
                *i,
                &steps[*i].object,
                Op::Defer {
                    message: NO_CONSUMER.into(),
                },
                gate,
            );
        }
    }
    b.ops
}

/// Replace: orphan-delete (uid precondition) → wait until gone → create → wait with the kind's
/// rule. Returns the id of the last operation.
fn replace_recipe(b: &mut Builder, i: usize, step: &Step, gate: Option<usize>) -> usize {
    let id = &step.object;
    let uid = step
        .live
        .as_ref()
        .map(|l| l.uid.clone())
        .unwrap_or_default();
    let delete = b.gated(
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
    match id.kind.rules().wait_rule() {
        Some(rule) => b.push(i, id, Op::Wait { rule }, vec![create]),
        None => create,
    }
}

#[cfg(test)]
mod tests {
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
            }),
            wait: WaitPlan::default(),
            adopt: false,
        }
    }

    fn describe(ops: &[Operation]) -> Vec<String> {
        ops.iter()
            .map(|o| {
                let what = match &o.op {
                    Op::Apply { .. } => "apply".to_string(),
                    Op::Create => "create".into(),
                    Op::Keep => "keep".into(),
                    Op::Delete { .. } => "delete".into(),
                    Op::Wait { rule } => format!("wait {rule:?}"),
                    Op::Defer { .. } => "defer".into(),
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
                "pv/pv-a wait VolumeAvailable after [0] completes 2",
                "pv/pv-b keep after []",
                "pv/pv-b wait VolumeAvailable after [2] completes 2",
                "pvc/c create after [] after phase 2",
                "pvc/c wait ClaimBound after [4] completes 3",
                "statefulset/db apply after [] after phase 3",
                "statefulset/db wait StatefulSetReady after [6] completes 5",
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
                "pvc/shared defer after [0] completes 3",
                "pvc/lonely create after []",
                "pvc/lonely defer after [2] completes 3",
                "statefulset/db create after [] after phase 3",
                "statefulset/db wait StatefulSetReady after [4] completes 5",
                "pvc/data-db-0 wait ClaimBound after [5] completes 5",
                "pvc/shared wait ClaimBound after [5] completes 5",
                "pvc/lonely defer after [] after phase 5",
            ]
        );
        // The deferred claim's wait belongs to the claim's own step.
        assert_eq!(ops[7].step, 0);
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
                "statefulset/db wait StatefulSetReady after [2] completes 5",
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
    fn failed_steps_get_no_operations() {
        let ops = schedule(&[step(Kind::Service, "s", Action::Error)]);
        assert!(ops.is_empty());
    }
}
