//! Which live objects an import writes, and which it recognises and leaves out. Pure.
//!
//! - Workloads and standalone claims of the namespace (or the named ones, or those matching
//!   `--selector`), and the claims the chosen workloads mount.
//! - Claims made from a StatefulSet's templates (`<template>-<statefulset>-<ordinal>`) belong to
//!   the StatefulSet; objects owned by another object (`ownerReferences`) belong to it.
//! - PersistentVolumes created by hand for the chosen claims (bound or pre-bound to them, or
//!   carrying a class only the chosen objects use); volumes a provisioner created are left to it.
//! - StorageClasses: named or matching the selector, or used by the chosen objects only and
//!   provisioning nothing (`kubernetes.io/no-provisioner`). A cluster's default class and classes
//!   with a provisioner are cluster infrastructure.
//! - Services: the spec generates a StatefulSet's headless Service (and leaves an existing one
//!   alone); other Services and the `kubernetes` Service are not described by the spec.

use crate::kinds::Kind;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Annotation a provisioner puts on the volumes it creates.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The provisioner of classes whose volumes are created by hand.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// What the cluster holds: every StorageClass and PersistentVolume, and the namespace's objects.
#[derive(Debug, Default, Clone)]
pub struct LiveState {
    pub classes: Vec<Value>,
    pub volumes: Vec<Value>,
    pub claims: Vec<Value>,
    pub statefulsets: Vec<Value>,
    pub deployments: Vec<Value>,
    pub daemonsets: Vec<Value>,
    pub services: Vec<Value>,
}

impl LiveState {
    pub fn of_kind(&self, kind: Kind) -> &[Value] {
        match kind {
            Kind::StorageClass => &self.classes,
            Kind::PersistentVolume => &self.volumes,
            Kind::PersistentVolumeClaim => &self.claims,
            Kind::StatefulSet => &self.statefulsets,
            Kind::Deployment => &self.deployments,
            Kind::DaemonSet => &self.daemonsets,
            Kind::Service => &self.services,
            // Not imported: the namespace, the plugin's own records, snapshots.
            Kind::Namespace | Kind::ConfigMap | Kind::Lease | Kind::VolumeSnapshot | Kind::Pod => {
                &[]
            }
        }
    }

    fn find(&self, kind: Kind, name: &str) -> Option<&Value> {
        self.of_kind(kind).iter().find(|o| name_of(o) == name)
    }

    /// The class marked as the cluster's default.
    pub fn default_class(&self) -> Option<&str> {
        self.classes
            .iter()
            .find(|c| {
                c.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                    .and_then(Value::as_str)
                    == Some("true")
            })
            .map(name_of)
    }
}

/// What to import.
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub namespace: String,
    /// Named objects (`statefulset/db`); empty: the whole namespace.
    pub named: Vec<(Kind, String)>,
    /// With `--selector`: the objects matching it, per kind.
    pub selected: Option<BTreeSet<(Kind, String)>>,
}

/// An object recognised and not written, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// `pvc/data-db-0`.
    pub object: String,
    pub why: String,
}

/// The outcome.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// In rollout order: classes, volumes, claims, StatefulSets, Deployments, DaemonSets.
    pub objects: Vec<(Kind, Value)>,
    pub left_out: Vec<LeftOut>,
    /// Remarks that are not about a left-out object (a missing headless Service).
    pub notes: Vec<String>,
}

pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn short(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.short())
}

/// `statefulset/db` (owner kind lowercased) of the first owner reference.
fn owner(v: &Value) -> Option<String> {
    let o = v.pointer("/metadata/ownerReferences/0")?;
    Some(format!(
        "{}/{}",
        o["kind"].as_str()?.to_lowercase(),
        o["name"].as_str()?
    ))
}

/// The StatefulSet and template a claim was made from, if its name says so.
fn template_of<'a>(claim: &str, statefulsets: &'a [Value]) -> Option<(&'a str, String)> {
    for sts in statefulsets {
        let sts_name = name_of(sts);
        for t in crate::kinds::statefulset::template_names(sts) {
            if crate::kinds::statefulset::template_claim_ordinal(claim, t, sts_name).is_some() {
                return Some((sts_name, t.to_string()));
            }
        }
    }
    None
}

fn class_of(obj: &Value) -> Option<&str> {
    obj.pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
}

fn is_dynamic(pv: &Value) -> bool {
    pv.pointer("/metadata/annotations")
        .and_then(|a| a.get(PROVISIONED_BY))
        .is_some()
}

/// The claims a workload mounts.
fn mounted_claims(w: &Value) -> Vec<&str> {
    w.pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
        .filter_map(Value::as_str)
        .collect()
}

/// Chooses the objects to write. `Err` names objects that were asked for by name and are not
/// there or cannot be imported.
pub fn select(state: &LiveState, req: &Request) -> Result<Selection, String> {
    let ns = req.namespace.as_str();
    let whole = req.named.is_empty();
    let mut out = Selection::default();
    let wanted = |kind: Kind, name: &str| -> bool {
        if whole {
            req.selected
                .as_ref()
                .is_none_or(|s| s.contains(&(kind, name.to_string())))
        } else {
            req.named.iter().any(|(k, n)| *k == kind && n == name)
        }
    };
    for (kind, name) in &req.named {
        if *kind == Kind::Service {
            return Err(format!(
                "service/{name}: the spec describes a Service only as a StatefulSet's headless Service; import the StatefulSet"
            ));
        }
        if state.find(*kind, name).is_none() {
            let place = if kind.namespaced() {
                format!(" in namespace {ns}")
            } else {
                String::new()
            };
            return Err(format!("{} not found{place}", short(*kind, name)));
        }
    }
    let mut left = |object: String, why: String| out.left_out.push(LeftOut { object, why });

    // Workloads.
    let mut workloads: Vec<(Kind, &Value)> = Vec::new();
    for kind in [Kind::StatefulSet, Kind::Deployment, Kind::DaemonSet] {
        for w in state.of_kind(kind) {
            if !wanted(kind, name_of(w)) {
                continue;
            }
            match owner(w) {
                Some(o) => left(short(kind, name_of(w)), format!("owned by {o}")),
                None => workloads.push((kind, w)),
            }
        }
    }
    let chosen_sts: Vec<Value> = workloads
        .iter()
        .filter(|(k, _)| *k == Kind::StatefulSet)
        .map(|(_, w)| (*w).clone())
        .collect();

    // Claims: asked for, or mounted by a chosen workload.
    let mounted: BTreeSet<&str> = workloads
        .iter()
        .flat_map(|(_, w)| mounted_claims(w))
        .collect();
    let mut claims: Vec<&Value> = Vec::new();
    let mut template_claims: BTreeSet<String> = BTreeSet::new();
    for c in &state.claims {
        let name = name_of(c);
        let asked = wanted(Kind::PersistentVolumeClaim, name) || mounted.contains(name);
        if let Some((sts, tpl)) = template_of(name, &state.statefulsets) {
            let of_chosen = chosen_sts.iter().any(|s| name_of(s) == sts);
            if of_chosen {
                template_claims.insert(name.to_string());
            }
            if asked || of_chosen || (whole && req.selected.is_none()) {
                left(
                    short(Kind::PersistentVolumeClaim, name),
                    format!("a claim of statefulset/{sts}'s template {tpl:?}"),
                );
            }
            continue;
        }
        if !asked {
            continue;
        }
        match owner(c) {
            Some(o) => left(
                short(Kind::PersistentVolumeClaim, name),
                format!("owned by {o}"),
            ),
            None => claims.push(c),
        }
    }
    // Template claims of chosen StatefulSets that do not exist yet may have volumes waiting
    // for them (pre-bound by claimRef).
    let claim_names: BTreeSet<&str> = claims.iter().map(|c| name_of(c)).collect();

    // Volumes.
    let mut volumes: Vec<&Value> = Vec::new();
    let mut seen_volumes: BTreeSet<&str> = BTreeSet::new();
    let claimed_by = |pv: &Value| -> Option<(String, String)> {
        let r = pv.pointer("/spec/claimRef")?;
        Some((
            r["namespace"].as_str()?.to_string(),
            r["name"].as_str()?.to_string(),
        ))
    };
    for pv in &state.volumes {
        let name = name_of(pv);
        let claim = claimed_by(pv).filter(|(n, _)| n == ns).map(|(_, c)| c);
        let for_chosen = claim.as_deref().is_some_and(|c| {
            claim_names.contains(c)
                || template_claims.contains(c)
                || template_of(c, &chosen_sts).is_some()
        });
        let asked = req
            .named
            .iter()
            .any(|(k, n)| *k == Kind::PersistentVolume && n == name)
            || (whole
                && req
                    .selected
                    .as_ref()
                    .is_some_and(|s| s.contains(&(Kind::PersistentVolume, name.to_string()))));
        if !(for_chosen || asked) {
            continue;
        }
        if is_dynamic(pv)
            && !req
                .named
                .iter()
                .any(|(k, n)| *k == Kind::PersistentVolume && n == name)
        {
            let by = pv
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(PROVISIONED_BY))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let for_claim = claim.map(|c| format!(" for pvc/{c}")).unwrap_or_default();
            left(
                short(Kind::PersistentVolume, name),
                format!("provisioned dynamically by {by}{for_claim}"),
            );
            continue;
        }
        seen_volumes.insert(name);
        volumes.push(pv);
    }
    // The classes the chosen objects use.
    let mut used: BTreeSet<&str> = BTreeSet::new();
    used.extend(volumes.iter().filter_map(|v| class_of(v)));
    used.extend(claims.iter().filter_map(|c| class_of(c)));
    for sts in &chosen_sts {
        for t in sts
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(c) = class_of(t) {
                used.insert(c);
            }
        }
    }
    // Unbound volumes of a static class the chosen objects use: spare disks of the stack.
    if whole {
        for pv in &state.volumes {
            let name = name_of(pv);
            if seen_volumes.contains(name)
                || is_dynamic(pv)
                || pv.pointer("/spec/claimRef").is_some()
                || !class_of(pv).is_some_and(|c| used.contains(c))
            {
                continue;
            }
            let class = class_of(pv).unwrap_or_default();
            let static_class = state
                .find(Kind::StorageClass, class)
                .is_none_or(|sc| sc["provisioner"] == NO_PROVISIONER);
            if static_class
                && req
                    .selected
                    .as_ref()
                    .is_none_or(|s| s.contains(&(Kind::PersistentVolume, name.to_string())))
            {
                seen_volumes.insert(name);
                volumes.push(pv);
            }
        }
    }

    // Classes.
    let default_class = state.default_class();
    let mut classes: Vec<&Value> = Vec::new();
    for sc in &state.classes {
        let name = name_of(sc);
        let asked = if whole {
            req.selected
                .as_ref()
                .is_some_and(|s| s.contains(&(Kind::StorageClass, name.to_string())))
        } else {
            wanted(Kind::StorageClass, name)
        };
        if asked {
            classes.push(sc);
            continue;
        }
        if !used.contains(name) {
            continue;
        }
        let why = if Some(name) == default_class {
            Some("the cluster's default class, shared by the cluster".to_string())
        } else if sc["provisioner"] != NO_PROVISIONER {
            Some(format!(
                "provisions volumes for the whole cluster ({})",
                sc["provisioner"].as_str().unwrap_or_default()
            ))
        } else {
            state
                .volumes
                .iter()
                .find(|pv| class_of(pv) == Some(name) && !seen_volumes.contains(name_of(pv)))
                .map(|pv| format!("pv/{} outside this import has it too", name_of(pv)))
        };
        match why {
            Some(why) => left(
                short(Kind::StorageClass, name),
                format!("{why}; name it (storageclass/{name}) to import it"),
            ),
            None => classes.push(sc),
        }
    }

    // Services.
    if whole {
        for svc in &state.services {
            let name = name_of(svc);
            let governs = state
                .statefulsets
                .iter()
                .find(|s| s.pointer("/spec/serviceName").and_then(Value::as_str) == Some(name));
            let chosen =
                governs.is_some_and(|g| chosen_sts.iter().any(|s| name_of(s) == name_of(g)));
            if req.selected.is_some() && !chosen {
                continue;
            }
            let why = if name == "kubernetes" && ns == "default" {
                "the API server's own Service".to_string()
            } else if let Some(sts) = governs {
                format!(
                    "the headless Service of statefulset/{}: the spec generates it, and leaves an existing one as it is",
                    name_of(sts)
                )
            } else {
                "the spec describes a Service only as a StatefulSet's headless Service".to_string()
            };
            left(short(Kind::Service, name), why);
        }
    }
    for sts in &chosen_sts {
        if let Some(svc) = sts.pointer("/spec/serviceName").and_then(Value::as_str)
            && !svc.is_empty()
            && state.find(Kind::Service, svc).is_none()
        {
            out.notes.push(format!(
                "statefulset/{}: its headless Service {svc} does not exist; apply will create it",
                name_of(sts)
            ));
        }
    }

    out.objects
        .extend(classes.into_iter().map(|o| (Kind::StorageClass, o.clone())));
    out.objects.extend(
        volumes
            .into_iter()
            .map(|o| (Kind::PersistentVolume, o.clone())),
    );
    out.objects.extend(
        claims
            .into_iter()
            .map(|o| (Kind::PersistentVolumeClaim, o.clone())),
    );
    out.objects
        .extend(workloads.into_iter().map(|(k, o)| (k, o.clone())));
    Ok(out)
}

/// The static volume a claim is bound to (name and class), for its `volume` key.
pub fn bound_static_volume<'a>(claim: &Value, volumes: &'a [Value]) -> Option<(&'a str, &'a str)> {
    let name = claim.pointer("/spec/volumeName").and_then(Value::as_str)?;
    let pv = volumes.iter().find(|v| name_of(v) == name)?;
    if is_dynamic(pv) {
        return None;
    }
    Some((
        name_of(pv),
        pv.pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    ))
}

/// `statefulset/db`, `sts/db`, `pvc/data`, `pv/disk-1`, `storageclass/fast`, `deploy/web`,
/// `ds/agent` (kubectl's names, singular, plural or short, with or without the API group).
pub fn parse_name(text: &str) -> Result<(Kind, String), String> {
    let (kind, name) = text
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| format!("{text:?}: name objects as TYPE/NAME, e.g. statefulset/db"))?;
    let kind = kind.split('.').next().unwrap_or(kind).to_ascii_lowercase();
    let kind = match kind.as_str() {
        "sc" | "storageclass" | "storageclasses" => Kind::StorageClass,
        "pv" | "persistentvolume" | "persistentvolumes" => Kind::PersistentVolume,
        "pvc" | "persistentvolumeclaim" | "persistentvolumeclaims" => Kind::PersistentVolumeClaim,
        "sts" | "statefulset" | "statefulsets" => Kind::StatefulSet,
        "deploy" | "deployment" | "deployments" => Kind::Deployment,
        "ds" | "daemonset" | "daemonsets" => Kind::DaemonSet,
        "svc" | "service" | "services" => Kind::Service,
        "cm" | "configmap" | "configmaps" | "sa" | "serviceaccount" | "serviceaccounts"
        | "secret" | "secrets" => {
            return Err(format!(
                "{text}: the spec does not describe {kind} objects (it references Secrets and ConfigMaps by name, and pods use the namespace's service account)"
            ));
        }
        _ => {
            return Err(format!(
                "{text}: import reads storageclass, pv, pvc, statefulset, deployment and daemonset objects"
            ));
        }
    };
    Ok((kind, name.to_string()))
}

/// Objects of the namespace by kind and name, for `Request::selected`.
pub fn names(kind: Kind, list: &[Value]) -> BTreeSet<(Kind, String)> {
    list.iter()
        .map(|o| (kind, name_of(o).to_string()))
        .collect()
}

/// The class of every volume, for the desired objects of claims bound to cluster volumes.
pub fn volume_classes(volumes: &[Value]) -> BTreeMap<String, String> {
    volumes
        .iter()
        .map(|v| {
            (
                name_of(v).to_string(),
                class_of(v).unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, extra: Value) -> Value {
        let mut o = json!({"metadata": {"name": name}});
        json_patch::merge(&mut o, &extra);
        o
    }

    fn state() -> LiveState {
        LiveState {
            classes: vec![
                obj(
                    "standard",
                    json!({"provisioner": "kubernetes.io/host-path",
                    "metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}),
                ),
                obj("local", json!({"provisioner": NO_PROVISIONER})),
                obj("fast", json!({"provisioner": "csi.example.com"})),
            ],
            volumes: vec![
                obj(
                    "disk-1",
                    json!({"spec": {"storageClassName": "local",
                    "claimRef": {"namespace": "ns", "name": "data-db-0"}}}),
                ),
                obj("disk-2", json!({"spec": {"storageClassName": "local"}})),
                obj(
                    "pvc-123",
                    json!({"metadata": {"annotations": {PROVISIONED_BY: "kubernetes.io/host-path"}},
                    "spec": {"storageClassName": "standard", "claimRef": {"namespace": "ns", "name": "logs"}}}),
                ),
                obj(
                    "nfs",
                    json!({"spec": {"claimRef": {"namespace": "ns", "name": "shared"}}}),
                ),
                obj(
                    "elsewhere",
                    json!({"spec": {"storageClassName": "local",
                    "claimRef": {"namespace": "other", "name": "x"}}}),
                ),
            ],
            claims: vec![
                obj(
                    "data-db-0",
                    json!({"spec": {"storageClassName": "local", "volumeName": "disk-1"}}),
                ),
                obj(
                    "logs",
                    json!({"spec": {"storageClassName": "standard", "volumeName": "pvc-123"}}),
                ),
                obj(
                    "shared",
                    json!({"spec": {"storageClassName": "", "volumeName": "nfs"}}),
                ),
                obj(
                    "owned",
                    json!({"metadata": {"ownerReferences": [{"kind": "Widget", "name": "w"}]}}),
                ),
            ],
            statefulsets: vec![obj(
                "db",
                json!({"spec": {"serviceName": "db",
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "local"}}],
                "template": {"spec": {"volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]}}}}),
            )],
            deployments: vec![obj("web", json!({}))],
            daemonsets: vec![],
            services: vec![
                obj("db", json!({})),
                obj("kubernetes", json!({})),
                obj("web", json!({})),
            ],
        }
    }

    fn names(sel: &Selection) -> Vec<String> {
        sel.objects
            .iter()
            .map(|(k, v)| format!("{}/{}", k.short(), name_of(v)))
            .collect()
    }

    fn why<'a>(sel: &'a Selection, object: &str) -> &'a str {
        &sel.left_out
            .iter()
            .find(|l| l.object == object)
            .unwrap_or_else(|| panic!("{object} not left out: {:?}", sel.left_out))
            .why
    }

    #[test]
    fn the_whole_namespace() {
        let req = Request {
            namespace: "default".into(),
            ..Default::default()
        };
        let mut st = state();
        for pv in &mut st.volumes {
            if let Some(r) = pv.pointer_mut("/spec/claimRef/namespace")
                && r == "ns"
            {
                *r = json!("default");
            }
        }
        let sel = select(&st, &req).unwrap();
        assert_eq!(
            names(&sel),
            vec![
                "pv/disk-1",
                "pv/nfs",
                "pv/disk-2",
                "pvc/logs",
                "pvc/shared",
                "statefulset/db",
                "deployment/web"
            ]
        );
        assert_eq!(
            why(&sel, "pvc/data-db-0"),
            "a claim of statefulset/db's template \"data\""
        );
        assert_eq!(
            why(&sel, "pv/pvc-123"),
            "provisioned dynamically by kubernetes.io/host-path for pvc/logs"
        );
        assert_eq!(why(&sel, "pvc/owned"), "owned by widget/w");
        assert_eq!(
            why(&sel, "storageclass/local"),
            "pv/elsewhere outside this import has it too; name it (storageclass/local) to import it"
        );
        assert!(why(&sel, "storageclass/standard").starts_with("the cluster's default class"));
        assert_eq!(
            why(&sel, "service/kubernetes"),
            "the API server's own Service"
        );
        assert!(why(&sel, "service/db").starts_with("the headless Service of statefulset/db"));
        assert!(why(&sel, "service/web").contains("only as a StatefulSet's headless Service"));
    }

    #[test]
    fn named_objects_bring_what_they_need() {
        let req = Request {
            namespace: "ns".into(),
            named: vec![(Kind::StatefulSet, "db".into())],
            ..Default::default()
        };
        let sel = select(&state(), &req).unwrap();
        // The mounted claim and its volume, the template claim's volume; the class is shared
        // with a volume of another namespace.
        assert_eq!(
            names(&sel),
            vec!["pv/disk-1", "pv/nfs", "pvc/shared", "statefulset/db"]
        );
        assert_eq!(
            why(&sel, "storageclass/local"),
            "pv/disk-2 outside this import has it too; name it (storageclass/local) to import it"
        );
        let err = select(
            &state(),
            &Request {
                namespace: "ns".into(),
                named: vec![(Kind::Deployment, "nope".into())],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err, "deployment/nope not found in namespace ns");
    }

    #[test]
    fn a_selector_narrows_the_namespace() {
        let req = Request {
            namespace: "ns".into(),
            selected: Some(BTreeSet::from([(Kind::Deployment, "web".to_string())])),
            ..Default::default()
        };
        let sel = select(&state(), &req).unwrap();
        assert_eq!(names(&sel), vec!["deployment/web"]);
        assert!(sel.left_out.is_empty(), "{:?}", sel.left_out);
    }

    #[test]
    fn names_like_kubectl() {
        assert_eq!(
            parse_name("sts/db"),
            Ok((Kind::StatefulSet, "db".to_string()))
        );
        assert_eq!(
            parse_name("statefulsets.apps/db"),
            Ok((Kind::StatefulSet, "db".to_string()))
        );
        assert_eq!(
            parse_name("PVC/data"),
            Ok((Kind::PersistentVolumeClaim, "data".to_string()))
        );
        assert!(parse_name("db").unwrap_err().contains("TYPE/NAME"));
        assert!(
            parse_name("sa/default")
                .unwrap_err()
                .contains("does not describe sa objects")
        );
        assert!(parse_name("pod/x").unwrap_err().contains("import reads"));
    }
}
