//! The one gate before every write that can delete data. The executor passes every operation
//! through [`pass`] right before sending it; the gate decides which operations it guards
//! ([`guarded`], an exhaustive match: a new kind of operation does not compile until it is
//! classified), reads the live object of a guarded one, recomputes what the write would take
//! from it ([`live_risk`]) and compares that with what the plan showed and the user consented to
//! ([`planned_risk`], from the step's own fields, which `check_executable` consented). A write
//! that would take more than the plan showed — a StatefulSet scaled up since the plan, a
//! retention or reclaim policy turned to `Delete`, a saved plan whose consent fields were
//! edited — is refused before anything is sent, naming the difference. The version read is
//! returned so that the write is made only against it (a resourceVersion precondition).
//!
//! Pure but for [`pass`], which reads the object (and, for a StatefulSet update, the namespace's
//! claims).

use crate::gateway::{Gateway, ListQuery, Propagation};
use crate::kinds::{Kind, statefulset};
use crate::plan::ops::{Op, Operation};
use crate::plan::{Action, Step};
use serde_json::Value;
use std::collections::BTreeSet;

/// What a write deletes, or puts at risk of deletion later.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Risk {
    /// Claims deleted, by the write or by the object's controller after it (retention policy).
    pub claims: BTreeSet<String>,
    /// Pods deleted by the object's controller after the write (a re-create with fewer replicas).
    pub pods: BTreeSet<String>,
    /// Data put at risk, in words (a volume deleted with its data, a reclaim policy turned to
    /// `Delete`).
    pub data: BTreeSet<String>,
}

impl Risk {
    fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.pods.is_empty() && self.data.is_empty()
    }

    /// What `self` has that `allowed` does not.
    fn beyond(&self, allowed: &Risk) -> Risk {
        Risk {
            claims: self.claims.difference(&allowed.claims).cloned().collect(),
            pods: self.pods.difference(&allowed.pods).cloned().collect(),
            data: self.data.difference(&allowed.data).cloned().collect(),
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        if !self.claims.is_empty() {
            parts.push(format!("the claims {}", list(&self.claims)));
        }
        if !self.pods.is_empty() {
            parts.push(format!("the pods {}", list(&self.pods)));
        }
        if !self.data.is_empty() {
            parts.push(list(&self.data));
        }
        parts.join("; ")
    }
}

/// Whether the gate reads the live object before `op` of `step` is sent. Exhaustive on purpose:
/// every kind of operation is classified here.
pub fn guarded(op: &Op, step: &Step) -> bool {
    match op {
        // Every delete: of the object itself, or to create it again.
        Op::Delete { .. } => true,
        // Updates that can delete claims (a StatefulSet's scale-down) or put data at risk (a
        // volume's reclaim policy). A release removes labels only.
        Op::Apply { .. } => {
            step.action != Action::Release
                && matches!(step.object.kind, Kind::StatefulSet | Kind::PersistentVolume)
        }
        // A recipe's own manifests (a claim's new size, a retention policy set to Retain), a
        // create (fails if the object exists), a snapshot, a pod restarted by its controller
        // (consented with --restart-pods), waits and messages take no data.
        Op::ApplyManifest { .. }
        | Op::Create
        | Op::Snapshot { .. }
        | Op::RestartPod { .. }
        | Op::Keep
        | Op::Wait { .. }
        | Op::Defer { .. } => false,
    }
}

fn str_at<'v>(v: &'v Value, p: &str) -> &'v str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// What sending `op` for `step` takes when the object is `live` (read right before), with
/// `claims` the namespace's claims (read only for a StatefulSet's update).
pub fn live_risk(op: &Op, step: &Step, live: &Value, claims: &[Value]) -> Risk {
    let name = step.object.name.as_str();
    let mut risk = Risk::default();
    match (op, step.object.kind) {
        // Deleted to be created again from the manifest (replace, claim-template resize).
        (
            Op::Delete {
                propagation: Propagation::Orphan,
                ..
            },
            Kind::StatefulSet,
        ) => {
            let (now, then) = (
                statefulset::replicas(live),
                statefulset::replicas(&step.manifest),
            );
            let ordinals = then..now.max(then);
            risk.pods = ordinals.clone().map(|o| format!("{name}-{o}")).collect();
            if str_at(
                live,
                "/spec/persistentVolumeClaimRetentionPolicy/whenScaled",
            ) == "Delete"
            {
                risk.claims = statefulset::template_names(live)
                    .into_iter()
                    .flat_map(|t| ordinals.clone().map(move |o| format!("{t}-{name}-{o}")))
                    .collect();
            }
        }
        (Op::Delete { .. }, Kind::StatefulSet) => {
            risk.claims = statefulset::claims_deleted_with(name, live)
                .into_iter()
                .collect();
        }
        (Op::Delete { .. }, Kind::PersistentVolumeClaim) => {
            risk.claims.insert(name.to_string());
        }
        (Op::Delete { .. }, Kind::PersistentVolume)
            if str_at(live, "/spec/persistentVolumeReclaimPolicy") == "Delete" =>
        {
            risk.data
                .insert(format!("the data of pv/{name} (reclaim policy Delete)"));
        }
        (Op::Delete { .. }, Kind::VolumeSnapshot) => {
            risk.data
                .insert(crate::kinds::volume_snapshot::data_of(name));
        }
        (Op::Delete { .. }, Kind::StorageClass) => {
            risk.data
                .extend(crate::kinds::storage_class::reclaim_turns_to_delete(
                    &step.manifest,
                    live,
                ));
        }
        (Op::Apply { .. }, Kind::StatefulSet) => {
            risk.claims = statefulset::scale_down_claims(name, &step.manifest, live, claims)
                .into_iter()
                .map(|(c, _)| crate::live::name_of(c))
                .collect();
        }
        (Op::Apply { .. }, Kind::PersistentVolume) => {
            risk.data
                .extend(crate::kinds::volume::reclaim_turns_to_delete(
                    &step.manifest,
                    live,
                ));
        }
        _ => {}
    }
    risk
}

/// What the plan showed for `op` of `step`, and `check_executable` consented to: the claims the
/// step names as deleted, the data it names as at risk, and for the object it deletes what its
/// planned state (`before`) takes with it. A re-create takes nothing (it keeps every replica).
pub fn planned_risk(op: &Op, step: &Step) -> Risk {
    let mut risk = Risk {
        claims: step.deletes_claims.iter().cloned().collect(),
        pods: BTreeSet::new(),
        data: step.data_at_risk.iter().cloned().collect(),
    };
    // (Pods are never planned: a re-create that would drop replicas — and with them, under
    // whenScaled: Delete, their claims — always goes beyond what was planned, whatever the
    // step lists.)
    match (op, step.object.kind) {
        // A claim deleted (prune, destroy) or replaced with consent: itself.
        (Op::Delete { .. }, Kind::PersistentVolumeClaim) => {
            risk.claims.insert(step.object.name.clone());
        }
        // A volume deleted or replaced (consented with --prune-data, destroy --delete-data,
        // or allow_replace and --replace), or a snapshot deleted by prune or destroy: what its
        // planned state takes. A snapshot replaced takes its data only as `data_at_risk`
        // (consented with --delete-data).
        (Op::Delete { .. }, Kind::PersistentVolume | Kind::VolumeSnapshot)
            if step.object.kind == Kind::PersistentVolume || step.action == Action::Delete =>
        {
            if let Some(before) = &step.before {
                risk.data.extend(live_risk(op, step, before, &[]).data);
            }
        }
        _ => {}
    }
    risk
}

/// Refuses a write whose live risk goes beyond the planned one, naming the difference.
pub fn check(op: &Op, step: &Step, planned: &Risk, live: &Risk) -> Result<(), String> {
    let extra = live.beyond(planned);
    if extra.is_empty() {
        return Ok(());
    }
    let verb = match op {
        Op::Delete { .. } => "not deleted",
        _ => "not written",
    };
    if let Op::Delete {
        propagation: Propagation::Orphan,
        ..
    } = op
        && step.object.kind == Kind::StatefulSet
    {
        return Err(format!(
            "{verb}: it runs {} replicas now and would be re-created with {} (it was scaled since the plan): {} would be deleted; nothing was deleted, run plan again",
            extra.pods.len() as u64 + statefulset::replicas(&step.manifest),
            statefulset::replicas(&step.manifest),
            extra.describe()
        ));
    }
    Err(format!(
        "{verb}: as it is now, this write would delete or put at risk {}, which the plan did not show (the object changed since the plan, or the plan was edited); nothing was written, run plan again",
        extra.describe()
    ))
}

/// What passing the gate gives the write: the version it checked, to write against only that.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Passed {
    pub version: Option<String>,
}

/// The gate: for a guarded operation, reads the live object (and a StatefulSet update's claims),
/// and refuses when what the write would take goes beyond what the plan showed. An object gone
/// already passes (there is nothing left to take); one that cannot be read does not.
pub async fn pass(gw: &dyn Gateway, op: &Operation, step: &Step) -> Result<Passed, String> {
    if !guarded(&op.op, step) {
        return Ok(Passed::default());
    }
    let live = match gw.get(&op.object).await {
        Ok(Some(live)) => live,
        Ok(None) => return Ok(Passed::default()),
        Err(f) => {
            return Err(format!(
                "not written: it could not be read to check what the write would take: {}",
                f.text()
            ));
        }
    };
    // The claims, only when a scale-down could take some (not for every StatefulSet update of
    // a large stack).
    let claims = if matches!(op.op, Op::Apply { .. })
        && op.object.kind == Kind::StatefulSet
        && statefulset::scaling_deletes_claims(&step.manifest, &live)
    {
        let query = ListQuery::new(
            Kind::PersistentVolumeClaim.api_resource(),
            op.object.namespace.as_deref(),
        );
        gw.list(&query).await.map_err(|f| {
            format!(
                "not written: its claims could not be listed to check which a scale-down would delete: {}",
                f.text()
            )
        })?
    } else {
        Vec::new()
    };
    check(
        &op.op,
        step,
        &planned_risk(&op.op, step),
        &live_risk(&op.op, step, &live, &claims),
    )?;
    Ok(Passed {
        version: live
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::ObjectRef;
    use serde_json::json;

    fn step(kind: Kind, action: Action, manifest: Value) -> Step {
        let mut s = crate::plan::ops::tests::step(kind, "db", action);
        s.manifest = manifest;
        s
    }

    fn sts(replicas: u64, when_scaled: &str) -> Value {
        json!({"metadata": {"name": "db"}, "spec": {"replicas": replicas,
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": when_scaled},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}})
    }

    fn claims(n: u64) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"metadata": {"name": format!("data-db-{i}")}}))
            .collect()
    }

    const APPLY: Op = Op::Apply {
        resource_version: None,
    };

    fn gate(op: &Op, step: &Step, live: &Value, claims: &[Value]) -> Result<(), String> {
        check(
            op,
            step,
            &planned_risk(op, step),
            &live_risk(op, step, live, claims),
        )
    }

    /// A scale-down planned from 3 to 2 replicas deletes data-db-2, and the plan said so; an
    /// HPA scaled it to 4 since: the write would delete data-db-3 too, which nobody consented to.
    #[test]
    fn a_scale_down_deletes_only_the_claims_the_plan_named() {
        let mut s = step(Kind::StatefulSet, Action::Update, sts(2, "Delete"));
        s.deletes_claims = vec!["data-db-2".into()];
        assert_eq!(gate(&APPLY, &s, &sts(3, "Delete"), &claims(3)), Ok(()));
        let err = gate(&APPLY, &s, &sts(4, "Delete"), &claims(4)).unwrap_err();
        assert!(err.contains("the claims data-db-3"), "{err}");
        assert!(err.starts_with("not written:"), "{err}");
        // A saved plan whose list was emptied by hand: nothing of it is taken.
        s.deletes_claims.clear();
        let err = gate(&APPLY, &s, &sts(3, "Delete"), &claims(3)).unwrap_err();
        assert!(err.contains("the claims data-db-2"), "{err}");
        // whenScaled: Retain (live, and the manifest says nothing): no claim goes.
        let mut retain = sts(2, "Retain");
        retain["spec"]
            .as_object_mut()
            .unwrap()
            .remove("persistentVolumeClaimRetentionPolicy");
        let s = step(Kind::StatefulSet, Action::Update, retain);
        assert_eq!(gate(&APPLY, &s, &sts(4, "Retain"), &claims(4)), Ok(()));
        // ... but the manifest's policy is the one after the write.
        let s = step(Kind::StatefulSet, Action::Update, sts(2, "Delete"));
        assert!(gate(&APPLY, &s, &sts(4, "Retain"), &claims(4)).is_err());
    }

    /// A volume's reclaim policy turning to Delete: allowed only as the plan named it.
    #[test]
    fn a_reclaim_policy_turning_to_delete_must_have_been_planned() {
        let pv = |p: &str| json!({"spec": {"persistentVolumeReclaimPolicy": p, "capacity": {"storage": "1Gi"}}});
        let mut s = step(Kind::PersistentVolume, Action::Update, pv("Delete"));
        let err = gate(&APPLY, &s, &pv("Retain"), &[]).unwrap_err();
        assert!(err.contains("reclaim policy Retain → Delete"), "{err}");
        s.data_at_risk = vec![
            crate::kinds::volume::reclaim_turns_to_delete(&pv("Delete"), &pv("Retain")).unwrap(),
        ];
        assert_eq!(gate(&APPLY, &s, &pv("Retain"), &[]), Ok(()));
        assert_eq!(gate(&APPLY, &s, &pv("Delete"), &[]), Ok(()));
    }

    /// Deleting a volume takes its data when its policy is Delete: only if it was so planned.
    #[test]
    fn a_volume_delete_takes_data_only_if_its_planned_policy_did() {
        let pv = |p: &str| json!({"spec": {"persistentVolumeReclaimPolicy": p}});
        let delete = Op::Delete {
            uid: "u".into(),
            propagation: Propagation::Background,
        };
        let mut s = step(Kind::PersistentVolume, Action::Delete, json!({}));
        s.before = Some(pv("Retain"));
        assert_eq!(gate(&delete, &s, &pv("Retain"), &[]), Ok(()));
        let err = gate(&delete, &s, &pv("Delete"), &[]).unwrap_err();
        assert!(err.starts_with("not deleted:"), "{err}");
        assert!(
            err.contains("the data of pv/db (reclaim policy Delete)"),
            "{err}"
        );
        s.before = Some(pv("Delete"));
        assert_eq!(gate(&delete, &s, &pv("Delete"), &[]), Ok(()));
    }

    /// Every delete is guarded; of updates, those of StatefulSets and volumes; nothing else.
    #[test]
    fn the_gate_guards_every_delete_and_the_updates_that_can_take_data() {
        let delete = Op::Delete {
            uid: "u".into(),
            propagation: Propagation::Background,
        };
        for kind in [
            Kind::Service,
            Kind::PersistentVolumeClaim,
            Kind::StatefulSet,
            Kind::VolumeSnapshot,
        ] {
            assert!(guarded(&delete, &step(kind, Action::Delete, json!({}))));
        }
        assert!(guarded(
            &APPLY,
            &step(Kind::StatefulSet, Action::Update, json!({}))
        ));
        assert!(guarded(
            &APPLY,
            &step(Kind::PersistentVolume, Action::Adopt, json!({}))
        ));
        assert!(!guarded(
            &APPLY,
            &step(Kind::StatefulSet, Action::Release, json!({}))
        ));
        assert!(!guarded(
            &APPLY,
            &step(Kind::Deployment, Action::Update, json!({}))
        ));
        assert!(!guarded(
            &Op::Create,
            &step(Kind::StatefulSet, Action::Create, json!({}))
        ));
    }

    /// Through the gateway: the live StatefulSet and its claims are read, the write refused when
    /// it would take a claim the plan did not name, and otherwise made against the version read.
    #[tokio::test]
    async fn pass_reads_the_object_and_its_claims_and_returns_the_version_checked() {
        use crate::gateway::fake::FakeGateway;
        let fake = FakeGateway::new();
        let id = ObjectRef::new(Kind::StatefulSet, "ns", "db");
        fake.put(&id, sts(4, "Delete"));
        for c in claims(4) {
            let name = crate::live::name_of(&c);
            fake.put(&ObjectRef::new(Kind::PersistentVolumeClaim, "ns", &name), c);
        }
        let op = Operation {
            id: 0,
            object: id.clone(),
            step: 0,
            op: APPLY,
            after: vec![],
            after_phase: None,
            completes_phase: None,
        };
        let mut s = step(Kind::StatefulSet, Action::Update, sts(2, "Delete"));
        s.deletes_claims = vec!["data-db-2".into()];
        let err = pass(&fake, &op, &s).await.unwrap_err();
        assert!(err.contains("the claims data-db-3"), "{err}");
        s.deletes_claims.push("data-db-3".into());
        let passed = pass(&fake, &op, &s).await.unwrap();
        let rv = fake.object(&id).unwrap()["metadata"]["resourceVersion"].clone();
        assert_eq!(passed.version.as_deref(), rv.as_str());
        // Claims are listed only when a scale-down could take some: once for the update above
        // that could, not for one whose retention keeps them, nor for a volume's update.
        let lists = fake.calls("list");
        assert!(lists > 0, "the scale-down's claims were listed");
        let retain = step(Kind::StatefulSet, Action::Update, sts(2, "Retain"));
        fake.update(&id, |l| {
            l["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Retain")
        });
        assert!(pass(&fake, &op, &retain).await.is_ok());
        let pv = ObjectRef::new(Kind::PersistentVolume, "", "db");
        fake.put(
            &pv,
            json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        );
        let volume = Operation {
            object: pv.clone(),
            ..op.clone()
        };
        let mut pv_step = step(
            Kind::PersistentVolume,
            Action::Update,
            json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        );
        pv_step.object = pv;
        assert!(pass(&fake, &volume, &pv_step).await.is_ok());
        let delete = Operation {
            op: DELETE,
            ..op.clone()
        };
        fake.update(&id, |l| {
            l["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Delete")
        });
        let mut gone = step(Kind::StatefulSet, Action::Delete, sts(2, "Delete"));
        gone.deletes_claims = vec!["data-db-0".into()];
        let _ = pass(&fake, &delete, &gone).await;
        assert_eq!(fake.calls("list"), lists, "no claims listed");
        // Not guarded (a Deployment's update): nothing read, no version.
        let d = step(Kind::Deployment, Action::Update, json!({}));
        assert_eq!(pass(&fake, &op, &d).await.unwrap(), Passed::default());
        // Gone: nothing left to take.
        fake.remove(&id);
        assert_eq!(pass(&fake, &op, &s).await.unwrap(), Passed::default());
    }

    const DELETE: Op = Op::Delete {
        uid: String::new(),
        propagation: Propagation::Background,
    };
    const ORPHAN: Op = Op::Delete {
        uid: String::new(),
        propagation: Propagation::Orphan,
    };

    /// A claim deleted takes itself, which its step (a prune, a consented replace) planned.
    #[test]
    fn a_claim_delete_takes_the_claim_it_planned_to() {
        let s = step(Kind::PersistentVolumeClaim, Action::Delete, json!({}));
        let live = json!({"metadata": {"name": "db"}});
        assert_eq!(
            live_risk(&DELETE, &s, &live, &[]).claims,
            BTreeSet::from(["db".to_string()])
        );
        assert_eq!(gate(&DELETE, &s, &live, &[]), Ok(()));
    }

    /// A re-create (orphan delete, then create) takes the pods above the manifest's count, and
    /// with whenScaled: Delete their claims; it never takes anything, whatever the step says
    /// (a saved plan whose resize step lists claims is still refused).
    #[test]
    fn a_re_create_takes_nothing_whatever_the_step_lists() {
        let mut s = step(Kind::StatefulSet, Action::Resize, sts(2, "Delete"));
        let risk = live_risk(&ORPHAN, &s, &sts(4, "Retain"), &[]);
        assert_eq!(risk.pods.len(), 2);
        assert!(risk.claims.is_empty(), "{risk:?}");
        let risk = live_risk(&ORPHAN, &s, &sts(4, "Delete"), &[]);
        assert_eq!(
            risk.claims,
            BTreeSet::from(["data-db-2".to_string(), "data-db-3".to_string()])
        );
        s.deletes_claims = vec!["data-db-2".into(), "data-db-3".into()];
        s.data_at_risk = vec!["anything".into()];
        let err = gate(&ORPHAN, &s, &sts(4, "Delete"), &[]).unwrap_err();
        assert!(
            err.contains("runs 4 replicas now and would be re-created with 2"),
            "{err}"
        );
        assert_eq!(gate(&ORPHAN, &s, &sts(2, "Delete"), &[]), Ok(()));
    }

    /// A snapshot's data goes with a prune's delete (consented with the plan's data flag) and,
    /// replaced, only as the step's `data_at_risk` (consented with --delete-data).
    #[test]
    fn a_snapshot_replace_takes_its_data_only_as_planned_data_at_risk() {
        let live = json!({"spec": {"source": {"persistentVolumeClaimName": "a"}}});
        let mut replace = step(Kind::VolumeSnapshot, Action::Replace, json!({}));
        replace.before = Some(live.clone());
        let err = gate(&DELETE, &replace, &live, &[]).unwrap_err();
        assert!(err.contains("the data of volumesnapshot/db"), "{err}");
        replace.data_at_risk = vec![crate::kinds::volume_snapshot::data_of("db")];
        assert_eq!(gate(&DELETE, &replace, &live, &[]), Ok(()));
        let mut prune = step(Kind::VolumeSnapshot, Action::Delete, json!({}));
        prune.before = Some(live.clone());
        assert_eq!(gate(&DELETE, &prune, &live, &[]), Ok(()));
        // A volume replaced (allow_replace and --replace) takes what its planned state takes.
        let pv = json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}});
        let mut replace_pv = step(Kind::PersistentVolume, Action::Replace, json!({}));
        replace_pv.before = Some(pv.clone());
        assert_eq!(gate(&DELETE, &replace_pv, &pv, &[]), Ok(()));
        replace_pv.before = Some(json!({"spec": {"persistentVolumeReclaimPolicy": "Retain"}}));
        assert!(gate(&DELETE, &replace_pv, &pv, &[]).is_err());
    }

    /// A class re-created with reclaimPolicy: Delete puts future volumes' data at risk: only as
    /// the step planned it.
    #[test]
    fn a_class_re_created_with_reclaim_delete_must_have_been_planned() {
        let class = |p: &str| json!({"reclaimPolicy": p});
        let mut s = step(Kind::StorageClass, Action::Replace, class("Delete"));
        let err = gate(&DELETE, &s, &class("Retain"), &[]).unwrap_err();
        assert!(err.contains("reclaim policy Retain → Delete"), "{err}");
        s.data_at_risk = vec![
            crate::kinds::storage_class::reclaim_turns_to_delete(
                &class("Delete"),
                &class("Retain"),
            )
            .unwrap(),
        ];
        assert_eq!(gate(&DELETE, &s, &class("Retain"), &[]), Ok(()));
    }
}
