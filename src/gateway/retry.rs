//! Timeouts, retries and deadlines around any [`Gateway`].
//!
//! Every request gets at most `request_timeout`. Throttling (429), server errors (5xx) and lost
//! connections are retried with exponential backoff and full jitter until `max_attempts` or the
//! deadline (or, during a rollout, until the deadline alone); other 4xx answers are returned at
//! once. A create can never land twice (the second one finds the object), so a create whose
//! answer was lost is sent again, and when that one finds the object with this stack's labels
//! the first attempt is taken to have landed. A write (not a dry run) that failed without an
//! answer, or with an answer that does not say it was refused (500, 502, 504), after any of its
//! attempts says that it may have landed.

use super::{ApiFailure, ApplyOptions, Gateway, ListQuery, Listing, Propagation, WatchEvent};
use crate::kinds::ObjectRef;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Bound on each request (kubectl's `--request-timeout`).
    pub request_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff; doubled after each attempt, up to `max_backoff`, with full jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            request_timeout: Duration::from_secs(30),
            max_attempts: 6,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Work that did not finish by its deadline (planning, or the check of a plan's freshness).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{what} did not finish within {limit}: the API server answers too slowly, or not at all")]
#[diagnostic(help("{help}"))]
pub struct DeadlineExceeded {
    pub what: String,
    /// The bound, as the user would write it (`1m`, `0.5s`).
    pub limit: String,
    pub help: String,
}

/// Told about every retry: what failed and when it is tried again.
pub type RetryReporter = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// A gateway with timeouts, retries and an overall deadline.
pub struct Retrying<G> {
    inner: G,
    policy: RetryPolicy,
    deadline: Mutex<Option<Instant>>,
    /// Retry until the deadline instead of `max_attempts` (during a rollout, an API server
    /// that restarts must not end it half done).
    persistent: std::sync::atomic::AtomicBool,
    reporter: Mutex<Option<RetryReporter>>,
}

/// What a request does, for retries and for what its failure says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    /// Reads and dry runs: nothing changes, sending twice is harmless.
    Read,
    /// Applies and deletes with preconditions: sending twice is harmless, and a failure whose
    /// answer was lost may have changed the cluster.
    Write,
    /// A create: sent again, but an `AlreadyExists` after an answer was lost needs a look.
    CreateOnce,
}

/// A failure after which the request may have been carried out all the same: no answer (the
/// connection broke or timed out after the request may have been sent), or a server or gateway
/// error that does not say the request was refused. 429 and 503 say it was not handled; a 500
/// for a body that does not fit the schema is a refusal too.
fn ambiguous(f: &ApiFailure) -> bool {
    f.code == 0 || (matches!(f.code, 500 | 502 | 504) && f.is_retryable())
}

/// The object found after a create whose first answer was lost is the one that create made:
/// it carries the plugin's labels for the same stack.
fn ours(live: &Value, manifest: &Value) -> bool {
    let labels = |v: &Value| {
        v.pointer("/metadata/labels")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (have, want) = (labels(live), labels(manifest));
    let key = crate::kinds::STACK_LABEL;
    let managed = crate::kinds::MANAGED_BY;
    have[managed.0] == managed.1 && !want[key].is_null() && have[key] == want[key]
}

impl<G: Gateway> Retrying<G> {
    pub fn new(inner: G, policy: RetryPolicy) -> Self {
        Retrying {
            inner,
            policy,
            deadline: Mutex::new(None),
            persistent: std::sync::atomic::AtomicBool::new(false),
            reporter: Mutex::new(None),
        }
    }

    /// With a deadline set, retries retryable failures until the deadline rather than giving
    /// up after `max_attempts`.
    pub fn set_persistent(&self, persistent: bool) {
        self.persistent
            .store(persistent, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reports each retry (the rollout shows them as events).
    pub fn set_reporter(&self, reporter: Option<RetryReporter>) {
        *self.reporter.lock().expect("reporter lock") = reporter;
    }

    fn report(&self, text: String) {
        let reporter = self.reporter.lock().expect("reporter lock").clone();
        if let Some(r) = reporter {
            // Failures are described without credentials already; blank out anything that
            // still looks like a token all the same.
            r(crate::auth::redact_tokens(&text));
        }
    }

    /// Sets the overall deadline: no retry starts after it, and no request outlives it (a request
    /// started after it still gets one attempt, so that a failure can be explained).
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        *self.deadline.lock().expect("deadline lock") = deadline;
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().expect("deadline lock")
    }

    /// Runs `work` with a fresh deadline `limit` from now, and ends it there: requests that
    /// start near or after the deadline (each of which would otherwise still get its full
    /// request timeout) cannot make it overrun. `what` and `help` say what did not finish and
    /// what to do about it.
    pub async fn bounded<F: Future>(
        &self,
        limit: Duration,
        what: &str,
        help: &str,
        work: F,
    ) -> Result<F::Output, DeadlineExceeded> {
        let deadline = Instant::now() + limit;
        self.set_deadline(Some(deadline));
        let exceeded = || DeadlineExceeded {
            what: what.to_string(),
            limit: human(limit),
            help: help.to_string(),
        };
        match tokio::time::timeout_at(deadline, work).await {
            // Requests are cut at the deadline too, and their failures come back first: the
            // work ended because the deadline came, which is what to say.
            Ok(_) if Instant::now() >= deadline => Err(exceeded()),
            Ok(output) => Ok(output),
            Err(_) => Err(exceeded()),
        }
    }

    async fn call<T, F, Fut>(
        &self,
        what: String,
        idem: Idempotence,
        mut f: F,
    ) -> Result<T, ApiFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiFailure>>,
    {
        let mut attempt = 0;
        let mut backoff = self.policy.base_backoff;
        let write = idem != Idempotence::Read;
        // Whether an attempt so far may have been carried out although it failed.
        let mut maybe_landed = false;
        loop {
            attempt += 1;
            let mut limit = self.policy.request_timeout;
            if let Some(d) = self.deadline() {
                let left = d.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    limit = limit.min(left);
                }
            }
            let result = match tokio::time::timeout(limit, f()).await {
                Ok(r) => r,
                Err(_) => Err(ApiFailure::transport(
                    format!(
                        "no answer from the API server within {} ({what}); check that the cluster is reachable, or raise --request-timeout",
                        human(limit)
                    ),
                    write,
                )),
            };
            let failure = match result {
                Ok(v) => return Ok(v),
                // The client's own connect timeout (set to the same bound) says it in its words.
                Err(f) if f.code == 0 && f.message.contains("deadline has elapsed") => {
                    ApiFailure::transport(
                        format!(
                            "no answer from the API server within {} ({what}); check that the cluster is reachable, or raise --request-timeout",
                            human(limit)
                        ),
                        f.may_have_landed,
                    )
                }
                Err(f) => f,
            };
            maybe_landed |= write && (failure.may_have_landed || ambiguous(&failure));
            let retry_allowed = match idem {
                Idempotence::Read | Idempotence::Write => failure.is_retryable(),
                Idempotence::CreateOnce => failure.is_retryable() || failure.code == 0,
            };
            let sleep = jitter(backoff);
            let in_time = self.deadline().is_none_or(|d| Instant::now() + sleep < d);
            let persistent = self.deadline().is_some()
                && self.persistent.load(std::sync::atomic::Ordering::Relaxed);
            let attempts_left = persistent || attempt < self.policy.max_attempts;
            if !retry_allowed || !attempts_left || !in_time {
                let mut failure = failure;
                failure.may_have_landed = maybe_landed;
                if failure.is_retryable() && attempt > 1 {
                    failure.message = format!("{} (after {attempt} attempts)", failure.message);
                }
                return Err(failure);
            }
            self.report(format!(
                "{what}: {} (attempt {attempt}); trying again in {}",
                failure.text(),
                human(sleep)
            ));
            tokio::time::sleep(sleep).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }
}

/// Full jitter: a random duration between zero and `d`.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(fastrand::f64())
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl<G: Gateway> Gateway for Retrying<G> {
    fn server(&self) -> String {
        self.inner.server()
    }

    fn get<'a>(&'a self, id: &'a ObjectRef) -> BoxFuture<'a, Result<Option<Value>, ApiFailure>> {
        self.call(
            format!("get {}", id.short()),
            Idempotence::Read,
            move || self.inner.get(id),
        )
        .boxed()
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Value>, ApiFailure>> {
        self.call(
            format!("list {}", query.resource.plural),
            Idempotence::Read,
            move || self.inner.list(query),
        )
        .boxed()
    }

    fn apply<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        options: ApplyOptions,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        let (what, idem) = if options.dry_run {
            (format!("dry-run apply {}", id.short()), Idempotence::Read)
        } else {
            (format!("apply {}", id.short()), Idempotence::Write)
        };
        self.call(what, idem, move || self.inner.apply(id, manifest, options))
            .boxed()
    }

    fn create<'a>(
        &'a self,
        id: &'a ObjectRef,
        manifest: &'a Value,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        if dry_run {
            return self
                .call(
                    format!("dry-run create {}", id.short()),
                    Idempotence::Read,
                    move || self.inner.create(id, manifest, true),
                )
                .boxed();
        }
        async move {
            let lost_answer = std::sync::atomic::AtomicBool::new(false);
            let lost = &lost_answer;
            let result = self
                .call(
                    format!("create {}", id.short()),
                    Idempotence::CreateOnce,
                    move || {
                        let attempt = self.inner.create(id, manifest, false);
                        async move {
                            let r = attempt.await;
                            if let Err(f) = &r
                                && ambiguous(f)
                            {
                                lost.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            r
                        }
                    },
                )
                .await;
            match result {
                Err(f) if f.is_already_exists() && lost_answer.into_inner() => {
                    // An earlier attempt whose answer was lost may have created it.
                    match self.get(id).await {
                        Ok(Some(live)) if ours(&live, manifest) => {
                            self.report(format!(
                                "create {}: it exists with this stack's labels, so the earlier attempt whose answer was lost created it",
                                id.short()
                            ));
                            Ok(live)
                        }
                        // Someone else's object: none of our attempts created it.
                        Ok(_) => Err(ApiFailure {
                            may_have_landed: false,
                            ..f
                        }),
                        Err(_) => Err(f),
                    }
                }
                other => other,
            }
        }
        .boxed()
    }

    fn merge_patch<'a>(
        &'a self,
        id: &'a ObjectRef,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<Value, ApiFailure>> {
        self.call(
            format!("patch {}", id.short()),
            Idempotence::Write,
            move || self.inner.merge_patch(id, patch),
        )
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        id: &'a ObjectRef,
        uid: &'a str,
        resource_version: Option<&'a str>,
        propagation: Propagation,
    ) -> BoxFuture<'a, Result<(), ApiFailure>> {
        self.call(
            format!("delete {}", id.short()),
            Idempotence::Write,
            move || self.inner.delete(id, uid, resource_version, propagation),
        )
        .boxed()
    }

    fn watch<'a>(&'a self, id: &'a ObjectRef) -> BoxStream<'a, Result<Option<Value>, ApiFailure>> {
        self.inner.watch(id)
    }

    fn allowed<'a>(&'a self, verb: &'a str, id: &'a ObjectRef) -> BoxFuture<'a, Option<bool>> {
        async move {
            tokio::time::timeout(self.policy.request_timeout, self.inner.allowed(verb, id))
                .await
                .ok()
                .flatten()
        }
        .boxed()
    }

    fn watch_list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxStream<'a, Result<Vec<Value>, ApiFailure>> {
        self.inner.watch_list(query)
    }

    fn list_versioned<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Listing, ApiFailure>> {
        self.call(
            format!("list {}", query.resource.plural),
            Idempotence::Read,
            move || self.inner.list_versioned(query),
        )
        .boxed()
    }

    /// Not retried here: a watch is one long request, and whoever reads it resumes it from the
    /// last version it saw (with its own backoff), which a retry of the request could not do.
    fn watch_from<'a>(
        &'a self,
        query: &'a ListQuery,
        resource_version: &'a str,
    ) -> BoxStream<'a, Result<WatchEvent, ApiFailure>> {
        self.inner.watch_from(query, resource_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::fake::FakeGateway;
    use crate::kinds::Kind;
    use serde_json::json;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            request_timeout: Duration::from_millis(200),
            max_attempts: 4,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        }
    }

    fn pv() -> ObjectRef {
        ObjectRef::new(Kind::PersistentVolume, "", "pv-1")
    }

    fn code(code: u16) -> ApiFailure {
        ApiFailure {
            code,
            reason: "R".into(),
            message: format!("HTTP {code}"),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_they_pass() {
        let fake = FakeGateway::new();
        fake.fail_next("apply", &pv(), code(503), 2);
        fake.fail_next("apply", &pv(), code(500), 1);
        let gw = Retrying::new(fake.clone(), policy());
        let manifest = json!({"metadata": {"name": "pv-1"}});
        gw.apply(&pv(), &manifest, ApplyOptions::default())
            .await
            .expect("fourth attempt passes");
        assert_eq!(fake.calls("apply"), 4);
    }

    #[tokio::test]
    async fn client_errors_are_never_retried() {
        for c in [400, 403, 404, 409, 422] {
            let fake = FakeGateway::new();
            fake.fail_next("apply", &pv(), code(c), 1);
            let gw = Retrying::new(fake.clone(), policy());
            let err = gw
                .apply(&pv(), &json!({}), ApplyOptions::default())
                .await
                .unwrap_err();
            assert_eq!(err.code, c);
            assert_eq!(fake.calls("apply"), 1, "HTTP {c} was retried");
        }
    }

    #[tokio::test]
    async fn retries_stop_after_max_attempts_and_say_so() {
        let fake = FakeGateway::new();
        fake.fail_next("get", &pv(), code(502), 10);
        let gw = Retrying::new(fake.clone(), policy());
        let err = gw.get(&pv()).await.unwrap_err();
        assert_eq!(fake.calls("get"), 4);
        assert!(err.message.contains("after 4 attempts"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_hanging_request_times_out_with_a_clear_message() {
        let fake = FakeGateway::new();
        fake.hang("get", &pv(), 1);
        let gw = Retrying::new(
            fake.clone(),
            RetryPolicy {
                max_attempts: 1,
                ..policy()
            },
        );
        let err = gw.get(&pv()).await.unwrap_err();
        assert_eq!(err.code, 0);
        assert!(
            err.message
                .contains("no answer from the API server within 0.2s (get pv/pv-1)"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_hanging_apply_may_have_landed_and_a_hanging_get_did_not() {
        let single = RetryPolicy {
            max_attempts: 1,
            ..policy()
        };
        let manifest = json!({"metadata": {"name": "pv-1"}});
        let fake = FakeGateway::new();
        fake.hang("apply", &pv(), 1);
        let gw = Retrying::new(fake.clone(), single.clone());
        let err = gw
            .apply(&pv(), &manifest, ApplyOptions::default())
            .await
            .unwrap_err();
        assert!(err.message.contains("(apply pv/pv-1)"), "{}", err.message);
        assert!(
            err.may_have_landed,
            "a write that timed out may have landed"
        );

        let fake = FakeGateway::new();
        fake.hang("get", &pv(), 1);
        let gw = Retrying::new(fake.clone(), single.clone());
        let err = gw.get(&pv()).await.unwrap_err();
        assert_eq!(err.code, 0);
        assert!(!err.may_have_landed, "a read writes nothing");

        // A dry run writes nothing either.
        let fake = FakeGateway::new();
        fake.hang("dry-run", &pv(), 1);
        let gw = Retrying::new(fake.clone(), single);
        let dry = ApplyOptions {
            dry_run: true,
            ..Default::default()
        };
        let err = gw.apply(&pv(), &manifest, dry).await.unwrap_err();
        assert_eq!(err.code, 0);
        assert!(!err.may_have_landed, "a dry run writes nothing");
    }

    #[tokio::test]
    async fn a_write_that_failed_without_a_refusal_may_have_landed() {
        let manifest = json!({"metadata": {"name": "pv-1"}});
        let reset = ApiFailure::transport("connection reset by peer", false);
        for failure in [code(500), code(502), code(504), reset] {
            let fake = FakeGateway::new();
            fake.fail_next("apply", &pv(), failure.clone(), 10);
            let gw = Retrying::new(fake.clone(), policy());
            let err = gw
                .apply(&pv(), &manifest, ApplyOptions::default())
                .await
                .unwrap_err();
            assert_eq!(err.code, failure.code);
            assert!(err.may_have_landed, "apply after {}", failure.text());

            let fake = FakeGateway::new();
            fake.fail_next("delete", &pv(), failure.clone(), 10);
            let gw = Retrying::new(fake.clone(), policy());
            let err = gw
                .delete(&pv(), "uid-1", None, Propagation::Background)
                .await
                .unwrap_err();
            assert!(err.may_have_landed, "delete after {}", failure.text());

            // The same failure of a read says nothing of the kind.
            let fake = FakeGateway::new();
            fake.fail_next("get", &pv(), failure.clone(), 10);
            let gw = Retrying::new(fake.clone(), policy());
            assert!(!gw.get(&pv()).await.unwrap_err().may_have_landed);
        }
        // Refusals: throttled, unavailable, invalid, and a body the schema rejects.
        let schema = ApiFailure {
            code: 500,
            message: "failed to create typed patch object: .spec.x: field not declared in schema"
                .into(),
            ..Default::default()
        };
        for failure in [code(429), code(503), code(422), schema] {
            let fake = FakeGateway::new();
            fake.fail_next("apply", &pv(), failure.clone(), 10);
            let gw = Retrying::new(fake.clone(), policy());
            let err = gw
                .apply(&pv(), &manifest, ApplyOptions::default())
                .await
                .unwrap_err();
            assert!(
                !err.may_have_landed,
                "apply refused with {}",
                failure.text()
            );
        }
        // A lost answer earlier still counts when a later attempt is refused: the first
        // attempt may have landed (and made the precondition of the next one fail).
        let fake = FakeGateway::new();
        fake.fail_next("apply", &pv(), code(504), 1);
        let stale = ApiFailure {
            code: 409,
            reason: "Conflict".into(),
            message: "the object has been modified".into(),
            ..Default::default()
        };
        fake.fail_next("apply", &pv(), stale, 1);
        let gw = Retrying::new(fake.clone(), policy());
        let err = gw
            .apply(&pv(), &manifest, ApplyOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err.may_have_landed);
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_sent_again_and_never_lands_twice() {
        let labelled = json!({"metadata": {"name": "pv-1", "labels": {
            "app.kubernetes.io/managed-by": "kubectl-stateful", "kubectl-stateful/stack": "s"}}});
        // The first attempt lands but its answer is lost (500); the second finds the object.
        let fake = FakeGateway::new();
        fake.put(&pv(), labelled.clone());
        let exists = ApiFailure {
            code: 409,
            reason: "AlreadyExists".into(),
            message: "exists".into(),
            ..Default::default()
        };
        fake.fail_next("create", &pv(), code(500), 1);
        fake.fail_next("create", &pv(), exists.clone(), 1);
        let gw = Retrying::new(fake.clone(), policy());
        let created = gw.create(&pv(), &labelled, false).await.unwrap();
        assert_eq!(created["metadata"]["name"], "pv-1");
        assert_eq!(fake.calls("create"), 2);
        // Someone else's object of that name is not taken for ours.
        let fake = FakeGateway::new();
        fake.put(&pv(), json!({"metadata": {"name": "pv-1"}}));
        fake.fail_next("create", &pv(), code(504), 1);
        fake.fail_next("create", &pv(), exists.clone(), 1);
        let gw = Retrying::new(fake.clone(), policy());
        let err = gw.create(&pv(), &labelled, false).await.unwrap_err();
        assert!(err.is_already_exists());
        assert!(
            !err.may_have_landed,
            "the object found is not the one we sent"
        );
        // A create that never got an answer may have landed.
        let fake = FakeGateway::new();
        fake.fail_next("create", &pv(), code(504), 10);
        let gw = Retrying::new(fake.clone(), policy());
        let err = gw.create(&pv(), &labelled, false).await.unwrap_err();
        assert!(err.may_have_landed);
        // Without a lost answer, AlreadyExists is what it says.
        let fake = FakeGateway::new();
        fake.put(&pv(), labelled.clone());
        fake.fail_next("create", &pv(), exists, 1);
        let gw = Retrying::new(fake.clone(), policy());
        assert!(gw.create(&pv(), &labelled, false).await.is_err());
    }

    #[tokio::test]
    async fn bounded_work_ends_at_its_deadline_whatever_its_requests_would_wait() {
        // Each request alone would wait its full 30 s: the second starts after the deadline.
        let fake = FakeGateway::new();
        let other = ObjectRef::new(Kind::PersistentVolume, "", "pv-2");
        fake.hang("get", &pv(), 1);
        fake.hang("get", &other, 1);
        let gw = Retrying::new(
            fake.clone(),
            RetryPolicy {
                request_timeout: Duration::from_secs(30),
                max_attempts: 1,
                ..policy()
            },
        );
        let work = async {
            let _ = gw.get(&pv()).await;
            gw.get(&other).await
        };
        let bounded = gw.bounded(
            Duration::from_millis(200),
            "planning",
            "raise --timeout",
            work,
        );
        let outcome = tokio::time::timeout(Duration::from_secs(10), bounded)
            .await
            .expect("ended by its own deadline, not by the request timeout");
        let err = outcome.expect_err("the deadline passed");
        assert_eq!(
            err.to_string(),
            "planning did not finish within 0.2s: the API server answers too slowly, or not at all"
        );
        // A request cut at the deadline (its own timeout shortened to the time left) does not
        // make it a request timeout.
        let fake = FakeGateway::new();
        fake.hang("get", &pv(), 1);
        let gw = Retrying::new(fake.clone(), policy());
        let err = gw
            .bounded(Duration::from_millis(100), "planning", "", gw.get(&pv()))
            .await
            .expect_err("the deadline passed");
        assert_eq!(
            err.to_string(),
            "planning did not finish within 0.1s: the API server answers too slowly, or not at all"
        );

        // Each bounded piece of work gets a fresh deadline: one that passed (the planning's,
        // before a confirmation prompt) does not stop the retries of the next.
        let fake = FakeGateway::new();
        fake.put(&pv(), json!({"metadata": {"name": "pv-1"}}));
        fake.fail_next("get", &pv(), code(503), 1);
        let gw = Retrying::new(fake.clone(), policy());
        gw.set_deadline(Some(Instant::now()));
        let got = gw
            .bounded(Duration::from_secs(5), "checking", "", gw.get(&pv()))
            .await
            .expect("within the fresh deadline")
            .expect("retried after the 503");
        assert!(got.is_some());
        assert_eq!(fake.calls("get"), 2);
    }

    #[tokio::test]
    async fn no_retry_starts_after_the_deadline() {
        let fake = FakeGateway::new();
        fake.fail_next("get", &pv(), code(503), 10);
        let gw = Retrying::new(
            fake.clone(),
            RetryPolicy {
                base_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(50),
                ..policy()
            },
        );
        gw.set_deadline(Some(Instant::now()));
        assert!(gw.get(&pv()).await.is_err());
        assert_eq!(fake.calls("get"), 1);
    }
}
