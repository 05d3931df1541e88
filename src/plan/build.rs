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
    let mut steps = steps;
    if ctx.create_namespace
        && objects.iter().any(|d| d.id.kind.namespaced())
        && let Some(ns_step) = steps.iter_mut().find(|s| s.object.kind == Kind::Namespace)
    {
        ns_step.reasons.push(format!(
            "the API server runs no dry run in a namespace that does not exist: the stack's namespaced objects were validated by dry-run creates in namespace {VALIDATION_NAMESPACE}"
        ));
    }
    let mut plan = Plan::new(
        spec.stack_name().to_string(),
        namespace.to_string(),
        gw.server(),
        steps,
    );
    plan.not_in_spec = not_in_spec(gw, spec.stack_name(), namespace, &facts, &objects).await?;
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
    // A namespace that does not exist holds nothing; the stack's cluster-scoped objects still count.
    let namespaced = if facts.namespace_exists {
        &[Kind::Service, Kind::StatefulSet][..]
    } else {
        &[][..]
    };
    for &kind in namespaced {
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

/// The namespace in which the objects of a namespace that does not exist yet are validated.
///
/// The API server refuses even a dry run in a namespace that does not exist, and apply must not
/// write anything (the Namespace included) before every object has been validated. So each
/// namespaced object is validated by a dry-run create of the very same object in `default`,
/// which always exists: the same schema, defaulting, strict field validation and admission. An
/// `AlreadyExists` answer counts as valid: the server checks existence only after validating.
/// What this cannot see are policies specific to the new namespace (it has none before it is
/// created) — and it sees quotas or webhooks of `default` that may not apply there.
pub const VALIDATION_NAMESPACE: &str = "default";

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
    let located = |mut step: Step, failure: Option<&ApiFailure>| {
        if step.error.is_some()
            && let Some(f) = failure
        {
            step.location = locate(spec, &step, f);
        }
        step
    };
    if d.id.kind.namespaced() && ctx.create_namespace {
        let dry_run = validate_elsewhere(gw, d, &ctx.namespace).await;
        let failure = failure_of(&dry_run);
        return located(
            compute_step(input(None, dry_run, Vec::new())),
            failure.as_ref(),
        );
    }
    let live = match gw.get(&d.id).await {
        Ok(live) => live,
        Err(f) => {
            let dry_run = failed(gw, &d.id, "get", f).await;
            return compute_step(input(None, dry_run, Vec::new()));
        }
    };
    let mut conflicts = Vec::new();
    let dry_run = if d.only_if_absent
        && live
            .as_ref()
            .is_some_and(|l| !crate::plan::compute::is_managed(l))
    {
        DryRun::Skipped("exists and not managed".into())
    } else if live.is_none() {
        // What apply will do: a real create.
        match gw.create(&d.id, &d.manifest, true).await {
            Ok(v) => DryRun::Ok(v),
            Err(f) => failed(gw, &d.id, "create", f).await,
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
                // Our own manager's create-time entries (an `Update` that could not be handed
                // over to our apply) are ours to take: no conflict to show for those.
                conflicts = f
                    .conflicts()
                    .into_iter()
                    .filter(|c| c.manager != crate::kinds::FIELD_MANAGER)
                    .collect();
                match gw.apply(&d.id, &d.manifest, dry(true)).await {
                    Ok(v) => DryRun::Ok(v),
                    Err(f) => failed(gw, &d.id, "patch", f).await,
                }
            }
            Err(f) => failed(gw, &d.id, "patch", f).await,
        }
    };
    let failure = failure_of(&dry_run);
    located(
        compute_step(input(live.as_ref(), dry_run, conflicts)),
        failure.as_ref(),
    )
}

fn failure_of(dry_run: &DryRun) -> Option<ApiFailure> {
    match dry_run {
        DryRun::Failed { failure, .. } => Some(failure.clone()),
        _ => None,
    }
}

/// Validates an object of a namespace that does not exist yet (see [`VALIDATION_NAMESPACE`]).
async fn validate_elsewhere(gw: &dyn Gateway, d: &DesiredObject, namespace: &str) -> DryRun {
    let mut manifest = d.manifest.clone();
    manifest["metadata"]["namespace"] = Value::from(VALIDATION_NAMESPACE);
    let id = ObjectRef::new(d.id.kind, VALIDATION_NAMESPACE, &d.id.name);
    match gw.create(&id, &manifest, true).await {
        Ok(_) => DryRun::Ok(d.manifest.clone()),
        Err(f) if f.is_already_exists() => DryRun::Ok(d.manifest.clone()),
        Err(mut f) => {
            if f.is_forbidden() || f.code == 0 || f.is_retryable() {
                f.message = format!(
                    "{}; namespace {namespace} does not exist yet, so this object was to be validated by a dry-run create in namespace {VALIDATION_NAMESPACE}, which failed: create the namespace first (kubectl create namespace {namespace}) and plan again",
                    f.message
                );
            }
            failed(gw, &id, "create", f).await
        }
    }
}

/// Where in the spec the field the server refused comes from.
fn locate(spec: &Spec, step: &Step, failure: &ApiFailure) -> Option<String> {
    let issue = spec::locate::locate_failure(spec, &step.origin, step.object.kind, failure)?;
    let entry = spec::errors_for(spec, vec![issue]).entries().pop()?;
    Some(match (entry.line, entry.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", entry.file, entry.key),
        _ => format!("{}: {}", entry.file, entry.key),
    })
}

/// Classifies a refusal: for a 403, asks the server whether the account lacks the verb (RBAC)
/// or an admission plugin refused the change.
async fn failed(gw: &dyn Gateway, id: &ObjectRef, verb: &str, mut f: ApiFailure) -> DryRun {
    let mut rbac_denied = false;
    if f.is_forbidden() {
        rbac_denied = gw.allowed(verb, id).await == Some(false);
        if rbac_denied {
            let plural = id.kind.api_resource().plural;
            let scope = id
                .namespace
                .as_ref()
                .map(|ns| format!(" in namespace {ns}"))
                .unwrap_or_default();
            f.message = match verb {
                "get" => format!(
                    "{}: planning reads each object and needs the get verb on {plural}{scope}; see examples/rbac.yaml",
                    f.message
                ),
                "create" => format!(
                    "{}: planning asks the API server to validate the create with a dry run, which needs the create verb on {plural}{scope}; see examples/rbac.yaml",
                    f.message
                ),
                _ => format!(
                    "{}: planning asks the API server for a server-side dry-run apply, which is a PATCH and needs the patch verb on {plural}{scope}; see examples/rbac.yaml",
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
        }
        Kind::StatefulSet => {
            wait.template_claims = d.template_claims.clone();
            wait.consumed_claims = desired::mounted_claims(&d.manifest);
        }
        _ => {}
    }
    wait
}
