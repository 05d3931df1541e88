//! One apply of a stack at a time: a `coordination.k8s.io` Lease named after the stack in its
//! namespace (`kubectl-stateful-<stack>`), held for the whole rollout, renewed while it runs,
//! released at the end, and taken over only once it has expired (its holder died). A second
//! apply refuses, naming the holder and since when, or waits for it (`--lock-timeout`).
//!
//! As client-go's leader election does, expiry is judged by this process's own clock: a lease
//! has expired when this process has seen it unchanged (same resourceVersion) for its whole
//! duration — never by comparing the holder's `renewTime` with the local clock, which another
//! machine's clock skew would make wrong. Renewal is a write guarded by the lease's
//! resourceVersion after checking that we still hold it; a lease taken by someone else, or not
//! renewed within its duration, is lost, and the rollout is told to start nothing more.

use crate::gateway::{ApplyOptions, Gateway, Propagation};
use crate::kinds::{Kind, MANAGED_BY, ObjectRef, STACK_LABEL};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a lease lives without renewal.
pub const LEASE_SECONDS: i64 = 30;
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    #[error(
        "stack {stack} is being applied by {holder} since {since} (lease {lease} in namespace {namespace})"
    )]
    #[diagnostic(help(
        "wait for that apply to finish, or pass --lock-timeout 5m to wait for it; a lease whose holder died expires after {LEASE_SECONDS}s"
    ))]
    Held {
        stack: String,
        holder: String,
        since: String,
        lease: String,
        namespace: String,
    },
    #[error("cannot take the lock of stack {stack}: {message}")]
    Api { stack: String, message: String },
}

/// A held lock; release it with [`StackLock::release`].
pub struct StackLock {
    id: ObjectRef,
    renew: tokio::task::JoinHandle<()>,
    /// Why the lock was lost, once it is.
    lost: tokio::sync::watch::Receiver<Option<String>>,
}

/// Who we are, for the holder identity: `user@host (pid N)`.
pub fn identity() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host} (pid {})", std::process::id())
}

fn lease_ref(namespace: &str, stack: &str) -> ObjectRef {
    ObjectRef::new(Kind::Lease, namespace, &format!("kubectl-stateful-{stack}"))
}

/// A MicroTime as the API server reads it (RFC 3339, exactly six fractional digits).
fn micro(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn manifest(id: &ObjectRef, stack: &str, holder: &str, acquired: &str) -> Value {
    let now = micro(Timestamp::now());
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": id.name,
            "namespace": id.namespace,
            "labels": { MANAGED_BY.0: MANAGED_BY.1, STACK_LABEL: stack },
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": acquired,
            "renewTime": now,
        },
    })
}

/// How a lease was seen to change, by this process's clock.
#[derive(Debug, Default)]
pub struct Observed {
    /// The resourceVersion last seen, and when it was first seen.
    seen: Option<(String, Instant)>,
}

impl Observed {
    /// Notes the lease read at `now`; true when it has expired: no holder, or unchanged (the
    /// same resourceVersion) for longer than its duration since this process first saw it so.
    pub fn expired(&mut self, lease: &Value, now: Instant) -> bool {
        let holder = lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if holder.is_empty() {
            return true;
        }
        let seconds = lease
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(LEASE_SECONDS)
            .max(1) as u64;
        let version = lease
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match &self.seen {
            Some((v, since)) if *v == version => {
                now.duration_since(*since) > Duration::from_secs(seconds)
            }
            _ => {
                self.seen = Some((version, now));
                false
            }
        }
    }
}

/// Takes the stack's lock, waiting up to `wait` for another holder to finish.
pub async fn acquire(
    gw: Arc<dyn Gateway>,
    namespace: &str,
    stack: &str,
    wait: Duration,
) -> Result<StackLock, LockError> {
    acquire_renewing(gw, namespace, stack, wait, RENEW_EVERY).await
}

/// [`acquire`], renewing every `every`.
async fn acquire_renewing(
    gw: Arc<dyn Gateway>,
    namespace: &str,
    stack: &str,
    wait: Duration,
    every: Duration,
) -> Result<StackLock, LockError> {
    let id = lease_ref(namespace, stack);
    let me = identity();
    let deadline = Instant::now() + wait;
    let api_error = |message: String| LockError::Api {
        stack: stack.to_string(),
        message,
    };
    let mut observed = Observed::default();
    // Bounded: one try per second until the deadline, and at least one.
    loop {
        let now = Timestamp::now();
        let current = gw.get(&id).await.map_err(|f| api_error(f.text()))?;
        let taken = match &current {
            None => match gw
                .create(&id, &manifest(&id, stack, &me, &micro(now)), false)
                .await
            {
                Ok(_) => true,
                Err(f) if f.is_already_exists() => false,
                Err(f) => return Err(api_error(f.text())),
            },
            Some(lease) if observed.expired(lease, Instant::now()) => {
                let mut m = manifest(&id, stack, &me, &micro(now));
                m["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"].clone();
                let force = ApplyOptions {
                    dry_run: false,
                    force: true,
                };
                match gw.apply(&id, &m, force).await {
                    Ok(_) => true,
                    Err(f) if f.is_stale_write() => false,
                    Err(f) => return Err(api_error(f.text())),
                }
            }
            Some(_) => false,
        };
        if taken {
            let (lost_tx, lost) = tokio::sync::watch::channel(None);
            let renew = tokio::spawn(renew(
                gw.clone(),
                id.clone(),
                stack.to_string(),
                me.clone(),
                micro(now),
                every,
                lost_tx,
            ));
            return Ok(StackLock { id, renew, lost });
        }
        if Instant::now() + Duration::from_secs(1) > deadline {
            let lease = current.unwrap_or_default();
            let text = |p: &str| {
                lease
                    .pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string()
            };
            return Err(LockError::Held {
                stack: stack.to_string(),
                holder: text("/spec/holderIdentity"),
                since: text("/spec/acquireTime"),
                lease: id.name.clone(),
                namespace: namespace.to_string(),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Renews the lease every `every` ([`RENEW_EVERY`]): reads it, checks that we still hold it, and writes
/// the new `renewTime` guarded by the resourceVersion read. Ends, saying why through `lost`, when
/// someone else holds it, or when no renewal succeeded for the lease's whole duration (another
/// apply may then have taken it over).
async fn renew(
    gw: Arc<dyn Gateway>,
    id: ObjectRef,
    stack: String,
    me: String,
    acquired: String,
    every: Duration,
    lost: tokio::sync::watch::Sender<Option<String>>,
) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let outcome = match gw.get(&id).await {
            Ok(Some(lease)) => {
                let holder = lease
                    .pointer("/spec/holderIdentity")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if holder != me {
                    let _ = lost.send(Some(format!(
                        "lease {} is now held by {}",
                        id.name,
                        if holder.is_empty() { "nobody" } else { &holder }
                    )));
                    return;
                }
                let mut m = manifest(&id, &stack, &me, &acquired);
                m["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"].clone();
                let force = ApplyOptions {
                    dry_run: false,
                    force: true,
                };
                gw.apply(&id, &m, force).await.map(|_| ())
            }
            Ok(None) => {
                let _ = lost.send(Some(format!("lease {} was deleted", id.name)));
                return;
            }
            Err(f) => Err(f),
        };
        match outcome {
            Ok(()) => renewed = Instant::now(),
            Err(f) if renewed.elapsed() >= Duration::from_secs(LEASE_SECONDS as u64) => {
                let _ = lost.send(Some(format!(
                    "lease {} could not be renewed for {LEASE_SECONDS}s ({})",
                    id.name,
                    f.text()
                )));
                return;
            }
            // Tried again at the next tick (a conflict means the lease changed since the read).
            Err(_) => {}
        }
    }
}

impl StackLock {
    /// Why the lock was lost, once it is (changes at most once).
    pub fn lost(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.lost.clone()
    }

    /// Stops renewing and deletes the lease (if it is still ours).
    pub async fn release(self, gw: &dyn Gateway) {
        self.renew.abort();
        if let Ok(Some(lease)) = gw.get(&self.id).await
            && lease
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                == Some(identity().as_str())
        {
            let uid = lease
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let _ = gw
                .delete(&self.id, uid, None, Propagation::Background)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::fake::FakeGateway;

    const RENEW_IN_TESTS: Duration = Duration::from_millis(20);

    #[test]
    fn micro_times_have_six_digits() {
        let t: Timestamp = "2026-11-25T12:00:00.123456789Z".parse().unwrap();
        assert_eq!(micro(t), "2026-11-25T12:00:00.123456Z");
    }

    /// Expiry by this process's clock: a lease seen unchanged for its duration, whatever its
    /// `renewTime` says (a holder whose clock runs an hour behind is not taken over while it
    /// renews; one whose clock runs ahead is when it stops).
    #[test]
    fn a_lease_expires_when_seen_unchanged_for_its_duration() {
        let lease = |rv: &str, renewed: &str| {
            json!({"metadata": {"resourceVersion": rv},
                   "spec": {"holderIdentity": "ci@runner", "renewTime": renewed, "leaseDurationSeconds": 30}})
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut o = Observed::default();
        // Renewed long ago by the holder's clock: not expired at first sight.
        assert!(!o.expired(&lease("1", "2020-01-01T00:00:00.000000Z"), at(0)));
        assert!(!o.expired(&lease("1", "2020-01-01T00:00:00.000000Z"), at(30)));
        // Renewed (a new resourceVersion): the observation starts again.
        assert!(!o.expired(&lease("2", "2020-01-01T00:00:10.000000Z"), at(29)));
        assert!(!o.expired(&lease("2", "2020-01-01T00:00:10.000000Z"), at(59)));
        assert!(o.expired(&lease("2", "2020-01-01T00:00:10.000000Z"), at(60)));
        // A renewTime in the future does not keep a dead holder's lease alive.
        let mut o = Observed::default();
        assert!(!o.expired(&lease("3", "2099-01-01T00:00:00.000000Z"), at(0)));
        assert!(o.expired(&lease("3", "2099-01-01T00:00:00.000000Z"), at(31)));
        // No holder: free.
        assert!(Observed::default().expired(&json!({"spec": {}}), at(0)));
    }

    /// Renewal checks the holder: a lease someone else took is lost, and said so.
    #[tokio::test]
    async fn a_lease_taken_over_is_reported_lost() {
        let fake = FakeGateway::new();
        let gw: Arc<dyn Gateway> = Arc::new(fake.clone());
        let lock = acquire_renewing(gw.clone(), "ns", "db", Duration::ZERO, RENEW_IN_TESTS)
            .await
            .unwrap();
        let mut lost = lock.lost();
        let id = lease_ref("ns", "db");
        fake.update(&id, |l| {
            l["spec"]["holderIdentity"] = json!("other@ci (pid 1)")
        });
        tokio::time::timeout(Duration::from_secs(10), lost.wait_for(Option::is_some))
            .await
            .expect("reported within a renewal")
            .unwrap();
        assert_eq!(
            lost.borrow().as_deref(),
            Some("lease kubectl-stateful-db is now held by other@ci (pid 1)")
        );
        // The other holder's lease is left alone.
        lock.release(gw.as_ref()).await;
        assert!(fake.object(&id).is_some());
    }

    #[tokio::test]
    async fn a_second_apply_is_refused_naming_the_holder_until_the_first_releases() {
        let fake = FakeGateway::new();
        let gw: Arc<dyn Gateway> = Arc::new(fake.clone());
        let first = acquire(gw.clone(), "ns", "db", Duration::ZERO)
            .await
            .unwrap();
        // Someone else holds it now.
        let id = lease_ref("ns", "db");
        fake.update(&id, |l| {
            l["spec"]["holderIdentity"] = json!("other@ci (pid 1)")
        });
        let err = acquire(gw.clone(), "ns", "db", Duration::ZERO)
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("is being applied by other@ci (pid 1) since"),
            "{err}"
        );
        fake.update(&id, |l| l["spec"]["holderIdentity"] = json!(identity()));
        first.release(gw.as_ref()).await;
        assert!(fake.object(&id).is_none());
        acquire(gw.clone(), "ns", "db", Duration::ZERO)
            .await
            .unwrap();
    }
}
