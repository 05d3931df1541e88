//! Turns a validated spec into the Kubernetes objects it describes. Pure: no cluster access.
//!
//! The objects hold only the fields the spec sets (plus our labels), because server-side apply
//! makes the plugin own exactly the fields it sends; everything else stays the server's.

use crate::kinds::{Kind, MANAGED_BY, ObjectRef, STACK_LABEL};
use crate::spec::{self, AccessMode, PortSpec, Spec};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// One object the spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub id: ObjectRef,
    /// The full manifest (apiVersion, kind, metadata, spec).
    pub manifest: Value,
    /// Where it comes from in the spec, e.g. `claim[0]`.
    pub origin: String,
    /// For StatefulSets: the claim names its templates will create, `<template>-<name>-<ordinal>`.
    pub template_claims: Vec<String>,
    /// For Services generated for a StatefulSet: leave an existing Service we do not manage alone.
    pub only_if_absent: bool,
    /// The spec says `adopt = true`: an existing object without our labels may be taken over.
    pub adopt: bool,
    /// The spec says `protect = true`: never delete or replace it.
    pub protect: bool,
    /// The spec says `allow_replace = true` (claims and volumes): `--replace` may re-create it.
    pub allow_replace: bool,
}

/// Facts from the cluster that change the generated objects.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// Namespace for namespaced objects.
    pub namespace: String,
    /// Class of PersistentVolumes that exist in the cluster but not in the spec.
    pub cluster_volume_classes: BTreeMap<String, String>,
    /// Create the namespace (it does not exist yet).
    pub create_namespace: bool,
}

/// Every object of the spec, in rollout order (phase, then spec order).
pub fn desired_objects(spec: &Spec, ctx: &Context) -> Vec<DesiredObject> {
    let stack = spec.stack_name();
    let mut labels = spec.labels.clone();
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels.insert(STACK_LABEL.into(), stack.to_string());
    let b = Builder {
        ns: &ctx.namespace,
        labels,
    };
    let mut out = Vec::new();
    if ctx.create_namespace {
        out.push(b.object(
            Kind::Namespace,
            &ctx.namespace,
            "namespace",
            &BTreeMap::new(),
            Map::new(),
            None,
        ));
    }
    for (i, sc) in spec.storage_classes.iter().enumerate() {
        out.push(b.storage_class(sc.get_ref(), format!("storage_class[{i}]")));
    }
    for (i, v) in spec.volumes.iter().enumerate() {
        out.push(b.volume(v.get_ref(), format!("volume[{i}]")));
    }
    for (i, c) in spec.claims.iter().enumerate() {
        out.push(b.claim(spec, ctx, c.get_ref(), format!("claim[{i}]")));
    }
    for (i, s) in spec.snapshots.iter().enumerate() {
        out.push(b.snapshot(s.get_ref(), format!("snapshot[{i}]")));
    }
    for (i, s) in spec.statefulsets.iter().enumerate() {
        out.push(b.service(s.get_ref(), format!("statefulset[{i}]")));
    }
    for (i, s) in spec.statefulsets.iter().enumerate() {
        out.push(b.statefulset(s.get_ref(), format!("statefulset[{i}]")));
    }
    for (i, d) in spec.deployments.iter().enumerate() {
        out.push(b.deployment(d.get_ref(), format!("deployment[{i}]")));
    }
    for (i, d) in spec.daemonsets.iter().enumerate() {
        out.push(b.daemonset(d.get_ref(), format!("daemonset[{i}]")));
    }
    // Within the claims' phase: claims, then the snapshots of them, then the claims restored
    // from snapshots (the scheduler adds the dependencies between them).
    out.sort_by_key(|o| {
        let restored = o.manifest.pointer("/spec/dataSourceRef").is_some();
        let sub = match o.id.kind {
            Kind::VolumeSnapshot => 1,
            Kind::PersistentVolumeClaim if restored => 2,
            _ => 0,
        };
        (o.id.kind.phase(), sub)
    });
    out
}

/// The pod selector of a generated StatefulSet. It never changes with the stack, since a
/// StatefulSet's selector is immutable.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_string(), name.to_string())])
}

struct Builder<'a> {
    ns: &'a str,
    labels: BTreeMap<String, String>,
}

impl Builder<'_> {
    fn object(
        &self,
        kind: Kind,
        name: &str,
        origin: &str,
        own_labels: &BTreeMap<String, String>,
        mut body: Map<String, Value>,
        patch: Option<&toml::Table>,
    ) -> DesiredObject {
        let mut labels = self.labels.clone();
        labels.extend(own_labels.clone());
        let mut metadata = json!({ "name": name, "labels": labels });
        if kind.namespaced() {
            metadata["namespace"] = json!(self.ns);
        }
        let mut manifest = Map::new();
        manifest.insert("apiVersion".into(), json!(kind.api_version()));
        manifest.insert("kind".into(), json!(kind.as_str()));
        manifest.insert("metadata".into(), metadata);
        manifest.append(&mut body);
        let mut manifest = Value::Object(manifest);
        if let Some(patch) = patch {
            json_patch::merge(&mut manifest, &patch_json(patch));
        }
        DesiredObject {
            id: ObjectRef {
                kind,
                namespace: kind.namespaced().then(|| self.ns.to_string()),
                name: name.to_string(),
            },
            manifest,
            origin: origin.to_string(),
            template_claims: Vec::new(),
            only_if_absent: false,
            adopt: false,
            protect: false,
            allow_replace: false,
        }
    }

    fn storage_class(&self, sc: &spec::StorageClassSpec, origin: String) -> DesiredObject {
        let mut body = Map::new();
        body.insert("provisioner".into(), json!(sc.provisioner));
        if !sc.parameters.is_empty() {
            body.insert("parameters".into(), json!(sc.parameters));
        }
        if let Some(p) = sc.reclaim_policy {
            body.insert("reclaimPolicy".into(), json!(p));
        }
        if let Some(m) = sc.binding_mode {
            body.insert("volumeBindingMode".into(), json!(m));
        }
        if let Some(e) = sc.allow_volume_expansion {
            body.insert("allowVolumeExpansion".into(), json!(e));
        }
        if !sc.mount_options.is_empty() {
            body.insert("mountOptions".into(), json!(sc.mount_options));
        }
        let mut obj = self.object(
            Kind::StorageClass,
            sc.name.get_ref(),
            &origin,
            &sc.labels,
            body,
            None,
        );
        obj.adopt = sc.adopt;
        obj.protect = sc.protect;
        if sc.default {
            obj.manifest["metadata"]["annotations"] =
                json!({ "storageclass.kubernetes.io/is-default-class": "true" });
        }
        if let Some(patch) = &sc.patch {
            json_patch::merge(&mut obj.manifest, &patch_json(patch));
        }
        obj
    }

    fn volume(&self, v: &spec::VolumeSpec, origin: String) -> DesiredObject {
        let mut s = Map::new();
        s.insert(
            "capacity".into(),
            json!({ "storage": v.capacity.get_ref() }),
        );
        s.insert("accessModes".into(), modes(v.access_modes.get_ref()));
        if let Some(m) = v.volume_mode {
            s.insert("volumeMode".into(), json!(m));
        }
        if let Some(p) = v.reclaim_policy {
            s.insert("persistentVolumeReclaimPolicy".into(), json!(p));
        }
        s.insert(
            "storageClassName".into(),
            json!(v.class.as_ref().map_or("", |c| c.get_ref().as_str())),
        );
        if !v.mount_options.is_empty() {
            s.insert("mountOptions".into(), json!(v.mount_options));
        }
        if let Some(l) = &v.local {
            let mut local = json!({ "path": l.path });
            if let Some(fs) = &l.fs_type {
                local["fsType"] = json!(fs);
            }
            s.insert("local".into(), local);
        }
        if let Some(h) = &v.host_path {
            let mut hp = json!({ "path": h.path });
            if let Some(t) = &h.kind {
                hp["type"] = json!(t);
            }
            s.insert("hostPath".into(), hp);
        }
        if let Some(n) = &v.nfs {
            let mut nfs = json!({ "server": n.server, "path": n.path });
            if n.read_only {
                nfs["readOnly"] = json!(true);
            }
            s.insert("nfs".into(), nfs);
        }
        if let Some(c) = &v.csi {
            let mut csi = json!({ "driver": c.driver, "volumeHandle": c.volume_handle });
            if let Some(fs) = &c.fs_type {
                csi["fsType"] = json!(fs);
            }
            if c.read_only {
                csi["readOnly"] = json!(true);
            }
            if !c.attributes.is_empty() {
                csi["volumeAttributes"] = json!(c.attributes);
            }
            s.insert("csi".into(), csi);
        }
        if let Some(node) = &v.node {
            s.insert(
                "nodeAffinity".into(),
                json!({ "required": { "nodeSelectorTerms": [ { "matchExpressions": [
                    { "key": "kubernetes.io/hostname", "operator": "In", "values": [node.get_ref()] }
                ] } ] } }),
            );
        }
        let body = Map::from_iter([("spec".to_string(), Value::Object(s))]);
        let mut obj = self.object(
            Kind::PersistentVolume,
            v.name.get_ref(),
            &origin,
            &v.labels,
            body,
            v.patch.as_ref(),
        );
        obj.adopt = v.adopt;
        obj.protect = v.protect;
        obj.allow_replace = v.allow_replace;
        obj
    }

    fn claim(
        &self,
        spec: &Spec,
        ctx: &Context,
        c: &spec::ClaimSpec,
        origin: String,
    ) -> DesiredObject {
        let mut s = claim_spec(
            c.access_modes.get_ref(),
            c.size.get_ref(),
            c.volume_mode,
            &c.selector,
        );
        let class = match (&c.class, &c.volume) {
            (Some(class), _) => Some(class.get_ref().clone()),
            // A claim bound to a named volume takes that volume's class; the cluster's default
            // class would otherwise be filled in and the two would never bind.
            (None, Some(vol)) => Some(
                spec.volumes
                    .iter()
                    .find(|v| v.get_ref().name.get_ref() == vol.get_ref())
                    .map(|v| {
                        v.get_ref()
                            .class
                            .as_ref()
                            .map(|c| c.get_ref().clone())
                            .unwrap_or_default()
                    })
                    .or_else(|| ctx.cluster_volume_classes.get(vol.get_ref()).cloned())
                    .unwrap_or_default(),
            ),
            (None, None) => None,
        };
        if let Some(class) = class {
            s.insert("storageClassName".into(), json!(class));
        }
        if let Some(vol) = &c.volume {
            s.insert("volumeName".into(), json!(vol.get_ref()));
        }
        if let Some(snap) = &c.from_snapshot {
            s.insert(
                "dataSourceRef".into(),
                json!({ "apiGroup": crate::kinds::SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": snap.get_ref() }),
            );
        }
        let body = Map::from_iter([("spec".to_string(), Value::Object(s))]);
        let mut obj = self.object(
            Kind::PersistentVolumeClaim,
            c.name.get_ref(),
            &origin,
            &c.labels,
            body,
            c.patch.as_ref(),
        );
        obj.adopt = c.adopt;
        obj.protect = c.protect;
        obj.allow_replace = c.allow_replace;
        obj
    }

    fn service(&self, s: &spec::StatefulSetSpec, origin: String) -> DesiredObject {
        let name = service_name(s);
        let ports: Vec<Value> = container_ports(&s.ports)
            .iter()
            .map(|(name, port, proto)| {
                let mut p = json!({ "name": name, "port": port, "targetPort": port });
                if let Some(proto) = proto {
                    p["protocol"] = json!(proto);
                }
                p
            })
            .collect();
        let mut spec = json!({ "clusterIP": "None", "selector": pod_selector(s) });
        if !ports.is_empty() {
            spec["ports"] = json!(ports);
        }
        let body = Map::from_iter([("spec".to_string(), spec)]);
        let mut obj = self.object(Kind::Service, name, &origin, &s.labels, body, None);
        obj.origin = format!("{origin}.service");
        obj.only_if_absent = true;
        obj.adopt = s.adopt;
        obj.protect = s.protect;
        obj
    }

    /// The pod template of a workload: one container named after it, its env, ports, resources
    /// and mounts (standalone claims as volumes, plus `template_mounts` for claim templates),
    /// labelled with the stack's labels, the workload's own and its selector. Shared by every
    /// workload kind.
    fn pod_template(&self, w: &spec::WorkloadSpec, template_mounts: Vec<Value>) -> Value {
        let name = w.name.get_ref();
        let mut pod_labels = self.labels.clone();
        pod_labels.extend(w.labels.clone());
        pod_labels.extend(selector_labels(name));

        let mut container = json!({ "name": name, "image": w.image });
        if !w.command.is_empty() {
            container["command"] = json!(w.command);
        }
        if !w.args.is_empty() {
            container["args"] = json!(w.args);
        }
        if !w.env.is_empty() {
            container["env"] = json!(
                w.env
                    .iter()
                    .map(|(k, v)| env_var(k, v.get_ref()))
                    .collect::<Vec<_>>()
            );
        }
        if !w.env_from.is_empty() {
            container["envFrom"] = json!(
                w.env_from
                    .iter()
                    .map(|e| {
                        let e = e.get_ref();
                        let mut v = match (&e.secret, &e.config_map) {
                            (Some(name), _) => json!({ "secretRef": { "name": name } }),
                            (None, Some(name)) => json!({ "configMapRef": { "name": name } }),
                            (None, None) => json!({}),
                        };
                        if let Some(p) = &e.prefix {
                            v["prefix"] = json!(p);
                        }
                        v
                    })
                    .collect::<Vec<_>>()
            );
        }
        let ports = container_ports(&w.ports);
        if !ports.is_empty() {
            container["ports"] = json!(
                ports
                    .iter()
                    .map(|(name, port, proto)| {
                        let mut p = json!({ "name": name, "containerPort": port });
                        if let Some(proto) = proto {
                            p["protocol"] = json!(proto);
                        }
                        p
                    })
                    .collect::<Vec<_>>()
            );
        }
        let mut resources = Map::new();
        for (key, map) in [
            ("requests", &w.resources.requests),
            ("limits", &w.resources.limits),
        ] {
            if !map.is_empty() {
                let m: BTreeMap<&String, &String> =
                    map.iter().map(|(k, v)| (k, v.get_ref())).collect();
                resources.insert(key.into(), json!(m));
            }
        }
        if !resources.is_empty() {
            container["resources"] = Value::Object(resources);
        }
        let mut mounts = template_mounts;
        let mut volumes = Vec::new();
        for m in &w.mounts {
            let m = m.get_ref();
            let mut mount = json!({ "name": m.claim.get_ref(), "mountPath": m.path.get_ref() });
            if m.read_only {
                mount["readOnly"] = json!(true);
            }
            if let Some(sp) = &m.sub_path {
                mount["subPath"] = json!(sp);
            }
            mounts.push(mount);
            let mut pvc = json!({ "claimName": m.claim.get_ref() });
            if m.read_only {
                pvc["readOnly"] = json!(true);
            }
            volumes.push(json!({ "name": m.claim.get_ref(), "persistentVolumeClaim": pvc }));
        }
        if !mounts.is_empty() {
            container["volumeMounts"] = json!(mounts);
        }
        let mut pod_spec = json!({ "containers": [container] });
        if !volumes.is_empty() {
            pod_spec["volumes"] = json!(volumes);
        }
        if let Some(sel) = &w.node_selector {
            pod_spec["nodeSelector"] = json!(sel.get_ref());
        }
        json!({ "metadata": { "labels": pod_labels }, "spec": pod_spec })
    }

    fn statefulset(&self, s: &spec::StatefulSetSpec, origin: String) -> DesiredObject {
        let name = s.name.get_ref();
        let selector = selector_labels(name);
        let mut template_mounts = Vec::new();
        let mut templates = Vec::new();
        for t in &s.volume_claims {
            let t = t.get_ref();
            template_mounts
                .push(json!({ "name": t.name.get_ref(), "mountPath": t.mount.get_ref() }));
            let mut ts = claim_spec(
                t.access_modes.get_ref(),
                t.size.get_ref(),
                t.volume_mode,
                &t.selector,
            );
            if let Some(class) = &t.class {
                ts.insert("storageClassName".into(), json!(class.get_ref()));
            }
            let mut meta = json!({ "name": t.name.get_ref() });
            if !t.labels.is_empty() {
                meta["labels"] = json!(t.labels);
            }
            templates.push(json!({ "metadata": meta, "spec": ts }));
        }
        let template = self.pod_template(s, template_mounts);
        let mut spec = json!({
            "replicas": s.replicas(),
            "serviceName": service_name(s),
            "selector": { "matchLabels": selector },
            "template": template,
        });
        if let Some(p) = s.pod_management_policy {
            spec["podManagementPolicy"] = json!(p);
        }
        if let Some(u) = &s.update_strategy {
            let mut us = json!({ "type": u.kind });
            if u.partition.is_some() || u.max_unavailable.is_some() {
                let mut ru = Map::new();
                if let Some(p) = u.partition {
                    ru.insert("partition".into(), json!(p));
                }
                if let Some(m) = &u.max_unavailable {
                    ru.insert("maxUnavailable".into(), json!(m));
                }
                us["rollingUpdate"] = Value::Object(ru);
            }
            spec["updateStrategy"] = us;
        }
        if let Some(r) = &s.retention {
            let mut rp = Map::new();
            if let Some(d) = r.when_deleted {
                rp.insert("whenDeleted".into(), json!(d));
            }
            if let Some(sc) = r.when_scaled {
                rp.insert("whenScaled".into(), json!(sc));
            }
            spec["persistentVolumeClaimRetentionPolicy"] = Value::Object(rp);
        }
        if let Some(m) = s.min_ready_seconds {
            spec["minReadySeconds"] = json!(m);
        }
        if !templates.is_empty() {
            spec["volumeClaimTemplates"] = json!(templates);
        }
        let body = Map::from_iter([("spec".to_string(), spec)]);
        let mut obj = self.object(
            Kind::StatefulSet,
            name,
            &origin,
            &s.labels,
            body,
            s.patch.as_ref(),
        );
        obj.adopt = s.adopt;
        obj.protect = s.protect;
        own_pod_identity(&mut obj.manifest, s.patch.as_ref());
        let replicas = obj.manifest["spec"]["replicas"]
            .as_i64()
            .unwrap_or(1)
            .max(0);
        obj.template_claims = s
            .volume_claims
            .iter()
            .flat_map(|t| {
                (0..replicas).map(move |i| format!("{}-{name}-{i}", t.get_ref().name.get_ref()))
            })
            .collect();
        obj
    }
    fn snapshot(&self, s: &spec::SnapshotSpec, origin: String) -> DesiredObject {
        let mut spec = json!({ "source": { "persistentVolumeClaimName": s.claim.get_ref() } });
        if let Some(class) = &s.class {
            spec["volumeSnapshotClassName"] = json!(class.get_ref());
        }
        let body = Map::from_iter([("spec".to_string(), spec)]);
        let mut obj = self.object(
            Kind::VolumeSnapshot,
            s.name.get_ref(),
            &origin,
            &s.labels,
            body,
            s.patch.as_ref(),
        );
        obj.adopt = s.adopt;
        obj.protect = s.protect;
        obj
    }

    fn deployment(&self, d: &spec::WorkloadSpec, origin: String) -> DesiredObject {
        let name = d.name.get_ref();
        let mut spec = json!({
            "replicas": d.replicas(),
            "selector": { "matchLabels": selector_labels(name) },
            "template": self.pod_template(d, Vec::new()),
        });
        if let Some(st) = &d.strategy {
            let st = st.get_ref();
            let mut strategy = json!({ "type": st.kind });
            let mut ru = Map::new();
            if let Some(m) = &st.max_unavailable {
                ru.insert("maxUnavailable".into(), json!(m));
            }
            if let Some(m) = &st.max_surge {
                ru.insert("maxSurge".into(), json!(m));
            }
            if !ru.is_empty() {
                strategy["rollingUpdate"] = Value::Object(ru);
            }
            spec["strategy"] = strategy;
        }
        if let Some(m) = d.min_ready_seconds {
            spec["minReadySeconds"] = json!(m);
        }
        let body = Map::from_iter([("spec".to_string(), spec)]);
        let mut obj = self.object(
            Kind::Deployment,
            name,
            &origin,
            &d.labels,
            body,
            d.patch.as_ref(),
        );
        obj.adopt = d.adopt;
        obj.protect = d.protect;
        own_pod_identity(&mut obj.manifest, d.patch.as_ref());
        obj
    }

    fn daemonset(&self, d: &spec::WorkloadSpec, origin: String) -> DesiredObject {
        let name = d.name.get_ref();
        let mut spec = json!({
            "selector": { "matchLabels": selector_labels(name) },
            "template": self.pod_template(d, Vec::new()),
        });
        if let Some(u) = &d.update_strategy {
            let mut us = json!({ "type": u.kind });
            if let Some(m) = &u.max_unavailable {
                us["rollingUpdate"] = json!({ "maxUnavailable": m });
            }
            spec["updateStrategy"] = us;
        }
        if let Some(m) = d.min_ready_seconds {
            spec["minReadySeconds"] = json!(m);
        }
        let body = Map::from_iter([("spec".to_string(), spec)]);
        let mut obj = self.object(
            Kind::DaemonSet,
            name,
            &origin,
            &d.labels,
            body,
            d.patch.as_ref(),
        );
        obj.adopt = d.adopt;
        obj.protect = d.protect;
        own_pod_identity(&mut obj.manifest, d.patch.as_ref());
        obj
    }
}

/// Paths of a workload's `patch` that replace the generated value instead of being merged into
/// it: the selector (immutable, so an adopted workload must keep its own) and the pods' labels
/// (new labels change the pod template and restart every pod). A merge patch cannot remove
/// keys, and TOML has no null to say so.
pub const REPLACING_PATCH_PATHS: [&str; 2] = ["/spec/selector", "/spec/template/metadata/labels"];

/// Applies the [`REPLACING_PATCH_PATHS`] of `patch` to a workload manifest.
fn own_pod_identity(manifest: &mut Value, patch: Option<&toml::Table>) {
    let Some(patch) = patch else { return };
    let patch = serde_json::to_value(patch).expect("TOML tables are JSON");
    for pointer in REPLACING_PATCH_PATHS {
        if let (Some(given), Some(slot)) = (patch.pointer(pointer), manifest.pointer_mut(pointer)) {
            *slot = given.clone();
        }
    }
}

/// The labels a workload's pods are selected by: `app.kubernetes.io/name: <name>`, or the
/// `matchLabels` of a selector its `patch` gives.
pub fn pod_selector(w: &spec::WorkloadSpec) -> Value {
    w.patch
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|p| p.pointer("/spec/selector/matchLabels").cloned())
        .unwrap_or_else(|| json!(selector_labels(w.name.get_ref())))
}

/// One container environment variable: a value, or a reference to a Secret's or ConfigMap's key.
fn env_var(name: &str, value: &spec::EnvValue) -> Value {
    match value {
        spec::EnvValue::Plain(v) => json!({ "name": name, "value": v }),
        spec::EnvValue::Ref(r) => {
            let (source, object) = match (&r.secret, &r.config_map) {
                (Some(s), _) => ("secretKeyRef", s),
                (None, Some(c)) => ("configMapKeyRef", c),
                (None, None) => ("secretKeyRef", &String::new()),
            };
            let mut key_ref = json!({ "name": object, "key": r.key });
            if r.optional {
                key_ref["optional"] = json!(true);
            }
            json!({ "name": name, "valueFrom": { source: key_ref } })
        }
    }
}

/// A `patch` table as JSON. TOML has datetimes, JSON does not: a datetime becomes its RFC 3339
/// text (which is what every Kubernetes time field holds). Floats JSON cannot carry (nan, inf)
/// are refused by validation; here they would become null.
pub fn patch_json(patch: &toml::Table) -> Value {
    fn convert(v: &toml::Value) -> Value {
        match v {
            toml::Value::String(s) => json!(s),
            toml::Value::Integer(i) => json!(i),
            toml::Value::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            toml::Value::Boolean(b) => json!(b),
            toml::Value::Datetime(d) => json!(d.to_string()),
            toml::Value::Array(a) => Value::Array(a.iter().map(convert).collect()),
            toml::Value::Table(t) => {
                Value::Object(t.iter().map(|(k, v)| (k.clone(), convert(v))).collect())
            }
        }
    }
    Value::Object(patch.iter().map(|(k, v)| (k.clone(), convert(v))).collect())
}

fn modes(m: &[AccessMode]) -> Value {
    json!(m.iter().map(|m| m.as_str()).collect::<Vec<_>>())
}

fn claim_spec(
    access: &[AccessMode],
    size: &str,
    mode: Option<spec::VolumeMode>,
    selector: &BTreeMap<String, String>,
) -> Map<String, Value> {
    let mut s = Map::new();
    s.insert("accessModes".into(), modes(access));
    s.insert(
        "resources".into(),
        json!({ "requests": { "storage": size } }),
    );
    if let Some(m) = mode {
        s.insert("volumeMode".into(), json!(m));
    }
    if !selector.is_empty() {
        s.insert("selector".into(), json!({ "matchLabels": selector }));
    }
    s
}

/// The standalone claims a workload manifest mounts (`spec.template.spec.volumes[].persistentVolumeClaim`).
pub fn mounted_claims(manifest: &Value) -> Vec<String> {
    manifest
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .map(|vols| {
            vols.iter()
                .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The governing Service's name of a StatefulSet.
pub fn service_name(s: &spec::StatefulSetSpec) -> &str {
    s.service.as_ref().map_or(s.name.get_ref(), |s| s.get_ref())
}

fn container_ports(ports: &[PortSpec]) -> Vec<(String, i32, Option<String>)> {
    ports
        .iter()
        .map(|p| match p {
            PortSpec::Number(n) => (format!("port-{n}"), *n, None),
            PortSpec::Full(f) => (
                f.name.clone().unwrap_or_else(|| format!("port-{}", f.port)),
                f.port,
                f.protocol.clone(),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(example: &str) -> Vec<DesiredObject> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("examples/{example}.toml"));
        let spec = spec::load_file(&path).unwrap();
        desired_objects(
            &spec,
            &Context {
                namespace: "demo".into(),
                ..Default::default()
            },
        )
    }

    fn yaml(objs: &[DesiredObject]) -> String {
        objs.iter()
            .map(|o| serde_yaml::to_string(&o.manifest).unwrap())
            .collect::<Vec<_>>()
            .join("---\n")
    }

    #[test]
    fn postgres_example_objects() {
        let objs = objects("postgres");
        let ids: Vec<String> = objs.iter().map(|o| o.id.short()).collect();
        assert_eq!(ids, vec!["service/postgres", "statefulset/postgres"]);
        assert_eq!(
            objs[1].template_claims,
            vec!["data-postgres-0", "data-postgres-1", "data-postgres-2"]
        );
        assert!(objs[0].only_if_absent);
        insta::assert_snapshot!(yaml(&objs));
    }

    #[test]
    fn local_pv_example_objects_in_rollout_order() {
        let objs = objects("local-pv");
        let ids: Vec<String> = objs.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(
            ids,
            vec![
                "storageclass/local-storage",
                "pv/local-pv-node-1",
                "pv/local-pv-node-2",
                "pv/local-pv-node-3",
                "service/kafka (namespace demo)",
                "statefulset/kafka (namespace demo)",
            ]
        );
        insta::assert_snapshot!(yaml(&objs[1..2]));
    }

    #[test]
    fn claim_bound_to_a_volume_takes_its_class() {
        let objs = objects("shared-claim");
        let claim = objs
            .iter()
            .find(|o| o.id.kind == Kind::PersistentVolumeClaim)
            .unwrap();
        assert_eq!(claim.manifest["spec"]["storageClassName"], "");
        assert_eq!(claim.manifest["spec"]["volumeName"], "media-nfs");
        let sts = objs
            .iter()
            .find(|o| o.id.kind == Kind::StatefulSet)
            .unwrap();
        assert_eq!(sts.manifest["spec"]["serviceName"], "thumbnailer-headless");
        assert_eq!(
            sts.manifest["spec"]["template"]["spec"]["volumes"][0],
            json!({"name": "media", "persistentVolumeClaim": {"claimName": "media"}})
        );
    }

    #[test]
    fn every_object_carries_managed_by_and_stack_labels() {
        for ex in ["local-pv", "postgres", "shared-claim"] {
            for o in objects(ex) {
                let labels = &o.manifest["metadata"]["labels"];
                assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1, "{}", o.id);
                assert!(labels[STACK_LABEL].is_string(), "{}", o.id);
            }
        }
    }

    #[test]
    fn patch_is_merged_into_the_generated_object() {
        let objs = objects("postgres");
        assert_eq!(
            objs[1].manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            60
        );
        assert_eq!(
            objs[1].manifest["spec"]["template"]["spec"]["containers"][0]["image"],
            "postgres:17"
        );
    }

    #[test]
    fn datetimes_in_a_patch_become_rfc3339_text() {
        let patch: toml::Table = toml::from_str(
            "[metadata.annotations]\nat = 2024-05-01T10:00:00Z\nday = 2024-05-01\nn = 1.5\n",
        )
        .unwrap();
        assert_eq!(
            patch_json(&patch),
            json!({"metadata": {"annotations": {"at": "2024-05-01T10:00:00Z", "day": "2024-05-01", "n": 1.5}}})
        );
    }

    #[test]
    fn a_patch_gives_the_selector_and_pod_labels_outright() {
        let text = r#"
[[statefulset]]
name = "db"
image = "postgres:17"
labels = { team = "data" }
[statefulset.patch.spec.selector.matchLabels]
app = "db"
[statefulset.patch.spec.template.metadata.labels]
app = "db"
tier = "backend"
"#;
        let spec = spec::load("s.toml", text, "s").unwrap();
        let objs = desired_objects(
            &spec,
            &Context {
                namespace: "demo".into(),
                ..Default::default()
            },
        );
        let sts = &objs[1].manifest;
        assert_eq!(
            sts["spec"]["selector"],
            json!({"matchLabels": {"app": "db"}})
        );
        assert_eq!(
            sts["spec"]["template"]["metadata"]["labels"],
            json!({"app": "db", "tier": "backend"}),
            "no stack labels, no generated selector label: the pods keep their labels"
        );
        assert_eq!(sts["metadata"]["labels"]["team"], "data");
        assert_eq!(sts["metadata"]["labels"][STACK_LABEL], "s");
        assert_eq!(objs[0].manifest["spec"]["selector"], json!({"app": "db"}));
    }

    #[test]
    fn env_keeps_the_order_of_the_file() {
        let text = "[[deployment]]\nname = \"w\"\nimage = \"i\"\nenv = { ZED = \"1\", ALPHA = \"$(ZED)\" }\n";
        let spec = spec::load("s.toml", text, "s").unwrap();
        let objs = desired_objects(&spec, &Context::default());
        let env = &objs[0].manifest["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "ZED");
        assert_eq!(env[1]["name"], "ALPHA");
    }

    #[test]
    fn missing_namespace_is_created_first() {
        let path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/postgres.toml");
        let spec = spec::load_file(&path).unwrap();
        let objs = desired_objects(
            &spec,
            &Context {
                namespace: "fresh".into(),
                create_namespace: true,
                ..Default::default()
            },
        );
        assert_eq!(objs[0].id.to_string(), "namespace/fresh");
        assert_eq!(objs[0].manifest["metadata"].get("namespace"), None);
    }
}
