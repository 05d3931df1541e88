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
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The ConfigMap's data key.
const DATA_KEY: &str = "inventory.json";

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
        cm.pointer(&format!(
            "/data/{}",
            DATA_KEY.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
    }

    /// The ConfigMap manifest holding this inventory.
    pub fn to_config_map(&self, namespace: &str, stack: &str) -> Value {
        let id = Self::object_ref(namespace, stack);
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": id.name,
                "namespace": namespace,
                "labels": { MANAGED_BY.0: MANAGED_BY.1, STACK_LABEL: stack },
            },
            "data": { DATA_KEY: serde_json::to_string_pretty(self).unwrap_or_default() },
        })
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
            gw.delete(&id, uid, crate::gateway::Propagation::Background)
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

/// The inventory after `plan` was applied: the plan's objects that exist now (created ones are
/// read for their uid), adoptions remembered, released and deleted objects dropped, and the
/// objects that left the spec but were kept carried over from `previous`.
pub async fn after_apply(
    gw: &dyn Gateway,
    plan: &crate::plan::Plan,
    previous: &Inventory,
) -> Inventory {
    use crate::plan::Action;
    let mut objects = Vec::new();
    for step in &plan.steps {
        if matches!(
            step.action,
            Action::Delete | Action::Release | Action::Error
        ) || step.object.kind == Kind::Namespace
        {
            continue;
        }
        let uid = match (&step.live, step.action) {
            (Some(live), a) if a != Action::Replace => Some(live.uid.clone()),
            _ => gw.get(&step.object).await.ok().flatten().and_then(|o| {
                o.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
        };
        let Some(uid) = uid else {
            continue;
        };
        let was = previous.get(&step.object).filter(|e| e.uid == uid);
        objects.push(Entry {
            object: step.object.clone(),
            uid,
            adopted: step.action == Action::Adopt || was.is_some_and(|e| e.adopted),
            protect: step.protect,
        });
    }
    let removed: Vec<&ObjectRef> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Delete | Action::Release))
        .map(|s| &s.object)
        .collect();
    for e in &previous.objects {
        let still_listed = plan.not_in_spec.contains(&e.object) && !removed.contains(&&e.object);
        if still_listed && !objects.iter().any(|o: &Entry| o.object == e.object) {
            objects.push(e.clone());
        }
    }
    // Kept by a prune or destroy (e.g. the claims of a removed StatefulSet): still the stack's,
    // so a later `destroy --delete-data` finds them. Objects re-created by someone else are not.
    for k in &plan.kept {
        let ours = !k.reason.starts_with("re-created by someone else");
        if ours && !k.uid.is_empty() && !objects.iter().any(|o| o.object == k.object) {
            let was = previous.get(&k.object).filter(|e| e.uid == k.uid);
            objects.push(Entry {
                object: k.object.clone(),
                uid: k.uid.clone(),
                adopted: was.is_some_and(|e| e.adopted),
                protect: was.is_some_and(|e| e.protect),
            });
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
            objects: vec![Entry {
                object: ObjectRef::new(Kind::StorageClass, "ns", "local-storage"),
                uid: "u1".into(),
                adopted: true,
                protect: false,
            }],
        };
        let cm = inv.to_config_map("ns", "db");
        assert_eq!(cm["metadata"]["name"], "kubectl-stateful-db");
        assert_eq!(cm["metadata"]["labels"][STACK_LABEL], "db");
        assert_eq!(Inventory::from_config_map(&cm), inv);
        assert_eq!(Inventory::from_config_map(&json!({})), Inventory::default());
    }
}
