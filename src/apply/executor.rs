//! The generic executor: runs a plan's operations in dependency order through the gateway.
//!
//! An operation starts once every operation it depends on has succeeded ([`queue`]; at most
//! `concurrency` writes at once, while waits, which share one watch per kind through the
//! [`WatchHub`], make no requests and are not bounded); when one fails, its dependents are
//! skipped and everything else goes on. Each operation type has its own small runner below; none
//! of them knows about kinds beyond the plan's wait rules.

use super::watch_hub::WatchHub;
use super::{ApplyError, ApplyOptions, Event, Sink, check_executable, diagnose, staleness, waits};
use crate::gateway::{self, ApiFailure, Gateway};
use crate::kinds::{Kind, ObjectRef};
use crate::plan::ops::{Op, Operation, WaitRule};
use crate::plan::{Action, Plan, Step};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

/// What a successful operation did, for the final counts.
enum Outcome {
    Written,
    Unchanged,
    Other,
    /// A wait given up because of an interrupt: not done, not failed.
    Abandoned,
}

/// A claim expanded on the controller side whose file system waits for a pod no one runs.
const DEFERRED_RESIZE: &str =
    "expanded; the file system grows when a pod next mounts it (no pod mounts it now)";

/// Annotation on a snapshot taken before a change deletes data: which change (`replace`,
/// `prune`, `destroy`, `scale-down`).
pub const SNAPSHOT_BEFORE: &str = "kubectl-stateful/snapshot-before";

/// How often a claim whose file system waits for mounted pods is looked at again.
const RESIZE_RECHECK: Duration = Duration::from_secs(2);

/// How long explaining a failure may take (it runs after the deadline has passed, too).
const DIAGNOSIS_BUDGET: Duration = Duration::from_secs(15);

/// Rolls the plan out. Returns the number of objects written.
pub async fn execute(
    gw: &dyn Gateway,
    plan: &Plan,
    options: &ApplyOptions,
    sink: &dyn Sink,
) -> Result<usize, ApplyError> {
    check_executable(plan, options)?;
    let hub = WatchHub::new(gw, plan);
    hub.drive(rollout(gw, plan, options, sink, &hub)).await
}

/// What every operation's runner shares.
struct Ctx<'a> {
    gw: &'a dyn Gateway,
    options: &'a ApplyOptions,
    deadline: Instant,
    sink: &'a dyn Sink,
    written: Written,
    hub: &'a WatchHub<'a>,
    /// Requests made to explain a wait (its events, a claim's pods) run at most `concurrency`
    /// at once, like writes: waits themselves make none.
    explaining: tokio::sync::Semaphore,
}

/// Whether an operation sends requests (and so counts against `--concurrency`). Waits share
/// the hub's watches, and keeps and deferrals only report.
fn sends_requests(op: &Operation) -> bool {
    !matches!(op.op, Op::Wait { .. } | Op::Keep | Op::Defer { .. })
}

async fn rollout(
    gw: &dyn Gateway,
    plan: &Plan,
    options: &ApplyOptions,
    sink: &dyn Sink,
    hub: &WatchHub<'_>,
) -> Result<usize, ApplyError> {
    let start = Instant::now();
    let deadline = start + options.timeout;
    let ops = &plan.operations;
    let mut state = vec![State::Pending; ops.len()];
    let mut announced: BTreeSet<(bool, usize)> = BTreeSet::new();
    let concurrency = options.concurrency.max(1);
    let ctx = Ctx {
        gw,
        options,
        deadline,
        sink,
        written: Written::default(),
        hub,
        explaining: tokio::sync::Semaphore::new(concurrency),
    };
    let mut running = FuturesUnordered::new();
    let mut requesting = 0usize;
    let (mut applied, mut unchanged) = (0, 0);
    let mut failures: Vec<String> = Vec::new();
    let mut interrupt = options.interrupt.clone();
    let mut interrupted: Option<super::Interrupt> = None;
    let mut abandoned: Vec<usize> = Vec::new();
    let mut queue = queue::Queue::new(ops, sends_requests);
    loop {
        if interrupted.is_none()
            && let Some(rx) = &interrupt
        {
            interrupted = *rx.borrow();
        }
        // Start everything whose dependencies are met; once interrupted, nothing new starts.
        while interrupted.is_none() {
            let Some(id) = queue.pop(requesting < concurrency) else {
                break;
            };
            let op = &ops[id];
            let step = &plan.steps[op.step];
            let phase = step.object.kind.phase();
            let deleting = step.action == Action::Delete;
            if announced.insert((deleting, phase)) {
                let name = crate::kinds::phase_name(phase);
                sink.emit(Event::Phase {
                    kind: step.object.kind,
                    name: if deleting {
                        format!("Deleting {name}")
                    } else {
                        name.to_string()
                    },
                    objects: plan
                        .steps
                        .iter()
                        .filter(|s| {
                            s.object.kind.phase() == phase
                                && (s.action == Action::Delete) == deleting
                                && s.action != Action::Error
                        })
                        .count(),
                });
            }
            state[id] = State::Running;
            requesting += usize::from(sends_requests(op));
            running.push(
                // Waits end at the deadline by themselves and then explain why; this outer bound
                // leaves them the time for that.
                tokio::time::timeout_at(
                    deadline + DIAGNOSIS_BUDGET + Duration::from_secs(1),
                    run(&ctx, op, step),
                )
                .map(move |r| (id, r)),
            );
        }
        let next = match interrupt.as_mut() {
            Some(rx) if interrupted.is_none() => {
                tokio::select! {
                    next = running.next() => next,
                    changed = rx.changed() => {
                        if changed.is_err() {
                            // The sender is gone: no interrupt can come any more.
                            interrupt = None;
                        }
                        continue;
                    }
                }
            }
            _ => running.next().await,
        };
        let Some((id, result)) = next else {
            break;
        };
        let op = &ops[id];
        requesting -= usize::from(sends_requests(op));
        let result = result.unwrap_or_else(|_| {
            let message = format!(
                "timed out after {:.0}s (--timeout) before this finished",
                start.elapsed().as_secs_f64()
            );
            sink.emit(Event::Failed {
                object: op.object.clone(),
                message: message.clone(),
                details: Vec::new(),
            });
            Err(format!("{}: {message}", op.object.short()))
        });
        match result {
            Ok(outcome) => {
                state[id] = State::Done;
                match outcome {
                    Outcome::Written => applied += 1,
                    Outcome::Unchanged => unchanged += 1,
                    Outcome::Other => {}
                    Outcome::Abandoned => {
                        state[id] = State::Skipped;
                        abandoned.push(id);
                    }
                }
            }
            Err(e) => {
                state[id] = State::Failed;
                failures.push(e);
            }
        }
        if state[id] == State::Done {
            queue.succeeded(id);
        } else {
            for skipped in queue.failed(id) {
                state[skipped] = State::Skipped;
            }
        }
    }
    if let Some(signal) = interrupted {
        // Objects with an operation that did not succeed, in plan order.
        let abandoned: std::collections::HashSet<usize> = abandoned.into_iter().collect();
        let mut listed: std::collections::HashSet<&ObjectRef> = Default::default();
        let mut not_done: Vec<ObjectRef> = Vec::new();
        for op in ops {
            if (state[op.id] != State::Done || abandoned.contains(&op.id))
                && listed.insert(&op.object)
            {
                not_done.push(op.object.clone());
            }
        }
        sink.emit(Event::Interrupted {
            signal,
            not_done: not_done.clone(),
        });
        sink.emit(Event::Finished {
            ok: false,
            applied,
            unchanged,
            failed: failures.len(),
            seconds: start.elapsed().as_secs_f64(),
        });
        return Err(ApplyError::Interrupted {
            signal,
            applied,
            unchanged,
            not_done: not_done.iter().map(ObjectRef::short).collect(),
        });
    }
    let ok = failures.is_empty();
    sink.emit(Event::Finished {
        ok,
        applied,
        unchanged,
        failed: failures.len(),
        seconds: start.elapsed().as_secs_f64(),
    });
    if ok {
        Ok(applied)
    } else {
        Err(ApplyError::Failed(failures))
    }
}

/// What this apply wrote of each object: the generation it had right after the write (a wait
/// that sees a newer one knows another writer changed the object during the apply), the
/// manifest, and the `resourceVersion` of the write (a wait trusts no older state).
#[derive(Default)]
pub(crate) struct Written(
    std::sync::Mutex<std::collections::HashMap<ObjectRef, Write>>,
    /// Pods a `restart-pod` operation deleted, with the uid of the pod deleted.
    std::sync::Mutex<std::collections::HashMap<ObjectRef, String>>,
);

/// One write: the generation after it with the manifest written (kept only for objects that have
/// a generation, the only ones [`Written::get`] answers for), the `resourceVersion` after it.
type Write = (Option<(i64, std::sync::Arc<Value>)>, Option<String>);

impl Written {
    /// Notes that the pod `id` with `uid` was deleted to be restarted.
    fn note_restart(&self, id: &ObjectRef, uid: &str) {
        self.1
            .lock()
            .expect("written lock")
            .insert(id.clone(), uid.to_string());
    }

    /// The uid of the pod deleted to restart `id`, if it was.
    fn restarted(&self, id: &ObjectRef) -> Option<String> {
        self.1.lock().expect("written lock").get(id).cloned()
    }

    /// Notes what `obj` is after our write of `manifest`.
    fn record(&self, id: &ObjectRef, obj: &Value, manifest: &Value) {
        let generation = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .map(|g| (g, std::sync::Arc::new(manifest.clone())));
        let version = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.0
            .lock()
            .expect("written lock")
            .insert(id.clone(), (generation, version));
    }

    /// The generation after our write, and the manifest written.
    fn get(&self, id: &ObjectRef) -> Option<(i64, std::sync::Arc<Value>)> {
        let written = self.0.lock().expect("written lock");
        written.get(id)?.0.clone()
    }

    /// The `resourceVersion` of our last write of the object.
    fn version(&self, id: &ObjectRef) -> Option<String> {
        let written = self.0.lock().expect("written lock");
        written.get(id).and_then(|(_, v)| v.clone())
    }
}

/// The field manager that wrote the object last, other than us.
fn last_writer(obj: &Value) -> String {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| f["manager"] != crate::kinds::FIELD_MANAGER)
        .filter(|f| f["subresource"].as_str().unwrap_or_default() != "status")
        .max_by_key(|f| f["time"].as_str().unwrap_or_default().to_string())
        .and_then(|f| f["manager"].as_str())
        .unwrap_or("another writer")
        .to_string()
}

/// How many times a guarded write (the delete before a StatefulSet's re-create, a release) reads
/// the object and checks it again when it changed between the read and the write.
const REBUILD_CHECKS: u32 = 5;

async fn run(ctx: &Ctx<'_>, op: &Operation, step: &Step) -> Result<Outcome, String> {
    let (gw, options, sink, written) = (ctx.gw, ctx.options, ctx.sink, &ctx.written);
    let t = Instant::now();
    let fail = |message: String| {
        sink.emit(Event::Failed {
            object: op.object.clone(),
            message: message.clone(),
            details: Vec::new(),
        });
        Err(format!("{}: {message}", op.object.short()))
    };
    // Every operation passes the gate: a guarded one (a delete, a StatefulSet's or volume's
    // update) is checked against the live object, and written only against the version checked.
    let passed = match super::gate::pass(gw, op, step).await {
        Ok(passed) => passed,
        Err(why) => return fail(why),
    };
    match &op.op {
        Op::Keep => {
            sink.emit(Event::Unchanged {
                object: op.object.clone(),
            });
            Ok(Outcome::Unchanged)
        }
        Op::Defer { message } => {
            sink.emit(Event::Deferred {
                object: op.object.clone(),
                message: message.clone(),
            });
            Ok(Outcome::Other)
        }
        Op::Apply { .. } if step.action == Action::Release => match release(gw, step).await {
            Ok(obj) => {
                written.record(&op.object, &obj, &step.manifest);
                sink.emit(Event::Applied {
                    object: op.object.clone(),
                    action: step.action,
                    seconds: t.elapsed().as_secs_f64(),
                });
                Ok(Outcome::Written)
            }
            Err(message) => fail(message),
        },
        Op::Apply { resource_version } => {
            match apply(gw, step, resource_version.clone(), options.force_conflicts).await {
                Ok(obj) => {
                    written.record(&op.object, &obj, &step.manifest);
                    if let Some(record) = &options.record {
                        record.note(&op.object, &obj, &step.manifest);
                    }
                    sink.emit(Event::Applied {
                        object: op.object.clone(),
                        action: step.action,
                        seconds: t.elapsed().as_secs_f64(),
                    });
                    Ok(Outcome::Written)
                }
                Err(message) => fail(message),
            }
        }
        Op::ApplyManifest { manifest, force } => {
            let options = gateway::ApplyOptions {
                dry_run: false,
                force: *force,
            };
            match gw.apply(&op.object, manifest, options).await {
                Ok(obj) => {
                    written.record(&op.object, &obj, manifest);
                    sink.emit(Event::Applied {
                        object: op.object.clone(),
                        action: Action::Update,
                        seconds: t.elapsed().as_secs_f64(),
                    });
                    Ok(Outcome::Written)
                }
                Err(f) => fail(write_failure(&f)),
            }
        }
        Op::Create => match gw.create(&op.object, &step.manifest, false).await {
            Ok(obj) => {
                written.record(&op.object, &obj, &step.manifest);
                if let Some(record) = &options.record {
                    record.note(&op.object, &obj, &step.manifest);
                }
                sink.emit(Event::Applied {
                    object: op.object.clone(),
                    action: Action::Create,
                    seconds: t.elapsed().as_secs_f64(),
                });
                Ok(Outcome::Written)
            }
            Err(f) if f.is_already_exists() => fail(
                "it exists now: it was created by someone else after the plan was made, and was not taken over; \
                 run plan again to see it (as an adoption)"
                    .into(),
            ),
            Err(f) => fail(write_failure(&f)),
        },
        Op::Snapshot {
            claim,
            class,
            before,
        } => {
            let ns = op.object.namespace.clone().unwrap_or_default();
            // The stack's label, from the manifest of the change (or the live object deleted).
            let stack = [Some(&step.manifest), step.before.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|m| {
                    m.pointer("/metadata/labels")?
                        .get(crate::kinds::STACK_LABEL)?
                        .as_str()
                })
                .unwrap_or_default();
            let mut manifest =
                crate::snapshots::manifest(&ns, &op.object.name, claim, Some(class), stack);
            manifest["metadata"]["annotations"] = json!({ SNAPSHOT_BEFORE: before });
            match gw.create(&op.object, &manifest, false).await {
                Ok(obj) => {
                    written.record(&op.object, &obj, &manifest);
                    sink.emit(Event::Applied {
                        object: op.object.clone(),
                        action: Action::Create,
                        seconds: t.elapsed().as_secs_f64(),
                    });
                    Ok(Outcome::Written)
                }
                Err(f) if f.is_already_exists() => {
                    // Taken by an earlier, interrupted run of this plan: the same claim's.
                    let live = gw.get(&op.object).await.ok().flatten();
                    let source = live
                        .as_ref()
                        .and_then(|l| l.pointer("/spec/source/persistentVolumeClaimName"))
                        .and_then(Value::as_str);
                    if source == Some(claim.as_str()) {
                        sink.emit(Event::Unchanged {
                            object: op.object.clone(),
                        });
                        Ok(Outcome::Unchanged)
                    } else {
                        fail(format!(
                            "a snapshot of that name exists and is not one of pvc/{claim}: nothing is deleted; run plan again"
                        ))
                    }
                }
                Err(f) if f.is_not_found() => fail(format!(
                    "this cluster has no {}/{} API: no snapshot of pvc/{claim} can be taken, so nothing is deleted",
                    crate::kinds::SNAPSHOT_GROUP,
                    crate::kinds::SNAPSHOT_VERSION
                )),
                Err(f) => fail(write_failure(&f)),
            }
        }
        Op::Delete { uid, propagation } => {
            // The gate read the object and checked what deleting it takes now (for a recipe
            // that creates it again: that the re-create loses nothing it has now); the delete
            // goes ahead only against the version checked. A write in between (a status update
            // of its controller, say) means passing the gate again, a bounded number of times.
            let mut version = passed.version;
            let mut attempts = 0;
            let result = loop {
                attempts += 1;
                match gw
                    .delete(&op.object, uid, version.as_deref(), *propagation)
                    .await
                {
                    Err(f) if f.code == 409 && version.is_some() && attempts < REBUILD_CHECKS => {
                        match super::gate::pass(gw, op, step).await {
                            Ok(again) => version = again.version,
                            Err(why) => return fail(why),
                        }
                    }
                    other => break other,
                }
            };
            match result {
                Ok(()) => {
                    sink.emit(Event::Deleted {
                        object: op.object.clone(),
                        seconds: t.elapsed().as_secs_f64(),
                    });
                    Ok(Outcome::Other)
                }
                Err(f) if f.code == 409 => fail(format!(
                    "not deleted: it is no longer the object the plan saw (uid {uid}), or it kept changing while it was checked; run plan again"
                )),
                // Gone already (an interrupted apply's delete finished meanwhile).
                Err(f) if f.is_not_found() => {
                    sink.emit(Event::Deleted {
                        object: op.object.clone(),
                        seconds: t.elapsed().as_secs_f64(),
                    });
                    Ok(Outcome::Other)
                }
                Err(f) => fail(write_failure(&f)),
            }
        }
        Op::RestartPod { claims } => {
            let ns = op.object.namespace.clone().unwrap_or_default();
            let mut pending = Vec::new();
            for c in claims {
                let claim = ObjectRef::new(Kind::PersistentVolumeClaim, &ns, c);
                match gw.get(&claim).await {
                    Ok(Some(pvc)) if waits::file_system_pending(&pvc) => pending.push(c.as_str()),
                    Ok(_) => {}
                    Err(f) => return fail(format!("cannot read pvc/{c}: {}", f.text())),
                }
            }
            // Its claims grew online: the pod keeps running (the wait after says so).
            if pending.is_empty() {
                return Ok(Outcome::Other);
            }
            let pod = match gw.get(&op.object).await {
                Ok(pod) => pod,
                Err(f) => return fail(format!("cannot read it: {}", f.text())),
            };
            let Some(uid) = pod
                .as_ref()
                .and_then(|p| p.pointer("/metadata/uid"))
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                // No pod to restart: its StatefulSet creates it, and that mount grows the file
                // system.
                return Ok(Outcome::Other);
            };
            written.note_restart(&op.object, &uid);
            match gw
                .delete(&op.object, &uid, None, gateway::Propagation::Background)
                .await
            {
                Ok(()) => {
                    sink.emit(Event::Deleted {
                        object: op.object.clone(),
                        seconds: t.elapsed().as_secs_f64(),
                    });
                    sink.emit(Event::Waiting {
                        object: op.object.clone(),
                        message: format!(
                            "restarted so that the file system of {} grows on mount",
                            pending
                                .iter()
                                .map(|c| format!("pvc/{c}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                    Ok(Outcome::Other)
                }
                // Replaced or deleted meanwhile: whatever runs now started after the expansion.
                Err(f) if f.code == 409 || f.is_not_found() => Ok(Outcome::Other),
                Err(f) => fail(write_failure(&f)),
            }
        }
        Op::Wait { rule } => {
            let waiting = wait(ctx, &op.object, *rule);
            match options.interrupt.clone() {
                // A wait writes nothing: an interrupt abandons it at once.
                Some(mut rx) => tokio::select! {
                    r = waiting => r.map(|()| Outcome::Other),
                    _ = rx.wait_for(Option::is_some) => Ok(Outcome::Abandoned),
                },
                None => waiting.await.map(|()| Outcome::Other),
            }
        }
    }
}

/// Releases the object the step names: reads it, checks that it is still the object the plan
/// saw (uid), and removes the stack's labels while handing our fields over (see
/// [`crate::plan::prune::release_patch`]), guarded by the version read; a write in between (a
/// controller's status) means reading again, a bounded number of times.
async fn release(gw: &dyn Gateway, step: &Step) -> Result<Value, String> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let live = match gw.get(&step.object).await {
            Ok(Some(live)) => live,
            Ok(None) => return Err("it is gone: nothing to release".into()),
            Err(f) => return Err(format!("cannot read it: {}", f.text())),
        };
        let uid = live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(planned) = &step.live
            && planned.uid != uid
        {
            return Err(format!(
                "not released: it is no longer the object the plan saw (uid {}); run plan again",
                planned.uid
            ));
        }
        let patch = crate::plan::prune::release_patch(&live);
        match gw.merge_patch(&step.object, &patch).await {
            Err(f) if f.code == 409 && attempts < REBUILD_CHECKS => continue,
            Err(f) => return Err(write_failure(&f)),
            Ok(obj) => return Ok(obj),
        }
    }
}

/// Server-side apply of the step's manifest. With a planned `resource_version`, a write that
/// finds the object changed goes on only if the change was status-only (it then retries with
/// the new version); otherwise it fails instead of overwriting the other writer.
async fn apply(
    gw: &dyn Gateway,
    step: &Step,
    resource_version: Option<String>,
    force: bool,
) -> Result<Value, String> {
    let mut rv = resource_version;
    // Bounded: a status that keeps changing under us gets three tries.
    for _ in 0..3 {
        let mut manifest = step.manifest.clone();
        if let Some(rv) = &rv {
            manifest["metadata"]["resourceVersion"] = json!(rv);
        }
        let options = gateway::ApplyOptions {
            dry_run: false,
            force,
        };
        let mut result = gw.apply(&step.object, &manifest, options).await;
        if let Err(f) = &result {
            let conflicts = f.conflicts();
            if !conflicts.is_empty()
                && conflicts
                    .iter()
                    .all(|c| c.manager == crate::kinds::FIELD_MANAGER)
            {
                // Only our own name holds those fields (through a create, recorded as an
                // update): they are ours to set.
                let forced = gateway::ApplyOptions {
                    dry_run: false,
                    force: true,
                };
                result = gw.apply(&step.object, &manifest, forced).await;
            }
        }
        match result {
            Ok(obj) => return Ok(obj),
            // A stale version after an attempt whose answer was lost may be our own write's:
            // not "changed since the plan", but a write that may have been applied.
            Err(f) if f.is_stale_write() && rv.is_some() && !f.may_have_landed => {
                let live = gw
                    .get(&step.object)
                    .await
                    .map_err(|f| format!("cannot read it again: {}", f.text()))?;
                if let Some(why) = staleness(step, live.as_ref()) {
                    return Err(format!("{why}; not overwritten: run plan again"));
                }
                rv = live
                    .as_ref()
                    .and_then(|l| l.pointer("/metadata/resourceVersion"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            Err(f) => return Err(write_failure(&f)),
        }
    }
    Err("its status kept changing while it was written; run apply again".into())
}

fn write_failure(f: &ApiFailure) -> String {
    let mut message = f.text();
    let conflicts = f.conflicts();
    if !conflicts.is_empty() {
        message = format!(
            "{} (pass --force-conflicts to take them over)",
            crate::plan::compute::conflict_text(&conflicts)
        );
    } else if f.is_forbidden() {
        message.push_str(" (the account needs the RBAC rules in examples/rbac.yaml)");
    }
    if f.may_have_landed {
        message.push_str(
            "; the write may have been applied all the same: run apply again to converge",
        );
    }
    message
}

/// Follows one object's states through the watch hub until `rule` says done or the deadline
/// passes, reporting progress. On failure the object's recent events and conditions are
/// attached.
async fn wait(ctx: &Ctx<'_>, id: &ObjectRef, rule: WaitRule) -> Result<(), String> {
    let (gw, sink, written) = (ctx.gw, ctx.sink, &ctx.written);
    let start = Instant::now();
    // After our write, a state older than it is not the object's answer to it.
    let floor = if rule == WaitRule::Gone {
        None
    } else {
        written.version(id)
    };
    let mut events = ctx.hub.updates(id, floor);
    let mut last_message = String::new();
    let mut current: Option<std::sync::Arc<Value>> = None;
    let mut users: Option<String> = None;
    // ClaimResized: since when the claim's file system has waited for pods that mount it and
    // are Ready (see `waits::node_resize_stalled`); while set, the claim is looked at again
    // every few seconds even without a change of it.
    let mut stalled_since: Option<Instant> = None;
    let mut recheck = false;
    let mut deferred = false;
    let outcome = tokio::time::timeout_at(ctx.deadline, async {
        // Bounded by the deadline above; each turn handles one change of the object.
        loop {
            let next = match recheck {
                true => match tokio::time::timeout(RESIZE_RECHECK, events.next()).await {
                    Ok(next) => next,
                    Err(_) => Some(Ok(current.clone())),
                },
                false => events.next().await,
            };
            let status = match next {
                Some(Ok(obj)) => {
                    current = obj;
                    // Another writer changed what we set after our write: its result is not
                    // ours to report as done. (Controllers that fill in defaults, such as a
                    // snapshot's class, change the generation but none of our fields.)
                    if let (Some((ours, manifest)), Some(live)) = (written.get(id), current.as_deref())
                        && let Some(now) = live.pointer("/metadata/generation").and_then(Value::as_i64)
                        && now > ours
                        && rule != WaitRule::Gone
                        && !crate::plan::compute::changed_from(&manifest, live).is_empty()
                    {
                        return waits::WaitStatus {
                            done: true,
                            ok: false,
                            message: format!(
                                "changed by {} during apply (generation {ours} → {now}); its result is not this plan's: run plan again",
                                last_writer(current.as_deref().unwrap_or(&Value::Null))
                            ),
                        };
                    }
                    let mut status = waits::check(rule, current.as_deref());
                    if rule == WaitRule::PodReplaced {
                        status = waits::pod_replaced(
                            current.as_deref(),
                            written.restarted(id).as_deref(),
                        );
                    }
                    if rule == WaitRule::ClaimResized
                        && status.message.starts_with(waits::FILE_SYSTEM_PENDING)
                        && let Some(pvc) = current.as_ref()
                    {
                        let pods = claim_pods(ctx, id).await;
                        if pods.is_empty() {
                            // No pod mounts it: the file system grows when one does; do not
                            // wait for that forever.
                            deferred = true;
                            return waits::WaitStatus::ready(DEFERRED_RESIZE);
                        }
                        // Mounted by pods that started before the expansion: a driver that
                        // grows file systems only on mount never does it for them.
                        recheck = true;
                        stalled_since = waits::node_resize_stalled(pvc, &pods, Duration::MAX)
                            .map(|_| stalled_since.unwrap_or_else(Instant::now));
                        if let Some(since) = stalled_since
                            && let Some(why) = waits::node_resize_stalled(pvc, &pods, since.elapsed())
                        {
                            deferred = true;
                            return waits::WaitStatus::ready(why);
                        }
                    } else {
                        (recheck, stalled_since) = (false, None);
                    }
                    if rule == WaitRule::Gone
                        && id.kind == Kind::PersistentVolumeClaim
                        && status.message.contains("kubernetes.io/pvc-protection")
                    {
                        if users.is_none() {
                            users = Some(claim_users(ctx, id).await);
                        }
                        if let Some(u) = users.as_deref().filter(|u| !u.is_empty()) {
                            status.message = format!("{}: in use by {u}", status.message);
                        }
                    }
                    status
                }
                Some(Err(f)) => waits::WaitStatus {
                    done: true,
                    ok: false,
                    message: format!("cannot watch it: {}", f.text()),
                },
                None => waits::WaitStatus {
                    done: true,
                    ok: false,
                    message: format!("the watch of {} ended", id.short()),
                },
            };
            if status.done {
                return status;
            }
            if status.message != last_message {
                last_message = status.message.clone();
                sink.emit(Event::Waiting {
                    object: id.clone(),
                    message: status.message.clone(),
                });
            }
        }
    })
    .await;
    let message = match outcome {
        Ok(status) if status.ok && deferred => {
            sink.emit(Event::Deferred {
                object: id.clone(),
                message: status.message,
            });
            return Ok(());
        }
        Ok(status) if status.ok => {
            sink.emit(Event::Ready {
                object: id.clone(),
                message: status.message,
                seconds: start.elapsed().as_secs_f64(),
            });
            return Ok(());
        }
        Ok(status) => status.message,
        Err(_) => format!(
            "timed out after {:.0}s: {}",
            start.elapsed().as_secs_f64(),
            if last_message.is_empty() {
                "not ready"
            } else {
                &last_message
            }
        ),
    };
    let details = tokio::time::timeout(DIAGNOSIS_BUDGET, async {
        let _permit = ctx.explaining.acquire().await;
        diagnose::explain(gw, id, current.as_deref()).await
    })
    .await
    .unwrap_or_else(|_| vec!["could not read its events in time".into()]);
    sink.emit(Event::Failed {
        object: id.clone(),
        message: message.clone(),
        details: details.clone(),
    });
    let first = details
        .first()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    Err(format!("{}: {message}{first}", id.short()))
}

/// The pods that mount a claim (`pod/a, pod/b`), for a deletion held by `pvc-protection`.
async fn claim_users(ctx: &Ctx<'_>, claim: &ObjectRef) -> String {
    claim_pods(ctx, claim)
        .await
        .iter()
        .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str))
        .map(|n| format!("pod/{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pods that mount a claim (none when they cannot be listed).
async fn claim_pods(ctx: &Ctx<'_>, claim: &ObjectRef) -> Vec<Value> {
    let gw = ctx.gw;
    let _permit = ctx.explaining.acquire().await;
    let ns = claim.namespace.clone().unwrap_or_default();
    let query = gateway::ListQuery::new(
        crate::kinds::resource_of::<k8s_openapi::api::core::v1::Pod>(),
        Some(&ns),
    );
    let Ok(pods) = gw.list(&query).await else {
        return Vec::new();
    };
    pods.into_iter()
        .filter(|p| {
            p.pointer("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|v| {
                    v.pointer("/persistentVolumeClaim/claimName")
                        .and_then(Value::as_str)
                        == Some(claim.name.as_str())
                })
        })
        .collect()
}

mod queue;
#[cfg(test)]
mod tests;
