//! An in-memory gateway for unit tests of the planner and the executor: objects by reference,
//! a log of the calls made, scripted failures and requests that never answer.

use super::{ApiFailure, ApplyOptions, Gateway, ListQuery, Listing, Propagation, WatchEvent};
use crate::kinds::{Kind, ObjectRef};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    objects: BTreeMap<ObjectRef, Value>,
    next_version: u64,
    /// (verb, object) → failures still to return, in order.
    failures: HashMap<(String, ObjectRef), Vec<Option<ApiFailure>>>,
    log: Vec<String>,
    calls: HashMap<String, usize>,
    /// Every change in order, for watches: (resourceVersion, object, its state, deleted).
    changelog: Vec<(u64, ObjectRef, Value, bool)>,
    /// Watches from a version below this one fail with `410 Gone`.
    compacted: u64,
    /// Bumped by [`FakeGateway::cut_watches`]: every open watch ends.
    cuts: u64,
    /// Verbs that take this long to answer ([`FakeGateway::slow`]).
    slow: HashMap<String, std::time::Duration>,
    /// Calls of slow verbs being answered now, and the most there ever were at once.
    in_flight: usize,
    peak_in_flight: usize,
    /// Resources (plurals) the server has no API for: every request for them answers 404.
    missing: Vec<String>,
}

/// The fake. Clones share their state.
#[derive(Clone)]
pub struct FakeGateway {
    state: Arc<Mutex<State>>,
    changes: tokio::sync::broadcast::Sender<ObjectRef>,
    /// Bumped on every change and cut: wakes the watches of collections.
    ticks: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for FakeGateway {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeGateway {
    pub fn new() -> Self {
        FakeGateway {
            state: Arc::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
            ticks: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Stores (or replaces) an object as the server would: uid and resourceVersion filled in.
    pub fn put(&self, id: &ObjectRef, mut obj: Value) {
        {
            let mut st = self.state.lock().unwrap();
            st.next_version += 1;
            let rv = st.next_version.to_string();
            let uid = st
                .objects
                .get(id)
                .and_then(|o| o.pointer("/metadata/uid").cloned())
                .or_else(|| obj.pointer("/metadata/uid").cloned())
                .unwrap_or_else(|| json!(format!("uid-{}-{rv}", id.name)));
            obj["metadata"]["name"] = json!(id.name);
            obj["metadata"]["uid"] = uid;
            obj["metadata"]["resourceVersion"] = json!(rv);
            let version = st.next_version;
            st.changelog.push((version, id.clone(), obj.clone(), false));
            st.objects.insert(id.clone(), obj);
        }
        let _ = self.changes.send(id.clone());
        self.ticks.send_modify(|t| *t += 1);
    }

    /// Changes a stored object in place (e.g. a controller writing its status).
    pub fn update(&self, id: &ObjectRef, f: impl FnOnce(&mut Value)) {
        let current = self.object(id);
        if let Some(mut obj) = current {
            f(&mut obj);
            self.put(id, obj);
        }
    }

    /// Removes an object.
    pub fn remove(&self, id: &ObjectRef) {
        {
            let mut st = self.state.lock().unwrap();
            if let Some(mut obj) = st.objects.remove(id) {
                st.next_version += 1;
                let version = st.next_version;
                obj["metadata"]["resourceVersion"] = json!(version.to_string());
                st.changelog.push((version, id.clone(), obj, true));
            }
        }
        let _ = self.changes.send(id.clone());
        self.ticks.send_modify(|t| *t += 1);
    }

    /// What scripted failures of a collection's `list` and `watch` are keyed by.
    pub fn collection(kind: Kind) -> ObjectRef {
        ObjectRef::new(Kind::Namespace, "", &kind.api_resource().plural)
    }

    /// Forgets the changes made so far: a watch from an earlier version fails with `410 Gone`
    /// (as after etcd's compaction).
    pub fn compact(&self) {
        let mut st = self.state.lock().unwrap();
        st.compacted = st.next_version;
        st.changelog.clear();
    }

    /// Ends every open watch with a lost connection.
    pub fn cut_watches(&self) {
        self.state.lock().unwrap().cuts += 1;
        self.ticks.send_modify(|t| *t += 1);
    }

    pub fn object(&self, id: &ObjectRef) -> Option<Value> {
        self.state.lock().unwrap().objects.get(id).cloned()
    }

    /// The next `times` calls of `verb` (`get`, `list`, `apply`, `dry-run`, `create`, `delete`)
    /// on `id` fail with `failure`.
    pub fn fail_next(&self, verb: &str, id: &ObjectRef, failure: ApiFailure, times: usize) {
        let mut st = self.state.lock().unwrap();
        let queue = st.failures.entry((verb.into(), id.clone())).or_default();
        queue.extend(std::iter::repeat_n(Some(failure), times));
    }

    /// The server has no API for `kind` (a CRD not installed): every request for its objects
    /// or its collection answers `404 NotFound`.
    pub fn without_api(&self, kind: Kind) {
        let plural = kind.api_resource().plural;
        self.state.lock().unwrap().missing.push(plural);
    }

    /// The next `times` calls of `verb` on `id` never answer.
    pub fn hang(&self, verb: &str, id: &ObjectRef, times: usize) {
        let mut st = self.state.lock().unwrap();
        let queue = st.failures.entry((verb.into(), id.clone())).or_default();
        queue.extend(std::iter::repeat_n(None, times));
    }

    /// How many times `verb` was called.
    pub fn calls(&self, verb: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(verb)
            .copied()
            .unwrap_or(0)
    }

    /// Every write and delete in the order they happened: `apply pv/a`, `create pvc/b`, …
    pub fn writes(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Records the call; returns the scripted outcome, if any (`Some(None)`: hang).
    fn scripted(&self, verb: &str, id: &ObjectRef) -> Option<Option<ApiFailure>> {
        let mut st = self.state.lock().unwrap();
        *st.calls.entry(verb.to_string()).or_default() += 1;
        if !matches!(verb, "get" | "list" | "dry-run" | "watch") {
            st.log.push(format!("{verb} {}", id.short()));
        }
        // A collection is keyed by its plural (see [`FakeGateway::collection`]).
        let plural = match id.kind {
            Kind::Namespace => id.name.clone(),
            kind => kind.api_resource().plural,
        };
        if st.missing.contains(&plural) {
            return Some(Some(ApiFailure {
                code: 404,
                reason: "NotFound".into(),
                message: "the server could not find the requested resource".into(),
                ..Default::default()
            }));
        }
        let queue = st.failures.get_mut(&(verb.to_string(), id.clone()))?;
        if queue.is_empty() {
            return None;
        }
        Some(queue.remove(0))
    }

    /// Every call of these verbs takes `latency` to answer; [`FakeGateway::peak_in_flight`]
    /// then tells how many of them were ever answered at the same time.
    pub fn slow(&self, verbs: &[&str], latency: std::time::Duration) {
        let mut st = self.state.lock().unwrap();
        for verb in verbs {
            st.slow.insert((*verb).to_string(), latency);
        }
    }

    /// The most calls of slow verbs in flight at once so far.
    pub fn peak_in_flight(&self) -> usize {
        self.state.lock().unwrap().peak_in_flight
    }

    async fn outcome(&self, verb: &str, id: &ObjectRef) -> Result<(), ApiFailure> {
        let latency = {
            let mut st = self.state.lock().unwrap();
            let latency = st.slow.get(verb).copied();
            if latency.is_some() {
                st.in_flight += 1;
                st.peak_in_flight = st.peak_in_flight.max(st.in_flight);
            }
            latency
        };
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
            self.state.lock().unwrap().in_flight -= 1;
        }
        match self.scripted(verb, id) {
            None => Ok(()),
            Some(Some(f)) => Err(f),
            Some(None) => {
                futures::future::pending::<()>().await;
                unreachable!()
            }
        }
    }
}

/// Whether the object is one the query selects (namespace, `a=b,c=d` label selectors,
/// `metadata.name=x` / `metadata.namespace=x` field selectors).
fn selects(query: &ListQuery, id: &ObjectRef, obj: &Value) -> bool {
    let pairs = |s: &Option<String>| {
        s.iter()
            .flat_map(|s| s.split(','))
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect::<Vec<_>>()
    };
    id.kind.api_resource().plural == query.resource.plural
        && (query.namespace.is_none() || id.namespace == query.namespace)
        && pairs(&query.labels).iter().all(|(k, v)| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                == Some(v)
        })
        && pairs(&query.fields).iter().all(|(k, v)| match k.as_str() {
            "metadata.name" => id.name == *v,
            "metadata.namespace" => id.namespace.as_deref() == Some(v),
            _ => false,
        })
}

/// A watch of a collection in the fake: where it is in the change log.
struct FakeWatch {
    seen: u64,
    cuts: u64,
    ticks: tokio::sync::watch::Receiver<u64>,
    queue: std::collections::VecDeque<WatchEvent>,
    done: bool,
}

fn merged(existing: Option<Value>, manifest: &Value) -> Value {
    let mut obj = existing.unwrap_or_else(|| json!({}));
    json_patch::merge(&mut obj, manifest);
    obj
}

impl Gateway for FakeGateway {
    fn server(&self) -> String {
        "https://fake".into()
    }

    fn get<'a>(&'a self, id: &'a ObjectRef) -> BoxFuture<'a, Result<Option<Value>, ApiFailure>> {
        async move {
            self.outcome("get", id).await?;
            Ok(self.object(id))
        }
        .boxed()
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Value>, ApiFailure>> {
        async move {
            let any = ObjectRef::new(Kind::Namespace, "", &query.resource.plural);
            self.outcome("list", &any).await?;
            let st = self.state.lock().unwrap();
            Ok(st
                .objects
                .iter()
                .filter(|(id, _)| id.kind.api_resource().plural == query.resource.plural)
                .filter(|(id, _)| query.namespace.is_none() || id.namespace == query.namespace)
                .map(|(_, o)| o.clone())
                .collect())
        }
        .boxed()
    }

    fn apply<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        options: ApplyOptions,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        async move {
            let verb = if options.dry_run { "dry-run" } else { "apply" };
            self.outcome(verb, id).await?;
            let obj = merged(self.object(id), manifest);
            if options.dry_run {
                return Ok(obj);
            }
            self.put(id, obj);
            Ok(self.object(id).unwrap_or_default())
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        async move {
            self.outcome(if dry_run { "dry-run" } else { "create" }, id)
                .await?;
            if self.object(id).is_some() {
                return Err(ApiFailure {
                    code: 409,
                    reason: "AlreadyExists".into(),
                    message: format!("{} already exists", id.short()),
                    ..Default::default()
                });
            }
            if dry_run {
                return Ok(manifest.clone());
            }
            self.put(id, manifest.clone());
            Ok(self.object(id).unwrap_or_default())
        }
        .boxed()
    }

    fn merge_patch<'a>(
        &'a self,
        id: &'a ObjectRef,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        async move {
            self.outcome("patch", id).await?;
            let Some(obj) = self.object(id) else {
                return Err(ApiFailure {
                    code: 404,
                    reason: "NotFound".into(),
                    message: format!("{} not found", id.short()),
                    ..Default::default()
                });
            };
            let wanted = patch.pointer("/metadata/resourceVersion");
            if wanted.is_some() && wanted != obj.pointer("/metadata/resourceVersion") {
                return Err(ApiFailure {
                    code: 409,
                    reason: "Conflict".into(),
                    message: "the object has been modified".into(),
                    ..Default::default()
                });
            }
            let mut patch = patch.clone();
            if let Some(meta) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            self.put(id, merged(Some(obj), &patch));
            Ok(self.object(id).unwrap_or_default())
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        id: &'a ObjectRef,
        uid: &'a str,
        resource_version: Option<&'a str>,
        _propagation: Propagation,
    ) -> BoxFuture<'a, Result<(), ApiFailure>> {
        async move {
            self.outcome("delete", id).await?;
            match self.object(id) {
                None => Ok(()),
                Some(o) if o.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) => {
                    Err(ApiFailure {
                        code: 409,
                        reason: "Conflict".into(),
                        message: "Precondition failed: UID in precondition does not match".into(),
                        ..Default::default()
                    })
                }
                Some(o)
                    if resource_version.is_some_and(|rv| {
                        o.pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            != Some(rv)
                    }) =>
                {
                    Err(ApiFailure {
                        code: 409,
                        reason: "Conflict".into(),
                        message:
                            "Precondition failed: ResourceVersion in precondition does not match"
                                .into(),
                        ..Default::default()
                    })
                }
                Some(_) => {
                    self.remove(id);
                    Ok(())
                }
            }
        }
        .boxed()
    }

    fn watch<'a>(&'a self, id: &'a ObjectRef) -> BoxStream<'a, Result<Option<Value>, ApiFailure>> {
        let rx = self.changes.subscribe();
        let first = futures::stream::once(async move { Ok(self.object(id)) });
        let rest = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(changed) if &changed == id => return Some((Ok(self.object(id)), rx)),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        return Some((Ok(self.object(id)), rx));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        first.chain(rest).boxed()
    }

    fn allowed<'a>(&'a self, _verb: &'a str, _id: &'a ObjectRef) -> BoxFuture<'a, Option<bool>> {
        async { Some(true) }.boxed()
    }

    fn watch_list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxStream<'a, Result<Vec<Value>, ApiFailure>> {
        let rx = self.changes.subscribe();
        let matches = move |id: &ObjectRef| {
            id.kind.api_resource().plural == query.resource.plural
                && (query.namespace.is_none() || id.namespace == query.namespace)
        };
        let first = futures::stream::once(self.list(query));
        let rest = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(changed) if matches(&changed) => return Some((self.list(query).await, rx)),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        return Some((self.list(query).await, rx));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        first.chain(rest).boxed()
    }

    fn list_versioned<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Listing, ApiFailure>> {
        async move {
            let any = ObjectRef::new(Kind::Namespace, "", &query.resource.plural);
            self.outcome("list", &any).await?;
            let st = self.state.lock().unwrap();
            Ok(Listing {
                objects: st
                    .objects
                    .iter()
                    .filter(|(id, o)| selects(query, id, o))
                    .map(|(_, o)| o.clone())
                    .collect(),
                resource_version: st.next_version.to_string(),
            })
        }
        .boxed()
    }

    fn watch_from<'a>(
        &'a self,
        query: &'a ListQuery,
        resource_version: &'a str,
    ) -> BoxStream<'a, Result<WatchEvent, ApiFailure>> {
        let any = ObjectRef::new(Kind::Namespace, "", &query.resource.plural);
        let from: u64 = resource_version.parse().unwrap_or(0);
        let opened = async move {
            let ticks = self.ticks.subscribe();
            self.outcome("watch", &any).await?;
            let st = self.state.lock().unwrap();
            if from < st.compacted {
                return Err(ApiFailure {
                    code: 410,
                    reason: "Expired".into(),
                    message: format!("too old resource version: {from} ({})", st.compacted),
                    ..Default::default()
                });
            }
            Ok(FakeWatch {
                seen: from,
                cuts: st.cuts,
                ticks,
                queue: Default::default(),
                done: false,
            })
        };
        futures::stream::once(opened)
            .flat_map(move |opened| match opened {
                Err(f) => futures::stream::iter([Err(f)]).boxed(),
                Ok(w) => futures::stream::unfold(w, move |mut w| async move {
                    // Bounded by the fake's changes: each turn yields one or waits for one.
                    loop {
                        if w.done {
                            return None;
                        }
                        if let Some(e) = w.queue.pop_front() {
                            return Some((Ok(e), w));
                        }
                        {
                            let st = self.state.lock().unwrap();
                            if st.cuts != w.cuts {
                                w.done = true;
                                return Some((
                                    Err(ApiFailure::transport("the connection was cut", false)),
                                    w,
                                ));
                            }
                            for (version, id, obj, deleted) in &st.changelog {
                                if *version <= w.seen {
                                    continue;
                                }
                                w.seen = *version;
                                if selects(query, id, obj) {
                                    w.queue.push_back(if *deleted {
                                        WatchEvent::Deleted(obj.clone())
                                    } else {
                                        WatchEvent::Applied(obj.clone())
                                    });
                                }
                            }
                        }
                        if w.queue.is_empty() && w.ticks.changed().await.is_err() {
                            return None;
                        }
                    }
                })
                .boxed(),
            })
            .boxed()
    }
}
