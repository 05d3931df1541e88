//! Executes a plan as an ordered rollout. The plan's typed operations (`plan::ops`) are run by
//! one generic [`executor`]: an operation starts when its dependencies have succeeded, at most
//! `concurrency` at once; a failed operation stops its dependents and nothing else. Waits follow
//! each kind's rule ([`waits`]); a failed wait is explained by [`diagnose`]. The executor never
//! prints: it emits [`Event`]s that a UI consumes, and every request goes through the gateway.

pub mod diagnose;
pub mod executor;
pub mod gate;
pub mod waits;
pub(crate) mod watch_hub;

use crate::gateway::Gateway;
use crate::kinds::{Kind, ObjectRef};
use crate::plan::compute::conflict_text;
use crate::plan::normalize::normalize;
use crate::plan::{Action, Plan, Step};
use futures::{StreamExt, stream};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

pub use executor::execute;

/// Something that happened during a rollout.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A phase starts: the objects of one kind (or of the workload kinds, `name` "Workloads").
    Phase {
        kind: Kind,
        name: String,
        objects: usize,
    },
    /// An object was written.
    Applied {
        object: ObjectRef,
        action: Action,
        seconds: f64,
    },
    /// An object needed no change.
    Unchanged { object: ObjectRef },
    /// An object was deleted (as a step of a replacement).
    Deleted { object: ObjectRef, seconds: f64 },
    /// Progress of a wait.
    Waiting { object: ObjectRef, message: String },
    /// A request failed in a way worth retrying (throttling, a server error, a lost
    /// connection) and is sent again after a backoff.
    Retrying { message: String },
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
    /// The rollout was interrupted by a signal: what was not done (in-flight writes finished,
    /// waits were abandoned, nothing else was started).
    Interrupted {
        signal: Interrupt,
        not_done: Vec<ObjectRef>,
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

/// A signal that asks the rollout to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interrupt {
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGTERM")]
    Term,
    /// The stack's lock was lost (another holder took the lease, or it could not be renewed):
    /// a second apply may be running, so this one starts nothing more.
    #[serde(rename = "lock-lost")]
    LockLost,
}

impl Interrupt {
    /// The shell's convention: 128 + the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            Interrupt::Int => 130,
            Interrupt::Term => 143,
            Interrupt::LockLost => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
            Interrupt::LockLost => "the loss of the stack's lock",
        }
    }
}

/// What the user allowed and how the rollout runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Bounds the whole rollout.
    pub timeout: Duration,
    /// Writes (and deletions) in flight at once. Waits are not counted: they share the watch
    /// hub's one watch per kind and make no requests of their own.
    pub concurrency: usize,
    /// Take fields other field managers own (`--force-conflicts`).
    pub force_conflicts: bool,
    /// Take over existing objects that are not this stack's (`--adopt`).
    pub adopt: bool,
    /// Objects the user consents to replace (`--replace statefulset/db`, repeatable).
    pub replace: Vec<String>,
    /// Changes that delete claims with their data may run (`--delete-data`).
    pub delete_data: bool,
    /// Instead of `--delete-data`: the claims a scale-down deletes are snapshotted first
    /// (`--snapshot-before`); refused for a claim no snapshot can be planned for.
    pub snapshot_before: bool,
    /// Set once a signal asks the rollout to stop.
    pub interrupt: Option<tokio::sync::watch::Receiver<Option<Interrupt>>>,
    /// Where the fingerprint of each write of a step's manifest is noted, for the inventory.
    pub record: Option<std::sync::Arc<crate::inventory::Applied>>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            timeout: crate::cli::DEFAULT_TIMEOUT,
            concurrency: crate::live::DEFAULT_CONCURRENCY,
            force_conflicts: false,
            adopt: false,
            replace: Vec::new(),
            delete_data: false,
            snapshot_before: false,
            interrupt: None,
            record: None,
        }
    }
}

/// Why a rollout stopped.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ApplyError {
    #[error("the plan replaces {}, which apply does only when named with --replace", .0.iter().map(|s| s.object.short()).collect::<Vec<_>>().join(", "))]
    #[diagnostic(help("{}", replace_help(.0)))]
    Replace(Vec<Step>),
    #[error("the plan replaces {}, which would delete or detach data", .0.iter().map(|s| s.object.short()).collect::<Vec<_>>().join(", "))]
    #[diagnostic(help("{}", replace_data_help(.0)))]
    ReplaceData(Vec<Step>),
    #[error("the plan has objects that could not be planned: {}", .0.join("; "))]
    #[diagnostic(help("fix the errors shown in the plan and run it again"))]
    PlanErrors(Vec<String>),
    #[error("the plan deletes claims with their data: {}", .0.join("; "))]
    #[diagnostic(help(
        "pass --delete-data if that data may go, --snapshot-before to snapshot each claim first (where a VolumeSnapshotClass exists for its driver), or keep the claims: set retention = {{ when_scaled = \"Retain\" }}"
    ))]
    DeletesData(Vec<String>),
    #[error("the plan makes data deletable: {}", .0.join("; "))]
    #[diagnostic(help(
        "pass --delete-data if that data may be deleted with its claim, or keep the reclaim policy Retain in the spec"
    ))]
    PutsDataAtRisk(Vec<String>),
    #[error("--snapshot-before cannot snapshot every claim the plan deletes: {}", .0.join("; "))]
    #[diagnostic(help(
        "create a VolumeSnapshotClass for the claims' driver, or pass --delete-data instead if that data may go"
    ))]
    NoSnapshot(Vec<String>),
    #[error("the plan takes over objects this stack does not own: {}", .0.join("; "))]
    #[diagnostic(help("pass --adopt to take them over, or set adopt = true on them in the spec"))]
    Adopt(Vec<String>),
    #[error("the plan sets fields other field managers own: {}", .0.join("; "))]
    #[diagnostic(help(
        "pass --force-conflicts to take those fields over (the other writer may set them back), or leave them out of the spec"
    ))]
    Conflicts(Vec<String>),
    #[error("the {} is stale: {}", .plan.as_ref().map(|p| format!("saved plan {p}")).unwrap_or_else(|| "plan".into()), .problems.join("; "))]
    #[diagnostic(help("run `kubectl stateful plan` again and apply the new plan"))]
    Stale {
        /// The saved plan's file, when it was one.
        plan: Option<String>,
        problems: Vec<String>,
    },
    #[error("rollout failed: {}", .0.join("; "))]
    #[diagnostic(help("fix the cause and run apply again: it continues from where it stopped"))]
    Failed(Vec<String>),
    #[error("interrupted by {}: {applied} applied, {unchanged} unchanged; not done: {}", .signal.name(), if .not_done.is_empty() { "nothing".to_string() } else { .not_done.join(", ") })]
    #[diagnostic(help(
        "writes in flight were finished and nothing else was started; run apply again: it continues from where it stopped"
    ))]
    Interrupted {
        signal: Interrupt,
        applied: usize,
        unchanged: usize,
        not_done: Vec<String>,
    },
}

fn replace_help(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| {
            format!(
                "{}: immutable {} changed; {}. To do it: apply --replace {}",
                s.object.short(),
                s.replace_paths.join(", "),
                s.object.kind.rules().replace_cost(),
                s.object.short()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn replace_data_help(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| {
            let kubectl = match &s.object.namespace {
                Some(ns) => format!("kubectl -n {ns} delete {} {}", s.object.kind.short(), s.object.name),
                None => format!("kubectl delete {} {}", s.object.kind.short(), s.object.name),
            };
            format!(
                "{}: immutable {} changed; {}. By hand: back up the data, `{kubectl}`, then apply again. \
                 Or set allow_replace = true on it in the spec and run apply --replace {}",
                s.object.short(),
                s.replace_paths.join(", "),
                s.object.kind.rules().replace_cost(),
                s.object.short()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Refuses plans apply cannot carry out: objects that failed to plan, replacements, and —
/// unless the user allowed them — adoptions and field-manager conflicts.
pub fn check_executable(plan: &Plan, options: &ApplyOptions) -> Result<(), ApplyError> {
    let errors: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Error)
        .map(|s| {
            let at = s
                .location
                .as_ref()
                .map(|l| format!(" (at {l})"))
                .unwrap_or_default();
            format!(
                "{}: {}{at}",
                s.object.short(),
                s.error.as_deref().unwrap_or("unknown error")
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApplyError::PlanErrors(errors));
    }
    let named = |s: &Step| options.replace.iter().any(|r| r == &s.object.short());
    let holds_data = |s: &Step| {
        matches!(
            s.object.kind,
            Kind::PersistentVolumeClaim | Kind::PersistentVolume
        )
    };
    let data: Vec<Step> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Replace && holds_data(s) && !(named(s) && s.allow_replace))
        .cloned()
        .collect();
    if !data.is_empty() {
        return Err(ApplyError::ReplaceData(data));
    }
    let replace: Vec<Step> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Replace && !named(s))
        .cloned()
        .collect();
    if !replace.is_empty() {
        return Err(ApplyError::Replace(replace));
    }
    // Claims a change deletes need --delete-data, or a planned snapshot each (--snapshot-before).
    // (A delete's own claims were consented when it was planned, with --prune-data or
    // destroy --delete-data: a delete step exists only then.)
    let bare = |s: &Step| {
        if s.action == Action::Delete {
            Vec::new()
        } else {
            crate::plan::safety::unprotected(s)
        }
    };
    let no_snapshot: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| options.snapshot_before && !options.delete_data && !bare(s).is_empty())
        .map(|s| {
            let why: Vec<&str> = s
                .reasons
                .iter()
                .filter(|r| r.contains("no snapshot"))
                .map(String::as_str)
                .collect();
            format!(
                "{} deletes {} ({})",
                s.object.short(),
                bare(s).join(", "),
                if why.is_empty() {
                    "no snapshot planned".to_string()
                } else {
                    why.join("; ")
                }
            )
        })
        .collect();
    if !no_snapshot.is_empty() {
        return Err(ApplyError::NoSnapshot(no_snapshot));
    }
    let data: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| !bare(s).is_empty() && !options.delete_data)
        .map(|s| format!("{} deletes {}", s.object.short(), bare(s).join(", ")))
        .collect();
    if !data.is_empty() {
        return Err(ApplyError::DeletesData(data));
    }
    let at_risk: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| !s.data_at_risk.is_empty() && !options.delete_data)
        .map(|s| format!("{}: {}", s.object.short(), s.data_at_risk.join(", ")))
        .collect();
    if !at_risk.is_empty() {
        return Err(ApplyError::PutsDataAtRisk(at_risk));
    }
    let adopt: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Adopt && !s.adopt && !options.adopt)
        .map(|s| s.object.short())
        .collect();
    if !adopt.is_empty() {
        return Err(ApplyError::Adopt(adopt));
    }
    let conflicts: Vec<String> = plan
        .steps
        .iter()
        // Every write that takes fields from another manager: an update or adoption, and a
        // replace or resize, which creates the object again without their values.
        .filter(|s| !s.conflicts.is_empty() && !options.force_conflicts)
        .map(|s| format!("{}: {}", s.object.short(), conflict_text(&s.conflicts)))
        .collect();
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    Ok(())
}

/// Checks that no object changed since a saved plan was made (status-only changes are fine).
pub async fn check_fresh(
    gw: &dyn Gateway,
    plan: &Plan,
    concurrency: usize,
) -> Result<(), ApplyError> {
    let problems: Vec<Option<String>> = stream::iter(plan.steps.iter())
        .map(|step| async move {
            let live = match gw.get(&step.object).await {
                Ok(l) => l,
                Err(f) => {
                    return Some(format!(
                        "{}: cannot read it: {}",
                        step.object.short(),
                        f.message
                    ));
                }
            };
            staleness(step, live.as_ref())
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Stale {
            plan: None,
            problems,
        })
    }
}

/// Why `live` is not what `step` was planned against, if it is not.
pub fn staleness(step: &Step, live: Option<&Value>) -> Option<String> {
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
                && Some(&normalize(step.object.kind, live, &step.manifest)) != step.before.as_ref()
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
}
