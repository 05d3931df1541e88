//! Deciding what happens to objects that left the spec (`--prune`) or to a whole stack
//! (`destroy`): deleted (with what goes along, in words), released (adopted objects) or kept
//! (with the reason). Pure: the caller lists the candidates and reads the inventory.
//!
//! Never deleted: adopted objects (released instead), objects re-created by someone else since
//! the stack recorded them (their uid changed), objects with a keep annotation, StorageClasses
//! and volumes used outside the stack, and — unless data may go — claims, volumes and
//! StatefulSets whose retention policy deletes their claims. A protected object
//! (`protect = true`, remembered by the inventory) makes the plan fail instead.

use super::normalize::normalize;
use super::{Action, Kept, LiveVersion, Step, WaitPlan};
use crate::inventory::Inventory;
use crate::kinds::{Kind, ObjectRef};
use crate::spec::quantity::Quantity;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Annotations users already write to keep an object when its owner lets go of it.
pub const KEEP_ANNOTATIONS: &[(&str, &str)] = &[
    ("helm.sh/resource-policy", "keep"),
    ("kapp.k14s.io/delete-strategy", "orphan"),
    ("cli-utils.sigs.k8s.io/on-remove", "keep"),
    ("kustomize.toolkit.fluxcd.io/prune", "disabled"),
];

/// What the user allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Claims, volumes and StatefulSets that take their claims along may be deleted
    /// (`--prune-data`, `destroy --delete-data`).
    pub data: bool,
    /// The flag that allows data to go, for the reasons shown (`--prune-data` or `--delete-data`).
    pub data_flag: &'static str,
}

/// An object of the stack that the spec does not have (any more).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: ObjectRef,
    pub live: Value,
    /// For a claim made from a volumeClaimTemplate: the StatefulSet that the stack created (per
    /// its inventory) and whose template made it. Such a claim is the stack's without an
    /// inventory entry of its own.
    pub made_by: Option<ObjectRef>,
}

/// What the cluster holds around the candidates.
pub struct Context<'a> {
    pub inventory: &'a Inventory,
    /// Every object that is or stays the stack's (desired objects and candidates).
    pub stack: &'a BTreeSet<ObjectRef>,
    /// Every PersistentVolume of the cluster.
    pub volumes: &'a [Value],
    pub namespace: &'a str,
}

fn str_at<'v>(v: &'v Value, p: &str) -> &'v str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// The steps (delete, release, or error for protected objects) and the kept objects.
pub fn decide(
    candidates: &[Candidate],
    ctx: &Context<'_>,
    options: PruneOptions,
) -> (Vec<Step>, Vec<Kept>) {
    let mut steps = Vec::new();
    let mut kept = Vec::new();
    for c in candidates {
        let uid = str_at(&c.live, "/metadata/uid").to_string();
        let entry = ctx.inventory.get(&c.id);
        let created_by_stack =
            entry.is_some_and(|e| e.uid == uid && !e.adopted) || c.made_by.is_some();
        let keep = |reason: String| Kept {
            object: c.id.clone(),
            reason,
            uid: uid.clone(),
            created_by_stack,
        };
        if let Some(e) = entry
            && e.uid != uid
        {
            kept.push(keep(format!(
                "re-created by someone else since this stack recorded it (uid {} → {uid}); not the stack's to delete",
                e.uid
            )));
            continue;
        }
        if let Some((k, v)) = KEEP_ANNOTATIONS.iter().find(|(k, v)| {
            c.live
                .pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1")))
                .and_then(Value::as_str)
                == Some(*v)
        }) {
            kept.push(keep(format!("annotation {k}: {v}")));
            continue;
        }
        let mut step = removal_step(c);
        if entry.is_some_and(|e| e.protect) {
            step.action = Action::Error;
            step.protect = true;
            step.error = Some(format!(
                "{} is protected (protect = true when it was last applied) and would be deleted; \
                 put it back in the spec, or apply it once with protect = false before removing it",
                c.id.short()
            ));
            steps.push(step);
            continue;
        }
        // Only what the stack provably created is deleted: an inventory entry saying so (for
        // this uid, checked above), or a claim of a StatefulSet with such an entry. Anything
        // else carrying the stack's labels — adopted, or not recorded at all (an inventory
        // deleted or lost, an apply whose record failed) — is released.
        let why_released = if entry.is_some_and(|e| e.adopted) {
            Some(
                "recorded as adopted (taken over by this stack, or found by an apply with no record that the stack created it), so it is released, never deleted",
            )
        } else if entry.is_none() && c.made_by.is_none() {
            Some(
                "not recorded in the stack's inventory (it was deleted, lost or never written), so nothing proves this stack created it: it is released, never deleted",
            )
        } else {
            None
        };
        if let Some(why) = why_released {
            step.action = Action::Release;
            step.reasons.push(format!(
                "{why}: the stack's labels are removed and its fields handed to the field manager kubectl-stateful-released, every value kept"
            ));
            step.manifest = minimal(&c.id);
            let mut after = step.before.clone();
            if let Some(labels) = after
                .as_mut()
                .and_then(|a| a.pointer_mut("/metadata/labels"))
                .and_then(Value::as_object_mut)
            {
                labels.shift_remove(crate::kinds::MANAGED_BY.0);
                labels.shift_remove(crate::kinds::STACK_LABEL);
            }
            if let Some(meta) = after
                .as_mut()
                .and_then(|a| a.get_mut("metadata"))
                .and_then(Value::as_object_mut)
                && meta
                    .get("labels")
                    .and_then(Value::as_object)
                    .is_some_and(|l| l.is_empty())
            {
                meta.shift_remove("labels");
            }
            step.after = after;
            steps.push(step);
            continue;
        }
        match c.id.kind {
            Kind::StorageClass => {
                let users: Vec<String> = ctx
                    .volumes
                    .iter()
                    .filter(|pv| str_at(pv, "/spec/storageClassName") == c.id.name)
                    .map(|pv| {
                        ObjectRef::new(Kind::PersistentVolume, "", str_at(pv, "/metadata/name"))
                    })
                    .filter(|pv| !ctx.stack.contains(pv))
                    .map(|pv| pv.short())
                    .collect();
                if !users.is_empty() {
                    kept.push(keep(format!(
                        "used outside the stack by {}",
                        users.join(", ")
                    )));
                    continue;
                }
                step.reasons
                    .push("volumes it provisioned are not affected".into());
            }
            Kind::PersistentVolume => {
                let claim_ns = str_at(&c.live, "/spec/claimRef/namespace");
                let claim = str_at(&c.live, "/spec/claimRef/name");
                if !claim.is_empty()
                    && !ctx.stack.contains(&ObjectRef::new(
                        Kind::PersistentVolumeClaim,
                        claim_ns,
                        claim,
                    ))
                {
                    kept.push(keep(format!(
                        "bound to claim {claim_ns}/{claim}, which is not the stack's"
                    )));
                    continue;
                }
                if !options.data {
                    kept.push(keep(format!(
                        "a volume holds data ({}): deleted only with {}",
                        str_at(&c.live, "/spec/capacity/storage"),
                        options.data_flag
                    )));
                    continue;
                }
                step.reasons.push(match str_at(&c.live, "/spec/persistentVolumeReclaimPolicy") {
                    "Delete" => "reclaim policy Delete: its backing storage and data are deleted too".into(),
                    _ => "the PersistentVolume object goes; with reclaim policy Retain the data stays on the backing storage".into(),
                });
            }
            Kind::PersistentVolumeClaim => {
                if !options.data {
                    kept.push(keep(format!(
                        "a claim holds data ({}): deleted only with {}",
                        claim_size(&c.live),
                        options.data_flag
                    )));
                    continue;
                }
                step.reasons.push(claim_cost(&c.live, ctx.volumes));
            }
            Kind::StatefulSet => {
                let takes = str_at(
                    &c.live,
                    "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
                ) == "Delete";
                let claims = crate::kinds::template_claims(&c.id.name, &c.live);
                // What the executor's gate holds the delete to (see apply::gate).
                step.deletes_claims =
                    crate::kinds::statefulset::claims_deleted_with(&c.id.name, &c.live);
                if takes && !options.data {
                    kept.push(keep(format!(
                        "its retention policy (whenDeleted: Delete) would delete its claims {}: deleted only with {}",
                        claims.join(", "),
                        options.data_flag
                    )));
                    continue;
                }
                step.reasons.push(if takes {
                    format!(
                        "its pods are deleted, and its claims {} with them (retention whenDeleted: Delete)",
                        claims.join(", ")
                    )
                } else if claims.is_empty() {
                    "its pods are deleted".into()
                } else {
                    format!(
                        "its pods are deleted; its claims {} stay (retention whenDeleted: Retain)",
                        claims.join(", ")
                    )
                });
            }
            Kind::Deployment | Kind::DaemonSet => {
                step.reasons
                    .push("its pods are deleted; the claims they mount stay".into());
            }
            Kind::Service => {
                step.reasons.push("its DNS name stops resolving".into());
            }
            Kind::VolumeSnapshot => {
                if !options.data {
                    kept.push(keep(format!(
                        "a snapshot holds data: deleted only with {}",
                        options.data_flag
                    )));
                    continue;
                }
                step.reasons.push(
                    "with its class's deletionPolicy Delete, the snapshot's data goes too".into(),
                );
            }
            Kind::Namespace | Kind::ConfigMap | Kind::Lease | Kind::Pod => {
                kept.push(keep("never deleted by the plugin".into()));
                continue;
            }
        }
        steps.push(step);
    }
    (steps, kept)
}

/// A delete step for a candidate; the caller may turn it into a release or an error.
fn removal_step(c: &Candidate) -> Step {
    Step {
        object: c.id.clone(),
        action: Action::Delete,
        origin: "not in the spec".into(),
        changed_paths: Vec::new(),
        replace_paths: Vec::new(),
        conflicts: Vec::new(),
        reasons: Vec::new(),
        error: None,
        location: None,
        before: Some(normalize(c.id.kind, &c.live, &Value::Null)),
        after: None,
        manifest: minimal(&c.id),
        live: Some(LiveVersion {
            uid: str_at(&c.live, "/metadata/uid").into(),
            resource_version: str_at(&c.live, "/metadata/resourceVersion").into(),
            fields: None,
            generation: None,
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

/// The smallest manifest of an object: applying it releases every field only we own.
/// The field manager that our fields are handed to when an object is released.
pub const RELEASED_MANAGER: &str = "kubectl-stateful-released";

/// The merge patch that releases `live` (read right before): the stack's labels go, and the
/// fields our server-side applies own are handed to [`RELEASED_MANAGER`] in
/// `metadata.managedFields` — every value stays as it is (an apply of an empty manifest would
/// remove each field only this tool owned: pod-template labels, env, resources, restarting
/// pods). Guarded by the resourceVersion read.
pub fn release_patch(live: &Value) -> Value {
    let mut labels = serde_json::Map::new();
    let ours = |key: &str, value: &str| {
        str_at(
            live,
            &format!("/metadata/labels/{}", key.replace('/', "~1")),
        ) == value
    };
    if ours(crate::kinds::MANAGED_BY.0, crate::kinds::MANAGED_BY.1) {
        labels.insert(crate::kinds::MANAGED_BY.0.into(), Value::Null);
    }
    if live
        .pointer(&format!(
            "/metadata/labels/{}",
            crate::kinds::STACK_LABEL.replace('/', "~1")
        ))
        .is_some()
    {
        labels.insert(crate::kinds::STACK_LABEL.into(), Value::Null);
    }
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Released before (and adopted again): one entry per manager and operation, so ours is
    // dropped rather than renamed — the values stay either way, only their owner differs.
    let released_before = entries
        .iter()
        .any(|e| e["manager"] == RELEASED_MANAGER && e["operation"] == "Update");
    let fields: Vec<Value> = entries
        .into_iter()
        .filter_map(|mut entry| {
            if entry["manager"] == crate::kinds::FIELD_MANAGER && entry["operation"] == "Apply" {
                if released_before {
                    return None;
                }
                entry["manager"] = json!(RELEASED_MANAGER);
                entry["operation"] = json!("Update");
            }
            Some(entry)
        })
        .collect();
    let mut meta = json!({
        "resourceVersion": str_at(live, "/metadata/resourceVersion"),
        "managedFields": fields,
    });
    if !labels.is_empty() {
        meta["labels"] = Value::Object(labels);
    }
    json!({ "metadata": meta })
}

fn minimal(id: &ObjectRef) -> Value {
    let mut meta = json!({ "name": id.name });
    if let Some(ns) = &id.namespace {
        meta["namespace"] = json!(ns);
    }
    json!({ "apiVersion": id.kind.api_version(), "kind": id.kind.as_str(), "metadata": meta })
}

fn claim_size(claim: &Value) -> String {
    let capacity = str_at(claim, "/status/capacity/storage");
    if capacity.is_empty() {
        str_at(claim, "/spec/resources/requests/storage").to_string()
    } else {
        capacity.to_string()
    }
}

/// What deleting a claim does to its volume and data.
fn claim_cost(claim: &Value, volumes: &[Value]) -> String {
    let volume = str_at(claim, "/spec/volumeName");
    let policy = volumes
        .iter()
        .find(|pv| str_at(pv, "/metadata/name") == volume)
        .map(|pv| str_at(pv, "/spec/persistentVolumeReclaimPolicy"))
        .unwrap_or_default();
    match (volume, policy) {
        ("", _) => "it is not bound to a volume: no data goes with it".into(),
        (v, "Delete") => format!(
            "its volume {v} (reclaim policy Delete) and its {} of data are deleted with it",
            claim_size(claim)
        ),
        (v, p) => format!(
            "its volume {v} (reclaim policy {}) becomes Released and keeps its data",
            if p.is_empty() { "unknown" } else { p }
        ),
    }
}

/// "3 claims, 3 volumes with 30Gi of data" for the kept claims and volumes, if any.
pub fn kept_data_summary(kept: &[Kept], candidates: &[Candidate]) -> Option<String> {
    let mut claims = 0;
    let mut volumes = 0;
    let mut total: Option<f64> = None;
    for k in kept {
        let Some(c) = candidates.iter().find(|c| c.id == k.object) else {
            continue;
        };
        let size = match k.object.kind {
            Kind::PersistentVolumeClaim => {
                claims += 1;
                claim_size(&c.live)
            }
            Kind::PersistentVolume => {
                volumes += 1;
                // A bound volume's data is counted with its claim.
                if !str_at(&c.live, "/spec/claimRef/name").is_empty() {
                    continue;
                }
                str_at(&c.live, "/spec/capacity/storage").to_string()
            }
            _ => continue,
        };
        if let Ok(q) = Quantity::parse(&size) {
            total = Some(total.unwrap_or(0.0) + q.as_f64());
        }
    }
    if claims + volumes == 0 {
        return None;
    }
    let mut parts = Vec::new();
    if claims > 0 {
        parts.push(plural(claims, "claim"));
    }
    if volumes > 0 {
        parts.push(plural(volumes, "volume"));
    }
    Some(match total {
        Some(t) => format!("kept: {} with {} of data", parts.join(", "), binary_size(t)),
        None => format!("kept: {}", parts.join(", ")),
    })
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `30Gi`, `1.5Ti`, `512Mi`: bytes in the largest binary unit that keeps the number ≥ 1.
fn binary_size(bytes: f64) -> String {
    let units = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{}{}", v.round() as u64, units[i])
    } else {
        format!("{v:.1}{}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Entry;

    fn cand(kind: Kind, name: &str, live: Value) -> Candidate {
        let mut live = live;
        live["metadata"]["name"] = json!(name);
        if live["metadata"].get("uid").is_none() {
            live["metadata"]["uid"] = json!(format!("uid-{name}"));
        }
        Candidate {
            id: ObjectRef::new(kind, "ns", name),
            live,
            made_by: None,
        }
    }

    /// An inventory recording each candidate as created by the stack.
    fn created(cands: &[Candidate]) -> Inventory {
        Inventory {
            version: 1,
            objects: cands
                .iter()
                .map(|c| {
                    Entry::new(
                        c.id.clone(),
                        str_at(&c.live, "/metadata/uid").into(),
                        false,
                        false,
                    )
                })
                .collect(),
        }
    }

    fn run(
        cands: &[Candidate],
        inv: &Inventory,
        data: bool,
        volumes: &[Value],
    ) -> (Vec<Step>, Vec<Kept>) {
        let stack: BTreeSet<ObjectRef> = cands.iter().map(|c| c.id.clone()).collect();
        decide(
            cands,
            &Context {
                inventory: inv,
                stack: &stack,
                volumes,
                namespace: "ns",
            },
            PruneOptions {
                data,
                data_flag: "--prune-data",
            },
        )
    }

    #[test]
    fn claims_and_volumes_are_kept_without_the_data_flag() {
        let cands = vec![
            cand(
                Kind::PersistentVolumeClaim,
                "data",
                json!({"spec": {"volumeName": "pv-1"}, "status": {"capacity": {"storage": "10Gi"}}}),
            ),
            cand(Kind::Deployment, "web", json!({})),
        ];
        let (steps, kept) = run(&cands, &created(&cands), false, &[]);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].object.name, "web");
        assert_eq!(
            kept[0].reason,
            "a claim holds data (10Gi): deleted only with --prune-data"
        );
        assert_eq!(
            kept_data_summary(&kept, &cands).as_deref(),
            Some("kept: 1 claim with 10Gi of data")
        );
    }

    #[test]
    fn deleting_a_claim_says_what_goes_with_it() {
        let pvs = vec![
            json!({"metadata": {"name": "pv-1"}, "spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        ];
        let cands = vec![cand(
            Kind::PersistentVolumeClaim,
            "data",
            json!({"spec": {"volumeName": "pv-1"}, "status": {"capacity": {"storage": "2Gi"}}}),
        )];
        let (steps, _) = run(&cands, &created(&cands), true, &pvs);
        assert_eq!(steps[0].action, Action::Delete);
        assert_eq!(
            steps[0].reasons,
            vec!["its volume pv-1 (reclaim policy Delete) and its 2Gi of data are deleted with it"]
        );
    }

    #[test]
    fn volumes_go_only_with_the_data_flag_and_never_when_bound_outside_the_stack() {
        let cands = vec![
            // Unbound: no claim at all.
            cand(
                Kind::PersistentVolume,
                "free",
                json!({"spec": {"persistentVolumeReclaimPolicy": "Delete", "capacity": {"storage": "1Gi"}}}),
            ),
            // Bound to a claim of the stack (below).
            cand(
                Kind::PersistentVolume,
                "ours",
                json!({"spec": {"persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "ns", "name": "data"}}}),
            ),
            // Bound to someone else's claim.
            cand(
                Kind::PersistentVolume,
                "theirs",
                json!({"spec": {"claimRef": {"namespace": "other", "name": "db"}}}),
            ),
            cand(Kind::PersistentVolumeClaim, "data", json!({"spec": {}})),
        ];
        let (steps, kept) = run(&cands, &created(&cands), true, &[]);
        let deleted: Vec<&str> = steps
            .iter()
            .filter(|s| s.action == Action::Delete)
            .map(|s| s.object.name.as_str())
            .collect();
        assert_eq!(deleted, vec!["free", "ours", "data"]);
        assert_eq!(
            steps[0].reasons,
            vec!["reclaim policy Delete: its backing storage and data are deleted too"]
        );
        assert_eq!(
            steps[1].reasons,
            vec![
                "the PersistentVolume object goes; with reclaim policy Retain the data stays on the backing storage"
            ]
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].object.name, "theirs");
        assert_eq!(
            kept[0].reason,
            "bound to claim other/db, which is not the stack's"
        );
        // Without the data flag every volume stays, with its size.
        let (steps, kept) = run(&cands, &created(&cands), false, &[]);
        assert!(
            steps.iter().all(|s| s.action != Action::Delete),
            "{steps:?}"
        );
        assert!(
            kept.iter().any(|k| k.object.name == "free"
                && k.reason == "a volume holds data (1Gi): deleted only with --prune-data"),
            "{kept:?}"
        );
    }

    #[test]
    fn statefulsets_and_snapshots_that_take_data_go_only_with_the_data_flag() {
        let sts = |name: &str, when_deleted: &str| {
            cand(
                Kind::StatefulSet,
                name,
                json!({"spec": {"replicas": 1,
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": when_deleted},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}),
            )
        };
        let cands = vec![
            sts("takes", "Delete"),
            sts("leaves", "Retain"),
            cand(Kind::VolumeSnapshot, "snap", json!({})),
        ];
        let (steps, kept) = run(&cands, &created(&cands), false, &[]);
        let deleted: Vec<&str> = steps.iter().map(|s| s.object.name.as_str()).collect();
        assert_eq!(deleted, vec!["leaves"]);
        assert_eq!(
            steps[0].reasons,
            vec![
                "its pods are deleted; its claims data-leaves-0 stay (retention whenDeleted: Retain)"
            ]
        );
        let reasons: Vec<(&str, &str)> = kept
            .iter()
            .map(|k| (k.object.name.as_str(), k.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    "takes",
                    "its retention policy (whenDeleted: Delete) would delete its claims data-takes-0: deleted only with --prune-data"
                ),
                (
                    "snap",
                    "a snapshot holds data: deleted only with --prune-data"
                ),
            ]
        );
        let (steps, kept) = run(&cands, &created(&cands), true, &[]);
        assert!(kept.is_empty(), "{kept:?}");
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0].reasons,
            vec![
                "its pods are deleted, and its claims data-takes-0 with them (retention whenDeleted: Delete)"
            ]
        );
        assert_eq!(
            steps[2].reasons,
            vec!["with its class's deletionPolicy Delete, the snapshot's data goes too"]
        );
    }

    #[test]
    fn sizes_are_written_in_the_largest_binary_unit() {
        assert_eq!(binary_size(0.0), "0");
        assert_eq!(binary_size(1023.0), "1023");
        assert_eq!(binary_size(1024.0), "1Ki");
        assert_eq!(binary_size(1.5 * 1024f64.powi(3)), "1.5Gi");
        // Past the largest unit the number grows instead (no unit beyond Pi).
        assert_eq!(binary_size(1024f64.powi(6)), "1024Pi");
    }

    #[test]
    fn the_summary_of_kept_data_counts_claims_and_unbound_volumes() {
        let cands = vec![
            cand(
                Kind::PersistentVolumeClaim,
                "a",
                json!({"status": {"capacity": {"storage": "1Gi"}}}),
            ),
            cand(
                Kind::PersistentVolumeClaim,
                "b",
                json!({"status": {"capacity": {"storage": "2Gi"}}}),
            ),
            // Unbound: its data counts.
            cand(
                Kind::PersistentVolume,
                "free",
                json!({"spec": {"capacity": {"storage": "5Gi"}}}),
            ),
            // Bound: counted with its claim.
            cand(
                Kind::PersistentVolume,
                "bound",
                json!({"spec": {"capacity": {"storage": "7Gi"}, "claimRef": {"namespace": "ns", "name": "a"}}}),
            ),
            cand(Kind::Service, "svc", json!({})),
        ];
        let kept: Vec<Kept> = cands
            .iter()
            .map(|c| Kept {
                object: c.id.clone(),
                reason: String::new(),
                uid: String::new(),
                created_by_stack: true,
            })
            .collect();
        assert_eq!(
            kept_data_summary(&kept, &cands).as_deref(),
            Some("kept: 2 claims, 2 volumes with 8Gi of data")
        );
        assert_eq!(
            kept_data_summary(&kept[2..3], &cands).as_deref(),
            Some("kept: 1 volume with 5Gi of data")
        );
        assert_eq!(kept_data_summary(&kept[4..], &cands), None);
        assert_eq!(kept_data_summary(&[], &cands), None);
    }

    #[test]
    fn a_release_removes_the_stacks_labels_and_hands_our_fields_over() {
        let live = json!({"metadata": {
        "resourceVersion": "42",
        "labels": {"app.kubernetes.io/managed-by": "kubectl-stateful", "kubectl-stateful/stack": "db", "team": "x"},
        "managedFields": [
            {"manager": "kubectl-create", "operation": "Update", "fieldsV1": {"f:spec": {}}},
            {"manager": "kubectl-stateful", "operation": "Apply", "fieldsV1": {"f:data": {"f:b": {}}}},
            {"manager": "kubectl-stateful", "operation": "Update", "fieldsV1": {"f:x": {}}}
        ]}});
        assert_eq!(
            release_patch(&live),
            json!({"metadata": {
                "resourceVersion": "42",
                "managedFields": [
                    {"manager": "kubectl-create", "operation": "Update", "fieldsV1": {"f:spec": {}}},
                    {"manager": "kubectl-stateful-released", "operation": "Update", "fieldsV1": {"f:data": {"f:b": {}}}},
                    {"manager": "kubectl-stateful", "operation": "Update", "fieldsV1": {"f:x": {}}}
                ],
                "labels": {"app.kubernetes.io/managed-by": null, "kubectl-stateful/stack": null}
            }})
        );
        // Released before: our entry is dropped, not made a second entry of that manager.
        let again = json!({"metadata": {"resourceVersion": "7", "managedFields": [
            {"manager": "kubectl-stateful-released", "operation": "Update", "fieldsV1": {"f:a": {}}},
            {"manager": "kubectl-stateful", "operation": "Apply", "fieldsV1": {"f:b": {}}}
        ]}});
        assert_eq!(
            release_patch(&again)["metadata"]["managedFields"],
            json!([{"manager": "kubectl-stateful-released", "operation": "Update", "fieldsV1": {"f:a": {}}}])
        );
        // Someone else's managed-by label stays.
        let helm = json!({"metadata": {"resourceVersion": "1",
            "labels": {"app.kubernetes.io/managed-by": "Helm", "kubectl-stateful/stack": "db"}}});
        assert_eq!(
            release_patch(&helm)["metadata"]["labels"],
            json!({"kubectl-stateful/stack": null})
        );
    }

    #[test]
    fn adopted_objects_are_released_and_protected_ones_refused() {
        let cands = vec![
            cand(Kind::StorageClass, "local-storage", json!({})),
            cand(Kind::Service, "db", json!({})),
        ];
        let inv = Inventory {
            version: 1,
            objects: vec![
                Entry::new(cands[0].id.clone(), "uid-local-storage".into(), true, false),
                Entry::new(cands[1].id.clone(), "uid-db".into(), false, true),
            ],
        };
        let (steps, _) = run(&cands, &inv, true, &[]);
        assert_eq!(steps[0].action, Action::Release);
        assert_eq!(
            steps[0].manifest["metadata"],
            json!({"name": "local-storage"})
        );
        assert_eq!(steps[1].action, Action::Error);
        assert!(steps[1].error.as_ref().unwrap().contains("protected"));
    }

    /// What a release shows is the object without the stack's labels, in the same order (a
    /// removal that moved the last key into their place showed a moved `namespace` as a change).
    #[test]
    fn a_release_shows_only_the_labels_going() {
        let labels = json!({"app.kubernetes.io/managed-by": "kubectl-stateful", "a": "1",
            "kubectl-stateful/stack": "s", "b": "2"});
        let cands = vec![
            cand(
                Kind::Service,
                "both",
                json!({"metadata": {"labels": labels}, "spec": {"x": 1}}),
            ),
            cand(
                Kind::Service,
                "ours",
                json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "kubectl-stateful",
                    "kubectl-stateful/stack": "s"}}, "spec": {"x": 1}}),
            ),
        ];
        let (steps, _) = run(&cands, &Inventory::default(), false, &[]);
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        for step in &steps {
            let (before, after) = (step.before.as_ref().unwrap(), step.after.as_ref().unwrap());
            let mut want = keys(&before["metadata"]);
            if step.object.name == "ours" {
                want.retain(|k| k != "labels");
            } else {
                assert_eq!(keys(&after["metadata"]["labels"]), vec!["a", "b"]);
            }
            assert_eq!(keys(&after["metadata"]), want, "{}", step.object.name);
            let changed = crate::plan::compute::diff_paths(before, after);
            assert!(
                changed.iter().all(|p| p.starts_with("metadata.labels")),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn recreated_annotated_and_shared_objects_are_kept() {
        let cands = vec![
            cand(Kind::Service, "db", json!({"metadata": {"uid": "new"}})),
            cand(
                Kind::Deployment,
                "web",
                json!({"metadata": {"annotations": {"helm.sh/resource-policy": "keep"}}}),
            ),
            cand(Kind::StorageClass, "fast", json!({})),
            cand(
                Kind::StatefulSet,
                "db",
                json!({"spec": {"replicas": 1, "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}),
            ),
        ];
        let inv = Inventory {
            version: 1,
            objects: vec![
                Entry::new(cands[0].id.clone(), "old".into(), false, false),
                Entry::new(cands[1].id.clone(), "uid-web".into(), false, false),
                Entry::new(cands[2].id.clone(), "uid-fast".into(), false, false),
                Entry::new(cands[3].id.clone(), "uid-db".into(), false, false),
            ],
        };
        let pvs =
            vec![json!({"metadata": {"name": "other"}, "spec": {"storageClassName": "fast"}})];
        let (steps, kept) = run(&cands, &inv, false, &pvs);
        assert!(steps.is_empty(), "{steps:?}");
        let reasons: Vec<&str> = kept.iter().map(|k| k.reason.as_str()).collect();
        assert!(reasons[0].starts_with("re-created by someone else"));
        assert_eq!(reasons[1], "annotation helm.sh/resource-policy: keep");
        assert_eq!(reasons[2], "used outside the stack by pv/other");
        assert!(
            reasons[3].contains("would delete its claims data-db-0"),
            "{}",
            reasons[3]
        );
        // Only the object the stack recorded stays recorded; the re-created one does not.
        let ours: Vec<bool> = kept.iter().map(|k| k.created_by_stack).collect();
        assert_eq!(ours, vec![false, true, true, true]);
    }

    /// Labels alone prove nothing (an inventory deleted by hand, an object labelled by someone
    /// else): an object the inventory does not record as created is released, even with the
    /// data flag; a claim of a StatefulSet the stack created is the stack's without an entry.
    #[test]
    fn only_what_the_stack_provably_created_is_deleted() {
        let claim =
            json!({"spec": {"volumeName": "pv-1"}, "status": {"capacity": {"storage": "1Gi"}}});
        let mut template_claim = cand(Kind::PersistentVolumeClaim, "data-db-0", claim.clone());
        template_claim.made_by = Some(ObjectRef::new(Kind::StatefulSet, "ns", "db"));
        let cands = vec![
            cand(
                Kind::PersistentVolumeClaim,
                "adopted-by-hand",
                claim.clone(),
            ),
            cand(Kind::Deployment, "web", json!({})),
            template_claim,
        ];
        for data in [true, false] {
            let (steps, kept) = run(&cands, &Inventory::default(), data, &[]);
            let got: Vec<(&str, Action)> = steps
                .iter()
                .map(|s| (s.object.name.as_str(), s.action))
                .collect();
            if data {
                assert_eq!(
                    got,
                    vec![
                        ("adopted-by-hand", Action::Release),
                        ("web", Action::Release),
                        ("data-db-0", Action::Delete)
                    ]
                );
                assert!(steps[0].reasons[0].starts_with("not recorded in the stack's inventory"));
                assert!(kept.is_empty());
            } else {
                assert_eq!(
                    got,
                    vec![
                        ("adopted-by-hand", Action::Release),
                        ("web", Action::Release)
                    ]
                );
                assert_eq!(kept.len(), 1);
                assert!(kept[0].created_by_stack);
            }
        }
    }
}
