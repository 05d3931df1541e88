//! What lets a plan skip the server's dry run for an object without being any less exact: the
//! fingerprint of the manifest apply last wrote (or last found unchanged), the fingerprint of the
//! fields our field manager owned right after, and the object's uid and generation then — kept
//! in the stack's inventory.
//!
//! Applying the same manifest again changes nothing as long as nobody touched what that manifest
//! sets. Server-side apply records exactly that in `managedFields`: when another writer changes
//! or removes a field we set (`kubectl scale`, `kubectl edit`, a controller, a forced apply), the
//! field leaves our manager's set, so the set's fingerprint changes. So an object is
//! [`unchanged_since_applied`] when its uid, generation and our field set are what they were and
//! the spec's manifest is the one applied; anything else — another manifest, another writer,
//! a re-created object, no record — goes to the server's dry run as before.

use crate::kinds::FIELD_MANAGER;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What an object looked like right after apply wrote (or confirmed) a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The object's uid.
    pub uid: String,
    /// [`manifest`] of the manifest applied.
    pub applied: String,
    /// [`fields`] of the object then (absent: our manager held no apply entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    /// `metadata.generation` then (absent for kinds without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl Fingerprint {
    /// The fingerprint of `obj` as a write of (or a dry run confirming) `manifest` left it.
    pub fn of(obj: &Value, manifest: &Value) -> Fingerprint {
        Fingerprint {
            uid: obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            applied: self::manifest(manifest),
            fields: fields(obj),
            generation: generation(obj),
        }
    }
}

/// 64 bits of SHA-256, in hex: enough to tell versions of one object apart, short enough for an
/// inventory of 10,000 objects to stay within a ConfigMap.
fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of a manifest (its JSON text; key order is the builder's, which is stable).
pub fn manifest(manifest: &Value) -> String {
    short_hash(&serde_json::to_vec(manifest).unwrap_or_default())
}

/// The fingerprint of the fields our manager owns through apply on the object itself (status
/// and other subresources aside), or `None` when it owns none that way.
pub fn fields(obj: &Value) -> Option<String> {
    let entry = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)?
        .iter()
        .find(|f| {
            f["manager"] == FIELD_MANAGER
                && f["operation"] == "Apply"
                && f["subresource"].as_str().unwrap_or_default().is_empty()
        })?;
    let text = serde_json::to_vec(&(&entry["apiVersion"], &entry["fieldsV1"])).ok()?;
    Some(short_hash(&text))
}

/// `metadata.generation`, for kinds that keep one.
pub fn generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

/// True when applying `manifest` to `live` would change nothing, as far as the record of the
/// last apply tells: the same object (uid), the same manifest, nobody else's write to what our
/// manager owns (the field set's fingerprint), no change of the spec since (generation).
/// `false` is not "changed", only "ask the server".
pub fn unchanged_since_applied(
    manifest: &Value,
    live: &Value,
    recorded: Option<&Fingerprint>,
) -> bool {
    let Some(r) = recorded else {
        return false;
    };
    let uid = live.pointer("/metadata/uid").and_then(Value::as_str);
    r.fields.is_some()
        && uid == Some(r.uid.as_str())
        && live.pointer("/metadata/deletionTimestamp").is_none()
        && r.applied == self::manifest(manifest)
        && fields(live) == r.fields
        && generation(live) == r.generation
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(fields: Value, generation: i64) -> Value {
        json!({
            "metadata": {
                "name": "db", "uid": "u1", "generation": generation,
                "managedFields": [
                    {"manager": "kubectl-stateful", "operation": "Apply", "apiVersion": "apps/v1",
                     "fieldsType": "FieldsV1", "fieldsV1": fields, "time": "2026-01-01T00:00:00Z"},
                    {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                     "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
                ]
            },
            "spec": {"replicas": 3}
        })
    }

    #[test]
    fn the_same_manifest_on_an_untouched_object_is_unchanged() {
        let manifest = json!({"spec": {"replicas": 3}});
        let ours = json!({"f:spec": {"f:replicas": {}}});
        let live = object(ours.clone(), 1);
        let recorded = Fingerprint::of(&live, &manifest);
        assert!(unchanged_since_applied(&manifest, &live, Some(&recorded)));
        // A status write by a controller and a new timestamp do not matter.
        let mut later = live.clone();
        later["metadata"]["managedFields"][0]["time"] = json!("2026-02-02T00:00:00Z");
        later["metadata"]["managedFields"][1]["fieldsV1"] = json!({"f:status": {"f:x": {}}});
        later["status"] = json!({"readyReplicas": 3});
        assert!(unchanged_since_applied(&manifest, &later, Some(&recorded)));
    }

    #[test]
    fn anything_else_asks_the_server() {
        let manifest = json!({"spec": {"replicas": 3}});
        let live = object(json!({"f:spec": {"f:replicas": {}}}), 1);
        let recorded = Fingerprint::of(&live, &manifest);
        // No record.
        assert!(!unchanged_since_applied(&manifest, &live, None));
        // Another manifest.
        let other = json!({"spec": {"replicas": 4}});
        assert!(!unchanged_since_applied(&other, &live, Some(&recorded)));
        // Another writer took a field from us (kubectl scale).
        let taken = object(json!({"f:spec": {}}), 2);
        assert!(!unchanged_since_applied(&manifest, &taken, Some(&recorded)));
        // The spec changed (generation) without touching our fields.
        let moved = object(json!({"f:spec": {"f:replicas": {}}}), 2);
        assert!(!unchanged_since_applied(&manifest, &moved, Some(&recorded)));
        // Re-created by someone else: another uid.
        let mut again = live.clone();
        again["metadata"]["uid"] = json!("u2");
        assert!(!unchanged_since_applied(&manifest, &again, Some(&recorded)));
        // Being deleted.
        let mut going = live.clone();
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!unchanged_since_applied(&manifest, &going, Some(&recorded)));
        // Our manager holds no apply entry (created and not handed over).
        let mut update = live.clone();
        update["metadata"]["managedFields"][0]["operation"] = json!("Update");
        let no_fields = Fingerprint::of(&update, &manifest);
        assert_eq!(no_fields.fields, None);
        assert!(!unchanged_since_applied(
            &manifest,
            &update,
            Some(&no_fields)
        ));
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        let m = json!({"a": 1, "b": [1, 2]});
        assert_eq!(manifest(&m).len(), 16);
        assert_eq!(manifest(&m), manifest(&m.clone()));
        assert_ne!(manifest(&m), manifest(&json!({"a": 2, "b": [1, 2]})));
    }
}
