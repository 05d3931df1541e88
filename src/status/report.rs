//! The state of every object of a stack, from what the cluster holds. Pure: the caller reads
//! (or watches) the objects; this decides what is healthy and says why not.

use crate::apply::waits;
use crate::desired::DesiredObject;
use crate::kinds::{Kind, ObjectRef};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// What the cluster holds for a stack: the lists the report is made of.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub classes: Vec<Value>,
    pub volumes: Vec<Value>,
    pub claims: Vec<Value>,
    pub services: Vec<Value>,
    pub statefulsets: Vec<Value>,
    pub deployments: Vec<Value>,
    pub daemonsets: Vec<Value>,
    pub pods: Vec<Value>,
    /// Events about the namespace's claims.
    pub claim_events: Vec<Value>,
}

impl Snapshot {
    fn list(&self, kind: Kind) -> &[Value] {
        match kind {
            Kind::StorageClass => &self.classes,
            Kind::PersistentVolume => &self.volumes,
            Kind::PersistentVolumeClaim => &self.claims,
            Kind::Service => &self.services,
            Kind::StatefulSet => &self.statefulsets,
            Kind::Deployment => &self.deployments,
            Kind::DaemonSet => &self.daemonsets,
            // Snapshots are listed by `kubectl stateful snapshots`.
            Kind::Namespace | Kind::ConfigMap | Kind::Lease | Kind::VolumeSnapshot | Kind::Pod => {
                &[]
            }
        }
    }

    fn find(&self, id: &ObjectRef) -> Option<&Value> {
        self.list(id.kind)
            .iter()
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(id.name.as_str()))
    }
}

/// One object's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub object: ObjectRef,
    /// Where the spec defines it (`claim[0]`, `statefulset[0].volume_claim[data]`).
    pub origin: String,
    pub exists: bool,
    pub healthy: bool,
    /// Short state: a phase (`Bound`), a count (`3/3 replicas ready`) or `missing`.
    pub state: String,
    /// Kind-specific facts (phase, capacity and request, replicas and revisions, …).
    pub details: Map<String, Value>,
    /// Why it is not healthy: pod reasons, resize conditions, the claim's latest event.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The details in a few words, for the table.
    #[serde(skip)]
    pub summary: String,
}

/// The whole stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub stack: String,
    pub namespace: String,
    pub healthy: bool,
    pub objects: Vec<Row>,
}

impl Report {
    pub fn unhealthy(&self) -> usize {
        self.objects.iter().filter(|r| !r.healthy).count()
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// Builds the report of `objects` (the spec's, in rollout order) from `snap`.
pub fn report(stack: &str, namespace: &str, objects: &[DesiredObject], snap: &Snapshot) -> Report {
    let mut rows = Vec::new();
    for d in objects.iter().filter(|d| d.id.kind != Kind::Namespace) {
        let live = snap.find(&d.id);
        rows.push(row(&d.id, &d.origin, live, snap));
        if d.id.kind == Kind::StatefulSet {
            let templates = d
                .manifest
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for claim in &d.template_claims {
                let template = templates
                    .iter()
                    .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
                    .find(|t| claim.starts_with(&format!("{t}-")))
                    .unwrap_or_default();
                let id = ObjectRef::new(Kind::PersistentVolumeClaim, namespace, claim);
                let origin = format!("{}.volume_claim[{template}]", d.origin);
                rows.push(row(&id, &origin, snap.find(&id), snap));
            }
        }
    }
    Report {
        stack: stack.to_string(),
        namespace: namespace.to_string(),
        healthy: rows.iter().all(|r| r.healthy),
        objects: rows,
    }
}

fn row(id: &ObjectRef, origin: &str, live: Option<&Value>, snap: &Snapshot) -> Row {
    let mut r = Row {
        object: id.clone(),
        origin: origin.to_string(),
        exists: live.is_some(),
        healthy: false,
        state: "missing".into(),
        details: Map::new(),
        problems: Vec::new(),
        summary: String::new(),
    };
    let Some(live) = live else {
        r.problems
            .push("does not exist; `kubectl stateful apply` creates it".into());
        return r;
    };
    if let Some(stack) = crate::plan::compute::stack_of(live) {
        r.details.insert("stack".into(), json!(stack));
    }
    match id.kind {
        Kind::StorageClass => storage_class(&mut r, live),
        Kind::PersistentVolume => volume(&mut r, live),
        Kind::PersistentVolumeClaim => claim(&mut r, live, snap),
        Kind::Service => service(&mut r, live),
        Kind::StatefulSet | Kind::Deployment | Kind::DaemonSet => workload(&mut r, live, snap),
        Kind::Namespace | Kind::ConfigMap | Kind::Lease | Kind::VolumeSnapshot | Kind::Pod => {}
    }
    if live.pointer("/metadata/deletionTimestamp").is_some() {
        r.healthy = false;
        r.state = "Terminating".into();
        r.problems.push(waits::gone(Some(live)).message);
    }
    r
}

fn storage_class(r: &mut Row, sc: &Value) {
    let provisioner = s(sc, "/provisioner");
    let mode = sc["volumeBindingMode"].as_str().unwrap_or("Immediate");
    r.details.insert("provisioner".into(), json!(provisioner));
    r.details.insert("binding_mode".into(), json!(mode));
    let expansion = sc["allowVolumeExpansion"].as_bool().unwrap_or(false);
    r.details
        .insert("allow_volume_expansion".into(), json!(expansion));
    r.state = "present".into();
    r.healthy = true;
    r.summary = format!("{provisioner}, {mode}");
    if expansion {
        r.summary.push_str(", expandable");
    }
}

fn volume(r: &mut Row, pv: &Value) {
    let phase = s(pv, "/status/phase");
    let capacity = s(pv, "/spec/capacity/storage");
    let claim = pv.pointer("/spec/claimRef").map(|c| {
        format!(
            "{}/{}",
            c["namespace"].as_str().unwrap_or_default(),
            c["name"].as_str().unwrap_or_default()
        )
    });
    r.details.insert("phase".into(), json!(phase));
    r.details.insert("capacity".into(), json!(capacity));
    if let Some(c) = &claim {
        r.details.insert("claim".into(), json!(c));
    }
    r.details
        .insert("class".into(), json!(s(pv, "/spec/storageClassName")));
    let w = waits::volume(Some(pv));
    r.healthy = w.ok;
    r.state = if phase.is_empty() {
        "Pending".into()
    } else {
        phase.to_string()
    };
    if !w.ok {
        r.problems.push(w.message);
    }
    r.summary = capacity.to_string();
    if let Some(c) = claim {
        r.summary.push_str(&format!(", claim {c}"));
    }
}

/// Claim conditions that mean a resize is under way or failed.
const RESIZE_CONDITIONS: &[&str] = &[
    "Resizing",
    "FileSystemResizePending",
    "ControllerResizeError",
    "NodeResizeError",
    "ModifyingVolume",
    "ModifyVolumeError",
];

fn claim(r: &mut Row, pvc: &Value, snap: &Snapshot) {
    let phase = s(pvc, "/status/phase");
    let request = s(pvc, "/spec/resources/requests/storage");
    let capacity = s(pvc, "/status/capacity/storage");
    let volume = s(pvc, "/spec/volumeName");
    r.details.insert("phase".into(), json!(phase));
    r.details.insert("request".into(), json!(request));
    if !capacity.is_empty() {
        r.details.insert("capacity".into(), json!(capacity));
    }
    if !volume.is_empty() {
        r.details.insert("volume".into(), json!(volume));
    }
    if let Some(class) = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
    {
        r.details.insert("class".into(), json!(class));
    }
    let conditions: Vec<&Value> = pvc
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c["status"] == "True" && RESIZE_CONDITIONS.contains(&c["type"].as_str().unwrap_or(""))
        })
        .collect();
    if !conditions.is_empty() {
        r.details.insert(
            "conditions".into(),
            json!(
                conditions
                    .iter()
                    .map(|c| json!({"type": c["type"], "message": c["message"]}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    r.state = if phase.is_empty() {
        "Pending".into()
    } else {
        phase.to_string()
    };
    r.summary = if capacity.is_empty() {
        format!("{request} requested")
    } else {
        format!("{capacity} of {request} requested")
    };
    if !volume.is_empty() {
        r.summary.push_str(&format!(", volume {volume}"));
    } else if let Some(class) = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        r.summary.push_str(&format!(", class {class}"));
    }
    let w = waits::claim(Some(pvc));
    r.healthy = w.ok;
    if phase == "Bound" {
        let smaller = match (
            crate::spec::quantity::Quantity::parse(capacity),
            crate::spec::quantity::Quantity::parse(request),
        ) {
            (Ok(c), Ok(q)) => c.cmp_exact(&q) == std::cmp::Ordering::Less,
            _ => false,
        };
        if smaller || !conditions.is_empty() {
            r.healthy = false;
            let mut text = format!("resizing: {capacity} of {request} requested");
            for c in &conditions {
                text.push_str(&format!(
                    "; {}{}",
                    c["type"].as_str().unwrap_or_default(),
                    c["message"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
            r.problems.push(text);
        }
    } else if !w.ok {
        let name = s(pvc, "/metadata/name");
        match latest_event(&snap.claim_events, name) {
            Some(reason) => r.problems.push(reason),
            None => r.problems.push(w.message),
        }
    }
}

/// `Reason: message` of the newest event about the claim `name`.
fn latest_event(events: &[Value], name: &str) -> Option<String> {
    events
        .iter()
        .filter(|e| s(e, "/involvedObject/name") == name)
        .max_by_key(|e| {
            let t = s(e, "/lastTimestamp");
            if t.is_empty() {
                s(e, "/eventTime").to_string()
            } else {
                t.to_string()
            }
        })
        .map(|e| format!("{}: {}", s(e, "/reason"), s(e, "/message").trim()))
}

fn service(r: &mut Row, svc: &Value) {
    let kind = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ip = s(svc, "/spec/clusterIP");
    r.details.insert("type".into(), json!(kind));
    r.details.insert("cluster_ip".into(), json!(ip));
    r.state = "present".into();
    r.healthy = true;
    r.summary = if ip == "None" {
        "headless".into()
    } else {
        format!("{kind} {ip}")
    };
}

fn workload(r: &mut Row, w: &Value, snap: &Snapshot) {
    let kind = r.object.kind;
    let status = match kind {
        Kind::StatefulSet => waits::statefulset(Some(w)),
        Kind::Deployment => waits::deployment(Some(w)),
        _ => waits::daemonset(Some(w)),
    };
    let d = &mut r.details;
    d.insert("generation".into(), json!(i(w, "/metadata/generation")));
    d.insert(
        "observed_generation".into(),
        json!(i(w, "/status/observedGeneration")),
    );
    match kind {
        Kind::DaemonSet => {
            d.insert(
                "desired".into(),
                json!(i(w, "/status/desiredNumberScheduled")),
            );
            d.insert("ready".into(), json!(i(w, "/status/numberReady")));
            d.insert(
                "updated".into(),
                json!(i(w, "/status/updatedNumberScheduled")),
            );
            d.insert("available".into(), json!(i(w, "/status/numberAvailable")));
            r.summary = format!(
                "{} updated of {} nodes",
                i(w, "/status/updatedNumberScheduled"),
                i(w, "/status/desiredNumberScheduled")
            );
        }
        _ => {
            let replicas = w
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            d.insert("replicas".into(), json!(replicas));
            d.insert("ready".into(), json!(i(w, "/status/readyReplicas")));
            d.insert("updated".into(), json!(i(w, "/status/updatedReplicas")));
            d.insert("available".into(), json!(i(w, "/status/availableReplicas")));
            r.summary = format!("{} updated", i(w, "/status/updatedReplicas"));
            if kind == Kind::StatefulSet {
                let current = s(w, "/status/currentRevision");
                let update = s(w, "/status/updateRevision");
                d.insert("current_revision".into(), json!(current));
                d.insert("update_revision".into(), json!(update));
                if current == update || update.is_empty() {
                    r.summary.push_str(&format!(", revision {current}"));
                } else {
                    r.summary
                        .push_str(&format!(", revision {current} → {update}"));
                }
            } else if let Some(rev) = w
                .pointer("/metadata/annotations")
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .and_then(Value::as_str)
            {
                d.insert("revision".into(), json!(rev));
                r.summary.push_str(&format!(", revision {rev}"));
            }
        }
    }
    r.healthy = status.done && status.ok;
    r.state = status.message.clone();
    if !r.healthy && status.done {
        r.problems.push(status.message);
    }
    let selector = w
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if selector.is_empty() {
        return;
    }
    let mut pods: Vec<&Value> = snap
        .pods
        .iter()
        .filter(|p| {
            let labels = p.pointer("/metadata/labels").and_then(Value::as_object);
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .collect();
    pods.sort_by_key(|p| s(p, "/metadata/name").to_string());
    for pod in pods {
        if let Some(why) = pod_problem(pod) {
            r.healthy = false;
            r.problems
                .push(format!("pod/{} not ready: {why}", s(pod, "/metadata/name")));
        }
    }
}

/// Why a pod is not ready, or `None` when it is.
pub fn pod_problem(pod: &Value) -> Option<String> {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Some("terminating".into());
    }
    let conditions: BTreeMap<&str, &Value> = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["type"].as_str()?, c)))
        .collect();
    if conditions
        .get("Ready")
        .is_some_and(|c| c["status"] == "True")
    {
        return None;
    }
    if let Some(c) = conditions.get("PodScheduled")
        && c["status"] == "False"
    {
        return Some(format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or("Unschedulable"),
            c["message"].as_str().unwrap_or_default()
        ));
    }
    for st in pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for state in ["waiting", "terminated"] {
            if let Some(w) = st.pointer(&format!("/state/{state}")) {
                let reason = w["reason"].as_str().unwrap_or(state);
                let message = w["message"].as_str().unwrap_or_default();
                return Some(if message.is_empty() {
                    format!("container {}: {reason}", s(st, "/name"))
                } else {
                    format!("container {}: {reason}: {message}", s(st, "/name"))
                });
            }
        }
    }
    if let Some(c) = conditions.get("Ready")
        && let Some(m) = c["message"].as_str()
    {
        return Some(m.to_string());
    }
    Some(format!(
        "phase {}",
        pod.pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
    ))
}

/// The table: a line per object (`!` in front of those not healthy), their problems below.
pub fn human(report: &Report, color: bool) -> String {
    use owo_colors::OwoColorize;
    let n = report.objects.len();
    let bad = report.unhealthy();
    let mut out = if bad == 0 {
        format!(
            "Stack {} in namespace {}: all {n} objects healthy\n\n",
            report.stack, report.namespace
        )
    } else {
        format!(
            "Stack {} in namespace {}: {bad} of {n} objects not healthy\n\n",
            report.stack, report.namespace
        )
    };
    let names: Vec<String> = report.objects.iter().map(|r| r.object.short()).collect();
    let w_name = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let w_state = report
        .objects
        .iter()
        .map(|r| r.state.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    out.push_str(&format!(
        "  {:w_name$}  {:w_state$}  DETAILS\n",
        "OBJECT", "STATE"
    ));
    for (r, name) in report.objects.iter().zip(&names) {
        let state = format!("{:w_state$}", r.state);
        let state = match (color, r.healthy) {
            (false, _) => state,
            (true, true) => state.green().to_string(),
            (true, false) => state.red().bold().to_string(),
        };
        let mark = if r.healthy { ' ' } else { '!' };
        let line = format!("{mark} {name:w_name$}  {state}  {}", r.summary);
        out.push_str(line.trim_end());
        out.push('\n');
        for p in &r.problems {
            out.push_str(&format!("      {p}\n"));
        }
    }
    out
}

/// The JSON document (one line with `compact`, for `--watch`).
pub fn json(report: &Report, compact: bool) -> String {
    let doc = json!({
        "stack": report.stack,
        "namespace": report.namespace,
        "healthy": report.healthy,
        "summary": {"objects": report.objects.len(), "unhealthy": report.unhealthy()},
        "objects": report.objects,
    });
    if compact {
        serde_json::to_string(&doc).expect("reports serialize") + "\n"
    } else {
        serde_json::to_string_pretty(&doc).expect("reports serialize") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    /// The spec's objects (built like plan builds them).
    fn objects() -> Vec<DesiredObject> {
        let text = r#"
[[storage_class]]
name = "fast"
provisioner = "csi.example.com"
[[claim]]
name = "logs"
size = "1Gi"
class = "slow"
[[claim]]
name = "cache"
size = "1Gi"
[[statefulset]]
name = "db"
image = "i"
[[statefulset.volume_claim]]
name = "data"
size = "2Gi"
mount = "/data"
"#;
        let spec = crate::spec::load("s.toml", text, "s").unwrap();
        crate::desired::desired_objects(
            &spec,
            &crate::desired::Context {
                namespace: "demo".into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_stack_with_a_pending_claim_a_resize_and_an_unready_pod() {
        let objects = objects();
        let snap = Snapshot {
            classes: vec![yaml(
                "metadata: {name: fast}\nprovisioner: csi.example.com\nvolumeBindingMode: WaitForFirstConsumer",
            )],
            claims: vec![
                yaml(
                    "metadata: {name: logs}\nspec: {resources: {requests: {storage: 1Gi}}, storageClassName: slow}\nstatus: {phase: Pending}",
                ),
                yaml(
                    "metadata: {name: data-db-0}\nspec: {volumeName: pv-1, resources: {requests: {storage: 2Gi}}}\nstatus: {phase: Bound, capacity: {storage: 1Gi}, conditions: [{type: FileSystemResizePending, status: 'True', message: waiting for the node}]}",
                ),
            ],
            statefulsets: vec![yaml(
                "metadata: {name: db, generation: 1}\nspec: {replicas: 2, selector: {matchLabels: {app: db}}}\nstatus: {observedGeneration: 1, replicas: 2, readyReplicas: 1, updatedReplicas: 2, currentRevision: db-1, updateRevision: db-1}",
            )],
            pods: vec![
                yaml(
                    "metadata: {name: db-0, labels: {app: db}}\nstatus: {conditions: [{type: Ready, status: 'True'}]}",
                ),
                yaml(
                    "metadata: {name: db-1, labels: {app: db}}\nstatus: {phase: Pending, conditions: [{type: PodScheduled, status: 'False', reason: Unschedulable, message: '0/3 nodes are available'}]}",
                ),
                yaml("metadata: {name: other, labels: {app: x}}\nstatus: {phase: Pending}"),
            ],
            claim_events: vec![
                yaml(
                    "involvedObject: {name: logs}\nreason: Old\nmessage: old\nlastTimestamp: '2024-01-01T00:00:00Z'",
                ),
                yaml(
                    "involvedObject: {name: logs}\nreason: FailedBinding\nmessage: 'storageclass.storage.k8s.io \"slow\" not found'\nlastTimestamp: '2024-01-01T00:01:00Z'",
                ),
            ],
            ..Default::default()
        };
        let r = report("s", "demo", &objects, &snap);
        assert!(!r.healthy);
        let states: Vec<(String, bool, String)> = r
            .objects
            .iter()
            .map(|r| (r.object.short(), r.healthy, r.state.clone()))
            .collect();
        assert_eq!(
            states,
            vec![
                ("storageclass/fast".into(), true, "present".into()),
                ("pvc/logs".into(), false, "Pending".into()),
                ("pvc/cache".into(), false, "missing".into()),
                ("service/db".into(), false, "missing".into()),
                ("statefulset/db".into(), false, "1/2 replicas ready".into()),
                ("pvc/data-db-0".into(), false, "Bound".into()),
            ]
        );
        assert_eq!(
            r.objects[1].problems,
            vec!["FailedBinding: storageclass.storage.k8s.io \"slow\" not found"]
        );
        assert_eq!(
            r.objects[4].problems,
            vec!["pod/db-1 not ready: Unschedulable: 0/3 nodes are available"]
        );
        assert_eq!(r.objects[5].origin, "statefulset[0].volume_claim[data]");
        assert_eq!(
            r.objects[5].problems,
            vec!["resizing: 1Gi of 2Gi requested; FileSystemResizePending: waiting for the node"]
        );
        insta::assert_snapshot!(human(&r, false));
        let doc: Value = serde_json::from_str(&json(&r, true)).unwrap();
        assert_eq!(doc["summary"], json!({"objects": 6, "unhealthy": 5}));
        assert_eq!(doc["objects"][5]["details"]["capacity"], "1Gi");
    }

    #[test]
    fn container_reasons_explain_unready_pods() {
        let pod = yaml(
            "metadata: {name: p}\nstatus: {phase: Pending, conditions: [{type: PodScheduled, status: 'True'}, {type: Ready, status: 'False'}], containerStatuses: [{name: app, state: {waiting: {reason: ImagePullBackOff, message: 'Back-off pulling image'}}}]}",
        );
        assert_eq!(
            pod_problem(&pod).as_deref(),
            Some("container app: ImagePullBackOff: Back-off pulling image")
        );
        let ready = yaml("status: {conditions: [{type: Ready, status: 'True'}]}");
        assert_eq!(pod_problem(&ready), None);
    }
}
