//! One apply of a stack at a time: a `coordination.k8s.io` Lease named after the stack in its
//! namespace (`kubectl-stateful-<stack>`), held for the whole rollout, renewed while it runs,
//! released at the end, and taken over only once it has expired (its holder died). A second
//! apply refuses, naming the holder and since when, or waits for it (`--lock-timeout`).

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

/// True when the lease's holder has not renewed it within its duration.
pub fn expired(lease: &Value, now: Timestamp) -> bool {
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let seconds = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(LEASE_SECONDS);
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match renewed {
        _ if holder.is_empty() => true,
        Some(t) => now.as_second() > t.as_second() + seconds,
        None => true,
    }
}

/// Takes the stack's lock, waiting up to `wait` for another holder to finish.
pub async fn acquire(
    gw: Arc<dyn Gateway>,
    namespace: &str,
    stack: &str,
    wait: Duration,
) -> Result<StackLock, LockError> {
    let id = lease_ref(namespace, stack);
    let me = identity();
    let deadline = Instant::now() + wait;
    let api_error = |message: String| LockError::Api {
        stack: stack.to_string(),
        message,
    };
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
            Some(lease) if expired(lease, now) => {
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
            let renew = tokio::spawn(renew(
                gw.clone(),
                id.clone(),
                stack.to_string(),
                me.clone(),
                micro(now),
            ));
            return Ok(StackLock { id, renew });
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

async fn renew(gw: Arc<dyn Gateway>, id: ObjectRef, stack: String, me: String, acquired: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let force = ApplyOptions {
            dry_run: false,
            force: true,
        };
        let _ = gw
            .apply(&id, &manifest(&id, &stack, &me, &acquired), force)
            .await;
    }
}

impl StackLock {
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

    #[test]
    fn micro_times_have_six_digits() {
        let t: Timestamp = "2026-11-25T12:00:00.123456789Z".parse().unwrap();
        assert_eq!(micro(t), "2026-11-25T12:00:00.123456Z");
    }

    #[test]
    fn a_lease_expires_when_not_renewed() {
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let lease = |renewed: &str| json!({"spec": {"holderIdentity": "ci@runner", "renewTime": renewed, "leaseDurationSeconds": 30}});
        assert!(!expired(&lease("2026-11-25T11:59:45.000000Z"), now));
        assert!(expired(&lease("2026-11-25T11:59:00.000000Z"), now));
        assert!(expired(&json!({"spec": {}}), now));
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
