//! Explains why a wait failed: the object's recent Events and conditions, and for a StatefulSet
//! those of its pods and claims ("0/3 nodes are available: …").

use crate::kinds::{Kind, ObjectRef};
use crate::live::Cluster;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;

/// How many events per object are shown.
const EVENTS_PER_OBJECT: usize = 3;

/// Lines explaining the object's state, most useful first. Never fails: what cannot be read is
/// left out.
pub async fn explain(cluster: &Cluster, id: &ObjectRef, current: Option<&Value>) -> Vec<String> {
    let mut lines = Vec::new();
    let ns = id.namespace.clone().unwrap_or_else(|| "default".into());
    if id.kind == Kind::StatefulSet {
        let selector = current
            .and_then(|s| s.pointer("/spec/selector/matchLabels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            for pod in list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let status = pod.status.unwrap_or_default();
                for c in status.conditions.unwrap_or_default() {
                    if c.status != "True" && c.message.is_some() {
                        lines.push(format!(
                            "pod/{name} {} false: {}",
                            c.type_,
                            c.message.unwrap_or_default()
                        ));
                    }
                }
                lines.extend(events_of(cluster, &ns, "Pod", &name).await);
            }
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), &ns);
        if let Ok(list) = claims.list(&ListParams::default()).await {
            let sts = &id.name;
            for c in list.items {
                let name = c.metadata.name.clone().unwrap_or_default();
                let phase = c.status.and_then(|s| s.phase).unwrap_or_default();
                if phase != "Bound" && name.contains(&format!("-{sts}-")) {
                    lines.extend(events_of(cluster, &ns, "PersistentVolumeClaim", &name).await);
                }
            }
        }
    }
    let event_ns = if id.kind.namespaced() {
        ns.as_str()
    } else {
        "default"
    };
    let mut own = events_of(cluster, event_ns, id.kind.as_str(), &id.name).await;
    own.extend(lines);
    if own.is_empty() {
        own.push(format!("no events recorded for {}", id.short()));
    }
    own
}

async fn events_of(cluster: &Cluster, ns: &str, kind: &str, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(cluster.client.clone(), ns);
    let params = ListParams::default().fields(&format!(
        "involvedObject.kind={kind},involvedObject.name={name}"
    ));
    let Ok(list) = api.list(&params).await else {
        return Vec::new();
    };
    let mut events = list.items;
    events.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .unwrap_or_default()
    });
    events
        .iter()
        .rev()
        .take(EVENTS_PER_OBJECT)
        .map(|e| {
            format!(
                "{}/{name}: {} {}: {}",
                short_kind(kind),
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect()
}

fn short_kind(kind: &str) -> &str {
    match kind {
        "PersistentVolumeClaim" => "pvc",
        "PersistentVolume" => "pv",
        "Pod" => "pod",
        "StatefulSet" => "statefulset",
        other => other,
    }
}
