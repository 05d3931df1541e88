//! One watch per kind (and namespace) for every wait of a rollout, not one per object.
//!
//! The hub is built from the plan: it knows every object a `wait` operation will watch, grouped
//! by kind and namespace. The first wait on a group starts that group's stream — a list, then
//! one watch from the list's `resourceVersion`, resumed from the last version seen whenever the
//! request ends or its connection is cut (after a backoff when it brought nothing), and re-listed
//! when the server answers `410 Gone`. The stream keeps one copy of the latest state of each
//! waited object (by name; other objects it sees are dropped) and hands it to the waits on that
//! object through a `tokio::sync::watch` channel each, so a wait sees the newest state and never
//! a backlog. Every request goes through the [`Gateway`] (`list_versioned`, `watch_from`): lists
//! are retried by `Retrying`, and the fake drives the same code in unit tests.
//!
//! What a group's stream selects:
//! - one waited object: a field selector on its name (`metadata.name=db`);
//! - several, each carrying the stack's labels when waited on (the manifest this apply writes or
//!   keeps has `kubectl-stateful/stack: <stack>`): the label selector of the stack;
//! - otherwise every object of the kind in the namespace (for a cluster-scoped kind, in the
//!   cluster). That is the case for claims made by a StatefulSet from its templates (the
//!   StatefulSet controller labels them with the pod selector only, never the stack's labels)
//!   and for objects waited on until gone (a deleted or replaced object may be one this apply
//!   never labelled, and a label selector would take its absence for its deletion).
//!
//! A wait that follows this apply's write of the object only trusts states at least as new as
//! that write (compared by `resourceVersion`, which the API server makes an increasing integer;
//! a version that is not one is trusted as it is): the stream may lag behind the write, and a
//! StatefulSet seen just before its update must not pass for ready.

use crate::gateway::{ApiFailure, Gateway, ListQuery, Listing, WatchEvent};
use crate::kinds::{Kind, ObjectRef, STACK_LABEL};
use crate::plan::Plan;
use crate::plan::ops::{Op, WaitRule};
use futures::StreamExt;
use futures::stream::{BoxStream, FuturesUnordered};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What a group's stream knows of one object.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// The first list has not answered yet.
    Unknown,
    /// The object as last seen (`None`: it does not exist), known as of `version`.
    Known {
        object: Option<Arc<Value>>,
        version: String,
    },
    /// The stream cannot go on: a permanent failure (403, 404, …).
    Failed(ApiFailure),
}

/// A group: kind and namespace, plus the name for an object the plan did not announce.
type Key = (Kind, Option<String>, Option<String>);

/// One stream and the objects it feeds.
struct Group {
    query: ListQuery,
    /// The waited objects by name: the latest state of each and its subscribers.
    slots: HashMap<String, watch::Sender<Seen>>,
    started: AtomicBool,
}

impl Group {
    fn new(query: ListQuery, names: impl IntoIterator<Item = String>) -> Group {
        Group {
            query,
            slots: names
                .into_iter()
                .map(|n| (n, watch::channel(Seen::Unknown).0))
                .collect(),
            started: AtomicBool::new(false),
        }
    }

    /// A (re-)list replaces what was known: an object absent from it does not exist.
    fn listed(&self, listing: Listing) {
        let mut found: HashMap<String, Value> = listing
            .objects
            .into_iter()
            .filter_map(|o| {
                let name = name_of(&o)?;
                self.slots.contains_key(&name).then(|| (name, slim(o)))
            })
            .collect();
        for (name, slot) in &self.slots {
            slot.send_replace(Seen::Known {
                object: found.remove(name).map(Arc::new),
                version: listing.resource_version.clone(),
            });
        }
    }

    fn changed(&self, obj: Value, deleted: bool) {
        let Some(slot) = name_of(&obj).and_then(|n| self.slots.get(&n)) else {
            return;
        };
        let version = version_of(&obj).unwrap_or_default();
        slot.send_replace(Seen::Known {
            object: (!deleted).then(|| Arc::new(slim(obj))),
            version,
        });
    }

    fn fail(&self, failure: ApiFailure) {
        for slot in self.slots.values() {
            slot.send_replace(Seen::Failed(failure.clone()));
        }
    }
}

/// What the waits read of an object: all of it but the field sets of its managers (who wrote
/// last and when is kept, to name another writer), often the larger part of an object.
fn slim(mut obj: Value) -> Value {
    if let Some(Value::Array(managers)) = obj.pointer_mut("/metadata/managedFields") {
        for m in managers.iter_mut().filter_map(Value::as_object_mut) {
            m.remove("fieldsV1");
        }
    }
    obj
}

fn name_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn version_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Whether a state known as of `version` is at least as new as `floor`.
pub(crate) fn at_least(version: &str, floor: &str) -> bool {
    match (version.parse::<u64>(), floor.parse::<u64>()) {
        (Ok(v), Ok(f)) => v >= f,
        _ => true,
    }
}

/// Backoff between attempts of a stream that brought nothing: 200 ms, doubling, at most 5 s.
fn backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(200), Duration::from_secs(5))
}

/// The watches of one rollout.
pub(crate) struct WatchHub<'g> {
    gw: &'g dyn Gateway,
    groups: Mutex<HashMap<Key, Arc<Group>>>,
    start: mpsc::UnboundedSender<Arc<Group>>,
    starts: Mutex<Option<mpsc::UnboundedReceiver<Arc<Group>>>>,
}

impl<'g> WatchHub<'g> {
    /// Groups every object the plan's waits watch (see the module's documentation).
    pub(crate) fn new(gw: &'g dyn Gateway, plan: &Plan) -> Self {
        // Kind and namespace → name → whether it carries the stack's labels when waited on.
        let mut waited: BTreeMap<(Kind, Option<String>), BTreeMap<String, bool>> = BTreeMap::new();
        for op in &plan.operations {
            let Op::Wait { rule } = op.op else {
                continue;
            };
            let step = plan.steps.get(op.step);
            let labelled = rule != WaitRule::Gone
                && step.is_some_and(|s| {
                    s.object == op.object
                        && s.manifest["metadata"]["labels"][STACK_LABEL] == plan.stack.as_str()
                });
            let o = &op.object;
            waited
                .entry((o.kind, o.namespace.clone()))
                .or_default()
                .entry(o.name.clone())
                .and_modify(|l| *l &= labelled)
                .or_insert(labelled);
        }
        let mut groups = HashMap::new();
        for ((kind, ns), names) in waited {
            let mut query = ListQuery::new(kind.api_resource(), ns.as_deref());
            if names.len() == 1 {
                let name = names.keys().next().cloned().unwrap_or_default();
                query = query.fields(&format!("metadata.name={name}"));
            } else if names.values().all(|l| *l) {
                query = query.labels(&format!("{STACK_LABEL}={}", plan.stack));
            }
            let group = Group::new(query, names.into_keys());
            groups.insert((kind, ns, None), Arc::new(group));
        }
        let (start, starts) = mpsc::unbounded_channel();
        WatchHub {
            gw,
            groups: Mutex::new(groups),
            start,
            starts: Mutex::new(Some(starts)),
        }
    }

    /// The states of `id` (see [`Seen`]); starts its group's stream if it is the first.
    fn subscribe(&self, id: &ObjectRef) -> watch::Receiver<Seen> {
        let group = {
            let mut groups = self.groups.lock().expect("hub lock");
            let planned = groups
                .get(&(id.kind, id.namespace.clone(), None))
                .filter(|g| g.slots.contains_key(&id.name))
                .cloned();
            planned.unwrap_or_else(|| {
                // Not one of the plan's waits: a stream of its own, by name.
                groups
                    .entry((id.kind, id.namespace.clone(), Some(id.name.clone())))
                    .or_insert_with(|| {
                        let query = ListQuery::new(id.kind.api_resource(), id.namespace.as_deref())
                            .fields(&format!("metadata.name={}", id.name));
                        Arc::new(Group::new(query, [id.name.clone()]))
                    })
                    .clone()
            })
        };
        let rx = group.slots[&id.name].subscribe();
        if !group.started.swap(true, Ordering::SeqCst) {
            let _ = self.start.send(group);
        }
        rx
    }

    /// The object's state each time it changes (`None`: it does not exist), starting with the
    /// current one, once the stream has listed it; with `floor` (the `resourceVersion` this apply
    /// wrote), only states at least that new. A permanent failure of the stream is the last item.
    pub(crate) fn updates(
        &self,
        id: &ObjectRef,
        floor: Option<String>,
    ) -> BoxStream<'static, Result<Option<Arc<Value>>, ApiFailure>> {
        let rx = self.subscribe(id);
        futures::stream::unfold((rx, true, false), move |(mut rx, first, over)| {
            let floor = floor.clone();
            async move {
                if over {
                    return None;
                }
                let mut first = first;
                // Bounded by the stream's changes: each turn takes one.
                loop {
                    if !first && rx.changed().await.is_err() {
                        return None;
                    }
                    first = false;
                    let seen = rx.borrow_and_update().clone();
                    match seen {
                        Seen::Unknown => {}
                        Seen::Failed(f) => return Some((Err(f), (rx, false, true))),
                        Seen::Known { object, version } => {
                            if floor.as_deref().is_none_or(|f| at_least(&version, f)) {
                                return Some((Ok(object), (rx, false, false)));
                            }
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// Runs `work` while the streams it asks for run; they end with it. One driver per hub.
    pub(crate) async fn drive<T>(&self, work: impl Future<Output = T>) -> T {
        tokio::select! {
            biased;
            out = work => out,
            never = self.run() => match never {},
        }
    }

    /// Runs every stream started so far and those started later; never ends.
    async fn run(&self) -> std::convert::Infallible {
        let starts = self.starts.lock().expect("hub lock").take();
        let Some(mut starts) = starts else {
            return std::future::pending().await;
        };
        let mut streams = FuturesUnordered::new();
        // Bounded by the rollout: the hub and its streams end with it.
        loop {
            tokio::select! {
                Some(group) = starts.recv() => streams.push(self.stream(group)),
                Some(()) = streams.next(), if !streams.is_empty() => {}
                else => return std::future::pending().await,
            }
        }
    }

    /// One group's list and watch, resumed and re-listed until a permanent failure.
    async fn stream(&self, group: Arc<Group>) {
        let mut resume: Option<String> = None;
        let mut delay = Duration::ZERO;
        // Bounded by the rollout (the hub is dropped with it) and by the backoff.
        loop {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let from = match resume.take() {
                Some(v) => v,
                None => match self.gw.list_versioned(&group.query).await {
                    Ok(listing) => {
                        let v = listing.resource_version.clone();
                        group.listed(listing);
                        v
                    }
                    // 410 here: a page's continue token expired; list again.
                    Err(f) if f.is_permanent() && f.code != 410 => return group.fail(f),
                    Err(_) => {
                        delay = backoff(delay);
                        continue;
                    }
                },
            };
            let mut events = self.gw.watch_from(&group.query, &from);
            let (mut last, mut relist, mut brought) = (from.clone(), false, false);
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Applied(o)) => {
                        last = version_of(&o).unwrap_or(last);
                        group.changed(o, false);
                    }
                    Ok(WatchEvent::Deleted(o)) => {
                        last = version_of(&o).unwrap_or(last);
                        group.changed(o, true);
                    }
                    Ok(WatchEvent::Bookmark(v)) => last = v,
                    Err(f) if f.code == 410 => {
                        relist = true;
                        break;
                    }
                    Err(f) if f.is_permanent() => return group.fail(f),
                    // A lost connection, 429, 5xx: resume from the last version.
                    Err(_) => break,
                }
                brought = true;
            }
            resume = (!relist).then_some(last);
            delay = if brought {
                Duration::ZERO
            } else {
                backoff(delay)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::fake::FakeGateway;
    use crate::plan::ops::Operation;
    use serde_json::json;

    fn pv(name: &str) -> ObjectRef {
        ObjectRef::new(Kind::PersistentVolume, "", name)
    }

    fn waits_on(ids: &[(ObjectRef, WaitRule)]) -> Plan {
        let mut plan = Plan::new("s".into(), "ns".into(), "https://fake".into(), Vec::new());
        plan.operations = ids
            .iter()
            .enumerate()
            .map(|(i, (id, rule))| Operation {
                id: i,
                object: id.clone(),
                step: usize::MAX,
                op: Op::Wait { rule: *rule },
                after: vec![],
                after_phase: None,
                completes_phase: None,
            })
            .collect();
        plan
    }

    fn phase(o: &Option<Arc<Value>>) -> String {
        o.as_ref()
            .and_then(|o| o.pointer("/status/phase"))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string()
    }

    async fn next(s: &mut BoxStream<'static, Result<Option<Arc<Value>>, ApiFailure>>) -> String {
        match tokio::time::timeout(Duration::from_secs(5), s.next()).await {
            Ok(Some(Ok(o))) => phase(&o),
            Ok(Some(Err(f))) => format!("error {}", f.code),
            Ok(None) => "end".into(),
            Err(_) => "timeout".into(),
        }
    }

    #[tokio::test]
    async fn one_stream_feeds_every_wait_of_a_kind() {
        let fake = FakeGateway::new();
        let ids: Vec<ObjectRef> = (0..5).map(|i| pv(&format!("pv-{i}"))).collect();
        for id in &ids {
            fake.put(id, json!({"status": {"phase": "Pending"}}));
        }
        let plan = waits_on(
            &ids.iter()
                .map(|i| (i.clone(), WaitRule::VolumeAvailable))
                .collect::<Vec<_>>(),
        );
        let hub = WatchHub::new(&fake, &plan);
        hub.drive(async {
            let mut streams: Vec<_> = ids.iter().map(|i| hub.updates(i, None)).collect();
            for s in &mut streams {
                assert_eq!(next(s).await, "Pending");
            }
            for id in &ids {
                fake.update(id, |o| o["status"]["phase"] = json!("Available"));
            }
            for s in &mut streams {
                assert_eq!(next(s).await, "Available");
            }
        })
        .await;
        assert_eq!(fake.calls("watch"), 1, "one watch for five volumes");
        assert_eq!(fake.calls("list"), 1);
    }

    #[tokio::test]
    async fn a_version_too_old_is_listed_again_and_a_cut_watch_resumes() {
        let fake = FakeGateway::new();
        let (a, b) = (pv("a"), pv("b"));
        fake.put(&a, json!({"status": {"phase": "Pending"}}));
        fake.put(&b, json!({"status": {"phase": "Pending"}}));
        let plan = waits_on(&[
            (a.clone(), WaitRule::VolumeAvailable),
            (b.clone(), WaitRule::VolumeAvailable),
        ]);
        let hub = WatchHub::new(&fake, &plan);
        hub.drive(async {
            let mut sa = hub.updates(&a, None);
            assert_eq!(next(&mut sa).await, "Pending");
            // The connection is cut: the watch resumes from the last version, without a list.
            fake.cut_watches();
            fake.update(&a, |o| o["status"]["phase"] = json!("Released"));
            assert_eq!(next(&mut sa).await, "Released");
            assert_eq!(fake.calls("list"), 1);
            // Cut again, and the version it would resume from is compacted away meanwhile (the
            // hub runs on this task: nothing moves until the next await): 410, then a new list.
            fake.cut_watches();
            fake.update(&a, |o| o["status"]["phase"] = json!("Available"));
            fake.compact();
            assert_eq!(next(&mut sa).await, "Available");
            let mut sb = hub.updates(&b, None);
            assert_eq!(next(&mut sb).await, "Pending");
        })
        .await;
        assert_eq!(fake.calls("list"), 2, "listed again after 410 Gone");
        assert!(fake.calls("watch") >= 3);
    }

    #[tokio::test]
    async fn a_deleted_object_is_none_and_a_permanent_failure_ends_the_updates() {
        let fake = FakeGateway::new();
        let (a, b) = (pv("a"), pv("b"));
        fake.put(&a, json!({"status": {"phase": "Bound"}}));
        let plan = waits_on(&[(a.clone(), WaitRule::Gone), (b.clone(), WaitRule::Gone)]);
        let hub = WatchHub::new(&fake, &plan);
        hub.drive(async {
            let mut sa = hub.updates(&a, None);
            let mut sb = hub.updates(&b, None);
            assert_eq!(next(&mut sa).await, "Bound");
            assert_eq!(next(&mut sb).await, "-");
            fake.remove(&a);
            assert_eq!(next(&mut sa).await, "-");
        })
        .await;
        let fake = FakeGateway::new();
        let forbidden = ApiFailure {
            code: 403,
            reason: "Forbidden".into(),
            message: "no".into(),
            ..Default::default()
        };
        fake.fail_next(
            "list",
            &FakeGateway::collection(Kind::PersistentVolume),
            forbidden,
            1,
        );
        let plan = waits_on(&[(a.clone(), WaitRule::Gone)]);
        let hub = WatchHub::new(&fake, &plan);
        hub.drive(async {
            let mut sa = hub.updates(&a, None);
            assert_eq!(next(&mut sa).await, "error 403");
            assert_eq!(next(&mut sa).await, "end");
        })
        .await;
    }

    #[tokio::test]
    async fn states_older_than_our_write_are_not_reported() {
        let fake = FakeGateway::new();
        let a = pv("a");
        fake.put(&a, json!({"status": {"phase": "Pending"}}));
        let plan = waits_on(&[(a.clone(), WaitRule::VolumeAvailable)]);
        let hub = WatchHub::new(&fake, &plan);
        hub.drive(async {
            let mut early = hub.updates(&a, None);
            assert_eq!(next(&mut early).await, "Pending");
            fake.update(&a, |o| o["status"]["phase"] = json!("Available"));
            let written = fake.object(&a).unwrap()["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string();
            // A wait after that write starts from it, even if the stream has not seen it yet.
            let mut late = hub.updates(&a, Some(written));
            assert_eq!(next(&mut late).await, "Available");
        })
        .await;
        assert!(at_least("10", "9") && !at_least("9", "10") && at_least("x", "9"));
    }

    #[tokio::test]
    async fn selectors_follow_the_stack_labels() {
        let mut plan = Plan::new("s".into(), "ns".into(), "https://fake".into(), Vec::new());
        let labelled = json!({"metadata": {"labels": {STACK_LABEL: "s"}}});
        let claim = |n: &str| ObjectRef::new(Kind::PersistentVolumeClaim, "ns", n);
        let sts = |n: &str| ObjectRef::new(Kind::StatefulSet, "ns", n);
        plan.steps = [pv("a"), pv("b"), claim("c"), sts("db")]
            .into_iter()
            .map(|id| {
                serde_json::from_value(json!({"object": id, "action": "create", "origin": "",
                    "manifest": labelled}))
                .unwrap()
            })
            .collect();
        let wait = |i: usize, step: usize, object: ObjectRef, rule| Operation {
            id: i,
            object,
            step,
            op: Op::Wait { rule },
            after: vec![],
            after_phase: None,
            completes_phase: None,
        };
        plan.operations = vec![
            wait(0, 0, pv("a"), WaitRule::VolumeAvailable),
            wait(1, 1, pv("b"), WaitRule::VolumeAvailable),
            wait(2, 2, claim("c"), WaitRule::ClaimBound),
            // A claim of the StatefulSet's templates: no stack label.
            wait(3, 3, claim("data-db-0"), WaitRule::ClaimBound),
            wait(4, 3, sts("db"), WaitRule::StatefulSetReady),
        ];
        let fake = FakeGateway::new();
        let hub = WatchHub::new(&fake, &plan);
        let groups = hub.groups.lock().unwrap();
        let query = |k: Kind, ns: Option<&str>| {
            let q = &groups[&(k, ns.map(str::to_string), None)].query;
            (q.labels.clone(), q.fields.clone())
        };
        assert_eq!(
            query(Kind::PersistentVolume, None),
            (Some(format!("{STACK_LABEL}=s")), None)
        );
        assert_eq!(query(Kind::PersistentVolumeClaim, Some("ns")), (None, None));
        assert_eq!(
            query(Kind::StatefulSet, Some("ns")),
            (None, Some("metadata.name=db".into()))
        );
    }
}
