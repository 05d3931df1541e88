//! The stack's inventory: what the stack owns, kept in one ConfigMap per stack in the stack's
//! namespace (`kubectl-stateful-<stack>`), written at the end of every apply.
//!
//! Each entry records an object's identity and uid, whether the stack created it or adopted it
//! (it existed before, without the stack's labels), and whether the spec protected it. Plan and
//! prune use it together with the labels: an object whose uid changed since it was recorded
//! (deleted and re-created by someone else) is not the stack's to delete; an adopted object is
//! released, never deleted; a protected object stays protected after its table left the spec.

use crate::gateway::{ApiFailure, ApplyOptions, Gateway};
use crate::kinds::{Kind, MANAGED_BY, ObjectRef, STACK_LABEL};
use crate::plan::fingerprint::Fingerprint;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;

/// The ConfigMap's data key.
const DATA_KEY: &str = "inventory.json";
/// Its binaryData key when the JSON is large: the same JSON, gzip-compressed (a ConfigMap holds
/// at most 1 MiB; an inventory of 10,000 objects is about 2 MB of JSON and 0.5 MB compressed).
const GZIP_KEY: &str = "inventory.json.gz";
/// Above this size the JSON is stored compressed.
const PLAIN_LIMIT: usize = 256 * 1024;

/// One object the stack owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub object: ObjectRef,
    pub uid: String,
    /// It existed before the stack took it over: released, never deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// `protect = true` when it was last applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protect: bool,
    /// The fingerprint of the manifest last applied (or confirmed unchanged), for plans that
    /// skip the dry run of untouched objects (see [`crate::plan::fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// The fingerprint of our field manager's fields right after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    /// The object's generation right after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl Entry {
    /// An entry without a record of the last apply.
    pub fn new(object: ObjectRef, uid: String, adopted: bool, protect: bool) -> Entry {
        Entry {
            object,
            uid,
            adopted,
            protect,
            applied: None,
            fields: None,
            generation: None,
        }
    }

    /// The record of the last apply, if there is one.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        Some(Fingerprint {
            uid: self.uid.clone(),
            applied: self.applied.clone()?,
            fields: self.fields.clone(),
            generation: self.generation,
        })
    }

    fn with(mut self, f: Option<&Fingerprint>) -> Entry {
        if let Some(f) = f.filter(|f| f.uid == self.uid) {
            self.applied = Some(f.applied.clone());
            self.fields = f.fields.clone();
            self.generation = f.generation;
        }
        self
    }
}

/// Everything the stack owns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub version: u32,
    pub objects: Vec<Entry>,
}

impl Inventory {
    /// The entry for `id`, if recorded.
    pub fn get(&self, id: &ObjectRef) -> Option<&Entry> {
        self.objects.iter().find(|e| &e.object == id)
    }

    /// Where the inventory of `stack` lives.
    pub fn object_ref(namespace: &str, stack: &str) -> ObjectRef {
        ObjectRef::new(
            Kind::ConfigMap,
            namespace,
            &format!("kubectl-stateful-{stack}"),
        )
    }

    /// Parses the ConfigMap (a missing or unreadable one is an empty inventory).
    pub fn from_config_map(cm: &Value) -> Inventory {
        if let Some(text) = cm["data"][DATA_KEY].as_str() {
            return serde_json::from_str(text).unwrap_or_default();
        }
        let gz = cm["binaryData"][GZIP_KEY]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        let mut text = Vec::new();
        match gz {
            Some(gz)
                if flate2::read::GzDecoder::new(&gz[..])
                    .take(64 << 20)
                    .read_to_end(&mut text)
                    .is_ok() =>
            {
                serde_json::from_slice(&text).unwrap_or_default()
            }
            _ => Inventory::default(),
        }
    }

    /// An index of the entries by object, for plans of many objects.
    pub fn index(&self) -> HashMap<&ObjectRef, &Entry> {
        self.objects.iter().map(|e| (&e.object, e)).collect()
    }

    /// The ConfigMap manifest holding this inventory.
    pub fn to_config_map(&self, namespace: &str, stack: &str) -> Value {
        let id = Self::object_ref(namespace, stack);
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": id.name,
                "namespace": namespace,
                "labels": { MANAGED_BY.0: MANAGED_BY.1, STACK_LABEL: stack },
            },
        });
        let text = if self.objects.len() <= 200 {
            serde_json::to_string_pretty(self)
        } else {
            serde_json::to_string(self)
        }
        .unwrap_or_default();
        if text.len() <= PLAIN_LIMIT {
            cm["data"] = json!({ DATA_KEY: text });
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let _ = gz.write_all(text.as_bytes());
            let gz = gz.finish().unwrap_or_default();
            cm["binaryData"] =
                json!({ GZIP_KEY: base64::engine::general_purpose::STANDARD.encode(gz) });
        }
        cm
    }
}

/// Reads the stack's inventory (empty when there is none yet).
pub async fn read(gw: &dyn Gateway, namespace: &str, stack: &str) -> Result<Inventory, ApiFailure> {
    Ok(gw
        .get(&Inventory::object_ref(namespace, stack))
        .await?
        .map(|cm| Inventory::from_config_map(&cm))
        .unwrap_or_default())
}

/// Writes the stack's inventory.
pub async fn write(
    gw: &dyn Gateway,
    namespace: &str,
    stack: &str,
    inventory: &Inventory,
) -> Result<(), ApiFailure> {
    let id = Inventory::object_ref(namespace, stack);
    if inventory.objects.is_empty() {
        // Nothing left to own (a destroyed stack): the record goes too.
        if let Some(cm) = gw.get(&id).await? {
            let uid = cm
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            gw.delete(&id, uid, None, crate::gateway::Propagation::Background)
                .await?;
        }
        return Ok(());
    }
    let manifest = inventory.to_config_map(namespace, stack);
    gw.apply(
        &id,
        &manifest,
        ApplyOptions {
            dry_run: false,
            force: true,
        },
    )
    .await
    .map(|_| ())
}

/// What apply wrote: the fingerprint each successful write or create of a step's manifest left.
#[derive(Debug, Default)]
pub struct Applied(Mutex<HashMap<ObjectRef, Fingerprint>>);

impl Applied {
    /// Notes that `manifest` was written to `id` and the server answered `obj`.
    pub fn note(&self, id: &ObjectRef, obj: &Value, manifest: &Value) {
        let f = Fingerprint::of(obj, manifest);
        if let Ok(mut map) = self.0.lock() {
            map.insert(id.clone(), f);
        }
    }

    fn get(&self, id: &ObjectRef) -> Option<Fingerprint> {
        self.0.lock().ok()?.get(id).cloned()
    }
}

/// The inventory after `plan` was applied: the plan's objects that exist now, with the record
/// of what apply wrote to them (or found unchanged), adoptions remembered, released and deleted
/// objects dropped, and the objects that left the spec but were kept carried over from
/// `previous`. Objects created by a recipe whose write was not recorded are read for their uid.
pub async fn after_apply(
    gw: &dyn Gateway,
    plan: &crate::plan::Plan,
    previous: &Inventory,
    applied: &Applied,
) -> Inventory {
    use crate::plan::Action;
    let before = previous.index();
    let mut objects = Vec::new();
    for step in &plan.steps {
        if matches!(
            step.action,
            Action::Delete | Action::Release | Action::Error
        ) || step.object.kind == Kind::Namespace
        {
            continue;
        }
        let written = applied.get(&step.object);
        // Unchanged objects keep what the plan saw: the dry run (or the record) confirmed that
        // applying the manifest changes nothing.
        let confirmed = match (&step.live, step.action) {
            (Some(live), Action::NoOp) if live.fields.is_some() => Some(Fingerprint {
                uid: live.uid.clone(),
                applied: crate::plan::fingerprint::manifest(&step.manifest),
                fields: live.fields.clone(),
                generation: live.generation,
            }),
            _ => None,
        };
        let uid = match (&written, &step.live, step.action) {
            (Some(f), _, _) if !f.uid.is_empty() => Some(f.uid.clone()),
            // A create is recorded only on its own answer: when it failed (someone else's
            // object took the name after the plan), what is there now is not the stack's.
            (_, _, Action::Create) => None,
            (_, Some(live), a) if a != Action::Replace && a != Action::Resize => {
                Some(live.uid.clone())
            }
            _ => gw.get(&step.object).await.ok().flatten().and_then(|o| {
                o.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
        };
        let Some(uid) = uid else {
            continue;
        };
        // What proves that the stack created the object: this apply's own create, or the
        // previous entry for this very object (for a re-create, the entry of the object it
        // replaced). Without proof it is recorded as adopted: prune and destroy release it,
        // never delete it (an inventory deleted by hand must not turn adopted objects into
        // created ones).
        let was = before
            .get(&step.object)
            .filter(|e| e.uid == uid)
            .or_else(|| {
                let replaced = step.live.as_ref().map(|l| l.uid.as_str());
                before.get(&step.object).filter(|e| {
                    matches!(step.action, Action::Replace | Action::Resize)
                        && Some(e.uid.as_str()) == replaced
                })
            });
        let adopted = step.action == Action::Adopt
            || match was {
                Some(e) => e.adopted,
                None => step.action != Action::Create,
            };
        objects.push(
            Entry::new(step.object.clone(), uid, adopted, step.protect)
                .with(written.as_ref().or(confirmed.as_ref())),
        );
    }
    let removed: std::collections::HashSet<&ObjectRef> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Delete | Action::Release))
        .map(|s| &s.object)
        .collect();
    let not_in_spec: std::collections::HashSet<&ObjectRef> = plan.not_in_spec.iter().collect();
    let mut listed: std::collections::HashSet<ObjectRef> =
        objects.iter().map(|o| o.object.clone()).collect();
    for e in &previous.objects {
        let still_listed = not_in_spec.contains(&e.object) && !removed.contains(&e.object);
        if still_listed && listed.insert(e.object.clone()) {
            objects.push(e.clone());
        }
    }
    // Kept by a prune or destroy (e.g. the claims of a removed StatefulSet): still the stack's,
    // so a later `destroy --delete-data` finds them. Objects re-created by someone else are not.
    // Whether the stack created it is checked against the previous record, not taken from the
    // plan (a saved plan is a file): its own entry for this uid, or for a claim, a StatefulSet
    // the stack created whose claims are named `<template>-<statefulset>-<ordinal>`.
    let created_sts: Vec<&str> = previous
        .objects
        .iter()
        .filter(|e| e.object.kind == Kind::StatefulSet && !e.adopted)
        .map(|e| e.object.name.as_str())
        .collect();
    let made_by_created_sts = |id: &ObjectRef| {
        id.kind == Kind::PersistentVolumeClaim
            && created_sts.iter().any(|sts| {
                id.name
                    .split_once(&format!("-{sts}-"))
                    .is_some_and(|(t, _)| {
                        crate::kinds::statefulset::template_claim_ordinal(&id.name, t, sts)
                            .is_some()
                    })
            })
    };
    for k in &plan.kept {
        let proven = before
            .get(&k.object)
            .is_some_and(|e| e.uid == k.uid && !e.adopted)
            || made_by_created_sts(&k.object);
        if k.created_by_stack && proven && !k.uid.is_empty() && listed.insert(k.object.clone()) {
            let was = before.get(&k.object).filter(|e| e.uid == k.uid);
            objects.push(Entry::new(
                k.object.clone(),
                k.uid.clone(),
                was.is_some_and(|e| e.adopted),
                was.is_some_and(|e| e.protect),
            ));
        }
    }
    Inventory {
        version: 1,
        objects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_config_map() {
        let inv = Inventory {
            version: 1,
            objects: vec![Entry::new(
                ObjectRef::new(Kind::StorageClass, "ns", "local-storage"),
                "u1".into(),
                true,
                false,
            )],
        };
        let cm = inv.to_config_map("ns", "db");
        assert_eq!(cm["metadata"]["name"], "kubectl-stateful-db");
        assert_eq!(cm["metadata"]["labels"][STACK_LABEL], "db");
        assert!(cm["data"][DATA_KEY].is_string());
        assert_eq!(Inventory::from_config_map(&cm), inv);
        assert_eq!(Inventory::from_config_map(&json!({})), Inventory::default());
    }

    #[test]
    fn a_large_inventory_is_stored_compressed_within_a_config_map() {
        // 10,000 objects with random uids and fingerprints, as a large stack has.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut hex = |n: usize| {
            let mut out = String::new();
            while out.len() < n {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                out.push_str(&format!("{state:016x}"));
            }
            out.truncate(n);
            out
        };
        let objects = (0..10_000)
            .map(|i| Entry {
                object: ObjectRef::new(Kind::PersistentVolumeClaim, "bench", &format!("claim-{i}")),
                uid: format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12)),
                adopted: false,
                protect: false,
                applied: Some(hex(16)),
                fields: Some(hex(16)),
                generation: Some(1),
            })
            .collect();
        let inv = Inventory {
            version: 1,
            objects,
        };
        let cm = inv.to_config_map("bench", "big");
        assert!(cm.get("data").is_none());
        let stored = cm["binaryData"][GZIP_KEY].as_str().unwrap().len();
        assert!(
            stored < 1024 * 1024,
            "{stored} bytes do not fit a ConfigMap"
        );
        assert_eq!(Inventory::from_config_map(&cm), inv);
    }

    /// Only proof makes an object the stack's creation: the create's own answer, or the
    /// previous record. A failed create records nothing (what took the name is someone else's);
    /// an object found without a record is recorded as adopted (released, never deleted);
    /// a kept object is carried over only when the previous record says the stack created it.
    #[tokio::test]
    async fn only_proof_records_an_object_as_created() {
        use crate::gateway::fake::FakeGateway;
        use crate::plan::{Action, Kept, LiveVersion, Plan};
        let fake = FakeGateway::new();
        let id = |kind, name: &str| ObjectRef::new(kind, "ns", name);
        let mut steps = Vec::new();
        let mut step = |kind, name: &str, action, live_uid: Option<&str>| {
            let mut s = crate::plan::ops::tests::step(kind, name, action);
            s.live = live_uid.map(|uid| LiveVersion {
                uid: uid.into(),
                resource_version: "1".into(),
                fields: None,
                generation: None,
            });
            steps.push(s);
        };
        // Created by this apply (its answer noted), and a create that lost the race.
        step(Kind::PersistentVolumeClaim, "made", Action::Create, None);
        step(Kind::PersistentVolumeClaim, "raced", Action::Create, None);
        fake.put(
            &id(Kind::PersistentVolumeClaim, "raced"),
            json!({"metadata": {"uid": "theirs"}}),
        );
        // Unchanged, with no record (an inventory deleted by hand), and with one.
        step(
            Kind::PersistentVolumeClaim,
            "unrecorded",
            Action::NoOp,
            Some("u-unrecorded"),
        );
        step(Kind::Service, "recorded", Action::NoOp, Some("u-recorded"));
        // Re-created by a recipe: the replaced object's record decides.
        step(Kind::StatefulSet, "db", Action::Replace, Some("u-old-db"));
        step(
            Kind::StatefulSet,
            "adopted",
            Action::Replace,
            Some("u-old-adopted"),
        );
        // Re-created, but the record is of another object of that name (not the one replaced):
        // no proof.
        step(
            Kind::StatefulSet,
            "other",
            Action::Replace,
            Some("u-old-other"),
        );
        let applied = Applied::default();
        applied.note(
            &id(Kind::StatefulSet, "other"),
            &json!({"metadata": {"uid": "u-new-other"}}),
            &json!({}),
        );
        applied.note(
            &id(Kind::PersistentVolumeClaim, "made"),
            &json!({"metadata": {"uid": "u-made"}}),
            &json!({}),
        );
        applied.note(
            &id(Kind::StatefulSet, "db"),
            &json!({"metadata": {"uid": "u-new-db"}}),
            &json!({}),
        );
        applied.note(
            &id(Kind::StatefulSet, "adopted"),
            &json!({"metadata": {"uid": "u-new-adopted"}}),
            &json!({}),
        );
        let previous = Inventory {
            version: 1,
            objects: vec![
                Entry::new(
                    id(Kind::Service, "recorded"),
                    "u-recorded".into(),
                    false,
                    false,
                ),
                Entry::new(id(Kind::StatefulSet, "db"), "u-old-db".into(), false, false),
                Entry::new(
                    id(Kind::StatefulSet, "adopted"),
                    "u-old-adopted".into(),
                    true,
                    false,
                ),
                Entry::new(id(Kind::Deployment, "kept"), "u-kept".into(), false, false),
                Entry::new(
                    id(Kind::StatefulSet, "other"),
                    "u-stale".into(),
                    false,
                    false,
                ),
                Entry::new(id(Kind::Service, "svc"), "u-svc".into(), false, false),
            ],
        };
        let mut plan = Plan::new("s".into(), "ns".into(), "https://x".into(), steps);
        let kept = |kind, name: &str, uid: &str| Kept {
            object: id(kind, name),
            reason: String::new(),
            uid: uid.into(),
            created_by_stack: true,
        };
        plan.kept = vec![
            kept(Kind::Deployment, "kept", "u-kept"),
            // Claimed by an edited plan, unknown to the record: not carried over.
            kept(Kind::PersistentVolumeClaim, "foreign", "u-foreign"),
            // A claim of a StatefulSet the stack created: carried over.
            kept(Kind::PersistentVolumeClaim, "data-db-3", "u-data"),
            // A claim of an adopted one, or named like a claim of something else the stack
            // created (not a StatefulSet), or without an ordinal: not carried over.
            kept(Kind::PersistentVolumeClaim, "data-adopted-0", "u-a"),
            kept(Kind::PersistentVolumeClaim, "data-svc-0", "u-s"),
            kept(Kind::PersistentVolumeClaim, "data-db-x", "u-x"),
            // Re-created by someone else since it was recorded (another uid): not carried over.
            kept(Kind::Service, "svc", "u-someone-elses"),
        ];
        let after = after_apply(&fake, &plan, &previous, &applied).await;
        let got: Vec<(String, String, bool)> = after
            .objects
            .iter()
            .map(|e| (e.object.name.clone(), e.uid.clone(), e.adopted))
            .collect();
        let want: Vec<(String, String, bool)> = [
            ("made", "u-made", false),
            ("unrecorded", "u-unrecorded", true),
            ("recorded", "u-recorded", false),
            ("db", "u-new-db", false),
            ("adopted", "u-new-adopted", true),
            ("other", "u-new-other", true),
            ("kept", "u-kept", false),
            ("data-db-3", "u-data", false),
        ]
        .iter()
        .map(|(n, u, a)| (n.to_string(), u.to_string(), *a))
        .collect();
        assert_eq!(got, want);
    }
}
