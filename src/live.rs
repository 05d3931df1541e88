//! Reads the cluster for planning: connection (kubeconfig, context, namespace exactly like
//! kubectl), live objects, server-side dry-run applies, and the names the spec may refer to.
//! Together with `apply::ops`, the only code that talks to the API server.

use crate::desired::{self, DesiredObject};
use crate::kinds::{FIELD_MANAGER, Kind, MANAGED_BY, ObjectRef, STACK_LABEL};
use crate::plan::compute::{ApiFailure, DryRun, StepInput, compute_step};
use crate::plan::{Plan, WaitPlan};
use crate::spec::{self, ClusterNames, Spec};
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;
use std::collections::BTreeMap;

/// How many objects are read, dry-run, written or waited for at once, unless `--concurrency` says.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Where to connect, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    /// Objects handled at once within a phase.
    pub concurrency: usize,
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The namespace of the kubeconfig context (or `default`).
    pub context_namespace: String,
    /// The API server URL.
    pub server: String,
    /// Objects handled at once within a phase.
    pub concurrency: usize,
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
    #[error("{what}: {failure}")]
    Api {
        what: String,
        failure: ApiFailureDisplay,
    },
}

/// An [`ApiFailure`] shown as the server's message.
#[derive(Debug)]
pub struct ApiFailureDisplay(pub ApiFailure);

impl std::fmt::Display for ApiFailureDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.message)?;
        if self.0.code == 403 {
            write!(
                f,
                " (the account needs the RBAC rules in examples/rbac.yaml)"
            )?;
        }
        Ok(())
    }
}

impl Cluster {
    /// Connects like kubectl does: `--kubeconfig`, else `KUBECONFIG`, else `~/.kube/config`;
    /// `--context`, else the current context.
    pub async fn connect(target: &Target) -> Result<Cluster, ClusterError> {
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let config = match &target.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(ClusterError::Kubeconfig)?;
                Config::from_custom_kubeconfig(kc, &options).await
            }
            None => Config::from_kubeconfig(&options).await,
        }
        .map_err(ClusterError::Kubeconfig)?;
        let server = config.cluster_url.to_string();
        let context_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|source| ClusterError::Client {
            server: server.clone(),
            source,
        })?;
        Ok(Cluster {
            client,
            context_namespace,
            server,
            concurrency: target.concurrency.max(1),
        })
    }

    /// The dynamic API for one object.
    pub fn api(&self, id: &ObjectRef) -> Api<DynamicObject> {
        let ar = id.kind.api_resource();
        match &id.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// The live object, or `None` when it does not exist.
    pub async fn get(&self, id: &ObjectRef) -> Result<Option<Value>, ApiFailure> {
        match self.api(id).get_opt(&id.name).await {
            Ok(obj) => Ok(obj.map(to_value)),
            Err(e) => Err(failure(e)),
        }
    }

    /// Server-side apply of a manifest with our field manager; `dry_run` asks the server what it
    /// would store without storing it.
    pub async fn apply(
        &self,
        id: &ObjectRef,
        manifest: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiFailure> {
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        self.api(id)
            .patch(&id.name, &params, &Patch::Apply(manifest))
            .await
            .map(to_value)
            .map_err(failure)
    }

    /// Lists every object of a cluster-scoped kind, or of a kind in one namespace.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| ClusterError::Api {
                what: format!("listing {}", kind.plural()),
                failure: ApiFailureDisplay(failure(e)),
            })?;
        Ok(list.items.into_iter().map(to_value).collect())
    }
}

/// Converts a dynamic object into plain JSON with apiVersion and kind.
pub fn to_value(obj: DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// Extracts what the server said from a kube error.
pub fn failure(e: kube::Error) -> ApiFailure {
    match e {
        kube::Error::Api(status) => ApiFailure {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            fields: status
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        .map(|c| c.field.clone())
                        .filter(|f| !f.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        },
        other => ApiFailure {
            code: 0,
            reason: String::new(),
            message: other.to_string(),
            fields: Vec::new(),
        },
    }
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
    /// StorageClasses, PersistentVolumes and claims that carry the stack's labels, in that order.
    pub stack_objects: Vec<ObjectRef>,
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

/// Reads StorageClasses, PersistentVolumes, the namespace's claims and whether it exists, and
/// notes which of them belong to `stack`.
pub async fn facts(
    cluster: &Cluster,
    namespace: &str,
    stack: &str,
) -> Result<ClusterFacts, ClusterError> {
    let ns_ref = ObjectRef {
        kind: Kind::Namespace,
        namespace: None,
        name: namespace.to_string(),
    };
    let (classes, volumes, ns) = futures::try_join!(
        cluster.list(Kind::StorageClass, None),
        cluster.list(Kind::PersistentVolume, None),
        async {
            cluster.get(&ns_ref).await.map_err(|f| ClusterError::Api {
                what: format!("reading namespace {namespace}"),
                failure: ApiFailureDisplay(f),
            })
        },
    )?;
    let mut facts = ClusterFacts {
        namespace_exists: ns.is_some(),
        ..Default::default()
    };
    let claims = if facts.namespace_exists {
        cluster
            .list(Kind::PersistentVolumeClaim, Some(namespace))
            .await?
    } else {
        Vec::new()
    };
    for (kind, list) in [
        (Kind::StorageClass, &classes),
        (Kind::PersistentVolume, &volumes),
        (Kind::PersistentVolumeClaim, &claims),
    ] {
        for obj in list.iter().filter(|o| in_stack(o, stack)) {
            facts.stack_objects.push(ObjectRef {
                kind,
                namespace: kind.namespaced().then(|| namespace.to_string()),
                name: name_of(obj),
            });
        }
    }
    for c in &claims {
        facts.names.claims.insert(name_of(c));
    }
    for sc in classes {
        let name = name_of(&sc);
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
    for pv in volumes {
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
        facts.names.volumes.insert(name_of(&pv), vol);
    }
    Ok(facts)
}

/// True when the object carries the plugin's labels for `stack`.
fn in_stack(obj: &Value, stack: &str) -> bool {
    let labels = &obj["metadata"]["labels"];
    labels[MANAGED_BY.0] == MANAGED_BY.1 && labels[STACK_LABEL] == stack
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Why no plan could be made at all (per-object failures go into the plan instead).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Spec(Box<spec::SpecErrors>),
}

/// Plans the spec against the cluster: reads facts, checks references, then reads and dry-runs
/// every object (bounded concurrency) and computes each step.
pub async fn make_plan(cluster: &Cluster, spec: &Spec, namespace: &str) -> Result<Plan, PlanError> {
    let facts = facts(cluster, namespace, spec.stack_name()).await?;
    let issues = spec::check_references(spec, &facts.names);
    if !issues.is_empty() {
        return Err(PlanError::Spec(Box::new(spec::errors_for(spec, issues))));
    }
    let ctx = desired::Context {
        namespace: namespace.to_string(),
        cluster_volume_classes: facts
            .names
            .volumes
            .iter()
            .map(|(k, v)| (k.clone(), v.class.clone()))
            .collect(),
        create_namespace: !facts.namespace_exists,
    };
    let objects = desired::desired_objects(spec, &ctx);
    let steps: Vec<_> = stream::iter(
        objects
            .iter()
            .map(|d| plan_one(cluster, spec, &facts, &ctx, d)),
    )
    .buffered(cluster.concurrency)
    .try_collect()
    .await?;
    let mut plan = Plan::new(
        spec.stack_name().to_string(),
        namespace.to_string(),
        cluster.server.clone(),
        steps,
    );
    if facts.namespace_exists {
        plan.not_in_spec =
            not_in_spec(cluster, spec.stack_name(), namespace, &facts, &objects).await?;
    }
    Ok(plan)
}

/// Objects carrying this stack's label that the spec no longer describes. StorageClasses,
/// volumes and claims come from the facts already read; Services and StatefulSets are listed.
async fn not_in_spec(
    cluster: &Cluster,
    stack: &str,
    namespace: &str,
    facts: &ClusterFacts,
    desired: &[DesiredObject],
) -> Result<Vec<ObjectRef>, ClusterError> {
    let selector = format!("{}={},{}={stack}", MANAGED_BY.0, MANAGED_BY.1, STACK_LABEL);
    let mut found = facts.stack_objects.clone();
    for kind in [Kind::Service, Kind::StatefulSet] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), namespace, &kind.api_resource());
        let list = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| ClusterError::Api {
                what: format!("listing the stack's {}", kind.plural()),
                failure: ApiFailureDisplay(failure(e)),
            })?;
        found.extend(list.items.into_iter().map(|item| ObjectRef {
            kind,
            namespace: Some(namespace.to_string()),
            name: item.metadata.name.unwrap_or_default(),
        }));
    }
    found.retain(|id| !desired.iter().any(|d| &d.id == id));
    Ok(found)
}

async fn plan_one(
    cluster: &Cluster,
    spec: &Spec,
    facts: &ClusterFacts,
    ctx: &desired::Context,
    d: &DesiredObject,
) -> Result<crate::plan::Step, PlanError> {
    let live = match cluster.get(&d.id).await {
        Ok(live) => live,
        Err(f) => {
            return Ok(compute_step(StepInput {
                desired: d,
                live: None,
                dry_run: DryRun::Failed(f),
                wait: WaitPlan::default(),
            }));
        }
    };
    let dry_run = if d.id.kind.namespaced() && ctx.create_namespace {
        DryRun::Skipped(format!(
            "namespace {} does not exist yet; the server validates this object when apply creates it",
            ctx.namespace
        ))
    } else if d.only_if_absent
        && live
            .as_ref()
            .is_some_and(|l| !crate::plan::compute::is_managed(l))
    {
        DryRun::Skipped("exists and not managed".into())
    } else {
        match cluster.apply(&d.id, &d.manifest, true).await {
            Ok(v) => DryRun::Ok(v),
            Err(mut f) => {
                if f.code == 403 && crate::plan::compute::is_rbac_denial(&f.message) {
                    f.message = format!(
                        "{}: planning asks the API server for a server-side dry-run apply, which is a PATCH and needs \
                         the patch and create verbs on {}; see examples/rbac.yaml",
                        f.message,
                        d.id.kind.api_resource().plural
                    );
                }
                DryRun::Failed(f)
            }
        }
    };
    let wait = wait_plan(spec, facts, d);
    Ok(compute_step(StepInput {
        desired: d,
        live: live.as_ref(),
        dry_run,
        wait,
    }))
}

fn wait_plan(spec: &Spec, facts: &ClusterFacts, d: &DesiredObject) -> WaitPlan {
    let mut wait = WaitPlan::default();
    match d.id.kind {
        Kind::PersistentVolumeClaim => {
            let class = d
                .manifest
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str);
            // A claim pinned to a volume binds at once whatever its class says.
            let pinned = d.manifest.pointer("/spec/volumeName").is_some();
            wait.first_consumer =
                !pinned && class != Some("") && facts.waits_for_consumer(spec, class);
        }
        Kind::StatefulSet => {
            wait.template_claims = d.template_claims.clone();
            if let Some(vols) = d
                .manifest
                .pointer("/spec/template/spec/volumes")
                .and_then(Value::as_array)
            {
                for v in vols {
                    if let Some(claim) = v
                        .pointer("/persistentVolumeClaim/claimName")
                        .and_then(Value::as_str)
                    {
                        wait.consumed_claims.push(claim.to_string());
                    }
                }
            }
        }
        _ => {}
    }
    wait
}
