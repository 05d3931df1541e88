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

/// Runs the parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> miette::Result<i32> {
    let config = crate::config::load()?;
    let colors_allowed = config.color != Some(false) && color_allowed(&cli.cluster);
    let style = Style {
        color: colors_allowed && std::io::stdout().is_terminal(),
    };
    // Diagnostics: graphical with carets always; colors and line wrapping only on a terminal, so
    // CI logs keep each message on one line.
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
    match cli.command {
        Command::Version(args) => {
            let version = env!("CARGO_PKG_VERSION");
            match args.output {
                ApplyFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "name": "kubectl-stateful", "version": version })
                ),
                ApplyFormat::Human => println!("kubectl-stateful {version}"),
            }
            Ok(0)
        }
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "kubectl-stateful", &mut std::io::stdout());
            Ok(0)
        }
        Command::Plan(args) => {
            let mut cluster = cli.cluster.clone();
            cluster.request_timeout = cluster.request_timeout.or(config.request_timeout()?);
            let deadline = config.timeout()?.unwrap_or(crate::cli::DEFAULT_TIMEOUT);
            plan_command(&cluster, args, deadline, style).await
        }
        Command::Import(args) => {
            let mut cluster = cli.cluster.clone();
            cluster.request_timeout = cluster.request_timeout.or(config.request_timeout()?);
            crate::import::run(&target(&cluster), cluster.namespace.as_deref(), args).await
        }
        Command::Status(args) => {
            let mut cluster = cli.cluster.clone();
            cluster.request_timeout = cluster.request_timeout.or(config.request_timeout()?);
            let options = crate::status::StatusOptions {
                file: args.file,
                json: args.output == ApplyFormat::Json,
                watch: args.watch,
                timeout: args
                    .timeout
                    .or(config.timeout()?)
                    .unwrap_or(crate::cli::DEFAULT_TIMEOUT),
                color: style.color,
            };
            crate::status::run(&target(&cluster), cluster.namespace.as_deref(), options).await
        }
        Command::Apply(mut args) => {
            if args.timeout.is_none() {
                args.timeout = config.timeout()?;
            }
            let mut cluster = cli.cluster.clone();
            cluster.request_timeout = cluster.request_timeout.or(config.request_timeout()?);
            apply_command(&cluster, args, style).await
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
        Ok::<_, miette::Report>(
            make_plan(cluster.gw(), cluster.concurrency, &spec, &namespace).await?,
        )
    };
    let plan = match planned.await {
        Ok(plan) => plan,
        Err(report) => {
            // Machine-readable views still get a document on stdout; the diagnostics go to stderr.
            match p.output {
                PlanFormat::Json => print!(
                    "{}",
                    render::json_failure(&error_chain(&report), &spec_entries(&report))
                ),
                PlanFormat::Markdown => print!(
                    "{}",
                    render::markdown_failure(&error_chain(&report), &spec_entries(&report))
                ),
                PlanFormat::Human | PlanFormat::Dot => {}
            }
            return Err(report);
        }
    };
    let text = match p.output {
        PlanFormat::Human => render::human(&plan, style),
        PlanFormat::Json => render::json(&plan),
        PlanFormat::Markdown => render::markdown(&plan),
        PlanFormat::Dot => render::dot(&plan),
    };
    print!("{text}");
    if let Some(out) = &p.out {
        save_plan(&plan, out)?;
        if p.output == PlanFormat::Human {
            println!(
                "Saved the plan to {}; apply it with: kubectl stateful apply {}",
                out.display(),
                out.display()
            );
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
    Vec::new()
}

/// Saves the plan for `apply PLANFILE`, unmasked (apply sends what it holds), readable only by
/// the user.
fn save_plan(plan: &Plan, path: &std::path::Path) -> miette::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_string_pretty(plan).expect("plans serialize") + "\n";
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    };
    write().map_err(|e| miette::miette!("cannot write the plan to {}: {e}", path.display()))
}

fn load_plan(path: &std::path::Path) -> miette::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| miette::miette!("cannot read {}: {e}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        miette::miette!(
            "{} is not a plan saved by `kubectl stateful plan --out`: {e}",
            path.display()
        )
    })?;
    if plan.format_version != crate::plan::FORMAT_VERSION {
        return Err(miette::miette!(
            "{} has plan format {}, this version reads format {}",
            path.display(),
            plan.format_version,
            crate::plan::FORMAT_VERSION
        ));
    }
    Ok(plan)
}

async fn apply_command(args: &ClusterArgs, a: ApplyArgs, style: Style) -> miette::Result<i32> {
    let json = a.output == ApplyFormat::Json;
    let timeout = a.timeout.unwrap_or(crate::cli::DEFAULT_TIMEOUT);
    let options = ApplyOptions {
        timeout,
        concurrency: args.concurrency.into(),
        force_conflicts: a.force_conflicts,
        adopt: a.adopt,
    };
    let (cluster, plan) = match (&a.plan, &a.file) {
        (Some(path), _) => {
            let plan = load_plan(path)?;
            let cluster = Cluster::connect(&target(args)).await?;
            if !plan.server.is_empty() && plan.server != cluster.server {
                return Err(miette::miette!(
                    "the plan was made against {} but the current context points at {}",
                    plan.server,
                    cluster.server
                ));
            }
            cluster
                .gateway
                .set_deadline(Some(tokio::time::Instant::now() + timeout));
            apply::check_fresh(cluster.gw(), &plan, cluster.concurrency).await?;
            (cluster, plan)
        }
        (None, Some(file)) => {
            let (cluster, spec, namespace) = prepare(args, file).await?;
            cluster
                .gateway
                .set_deadline(Some(tokio::time::Instant::now() + timeout));
            let plan = make_plan(cluster.gw(), cluster.concurrency, &spec, &namespace).await?;
            (cluster, plan)
        }
        (None, None) => unreachable!("clap requires a plan file or -f"),
    };
    if json {
        let shown = crate::plan::mask::masked(&plan);
        println!("{}", serde_json::json!({ "event": "plan", "plan": shown }));
    } else {
        print!("{}", render::human(&plan, style));
    }
    apply::check_executable(&plan, &options)?;
    if plan.summary.has_changes() && !a.yes {
        confirm()?;
        // The prompt may have waited for long: check again that nothing changed meanwhile.
        apply::check_fresh(cluster.gw(), &plan, cluster.concurrency).await?;
    }
    let sink: Box<dyn Sink> = if json {
        Box::new(ui::JsonSink::new(Box::new(std::io::stdout())))
    } else if std::io::stdout().is_terminal() {
        Box::new(ui::ProgressSink::new())
    } else {
        Box::new(ui::PlainSink::new(Box::new(std::io::stdout())))
    };
    // The rollout's own deadline starts now; requests are bounded by it too.
    cluster
        .gateway
        .set_deadline(Some(tokio::time::Instant::now() + timeout));
    apply::execute(cluster.gw(), &plan, &options, sink.as_ref()).await?;
    Ok(0)
}

/// Asks on the terminal; refuses without one.
fn confirm() -> miette::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(miette::miette!(
            help = "pass --yes to apply without confirmation (e.g. in CI)",
            "refusing to apply without confirmation: standard input is not a terminal"
        ));
    }
    eprint!("\nDo you want to apply these changes? Only 'yes' will be accepted: ");
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
