//! Executes a plan as an ordered rollout. Phases follow [`Kind::ALL`]: each phase applies its
//! objects (server-side apply, bounded concurrency), then waits for every object of the phase by
//! watching it. Claims that bind on first consumer are deferred to their StatefulSet's phase.
//! The executor never prints: it emits [`Event`]s that a UI consumes.

pub mod diagnose;
pub mod waits;

use crate::kinds::{Kind, ObjectRef};
use crate::live::Cluster;
use crate::plan::compute::replace_cost;
use crate::plan::normalize::normalize;
use crate::plan::{Action, Plan, Step};
use futures::{StreamExt, TryStreamExt, stream};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;
use waits::WaitStatus;

/// Something that happened during a rollout.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A phase starts: all objects of one kind.
    Phase { kind: Kind, objects: usize },
    /// An object was written.
    Applied {
        object: ObjectRef,
        action: Action,
        seconds: f64,
    },
    /// An object needed no change.
    Unchanged { object: ObjectRef },
    /// Progress of a wait.
    Waiting { object: ObjectRef, message: String },
    /// A wait is postponed (claims that bind on first consumer).
    Deferred { object: ObjectRef, message: String },
    /// A wait finished successfully.
    Ready {
        object: ObjectRef,
        message: String,
        seconds: f64,
    },
    /// Writing or waiting failed; `details` holds the object's recent events and conditions.
    Failed {
        object: ObjectRef,
        message: String,
        details: Vec<String>,
    },
    /// The rollout ended.
    Finished {
        ok: bool,
        applied: usize,
        unchanged: usize,
        failed: usize,
        seconds: f64,
    },
}

/// Consumes events (terminal progress, plain lines, JSON lines, or a test's collector).
pub trait Sink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Why a rollout stopped.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ApplyError {
    #[error("the plan replaces {}, which apply does not do", .0.iter().map(|s| s.object.short()).collect::<Vec<_>>().join(", "))]
    #[diagnostic(help("{}", replace_help(.0)))]
    Replace(Vec<Step>),
    #[error("the plan has objects that could not be planned: {}", .0.join("; "))]
    #[diagnostic(help("fix the errors shown in the plan and run it again"))]
    PlanErrors(Vec<String>),
    #[error("the saved plan is stale: {}", .0.join("; "))]
    #[diagnostic(help("run `kubectl stateful plan` again and apply the new plan"))]
    Stale(Vec<String>),
    #[error("rollout failed: {}", .0.join("; "))]
    #[diagnostic(help("fix the cause and run apply again: it continues from where it stopped"))]
    Failed(Vec<String>),
}

fn replace_help(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| {
            format!(
                "{}: immutable {} changed; {}",
                s.object.short(),
                s.replace_paths.join(", "),
                replace_cost(s.object.kind)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Refuses plans apply cannot carry out: replacements and objects that failed to plan.
pub fn check_executable(plan: &Plan) -> Result<(), ApplyError> {
    let errors: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Error)
        .map(|s| {
            format!(
                "{}: {}",
                s.object.short(),
                s.error.as_deref().unwrap_or("unknown error")
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApplyError::PlanErrors(errors));
    }
    let replace: Vec<Step> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Replace)
        .cloned()
        .collect();
    if !replace.is_empty() {
        return Err(ApplyError::Replace(replace));
    }
    Ok(())
}

/// Checks that no object changed since a saved plan was made (status-only changes are fine).
pub async fn check_fresh(cluster: &Cluster, plan: &Plan) -> Result<(), ApplyError> {
    let problems: Vec<Option<String>> = stream::iter(plan.steps.iter())
        .map(|step| async move {
            let live = match cluster.get(&step.object).await {
                Ok(l) => l,
                Err(f) => {
                    return Some(format!(
                        "{}: cannot read it: {}",
                        step.object.short(),
                        f.message
                    ));
                }
            };
            match (&step.live, live) {
                (None, None) => None,
                (None, Some(_)) => Some(format!(
                    "{} was created since the plan was made",
                    step.object.short()
                )),
                (Some(_), None) => Some(format!(
                    "{} was deleted since the plan was made",
                    step.object.short()
                )),
                (Some(v), Some(live)) => {
                    let uid = live
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let rv = live
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if uid != v.uid {
                        Some(format!(
                            "{} was deleted and created again since the plan was made",
                            step.object.short()
                        ))
                    } else if rv != v.resource_version
                        && Some(&normalize(step.object.kind, &live, &step.manifest))
                            != step.before.as_ref()
                    {
                        Some(format!(
                            "{} changed since the plan was made (resourceVersion {} → {rv})",
                            step.object.short(),
                            v.resource_version
                        ))
                    } else {
                        None
                    }
                }
            }
        })
        .buffered(cluster.concurrency)
        .collect()
        .await;
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Stale(problems))
    }
}

/// Rolls the plan out. Returns the number of objects written.
pub async fn execute(
    cluster: &Cluster,
    plan: &Plan,
    timeout: Duration,
    sink: &dyn Sink,
) -> Result<usize, ApplyError> {
    check_executable(plan)?;
    let start = Instant::now();
    let deadline = start + timeout;
    let mut applied = 0;
    let mut unchanged = 0;
    let mut deferred: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    for kind in Kind::ALL {
        let steps: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| s.object.kind == kind)
            .collect();
        if steps.is_empty() {
            continue;
        }
        sink.emit(Event::Phase {
            kind,
            objects: steps.len(),
        });
        let results: Vec<Result<bool, String>> = stream::iter(steps.iter().copied())
            .map(|step| apply_step(cluster, step, deadline, sink))
            .buffered(cluster.concurrency)
            .collect()
            .await;
        for r in results {
            match r {
                Ok(true) => applied += 1,
                Ok(false) => unchanged += 1,
                Err(e) => failures.push(e),
            }
        }
        if failures.is_empty() {
            let waits: Vec<Result<(), String>> = stream::iter(steps.iter().copied())
                .map(|step| wait_step(cluster, plan, step, &deferred, deadline, sink))
                .buffer_unordered(cluster.concurrency)
                .collect()
                .await;
            failures.extend(waits.into_iter().filter_map(Result::err));
            for step in &steps {
                if step.wait.first_consumer {
                    deferred.insert(step.object.name.clone());
                }
            }
        }
        if !failures.is_empty() {
            break;
        }
    }
    if failures.is_empty() {
        // Claims waiting for a consumer that this stack does not start.
        let consumed: BTreeSet<&String> = plan
            .steps
            .iter()
            .flat_map(|s| s.wait.consumed_claims.iter())
            .collect();
        for step in plan
            .steps
            .iter()
            .filter(|s| s.wait.first_consumer && !consumed.contains(&s.object.name))
        {
            sink.emit(Event::Deferred {
                object: step.object.clone(),
                message: "still waits for its first consumer: no StatefulSet of this stack mounts it, so it binds when a pod uses it".into(),
            });
        }
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

async fn apply_step(
    cluster: &Cluster,
    step: &Step,
    deadline: Instant,
    sink: &dyn Sink,
) -> Result<bool, String> {
    if !matches!(step.action, Action::Create | Action::Update) {
        sink.emit(Event::Unchanged {
            object: step.object.clone(),
        });
        return Ok(false);
    }
    let t = Instant::now();
    let write =
        tokio::time::timeout_at(deadline, cluster.apply(&step.object, &step.manifest, false));
    let result = write.await.unwrap_or_else(|_| {
        Err(crate::plan::compute::ApiFailure {
            code: 0,
            reason: "Timeout".into(),
            message: "timed out writing the object (--timeout)".into(),
            fields: Vec::new(),
        })
    });
    match result {
        Ok(_) => {
            sink.emit(Event::Applied {
                object: step.object.clone(),
                action: step.action,
                seconds: t.elapsed().as_secs_f64(),
            });
            Ok(true)
        }
        Err(f) => {
            let mut message = f.message.clone();
            if f.code == 403 && crate::plan::compute::is_rbac_denial(&f.message) {
                message.push_str(" (the account needs the RBAC rules in examples/rbac.yaml)");
            }
            sink.emit(Event::Failed {
                object: step.object.clone(),
                message: message.clone(),
                details: Vec::new(),
            });
            Err(format!("{}: {message}", step.object.short()))
        }
    }
}

async fn wait_step(
    cluster: &Cluster,
    plan: &Plan,
    step: &Step,
    deferred: &BTreeSet<String>,
    deadline: Instant,
    sink: &dyn Sink,
) -> Result<(), String> {
    match step.object.kind {
        Kind::PersistentVolume => {
            wait_for(cluster, &step.object, waits::volume, deadline, sink).await
        }
        Kind::PersistentVolumeClaim if step.wait.first_consumer => {
            sink.emit(Event::Deferred {
                object: step.object.clone(),
                message: "waits for first consumer (class binds WaitForFirstConsumer); confirmed after its StatefulSet's pods are scheduled".into(),
            });
            Ok(())
        }
        Kind::PersistentVolumeClaim => {
            wait_for(cluster, &step.object, waits::claim, deadline, sink).await
        }
        Kind::StatefulSet => {
            wait_for(cluster, &step.object, waits::statefulset, deadline, sink).await?;
            let claims = step.wait.template_claims.iter().chain(
                step.wait
                    .consumed_claims
                    .iter()
                    .filter(|c| deferred.contains(*c)),
            );
            let claim_ids: Vec<ObjectRef> = claims
                .map(|name| ObjectRef {
                    kind: Kind::PersistentVolumeClaim,
                    namespace: Some(plan.namespace.clone()),
                    name: name.clone(),
                })
                .collect();
            let results: Vec<Result<(), String>> = stream::iter(claim_ids.iter())
                .map(|id| wait_for(cluster, id, waits::claim, deadline, sink))
                .buffer_unordered(cluster.concurrency)
                .collect()
                .await;
            results.into_iter().collect()
        }
        _ => Ok(()),
    }
}

/// Watches one object until `rule` says done or the deadline passes, reporting progress. On
/// failure the object's recent events and conditions are attached.
pub async fn wait_for(
    cluster: &Cluster,
    id: &ObjectRef,
    rule: fn(Option<&Value>) -> WaitStatus,
    deadline: Instant,
    sink: &dyn Sink,
) -> Result<(), String> {
    let start = Instant::now();
    let config = watcher::Config::default().fields(&format!("metadata.name={}", id.name));
    // default_backoff: a failing watch is retried with exponential backoff, never in a hot loop.
    let mut events = watcher::watcher(cluster.api(id), config)
        .default_backoff()
        .boxed();
    let mut last_message = String::new();
    let mut current: Option<Value> = None;
    let outcome = tokio::time::timeout_at(deadline, async {
        loop {
            let status = match events.try_next().await {
                Ok(Some(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                    current = Some(crate::live::to_value(o));
                    rule(current.as_ref())
                }
                Ok(Some(watcher::Event::Delete(_))) => {
                    current = None;
                    rule(None)
                }
                Ok(Some(watcher::Event::InitDone)) => rule(current.as_ref()),
                Ok(Some(watcher::Event::Init)) => continue,
                Ok(None) => {
                    return WaitStatus {
                        done: true,
                        ok: false,
                        message: "watch ended".into(),
                    };
                }
                // The watcher retries on its own after errors; report and go on.
                Err(e) => WaitStatus {
                    done: false,
                    ok: false,
                    message: format!("watch error, retrying: {e}"),
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
    match outcome {
        Ok(status) if status.ok => {
            sink.emit(Event::Ready {
                object: id.clone(),
                message: status.message,
                seconds: start.elapsed().as_secs_f64(),
            });
            Ok(())
        }
        Ok(status) => {
            let details = diagnose::explain(cluster, id, current.as_ref()).await;
            sink.emit(Event::Failed {
                object: id.clone(),
                message: status.message.clone(),
                details: details.clone(),
            });
            Err(format!(
                "{}: {}{}",
                id.short(),
                status.message,
                first_detail(&details)
            ))
        }
        Err(_) => {
            let details = diagnose::explain(cluster, id, current.as_ref()).await;
            let message = format!(
                "timed out after {:.0}s: {}",
                start.elapsed().as_secs_f64(),
                if last_message.is_empty() {
                    "not ready"
                } else {
                    &last_message
                }
            );
            sink.emit(Event::Failed {
                object: id.clone(),
                message: message.clone(),
                details: details.clone(),
            });
            Err(format!(
                "{}: {message}{}",
                id.short(),
                first_detail(&details)
            ))
        }
    }
}

fn first_detail(details: &[String]) -> String {
    details
        .first()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}
