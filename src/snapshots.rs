//! On-demand snapshots of a stack's claims (`kubectl stateful snapshot`) and their listing
//! (`kubectl stateful snapshots`). Every claim of the stack — standalone ones from the spec and
//! those made from its StatefulSets' templates, any ordinal — can be snapshotted; the snapshots
//! carry the stack's labels, the claim's name and a timestamp, and are waited for until ready.

use crate::apply::waits;
use crate::gateway::{Gateway, ListQuery};
use crate::kinds::statefulset::template_claim_ordinal;
use crate::kinds::{Kind, MANAGED_BY, ObjectRef, STACK_LABEL};
use crate::spec::Spec;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

/// Label naming the claim an on-demand snapshot was taken of.
pub const SNAPSHOT_OF: &str = "kubectl-stateful/snapshot-of";
/// Label of an on-demand snapshot: when it was taken, in UTC (`20260102T150405Z`).
pub const TAKEN_AT: &str = "kubectl-stateful/taken-at";

/// The longest object name (a DNS subdomain) and label value Kubernetes accepts.
const MAX_NAME: usize = 253;
const MAX_LABEL_VALUE: usize = 63;

/// `value` cut to at most `max` characters, ending with a letter or digit as names and label
/// values must (the values here are names, all ASCII).
fn cut(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
}

/// The name of the `attempt`th on-demand snapshot of `claim` taken at `stamp`:
/// `<claim>-<stamp>`, `-2`, `-3`… for another one in the same second; the claim's part is cut
/// so that the name stays within 253 characters.
fn on_demand_name(claim: &str, stamp: &str, attempt: usize) -> String {
    let suffix = match attempt {
        1 => format!("-{stamp}"),
        n => format!("-{stamp}-{n}"),
    };
    format!("{}{suffix}", cut(claim, MAX_NAME - suffix.len()))
}

/// Why snapshots could not be taken or listed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SnapshotError {
    #[error("this cluster has no snapshot.storage.k8s.io/v1 API")]
    #[diagnostic(help(
        "VolumeSnapshots need the external-snapshotter CRDs and the snapshot controller, and a CSI driver that can snapshot"
    ))]
    NoApi,
    #[error("{0} is not a claim of stack {1}")]
    #[diagnostic(help("{2}"))]
    NotInStack(String, String, String),
    #[error("stack {0} has no claims in namespace {1}")]
    NoClaims(String, String),
    #[error("{what}: {message}")]
    Api { what: String, message: String },
    #[error("snapshots not ready: {}", .0.join("; "))]
    NotReady(Vec<String>),
}

/// A snapshot of `claim` labelled with the stack and the claim (those of `kubectl stateful
/// snapshot` and those apply takes before deleting data alike); without `class`, the default
/// class of the claim's driver is filled in by the snapshot controller.
pub fn manifest(
    namespace: &str,
    name: &str,
    claim: &str,
    class: Option<&str>,
    stack: &str,
) -> Value {
    let mut spec = json!({ "source": { "persistentVolumeClaimName": claim } });
    if let Some(class) = class {
        spec["volumeSnapshotClassName"] = json!(class);
    }
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                MANAGED_BY.0: MANAGED_BY.1,
                STACK_LABEL: cut(stack, MAX_LABEL_VALUE),
                SNAPSHOT_OF: cut(claim, MAX_LABEL_VALUE),
            },
        },
        "spec": spec,
    })
}

/// The stack's claims that exist in the namespace: the spec's standalone claims and the claims
/// of its StatefulSets' templates.
pub async fn stack_claims(
    gw: &dyn Gateway,
    spec: &Spec,
    namespace: &str,
) -> Result<Vec<String>, SnapshotError> {
    let query = ListQuery::new(Kind::PersistentVolumeClaim.api_resource(), Some(namespace));
    let claims = gw.list(&query).await.map_err(|f| SnapshotError::Api {
        what: "listing claims".into(),
        message: f.text(),
    })?;
    let standalone: Vec<&str> = spec
        .claims
        .iter()
        .map(|c| c.get_ref().name.get_ref().as_str())
        .collect();
    let mut out = Vec::new();
    for c in &claims {
        let name = crate::live::name_of(c);
        let from_template = spec.statefulsets.iter().any(|s| {
            let s = s.get_ref();
            s.volume_claims.iter().any(|t| {
                template_claim_ordinal(&name, t.get_ref().name.get_ref(), s.name.get_ref())
                    .is_some()
            })
        });
        if standalone.contains(&name.as_str()) || from_template {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Takes a snapshot of each claim (all of the stack's, or those named) and waits until each is
/// ready. Returns `(claim, snapshot, message)` per claim.
pub async fn take(
    gw: &dyn Gateway,
    spec: &Spec,
    namespace: &str,
    only: &[String],
    class: Option<&str>,
    timeout: Duration,
) -> Result<Vec<(String, String, String)>, SnapshotError> {
    let stack = spec.stack_name();
    let claims = stack_claims(gw, spec, namespace).await?;
    for name in only {
        if !claims.contains(name) {
            return Err(SnapshotError::NotInStack(
                format!("pvc/{name}"),
                stack.to_string(),
                format!("the stack's claims: {}", claims.join(", ")),
            ));
        }
    }
    let chosen: Vec<String> = if only.is_empty() {
        claims
    } else {
        only.to_vec()
    };
    if chosen.is_empty() {
        return Err(SnapshotError::NoClaims(
            stack.to_string(),
            namespace.to_string(),
        ));
    }
    let now = Timestamp::now();
    let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
    let taken_at = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut taken = Vec::new();
    for claim in &chosen {
        // Two snapshots of a claim within one second get `-2`, `-3`… (bounded).
        let mut attempt = 1;
        loop {
            let name = on_demand_name(claim, &stamp, attempt);
            let id = ObjectRef::new(Kind::VolumeSnapshot, namespace, &name);
            let mut manifest = manifest(namespace, &name, claim, class, stack);
            manifest["metadata"]["labels"][TAKEN_AT] = json!(taken_at);
            match gw.create(&id, &manifest, false).await {
                Ok(_) => {
                    taken.push((claim.clone(), id));
                    break;
                }
                Err(f) if f.is_already_exists() && attempt < 10 => attempt += 1,
                Err(f) if f.is_not_found() => return Err(SnapshotError::NoApi),
                Err(f) => {
                    return Err(SnapshotError::Api {
                        what: format!("creating volumesnapshot/{name}"),
                        message: f.text(),
                    });
                }
            }
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for (claim, id) in taken {
        let mut events = gw.watch(&id);
        let status = tokio::time::timeout_at(deadline, async {
            let mut last = waits::snapshot(None);
            // Bounded by the deadline above.
            while let Some(item) = events.next().await {
                last = match item {
                    Ok(obj) => waits::snapshot(obj.as_ref()),
                    Err(f) => {
                        return waits::WaitStatus {
                            done: true,
                            ok: false,
                            message: f.text(),
                        };
                    }
                };
                if last.done {
                    break;
                }
            }
            last
        })
        .await;
        match status {
            Ok(s) if s.ok => out.push((claim, id.name.clone(), s.message)),
            Ok(s) => failures.push(format!("volumesnapshot/{}: {}", id.name, s.message)),
            Err(_) => failures.push(format!(
                "volumesnapshot/{}: not ready within {}s",
                id.name,
                timeout.as_secs()
            )),
        }
    }
    if failures.is_empty() {
        Ok(out)
    } else {
        Err(SnapshotError::NotReady(failures))
    }
}

/// The stack's snapshots (from the spec and on demand): name, claim, ready, size, age.
pub async fn list(
    gw: &dyn Gateway,
    stack: &str,
    namespace: &str,
) -> Result<Vec<Value>, SnapshotError> {
    let selector = format!("{}={},{}={stack}", MANAGED_BY.0, MANAGED_BY.1, STACK_LABEL);
    let query =
        ListQuery::new(Kind::VolumeSnapshot.api_resource(), Some(namespace)).labels(&selector);
    let items = gw.list(&query).await.map_err(|f| {
        if f.is_not_found() {
            SnapshotError::NoApi
        } else {
            SnapshotError::Api {
                what: "listing snapshots".into(),
                message: f.text(),
            }
        }
    })?;
    let now = Timestamp::now();
    Ok(items
        .iter()
        .map(|s| {
            let text = |p: &str| {
                s.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let age = text("/metadata/creationTimestamp")
                .parse::<Timestamp>()
                .map(|t| age(now.as_second() - t.as_second()))
                .unwrap_or_default();
            json!({
                "name": text("/metadata/name"),
                "claim": text("/spec/source/persistentVolumeClaimName"),
                "ready": s.pointer("/status/readyToUse").and_then(Value::as_bool).unwrap_or(false),
                "size": text("/status/restoreSize"),
                "age": age,
            })
        })
        .collect())
}

/// `45s`, `12m`, `3h`, `2d`, like kubectl's AGE column.
fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The listing as a table.
pub fn table(rows: &[Value]) -> String {
    let mut out = format!(
        "{:<40} {:<24} {:<6} {:<8} {}\n",
        "NAME", "CLAIM", "READY", "SIZE", "AGE"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<40} {:<24} {:<6} {:<8} {}\n",
            r["name"].as_str().unwrap_or_default(),
            r["claim"].as_str().unwrap_or_default(),
            r["ready"].as_bool().unwrap_or(false),
            r["size"].as_str().unwrap_or_default(),
            r["age"].as_str().unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::fake::FakeGateway;

    /// A fake cluster whose namespace `ns` holds the claim `data` of stack `s`, and that has
    /// no snapshot API.
    fn no_snapshot_api() -> (FakeGateway, Spec) {
        let gw = FakeGateway::new();
        gw.without_api(Kind::VolumeSnapshot);
        gw.put(
            &ObjectRef::new(Kind::PersistentVolumeClaim, "ns", "data"),
            json!({"metadata": {"name": "data", "namespace": "ns"}, "status": {"phase": "Bound"}}),
        );
        let spec = crate::spec::load(
            "stack.toml",
            "name = \"s\"\n[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n",
            "s",
        )
        .unwrap();
        (gw, spec)
    }

    fn says_no_api(e: &SnapshotError) {
        use miette::Diagnostic;
        assert!(matches!(e, SnapshotError::NoApi), "{e:?}");
        assert_eq!(
            e.to_string(),
            "this cluster has no snapshot.storage.k8s.io/v1 API"
        );
        assert_eq!(
            e.help().unwrap().to_string(),
            "VolumeSnapshots need the external-snapshotter CRDs and the snapshot controller, and a CSI driver that can snapshot"
        );
    }

    #[tokio::test]
    async fn taking_a_snapshot_without_the_snapshot_api_says_so() {
        let (gw, spec) = no_snapshot_api();
        let err = take(&gw, &spec, "ns", &[], None, Duration::from_secs(5))
            .await
            .expect_err("no snapshot API");
        says_no_api(&err);
        assert_eq!(
            gw.calls("create"),
            1,
            "one try, no retry under another name"
        );
    }

    #[tokio::test]
    async fn listing_snapshots_without_the_snapshot_api_says_so() {
        let (gw, _) = no_snapshot_api();
        let err = list(&gw, "s", "ns").await.expect_err("no snapshot API");
        says_no_api(&err);
    }

    #[test]
    fn names_and_label_values_stay_within_kubernetes_limits() {
        assert_eq!(
            on_demand_name("data-db-0", "20260102-150405", 1),
            "data-db-0-20260102-150405"
        );
        assert_eq!(
            on_demand_name("data-db-0", "20260102-150405", 3),
            "data-db-0-20260102-150405-3"
        );
        // A claim name of 253 characters: cut, never ending in a dash before the stamp.
        let long = format!("{}-{}", "a".repeat(236), "b".repeat(16));
        for attempt in [1, 10] {
            let name = on_demand_name(&long, "20260102-150405", attempt);
            assert!(name.len() <= MAX_NAME, "{}", name.len());
            assert!(name.starts_with(&"a".repeat(230)));
            assert!(!name.contains("--"), "{name}");
        }
        let m = manifest("ns", "n", &long, None, &"s".repeat(70));
        let labels = m["metadata"]["labels"].as_object().unwrap();
        for key in [SNAPSHOT_OF, STACK_LABEL] {
            let value = labels[key].as_str().unwrap();
            assert!(value.len() <= MAX_LABEL_VALUE, "{key}: {value}");
            assert!(
                value.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{value}"
            );
        }
        assert_eq!(labels[SNAPSHOT_OF], "a".repeat(63));
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(45), "45s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(3 * 86_400), "3d");
    }
}
