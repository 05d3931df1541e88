//! `kubectl stateful status -f stack.toml`: every object of the stack as the cluster holds it —
//! volume and claim phases, capacity against request, resize conditions, workload readiness and
//! revisions, pods that are not ready and why. Exit code 0 when everything is healthy, 1
//! otherwise. With `--watch` the report is redrawn whenever one of the watched collections
//! changes (the gateway's watches, never polling), until `--timeout` or Ctrl-C.

pub mod report;

use crate::desired::{self, DesiredObject};
use crate::gateway::{ApiFailure, Gateway, ListQuery};
use crate::kinds::{Kind, resource_of};
use crate::live::{Cluster, ClusterError, Target};
use crate::spec;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use report::{Report, Snapshot};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// What to show, and how.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub file: PathBuf,
    pub json: bool,
    pub watch: bool,
    /// With `watch`: stop after this long.
    pub timeout: Duration,
    pub color: bool,
}

/// The collections a report is made of, in [`Snapshot`] order.
fn queries(namespace: &str) -> Vec<ListQuery> {
    let ns = Some(namespace);
    let mut q: Vec<ListQuery> = [
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::Service,
        Kind::StatefulSet,
        Kind::Deployment,
        Kind::DaemonSet,
    ]
    .iter()
    .map(|k| ListQuery::new(k.api_resource(), k.namespaced().then_some(namespace)))
    .collect();
    q.push(ListQuery::new(resource_of::<Pod>(), ns));
    q.push(
        ListQuery::new(resource_of::<Event>(), ns)
            .fields("involvedObject.kind=PersistentVolumeClaim"),
    );
    q
}

fn set(snap: &mut Snapshot, slot: usize, list: Vec<Value>) {
    let target = match slot {
        0 => &mut snap.classes,
        1 => &mut snap.volumes,
        2 => &mut snap.claims,
        3 => &mut snap.services,
        4 => &mut snap.statefulsets,
        5 => &mut snap.deployments,
        6 => &mut snap.daemonsets,
        7 => &mut snap.pods,
        _ => &mut snap.claim_events,
    };
    *target = list;
}

fn failed(query: &ListQuery, failure: ApiFailure) -> ClusterError {
    ClusterError::Api {
        what: format!("reading {}", query.resource.plural),
        failure,
    }
}

/// Reads everything once.
pub async fn snapshot(gw: &dyn Gateway, namespace: &str) -> Result<Snapshot, ClusterError> {
    let queries = queries(namespace);
    let lists = futures::future::join_all(queries.iter().map(|q| gw.list(q))).await;
    let mut snap = Snapshot::default();
    for (slot, (list, q)) in lists.into_iter().zip(&queries).enumerate() {
        set(&mut snap, slot, list.map_err(|f| failed(q, f))?);
    }
    Ok(snap)
}

/// The spec's objects, as plan builds them.
fn objects(spec: &spec::Spec, namespace: &str) -> Vec<DesiredObject> {
    desired::desired_objects(
        spec,
        &desired::Context {
            namespace: namespace.to_string(),
            ..Default::default()
        },
    )
}

/// `kubectl stateful status`, from the command line; returns the exit code.
pub async fn run(
    target: &Target,
    namespace_flag: Option<&str>,
    options: StatusOptions,
) -> miette::Result<i32> {
    let spec = spec::load_file(&options.file)?;
    if let (Some(flag), Some(in_spec)) = (namespace_flag, &spec.namespace)
        && flag != in_spec.get_ref()
    {
        return Err(miette::miette!(
            help = "drop --namespace, or change the spec's namespace",
            "--namespace {flag} contradicts the spec's namespace {:?} ({})",
            in_spec.get_ref(),
            spec.source_file
        ));
    }
    let cluster = Cluster::connect(target).await?;
    let namespace = namespace_flag
        .map(str::to_string)
        .or_else(|| spec.namespace.as_ref().map(|n| n.get_ref().clone()))
        .unwrap_or_else(|| cluster.context_namespace.clone());
    let objects = objects(&spec, &namespace);
    let stack = spec.stack_name().to_string();
    let make = |snap: &Snapshot| report::report(&stack, &namespace, &objects, snap);
    if !options.watch {
        let snap = snapshot(cluster.gw(), &namespace).await?;
        let r = make(&snap);
        print!("{}", render(&r, &options, false));
        return Ok(exit_code(&r));
    }
    watch(&cluster, &namespace, &options, make).await
}

fn exit_code(r: &Report) -> i32 {
    if r.healthy { 0 } else { crate::run::EXIT_ERROR }
}

fn render(r: &Report, options: &StatusOptions, watching: bool) -> String {
    if options.json {
        report::json(r, watching)
    } else {
        report::human(r, options.color)
    }
}

/// Redraws the report each time a watched collection changes, until the timeout or Ctrl-C.
async fn watch(
    cluster: &Cluster,
    namespace: &str,
    options: &StatusOptions,
    make: impl Fn(&Snapshot) -> Report,
) -> miette::Result<i32> {
    let gw = cluster.gw();
    let queries = queries(namespace);
    let mut streams = futures::stream::select_all(
        queries
            .iter()
            .enumerate()
            .map(|(slot, q)| gw.watch_list(q).map(move |r| (slot, r)).boxed()),
    );
    let terminal = std::io::stdout().is_terminal() && !options.json;
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut snap = Snapshot::default();
    let mut seen = vec![false; queries.len()];
    let mut last: Option<Report> = None;
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    loop {
        let item = tokio::select! {
            item = streams.next() => item,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = &mut ctrl_c => break,
        };
        let Some(mut item) = item else { break };
        // Take every change that is already there before drawing once.
        loop {
            let (slot, result) = item;
            let list = result.map_err(|f| failed(&queries[slot], f))?;
            set(&mut snap, slot, list);
            seen[slot] = true;
            match streams.next().now_or_never() {
                Some(Some(next)) => item = next,
                _ => break,
            }
        }
        if !seen.iter().all(|s| *s) {
            continue;
        }
        let r = make(&snap);
        if last.as_ref() == Some(&r) {
            continue;
        }
        let text = render(&r, options, true);
        if terminal {
            // Clear the screen and draw from the top.
            print!("\x1b[2J\x1b[H{text}");
        } else if options.json || last.is_none() {
            print!("{text}");
        } else {
            print!("\n{text}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        last = Some(r);
    }
    match last {
        Some(r) => Ok(exit_code(&r)),
        None => Err(miette::miette!(
            "no complete report within {}s: the watches did not all answer",
            options.timeout.as_secs()
        )),
    }
}
