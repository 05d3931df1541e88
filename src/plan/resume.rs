//! What an interrupted change left behind, in the plan's words. A StatefulSet deleted with
//! `--cascade=orphan` (a replace or a claim-template resize stopped after the delete) is planned
//! as a create; its pods and claims are still there, and the create adopts them.

use super::{Action, Step};
use crate::gateway::{Gateway, ListQuery};
use crate::kinds::Kind;
use serde_json::Value;

fn str_at<'v>(v: &'v Value, p: &str) -> &'v str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// The claims of a StatefulSet's templates among `claims` (`<template>-<name>-<ordinal>`).
pub fn template_claims(manifest: &Value, name: &str, claims: &[Value]) -> Vec<String> {
    let mut out: Vec<String> =
        crate::kinds::statefulset::claims_of_templates(name, manifest, claims)
            .into_iter()
            .map(|(c, _, _)| str_at(c, "/metadata/name").to_string())
            .collect();
    out.sort();
    out
}

/// The pods among `pods` that no controller owns and that are named like the StatefulSet's
/// (`<name>-<ordinal>`).
pub fn orphaned_pods(name: &str, pods: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = pods
        .iter()
        .filter(|p| {
            !p.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|o| o["controller"] == true)
        })
        .map(|p| str_at(p, "/metadata/name"))
        .filter(|p| {
            p.strip_prefix(&format!("{name}-"))
                .is_some_and(|n| !n.is_empty() && n.chars().all(|d| d.is_ascii_digit()))
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The replica count the orphaned pods (`<name>-<ordinal>`) show the StatefulSet ran with: the
/// highest ordinal plus one.
pub fn replicas_of_orphans(name: &str, pods: &[String]) -> Option<u64> {
    pods.iter()
        .filter_map(|p| p.strip_prefix(&format!("{name}-"))?.parse::<u64>().ok())
        .max()
        .map(|o| o + 1)
}

/// The reason of a StatefulSet create that finds its pods or claims left behind.
pub fn adoption_reason(pods: &[String], claims: &[String]) -> Option<String> {
    if pods.is_empty() && claims.is_empty() {
        return None;
    }
    let list = |what: &str, names: &[String]| {
        (!names.is_empty()).then(|| format!("{what} {}", names.join(", ")))
    };
    let found: Vec<String> = [list("pods", pods), list("claims", claims)]
        .into_iter()
        .flatten()
        .collect();
    Some(format!(
        "the StatefulSet is missing but its {} are there (a replace or resize interrupted after the orphan delete?): the create adopts them; pods whose template is unchanged keep running",
        found.join(" and ")
    ))
}

/// Adds [`adoption_reason`] to each StatefulSet create whose pods or claims exist.
pub async fn explain(
    gw: &dyn Gateway,
    steps: &mut [Step],
    claims: &[Value],
    namespace_exists: bool,
) {
    if !namespace_exists {
        return;
    }
    let mut all_pods: Option<Vec<Value>> = None;
    for step in steps
        .iter_mut()
        .filter(|s| s.object.kind == Kind::StatefulSet && s.action == Action::Create)
    {
        let name = step.object.name.clone();
        let ns = step.object.namespace.clone().unwrap_or_default();
        let selector = step
            .manifest
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        // One list of the namespace's pods for every StatefulSet to create (read once, and only
        // when there is one). Reading pods only explains; a failure leaves the plan as it is.
        if all_pods.is_none() {
            let query = ListQuery::new(
                crate::kinds::resource_of::<k8s_openapi::api::core::v1::Pod>(),
                Some(&ns),
            );
            all_pods = Some(gw.list(&query).await.unwrap_or_default());
        }
        let pods: Vec<Value> = if selector.is_empty() {
            Vec::new()
        } else {
            crate::plan::observe::labelled(all_pods.as_deref().unwrap_or_default(), &selector)
                .cloned()
                .collect()
        };
        let pods = orphaned_pods(&name, &pods);
        let claims = template_claims(&step.manifest, &name, claims);
        if let Some(reason) = adoption_reason(&pods, &claims) {
            step.reasons.push(reason);
        }
        // Created with fewer replicas than the orphaned pods show it ran with, it would delete
        // the pods above (and, with whenScaled: Delete, their claims): it keeps that count.
        if let Some(ran) = replicas_of_orphans(&name, &pods)
            .filter(|n| *n > crate::kinds::statefulset::replicas(&step.manifest))
        {
            super::build::keep_replicas(step, ran);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A StatefulSet to create whose orphaned pods show it ran with more replicas than the spec
    /// says keeps that count (creating it with fewer would delete the pods above, and with
    /// `whenScaled: Delete` their claims); as many or fewer orphans leave the spec's count.
    #[tokio::test]
    async fn a_create_that_finds_more_orphaned_pods_keeps_their_count() {
        use crate::gateway::fake::FakeGateway;
        use crate::kinds::ObjectRef;
        let fake = FakeGateway::new();
        for n in 0..4 {
            fake.put(
                &ObjectRef::new(Kind::Pod, "ns", &format!("db-{n}")),
                json!({"metadata": {"namespace": "ns", "labels": {"app": "db"}}}),
            );
        }
        let create = |replicas: u64| {
            let mut s = crate::plan::ops::tests::step(Kind::StatefulSet, "db", Action::Create);
            s.object = ObjectRef::new(Kind::StatefulSet, "ns", "db");
            s.manifest = json!({"spec": {"replicas": replicas,
                "selector": {"matchLabels": {"app": "db"}}}});
            s.after = Some(s.manifest.clone());
            s
        };
        let mut steps = vec![create(2)];
        explain(&fake, &mut steps, &[], true).await;
        assert_eq!(steps[0].manifest["spec"]["replicas"], 4);
        assert_eq!(steps[0].after.as_ref().unwrap()["spec"]["replicas"], 4);
        assert!(
            steps[0]
                .reasons
                .iter()
                .any(|r| r.contains("the 4 replicas it runs now, not the spec's 2")),
            "{:?}",
            steps[0].reasons
        );
        for replicas in [4, 6] {
            let mut steps = vec![create(replicas)];
            explain(&fake, &mut steps, &[], true).await;
            assert_eq!(steps[0].manifest["spec"]["replicas"], replicas);
            assert!(
                !steps[0]
                    .reasons
                    .iter()
                    .any(|r| r.contains("replicas it runs now")),
                "{:?}",
                steps[0].reasons
            );
        }
    }

    #[test]
    fn orphaned_pods_and_left_claims_are_named() {
        let manifest = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let claims = vec![
            json!({"metadata": {"name": "data-db-1"}}),
            json!({"metadata": {"name": "data-db-0"}}),
            json!({"metadata": {"name": "data-dbx-0"}}),
            json!({"metadata": {"name": "other"}}),
        ];
        assert_eq!(
            template_claims(&manifest, "db", &claims),
            vec!["data-db-0", "data-db-1"]
        );
        let pods = vec![
            json!({"metadata": {"name": "db-0"}}),
            json!({"metadata": {"name": "db-1", "ownerReferences": [{"controller": true}]}}),
            json!({"metadata": {"name": "db-x"}}),
        ];
        assert_eq!(orphaned_pods("db", &pods), vec!["db-0"]);
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            replicas_of_orphans("db", &names(&["db-0", "db-3", "db-1"])),
            Some(4)
        );
        assert_eq!(replicas_of_orphans("db", &names(&["db-x"])), None);
        assert_eq!(replicas_of_orphans("db", &[]), None);
        assert_eq!(
            adoption_reason(&["db-0".into()], &["data-db-0".into()]).unwrap(),
            "the StatefulSet is missing but its pods db-0 and claims data-db-0 are there (a replace or resize interrupted after the orphan delete?): the create adopts them; pods whose template is unchanged keep running"
        );
        assert_eq!(adoption_reason(&[], &[]), None);
    }
}
