//! Plan assembly: reads the live state through the gateway, checks the spec's references, asks
//! the server what applying each object would store (a dry run, without `force`, with strict
//! field validation) and hands the answers to the pure [`compute_step`].

use super::compute::{ApiFailure, DryRun, StepInput, compute_step};
use super::fingerprint::{self, Fingerprint};
use super::observe::{self, Observed, observe};
use super::prune::{self, Candidate};
use super::{Action, Plan, Step, WaitPlan};
use crate::desired::{self, DesiredObject};
use crate::gateway::{ApplyOptions, Gateway};
use crate::kinds::statefulset::{claims_of_templates, template_claim_ordinal};
use crate::kinds::{Kind, MANAGED_BY, ObjectRef, STACK_LABEL};
use crate::live::{ClusterError, ClusterFacts, facts};
use crate::spec::{self, Spec};
use futures::{StreamExt, stream};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

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

/// What the plan covers besides the spec's objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Objects that left the spec become deletions (or releases), not just a listing.
    pub prune: bool,
    /// Plan the removal of the whole stack (`destroy`): every object of the stack left the spec.
    pub destroy: bool,
    /// Claims, volumes and StatefulSets that take claims along may be deleted too.
    pub data: bool,
    /// Ask the server for a dry run of every object, even those the inventory's record shows
    /// untouched since the last apply (`--full`).
    pub full: bool,
    /// The claims a scale-down deletes (`whenScaled: Delete`) are snapshotted first
    /// (`--snapshot-before`).
    pub snapshot_before: bool,
    /// A StatefulSet claim-template resize restarts, one at a time in ordinal order, the pods
    /// whose claims wait for their file system to grow on mount (`--restart-pods`).
    pub restart_pods: bool,
}

/// Plans the spec against the cluster: reads facts, checks references, then reads and dry-runs
/// every object (`concurrency` at once) and computes each step.
pub async fn make_plan(
    gw: &dyn Gateway,
    concurrency: usize,
    spec: &Spec,
    namespace: &str,
) -> Result<Plan, PlanError> {
    make_plan_with(gw, concurrency, spec, namespace, PlanOptions::default()).await
}

/// [`make_plan`] with pruning or destruction.
pub async fn make_plan_with(
    gw: &dyn Gateway,
    concurrency: usize,
    spec: &Spec,
    namespace: &str,
    options: PlanOptions,
) -> Result<Plan, PlanError> {
    let facts = facts(gw, namespace).await?;
    let issues = if options.destroy {
        Vec::new()
    } else {
        spec::check_references(spec, &facts.names)
    };
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
    let mut objects = desired::desired_objects(spec, &ctx);
    if options.destroy {
        objects.clear();
    }
    let stack = spec.stack_name();
    let observed = observe(gw, stack, namespace, facts, &objects).await?;
    let facts = &observed.facts;
    let recorded = observed.inventory.index();
    let full = options.full;
    // What the rest needs of the desired objects; each object itself moves into its step (a
    // large stack is never held twice).
    let desired_ids: Vec<ObjectRef> = objects.iter().map(|d| d.id.clone()).collect();
    let mut steps: Vec<Step> = Vec::with_capacity(objects.len());
    stream::iter(objects.into_iter().map(|d| {
        let recorded = recorded.get(&d.id).and_then(|e| e.fingerprint());
        plan_one(
            gw,
            spec,
            &observed,
            &ctx,
            d,
            (!full).then_some(recorded).flatten(),
        )
    }))
    .buffered(concurrency.max(1))
    .for_each(|step| {
        steps.push(step);
        std::future::ready(())
    })
    .await;
    // `protect` blocks every recipe that deletes the object: a replace, and a claim-template
    // resize (which deletes the StatefulSet with --cascade=orphan and creates it again).
    for step in steps
        .iter_mut()
        .filter(|s| s.protect && matches!(s.action, Action::Replace | Action::Resize))
    {
        let how = if step.action == Action::Resize {
            "deleted (--cascade=orphan) and created again to resize its claim templates"
        } else {
            "replaced"
        };
        step.action = Action::Error;
        step.error = Some(format!(
            "{} is protected (protect = true) and would have to be {how} ({})",
            step.object.short(),
            step.replace_paths.join(", ")
        ));
    }
    let mut kept = Vec::new();
    let mut kept_data = None;
    let mut not_in_spec_ids = Vec::new();
    if facts.namespace_exists || options.destroy {
        let inventory = &observed.inventory;
        let mut candidates = stack_objects(gw, stack, namespace, &observed, &desired_ids).await;
        if options.destroy {
            candidates.extend(template_claims_of(&candidates, &facts.claims, inventory));
        }
        not_in_spec_ids = candidates.iter().map(|c| c.id.clone()).collect();
        if options.prune || options.destroy {
            let mut owned: BTreeSet<ObjectRef> = desired_ids.iter().cloned().collect();
            owned.extend(not_in_spec_ids.iter().cloned());
            let (removal, k) = prune::decide(
                &candidates,
                &prune::Context {
                    inventory,
                    stack: &owned,
                    volumes: &facts.volumes,
                    namespace,
                },
                prune::PruneOptions {
                    data: options.data,
                    data_flag: if options.destroy {
                        "--delete-data"
                    } else {
                        "--prune-data"
                    },
                },
            );
            kept_data = prune::kept_data_summary(&k, &candidates);
            kept = k;
            steps.extend(removal);
        }
    }
    // Data that goes is snapshotted first where a VolumeSnapshotClass exists for its driver.
    let safety = super::safety::Options {
        snapshot_before: options.snapshot_before,
        destroy: options.destroy,
        stamp: k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y%m%d-%H%M%S")
            .to_string(),
    };
    super::safety::plan_in_cluster(gw, &mut steps, facts, &safety).await;
    super::resume::explain(gw, &mut steps, &facts.claims, facts.namespace_exists).await;
    if options.restart_pods {
        for r in steps.iter_mut().filter_map(|s| s.resize.as_mut()) {
            r.restart_pods = true;
        }
    }
    if ctx.create_namespace
        && desired_ids.iter().any(|id| id.kind.namespaced())
        && let Some(ns_step) = steps.iter_mut().find(|s| s.object.kind == Kind::Namespace)
    {
        ns_step.reasons.push(format!(
            "the API server runs no dry run in a namespace that does not exist: the stack's namespaced objects were validated by dry-run creates in namespace {VALIDATION_NAMESPACE}"
        ));
    }
    super::ops::explain_order(&mut steps);
    let mut plan = Plan::new(
        spec.stack_name().to_string(),
        namespace.to_string(),
        gw.server(),
        steps,
    );
    if !options.destroy {
        let warnings = spec::warnings(spec, &observed.facts.names);
        if !warnings.is_empty() {
            plan.warnings = spec::errors_for(spec, warnings).entries();
        }
    }
    plan.not_in_spec = not_in_spec_ids;
    plan.kept = kept;
    plan.kept_data = kept_data;
    Ok(plan)
}

/// The claims made from the templates of the stack's StatefulSets (`<template>-<name>-<n>`,
/// any ordinal, including those scaled away and kept by the retention policy).
/// The claims of the templates of the StatefulSets `destroy` deletes — not of those it only
/// releases (adopted, per the inventory) or that someone re-created since (another uid): their
/// claims are not the stack's to delete, whatever their names say.
fn template_claims_of(
    candidates: &[Candidate],
    claims: &[Value],
    inventory: &crate::inventory::Inventory,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for sts in candidates.iter().filter(|c| c.id.kind == Kind::StatefulSet) {
        let uid = sts
            .live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Only a StatefulSet the stack provably created (its entry, for this uid, not adopted)
        // makes its claims the stack's; with no entry (an inventory lost) they are not.
        if !inventory
            .get(&sts.id)
            .is_some_and(|e| !e.adopted && e.uid == uid)
        {
            continue;
        }
        let ns = sts.id.namespace.as_deref().unwrap_or_default();
        for (claim, _, _) in claims_of_templates(&sts.id.name, &sts.live, claims) {
            out.push(Candidate {
                id: ObjectRef::new(
                    Kind::PersistentVolumeClaim,
                    ns,
                    &crate::live::name_of(claim),
                ),
                live: claim.clone(),
                made_by: Some(sts.id.clone()),
            });
        }
    }
    out
}

/// The stack's objects that the spec does not describe: those carrying the stack's labels
/// (from the lists already read) and those its inventory records.
async fn stack_objects(
    gw: &dyn Gateway,
    stack: &str,
    namespace: &str,
    observed: &Observed,
    desired: &[ObjectRef],
) -> Vec<Candidate> {
    let selector = format!("{}={},{}={stack}", MANAGED_BY.0, MANAGED_BY.1, STACK_LABEL);
    let inventory = &observed.inventory;
    let mut found: Vec<Candidate> = Vec::new();
    // Objects the spec describes are not candidates; they are left out before anything is
    // copied (a large stack's live objects are held once, in `observed`).
    let desired: HashSet<&ObjectRef> = desired.iter().collect();
    // Cluster-scoped objects carry the stack's name but not its namespace, and a stack of the
    // same name may live in another namespace: only those this stack's inventory recorded (same
    // uid) are its own.
    let uids: HashSet<&str> = inventory.objects.iter().map(|e| e.uid.as_str()).collect();
    let recorded = |obj: &Value| {
        obj.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_some_and(|uid| uids.contains(uid))
    };
    let kinds = [
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::Service,
        Kind::StatefulSet,
        Kind::Deployment,
        Kind::DaemonSet,
    ];
    for kind in kinds {
        let Some(list) = observed.list(kind) else {
            continue;
        };
        for obj in observe::labelled(list, &selector).filter(|o| kind.namespaced() || recorded(o)) {
            let id = ObjectRef::new(kind, namespace, &crate::live::name_of(obj));
            if !desired.contains(&id) {
                found.push(Candidate {
                    id,
                    live: obj.clone(),
                    made_by: None,
                });
            }
        }
    }
    // Recorded but no longer labelled (someone removed the labels): still the stack's, as
    // long as it is the object recorded (the uid decides later).
    let mut seen: HashSet<ObjectRef> = found.iter().map(|c| c.id.clone()).collect();
    for entry in &inventory.objects {
        if seen.contains(&entry.object)
            || desired.contains(&entry.object)
            || entry.object.kind == Kind::ConfigMap
            || !belongs_to_stack(&entry.object, namespace)
        {
            continue;
        }
        let live = match observed.get(&entry.object) {
            Some(known) => known.cloned(),
            None if entry.object.kind.namespaced() && !observed.facts.namespace_exists => None,
            None => gw.get(&entry.object).await.ok().flatten(),
        };
        // A cluster-scoped object that no longer carries the stack's labels is not taken on the
        // word of an entry alone (the entry may have been edited to name any object).
        let live = live.filter(|l| {
            entry.object.kind.namespaced()
                || observe::labelled(std::slice::from_ref(l), &selector)
                    .next()
                    .is_some()
        });
        if let Some(live) = live {
            seen.insert(entry.object.clone());
            found.push(Candidate {
                id: entry.object.clone(),
                live,
                made_by: None,
            });
        }
    }
    found.sort_by_key(|c| c.id.kind.phase());
    found
}

/// Whether an inventory entry can name an object of this stack at all: a namespaced object in
/// the stack's namespace, or a cluster-scoped one. An entry naming another namespace's object
/// (an edited or corrupted inventory) is never a candidate for prune or destroy.
fn belongs_to_stack(id: &ObjectRef, namespace: &str) -> bool {
    if id.kind.namespaced() {
        id.namespace.as_deref() == Some(namespace)
    } else {
        id.namespace.as_deref().is_none_or(str::is_empty)
    }
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

/// Plans one object: its live version (listed, or read on its own), then what applying it
/// would store — from the record of the last apply when that shows the object untouched
/// (`recorded`; see [`super::fingerprint`]), else from the server's dry run.
async fn plan_one(
    gw: &dyn Gateway,
    spec: &Spec,
    observed: &Observed,
    ctx: &desired::Context,
    d: DesiredObject,
    recorded: Option<Fingerprint>,
) -> Step {
    let d = &d;
    let facts = &observed.facts;
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
    let read = match observed.get(&d.id) {
        Some(known) => Ok(known.cloned()),
        None => gw.get(&d.id).await,
    };
    let live = match read {
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
    } else if let Some(l) = live
        .as_ref()
        .filter(|l| fingerprint::unchanged_since_applied(&d.manifest, l, recorded.as_ref()))
    {
        // Untouched since the last apply wrote this very manifest: the dry run would store
        // exactly the live object.
        DryRun::Ok(l.clone())
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
                // Fields our own name holds through an older kind of write (a create is
                // recorded as an update) are ours, not a conflict.
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
    let mut step = located(
        compute_step(input(live.as_ref(), dry_run, conflicts)),
        failure.as_ref(),
    );
    if let Some(live) = &live {
        explain_storage(&mut step, live, facts);
    }
    if matches!(step.action, Action::Replace | Action::Resize) && !step.conflicts.is_empty() {
        // A re-created object keeps no other manager's value: their fields are checked like an
        // update's (apply needs --force-conflicts).
        step.reasons.push(format!(
            "{}; the object is created again from the spec, without their values: apply goes ahead only with --force-conflicts",
            crate::plan::compute::conflict_text(&step.conflicts)
        ));
    }
    step
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

/// Storage changes in the user's words: a claim's expansion (or recovery from a failed one), a
/// class that does not allow expansion, and what a StatefulSet template resize will expand —
/// refused when a claim is not Bound or its class cannot expand.
fn explain_storage(step: &mut Step, live: &Value, facts: &ClusterFacts) {
    let size_at = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let expandable = |class: &str| {
        facts
            .classes
            .iter()
            .find(|c| crate::live::name_of(c) == class)
            .and_then(|c| c["allowVolumeExpansion"].as_bool())
            == Some(true)
    };
    match (step.object.kind, step.action) {
        (Kind::PersistentVolumeClaim, Action::Update)
            if step
                .changed_paths
                .iter()
                .any(|p| p == "spec.resources.requests.storage") =>
        {
            let from = size_at(live, "/spec/resources/requests/storage");
            let to = size_at(&step.manifest, "/spec/resources/requests/storage");
            if crate::kinds::claim_grows(&step.manifest, live) {
                step.reasons.push(format!(
                    "expand {from} → {to}; the file system grows online where the driver supports it, else when a pod next mounts it"
                ));
            } else {
                step.reasons.push(format!(
                    "recovery: the request goes back from {from} to {to} (at least the current capacity {}) after a failed expansion",
                    size_at(live, "/status/capacity/storage")
                ));
            }
        }
        (Kind::PersistentVolumeClaim, Action::Replace)
            if step
                .replace_paths
                .iter()
                .any(|p| p == "spec.resources.requests.storage")
                && crate::kinds::claim_grows(&step.manifest, live) =>
        {
            let class = size_at(live, "/spec/storageClassName");
            step.reasons.insert(
                0,
                format!(
                    "class {class:?} does not allow expansion (allowVolumeExpansion is not true): the claim cannot grow in place"
                ),
            );
        }
        (Kind::StatefulSet, Action::Update | Action::Adopt) => {
            // Claims of ordinals at or above the new replica count go when the retention policy
            // says whenScaled: Delete (the policy the StatefulSet will have after the write);
            // the executor's gate computes the same from the live object before the write.
            let name = step.object.name.clone();
            let doomed = crate::kinds::statefulset::scale_down_claims(
                &name,
                &step.manifest,
                live,
                &facts.claims,
            );
            if !doomed.is_empty() {
                let sizes: Vec<String> = doomed
                    .iter()
                    .map(|(c, _)| {
                        format!(
                            "{} ({})",
                            crate::live::name_of(c),
                            size_at(c, "/status/capacity/storage")
                        )
                    })
                    .collect();
                step.reasons.push(format!(
                    "with whenScaled: Delete, {} replicas delete the claims of the ordinals above: {} (apply needs --delete-data)",
                    crate::kinds::statefulset::replicas(&step.manifest),
                    sizes.join(", ")
                ));
                step.deletes_claims = doomed
                    .iter()
                    .map(|(c, _)| crate::live::name_of(c))
                    .collect();
            }
        }
        (Kind::StatefulSet, Action::Replace) => keep_live_replicas(step, live),
        (Kind::PersistentVolume, Action::Update | Action::Adopt) => {
            if let Some(risk) = crate::kinds::volume::reclaim_turns_to_delete(&step.manifest, live)
            {
                step.reasons
                    .push(format!("{risk} (apply needs --delete-data)"));
                step.data_at_risk.push(risk);
            }
        }
        // Snapshot data is data: a replace deletes the snapshot before taking it again.
        (Kind::VolumeSnapshot, Action::Replace) => {
            let source = size_at(live, "/spec/source/persistentVolumeClaimName");
            step.reasons.push(format!(
                "replacing it deletes it and takes it again: the data it holds now (a copy of pvc/{source}) is deleted with it where its class's deletionPolicy is Delete (apply needs --delete-data)"
            ));
            step.data_at_risk
                .push(crate::kinds::volume_snapshot::data_of(&step.object.name));
        }
        (Kind::StorageClass, Action::Replace) => {
            if let Some(risk) =
                crate::kinds::storage_class::reclaim_turns_to_delete(&step.manifest, live)
            {
                step.reasons
                    .push(format!("{risk} (apply needs --delete-data)"));
                step.data_at_risk.push(risk);
            }
        }
        (Kind::StatefulSet, Action::Resize) => {
            // First: the retention manifest and the pods below are made from the manifest.
            keep_live_replicas(step, live);
            let name = step.object.name.clone();
            let mut claims = Vec::new();
            let mut refusals = Vec::new();
            let templates = step.manifest["spec"]["volumeClaimTemplates"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for t in &templates {
                let tpl = size_at(t, "/metadata/name");
                let to = size_at(t, "/spec/resources/requests/storage");
                for c in &facts.claims {
                    let claim = crate::live::name_of(c);
                    if template_claim_ordinal(&claim, &tpl, &name).is_none() {
                        continue;
                    }
                    // An expansion an interrupted apply started asks for the size already
                    // but may not have it yet: it is expanded (at no cost) and waited for.
                    let request = size_at(c, "/spec/resources/requests/storage");
                    let capacity = size_at(c, "/status/capacity/storage");
                    let from = match (
                        crate::spec::quantity::Quantity::parse(&request),
                        crate::spec::quantity::Quantity::parse(&capacity),
                    ) {
                        (Ok(r), Ok(c)) if c.cmp_exact(&r) == std::cmp::Ordering::Less => capacity,
                        _ => request,
                    };
                    let class = size_at(c, "/spec/storageClassName");
                    if size_at(c, "/status/phase") != "Bound" {
                        refusals.push(format!("pvc/{claim} is not Bound"));
                    } else if !expandable(&class) {
                        refusals.push(format!(
                            "pvc/{claim}: class {class:?} does not allow expansion"
                        ));
                    }
                    let grows = matches!(
                        (crate::spec::quantity::Quantity::parse(&to), crate::spec::quantity::Quantity::parse(&from)),
                        (Ok(t), Ok(f)) if t.cmp_exact(&f) == std::cmp::Ordering::Greater
                    );
                    if grows {
                        claims.push(crate::plan::ClaimResize {
                            name: claim,
                            from,
                            to: to.clone(),
                        });
                    }
                }
            }
            if !refusals.is_empty() {
                step.action = Action::Error;
                step.error = Some(format!(
                    "the claim templates cannot be resized: {}",
                    refusals.join("; ")
                ));
                return;
            }
            let retain_first = live
                .pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted")
                .and_then(Value::as_str)
                == Some("Delete");
            let retain_manifest =
                retain_first.then(|| retain_manifest(&step.manifest, step.before.as_ref()));
            // The pods that mount the claims once the StatefulSet is back: ordinals below its
            // replicas, in ordinal order.
            let replicas = step
                .manifest
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            let mut pods: Vec<(u64, crate::plan::PodClaims)> = Vec::new();
            for c in &claims {
                let ordinal = c
                    .name
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|n| *n < replicas);
                let Some(n) = ordinal else { continue };
                match pods.iter_mut().find(|(o, _)| *o == n) {
                    Some((_, p)) => p.claims.push(c.name.clone()),
                    None => pods.push((
                        n,
                        crate::plan::PodClaims {
                            pod: format!("{name}-{n}"),
                            claims: vec![c.name.clone()],
                        },
                    )),
                }
            }
            pods.sort_by_key(|(n, _)| *n);
            step.resize = Some(crate::plan::ResizePlan {
                claims,
                retain_first,
                retain_manifest,
                pods: pods.into_iter().map(|(_, p)| p).collect(),
                restart_pods: false,
            });
        }
        _ => {}
    }
}

/// The manifest a claim-template resize applies first when the StatefulSet's retention says
/// `whenDeleted: Delete`: the step's manifest with the live templates (`before`'s, which cannot
/// change in place) and `whenDeleted: Retain`, so the claims cannot go with the delete.
pub(crate) fn retain_manifest(manifest: &Value, before: Option<&Value>) -> Value {
    let mut m = manifest.clone();
    if let Some(t) = before.and_then(|b| b.pointer("/spec/volumeClaimTemplates")) {
        m["spec"]["volumeClaimTemplates"] = t.clone();
    }
    m["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] = Value::from("Retain");
    m
}

/// A StatefulSet that a recipe deletes and creates again keeps the replicas it runs with.
fn keep_live_replicas(step: &mut Step, live: &Value) {
    keep_replicas(step, crate::kinds::statefulset::replicas(live));
    // The count another manager set (`kubectl scale`, an HPA) is kept, not taken from it.
    step.conflicts.retain(|c| c.field != "spec.replicas");
}

/// A StatefulSet step created with `n` replicas: in the manifest created and in what the plan
/// shows, with the reason when the spec's count differs (see
/// [`crate::kinds::statefulset::keep_live_replicas`]).
pub(super) fn keep_replicas(step: &mut Step, n: u64) {
    use crate::kinds::statefulset;
    if let Some(reason) = statefulset::keep_live_replicas(&mut step.manifest, n) {
        step.reasons.push(reason);
    }
    if let Some(after) = step.after.as_mut() {
        statefulset::keep_live_replicas(after, n);
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
    if id.kind == Kind::VolumeSnapshot && f.is_not_found() {
        f.message = format!(
            "this cluster has no {}/{} API: VolumeSnapshots need the external-snapshotter CRDs and the snapshot controller (the server said: {})",
            crate::kinds::SNAPSHOT_GROUP,
            crate::kinds::SNAPSHOT_VERSION,
            f.message
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::fake::FakeGateway;
    use crate::kinds::{Kind, ObjectRef};
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn inventory_entries_name_only_objects_of_the_stacks_namespace() {
        let svc = |ns: &str| ObjectRef::new(Kind::Service, ns, "db");
        assert!(belongs_to_stack(&svc("ns"), "ns"));
        assert!(!belongs_to_stack(&svc("other"), "ns"));
        assert!(!belongs_to_stack(&svc(""), "ns"));
        assert!(belongs_to_stack(
            &ObjectRef::new(Kind::PersistentVolume, "", "pv"),
            "ns"
        ));
    }

    /// `destroy --delete-data` picks up the claims of the StatefulSets it deletes, not of those
    /// it releases (adopted, or not recorded) or that were re-created by someone else.
    #[test]
    fn destroy_takes_only_the_claims_of_statefulsets_it_deletes() {
        use crate::inventory::{Entry, Inventory};
        let sts = |name: &str| Candidate {
            id: ObjectRef::new(Kind::StatefulSet, "ns", name),
            live: json!({"metadata": {"name": name, "uid": format!("uid-{name}")},
                "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}),
            made_by: None,
        };
        let candidates = vec![
            sts("ours"),
            sts("adopted"),
            sts("recreated"),
            sts("labelled"),
        ];
        let claims: Vec<Value> = ["ours", "adopted", "recreated", "labelled"]
            .iter()
            .map(|s| json!({"metadata": {"name": format!("data-{s}-0")}}))
            .collect();
        let inventory = Inventory {
            version: 1,
            objects: vec![
                Entry::new(candidates[0].id.clone(), "uid-ours".into(), false, false),
                Entry::new(candidates[1].id.clone(), "uid-adopted".into(), true, false),
                Entry::new(candidates[2].id.clone(), "uid-before".into(), false, false),
            ],
        };
        let names: Vec<String> = template_claims_of(&candidates, &claims, &inventory)
            .into_iter()
            .map(|c| c.id.name)
            .collect();
        // A StatefulSet found by the stack's labels alone proves nothing (it is released, see
        // prune::decide): its claims are not taken.
        assert_eq!(names, vec!["data-ours-0"]);
    }

    /// `--concurrency N` bounds the planner's dry runs too: N at once, not more, not fewer.
    #[tokio::test]
    async fn concurrency_is_the_number_of_dry_runs_in_flight() {
        let mut text = String::new();
        for i in 0..8 {
            text.push_str(&format!(
                "[[volume]]\nname = \"pv-{i}\"\ncapacity = \"1Gi\"\nclass = \"standard\"\nhost_path = {{ path = \"/tmp/pv-{i}\" }}\n\n"
            ));
        }
        let spec = crate::spec::load("stack.toml", &text, "s").unwrap();
        for (concurrency, expected) in [(2, 2), (5, 5), (1, 1)] {
            let fake = FakeGateway::new();
            fake.put(
                &ObjectRef::new(Kind::Namespace, "", "ns"),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
            );
            fake.put(
                &ObjectRef::new(Kind::StorageClass, "", "standard"),
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                       "metadata": {"name": "standard"}, "provisioner": "kubernetes.io/host-path"}),
            );
            fake.slow(&["dry-run"], Duration::from_millis(50));
            let plan = make_plan(&fake, concurrency, &spec, "ns").await.unwrap();
            assert_eq!(plan.summary.create, 8, "{plan:#?}");
            assert_eq!(
                fake.peak_in_flight(),
                expected,
                "--concurrency {concurrency}"
            );
        }
    }

    #[tokio::test]
    async fn a_snapshot_on_a_cluster_without_the_snapshot_api_says_what_is_missing() {
        let gw = FakeGateway::new();
        let ns = ObjectRef::new(Kind::Namespace, "", "ns");
        gw.put(&ns, json!({"metadata": {"name": "ns"}}));
        let snap = ObjectRef::new(Kind::VolumeSnapshot, "ns", "data-backup");
        gw.without_api(Kind::VolumeSnapshot);
        let spec = crate::spec::load(
            "stack.toml",
            "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n\n[[snapshot]]\nname = \"data-backup\"\nclaim = \"data\"\n",
            "s",
        )
        .unwrap();
        let plan = make_plan(&gw, 4, &spec, "ns").await.unwrap();
        let step = plan.steps.iter().find(|s| s.object == snap).unwrap();
        assert_eq!(step.action, Action::Error);
        assert_eq!(
            step.error.as_deref(),
            Some(
                "this cluster has no snapshot.storage.k8s.io/v1 API: VolumeSnapshots need the external-snapshotter CRDs and the snapshot controller (the server said: the server could not find the requested resource) (NotFound, HTTP 404)"
            ),
            "{step:#?}"
        );
        // The claim is planned as usual.
        let claim = plan.steps.iter().find(|s| s.object.name == "data").unwrap();
        assert_eq!(claim.action, Action::Create);
    }
}
