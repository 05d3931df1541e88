//! Orchestrates the subcommands: load → plan → render, or plan → confirm → execute. Maps every
//! outcome to a stable exit code: 0 success, 1 error, 2 changes present (`--detailed-exitcode`).

use crate::apply::{self, ApplyOptions, Sink};
use crate::cli::{ApplyArgs, ApplyFormat, Cli, ClusterArgs, Command, PlanArgs, PlanFormat};
use crate::live::{Cluster, Target};
use crate::plan::Plan;
use crate::plan::build::{PlanError, PlanOptions, make_plan_with};
use crate::render::{self, Style};
use crate::spec::{self, Spec};
use crate::ui;
use std::io::{BufRead, IsTerminal, Write};

/// Exit code for errors.
pub const EXIT_ERROR: i32 = 1;
/// Exit code of `plan --detailed-exitcode` when there are changes.
pub const EXIT_CHANGES: i32 = 2;

/// Writes to standard output. A reader that went away (`plan … | head`) is not an error of
/// the command: the rest of the output is dropped and the command finishes with its own exit
/// code, without a panic or a message.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Writes a diagnostic to standard error (which may be closed, too).
fn err_out(report: &miette::Report) {
    let _ = writeln!(std::io::stderr().lock(), "{report:?}");
}

/// Runs the parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> miette::Result<i32> {
    match cli.command {
        Command::Version(args) => {
            let version = env!("CARGO_PKG_VERSION");
            match args.output {
                ApplyFormat::Json => out(&format!(
                    "{}\n",
                    serde_json::json!({ "name": "kubectl-stateful", "version": version })
                )),
                ApplyFormat::Human => out(&format!("kubectl-stateful {version}\n")),
            }
            Ok(0)
        }
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kubectl-stateful", &mut script);
            out(&String::from_utf8_lossy(&script));
            Ok(0)
        }
        _ if !cli.cluster.as_group.is_empty() && cli.cluster.as_user.is_none() => {
            Err(miette::miette!(
                help = "name the user to impersonate with --as, like kubectl",
                "--as-group needs --as"
            ))
        }
        command => {
            // Only the commands that talk to a cluster read the user config: a broken one never
            // blocks `version` or `completion`.
            let config = crate::config::load();
            let colors =
                ColorInputs::from_env(&cli.cluster, config.as_ref().ok().and_then(|c| c.color));
            let style = Style {
                color: colors.color(std::io::stdout().is_terminal()),
            };
            // Diagnostics: graphical with carets always; colors and line wrapping only on a
            // terminal, so CI logs keep each message on one line.
            let terminal = std::io::stderr().is_terminal();
            let diagnostics_color = colors.color(terminal);
            let _ = miette::set_hook(Box::new(move |_| {
                Box::new(
                    miette::MietteHandlerOpts::new()
                        .color(diagnostics_color)
                        .wrap_lines(terminal)
                        .build(),
                )
            }));
            let config = config?;
            let mut cluster = cli.cluster.clone();
            cluster.request_timeout = cluster.request_timeout.or(config.request_timeout()?);
            let default_timeout = config.timeout()?;
            match command {
                Command::Plan(args) => {
                    let deadline = default_timeout.unwrap_or(crate::cli::DEFAULT_TIMEOUT);
                    plan_command(&cluster, args, deadline, style).await
                }
                Command::Apply(mut args) => {
                    if args.timeout.is_none() {
                        args.timeout = default_timeout;
                    }
                    apply_command(&cluster, args, style).await
                }
                Command::Destroy(mut args) => {
                    if args.timeout.is_none() {
                        args.timeout = default_timeout;
                    }
                    destroy_command(&cluster, args, style).await
                }
                Command::Snapshot(args) => {
                    let timeout = args
                        .timeout
                        .or(default_timeout)
                        .unwrap_or(crate::cli::DEFAULT_TIMEOUT);
                    snapshot_command(&cluster, args, timeout).await
                }
                Command::Snapshots(args) => {
                    let (cluster, spec, namespace) = prepare(&cluster, &args.file).await?;
                    let rows =
                        crate::snapshots::list(cluster.gw(), spec.stack_name(), &namespace).await?;
                    match args.output {
                        ApplyFormat::Json => out(&format!("{}\n", serde_json::Value::Array(rows))),
                        ApplyFormat::Human => out(&crate::snapshots::table(&rows)),
                    }
                    Ok(0)
                }
                Command::Import(args) => {
                    crate::import::run(&target(&cluster), cluster.namespace.as_deref(), args).await
                }
                Command::Status(args) => {
                    let options = crate::status::StatusOptions {
                        file: args.file,
                        json: args.output == ApplyFormat::Json,
                        watch: args.watch,
                        timeout: args
                            .timeout
                            .or(default_timeout)
                            .unwrap_or(crate::cli::DEFAULT_TIMEOUT),
                        color: style.color,
                    };
                    crate::status::run(&target(&cluster), cluster.namespace.as_deref(), options)
                        .await
                }
                Command::Version(_) | Command::Completion { .. } => Ok(0),
            }
        }
    }
}

/// What to do when planning inside `plan` does not finish in time.
const PLAN_DEADLINE_HELP: &str = "check that the cluster is reachable, or raise `timeout` in the user config file (the bound on planning, default 5m)";

/// What to do when planning inside apply or destroy does not finish in time.
const APPLY_DEADLINE_HELP: &str =
    "check that the cluster is reachable, or raise --timeout (planning gets at least 60s)";

/// How long planning inside apply or destroy may take: `--timeout` bounds the rollout, and a
/// short one must not starve the reads and dry runs before it.
fn planning_deadline(timeout: std::time::Duration) -> std::time::Duration {
    timeout.max(std::time::Duration::from_secs(60))
}

/// Takes on-demand snapshots of the stack's claims and prints them.
async fn snapshot_command(
    args: &ClusterArgs,
    s: crate::cli::SnapshotArgs,
    timeout: std::time::Duration,
) -> miette::Result<i32> {
    let (cluster, spec, namespace) = prepare(args, &s.file).await?;
    // It writes (VolumeSnapshots of the stack): one command of the stack at a time, like apply.
    let gw: std::sync::Arc<dyn crate::gateway::Gateway> = cluster.gateway.clone();
    let lock = crate::lock::acquire(
        gw,
        &namespace,
        spec.stack_name(),
        s.lock_timeout.unwrap_or_default(),
    )
    .await?;
    let taken = crate::snapshots::take(
        cluster.gw(),
        &spec,
        &namespace,
        &s.claims,
        s.class.as_deref(),
        timeout,
    )
    .await;
    lock.release(cluster.gw()).await;
    let taken = taken?;
    for (claim, snapshot, message) in &taken {
        match s.output {
            ApplyFormat::Json => out(&format!(
                "{}\n",
                serde_json::json!({ "claim": claim, "snapshot": snapshot, "message": message })
            )),
            ApplyFormat::Human => out(&format!(
                "volumesnapshot/{snapshot} of pvc/{claim}: {message}\n"
            )),
        }
    }
    Ok(0)
}

/// Everything that decides whether output is colored, read once from the flags, the user config
/// and the environment; [`ColorInputs::color`] is the decision itself (pure, unit-tested).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColorInputs {
    /// `--no-color`.
    pub no_color_flag: bool,
    /// `color` in the user config file.
    pub config_color: Option<bool>,
    /// `$NO_COLOR`.
    pub no_color_env: Option<std::ffi::OsString>,
    /// `$TERM`.
    pub term: Option<String>,
}

impl ColorInputs {
    pub fn from_env(args: &ClusterArgs, config_color: Option<bool>) -> Self {
        ColorInputs {
            no_color_flag: args.no_color,
            config_color,
            no_color_env: std::env::var_os("NO_COLOR"),
            term: std::env::var("TERM").ok(),
        }
    }

    /// Colors only on a terminal, and never with `--no-color`, `color = false` in the config
    /// file, a non-empty `NO_COLOR` (no-color.org) or `TERM=dumb`. `color = true` in the config
    /// file does not force colors: the flag and the environment still win.
    pub fn color(&self, is_terminal: bool) -> bool {
        is_terminal
            && !self.no_color_flag
            && self.config_color != Some(false)
            && self.no_color_env.as_ref().is_none_or(|v| v.is_empty())
            && self.term.as_deref() != Some("dumb")
    }
}

fn target(args: &ClusterArgs) -> Target {
    Target {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        concurrency: args.concurrency.into(),
        request_timeout: args.request_timeout,
        impersonate: args.as_user.clone(),
        impersonate_groups: args.as_group.clone(),
    }
}

/// Loads the spec and settles the namespace: flag, spec and context must agree.
async fn prepare(
    args: &ClusterArgs,
    file: &std::path::Path,
) -> miette::Result<(Cluster, Spec, String)> {
    let spec = spec::load_file(file)?;
    if let (Some(flag), Some(in_spec)) = (&args.namespace, &spec.namespace)
        && flag != in_spec.get_ref()
    {
        return Err(miette::miette!(
            help = "drop --namespace, or change the spec's namespace",
            "--namespace {flag} contradicts the spec's namespace {:?} ({})",
            in_spec.get_ref(),
            spec.source_file
        ));
    }
    let cluster = Cluster::connect(&target(args)).await?;
    let namespace = args
        .namespace
        .clone()
        .or_else(|| spec.namespace.as_ref().map(|n| n.get_ref().clone()))
        .unwrap_or_else(|| cluster.context_namespace.clone());
    Ok((cluster, spec, namespace))
}

/// Plans, naming the kubeconfig context and the API server in errors from talking to the
/// cluster (unreachable, or an account that may not list what planning reads).
async fn make_plan(
    args: &ClusterArgs,
    cluster: &Cluster,
    spec: &Spec,
    namespace: &str,
    options: PlanOptions,
) -> miette::Result<Plan> {
    make_plan_with(cluster.gw(), cluster.concurrency, spec, namespace, options)
        .await
        .map_err(|e| match e {
            PlanError::Cluster(crate::live::ClusterError::Api { failure, .. })
                if failure.code == 401 =>
            {
                // Credentials revoked after the check made on connecting: the same one line,
                // naming the context, never the credentials.
                let target = target(args);
                let id = crate::auth::Identity::of(
                    target.kubeconfig.as_deref(),
                    target.context.as_deref(),
                );
                miette::Report::new(crate::auth::AuthError::Rejected {
                    context: id.context,
                    user: id.user,
                    server: cluster.server.clone(),
                })
            }
            PlanError::Cluster(c) => miette::Report::new(c).wrap_err(format!(
                "cannot plan against context {:?} ({})",
                context_name(args),
                cluster.server
            )),
            spec_error => spec_error.into(),
        })
}

/// The kubeconfig context in use: `--context`, else the kubeconfig's current context.
fn context_name(args: &ClusterArgs) -> String {
    if let Some(context) = &args.context {
        return context.clone();
    }
    let kubeconfig = match &args.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path),
        None => kube::config::Kubeconfig::read(),
    };
    kubeconfig
        .ok()
        .and_then(|k| k.current_context)
        .unwrap_or_else(|| "(none)".into())
}

async fn plan_command(
    args: &ClusterArgs,
    p: PlanArgs,
    deadline: std::time::Duration,
    style: Style,
) -> miette::Result<i32> {
    // A link at --out is refused before anything is planned or printed.
    if let Some(file) = &p.out {
        crate::files::check_target("--out", file)?;
    }
    let planned = async {
        let (cluster, spec, namespace) = prepare(args, &p.file).await?;
        let options = PlanOptions {
            prune: p.prune.prune || p.destroy,
            destroy: p.destroy,
            data: p.prune.prune_data,
            full: p.full,
            snapshot_before: p.snapshot_before,
            restart_pods: p.restart_pods,
        };
        cluster
            .gateway
            .bounded(
                deadline,
                "planning",
                PLAN_DEADLINE_HELP,
                make_plan(args, &cluster, &spec, &namespace, options),
            )
            .await?
    };
    let plan = match planned.await {
        Ok(plan) => plan,
        Err(report) => {
            // Machine-readable views still get a document on stdout; the diagnostics go to stderr.
            match p.output {
                PlanFormat::Json => out(&render::json_failure(
                    &error_chain(&report),
                    &spec_entries(&report),
                )),
                PlanFormat::Markdown => out(&render::markdown_failure(
                    &error_chain(&report),
                    &spec_entries(&report),
                )),
                PlanFormat::Human | PlanFormat::Dot => {}
            }
            return Err(report);
        }
    };
    match p.output {
        PlanFormat::Human => {
            // Printed step by step; a closed stdout ends the output quietly, as `out` does.
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let mut ok = true;
            render::human_to(&plan, style, &mut |chunk| {
                ok = ok && stdout.write_all(chunk.as_bytes()).is_ok();
            });
            let _ = stdout.flush();
        }
        PlanFormat::Json => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            // A closed stdout ends the output quietly, as `out` does.
            let _ = render::json_to(&plan, &mut stdout).and_then(|()| stdout.flush());
        }
        PlanFormat::Markdown => out(&render::markdown(&plan)),
        PlanFormat::Dot => out(&render::dot(&plan)),
    }
    if let Some(file) = &p.out {
        save_plan(&plan, file)?;
        if p.output == PlanFormat::Human {
            out(&format!(
                "Saved the plan to {}; apply it with: kubectl stateful apply {}\n",
                file.display(),
                file.display()
            ));
        }
    }
    Ok(if plan.summary.error > 0 {
        EXIT_ERROR
    } else if p.detailed_exitcode && plan.has_content_changes() {
        EXIT_CHANGES
    } else {
        0
    })
}

/// The error and its causes on one line: `cannot load kubeconfig: failed to read …`.
fn error_chain(report: &miette::Report) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in report.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The positioned spec issues behind an error, if it is a spec error.
fn spec_entries(report: &miette::Report) -> Vec<spec::IssueEntry> {
    if let Some(spec::LoadError::Invalid(e)) = report.downcast_ref::<spec::LoadError>() {
        return e.entries();
    }
    if let Some(PlanError::Spec(e)) = report.downcast_ref::<PlanError>() {
        return e.entries();
    }
    if let Some(e) = report.downcast_ref::<crate::plan::saved::SavedPlanError>() {
        return vec![spec::IssueEntry {
            file: e.file.clone(),
            line: e.line,
            column: e.column,
            key: e.key.clone().unwrap_or_default(),
            message: e.message.clone(),
        }];
    }
    Vec::new()
}

/// Saves the plan for `apply PLANFILE`, unmasked (apply sends what it holds): atomically,
/// readable only by the user, never through a symbolic link (see [`crate::files`]).
fn save_plan(plan: &Plan, path: &std::path::Path) -> miette::Result<()> {
    let mut text = render::plan_file(plan);
    if let Some(key) = crate::plan::saved::plan_key() {
        text = crate::plan::saved::sign(&text, &key);
    }
    crate::files::write_private("--out", path, text.as_bytes()).map_err(miette::Report::new)
}

fn load_plan(path: &std::path::Path) -> miette::Result<Plan> {
    let file = path.display().to_string();
    let bytes = spec::read_limited(path)
        .map_err(|e| miette::miette!("cannot read the saved plan {file}: {}", spec::io_text(&e)))?;
    crate::plan::saved::parse(&file, &bytes).map_err(|e| miette::Report::new(*e))
}

async fn apply_command(args: &ClusterArgs, a: ApplyArgs, style: Style) -> miette::Result<i32> {
    let json = a.output == ApplyFormat::Json;
    match apply_inner(args, a, style).await {
        Err(report) => {
            if json {
                // JSON lines end with a machine-readable account of the failure.
                out(&format!(
                    "{}\n",
                    serde_json::json!({
                        "event": "error",
                        "message": error_chain(&report),
                        "spec_errors": spec_entries(&report),
                    })
                ));
            }
            if let Some(apply::ApplyError::Interrupted { signal, .. }) =
                report.downcast_ref::<apply::ApplyError>()
            {
                let code = signal.exit_code();
                err_out(&report);
                return Ok(code);
            }
            Err(report)
        }
        ok => ok,
    }
}

async fn apply_inner(args: &ClusterArgs, a: ApplyArgs, style: Style) -> miette::Result<i32> {
    let json = a.output == ApplyFormat::Json;
    let timeout = a.timeout.unwrap_or(crate::cli::DEFAULT_TIMEOUT);
    let options = ApplyOptions {
        timeout,
        concurrency: args.concurrency.into(),
        force_conflicts: a.force_conflicts,
        adopt: a.adopt,
        replace: a.replace.clone(),
        delete_data: a.delete_data,
        snapshot_before: a.snapshot_before,
        interrupt: None,
        record: None,
    };
    let saved = a.plan.as_ref().map(|p| p.display().to_string());
    let how = Rollout {
        json,
        yes: a.yes,
        saved: saved.as_deref(),
    };
    match (&a.plan, &a.file) {
        (Some(path), _) => {
            let file = path.display().to_string();
            let plan = load_plan(path)?;
            if let Some(ns) = &args.namespace
                && ns != &plan.namespace
            {
                return Err(miette::miette!(
                    help = "drop --namespace (a saved plan keeps its namespace), or make a plan for that namespace",
                    "--namespace {ns} contradicts the namespace {} of the saved plan {file}",
                    plan.namespace
                ));
            }
            let cluster = Cluster::connect(&target(args)).await?;
            if plan.server.is_empty() {
                return Err(miette::miette!(
                    help = "make a new plan with `plan --out` against the cluster to apply it to",
                    "the saved plan {file} does not say which cluster it was made against (its \"server\" is empty): it is not applied anywhere"
                ));
            }
            if plan.server != cluster.server {
                return Err(miette::miette!(
                    help = "select the context of that cluster (--context), or make a new plan against this one",
                    "the saved plan {file} was made against {} but the current context points at {}",
                    plan.server,
                    cluster.server
                ));
            }
            // The lock first: the plan is checked against the cluster as it is once no other
            // command of the stack runs, and held until the rollout ends.
            report_early_retries(&cluster, json);
            let lock = stack_lock(&cluster, &plan.namespace, &plan.stack, a.lock_timeout).await?;
            let result = async {
                cluster
                    .gateway
                    .bounded(
                        planning_deadline(timeout),
                        "checking the saved plan against the cluster",
                        APPLY_DEADLINE_HELP,
                        apply::check_fresh(cluster.gw(), &plan, cluster.concurrency),
                    )
                    .await?
                    .map_err(|e| saved_plan_error(&file, e))?;
                rollout(&cluster, &plan, &options, how, style, lock.as_ref()).await
            }
            .await;
            release(&cluster, lock).await;
            result
        }
        (None, Some(file)) => {
            let (cluster, spec, namespace) = prepare(args, file).await?;
            let plan_options = PlanOptions {
                prune: a.prune.prune,
                destroy: false,
                data: a.prune.prune_data,
                full: a.full,
                snapshot_before: a.snapshot_before,
                restart_pods: a.restart_pods,
            };
            // The lock before planning: an apply that waited for another plans against what
            // the other one left, not against what was there before it finished.
            report_early_retries(&cluster, json);
            let lock = stack_lock(&cluster, &namespace, spec.stack_name(), a.lock_timeout).await?;
            let result = async {
                let plan = cluster
                    .gateway
                    .bounded(
                        planning_deadline(timeout),
                        "planning",
                        APPLY_DEADLINE_HELP,
                        make_plan(args, &cluster, &spec, &namespace, plan_options),
                    )
                    .await??;
                rollout(&cluster, &plan, &options, how, style, lock.as_ref()).await
            }
            .await;
            release(&cluster, lock).await;
            result
        }
        (None, None) => Err(miette::miette!(
            "apply needs a spec (-f FILE) or a saved plan (PLANFILE)"
        )),
    }
}

/// The stack's lock, once its namespace exists to hold the lease (`None` before that: the
/// first apply creates the namespace). A namespace that cannot be read is a refusal, never a
/// write without the lock.
async fn stack_lock(
    cluster: &Cluster,
    namespace: &str,
    stack: &str,
    lock_timeout: Option<std::time::Duration>,
) -> miette::Result<Option<crate::lock::StackLock>> {
    let ns = crate::kinds::ObjectRef::new(crate::kinds::Kind::Namespace, "", namespace);
    match cluster.gw().get(&ns).await {
        Err(f) => Err(miette::miette!(
            help = "the lock of a stack is a Lease in its namespace; check the account's get right on namespaces (see examples/rbac.yaml)",
            "cannot take the lock of stack {stack}: namespace {namespace} cannot be read: {}; nothing was written",
            f.text()
        )),
        Ok(Some(_)) => {
            let gw: std::sync::Arc<dyn crate::gateway::Gateway> = cluster.gateway.clone();
            Ok(Some(
                crate::lock::acquire(gw, namespace, stack, lock_timeout.unwrap_or_default())
                    .await?,
            ))
        }
        Ok(None) => Ok(None),
    }
}

/// Reports retries made before the rollout shows its own events (taking the lock, planning):
/// as JSON events on stdout with `-o json`, else as lines on stderr (stdout is the plan's).
fn report_early_retries(cluster: &Cluster, json: bool) {
    let sink: std::sync::Arc<dyn Sink> = if json {
        std::sync::Arc::new(ui::JsonSink::new(Box::new(std::io::stdout())))
    } else {
        std::sync::Arc::new(ui::PlainSink::new(Box::new(std::io::stderr())))
    };
    cluster
        .gateway
        .set_reporter(Some(std::sync::Arc::new(move |message| {
            sink.emit(apply::Event::Retrying { message })
        })));
}

/// Gives the stack's lock back (when one was taken).
async fn release(cluster: &Cluster, lock: Option<crate::lock::StackLock>) {
    if let Some(lock) = lock {
        lock.release(cluster.gw()).await;
    }
}

/// Removes the whole stack: plans the removal, shows it, confirms and runs it.
async fn destroy_command(
    args: &ClusterArgs,
    d: crate::cli::DestroyArgs,
    style: Style,
) -> miette::Result<i32> {
    let json = d.output == ApplyFormat::Json;
    let timeout = d.timeout.unwrap_or(crate::cli::DEFAULT_TIMEOUT);
    let (cluster, spec, namespace) = prepare(args, &d.file).await?;
    let plan_options = PlanOptions {
        prune: true,
        destroy: true,
        data: d.delete_data,
        full: false,
        snapshot_before: false,
        restart_pods: false,
    };
    let plan = || {
        cluster.gateway.bounded(
            planning_deadline(timeout),
            "planning",
            APPLY_DEADLINE_HELP,
            make_plan(args, &cluster, &spec, &namespace, plan_options),
        )
    };
    if d.detailed_exitcode {
        // Only shows the plan: writes nothing, takes no lock.
        let plan = plan().await??;
        out(&render::human(&plan, style));
        return Ok(if plan.summary.error > 0 {
            EXIT_ERROR
        } else if plan.summary.has_changes() {
            EXIT_CHANGES
        } else {
            0
        });
    }
    let options = ApplyOptions {
        timeout,
        concurrency: args.concurrency.into(),
        force_conflicts: false,
        adopt: false,
        replace: Vec::new(),
        delete_data: d.delete_data,
        snapshot_before: false,
        interrupt: None,
        record: None,
    };
    let how = Rollout {
        json,
        yes: d.yes,
        saved: None,
    };
    // Planned under the lock, like apply.
    report_early_retries(&cluster, json);
    let lock = stack_lock(&cluster, &namespace, spec.stack_name(), d.lock_timeout).await?;
    let result = async {
        let plan = plan().await??;
        rollout(&cluster, &plan, &options, how, style, lock.as_ref()).await
    }
    .await;
    release(&cluster, lock).await;
    result
}

/// Shows the plan, refuses what cannot be done, confirms, runs it and records the inventory.
/// How a rollout is shown and consented to.
struct Rollout<'a> {
    json: bool,
    yes: bool,
    /// The saved plan file being applied, for messages.
    saved: Option<&'a str>,
}

async fn rollout(
    cluster: &Cluster,
    plan: &Plan,
    options: &ApplyOptions,
    how: Rollout<'_>,
    style: Style,
    lock: Option<&crate::lock::StackLock>,
) -> miette::Result<i32> {
    let Rollout { json, yes, saved } = how;
    let timeout = options.timeout;
    let mut options = options.clone();
    if json {
        // One JSON line, `{"event":"plan","plan":{…}}`, written as it is serialized, masked.
        let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
        let _ = stdout
            .write_all(br#"{"event":"plan","plan":"#)
            .and_then(|()| {
                crate::plan::mask::masking_views(|| serde_json::to_writer(&mut stdout, plan))
                    .map_err(std::io::Error::from)
            })
            .and_then(|()| stdout.write_all(b"}\n"))
            .and_then(|()| stdout.flush());
    } else {
        out(&render::human(plan, style));
    }
    apply::check_executable(plan, &options)?;
    if plan.summary.has_changes() && !yes {
        confirm()?;
        // The prompt may have waited for long: check again that nothing changed meanwhile,
        // with a deadline of its own (the planning's may have passed while the prompt waited).
        cluster
            .gateway
            .bounded(
                planning_deadline(timeout),
                "checking the plan against the cluster again",
                APPLY_DEADLINE_HELP,
                apply::check_fresh(cluster.gw(), plan, cluster.concurrency),
            )
            .await?
            .map_err(|e| match saved {
                Some(file) => saved_plan_error(file, e),
                None => miette::Report::new(e),
            })?;
    }
    let sink: std::sync::Arc<dyn Sink> = if json {
        std::sync::Arc::new(ui::JsonSink::new(Box::new(std::io::stdout())))
    } else if std::io::stdout().is_terminal() {
        std::sync::Arc::new(ui::ProgressSink::new())
    } else {
        std::sync::Arc::new(ui::PlainSink::new(Box::new(std::io::stdout())))
    };
    let reporter = sink.clone();
    cluster
        .gateway
        .set_reporter(Some(std::sync::Arc::new(move |message| {
            reporter.emit(apply::Event::Retrying { message })
        })));
    // From here on a signal stops the rollout cleanly: writes in flight finish, waits are
    // abandoned, the summary says what was not done, and the exit code is 130 or 143.
    let (tx, rx) = tokio::sync::watch::channel(None);
    let tx = std::sync::Arc::new(tx);
    options.interrupt = Some(rx);
    let listener = tokio::spawn(listen_for_signals(tx.clone()));
    // The rollout's own deadline starts now; requests are bounded by it too.
    cluster
        .gateway
        .set_deadline(Some(tokio::time::Instant::now() + timeout));
    // A lock lost during the rollout (taken over, or not renewed in time) stops it like a
    // signal: writes in flight finish, nothing new starts.
    // (The caller holds the stack's lock, taken before planning.)
    let watching_lock = lock.map(|l| {
        let mut lost = l.lost();
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Ok(reason) = lost.wait_for(Option::is_some).await {
                eprintln!(
                    "error: the stack's lock was lost ({}): another apply may be running; nothing more is started",
                    reason.as_deref().unwrap_or_default()
                );
                let _ = tx.send(Some(apply::Interrupt::LockLost));
            }
        })
    });
    // The record of what the stack owns: one that cannot be read is not taken for an empty one
    // (the objects written now would be recorded as created by this apply).
    let previous = match crate::inventory::read(cluster.gw(), &plan.namespace, &plan.stack).await {
        Ok(inventory) => inventory,
        Err(f) => {
            listener.abort();
            return Err(miette::miette!(
                help = "check the account's get right on configmaps in the namespace (see examples/rbac.yaml), then apply again",
                "cannot read the stack's inventory (configmap/kubectl-stateful-{} in namespace {}): {}; nothing was written",
                plan.stack,
                plan.namespace,
                f.text()
            ));
        }
    };
    cluster.gateway.set_persistent(true);
    let applied = std::sync::Arc::new(crate::inventory::Applied::default());
    options.record = Some(applied.clone());
    let result = apply::execute(cluster.gw(), plan, &options, sink.as_ref()).await;
    listener.abort();
    if let Some(w) = watching_lock {
        w.abort();
    }
    // Record what the stack owns now, whether the rollout finished or not, with what was
    // written (for the next plan's fast path).
    // A record that could not be written is an error after the rollout's report: the next
    // prune or destroy would not know what this apply created.
    let recorded = {
        let inventory =
            crate::inventory::after_apply(cluster.gw(), plan, &previous, &applied).await;
        if inventory != previous {
            crate::inventory::write(cluster.gw(), &plan.namespace, &plan.stack, &inventory).await
        } else {
            Ok(())
        }
    };
    result?;
    if let Err(f) = recorded {
        return Err(miette::miette!(
            help = "check the account's create and patch rights on configmaps in the namespace (see examples/rbac.yaml), then apply again",
            "the rollout finished, but the stack's inventory could not be recorded in configmap/kubectl-stateful-{}: {}",
            plan.stack,
            f.text()
        ));
    }
    Ok(0)
}

/// Sends the first SIGINT or SIGTERM to the rollout; a second one ends the process at once.
async fn listen_for_signals(
    tx: std::sync::Arc<tokio::sync::watch::Sender<Option<apply::Interrupt>>>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let mut received = false;
    loop {
        let sig = tokio::select! {
            _ = int.recv() => apply::Interrupt::Int,
            _ = term.recv() => apply::Interrupt::Term,
        };
        if received {
            std::process::exit(sig.exit_code());
        }
        received = true;
        let _ = tx.send(Some(sig));
    }
}

/// A refusal of a saved plan names its file.
fn saved_plan_error(file: &str, e: apply::ApplyError) -> miette::Report {
    match e {
        apply::ApplyError::Stale { problems, .. } => {
            miette::Report::new(apply::ApplyError::Stale {
                plan: Some(file.to_string()),
                problems,
            })
        }
        other => miette::Report::new(other),
    }
}

/// Asks on the terminal; refuses without one.
fn confirm() -> miette::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(miette::miette!(
            help = "pass --yes to apply without confirmation (e.g. in CI)",
            "refusing to apply without confirmation: standard input is not a terminal"
        ));
    }
    let _ = write!(
        std::io::stderr(),
        "\nDo you want to apply these changes? Only 'yes' will be accepted: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| miette::miette!("cannot read the answer: {e}"))?;
    if answer.trim() != "yes" {
        return Err(miette::miette!("apply cancelled"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ColorInputs;

    fn on_terminal() -> ColorInputs {
        ColorInputs {
            term: Some("xterm-256color".into()),
            ..Default::default()
        }
    }

    #[test]
    fn colors_only_on_a_terminal() {
        assert!(on_terminal().color(true));
        assert!(!on_terminal().color(false));
        // No TERM at all is not a dumb terminal.
        assert!(ColorInputs::default().color(true));
    }

    #[test]
    fn no_color_flag_env_dumb_terminal_and_config_turn_colors_off() {
        let flag = ColorInputs {
            no_color_flag: true,
            ..on_terminal()
        };
        assert!(!flag.color(true));
        let env = ColorInputs {
            no_color_env: Some("1".into()),
            ..on_terminal()
        };
        assert!(!env.color(true));
        let dumb = ColorInputs {
            term: Some("dumb".into()),
            ..on_terminal()
        };
        assert!(!dumb.color(true));
        let config = ColorInputs {
            config_color: Some(false),
            ..on_terminal()
        };
        assert!(!config.color(true));
    }

    #[test]
    fn empty_no_color_is_ignored_and_config_true_does_not_override_flags() {
        let empty = ColorInputs {
            no_color_env: Some("".into()),
            ..on_terminal()
        };
        assert!(
            empty.color(true),
            "NO_COLOR= (empty) does not disable colors"
        );
        let config_on = ColorInputs {
            config_color: Some(true),
            ..on_terminal()
        };
        assert!(config_on.color(true));
        assert!(
            !config_on.color(false),
            "config color = true never colors a pipe"
        );
        let flag_wins = ColorInputs {
            no_color_flag: true,
            config_color: Some(true),
            ..on_terminal()
        };
        assert!(!flag_wins.color(true), "--no-color wins over color = true");
        let env_wins = ColorInputs {
            no_color_env: Some("1".into()),
            config_color: Some(true),
            ..on_terminal()
        };
        assert!(!env_wins.color(true));
    }
}
