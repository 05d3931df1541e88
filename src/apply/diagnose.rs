//! Explains why a wait failed: the object's recent Events and conditions, and those of the
//! related objects its kind names (for a StatefulSet: its pods and its template claims,
//! e.g. "0/3 nodes are available: …"). Every read goes through the gateway.

use crate::gateway::{Gateway, ListQuery};
use crate::kinds::{ObjectRef, Related, resource_of};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::Value;

/// How many events per object are shown.
const EVENTS_PER_OBJECT: usize = 3;

/// Lines explaining the object's state, most useful first. Never fails: what cannot be read is
/// left out.
pub async fn explain(gw: &dyn Gateway, id: &ObjectRef, current: Option<&Value>) -> Vec<String> {
    let mut lines = Vec::new();
    let ns = id.namespace.clone().unwrap_or_else(|| "default".into());
    for related in id.kind.rules().related(&id.name, current) {
        match related {
            Related::Pods { selector } => {
                let query = ListQuery::new(resource_of::<Pod>(), Some(&ns)).labels(&selector);
                let Ok(pods) = gw.list(&query).await else {
                    continue;
                };
                for pod in pods {
                    let name = pod["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    for c in pod
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let message = c["message"].as_str().unwrap_or_default();
                        if c["status"] != "True" && !message.is_empty() {
                            lines.push(format!(
                                "pod/{name} {} false: {message}",
                                c["type"].as_str().unwrap_or_default()
                            ));
                        }
                    }
                    lines.extend(events_of(gw, &ns, "Pod", &name).await);
                }
            }
            Related::Claims { names } => {
                for name in names {
                    let claim =
                        ObjectRef::new(crate::kinds::Kind::PersistentVolumeClaim, &ns, &name);
                    let bound = matches!(gw.get(&claim).await, Ok(Some(c)) if c.pointer("/status/phase") == Some(&Value::from("Bound")));
                    if !bound {
                        lines.extend(events_of(gw, &ns, "PersistentVolumeClaim", &name).await);
                    }
                }
            }
        }
    }
    let event_ns = if id.kind.namespaced() {
        ns.as_str()
    } else {
        "default"
    };
    let mut own = events_of(gw, event_ns, id.kind.as_str(), &id.name).await;
    own.extend(lines);
    if own.is_empty() {
        own.push(format!("no events recorded for {}", id.short()));
    }
    own
}

async fn events_of(gw: &dyn Gateway, ns: &str, kind: &str, name: &str) -> Vec<String> {
    let query = ListQuery::new(resource_of::<Event>(), Some(ns)).fields(&format!(
        "involvedObject.kind={kind},involvedObject.name={name}"
    ));
    let Ok(list) = gw.list(&query).await else {
        return Vec::new();
    };
    let mut events: Vec<Event> = list
        .into_iter()
        .filter_map(|e| serde_json::from_value(e).ok())
        .collect();
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
        "Pod" => "pod",
        other => crate::kinds::Kind::from_name(other).map_or(other, |k| k.short()),
    }
}
