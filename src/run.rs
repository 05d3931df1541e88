//! Orchestrates the subcommands: load → plan → render, or plan → confirm → execute. Maps every
//! outcome to a stable exit code: 0 success, 1 error, 2 changes present (`--detailed-exitcode`).

use crate::apply::{self, ApplyOptions, Sink};
use crate::cli::{ApplyArgs, ApplyFormat, Cli, ClusterArgs, Command, PlanArgs, PlanFormat};
use crate::live::{Cluster, Target};
use crate::plan::Plan;
use crate::plan::build::{PlanError, make_plan};
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
        command => {
            // Only plan and apply read the user config: a broken one never blocks the others.
            let config = crate::config::load();
            let config_color = config.as_ref().ok().and_then(|c| c.color);
            let colors_allowed = config_color != Some(false) && color_allowed(&cli.cluster);
            let style = Style {
                color: colors_allowed && std::io::stdout().is_terminal(),
            };
            // Diagnostics: graphical with carets always; colors and line wrapping only on a
            // terminal, so CI logs keep each message on one line.
            let terminal = std::io::stderr().is_terminal();
            let diagnostics_color = colors_allowed && terminal;
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
            match command {
                Command::Plan(args) => {
                    let deadline = config.timeout()?.unwrap_or(crate::cli::DEFAULT_TIMEOUT);
                    plan_command(&cluster, args, deadline, style).await
                }
                Command::Apply(mut args) => {
                    if args.timeout.is_none() {
                        args.timeout = config.timeout()?;
                    }
                    apply_command(&cluster, args, style).await
                }
                Command::Version(_) | Command::Completion { .. } => Ok(0),
            }
        }
    }
}

/// Colors unless `--no-color`, `NO_COLOR` or a dumb terminal say otherwise.
fn color_allowed(args: &ClusterArgs) -> bool {
    !args.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

fn target(args: &ClusterArgs) -> Target {
    Target {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        concurrency: args.concurrency.into(),
        request_timeout: args.request_timeout,
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

async fn plan_command(
    args: &ClusterArgs,
    p: PlanArgs,
    deadline: std::time::Duration,
    style: Style,
) -> miette::Result<i32> {
    let planned = async {
        let (cluster, spec, namespace) = prepare(args, &p.file).await?;
        cluster
            .gateway
            .set_deadline(Some(tokio::time::Instant::now() + deadline));
        let plan = make_plan(cluster.gw(), cluster.concurrency, &spec, &namespace)
            .await
            .map_err(|e| credentials(&cluster, e))?;
        Ok::<_, miette::Report>(plan)
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
                PlanFormat::Human => {}
            }
            return Err(report);
        }
    };
    let text = match p.output {
        PlanFormat::Human => render::human(&plan, style),
        PlanFormat::Json => render::json(&plan),
        PlanFormat::Markdown => render::markdown(&plan),
    };
    out(&text);
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
    } else if p.detailed_exitcode && plan.summary.has_changes() {
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

/// Saves the plan, readable by its owner only: it holds every value apply sends.
fn save_plan(plan: &Plan, path: &std::path::Path) -> miette::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(render::plan_file(plan).as_bytes())
    };
    write().map_err(|e| {
        miette::miette!(
            "cannot write the plan to {}: {}",
            path.display(),
            spec::io_text(&e)
        )
    })
}

fn load_plan(path: &std::path::Path) -> miette::Result<Plan> {
    let file = path.display().to_string();
    let bytes = spec::read_limited(path)
        .map_err(|e| miette::miette!("cannot read the saved plan {file}: {}", spec::io_text(&e)))?;
    crate::plan::saved::parse(&file, &bytes).map_err(|e| miette::Report::new(*e))
}

/// Errors reaching the cluster name the server and the context: a 401 says that the context's
/// credentials were refused (and never shows them), a lost connection which server was meant.
fn credentials(cluster: &Cluster, e: PlanError) -> miette::Report {
    if let PlanError::Cluster(crate::live::ClusterError::Api { failure, what }) = &e {
        if failure.code == 401 {
            return miette::miette!(
                help = "log in again or renew the credentials of that context (kubectl config view --minify shows which user it uses)",
                "the API server at {} rejected the credentials of context {:?} (401 Unauthorized): they are invalid or expired",
                cluster.server,
                cluster.context
            );
        }
        if failure.code == 0 {
            return miette::miette!(
                help = "check that the cluster is up and that the context is the right one (--context, KUBECONFIG)",
                "cannot reach the API server at {} (context {:?}) while {what}: {}",
                cluster.server,
                cluster.context,
                transport_text(&failure.message)
            );
        }
    }
    miette::Report::new(e)
}

/// A transport error without the layers of its wrappers and the OS's error number.
fn transport_text(message: &str) -> String {
    let mut text = message.to_string();
    for noise in [
        "ServiceError: ",
        "client error (Connect): ",
        "tcp connect error: ",
    ] {
        text = text.replace(noise, "");
    }
    while let Some(i) = text.find(" (os error ") {
        match text[i..].find(')') {
            Some(j) => text.replace_range(i..i + j + 1, ""),
            None => break,
        }
    }
    text
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
    let mut options = ApplyOptions {
        timeout,
        concurrency: args.concurrency.into(),
        force_conflicts: a.force_conflicts,
        adopt: a.adopt,
        interrupt: None,
    };
    let saved = a.plan.as_ref().map(|p| p.display().to_string());
    let (cluster, plan) = match (&a.plan, &a.file) {
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
            if !plan.server.is_empty() && plan.server != cluster.server {
                return Err(miette::miette!(
                    help = "select the context of that cluster (--context), or make a new plan against this one",
                    "the saved plan {file} was made against {} but the current context points at {}",
                    plan.server,
                    cluster.server
                ));
            }
            cluster
                .gateway
                .set_deadline(Some(tokio::time::Instant::now() + timeout));
            apply::check_fresh(cluster.gw(), &plan, cluster.concurrency)
                .await
                .map_err(|e| saved_plan_error(&file, e))?;
            (cluster, plan)
        }
        (None, Some(file)) => {
            let (cluster, spec, namespace) = prepare(args, file).await?;
            cluster
                .gateway
                .set_deadline(Some(tokio::time::Instant::now() + timeout));
            let plan = make_plan(cluster.gw(), cluster.concurrency, &spec, &namespace)
                .await
                .map_err(|e| credentials(&cluster, e))?;
            (cluster, plan)
        }
        (None, None) => {
            return Err(miette::miette!(
                "apply needs a spec (-f FILE) or a saved plan (PLANFILE)"
            ));
        }
    };
    if json {
        out(&format!(
            "{}\n",
            serde_json::json!({ "event": "plan", "plan": render::redact::shown(&plan) })
        ));
    } else {
        out(&render::human(&plan, style));
    }
    apply::check_executable(&plan, &options)?;
    if plan.summary.has_changes() && !a.yes {
        confirm()?;
        // The prompt may have waited for long: check again that nothing changed meanwhile.
        apply::check_fresh(cluster.gw(), &plan, cluster.concurrency)
            .await
            .map_err(|e| match &saved {
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
    options.interrupt = Some(rx);
    let listener = tokio::spawn(listen_for_signals(tx));
    // The rollout's own deadline starts now; requests are bounded by it too.
    cluster
        .gateway
        .set_deadline(Some(tokio::time::Instant::now() + timeout));
    cluster.gateway.set_persistent(true);
    let result = apply::execute(cluster.gw(), &plan, &options, sink.as_ref()).await;
    listener.abort();
    result?;
    Ok(0)
}

/// Sends the first SIGINT or SIGTERM to the rollout; a second one ends the process at once.
async fn listen_for_signals(tx: tokio::sync::watch::Sender<Option<apply::Interrupt>>) {
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
