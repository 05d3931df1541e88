//! `kubectl stateful import`: writes the spec of objects that already run, so that the stack can
//! be planned and applied from then on.
//!
//! 1. [`select`] reads the namespace's workloads and claims, the volumes and classes, and picks
//!    what to write (template claims, dynamically provisioned volumes, owned and system objects
//!    are recognised and left out).
//! 2. [`extract`] turns each object into the keys of its table, exactly as live holds them.
//! 3. The keys are built into objects by the same code plan uses ([`crate::desired`]); the
//!    server's dry-run create of each tells the defaults, and [`residue`] puts what live holds
//!    beyond keys and defaults into the table's `patch`.
//! 4. [`write`] renders the TOML; it is loaded (validated) again, and planned against the
//!    cluster: the plan must show nothing but adoptions of this stack's labels.
//!
//! Secret-looking plain env values are never written: [`secrets`] writes a placeholder that
//! the spec loader refuses, and import says on standard error how to supply each value.
//!
//! Every object gets `adopt = true` (unless it is this stack's already), so that apply takes it
//! over: it adds the stack's labels and changes nothing else (pods keep their labels and
//! workloads their selector; see [`crate::desired::REPLACING_PATCH_PATHS`]).

pub mod extract;
pub mod residue;
pub mod secrets;
pub mod select;
pub mod write;

use crate::desired::{self, DesiredObject};
use crate::gateway::{ApiFailure, Gateway, ListQuery};
use crate::kinds::{Kind, ObjectRef};
use crate::live::{Cluster, ClusterError};
use crate::plan::normalize::normalize;
use crate::spec;
use futures::{StreamExt, TryStreamExt, stream};
use select::{LiveState, Request, Selection};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use write::Entry;

/// What to import and where to write it.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `statefulset/db`, …; empty: the whole namespace.
    pub objects: Vec<String>,
    /// A label selector.
    pub selector: Option<String>,
    /// The stack's name (default: the namespace).
    pub name: Option<String>,
    /// The file to write (default: standard output).
    pub output: Option<PathBuf>,
    /// Overwrite the file.
    pub force: bool,
}

/// The imported spec and what was said about it.
#[derive(Debug, Clone)]
pub struct Imported {
    pub text: String,
    pub objects: Vec<ObjectRef>,
    pub left_out: Vec<select::LeftOut>,
    /// Problems the self-check found: differences a plan of the text would show.
    pub check: Vec<String>,
    /// Secret-looking plain env values written as [`spec::NOT_IMPORTED`].
    pub placeholders: Vec<secrets::Placeholder>,
}

/// Runs the command: imports and writes the spec; the summary goes to standard error.
pub async fn command(
    cluster: &Cluster,
    namespace: &str,
    options: &ImportOptions,
) -> miette::Result<i32> {
    if let Some(out) = &options.output {
        // A link is refused even with --force: the spec may hold what it points at.
        crate::files::check_target("-o", out)?;
    }
    if let Some(out) = &options.output
        && out.exists()
        && !options.force
    {
        return Err(miette::miette!(
            help = "choose another file, or pass --force to overwrite it",
            "{} exists",
            out.display()
        ));
    }
    let imported = import(cluster, namespace, options).await?;
    for warning in secrets::warnings(&imported.placeholders, namespace) {
        eprintln!("{warning}");
    }
    match &options.output {
        Some(path) => crate::files::write_private("-o", path, imported.text.as_bytes())?,
        None => print!("{}", imported.text),
    }
    let stack = options.name.as_deref().unwrap_or(namespace);
    eprintln!(
        "Imported {} into stack {stack}{}; {} left out (see the comments at the top of the spec).",
        spec::plural(imported.objects.len(), "object"),
        options
            .output
            .as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default(),
        imported.left_out.len(),
    );
    if imported.check.is_empty() {
        eprintln!(
            "Checked: a plan of it changes nothing but adds this stack's labels (apply adopts the objects)."
        );
        Ok(0)
    } else {
        eprintln!("Warning: a plan of the imported spec would still change:");
        for line in &imported.check {
            eprintln!("  {line}");
        }
        Ok(0)
    }
}

/// Imports: reads, selects, writes and checks the spec.
pub async fn import(
    cluster: &Cluster,
    namespace: &str,
    options: &ImportOptions,
) -> miette::Result<Imported> {
    let gw = cluster.gw();
    let named = options
        .objects
        .iter()
        .map(|o| select::parse_name(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| miette::miette!("{e}"))?;
    let stack = options
        .name
        .clone()
        .unwrap_or_else(|| namespace.to_string());
    if let Err(why) = spec::check_label_value(&stack) {
        return Err(miette::miette!(
            "--name {stack:?} is not a valid stack name: {why}"
        ));
    }
    let state = read(gw, namespace, None).await?;
    let selected = match &options.selector {
        Some(sel) => {
            let matching = read(gw, namespace, Some(sel)).await?;
            let mut set = BTreeSet::new();
            for kind in [
                Kind::StorageClass,
                Kind::PersistentVolume,
                Kind::PersistentVolumeClaim,
                Kind::StatefulSet,
                Kind::Deployment,
                Kind::DaemonSet,
            ] {
                set.extend(select::names(kind, matching.of_kind(kind)));
            }
            Some(set)
        }
        None => None,
    };
    let request = Request {
        namespace: namespace.to_string(),
        named,
        selected,
    };
    let selection = select::select(&state, &request).map_err(|e| miette::miette!("{e}"))?;
    let (mut entries, left_out) = entries(&state, &selection, &stack);
    if entries.is_empty() {
        return Err(miette::miette!(
            help = "name objects (statefulset/db), or check -n and --selector",
            "nothing to import in namespace {namespace}{}",
            if left_out.is_empty() {
                String::new()
            } else {
                format!(
                    " (left out: {})",
                    left_out
                        .iter()
                        .map(|l| format!("{}: {}", l.object, l.why))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ));
    }
    let ctx = desired::Context {
        namespace: namespace.to_string(),
        cluster_volume_classes: select::volume_classes(&state.volumes),
        create_namespace: false,
    };
    // The keys as objects, exactly as plan builds them.
    let keys_only = write::spec_text(&stack, namespace, &entries, &[]);
    let generated = build(&keys_only, &stack, &ctx)?;
    // What the server adds to them, and what live holds beyond.
    let found: Vec<(usize, Result<Value, ApiFailure>)> = stream::iter(entries.iter().enumerate())
        .map(|(i, e)| {
            let g = generated
                .iter()
                .find(|g| g.id.kind == e.kind && g.id.name == e.name());
            async move {
                match g {
                    Some(g) => (i, defaults(gw, g).await),
                    None => (i, Err(ApiFailure::transport("not generated", false))),
                }
            }
        })
        .buffered(cluster.concurrency.max(1))
        .collect()
        .await;
    let mut header_notes = selection.notes.clone();
    for (i, defaulted) in found {
        let e = &mut entries[i];
        let Some(g) = generated
            .iter()
            .find(|g| g.id.kind == e.kind && g.id.name == e.name())
        else {
            continue;
        };
        let Some((_, live)) = selection
            .objects
            .iter()
            .find(|(k, v)| *k == e.kind && select::name_of(v) == e.name())
        else {
            continue;
        };
        let defaulted = match defaulted {
            Ok(d) => normalize(e.kind, &d, &g.manifest),
            Err(f) => {
                header_notes.push(format!(
                    "{}: the server's defaults are unknown (its dry-run create failed: {}); the patch may repeat some",
                    g.id.short(),
                    f.message
                ));
                g.manifest.clone()
            }
        };
        let intent = last_applied(live);
        let r = residue::residue(
            live,
            &normalize(e.kind, live, &g.manifest),
            &defaulted,
            &g.manifest,
            intent.as_ref(),
        );
        for path in &r.unexpressed {
            e.notes.push(format!(
                "the spec sets {path}, which the live object does not have"
            ));
        }
        let mut patch = e.patch.clone();
        json_patch::merge(&mut patch, &Value::Object(r.patch));
        e.patch = patch;
        if e.patch.pointer("/spec/volumeClaimTemplates").is_some() {
            e.notes.push(
                "spec.volumeClaimTemplates is in patch as the cluster stores it: server-side apply takes over a list that kubectl owns only when it is sent unchanged"
                    .into(),
            );
        }
        if e.kind.is_workload()
            && e.patch.pointer("/spec/template/spec/containers").is_some()
            && !e.notes.iter().any(|n| n.contains("containers"))
        {
            e.notes.push(
                "its containers are given whole in patch (they hold fields the spec has no key for); the patch wins over the keys above"
                    .into(),
            );
        }
    }
    let header = header(&stack, namespace, &gw.server(), &left_out, &header_notes);
    // The spec as live holds it is what import checks; the one written has no secret-looking
    // value (see [`secrets`]).
    let complete = write::spec_text(&stack, namespace, &entries, &header);
    let mut placeholders = Vec::new();
    for e in &mut entries {
        let replaced = secrets::mask_entry(e);
        e.notes.extend(secrets::note(&replaced));
        placeholders.extend(replaced);
    }
    let text = write::spec_text(&stack, namespace, &entries, &header);
    let spec = spec::load("imported spec", &complete, &stack).map_err(|e| {
        miette::miette!(
            "the imported spec does not validate (a bug in import): {}\n{text}",
            secrets::scrub(&e.lines().join("; "), &placeholders)
        )
    })?;
    let check = check(cluster, &spec, namespace)
        .await
        .iter()
        .map(|line| secrets::scrub(line, &placeholders))
        .collect();
    Ok(Imported {
        text,
        objects: entries
            .iter()
            .map(|e| ObjectRef::new(e.kind, namespace, e.name()))
            .collect(),
        left_out,
        check,
        placeholders,
    })
}

/// The tables of the selected objects (keys and forced patches); objects the spec cannot
/// describe move to the left-out list.
fn entries(
    state: &LiveState,
    selection: &Selection,
    stack: &str,
) -> (Vec<Entry>, Vec<select::LeftOut>) {
    let mut left_out = selection.left_out.clone();
    let mut out = Vec::new();
    let default_class = state.default_class();
    for (kind, live) in &selection.objects {
        let extracted = match kind {
            Kind::StorageClass => Ok(extract::storage_class(live)),
            Kind::PersistentVolume => extract::volume(live),
            Kind::PersistentVolumeClaim => Ok(extract::claim(
                live,
                select::bound_static_volume(live, &state.volumes),
                default_class,
            )),
            k => Ok(extract::workload(*k, live)),
        };
        match extracted {
            Ok(x) => out.push(Entry {
                kind: *kind,
                table: x.table,
                patch: x.patch,
                adopt: crate::plan::compute::stack_of(live).as_deref() != Some(stack),
                notes: x.notes,
            }),
            Err(extract::Unsupported(why)) => left_out.push(select::LeftOut {
                object: format!("{}/{}", kind.short(), select::name_of(live)),
                why,
            }),
        }
    }
    (out, left_out)
}

fn header(
    stack: &str,
    namespace: &str,
    server: &str,
    left_out: &[select::LeftOut],
    notes: &[String],
) -> Vec<String> {
    let mut h = vec![
        format!(
            "Stack {stack}: imported from namespace {namespace} of {server} by `kubectl stateful import`."
        ),
        "The objects exist already: adopt = true lets apply take them over, which adds this".into(),
        "stack's labels and changes nothing else. Keys the spec has no key for are in patch."
            .into(),
    ];
    if !notes.is_empty() {
        h.push(String::new());
        h.extend(notes.iter().cloned());
    }
    if !left_out.is_empty() {
        h.push(String::new());
        h.push("Left out:".into());
        h.extend(
            left_out
                .iter()
                .map(|l| format!("  {}: {}", l.object, l.why)),
        );
    }
    h
}

/// Loads spec text written by import and builds its objects.
fn build(text: &str, stack: &str, ctx: &desired::Context) -> miette::Result<Vec<DesiredObject>> {
    let spec = spec::load("imported spec", text, stack).map_err(|e| {
        miette::miette!(
            "the imported keys do not validate (a bug in import): {}\n{text}",
            e.lines().join("; ")
        )
    })?;
    Ok(desired::desired_objects(&spec, ctx))
}

/// The server's version of `g` as a new object: a dry-run create under a generated name.
async fn defaults(gw: &dyn Gateway, g: &DesiredObject) -> Result<Value, ApiFailure> {
    let mut manifest = g.manifest.clone();
    if let Some(meta) = manifest["metadata"].as_object_mut() {
        meta.remove("name");
        meta.insert("generateName".into(), json!("kstateful-import-"));
    }
    gw.create(&g.id, &manifest, true).await
}

/// kubectl's last-applied configuration of the object: what its user wrote.
fn last_applied(live: &Value) -> Option<Value> {
    let text = live
        .pointer("/metadata/annotations")?
        .get("kubectl.kubernetes.io/last-applied-configuration")?
        .as_str()?;
    serde_json::from_str(text).ok()
}

/// Reads every StorageClass and PersistentVolume and the namespace's objects (those matching
/// `selector`, if given).
async fn read(
    gw: &dyn Gateway,
    namespace: &str,
    selector: Option<&str>,
) -> Result<LiveState, ClusterError> {
    let kinds = [
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::StatefulSet,
        Kind::Deployment,
        Kind::DaemonSet,
        Kind::Service,
    ];
    let lists: Vec<Vec<Value>> = stream::iter(kinds)
        .map(|kind| async move {
            let mut q = ListQuery::new(kind.api_resource(), kind.namespaced().then_some(namespace));
            if let Some(sel) = selector {
                q = q.labels(sel);
            }
            gw.list(&q).await.map_err(|failure| ClusterError::Api {
                what: format!("listing {}", kind.plural()),
                failure,
            })
        })
        .buffered(4)
        .try_collect()
        .await?;
    let mut lists = lists.into_iter();
    let mut next = || lists.next().unwrap_or_default();
    Ok(LiveState {
        classes: next(),
        volumes: next(),
        claims: next(),
        statefulsets: next(),
        deployments: next(),
        daemonsets: next(),
        services: next(),
    })
}

/// Plans the imported spec: every step must be unchanged or an adoption of this stack's labels.
/// Returns what else the plan shows.
async fn check(cluster: &Cluster, spec: &spec::Spec, namespace: &str) -> Vec<String> {
    let plan =
        match crate::plan::build::make_plan(cluster.gw(), cluster.concurrency, spec, namespace)
            .await
        {
            Ok(plan) => plan,
            Err(e) => return vec![format!("the imported spec could not be planned: {e}")],
        };
    plan.steps
        .iter()
        .filter(|s| s.action != crate::plan::Action::NoOp && !s.takes_ownership_only())
        .map(|s| match &s.error {
            Some(e) => format!("{}: {}: {e}", s.object.short(), s.action.as_str()),
            None => format!(
                "{}: {} ({})",
                s.object.short(),
                s.action.as_str(),
                s.changed_paths.join(", ")
            ),
        })
        .collect()
}

/// `kubectl stateful import`, from the command line.
pub async fn run(
    target: &crate::live::Target,
    namespace: Option<&str>,
    args: crate::cli::ImportArgs,
) -> miette::Result<i32> {
    let cluster = Cluster::connect(target).await?;
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| cluster.context_namespace.clone());
    let options = ImportOptions {
        objects: args.objects,
        selector: args.selector,
        name: args.name,
        output: args.output,
        force: args.force,
    };
    command(&cluster, &namespace, &options).await
}
