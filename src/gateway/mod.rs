//! The cluster gateway: every request the plugin makes goes through the [`Gateway`] trait.
//!
//! - [`kube::KubeGateway`] talks to the API server (server-side apply with `fieldValidation=Strict`
//!   and no `force` unless asked, real creates, deletes with a uid precondition and a propagation
//!   policy, paged lists, single watch requests from a `resourceVersion` for the apply's watch
//!   hub, and self-resuming watches through `kube::runtime` for `status --watch` and snapshots).
//! - [`retry::Retrying`] wraps any gateway with a timeout per request, retries with backoff and
//!   jitter for 429, 5xx and connection errors (never for other 4xx) and an overall deadline.
//! - [`fake::FakeGateway`] keeps objects in memory, for unit tests of the planner and executor.
//!
//! Failures are classified from the API server's `Status` (code, reason, `details.causes`), not
//! from the wording of its message.

pub mod fake;
pub mod kube;
pub mod retry;

use crate::kinds::ObjectRef;
use ::kube::api::ApiResource;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;

/// One cause the API server gave for a failure (`status.details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cause {
    /// The cause type, e.g. `FieldValueForbidden`, `FieldManagerConflict`, `FieldValueInvalid`.
    pub reason: String,
    /// The field path, e.g. `spec.replicas` or `.spec.replicas`.
    pub field: String,
    pub message: String,
}

/// A failed API call, as the server (or the transport) explained it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiFailure {
    /// HTTP status; 0 when the server gave no answer (connection error, timeout).
    pub code: u16,
    /// `status.reason`, e.g. `Invalid`, `Conflict`, `AlreadyExists`, `Forbidden`.
    pub reason: String,
    pub message: String,
    pub causes: Vec<Cause>,
    /// True when a write may have been applied although no answer came back (a timeout).
    pub may_have_landed: bool,
}

/// Another field manager owning a field this plugin wants to set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldConflict {
    pub manager: String,
    pub field: String,
}

impl ApiFailure {
    /// A failure with no answer from the server.
    pub fn transport(message: impl Into<String>, may_have_landed: bool) -> Self {
        ApiFailure {
            code: 0,
            reason: "NoAnswer".into(),
            message: message.into(),
            causes: Vec::new(),
            may_have_landed,
        }
    }

    /// Worth trying again: throttling, server errors and lost connections. Other 4xx never are.
    pub fn is_retryable(&self) -> bool {
        // The API server answers a server-side apply whose body does not fit the schema with a
        // bare 500 (no reason, no causes); it is as deterministic as a 400.
        let schema_error = self.code == 500
            && self
                .message
                .starts_with("failed to create typed patch object");
        !schema_error && (self.code == 0 || self.code == 429 || (500..=599).contains(&self.code))
    }

    /// 401 and 403 and 404 and every other 4xx but 429: the same request fails the same way.
    pub fn is_permanent(&self) -> bool {
        (400..=499).contains(&self.code) && self.code != 429
    }

    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    pub fn is_forbidden(&self) -> bool {
        self.code == 403
    }

    pub fn is_already_exists(&self) -> bool {
        self.code == 409 && self.reason == "AlreadyExists"
    }

    /// Fields owned by other managers (server-side apply without force).
    pub fn conflicts(&self) -> Vec<FieldConflict> {
        if self.code != 409 {
            return Vec::new();
        }
        self.causes
            .iter()
            .filter(|c| c.reason == "FieldManagerConflict")
            .map(|c| FieldConflict {
                manager: quoted(&c.message).unwrap_or_else(|| c.message.clone()),
                field: c.field.trim_start_matches('.').to_string(),
            })
            .collect()
    }

    /// A precondition failed: the object changed since its `resourceVersion` or uid was read.
    pub fn is_stale_write(&self) -> bool {
        self.code == 409 && self.reason == "Conflict" && self.conflicts().is_empty()
    }

    /// The server refused to change an immutable field in place: a `FieldValueForbidden` cause
    /// (StatefulSet and claim specs), or a `FieldValueInvalid` cause with apimachinery's
    /// `FieldImmutableErrorMsg` ("field is immutable": StorageClass fields, volume sources) or a
    /// CRD validation rule's own ("persistentVolumeClaimName is immutable": VolumeSnapshots).
    pub fn is_immutable_change(&self) -> bool {
        self.code == 422
            && self.causes.iter().any(|c| {
                c.reason == "FieldValueForbidden"
                    || (c.reason == "FieldValueInvalid" && c.message.ends_with(" is immutable"))
            })
    }

    /// Fields named by the causes (`spec.template.spec.foo`).
    pub fn fields(&self) -> Vec<String> {
        self.causes
            .iter()
            .map(|c| c.field.trim_start_matches('.').to_string())
            .filter(|f| !f.is_empty())
            .collect()
    }

    /// `message (Reason, HTTP code)`, or the message alone for transport failures.
    pub fn text(&self) -> String {
        if self.code == 0 || self.reason.is_empty() {
            self.message.clone()
        } else {
            format!("{} ({}, HTTP {})", self.message, self.reason, self.code)
        }
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

impl std::error::Error for ApiFailure {}

/// The first `"quoted"` word of a message.
fn quoted(message: &str) -> Option<String> {
    let start = message.find('"')? + 1;
    let len = message[start..].find('"')?;
    Some(message[start..start + len].to_string())
}

/// What to list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub labels: Option<String>,
    pub fields: Option<String>,
}

impl ListQuery {
    pub fn new(resource: ApiResource, namespace: Option<&str>) -> Self {
        ListQuery {
            resource,
            namespace: namespace.map(str::to_string),
            labels: None,
            fields: None,
        }
    }
    pub fn labels(mut self, selector: &str) -> Self {
        self.labels = Some(selector.to_string());
        self
    }
    pub fn fields(mut self, selector: &str) -> Self {
        self.fields = Some(selector.to_string());
        self
    }
}

/// How a server-side apply is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    pub dry_run: bool,
    /// Take fields owned by other managers (kubectl's `--force-conflicts`).
    pub force: bool,
}

/// What happens to an object's dependents when it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Propagation {
    /// Dependents stay (a StatefulSet's pods and claims).
    Orphan,
    Background,
    Foreground,
}

/// A list and the `resourceVersion` it was read at (the version a watch of the same query
/// resumes from).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub objects: Vec<Value>,
    pub resource_version: String,
}

/// One change seen by a watch of a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// An object was added or modified (or now matches the query's selectors).
    Applied(Value),
    /// An object was deleted (or no longer matches the query's selectors): the object as it was
    /// then, carrying the deletion's `resourceVersion`.
    Deleted(Value),
    /// Nothing the query selects changed up to this `resourceVersion`.
    Bookmark(String),
}

/// Every request the plugin makes. Object-safe, so the executor takes `&dyn Gateway`.
pub trait Gateway: Send + Sync {
    /// The API server's URL.
    fn server(&self) -> String;
    /// The live object, or `None` when it does not exist.
    fn get<'a>(&'a self, id: &'a ObjectRef) -> BoxFuture<'a, Result<Option<Value>, ApiFailure>>;
    /// Every object matching the query (paged).
    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Value>, ApiFailure>>;
    /// Server-side apply with our field manager and strict field validation.
    fn apply<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        options: ApplyOptions,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>>;
    /// A real create: fails with `AlreadyExists` when the object exists. The created fields are
    /// owned by our field manager exactly as if it had been applied.
    fn create<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>>;
    /// A JSON merge patch (RFC 7386) by our field manager: what release uses to remove the
    /// stack's labels and hand our fields over in `metadata.managedFields` (guarded by the
    /// `metadata.resourceVersion` the patch carries).
    fn merge_patch<'a>(
        &'a self,
        id: &'a ObjectRef,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>>;
    /// Deletes the object if its uid is still `uid` (and, with `resource_version`, if it has not
    /// changed since that version: a 409 otherwise).
    fn delete<'a>(
        &'a self,
        id: &'a ObjectRef,
        uid: &'a str,
        resource_version: Option<&'a str>,
        propagation: Propagation,
    ) -> BoxFuture<'a, Result<(), ApiFailure>>;
    /// The object's state each time it changes (`None`: it does not exist), starting with the
    /// current state. Transient errors are retried inside; a permanent one ends the stream.
    fn watch<'a>(&'a self, id: &'a ObjectRef) -> BoxStream<'a, Result<Option<Value>, ApiFailure>>;
    /// Whether the account may `verb` the object's resource (`None` when that cannot be asked).
    fn allowed<'a>(&'a self, verb: &'a str, id: &'a ObjectRef) -> BoxFuture<'a, Option<bool>>;
    /// Every object matching the query each time one of them changes, starting with the
    /// current list. Transient errors are retried inside; a permanent one ends the stream.
    fn watch_list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxStream<'a, Result<Vec<Value>, ApiFailure>>;
    /// Every object matching the query (paged) and the `resourceVersion` of the list.
    fn list_versioned<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Listing, ApiFailure>>;
    /// One watch request: the changes to the objects matching the query after
    /// `resource_version` (bookmarks included), until the server ends the request. A version
    /// too old to resume from ends it with `410 Gone`; a lost connection with a transport
    /// failure. Resuming, re-listing and backing off are the caller's (`apply::watch_hub`).
    fn watch_from<'a>(
        &'a self,
        query: &'a ListQuery,
        resource_version: &'a str,
    ) -> BoxStream<'a, Result<WatchEvent, ApiFailure>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: u16, reason: &str, causes: Vec<Cause>) -> ApiFailure {
        ApiFailure {
            code,
            reason: reason.into(),
            message: "m".into(),
            causes,
            may_have_landed: false,
        }
    }

    #[test]
    fn retry_classification() {
        for code in [0, 429, 500, 502, 503, 504] {
            assert!(failure(code, "", vec![]).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 422] {
            let f = failure(code, "", vec![]);
            assert!(!f.is_retryable() && f.is_permanent(), "{code}");
        }
    }

    #[test]
    fn conflicts_name_manager_and_field() {
        let f = failure(
            409,
            "Conflict",
            vec![Cause {
                reason: "FieldManagerConflict".into(),
                field: ".spec.replicas".into(),
                message: "conflict with \"kubectl\" with subresource \"scale\" using apps/v1"
                    .into(),
            }],
        );
        assert_eq!(
            f.conflicts(),
            vec![FieldConflict {
                manager: "kubectl".into(),
                field: "spec.replicas".into()
            }]
        );
        assert!(!f.is_stale_write());
        assert!(failure(409, "Conflict", vec![]).is_stale_write());
    }

    #[test]
    fn immutable_changes_come_from_causes() {
        let f = failure(
            422,
            "Invalid",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                field: "spec".into(),
                message: "updates to statefulset spec for fields other than … are forbidden".into(),
            }],
        );
        assert!(f.is_immutable_change());
        assert!(!failure(422, "Invalid", vec![]).is_immutable_change());
        let invalid = |message: &str| {
            failure(
                422,
                "Invalid",
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    field: "spec.source.persistentVolumeClaimName".into(),
                    message: message.into(),
                }],
            )
        };
        // apimachinery's message, and a CRD validation rule's (the snapshot CRDs).
        assert!(invalid("Invalid value: \"x\": field is immutable").is_immutable_change());
        assert!(
            invalid("Invalid value: \"b\": persistentVolumeClaimName is immutable")
                .is_immutable_change()
        );
        assert!(
            !invalid("Invalid value: \"b\": must be no more than 63 characters")
                .is_immutable_change()
        );
    }
}
