//! The live state a plan is computed from, read in a number of requests that grows with the
//! number of kinds, not of objects: one LIST per kind (pages of 500) — StorageClasses and
//! PersistentVolumes cluster-wide, the claims, Services and workloads of the stack's namespace —
//! and the stack's inventory. Planning then looks objects up here instead of asking for each;
//! only kinds that were not listed (a VolumeSnapshot API the cluster may lack) are read one by
//! one. This is a stage of its own between the desired objects and the pure plan: what it
//! returns is plain values.

use crate::desired::DesiredObject;
use crate::gateway::Gateway;
use crate::inventory::{self, Inventory};
use crate::kinds::{Kind, ObjectRef};
use crate::live::{ClusterError, ClusterFacts, list, name_of};
use serde_json::Value;
use std::collections::HashMap;

/// Namespaced kinds listed whenever the namespace exists: those a stack is made of (and whose
/// labelled objects that left the spec must be found).
const NAMESPACED: [Kind; 4] = [
    Kind::Service,
    Kind::StatefulSet,
    Kind::Deployment,
    Kind::DaemonSet,
];

/// What the cluster holds for the plan.
#[derive(Debug, Default)]
pub struct Observed {
    pub facts: ClusterFacts,
    /// The stack's inventory (empty when there is none, or the namespace does not exist).
    pub inventory: Inventory,
    /// Listed objects of kinds other than those in `facts`, by kind.
    lists: HashMap<Kind, Vec<Value>>,
    /// Where each listed object is: its kind's list and its index there.
    index: HashMap<ObjectRef, usize>,
}

impl Observed {
    /// The live object, when its kind was listed (`Some(None)`: it does not exist), or `None`
    /// when it must be read on its own.
    pub fn get(&self, id: &ObjectRef) -> Option<Option<&Value>> {
        let list = self.list(id.kind)?;
        Some(self.index.get(id).and_then(|i| list.get(*i)))
    }

    /// Every listed object of a kind (`None`: the kind was not listed).
    pub fn list(&self, kind: Kind) -> Option<&[Value]> {
        match kind {
            Kind::StorageClass => Some(&self.facts.classes),
            Kind::PersistentVolume => Some(&self.facts.volumes),
            Kind::PersistentVolumeClaim => Some(&self.facts.claims),
            Kind::Namespace => None,
            k => self.lists.get(&k).map(Vec::as_slice),
        }
    }
}

/// Reads the live state for `desired` in `namespace`: one LIST per kind, and the inventory.
/// `facts` were read first (they decide which objects are desired).
pub async fn observe(
    gw: &dyn Gateway,
    stack: &str,
    namespace: &str,
    facts: ClusterFacts,
    desired: &[DesiredObject],
) -> Result<Observed, ClusterError> {
    let mut observed = Observed {
        facts,
        ..Default::default()
    };
    if observed.facts.namespace_exists {
        let mut kinds: Vec<Kind> = NAMESPACED.to_vec();
        // Other namespaced kinds only when the spec has them (a VolumeSnapshot API may be
        // missing: then its objects are read one by one and the error says what is missing).
        for d in desired {
            if d.id.kind.namespaced()
                && !kinds.contains(&d.id.kind)
                && d.id.kind != Kind::PersistentVolumeClaim
            {
                kinds.push(d.id.kind);
            }
        }
        let reads = kinds.iter().map(|kind| async move {
            let optional = !NAMESPACED.contains(kind);
            match list(gw, *kind, Some(namespace)).await {
                Ok(items) => Ok(Some((*kind, items))),
                Err(_) if optional => Ok(None),
                Err(e) => Err(e),
            }
        });
        let (lists, inventory) = futures::join!(
            futures::future::try_join_all(reads),
            inventory::read(gw, namespace, stack)
        );
        observed.inventory = inventory.map_err(|failure| ClusterError::Api {
            what: format!("reading the inventory of stack {stack}"),
            failure,
        })?;
        for (kind, items) in lists?.into_iter().flatten() {
            observed.lists.insert(kind, items);
        }
    } else {
        // Nothing of the namespace exists yet: every namespaced object is missing.
        for kind in NAMESPACED {
            observed.lists.insert(kind, Vec::new());
        }
        for d in desired
            .iter()
            .filter(|d| d.id.kind.namespaced() && d.id.kind != Kind::PersistentVolumeClaim)
        {
            observed.lists.entry(d.id.kind).or_default();
        }
    }
    let mut index = HashMap::new();
    let kinds: Vec<Kind> = [
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
    ]
    .into_iter()
    .chain(observed.lists.keys().copied())
    .collect();
    for kind in kinds {
        let ns = if kind.namespaced() { namespace } else { "" };
        let api = kind.api_resource();
        let list = match kind {
            Kind::StorageClass => &mut observed.facts.classes,
            Kind::PersistentVolume => &mut observed.facts.volumes,
            Kind::PersistentVolumeClaim => &mut observed.facts.claims,
            k => observed.lists.get_mut(&k).expect("listed"),
        };
        for (i, obj) in list.iter_mut().enumerate() {
            // Items of a list carry no kind of their own: made as a GET returns them (first).
            if let Some(map) = obj.as_object_mut()
                && !map.contains_key("kind")
            {
                let mut typed = serde_json::Map::with_capacity(map.len() + 2);
                typed.insert("apiVersion".into(), Value::from(api.api_version.clone()));
                typed.insert("kind".into(), Value::from(api.kind.clone()));
                typed.append(map);
                *map = typed;
            }
            // Of the field managers only our apply entry is read (its fingerprint); the others
            // are often the larger part of an object, and a plan holds thousands.
            if let Some(Value::Array(managers)) = obj.pointer_mut("/metadata/managedFields") {
                managers.retain(|f| {
                    f["manager"] == crate::kinds::FIELD_MANAGER && f["operation"] == "Apply"
                });
            }
            index.insert(ObjectRef::new(kind, ns, &name_of(obj)), i);
        }
    }
    observed.index = index;
    Ok(observed)
}

/// The objects that carry every label of a selector (`key=value,...`).
pub fn labelled<'a>(items: &'a [Value], selector: &str) -> impl Iterator<Item = &'a Value> {
    let wanted: Vec<(&str, &str)> = selector
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    items.iter().filter(move |o| {
        wanted
            .iter()
            .all(|(k, v)| o["metadata"]["labels"][*k].as_str() == Some(*v))
    })
}
