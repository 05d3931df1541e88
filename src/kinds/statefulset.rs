//! StatefulSet: selector, service name, claim templates and pod management policy are
//! immutable; ready when its pods are (see `apply::waits::statefulset`). The server fills in
//! `apiVersion`, `kind` and `status` inside claim templates, which are never a change.

use super::{KindRules, ObjectRef, Related, resource_of, workload_dependencies};
use crate::plan::ops::WaitRule;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::ApiResource;
use serde_json::{Map, Value};

pub struct Rules;

impl KindRules for Rules {
    fn api_resource(&self) -> ApiResource {
        resource_of::<StatefulSet>()
    }
    fn namespaced(&self) -> bool {
        true
    }
    fn short(&self) -> &'static str {
        "statefulset"
    }
    fn plural(&self) -> &'static str {
        "StatefulSets"
    }
    fn immutable_roots(&self) -> &'static [&'static str] {
        &[
            "/spec/selector",
            "/spec/serviceName",
            "/spec/volumeClaimTemplates",
            "/spec/podManagementPolicy",
        ]
    }
    fn normalize(&self, obj: &mut Map<String, Value>, _desired: &Value) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        if let Some(Value::Array(templates)) = spec.get_mut("volumeClaimTemplates") {
            for t in templates.iter_mut().filter_map(Value::as_object_mut) {
                t.remove("status");
                t.remove("apiVersion");
                t.remove("kind");
                if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("creationTimestamp");
                    if meta.is_empty() {
                        t.remove("metadata");
                    }
                }
            }
        }
        if let Some(meta) = spec
            .get_mut("template")
            .and_then(|t| t.get_mut("metadata"))
            .and_then(Value::as_object_mut)
        {
            meta.remove("creationTimestamp");
        }
    }
    fn wait_rule(&self) -> Option<WaitRule> {
        Some(WaitRule::StatefulSetReady)
    }
    fn replace_cost(&self) -> &'static str {
        "replacing a StatefulSet means deleting it with --cascade=orphan (its pods and claims stay) and creating it again; \
         claims that already exist keep their size and class, since volumeClaimTemplates only shape new claims"
    }
    fn related(&self, name: &str, current: Option<&Value>) -> Vec<Related> {
        let Some(sts) = current else {
            return Vec::new();
        };
        let selector = super::match_labels(sts);
        let mut out = Vec::new();
        if !selector.is_empty() {
            out.push(Related::Pods { selector });
        }
        let names = template_claims(name, sts);
        if !names.is_empty() {
            out.push(Related::Claims { names });
        }
        out
    }
    fn dependencies(&self, manifest: &Value, namespace: &str) -> Vec<ObjectRef> {
        workload_dependencies(manifest, namespace)
    }
}

/// The claims a StatefulSet's templates create: `<template>-<statefulset>-<ordinal>` for every
/// ordinal below `replicas` (exact names, never a substring match).
pub fn template_claims(name: &str, sts: &Value) -> Vec<String> {
    let replicas = sts
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let templates = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    templates
        .iter()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .flat_map(|t| (0..replicas).map(move |i| format!("{t}-{name}-{i}")))
        .collect()
}

/// The names of a StatefulSet's claim templates (from its manifest or its live object).
pub fn template_names(sts: &Value) -> Vec<&str> {
    sts.pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .collect()
}

/// The ordinal of `claim` when it is named exactly like a claim of template `template` of the
/// StatefulSet `sts` — `<template>-<sts>-<ordinal>` — never by a substring match.
pub fn template_claim_ordinal(claim: &str, template: &str, sts: &str) -> Option<u64> {
    let ordinal = claim
        .strip_prefix(template)?
        .strip_prefix('-')?
        .strip_prefix(sts)?
        .strip_prefix('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ordinal.parse().ok()
}

/// Among `claims`, those made from the templates of StatefulSet `name` (`sts`: its manifest
/// or live object), of any ordinal — those of ordinals scaled away included — with the
/// template's name and the ordinal.
pub fn claims_of_templates<'c>(
    name: &str,
    sts: &Value,
    claims: &'c [Value],
) -> Vec<(&'c Value, String, u64)> {
    let templates = template_names(sts);
    claims
        .iter()
        .filter_map(|c| {
            let claim = c.pointer("/metadata/name").and_then(Value::as_str)?;
            templates
                .iter()
                .find_map(|t| template_claim_ordinal(claim, t, name).map(|o| (c, t.to_string(), o)))
        })
        .collect()
}

/// The claims deleting StatefulSet `name` (`sts`: its live object, or the object as planned)
/// takes along: with `whenDeleted: Delete`, the claims of its templates for its current
/// ordinals (the controller made them owned by the StatefulSet); none with `Retain`.
pub fn claims_deleted_with(name: &str, sts: &Value) -> Vec<String> {
    let policy = sts
        .pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted")
        .and_then(Value::as_str);
    if policy == Some("Delete") {
        template_claims(name, sts)
    } else {
        Vec::new()
    }
}

/// Whether the StatefulSet `live`, once `manifest` is written over it, deletes the claims of the
/// ordinals it scales away: its retention policy after the write says `whenScaled: Delete`.
pub fn scaling_deletes_claims(manifest: &Value, live: &Value) -> bool {
    let when_scaled = |v: &Value| {
        v.pointer("/spec/persistentVolumeClaimRetentionPolicy/whenScaled")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    when_scaled(manifest)
        .or_else(|| when_scaled(live))
        .as_deref()
        == Some("Delete")
}

/// The claims (among `claims`, with their ordinal) that writing `manifest` over the StatefulSet
/// `name` (`live`) makes its controller delete: with the retention policy it has after the
/// write saying `whenScaled: Delete`, the claims of its templates of ordinals at or above the
/// manifest's replica count.
pub fn scale_down_claims<'c>(
    name: &str,
    manifest: &Value,
    live: &Value,
    claims: &'c [Value],
) -> Vec<(&'c Value, u64)> {
    if !scaling_deletes_claims(manifest, live) {
        return Vec::new();
    }
    let count = replicas(manifest);
    claims_of_templates(name, live, claims)
        .into_iter()
        .filter(|(_, _, ordinal)| *ordinal >= count)
        .map(|(c, _, ordinal)| (c, ordinal))
        .collect()
}

/// `spec.replicas` of a StatefulSet manifest or live object (the server's default when absent).
pub fn replicas(sts: &Value) -> u64 {
    sts.pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1)
}

/// A recipe that deletes a StatefulSet (`--cascade=orphan`) and creates it again never scales
/// it: the manifest it creates gets the replica count the StatefulSet runs with (`live`), whoever
/// set it (`kubectl scale`, an HPA, an earlier spec). Re-created with fewer replicas, the
/// controller would delete the pods above — and with `whenScaled: Delete` their claims — without
/// any line of the plan saying so. The spec's own count is applied by the next apply, as an
/// update with that change's own consent. Returns the reason to show when the count differs
/// from the spec's.
pub fn keep_live_replicas(manifest: &mut Value, live: u64) -> Option<String> {
    let wanted = manifest.pointer("/spec/replicas").and_then(Value::as_u64);
    if let Some(spec) = manifest.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("replicas".into(), Value::from(live));
    }
    (wanted.unwrap_or(1) != live).then(|| {
        format!(
            "re-created with the {live} replicas it runs now, not the spec's {}: a re-create never scales; the next apply changes the count as an update, with its own consent",
            wanted.unwrap_or(1)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn template_claims_are_matched_exactly() {
        assert_eq!(template_claim_ordinal("data-db-0", "data", "db"), Some(0));
        assert_eq!(template_claim_ordinal("data-db-12", "data", "db"), Some(12));
        for other in [
            "data-db-",
            "data-db-+1",
            "data-db-x",
            "data-db-replica-0",
            "data-dbx-0",
            "datadb-0",
        ] {
            assert_eq!(template_claim_ordinal(other, "data", "db"), None, "{other}");
        }
        let sts = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}, {"metadata": {"name": "wal"}}]}});
        let claims = vec![
            json!({"metadata": {"name": "wal-db-3"}}),
            json!({"metadata": {"name": "data-db-replica-0"}}),
            json!({"metadata": {"name": "data-db-0"}}),
        ];
        let found: Vec<(String, u64)> = claims_of_templates("db", &sts, &claims)
            .into_iter()
            .map(|(_, t, o)| (t, o))
            .collect();
        assert_eq!(found, vec![("wal".to_string(), 3), ("data".to_string(), 0)]);
    }

    #[test]
    fn related_objects_are_named_exactly() {
        let sts = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "db"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        assert_eq!(
            Rules.related("db", Some(&sts)),
            vec![
                Related::Pods {
                    selector: "app=db".into()
                },
                Related::Claims {
                    names: vec!["data-db-0".into(), "data-db-1".into()]
                }
            ]
        );
    }

    #[test]
    fn a_rebuild_keeps_the_live_replicas() {
        let mut m = json!({"spec": {"replicas": 2}});
        let reason = keep_live_replicas(&mut m, 4).expect("differs from the spec");
        assert_eq!(m["spec"]["replicas"], 4);
        assert!(
            reason.contains("the 4 replicas it runs now, not the spec's 2"),
            "{reason}"
        );
        let mut m = json!({"spec": {"replicas": 3}});
        assert_eq!(keep_live_replicas(&mut m, 3), None);
        assert_eq!(m["spec"]["replicas"], 3);
        // No count in the spec: the server's default (1) is what the create would set.
        let mut m = json!({"spec": {}});
        assert!(keep_live_replicas(&mut m, 2).is_some());
        assert_eq!(m["spec"]["replicas"], 2);
        let mut m = json!({"spec": {}});
        assert_eq!(keep_live_replicas(&mut m, 1), None);
        assert_eq!(m["spec"]["replicas"], 1);
    }
}
