//! Plan assembly: reads the live state through the gateway, checks the spec's references, asks
//! the server what applying each object would store (a dry run, without `force`, with strict
//! field validation) and hands the answers to the pure [`compute_step`].

use super::compute::{ApiFailure, DryRun, StepInput, compute_step};
use super::{Plan, Step, WaitPlan};
use crate::desired::{self, DesiredObject};
use crate::gateway::{ApplyOptions, Gateway, ListQuery};
use crate::kinds::{Kind, MANAGED_BY, ObjectRef, STACK_LABEL};
use crate::live::{ClusterError, ClusterFacts, facts};
use crate::spec::{self, Spec};
use futures::{StreamExt, stream};
use serde_json::Value;

/// Why no plan could be made at all (per-object failures go into the plan instead).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Spec(Box<spec::SpecErrors>),
}

/// Plans the spec against the cluster: reads facts, checks references, then reads and dry-runs
/// every object (`concurrency` at once) and computes each step.
pub async fn make_plan(
    gw: &dyn Gateway,
    concurrency: usize,
    spec: &Spec,
    namespace: &str,
) -> Result<Plan, PlanError> {
    let facts = facts(gw, namespace, spec.stack_name()).await?;
    let issues = spec::check_references(spec, &facts.names);
    if !issues.is_empty() {
        return Err(PlanError::Spec(Box::new(spec::errors_for(spec, issues))));
    }
    let ctx = desired::Context {
        namespace: namespace.to_string(),
        cluster_volume_classes: facts
            .names
            .volumes
            .iter()
            .map(|(k, v)| (k.clone(), v.class.clone()))
            .collect(),
        create_namespace: !facts.namespace_exists,
    };
    let objects = desired::desired_objects(spec, &ctx);
    let steps: Vec<Step> =
        stream::iter(objects.iter().map(|d| plan_one(gw, spec, &facts, &ctx, d)))
            .buffered(concurrency.max(1))
            .collect()
            .await;
    let mut plan = Plan::new(
        spec.stack_name().to_string(),
        namespace.to_string(),
        gw.server(),
        steps,
    );
    let warnings = spec::warnings(spec, &facts.names);
    if !warnings.is_empty() {
        plan.warnings = spec::errors_for(spec, warnings).entries();
    }
    if facts.namespace_exists {
        plan.not_in_spec = not_in_spec(gw, spec.stack_name(), namespace, &facts, &objects).await?;
    }
    Ok(plan)
}

/// Objects carrying this stack's label that the spec no longer describes. StorageClasses,
/// volumes and claims come from the facts already read; Services and StatefulSets are listed.
async fn not_in_spec(
    gw: &dyn Gateway,
    stack: &str,
    namespace: &str,
    facts: &ClusterFacts,
    desired: &[DesiredObject],
) -> Result<Vec<ObjectRef>, ClusterError> {
    let selector = format!("{}={},{}={stack}", MANAGED_BY.0, MANAGED_BY.1, STACK_LABEL);
    let mut found = facts.stack_objects.clone();
    for kind in [Kind::Service, Kind::StatefulSet] {
        let query = ListQuery::new(kind.api_resource(), Some(namespace)).labels(&selector);
        let list = gw.list(&query).await.map_err(|failure| ClusterError::Api {
            what: format!("listing the stack's {}", kind.plural()),
            failure,
        })?;
        found.extend(
            list.iter()
                .map(|item| ObjectRef::new(kind, namespace, &crate::live::name_of(item))),
        );
    }
    found.retain(|id| !desired.iter().any(|d| &d.id == id));
    Ok(found)
}

async fn plan_one(
    gw: &dyn Gateway,
    spec: &Spec,
    facts: &ClusterFacts,
    ctx: &desired::Context,
    d: &DesiredObject,
) -> Step {
    let wait = wait_plan(spec, facts, d);
    let input = |live, dry_run, conflicts| StepInput {
        desired: d,
        live,
        dry_run,
        wait: wait.clone(),
        stack: spec.stack_name(),
        conflicts,
    };
    let live = match gw.get(&d.id).await {
        Ok(live) => live,
        Err(f) => {
            let dry_run = failed(gw, d, "get", f).await;
            return compute_step(input(None, dry_run, Vec::new()));
        }
    };
    let mut conflicts = Vec::new();
    let dry_run = if d.id.kind.namespaced() && ctx.create_namespace {
        DryRun::Skipped(format!(
            "namespace {} does not exist yet; the server validates this object when apply creates it",
            ctx.namespace
        ))
    } else if d.only_if_absent
        && live
            .as_ref()
            .is_some_and(|l| !crate::plan::compute::is_managed(l))
    {
        DryRun::Skipped("exists and not managed".into())
    } else if live.is_none() {
        // What apply will do: a real create.
        match gw.create(&d.id, &d.manifest, true).await {
            Ok(v) => DryRun::Ok(v),
            Err(f) => failed(gw, d, "create", f).await,
        }
    } else {
        let dry = |force| ApplyOptions {
            dry_run: true,
            force,
        };
        match gw.apply(&d.id, &d.manifest, dry(false)).await {
            Ok(v) => DryRun::Ok(v),
            Err(f) if !f.conflicts().is_empty() => {
                // Another manager owns fields we set: show them, and what forcing would store.
                conflicts = f.conflicts();
                match gw.apply(&d.id, &d.manifest, dry(true)).await {
                    Ok(v) => DryRun::Ok(v),
                    Err(f) => failed(gw, d, "patch", f).await,
                }
            }
            Err(f) => failed(gw, d, "patch", f).await,
        }
    };
    let mut step = compute_step(input(live.as_ref(), dry_run, conflicts));
    if let Some(error) = &step.error {
        step.location = locate(spec, &step, error);
    }
    step
}

/// Where in the spec the field the server refused comes from.
fn locate(spec: &Spec, step: &Step, error: &str) -> Option<String> {
    let field = spec::locate::unknown_field(error)?;
    let issue = spec::locate::locate_field(spec, &step.origin, &field, error)?;
    let entry = spec::errors_for(spec, vec![issue]).entries().pop()?;
    Some(match (entry.line, entry.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", entry.file, entry.key),
        _ => format!("{}: {}", entry.file, entry.key),
    })
}

/// Classifies a refusal: for a 403, asks the server whether the account lacks the verb (RBAC)
/// or an admission plugin refused the change.
async fn failed(gw: &dyn Gateway, d: &DesiredObject, verb: &str, mut f: ApiFailure) -> DryRun {
    let mut rbac_denied = false;
    if f.is_forbidden() {
        rbac_denied = gw.allowed(verb, &d.id).await == Some(false);
        if rbac_denied {
            let plural = d.id.kind.api_resource().plural;
            f.message = match verb {
                "get" => format!(
                    "{}: planning reads each object and needs the get verb on {plural}; see examples/rbac.yaml",
                    f.message
                ),
                "create" => format!(
                    "{}: planning asks the API server to validate the create with a dry run, which needs the create verb on {plural}; see examples/rbac.yaml",
                    f.message
                ),
                _ => format!(
                    "{}: planning asks the API server for a server-side dry-run apply, which is a PATCH and needs the patch verb on {plural}; see examples/rbac.yaml",
                    f.message
                ),
            };
        }
    }
    DryRun::Failed {
        failure: f,
        rbac_denied,
    }
}

fn wait_plan(spec: &Spec, facts: &ClusterFacts, d: &DesiredObject) -> WaitPlan {
    let mut wait = WaitPlan::default();
    match d.id.kind {
        Kind::PersistentVolumeClaim => {
            let class = d
                .manifest
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str);
            // A claim pinned to a volume binds at once whatever its class says.
            let pinned = d.manifest.pointer("/spec/volumeName").is_some();
            wait.first_consumer =
                !pinned && class != Some("") && facts.waits_for_consumer(spec, class);
            if let Some(class) = class.filter(|c| !c.is_empty())
                && !pinned
                && !class_exists(spec, facts, class)
            {
                wait.stays_pending = Some(format!(
                    "stays Pending until a volume of class {class:?} exists (no StorageClass and no volume has that class)"
                ));
            }
        }
        kind if kind.is_workload() => {
            wait.template_claims = d.template_claims.clone();
            wait.consumed_claims = desired::mounted_claims(&d.manifest);
        }
        _ => {}
    }
    wait
}

/// True when a StorageClass of that name exists, or a volume carries the class (static binding).
fn class_exists(spec: &Spec, facts: &ClusterFacts, class: &str) -> bool {
    facts.names.storage_classes.contains(class)
        || spec
            .storage_classes
            .iter()
            .any(|s| s.get_ref().name.get_ref() == class)
        || facts.names.volumes.values().any(|v| v.class == class)
        || spec.volumes.iter().any(|v| {
            v.get_ref()
                .class
                .as_ref()
                .is_some_and(|c| c.get_ref() == class)
        })
}
