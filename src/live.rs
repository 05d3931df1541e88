//! Connects to the cluster exactly like kubectl (kubeconfig, context, namespace) and reads the
//! live state planning needs: StorageClasses, PersistentVolumes, the namespace's claims and
//! whether the namespace exists. Every request goes through the [`Gateway`].

use crate::gateway::kube::KubeGateway;
use crate::gateway::retry::{RetryPolicy, Retrying};
use crate::gateway::{ApiFailure, Gateway, ListQuery};
use crate::kinds::{Kind, ObjectRef};
use crate::spec::{self, ClusterNames, Spec};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How many objects are read, dry-run, written or waited for at once, unless `--concurrency` says.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Bound on each API request unless `--request-timeout` or the user config says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to connect, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    /// Objects handled at once within a phase.
    pub concurrency: usize,
    /// Bound on each request (`None`: the default).
    pub request_timeout: Option<Duration>,
    /// Impersonate this user (kubectl's `--as`).
    pub impersonate: Option<String>,
    /// Impersonate these groups (kubectl's `--as-group`).
    pub impersonate_groups: Vec<String>,
}

/// A connected cluster: the gateway every request goes through, and what the kubeconfig said.
#[derive(Clone)]
pub struct Cluster {
    pub gateway: Arc<Retrying<KubeGateway>>,
    /// The namespace of the kubeconfig context (or `default`).
    pub context_namespace: String,
    /// The API server URL.
    pub server: String,
    /// The kubeconfig context in use.
    pub context: String,
    /// Objects handled at once within a phase.
    pub concurrency: usize,
}

impl Cluster {
    /// The gateway as a trait object.
    pub fn gw(&self) -> &dyn Gateway {
        self.gateway.as_ref()
    }
}

/// Errors talking to the cluster outside of per-object planning.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClusterError {
    #[error("cannot load kubeconfig")]
    #[diagnostic(help("set KUBECONFIG or --kubeconfig, and check --context"))]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot create a client for {server}")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what}: {}", failure_text(.failure))]
    Api { what: String, failure: ApiFailure },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

fn failure_text(f: &ApiFailure) -> String {
    let mut text = f.message.clone();
    if f.is_forbidden() {
        text.push_str(" (the account needs the RBAC rules in examples/rbac.yaml)");
    }
    text
}

impl Cluster {
    /// Connects like kubectl does: `--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`;
    /// `--context`, else the current context.
    pub async fn connect(target: &Target) -> Result<Cluster, ClusterError> {
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let kc = match &target.kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(ClusterError::Kubeconfig)?;
        let context = target
            .context
            .clone()
            .or_else(|| kc.current_context.clone())
            .unwrap_or_default();
        let mut config = Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(ClusterError::Kubeconfig)?;
        let request_timeout = target.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        // The gateway bounds each request (and says so clearly); the connection attempt is
        // bounded here too, a little later, as a backstop.
        config.connect_timeout = Some(request_timeout + Duration::from_secs(5));
        if target.impersonate.is_some() {
            config.auth_info.impersonate = target.impersonate.clone();
        }
        if !target.impersonate_groups.is_empty() {
            config.auth_info.impersonate_groups = Some(target.impersonate_groups.clone());
        }
        let server = config.cluster_url.to_string();
        let context_namespace = config.default_namespace.clone();
        let identity =
            crate::auth::Identity::of(target.kubeconfig.as_deref(), target.context.as_deref());
        let client =
            Client::try_from(config).map_err(|source| {
                match crate::auth::plugin_error(&source, &identity) {
                    Some(auth) => ClusterError::Auth(auth),
                    None => ClusterError::Client {
                        server: server.clone(),
                        source,
                    },
                }
            })?;
        crate::auth::check(&client, &identity, &server, request_timeout).await?;
        let gateway = Retrying::new(
            KubeGateway::new(client, server.clone()),
            RetryPolicy {
                request_timeout,
                ..Default::default()
            },
        );
        Ok(Cluster {
            gateway: Arc::new(gateway),
            context_namespace,
            server,
            context,
            concurrency: target.concurrency.max(1),
        })
    }
}

/// Lists every object of a kind, cluster-wide or in one namespace.
pub async fn list(
    gw: &dyn Gateway,
    kind: Kind,
    namespace: Option<&str>,
) -> Result<Vec<Value>, ClusterError> {
    let query = ListQuery::new(kind.api_resource(), namespace);
    gw.list(&query).await.map_err(|failure| ClusterError::Api {
        what: format!("listing {}", kind.plural()),
        failure,
    })
}

/// What the cluster holds that planning needs besides the objects themselves.
#[derive(Debug, Default)]
pub struct ClusterFacts {
    pub names: ClusterNames,
    /// Binding mode per StorageClass name.
    pub binding_modes: BTreeMap<String, String>,
    /// The default StorageClass, if one is marked.
    pub default_class: Option<String>,
    pub namespace_exists: bool,
    /// What was listed: every StorageClass and PersistentVolume, the namespace's claims.
    pub classes: Vec<Value>,
    pub volumes: Vec<Value>,
    pub claims: Vec<Value>,
}

impl ClusterFacts {
    /// True when claims of `class` (None: the default class) bind on first consumer.
    pub fn waits_for_consumer(&self, spec: &Spec, class: Option<&str>) -> bool {
        let Some(class) = class
            .map(str::to_string)
            .or_else(|| self.default_class.clone())
        else {
            return false;
        };
        if let Some(sc) = spec
            .storage_classes
            .iter()
            .find(|s| s.get_ref().name.get_ref() == &class)
        {
            return sc.get_ref().binding_mode == Some(spec::BindingMode::WaitForFirstConsumer);
        }
        self.binding_modes.get(&class).map(String::as_str) == Some("WaitForFirstConsumer")
    }
}

/// Reads StorageClasses, PersistentVolumes, the namespace's claims and whether it exists.
pub async fn facts(gw: &dyn Gateway, namespace: &str) -> Result<ClusterFacts, ClusterError> {
    let ns_ref = ObjectRef::new(Kind::Namespace, "", namespace);
    let (classes, volumes, ns) = futures::try_join!(
        list(gw, Kind::StorageClass, None),
        list(gw, Kind::PersistentVolume, None),
        async {
            gw.get(&ns_ref).await.map_err(|failure| ClusterError::Api {
                what: format!("reading namespace {namespace}"),
                failure,
            })
        },
    )?;
    let mut facts = ClusterFacts {
        namespace_exists: ns.is_some(),
        ..Default::default()
    };
    let claims = if facts.namespace_exists {
        list(gw, Kind::PersistentVolumeClaim, Some(namespace)).await?
    } else {
        Vec::new()
    };
    for c in &claims {
        facts.names.claims.insert(name_of(c));
    }
    for sc in &classes {
        let name = name_of(sc);
        let mode = sc["volumeBindingMode"]
            .as_str()
            .unwrap_or("Immediate")
            .to_string();
        if sc
            .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
            .and_then(Value::as_str)
            == Some("true")
        {
            facts.default_class = Some(name.clone());
        }
        facts.binding_modes.insert(name.clone(), mode);
        facts.names.storage_classes.insert(name);
    }
    for pv in &volumes {
        let vol = spec::ClusterVolume {
            capacity: pv
                .pointer("/spec/capacity/storage")
                .and_then(Value::as_str)
                .map(str::to_string),
            access_modes: pv["spec"]["accessModes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            class: pv["spec"]["storageClassName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        facts.names.volumes.insert(name_of(pv), vol);
    }
    facts.classes = classes;
    facts.volumes = volumes;
    facts.claims = claims;
    Ok(facts)
}

pub(crate) fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
