//! The real gateway: kube-rs requests to the API server.

use super::{
    ApiFailure, ApplyOptions, Cause, Gateway, ListQuery, Listing, Propagation, WatchEvent,
};
use crate::kinds::{FIELD_MANAGER, ObjectRef};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
    ValidationDirective, WatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::time::Duration;

/// Talks to one API server through a kube-rs client.
#[derive(Clone)]
pub struct KubeGateway {
    client: Client,
    server: String,
}

impl KubeGateway {
    pub fn new(client: Client, server: String) -> Self {
        KubeGateway { client, server }
    }

    fn api(&self, id: &ObjectRef) -> Api<DynamicObject> {
        let ar = id.kind.api_resource();
        match &id.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    async fn create_owned(
        &self,
        id: &ObjectRef,
        manifest: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiFailure> {
        let ar = id.kind.api_resource();
        let params = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(manifest)
            .map_err(|e| ApiFailure::transport(e.to_string(), false))?;
        let url_path = <DynamicObject as kube::Resource>::url_path(&ar, id.namespace.as_deref());
        let mut request = kube::core::Request::new(url_path.clone())
            .create(&params, body)
            .map_err(|e| ApiFailure::transport(e.to_string(), false))?;
        strict(&mut request);
        let created: DynamicObject = self.client.request(request).await.map_err(failure)?;
        let created = to_value(created);
        if dry_run {
            return Ok(created);
        }
        // A create is recorded as an `Update` by our manager; later applies by the same manager
        // would then conflict with it, and fields dropped from the spec would never be released.
        // Hand the fields to our apply manager, as kubectl does when it upgrades client-side
        // applied objects (guarded by the resourceVersion read). A controller writing the
        // object's status in between (a StatefulSet's, at once) is why this is tried again with
        // the object read afresh.
        let mut current = created;
        for _ in 0..5 {
            let Some(upgraded) = upgraded_fields(&current) else {
                return Ok(current);
            };
            let patch = json!([
                { "op": "test", "path": "/metadata/resourceVersion",
                  "value": current.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null) },
                { "op": "replace", "path": "/metadata/managedFields", "value": upgraded },
            ]);
            let request = http::Request::patch(format!("{url_path}/{}", id.name))
                .header(http::header::CONTENT_TYPE, "application/json-patch+json")
                .body(serde_json::to_vec(&patch).unwrap_or_default());
            let Ok(request) = request else {
                return Ok(current);
            };
            match self.client.request::<DynamicObject>(request).await {
                Ok(obj) => return Ok(to_value(obj)),
                Err(_) => match self.api(id).get_opt(&id.name).await {
                    Ok(Some(obj)) => current = to_value(obj),
                    // Gone or unreadable: it was created all the same.
                    _ => return Ok(current),
                },
            }
        }
        Ok(current)
    }
}

/// The object's managed fields with our manager's `Update` entries turned into `Apply`
/// entries, or `None` when there is nothing to hand over.
fn upgraded_fields(obj: &Value) -> Option<Vec<Value>> {
    let fields = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)?;
    let upgraded: Vec<Value> = fields
        .iter()
        .map(|f| {
            let mut f = f.clone();
            if f["manager"] == FIELD_MANAGER && f["operation"] == "Update" {
                f["operation"] = json!("Apply");
            }
            f
        })
        .collect();
    (upgraded != *fields).then_some(upgraded)
}

/// Adds `fieldValidation=Strict` to a request built by kube-core.
fn strict(request: &mut http::Request<Vec<u8>>) {
    let uri = request.uri().to_string();
    let sep = if uri.contains('?') { '&' } else { '?' };
    if let Ok(new) = format!("{uri}{sep}fieldValidation=Strict").parse() {
        *request.uri_mut() = new;
    }
}

impl Gateway for KubeGateway {
    fn server(&self) -> String {
        self.server.clone()
    }

    fn get<'a>(&'a self, id: &'a ObjectRef) -> BoxFuture<'a, Result<Option<Value>, ApiFailure>> {
        async move {
            self.api(id)
                .get_opt(&id.name)
                .await
                .map(|o| o.map(to_value))
                .map_err(failure)
        }
        .boxed()
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Value>, ApiFailure>> {
        async move { self.list_pages(query).await.map(|l| l.objects) }.boxed()
    }

    fn apply<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        options: ApplyOptions,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        async move {
            let mut params =
                PatchParams::apply(FIELD_MANAGER).validation(ValidationDirective::Strict);
            if options.force {
                params = params.force();
            }
            params.dry_run = options.dry_run;
            self.api(id)
                .patch(&id.name, &params, &Patch::Apply(manifest))
                .await
                .map(to_value)
                .map_err(failure)
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        self.create_owned(id, manifest, dry_run).boxed()
    }

    fn merge_patch<'a>(
        &'a self,
        id: &'a ObjectRef,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        async move {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            self.api(id)
                .patch(&id.name, &params, &Patch::Merge(patch))
                .await
                .map(to_value)
                .map_err(failure)
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        id: &'a ObjectRef,
        uid: &'a str,
        resource_version: Option<&'a str>,
        propagation: Propagation,
    ) -> BoxFuture<'a, Result<(), ApiFailure>> {
        async move {
            let params = DeleteParams {
                propagation_policy: Some(match propagation {
                    Propagation::Orphan => kube::api::PropagationPolicy::Orphan,
                    Propagation::Background => kube::api::PropagationPolicy::Background,
                    Propagation::Foreground => kube::api::PropagationPolicy::Foreground,
                }),
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: resource_version.map(str::to_string),
                }),
                ..Default::default()
            };
            match self.api(id).delete(&id.name, &params).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let f = failure(e);
                    if f.is_not_found() { Ok(()) } else { Err(f) }
                }
            }
        }
        .boxed()
    }

    fn watch<'a>(&'a self, id: &'a ObjectRef) -> BoxStream<'a, Result<Option<Value>, ApiFailure>> {
        // The collection of this one object (a field selector on its name): the same resumption
        // and re-listing as any watched collection.
        let query = ListQuery::new(id.kind.api_resource(), id.namespace.as_deref())
            .fields(&format!("metadata.name={}", id.name));
        self.list_watch(&query)
            .map(|listed| listed.map(|objects| objects.into_iter().next()))
            .boxed()
    }

    fn allowed<'a>(&'a self, verb: &'a str, id: &'a ObjectRef) -> BoxFuture<'a, Option<bool>> {
        async move {
            let ar = id.kind.api_resource();
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.into()),
                        group: Some(ar.group.clone()),
                        resource: Some(ar.plural.clone()),
                        namespace: id.namespace.clone(),
                        name: Some(id.name.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
            let answer = api.create(&PostParams::default(), &review).await.ok()?;
            answer.status.map(|s| s.allowed)
        }
        .boxed()
    }

    fn watch_list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxStream<'a, Result<Vec<Value>, ApiFailure>> {
        self.list_watch(query)
    }

    fn list_versioned<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Listing, ApiFailure>> {
        self.list_pages(query).boxed()
    }

    fn watch_from<'a>(
        &'a self,
        query: &'a ListQuery,
        resource_version: &'a str,
    ) -> BoxStream<'a, Result<WatchEvent, ApiFailure>> {
        let api = self.query_api(query);
        let mut params = WatchParams::default();
        if let Some(l) = &query.labels {
            params = params.labels(l);
        }
        if let Some(f) = &query.fields {
            params = params.fields(f);
        }
        futures::stream::once(async move {
            match api.watch(&params, resource_version).await {
                Ok(events) => events
                    .map(|e| match e {
                        Ok(
                            kube::api::WatchEvent::Added(o) | kube::api::WatchEvent::Modified(o),
                        ) => Ok(WatchEvent::Applied(to_value(o))),
                        Ok(kube::api::WatchEvent::Deleted(o)) => {
                            Ok(WatchEvent::Deleted(to_value(o)))
                        }
                        Ok(kube::api::WatchEvent::Bookmark(b)) => {
                            Ok(WatchEvent::Bookmark(b.metadata.resource_version))
                        }
                        // `410 Gone` (the version is too old) arrives as an event of the watch.
                        Ok(kube::api::WatchEvent::Error(status)) => Err(ApiFailure {
                            code: status.code,
                            reason: status.reason.clone(),
                            message: status.message.clone(),
                            ..Default::default()
                        }),
                        Err(e) => Err(failure(e)),
                    })
                    .boxed(),
                Err(e) => futures::stream::iter([Err(failure(e))]).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

/// A collection watch: the objects known so far, and what a (re-)list found.
struct ListWatchState {
    events: BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>>,
    known: std::collections::BTreeMap<String, Value>,
    /// While a (re-)list is in progress: what it found so far.
    pending: Option<std::collections::BTreeMap<String, Value>>,
    listed: bool,
    delay: Duration,
    done: bool,
}

fn key_of(v: &Value) -> String {
    format!(
        "{}/{}",
        v.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

impl KubeGateway {
    fn query_api(&self, query: &ListQuery) -> Api<DynamicObject> {
        match &query.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &query.resource),
            None => Api::all_with(self.client.clone(), &query.resource),
        }
    }

    /// A list in pages of 500, and the `resourceVersion` it was read at (every page of a list
    /// is read at the version of its first).
    async fn list_pages(&self, query: &ListQuery) -> Result<Listing, ApiFailure> {
        let api = self.query_api(query);
        let mut params = ListParams::default().limit(500);
        if let Some(l) = &query.labels {
            params = params.labels(l);
        }
        if let Some(f) = &query.fields {
            params = params.fields(f);
        }
        let mut out = Listing::default();
        // Bounded: a list of more than 2,000 pages is an error, not a loop.
        for _ in 0..2000 {
            let page = api.list(&params).await.map_err(failure)?;
            if out.resource_version.is_empty() {
                out.resource_version = page.metadata.resource_version.clone().unwrap_or_default();
            }
            let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            out.objects.extend(page.items.into_iter().map(to_value));
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(out),
            }
        }
        Err(ApiFailure::transport(
            "list did not end after 2000 pages",
            false,
        ))
    }

    /// The collection watch behind [`Gateway::watch_list`].
    fn list_watch(&self, query: &ListQuery) -> BoxStream<'static, Result<Vec<Value>, ApiFailure>> {
        let api = self.query_api(query);
        let mut config = watcher::Config::default();
        if let Some(l) = &query.labels {
            config = config.labels(l);
        }
        if let Some(f) = &query.fields {
            config = config.fields(f);
        }
        let state = ListWatchState {
            events: watcher::watcher(api, config).boxed(),
            known: Default::default(),
            pending: None,
            listed: false,
            delay: Duration::ZERO,
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            // Bounded: at most this many events are read before yielding an item.
            for _ in 0..100_000 {
                if !st.delay.is_zero() {
                    tokio::time::sleep(st.delay).await;
                }
                let current = |st: &ListWatchState| st.known.values().cloned().collect::<Vec<_>>();
                match st.events.next().await {
                    None => {
                        st.done = true;
                        return Some((
                            Err(ApiFailure::transport("the watch stream closed", false)),
                            st,
                        ));
                    }
                    Some(Ok(event)) => {
                        st.delay = Duration::ZERO;
                        match event {
                            watcher::Event::Init => st.pending = Some(Default::default()),
                            watcher::Event::InitApply(o) => {
                                let v = to_value(o);
                                st.pending
                                    .get_or_insert_with(Default::default)
                                    .insert(key_of(&v), v);
                            }
                            watcher::Event::InitDone => {
                                st.known = st.pending.take().unwrap_or_default();
                                st.listed = true;
                                let list = current(&st);
                                return Some((Ok(list), st));
                            }
                            watcher::Event::Apply(o) => {
                                let v = to_value(o);
                                st.known.insert(key_of(&v), v);
                                if st.listed {
                                    let list = current(&st);
                                    return Some((Ok(list), st));
                                }
                            }
                            watcher::Event::Delete(o) => {
                                st.known.remove(&key_of(&to_value(o)));
                                if st.listed {
                                    let list = current(&st);
                                    return Some((Ok(list), st));
                                }
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let f = watch_failure(e);
                        if f.is_permanent() && f.code != 410 {
                            st.done = true;
                            return Some((Err(f), st));
                        }
                        st.delay = (st.delay * 2)
                            .clamp(Duration::from_millis(200), Duration::from_secs(10));
                    }
                }
            }
            st.done = true;
            Some((
                Err(ApiFailure::transport("the watch made no progress", false)),
                st,
            ))
        })
        .boxed()
    }
}

fn watch_failure(e: watcher::Error) -> ApiFailure {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => failure(e),
        watcher::Error::WatchError(status) => ApiFailure {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            ..Default::default()
        },
        other => ApiFailure::transport(crate::auth::redact_tokens(&other.to_string()), false),
    }
}

/// Converts a dynamic object into plain JSON with apiVersion and kind.
pub fn to_value(obj: DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// Extracts what the server said from a kube error, keeping the cause chain of other errors.
pub fn failure(e: kube::Error) -> ApiFailure {
    match e {
        kube::Error::Api(status) => ApiFailure {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            causes: status
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        .map(|c| Cause {
                            reason: c.reason.clone(),
                            field: c.field.clone(),
                            message: c.message.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            may_have_landed: false,
        },
        // A credential plugin that fails while the rollout runs (kube runs it again when its
        // credential expires): kube's message holds the plugin's standard output, which is
        // the credential. Described without it, and no other message shows a token either.
        other if crate::auth::credential_failure(&other, None).is_some() => ApiFailure::transport(
            crate::auth::credential_failure(&other, None).unwrap_or_default(),
            false,
        ),
        other => {
            let mut message = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                let text = s.to_string();
                if !message.contains(&text) {
                    message.push_str(": ");
                    message.push_str(&text);
                }
                source = s.source();
            }
            ApiFailure::transport(crate::auth::redact_tokens(&message), false)
        }
    }
}
