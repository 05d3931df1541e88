//! Live object → the keys of its spec table. Pure. A key is written only when its value can be
//! given exactly as the live object holds it; everything else is left to the patch that
//! [`super::residue`] computes. Values equal to the spec's (or the server's) defaults are left
//! out.

use crate::kinds::{Kind, MANAGED_BY, STACK_LABEL};
use serde_json::{Map, Value, json};
use toml::Table;

/// The spec table of one object, before the residue patch.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// The keys, in the order they are written.
    pub table: Table,
    /// Patch entries that must be there whatever the server says: a workload's own selector
    /// and pod labels (they replace the generated ones), node affinity that is not a plain
    /// hostname.
    pub patch: Value,
    /// Remarks for the comment above the table.
    pub notes: Vec<String>,
}

/// Why an object cannot be described by the spec at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// JSON → TOML; `None` for null (TOML has none), nulls dropped inside tables and arrays.
pub fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(m) => toml::Value::Table(
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

fn s(v: &str) -> toml::Value {
    toml::Value::String(v.to_string())
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The object's labels without this plugin's own (the spec adds those).
pub fn own_labels(obj: &Value, pointer: &str) -> Map<String, Value> {
    let mut labels = obj
        .pointer(pointer)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.remove(MANAGED_BY.0);
    labels.remove(STACK_LABEL);
    labels
}

fn put_labels(t: &mut Table, labels: &Map<String, Value>) {
    if !labels.is_empty() {
        t.insert(
            "labels".into(),
            to_toml(&Value::Object(labels.clone())).expect("labels"),
        );
    }
}

/// `["ReadWriteOnce"]` is the spec's default.
fn put_access_modes(t: &mut Table, modes: Option<&Value>) {
    if let Some(modes) = modes.and_then(Value::as_array)
        && modes != &vec![json!("ReadWriteOnce")]
        && let Some(v) = to_toml(&Value::Array(modes.clone()))
    {
        t.insert("access_modes".into(), v);
    }
}

fn put_str(t: &mut Table, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        t.insert(key.into(), s(v));
    }
}

/// Sets `value` at the JSON pointer `pointer` of `patch`, creating objects on the way.
pub fn set_at(patch: &mut Value, pointer: &str, value: Value) {
    let mut cur = patch;
    for part in pointer.trim_start_matches('/').split('/') {
        let part = part.replace("~1", "/").replace("~0", "~");
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(part)
            .or_insert(Value::Null);
    }
    *cur = value;
}

/// `[[storage_class]]`.
pub fn storage_class(live: &Value) -> Extracted {
    let mut t = Table::new();
    put_str(&mut t, "name", str_of(live, "/metadata/name"));
    put_str(&mut t, "provisioner", str_of(live, "/provisioner"));
    if let Some(p) = live
        .get("parameters")
        .filter(|p| p.as_object().is_some_and(|m| !m.is_empty()))
        && let Some(v) = to_toml(p)
    {
        t.insert("parameters".into(), v);
    }
    if let Some(p) = str_of(live, "/reclaimPolicy").filter(|p| *p != "Delete") {
        t.insert("reclaim_policy".into(), s(p));
    }
    if let Some(m) = str_of(live, "/volumeBindingMode").filter(|m| *m != "Immediate") {
        t.insert("binding_mode".into(), s(m));
    }
    if let Some(e) = live.get("allowVolumeExpansion").and_then(Value::as_bool) {
        t.insert("allow_volume_expansion".into(), toml::Value::Boolean(e));
    }
    if let Some(o) = live
        .get("mountOptions")
        .filter(|o| o.as_array().is_some_and(|a| !a.is_empty()))
        && let Some(v) = to_toml(o)
    {
        t.insert("mount_options".into(), v);
    }
    if str_of(
        live,
        "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
    ) == Some("true")
    {
        t.insert("default".into(), toml::Value::Boolean(true));
    }
    put_labels(&mut t, &own_labels(live, "/metadata/labels"));
    Extracted {
        table: t,
        ..Default::default()
    }
}

/// `[[volume]]`: a PersistentVolume with one of the sources the spec knows.
pub fn volume(live: &Value) -> Result<Extracted, Unsupported> {
    let spec = &live["spec"];
    let mut t = Table::new();
    let mut patch = json!({});
    put_str(&mut t, "name", str_of(live, "/metadata/name"));
    let capacity = str_of(spec, "/capacity/storage")
        .ok_or_else(|| Unsupported("it has no capacity".into()))?;
    t.insert("capacity".into(), s(capacity));
    put_access_modes(&mut t, spec.get("accessModes"));
    if let Some(m) = str_of(spec, "/volumeMode").filter(|m| *m != "Filesystem") {
        t.insert("volume_mode".into(), s(m));
    }
    if let Some(p) = str_of(spec, "/persistentVolumeReclaimPolicy").filter(|p| *p != "Retain") {
        t.insert("reclaim_policy".into(), s(p));
    }
    if let Some(c) = str_of(spec, "/storageClassName").filter(|c| !c.is_empty()) {
        t.insert("class".into(), s(c));
    }
    match spec.get("nodeAffinity") {
        None => {}
        Some(affinity) => match hostname_only(affinity) {
            Some(node) => {
                t.insert("node".into(), s(node));
            }
            None => set_at(&mut patch, "/spec/nodeAffinity", affinity.clone()),
        },
    }
    if let Some(o) = spec
        .get("mountOptions")
        .filter(|o| o.as_array().is_some_and(|a| !a.is_empty()))
        && let Some(v) = to_toml(o)
    {
        t.insert("mount_options".into(), v);
    }
    let mut source = Table::new();
    let key = if let Some(l) = spec.get("local") {
        put_str(&mut source, "path", str_of(l, "/path"));
        put_str(&mut source, "fs_type", str_of(l, "/fsType"));
        "local"
    } else if let Some(h) = spec.get("hostPath") {
        put_str(&mut source, "path", str_of(h, "/path"));
        put_str(
            &mut source,
            "type",
            str_of(h, "/type").filter(|t| !t.is_empty()),
        );
        "host_path"
    } else if let Some(n) = spec.get("nfs") {
        put_str(&mut source, "server", str_of(n, "/server"));
        put_str(&mut source, "path", str_of(n, "/path"));
        if n.get("readOnly").and_then(Value::as_bool) == Some(true) {
            source.insert("read_only".into(), toml::Value::Boolean(true));
        }
        "nfs"
    } else if let Some(c) = spec.get("csi") {
        put_str(&mut source, "driver", str_of(c, "/driver"));
        put_str(&mut source, "volume_handle", str_of(c, "/volumeHandle"));
        put_str(&mut source, "fs_type", str_of(c, "/fsType"));
        if c.get("readOnly").and_then(Value::as_bool) == Some(true) {
            source.insert("read_only".into(), toml::Value::Boolean(true));
        }
        if let Some(a) = c
            .get("volumeAttributes")
            .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
            && let Some(v) = to_toml(a)
        {
            source.insert("attributes".into(), v);
        }
        "csi"
    } else {
        let found = spec
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| {
                        ![
                            "capacity",
                            "accessModes",
                            "volumeMode",
                            "persistentVolumeReclaimPolicy",
                            "storageClassName",
                            "nodeAffinity",
                            "mountOptions",
                            "claimRef",
                        ]
                        .contains(&k.as_str())
                    })
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        return Err(Unsupported(format!(
            "its source ({found}) is not one the spec describes (local, host_path, nfs, csi)"
        )));
    };
    t.insert(key.into(), toml::Value::Table(source));
    put_labels(&mut t, &own_labels(live, "/metadata/labels"));
    Ok(Extracted {
        table: t,
        patch,
        notes: Vec::new(),
    })
}

/// The node of `required: {nodeSelectorTerms: [{matchExpressions: [hostname In [node]]}]}`,
/// the shape the spec's `node` key generates.
fn hostname_only(affinity: &Value) -> Option<&str> {
    let obj = affinity.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let required = obj.get("required")?.as_object()?;
    if required.len() != 1 {
        return None;
    }
    let terms = required.get("nodeSelectorTerms")?.as_array()?;
    let [term] = terms.as_slice() else {
        return None;
    };
    let term = term.as_object()?;
    if term.len() != 1 {
        return None;
    }
    let [expr] = term.get("matchExpressions")?.as_array()?.as_slice() else {
        return None;
    };
    let expr = expr.as_object()?;
    let [node] = expr.get("values")?.as_array()?.as_slice() else {
        return None;
    };
    (expr.len() == 3
        && expr.get("key")? == "kubernetes.io/hostname"
        && expr.get("operator")? == "In")
        .then(|| node.as_str())
        .flatten()
}

/// `[[claim]]`. `volume`: the static volume it is bound to (written as `volume`, so that the
/// claim keeps binding to it) with that volume's class; `default_class`: the cluster's default
/// StorageClass (a claim of that class needs no `class` key).
pub fn claim(live: &Value, volume: Option<(&str, &str)>, default_class: Option<&str>) -> Extracted {
    let spec = &live["spec"];
    let mut t = Table::new();
    put_str(&mut t, "name", str_of(live, "/metadata/name"));
    put_str(&mut t, "size", str_of(spec, "/resources/requests/storage"));
    put_access_modes(&mut t, spec.get("accessModes"));
    let class = str_of(spec, "/storageClassName");
    let implied = match volume {
        Some((_, volume_class)) => Some(volume_class),
        None => default_class,
    };
    if let Some(class) = class
        && Some(class) != implied
    {
        t.insert("class".into(), s(class));
    }
    if let Some((name, _)) = volume {
        t.insert("volume".into(), s(name));
    }
    if let Some(sel) = spec.get("selector")
        && let Some(labels) = match_labels_only(sel)
    {
        t.insert("selector".into(), labels);
    }
    if let Some(m) = str_of(spec, "/volumeMode").filter(|m| *m != "Filesystem") {
        t.insert("volume_mode".into(), s(m));
    }
    put_labels(&mut t, &own_labels(live, "/metadata/labels"));
    Extracted {
        table: t,
        ..Default::default()
    }
}

/// A selector that has only `matchLabels`, as a TOML table.
fn match_labels_only(sel: &Value) -> Option<toml::Value> {
    let obj = sel.as_object()?;
    if obj.keys().any(|k| k != "matchLabels") {
        return None;
    }
    to_toml(obj.get("matchLabels")?).filter(|v| v.as_table().is_some_and(|t| !t.is_empty()))
}

/// `[[statefulset]]`, `[[deployment]]`, `[[daemonset]]`.
pub fn workload(kind: Kind, live: &Value) -> Extracted {
    let name = str_of(live, "/metadata/name").unwrap_or_default();
    let spec = &live["spec"];
    let pod = &spec["template"]["spec"];
    let mut t = Table::new();
    let mut patch = json!({});
    let mut notes = Vec::new();
    t.insert("name".into(), s(name));
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    let main = containers
        .iter()
        .find(|c| c["name"] == name)
        .or(containers.first())
        .cloned()
        .unwrap_or(Value::Null);
    if main["name"] != name || containers.len() > 1 {
        notes.push(format!(
            "its containers are given whole in patch: the spec's keys describe one container named {name:?}"
        ));
    }
    t.insert(
        "image".into(),
        s(main["image"].as_str().unwrap_or_default()),
    );
    if kind != Kind::DaemonSet
        && let Some(r) = spec.get("replicas").and_then(Value::as_i64)
        && r != 1
    {
        t.insert("replicas".into(), toml::Value::Integer(r));
    }
    for key in ["command", "args"] {
        if let Some(list) = main
            .get(key)
            .filter(|l| l.as_array().is_some_and(|a| !a.is_empty()))
            && let Some(v) = to_toml(list)
        {
            t.insert(key.into(), v);
        }
    }
    if let Some(env) = main.get("env").and_then(Value::as_array)
        && let Some(v) = env_table(env)
    {
        t.insert("env".into(), v);
    }
    if let Some(from) = main.get("envFrom").and_then(Value::as_array)
        && let Some(v) = env_from(from)
    {
        t.insert("env_from".into(), v);
    }
    if let Some(ports) = main.get("ports").and_then(Value::as_array)
        && let Some(v) = ports_of(ports)
    {
        t.insert("ports".into(), v);
    }
    if let Some(r) = main.get("resources").and_then(resources_of) {
        t.insert("resources".into(), r);
    }
    if kind == Kind::StatefulSet {
        if let Some(svc) = str_of(spec, "/serviceName").filter(|s| *s != name && !s.is_empty()) {
            t.insert("service".into(), s(svc));
        }
        if let Some(p) = str_of(spec, "/podManagementPolicy").filter(|p| *p != "OrderedReady") {
            t.insert("pod_management_policy".into(), s(p));
        }
        if let Some(u) = spec.get("updateStrategy").and_then(sts_update_strategy) {
            t.insert("update_strategy".into(), u);
        }
        if let Some(r) = spec
            .get("persistentVolumeClaimRetentionPolicy")
            .and_then(retention)
        {
            t.insert("retention".into(), r);
        }
    }
    if kind == Kind::Deployment
        && let Some(st) = spec.get("strategy").and_then(deployment_strategy)
    {
        t.insert("strategy".into(), st);
    }
    if kind == Kind::DaemonSet {
        if let Some(u) = spec.get("updateStrategy").and_then(ds_update_strategy) {
            t.insert("update_strategy".into(), u);
        }
        if let Some(sel) = pod
            .get("nodeSelector")
            .filter(|n| n.as_object().is_some_and(|m| !m.is_empty()))
            && let Some(v) = to_toml(sel)
        {
            t.insert("node_selector".into(), v);
        }
    }
    if let Some(m) = spec.get("minReadySeconds").and_then(Value::as_i64)
        && m != 0
    {
        t.insert("min_ready_seconds".into(), toml::Value::Integer(m));
    }
    put_labels(&mut t, &own_labels(live, "/metadata/labels"));
    let mounts = main
        .get("volumeMounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if kind == Kind::StatefulSet {
        let templates: Vec<toml::Value> = spec
            .get("volumeClaimTemplates")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .map(|tpl| toml::Value::Table(claim_template(tpl, &mounts)))
                    .collect()
            })
            .unwrap_or_default();
        if !templates.is_empty() {
            t.insert("volume_claim".into(), toml::Value::Array(templates));
        }
    }
    let claim_mounts = claim_mounts(pod, &mounts);
    if !claim_mounts.is_empty() {
        t.insert("mount".into(), toml::Value::Array(claim_mounts));
    }
    // The pods keep their labels, and the workload its selector: both replace the generated
    // ones (see desired::REPLACING_PATCH_PATHS), so adopting the workload restarts no pod.
    let generated = json!({"matchLabels": crate::desired::selector_labels(name)});
    if let Some(sel) = spec.get("selector")
        && sel != &generated
    {
        set_at(&mut patch, "/spec/selector", sel.clone());
    }
    let pod_labels = spec
        .pointer("/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    set_at(&mut patch, "/spec/template/metadata/labels", pod_labels);
    Extracted {
        table: t,
        patch,
        notes,
    }
}

/// `env` as an ordered table, when every variable is a value or a Secret/ConfigMap key.
fn env_table(env: &[Value]) -> Option<toml::Value> {
    let mut out = Table::new();
    for e in env {
        let obj = e.as_object()?;
        let name = obj.get("name")?.as_str()?;
        let value = match (obj.get("value"), obj.get("valueFrom")) {
            (Some(Value::String(v)), None) if !v.is_empty() && obj.len() == 2 => s(v),
            (None, Some(from)) if obj.len() == 2 => {
                let from = from.as_object()?;
                if from.len() != 1 {
                    return None;
                }
                let (source, r) = from.iter().next()?;
                let key = match source.as_str() {
                    "secretKeyRef" => "secret",
                    "configMapKeyRef" => "config_map",
                    _ => return None,
                };
                let r = r.as_object()?;
                if r.keys()
                    .any(|k| !["name", "key", "optional"].contains(&k.as_str()))
                {
                    return None;
                }
                let mut t = Table::new();
                t.insert(key.into(), s(r.get("name")?.as_str()?));
                t.insert("key".into(), s(r.get("key")?.as_str()?));
                if r.get("optional").and_then(Value::as_bool) == Some(true) {
                    t.insert("optional".into(), toml::Value::Boolean(true));
                }
                toml::Value::Table(t)
            }
            _ => return None,
        };
        if out.insert(name.to_string(), value).is_some() {
            return None;
        }
    }
    (!out.is_empty()).then_some(toml::Value::Table(out))
}

/// `env_from`, when every entry is a whole Secret or ConfigMap (with an optional prefix).
fn env_from(list: &[Value]) -> Option<toml::Value> {
    let mut out = Vec::new();
    for e in list {
        let obj = e.as_object()?;
        let mut t = Table::new();
        for (k, v) in obj {
            match k.as_str() {
                "secretRef" | "configMapRef" => {
                    let r = v.as_object()?;
                    if r.len() != 1 {
                        return None;
                    }
                    let key = if k == "secretRef" {
                        "secret"
                    } else {
                        "config_map"
                    };
                    t.insert(key.into(), s(r.get("name")?.as_str()?));
                }
                "prefix" => {
                    t.insert("prefix".into(), s(v.as_str()?));
                }
                _ => return None,
            }
        }
        out.push(toml::Value::Table(t));
    }
    (!out.is_empty()).then_some(toml::Value::Array(out))
}

/// `ports`: `5432` for a port named `port-5432`, else `{ name, port, protocol }`.
fn ports_of(ports: &[Value]) -> Option<toml::Value> {
    let mut out = Vec::new();
    for p in ports {
        let obj = p.as_object()?;
        if obj
            .keys()
            .any(|k| !["name", "containerPort", "protocol"].contains(&k.as_str()))
        {
            return None;
        }
        let port = obj.get("containerPort")?.as_i64()?;
        let name = obj.get("name")?.as_str()?;
        let protocol = obj
            .get("protocol")
            .and_then(Value::as_str)
            .filter(|p| *p != "TCP");
        if name == format!("port-{port}") && protocol.is_none() {
            out.push(toml::Value::Integer(port));
        } else {
            let mut t = Table::new();
            t.insert("name".into(), s(name));
            t.insert("port".into(), toml::Value::Integer(port));
            if let Some(p) = protocol {
                t.insert("protocol".into(), s(p));
            }
            out.push(toml::Value::Table(t));
        }
    }
    (!out.is_empty()).then_some(toml::Value::Array(out))
}

/// `resources`: requests and limits of plain quantities.
fn resources_of(r: &Value) -> Option<toml::Value> {
    let obj = r.as_object()?;
    if obj.is_empty() || obj.keys().any(|k| k != "requests" && k != "limits") {
        return None;
    }
    let mut t = Table::new();
    for (k, v) in obj {
        let m = v.as_object()?;
        if m.values().any(|q| !q.is_string()) {
            return None;
        }
        if !m.is_empty() {
            t.insert(k.clone(), to_toml(v)?);
        }
    }
    (!t.is_empty()).then_some(toml::Value::Table(t))
}

/// A StatefulSet's `update_strategy`, unless it is the default (RollingUpdate, partition 0).
fn sts_update_strategy(u: &Value) -> Option<toml::Value> {
    let kind = u.get("type")?.as_str()?;
    let mut t = Table::new();
    t.insert("type".into(), s(kind));
    if kind == "RollingUpdate" {
        let ru = u.get("rollingUpdate").cloned().unwrap_or(json!({}));
        if let Some(p) = ru
            .get("partition")
            .and_then(Value::as_i64)
            .filter(|p| *p != 0)
        {
            t.insert("partition".into(), toml::Value::Integer(p));
        }
        if let Some(m) = ru.get("maxUnavailable").and_then(to_toml) {
            t.insert("max_unavailable".into(), m);
        }
        if t.len() == 1 {
            return None;
        }
    }
    Some(toml::Value::Table(t))
}

/// A DaemonSet's `update_strategy`, unless it is the default (RollingUpdate, 1 unavailable).
fn ds_update_strategy(u: &Value) -> Option<toml::Value> {
    let kind = u.get("type")?.as_str()?;
    let mut t = Table::new();
    t.insert("type".into(), s(kind));
    if kind == "RollingUpdate" {
        let m = u.pointer("/rollingUpdate/maxUnavailable");
        if m.is_none() || m == Some(&json!(1)) {
            return None;
        }
        t.insert("max_unavailable".into(), to_toml(m?)?);
    }
    Some(toml::Value::Table(t))
}

/// A Deployment's `strategy`, unless it is the default (RollingUpdate, 25% and 25%).
fn deployment_strategy(st: &Value) -> Option<toml::Value> {
    let kind = st.get("type")?.as_str()?;
    let mut t = Table::new();
    t.insert("type".into(), s(kind));
    if kind == "RollingUpdate" {
        let unavailable = st.pointer("/rollingUpdate/maxUnavailable");
        let surge = st.pointer("/rollingUpdate/maxSurge");
        let quarter = json!("25%");
        if unavailable.is_none_or(|v| v == &quarter) && surge.is_none_or(|v| v == &quarter) {
            return None;
        }
        if let Some(v) = unavailable.and_then(to_toml) {
            t.insert("max_unavailable".into(), v);
        }
        if let Some(v) = surge.and_then(to_toml) {
            t.insert("max_surge".into(), v);
        }
    }
    Some(toml::Value::Table(t))
}

/// `retention`, unless it is the default (Retain, Retain).
fn retention(r: &Value) -> Option<toml::Value> {
    let deleted = r.get("whenDeleted").and_then(Value::as_str);
    let scaled = r.get("whenScaled").and_then(Value::as_str);
    if deleted.is_none_or(|d| d == "Retain") && scaled.is_none_or(|s| s == "Retain") {
        return None;
    }
    let mut t = Table::new();
    put_str(&mut t, "when_deleted", deleted);
    put_str(&mut t, "when_scaled", scaled);
    Some(toml::Value::Table(t))
}

/// `[[statefulset.volume_claim]]` from a claim template, mounted where the container mounts it.
fn claim_template(tpl: &Value, mounts: &[Value]) -> Table {
    let spec = &tpl["spec"];
    let name = str_of(tpl, "/metadata/name").unwrap_or_default();
    let mut t = Table::new();
    t.insert("name".into(), s(name));
    put_str(&mut t, "size", str_of(spec, "/resources/requests/storage"));
    put_access_modes(&mut t, spec.get("accessModes"));
    put_str(&mut t, "class", str_of(spec, "/storageClassName"));
    if let Some(m) = str_of(spec, "/volumeMode").filter(|m| *m != "Filesystem") {
        t.insert("volume_mode".into(), s(m));
    }
    if let Some(sel) = spec.get("selector")
        && let Some(labels) = match_labels_only(sel)
    {
        t.insert("selector".into(), labels);
    }
    // Not mounted, or not plainly: the containers go into the patch whole, and this path is
    // only a placeholder for the required key.
    let path = mounts
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["mountPath"].as_str())
        .map_or_else(|| format!("/{name}"), str::to_string);
    t.insert("mount".into(), s(&path));
    let labels = own_labels(tpl, "/metadata/labels");
    if !labels.is_empty() {
        put_labels(&mut t, &labels);
    }
    t
}

/// `[[….mount]]`: the pod's claim volumes named after their claim and mounted once.
fn claim_mounts(pod: &Value, mounts: &[Value]) -> Vec<toml::Value> {
    let mut out = Vec::new();
    for vol in pod["volumes"].as_array().into_iter().flatten() {
        let Some(claim) = vol
            .pointer("/persistentVolumeClaim/claimName")
            .and_then(Value::as_str)
        else {
            continue;
        };
        if vol["name"] != claim {
            continue;
        }
        let Some(m) = mounts.iter().find(|m| m["name"] == claim) else {
            continue;
        };
        let mut t = Table::new();
        t.insert("claim".into(), s(claim));
        put_str(&mut t, "path", m["mountPath"].as_str());
        if m.get("readOnly").and_then(Value::as_bool) == Some(true) {
            t.insert("read_only".into(), toml::Value::Boolean(true));
        }
        put_str(
            &mut t,
            "sub_path",
            m["subPath"].as_str().filter(|p| !p.is_empty()),
        );
        out.push(toml::Value::Table(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_like_the_spec_generates_it_needs_only_keys_and_its_pod_labels() {
        let live = json!({"metadata": {"name": "web", "labels": {"app.kubernetes.io/managed-by": "kubectl-stateful", "team": "x"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1",
                        "env": [{"name": "A", "value": "1"}, {"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                        "ports": [{"name": "port-80", "containerPort": 80, "protocol": "TCP"}]}]}}}});
        let x = workload(Kind::Deployment, &live);
        let text = toml::to_string(&x.table).unwrap();
        assert_eq!(
            text,
            "name = \"web\"\nimage = \"nginx:1\"\nreplicas = 3\nports = [80]\n\n[env]\nA = \"1\"\n\n[env.P]\nsecret = \"s\"\nkey = \"k\"\n\n[labels]\nteam = \"x\"\n"
        );
        assert_eq!(
            x.patch,
            json!({"spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": "web"}}}}})
        );
        assert!(x.notes.is_empty());
    }

    #[test]
    fn what_keys_cannot_say_is_left_to_the_patch() {
        // An env from the downward API, a port without a name: no env and no ports keys.
        let c = json!({"name": "w", "image": "i", "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "ports": [{"containerPort": 80}]});
        let live = json!({"metadata": {"name": "w"}, "spec": {"selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [c]}}}});
        let x = workload(Kind::DaemonSet, &live);
        assert!(x.table.get("env").is_none() && x.table.get("ports").is_none());
        assert_eq!(
            x.patch["spec"]["selector"],
            json!({"matchLabels": {"app": "w"}})
        );
    }

    #[test]
    fn volumes_with_plain_or_complex_node_affinity() {
        let affinity = |exprs: Value| json!({"required": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}});
        let pv = |aff: Value| {
            json!({"metadata": {"name": "d"}, "spec": {"capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
            "local": {"path": "/mnt"}, "nodeAffinity": aff}})
        };
        let plain = affinity(
            json!([{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]),
        );
        let x = volume(&pv(plain)).unwrap();
        assert_eq!(x.table["node"].as_str(), Some("node-1"));
        assert!(
            x.table.get("reclaim_policy").is_none(),
            "Retain is the default"
        );
        assert!(x.patch.as_object().unwrap().is_empty());
        let zone = affinity(json!([{"key": "zone", "operator": "In", "values": ["a"]}]));
        let x = volume(&pv(zone.clone())).unwrap();
        assert!(x.table.get("node").is_none());
        assert_eq!(x.patch["spec"]["nodeAffinity"], zone);
        let iscsi = json!({"metadata": {"name": "d"}, "spec": {"capacity": {"storage": "1Gi"}, "iscsi": {}}});
        assert!(volume(&iscsi).unwrap_err().0.contains("iscsi"));
    }

    #[test]
    fn claims_name_their_static_volume_and_leave_the_default_class_out() {
        let live = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "standard", "volumeMode": "Filesystem"}});
        let x = claim(&live, None, Some("standard"));
        assert_eq!(
            toml::to_string(&x.table).unwrap(),
            "name = \"c\"\nsize = \"1Gi\"\n"
        );
        let x = claim(&live, Some(("pv-1", "manual")), Some("standard"));
        assert_eq!(x.table["class"].as_str(), Some("standard"));
        assert_eq!(x.table["volume"].as_str(), Some("pv-1"));
    }
}
