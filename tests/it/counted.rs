//! Requests of one test, counted by the API server itself while other tests share it.
//!
//! The API server's `apiserver_request_total` has no user label, so it counts every test's
//! requests together. API Priority and Fairness, though, classifies each request after
//! impersonation, by the user it is made as: a test creates a user of its own (bound to
//! `cluster-admin`), one FlowSchema per verb that matches only that user, runs the plugin with
//! `--as` that user, and reads `apiserver_flowcontrol_dispatched_requests_total` of its
//! FlowSchemas before and after. The FlowSchemas and the binding go when the test ends (even
//! when it fails); leftovers of earlier runs match users nobody uses and change nothing.

use crate::support::{TestCtx, cluster, kubectl};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Verbs counted on their own (as API Priority and Fairness names them); anything else — other
/// verbs, non-resource URLs — is counted as `other`.
const VERBS: [&str; 7] = [
    "get", "list", "watch", "create", "patch", "update", "delete",
];

/// Precedence of the per-verb FlowSchemas: before every built-in one but `exempt` (1) and
/// `probes` (2), which match other subjects (`system:masters`, unauthenticated probes).
const PRECEDENCE: u32 = 50;

/// A user of one test whose requests the API server counts by verb.
pub struct Counted {
    /// The user to pass to `--as`.
    pub user: String,
    prefix: String,
}

/// Requests counted between two readings, by verb (`other` for the rest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requests(pub BTreeMap<String, u64>);

impl Requests {
    pub fn verb(&self, verb: &str) -> u64 {
        self.0.get(verb).copied().unwrap_or(0)
    }
}

impl Counted {
    /// Creates the user's binding and FlowSchemas and waits until API Priority and Fairness
    /// classifies with them.
    pub fn new(ctx: &TestCtx) -> Counted {
        let user = format!("kstateful-count-{}", ctx.ns);
        let prefix = format!("kstateful-count-{}", ctx.prefix);
        let mut docs = vec![format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n\
             metadata: {{name: {prefix}, labels: {{kstateful-test: count, kstateful-count: {prefix}}}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\n\
             subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]\n"
        )];
        let schema = |name: &str, precedence: u32, verbs: &str, non_resource: bool| {
            let mut rules = format!(
                "    resourceRules: [{{verbs: [{verbs}], apiGroups: ['*'], resources: ['*'], \
                 clusterScope: true, namespaces: ['*']}}]\n"
            );
            if non_resource {
                rules.push_str("    nonResourceRules: [{verbs: ['*'], nonResourceURLs: ['*']}]\n");
            }
            format!(
                "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\n\
                 metadata: {{name: {prefix}-{name}, labels: {{kstateful-test: count, kstateful-count: {prefix}}}}}\n\
                 spec:\n  priorityLevelConfiguration: {{name: workload-high}}\n  \
                 matchingPrecedence: {precedence}\n  distinguisherMethod: {{type: ByUser}}\n  rules:\n  \
                 - subjects: [{{kind: User, user: {{name: {user}}}}}]\n{rules}"
            )
        };
        for verb in VERBS {
            docs.push(schema(verb, PRECEDENCE, verb, false));
        }
        docs.push(schema("other", PRECEDENCE + 1, "'*'", true));
        let counted = Counted { user, prefix };
        // Applied, not created: a leftover of the same name is taken over.
        kubectl(
            None,
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&docs.join("---\n")),
        );
        // The APF controller writes a FlowSchema's `Dangling` condition once it has taken the
        // FlowSchema into the configuration it classifies with.
        kubectl(
            None,
            &[
                "wait",
                "flowschema",
                "-l",
                &format!("kstateful-count={}", counted.prefix),
                "--for=condition=Dangling=False",
                "--timeout=60s",
            ],
            None,
        );
        // And a request as the user is counted as its own.
        let before = counted.read();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            kubectl(None, &["auth", "whoami", "--as", &counted.user], None);
            if counted.read().since(&before).verb("create") > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the API server did not count requests of {} with FlowSchemas {}-*",
                counted.user,
                counted.prefix
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        counted
    }

    /// The user's requests dispatched so far, by verb.
    pub fn read(&self) -> Requests {
        let out = std::process::Command::new(cluster().kubectl_dir.join("kubectl"))
            .args(["get", "--raw", "/metrics"])
            .env("KUBECONFIG", &cluster().kubeconfig)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl get --raw /metrics failed");
        let mut counts = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(labels) =
                line.strip_prefix("apiserver_flowcontrol_dispatched_requests_total{")
            else {
                continue;
            };
            let Some(schema) = labels
                .split("flow_schema=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            else {
                continue;
            };
            let Some(verb) = schema
                .strip_prefix(&self.prefix)
                .and_then(|v| v.strip_prefix('-'))
            else {
                continue;
            };
            let value: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *counts.entry(verb.to_string()).or_default() += value as u64;
        }
        Requests(counts)
    }

    /// Runs `f` and returns the user's requests it made.
    pub fn during<T>(&self, f: impl FnOnce() -> T) -> (T, Requests) {
        let before = self.read();
        let out = f();
        (out, self.read().since(&before))
    }
}

impl Requests {
    fn since(&self, before: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(verb, n)| (verb.clone(), n - before.verb(verb)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // This test's own objects only: other tests' FlowSchemas are in use.
        let _ = std::process::Command::new(cluster().kubectl_dir.join("kubectl"))
            .args([
                "delete",
                "flowschema,clusterrolebinding",
                "--ignore-not-found",
                "-l",
            ])
            .arg(format!("kstateful-count={}", self.prefix))
            .env("KUBECONFIG", &cluster().kubeconfig)
            .output();
    }
}
