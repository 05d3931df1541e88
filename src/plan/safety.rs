//! Snapshots before data loss: a claim replaced with consent (`allow_replace` + `--replace`), a
//! claim pruned or destroyed with its data (`--prune-data`, `destroy --delete-data`, a
//! StatefulSet whose retention policy takes its claims), and the claims a scale-down deletes
//! (`whenScaled: Delete`, with `--snapshot-before`) are snapshotted first when a
//! VolumeSnapshotClass exists for the claim's driver. The scheduler turns each planned snapshot
//! into a create and a wait until `readyToUse` that every deletion of the change waits for.
//!
//! Pure, but for [`snapshot_classes`], which lists the cluster's VolumeSnapshotClasses.
//! Snapshots taken this way are named predictably (`<claim>-before-<change>-<UTC timestamp of
//! the plan>`), carry the stack's labels like the on-demand ones (`kubectl stateful snapshot`),
//! and are never deleted by prune or destroy: they are the safety net.

use super::{Action, SafetySnapshot, Step};
use crate::gateway::{Gateway, ListQuery};
use crate::kinds::Kind;
use serde_json::Value;
use std::collections::BTreeSet;

/// The annotation marking the default VolumeSnapshotClass of a driver.
pub const DEFAULT_CLASS: &str = "snapshot.storage.kubernetes.io/is-default-class";

/// The VolumeSnapshotClasses of the cluster: `Ok(None)` when it has no snapshot API.
pub async fn snapshot_classes(gw: &dyn Gateway) -> Result<Option<Vec<Value>>, String> {
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(
            crate::kinds::SNAPSHOT_GROUP,
            crate::kinds::SNAPSHOT_VERSION,
            "VolumeSnapshotClass",
        ),
        "volumesnapshotclasses",
    );
    match gw.list(&ListQuery::new(resource, None)).await {
        Ok(list) => Ok(Some(list)),
        Err(f) if f.is_not_found() => Ok(None),
        Err(f) => Err(f.text()),
    }
}

/// [`plan`] against the cluster: lists the VolumeSnapshotClasses only when a step deletes data.
pub async fn plan_in_cluster(
    gw: &dyn Gateway,
    steps: &mut [Step],
    facts: &crate::live::ClusterFacts,
    options: &Options,
) {
    let placeholder = Ok(Some(Vec::new()));
    let probe = Facts {
        classes: &facts.classes,
        volumes: &facts.volumes,
        claims: &facts.claims,
        snapshot_classes: &placeholder,
    };
    if !steps.iter().any(|s| doomed(s, &probe, options).is_some()) {
        return;
    }
    let snapshot_classes = snapshot_classes(gw).await;
    let facts = Facts {
        snapshot_classes: &snapshot_classes,
        ..probe
    };
    plan(steps, &facts, options);
}

/// What choosing a class needs from the cluster.
pub struct Facts<'a> {
    /// Every StorageClass.
    pub classes: &'a [Value],
    /// Every PersistentVolume.
    pub volumes: &'a [Value],
    /// The namespace's claims.
    pub claims: &'a [Value],
    /// The VolumeSnapshotClasses (`Ok(None)`: no snapshot API; `Err`: they could not be read).
    pub snapshot_classes: &'a Result<Option<Vec<Value>>, String>,
}

/// What the plan was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--snapshot-before`: the claims a scale-down deletes are snapshotted first.
    pub snapshot_before: bool,
    /// The removal of the whole stack (`destroy`): snapshots are named `…-before-destroy-…`.
    pub destroy: bool,
    /// The plan's UTC timestamp (`20260102-150405`), the last part of every snapshot's name.
    pub stamp: String,
}

fn str_at<'v>(v: &'v Value, p: &str) -> &'v str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn named<'v>(list: &'v [Value], name: &str) -> Option<&'v Value> {
    list.iter().find(|o| str_at(o, "/metadata/name") == name)
}

/// The CSI driver of a claim: its StorageClass's provisioner, else its volume's driver.
pub fn driver_of(claim: &Value, classes: &[Value], volumes: &[Value]) -> Option<String> {
    let class = str_at(claim, "/spec/storageClassName");
    let from_class = named(classes, class)
        .map(|c| str_at(c, "/provisioner"))
        .filter(|p| !class.is_empty() && !p.is_empty());
    let from_volume = named(volumes, str_at(claim, "/spec/volumeName"))
        .map(|pv| str_at(pv, "/spec/csi/driver"))
        .filter(|d| !d.is_empty());
    from_class.or(from_volume).map(str::to_string)
}

/// The VolumeSnapshotClass for a driver: the one annotated as its default, else the first by
/// name.
pub fn class_for(driver: &str, snapshot_classes: &[Value]) -> Option<String> {
    let mut of_driver: Vec<&Value> = snapshot_classes
        .iter()
        .filter(|c| str_at(c, "/driver") == driver)
        .collect();
    of_driver.sort_by_key(|c| {
        (
            str_at(
                c,
                &format!("/metadata/annotations/{}", DEFAULT_CLASS.replace('/', "~1")),
            ) != "true",
            str_at(c, "/metadata/name").to_string(),
        )
    });
    of_driver
        .first()
        .map(|c| str_at(c, "/metadata/name").to_string())
}

/// The name of a snapshot taken before `before` (a DNS subdomain: at most 253 characters).
pub fn snapshot_name(claim: &str, before: &str, stamp: &str) -> String {
    let suffix = format!("-before-{before}-{stamp}");
    let room = 253usize.saturating_sub(suffix.len());
    let claim = claim.get(..room.min(claim.len())).unwrap_or(claim);
    format!("{}{suffix}", claim.trim_end_matches(['-', '.']))
}

/// The claims a step loses with their data, and the change's name for the snapshots.
fn doomed(step: &Step, f: &Facts<'_>, o: &Options) -> Option<(Vec<String>, &'static str)> {
    let removal = if o.destroy { "destroy" } else { "prune" };
    match (step.object.kind, step.action) {
        (Kind::PersistentVolumeClaim, Action::Replace) if step.allow_replace => {
            Some((vec![step.object.name.clone()], "replace"))
        }
        (Kind::PersistentVolume, Action::Replace) if step.allow_replace => {
            let pv = named(f.volumes, &step.object.name)?;
            let claim = str_at(pv, "/spec/claimRef/name");
            (!claim.is_empty()).then(|| (vec![claim.to_string()], "replace"))
        }
        (Kind::PersistentVolumeClaim, Action::Delete) => {
            Some((vec![step.object.name.clone()], removal))
        }
        (Kind::StatefulSet, Action::Delete) => {
            let live = step.before.as_ref()?;
            if str_at(
                live,
                "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
            ) != "Delete"
            {
                return None;
            }
            let name = &step.object.name;
            let claims = crate::kinds::statefulset::claims_of_templates(name, live, f.claims)
                .into_iter()
                .map(|(c, _, _)| str_at(c, "/metadata/name").to_string())
                .collect();
            Some((claims, removal))
        }
        (Kind::StatefulSet, Action::Update | Action::Adopt)
            if o.snapshot_before && !step.deletes_claims.is_empty() =>
        {
            Some((step.deletes_claims.clone(), "scale-down"))
        }
        _ => None,
    }
}

/// Plans the snapshots taken before data goes: each step that deletes claims gets its
/// [`SafetySnapshot`]s and a reason per claim — the snapshot and its class, or why none is
/// taken (no VolumeSnapshotClass for the driver, no snapshot API, a claim that is not Bound).
pub fn plan(steps: &mut [Step], f: &Facts<'_>, o: &Options) {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for step in steps.iter_mut() {
        let Some((claims, before)) = doomed(step, f, o) else {
            continue;
        };
        let namespace = match step.object.kind {
            Kind::PersistentVolume => named(f.volumes, &step.object.name)
                .map(|pv| str_at(pv, "/spec/claimRef/namespace").to_string())
                .unwrap_or_default(),
            _ => step.object.namespace.clone().unwrap_or_default(),
        };
        for claim in claims {
            if !seen.insert((namespace.clone(), claim.clone())) {
                continue;
            }
            let live = named(f.claims, &claim).filter(|c| {
                let ns = str_at(c, "/metadata/namespace");
                ns.is_empty() || ns == namespace
            });
            let Some(live) = live else {
                step.reasons.push(format!(
                    "pvc/{claim} is not in the stack's namespace: no snapshot is taken"
                ));
                continue;
            };
            if str_at(live, "/status/phase") != "Bound" {
                step.reasons.push(format!(
                    "pvc/{claim} is not Bound: it holds no data, no snapshot is taken"
                ));
                continue;
            }
            let Some(driver) = driver_of(live, f.classes, f.volumes) else {
                step.reasons.push(format!(
                    "pvc/{claim}: neither its StorageClass nor its volume names a driver: no snapshot is taken"
                ));
                continue;
            };
            let class = match f.snapshot_classes {
                Ok(Some(list)) => class_for(&driver, list),
                Ok(None) => {
                    step.reasons.push(format!(
                        "this cluster has no {}/{} API: no snapshot of pvc/{claim} is taken",
                        crate::kinds::SNAPSHOT_GROUP,
                        crate::kinds::SNAPSHOT_VERSION
                    ));
                    continue;
                }
                // Fails closed: without the classes, whether the claim could be snapshotted
                // before it goes is unknown, so nothing is deleted.
                Err(e) => {
                    step.action = Action::Error;
                    step.error = Some(format!(
                        "cannot list VolumeSnapshotClasses ({e}): whether pvc/{claim} can be snapshotted before its data is deleted is unknown, so nothing is deleted; grant list on volumesnapshotclasses (see examples/rbac.yaml) and plan again"
                    ));
                    continue;
                }
            };
            let Some(class) = class else {
                step.reasons.push(format!(
                    "no VolumeSnapshotClass for driver {driver}: no snapshot of pvc/{claim} is taken"
                ));
                continue;
            };
            let name = snapshot_name(&claim, before, &o.stamp);
            step.reasons.push(format!(
                "snapshot {claim} first (class {class}): volumesnapshot/{name}, ready before anything is deleted, and kept (prune and destroy never delete it)"
            ));
            step.snapshots.push(SafetySnapshot {
                claim,
                namespace: namespace.clone(),
                name,
                class,
                before: before.to_string(),
            });
        }
    }
}

/// The claims a step deletes that no planned snapshot covers.
pub fn unprotected(step: &Step) -> Vec<String> {
    step.deletes_claims
        .iter()
        .filter(|c| !step.snapshots.iter().any(|s| &s.claim == *c))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::ObjectRef;
    use serde_json::json;

    fn claim(name: &str, class: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"},
               "spec": {"storageClassName": class, "volumeName": format!("pv-{name}")},
               "status": {"phase": phase}})
    }

    type Lists = (
        Vec<Value>,
        Vec<Value>,
        Vec<Value>,
        Result<Option<Vec<Value>>, String>,
    );

    fn facts_with(snapshot_classes: Result<Option<Vec<Value>>, String>) -> Lists {
        let classes = vec![
            json!({"metadata": {"name": "fast"}, "provisioner": "csi.stateful.test"}),
            json!({"metadata": {"name": "standard"}, "provisioner": "kubernetes.io/host-path"}),
        ];
        let volumes = vec![
            json!({"metadata": {"name": "pv-data-db-0"}, "spec": {"csi": {"driver": "csi.stateful.test"}}}),
            json!({"metadata": {"name": "disk"}, "spec": {"claimRef": {"namespace": "ns", "name": "data"}}}),
        ];
        let claims = vec![
            claim("data-db-0", "fast", "Bound"),
            claim("data-db-1", "fast", "Pending"),
            claim("data", "standard", "Bound"),
            claim("nameless", "", "Bound"),
        ];
        (classes, volumes, claims, snapshot_classes)
    }

    fn step(kind: Kind, name: &str, action: Action) -> Step {
        let mut s = crate::plan::ops::tests::step(kind, name, action);
        s.object = ObjectRef::new(kind, "ns", name);
        s
    }

    fn options() -> Options {
        Options {
            snapshot_before: false,
            destroy: false,
            stamp: "20260102-150405".into(),
        }
    }

    fn classes() -> Vec<Value> {
        vec![
            json!({"metadata": {"name": "other"}, "driver": "csi.stateful.test"}),
            json!({"metadata": {"name": "fast-snapshots", "annotations": {DEFAULT_CLASS: "true"}}, "driver": "csi.stateful.test"}),
            json!({"metadata": {"name": "elsewhere"}, "driver": "csi.other"}),
        ]
    }

    /// The classes as listed: none (an empty list), no snapshot API (404), or a refusal that
    /// names what the server said.
    #[tokio::test]
    async fn snapshot_classes_tell_none_from_no_api_from_a_refusal() {
        use crate::gateway::{ApiFailure, fake::FakeGateway};
        let collection = ObjectRef::new(Kind::Namespace, "", "volumesnapshotclasses");
        let fake = FakeGateway::new();
        assert_eq!(snapshot_classes(&fake).await, Ok(Some(vec![])));
        let failure = |code: u16, message: &str| ApiFailure {
            code,
            reason: String::new(),
            message: message.into(),
            ..Default::default()
        };
        fake.fail_next("list", &collection, failure(404, "not found"), 1);
        assert_eq!(snapshot_classes(&fake).await, Ok(None));
        fake.fail_next("list", &collection, failure(403, "forbidden here"), 1);
        let refused = snapshot_classes(&fake).await.unwrap_err();
        assert!(refused.contains("forbidden here"), "{refused}");
    }

    /// Against the cluster: the classes are listed only when a step deletes data, and a step
    /// that does gets its snapshot decision (here: a refusal to list them stops the deletion).
    #[tokio::test]
    async fn in_the_cluster_classes_are_read_only_for_steps_that_delete_data() {
        use crate::gateway::{ApiFailure, fake::FakeGateway};
        let (classes, volumes, claims, _) = facts_with(Ok(None));
        let facts = crate::live::ClusterFacts {
            classes,
            volumes,
            claims,
            ..Default::default()
        };
        let fake = FakeGateway::new();
        let mut keep = vec![step(
            Kind::PersistentVolumeClaim,
            "data-db-0",
            Action::Update,
        )];
        plan_in_cluster(&fake, &mut keep, &facts, &options()).await;
        assert_eq!(fake.calls("list"), 0, "nothing deletes data: no list");
        assert_eq!(keep[0].action, Action::Update);

        let collection = ObjectRef::new(Kind::Namespace, "", "volumesnapshotclasses");
        fake.fail_next(
            "list",
            &collection,
            ApiFailure {
                code: 403,
                message: "forbidden".into(),
                ..Default::default()
            },
            1,
        );
        let mut delete = vec![step(
            Kind::PersistentVolumeClaim,
            "data-db-0",
            Action::Delete,
        )];
        plan_in_cluster(&fake, &mut delete, &facts, &options()).await;
        assert_eq!(fake.calls("list"), 1);
        assert_eq!(delete[0].action, Action::Error, "{:?}", delete[0]);
        // Listed (empty): the claim's driver has no class, which the plan says.
        let mut delete = vec![step(
            Kind::PersistentVolumeClaim,
            "data-db-0",
            Action::Delete,
        )];
        plan_in_cluster(&fake, &mut delete, &facts, &options()).await;
        assert_eq!(
            delete[0].reasons,
            vec![
                "no VolumeSnapshotClass for driver csi.stateful.test: no snapshot of pvc/data-db-0 is taken"
            ]
        );
    }

    #[test]
    fn the_default_class_of_the_driver_is_chosen() {
        assert_eq!(
            class_for("csi.stateful.test", &classes()).as_deref(),
            Some("fast-snapshots")
        );
        assert_eq!(
            class_for("csi.other", &classes()).as_deref(),
            Some("elsewhere")
        );
        assert_eq!(class_for("kubernetes.io/host-path", &classes()), None);
    }

    #[test]
    fn the_driver_comes_from_the_class_else_the_volume() {
        let (c, v, _, _) = facts_with(Ok(None));
        assert_eq!(
            driver_of(&claim("data-db-0", "fast", "Bound"), &c, &v).as_deref(),
            Some("csi.stateful.test")
        );
        assert_eq!(
            driver_of(&claim("data-db-0", "", "Bound"), &c, &v).as_deref(),
            Some("csi.stateful.test")
        );
        assert_eq!(driver_of(&claim("x", "", "Bound"), &c, &v), None);
    }

    #[test]
    fn names_are_predictable_and_bounded() {
        assert_eq!(
            snapshot_name("data-db-0", "prune", "20260102-150405"),
            "data-db-0-before-prune-20260102-150405"
        );
        let long = "a".repeat(260);
        assert_eq!(snapshot_name(&long, "replace", "x").len(), 253);
    }

    #[test]
    fn deletions_and_allowed_replacements_are_snapshotted_when_a_class_exists() {
        let (c, v, cl, sc) = facts_with(Ok(Some(classes())));
        let f = Facts {
            classes: &c,
            volumes: &v,
            claims: &cl,
            snapshot_classes: &sc,
        };
        let mut replace = step(Kind::PersistentVolumeClaim, "data-db-0", Action::Replace);
        replace.allow_replace = true;
        let mut steps = vec![
            replace,
            step(Kind::PersistentVolumeClaim, "data-db-0", Action::Delete),
            step(Kind::PersistentVolumeClaim, "data-db-1", Action::Delete),
            step(Kind::PersistentVolumeClaim, "data", Action::Delete),
            step(Kind::PersistentVolumeClaim, "other", Action::Replace),
        ];
        plan(&mut steps, &f, &options());
        assert_eq!(
            steps[0].snapshots,
            vec![SafetySnapshot {
                claim: "data-db-0".into(),
                namespace: "ns".into(),
                name: "data-db-0-before-replace-20260102-150405".into(),
                class: "fast-snapshots".into(),
                before: "replace".into(),
            }]
        );
        assert!(steps[0].reasons[0].starts_with("snapshot data-db-0 first (class fast-snapshots): volumesnapshot/data-db-0-before-replace-20260102-150405"));
        // Once per claim.
        assert!(steps[1].snapshots.is_empty() && steps[1].reasons.is_empty());
        assert_eq!(
            steps[2].reasons,
            vec!["pvc/data-db-1 is not Bound: it holds no data, no snapshot is taken"]
        );
        assert_eq!(
            steps[3].reasons,
            vec![
                "no VolumeSnapshotClass for driver kubernetes.io/host-path: no snapshot of pvc/data is taken"
            ]
        );
        // A replacement the spec does not allow is refused anyway: nothing planned.
        assert!(steps[4].snapshots.is_empty() && steps[4].reasons.is_empty());
    }

    /// Fails closed: classes that could not be listed (403, 5xx) make the deletion an error,
    /// never a deletion without the snapshot that could have been taken.
    #[test]
    fn classes_that_cannot_be_listed_stop_the_deletion() {
        let (c, v, cl, _) = facts_with(Ok(None));
        let sc = Err("HTTP 403".to_string());
        let f = Facts {
            classes: &c,
            volumes: &v,
            claims: &cl,
            snapshot_classes: &sc,
        };
        let mut steps = vec![
            step(Kind::PersistentVolumeClaim, "data-db-0", Action::Delete),
            step(Kind::PersistentVolumeClaim, "data-db-1", Action::Delete),
        ];
        plan(&mut steps, &f, &options());
        assert_eq!(steps[0].action, Action::Error);
        assert!(steps[0].snapshots.is_empty());
        assert!(
            steps[0].error.as_deref().unwrap().starts_with(
                "cannot list VolumeSnapshotClasses (HTTP 403): whether pvc/data-db-0 can be snapshotted before its data is deleted is unknown, so nothing is deleted"
            ),
            "{:?}",
            steps[0].error
        );
        // A claim that holds no data needs no snapshot: its deletion is not blocked.
        assert_eq!(steps[1].action, Action::Delete);
    }

    #[test]
    fn a_scale_down_is_snapshotted_only_when_asked_and_without_an_api_says_so() {
        let (c, v, cl, _) = facts_with(Ok(None));
        let sc = Ok(Some(classes()));
        let f = Facts {
            classes: &c,
            volumes: &v,
            claims: &cl,
            snapshot_classes: &sc,
        };
        let mut sts = step(Kind::StatefulSet, "db", Action::Update);
        sts.deletes_claims = vec!["data-db-0".into()];
        let mut steps = vec![sts.clone()];
        plan(&mut steps, &f, &options());
        assert!(steps[0].snapshots.is_empty());
        assert_eq!(unprotected(&steps[0]), vec!["data-db-0"]);
        let o = Options {
            snapshot_before: true,
            ..options()
        };
        plan(&mut steps, &f, &o);
        assert_eq!(
            steps[0].snapshots[0].name,
            "data-db-0-before-scale-down-20260102-150405"
        );
        assert!(unprotected(&steps[0]).is_empty());
        let none = Ok(None);
        let f = Facts {
            snapshot_classes: &none,
            ..f
        };
        let mut steps = vec![sts];
        plan(&mut steps, &f, &o);
        assert_eq!(
            steps[0].reasons,
            vec![
                "this cluster has no snapshot.storage.k8s.io/v1 API: no snapshot of pvc/data-db-0 is taken"
            ]
        );
    }

    #[test]
    fn a_statefulset_that_takes_its_claims_snapshots_them_and_a_volume_its_claim() {
        let (c, v, cl, sc) = facts_with(Ok(Some(classes())));
        let f = Facts {
            classes: &c,
            volumes: &v,
            claims: &cl,
            snapshot_classes: &sc,
        };
        let mut sts = step(Kind::StatefulSet, "db", Action::Delete);
        sts.before = Some(json!({"spec": {
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}));
        let mut pv = step(Kind::PersistentVolume, "disk", Action::Replace);
        pv.object = ObjectRef::new(Kind::PersistentVolume, "", "disk");
        pv.allow_replace = true;
        let mut steps = vec![sts, pv];
        plan(
            &mut steps,
            &f,
            &Options {
                destroy: true,
                ..options()
            },
        );
        assert_eq!(
            steps[0]
                .snapshots
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            vec!["data-db-0-before-destroy-20260102-150405"]
        );
        assert_eq!(
            steps[0].reasons[1],
            "pvc/data-db-1 is not Bound: it holds no data, no snapshot is taken"
        );
        assert_eq!(
            steps[1].reasons,
            vec![
                "no VolumeSnapshotClass for driver kubernetes.io/host-path: no snapshot of pvc/data is taken"
            ]
        );
    }
}
