//! Command-line interface: clap structs, then validated options, before any work starts.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  # Show what would change
  kubectl stateful plan -f stack.toml

  # Gate a CI job on it: exit 0 no changes, 2 changes, 1 error
  kubectl stateful plan -f stack.toml --detailed-exitcode -o markdown > plan.md

  # Save a plan, then apply exactly that plan (refused if the cluster changed since)
  kubectl stateful plan -f stack.toml --out plan.json
  kubectl stateful apply plan.json --yes

  # Plan and roll out in one go, waiting up to 10 minutes
  kubectl stateful apply -f stack.toml --yes --timeout 10m

Exit codes: 0 success; 1 error (invalid arguments or spec, unreachable cluster, an object that
could not be planned, a refused or failed rollout); 2 changes present (plan --detailed-exitcode
only).";

/// Plan and roll out the storage stack of stateful workloads.
#[derive(Debug, Parser)]
#[command(name = "kubectl-stateful", bin_name = "kubectl stateful", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Cluster selection, exactly like kubectl.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace for namespaced objects (default: the spec's, then the context's, then "default").
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,
    /// How many objects are planned or written at once (waits share one watch per kind).
    #[arg(long, global = true, value_name = "N", default_value_t = crate::live::DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Never color the output (NO_COLOR is honored too).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Give up on any single API request after this long (e.g. 10s) [default: 30s, or
    /// `request_timeout` in the user config file]. Failed requests are retried with backoff
    /// for throttling, server errors and lost connections.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Username to impersonate for the operation, like kubectl's --as (a user, or a service
    /// account: system:serviceaccount:NAMESPACE:NAME).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate, like kubectl's --as-group (repeat it for several); needs --as.
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what applying the spec would change, object by object.
    Plan(PlanArgs),
    /// Roll out the spec (or a saved plan) in order, waiting for each phase.
    Apply(ApplyArgs),
    /// Remove the whole stack, in reverse rollout order; claims and volumes stay unless
    /// --delete-data.
    Destroy(DestroyArgs),
    /// Take a snapshot of every claim of the stack (or of those named) and wait until each is
    /// ready.
    Snapshot(SnapshotArgs),
    /// List the stack's snapshots with claim, readiness, size and age.
    Snapshots(SnapshotsArgs),
    /// Write the spec of objects that already run (kubectl apply, Helm…), to adopt them.
    Import(ImportArgs),
    /// Show every object of the stack as the cluster holds it; exit 1 unless all are healthy.
    Status(StatusArgs),
    /// Print the plugin's version.
    Version(VersionArgs),
    /// Print shell completions.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
    /// The rollout graph for Graphviz (`dot -Tsvg`).
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The stack spec (TOML).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: PlanFormat,
    /// Exit 0 when there are no changes, 2 when there are, 1 on errors.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the plan (JSON) to this file, for `apply PLANFILE`.
    #[arg(long, value_name = "PLANFILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub prune: PruneArgs,
    /// Ask the API server for a dry run of every object, even of those the stack's inventory
    /// shows untouched since the last apply (which are otherwise planned from one list per kind).
    #[arg(long)]
    pub full: bool,
    /// Plan the removal of the whole stack (what `destroy` would do).
    #[arg(long)]
    pub destroy: bool,
    /// Snapshot the claims a StatefulSet scale-down deletes (whenScaled: Delete) first, as
    /// `apply --snapshot-before` would.
    #[arg(long)]
    pub snapshot_before: bool,
    /// Plan a StatefulSet claim-template resize that restarts, one at a time in ordinal order,
    /// the pods whose claims wait for their file system to grow on mount, as
    /// `apply --restart-pods` would.
    #[arg(long)]
    pub restart_pods: bool,
}

/// Removing what left the spec.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct PruneArgs {
    /// Delete the stack's objects that left the spec (reverse rollout order); adopted objects are
    /// released, claims and volumes kept unless --prune-data.
    #[arg(long)]
    pub prune: bool,
    /// With --prune: also delete claims, volumes and StatefulSets whose retention policy deletes
    /// their claims.
    #[arg(long, requires = "prune")]
    pub prune_data: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`; applied exactly, refused if the cluster changed since.
    #[arg(
        value_name = "PLANFILE",
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    pub plan: Option<PathBuf>,
    /// The stack spec (TOML); it is planned first.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Give up waiting after this long, overall (e.g. 90s, 10m, 1h) [default: 5m, or `timeout`
    /// in the user config file].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Output format: human (progress on a terminal, plain lines otherwise) or JSON lines.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: ApplyFormat,
    /// Take over fields that other field managers own (e.g. replicas set by `kubectl scale`).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take over existing objects that do not carry this stack's labels (or `adopt = true` on
    /// each in the spec).
    #[arg(long)]
    pub adopt: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
    /// Ask the API server for a dry run of every object, even of those the stack's inventory
    /// shows untouched since the last apply (which are otherwise planned from one list per kind).
    #[arg(long)]
    pub full: bool,
    /// Replace this object (KIND/NAME as the plan shows it, e.g. statefulset/db; repeatable):
    /// delete it with --cascade=orphan and create it again. Claims and volumes also need
    /// allow_replace = true in the spec.
    #[arg(long = "replace", value_name = "KIND/NAME")]
    pub replace: Vec<String>,
    /// Allow changes that delete claims with their data (a StatefulSet scaled down with
    /// whenScaled: Delete).
    #[arg(long)]
    pub delete_data: bool,
    /// Instead of --delete-data: snapshot each claim a StatefulSet scale-down deletes
    /// (whenScaled: Delete) and wait until it is ready, then scale down. Refused when no
    /// VolumeSnapshotClass exists for a claim's driver. A saved plan made with
    /// `plan --snapshot-before` carries it already.
    #[arg(long, conflicts_with = "plan")]
    pub snapshot_before: bool,
    /// In a StatefulSet claim-template resize, when the driver grows file systems only when a
    /// pod mounts the volume: restart the pods whose claims wait for that, one at a time in
    /// ordinal order, each Ready before the next (otherwise those claims are reported as
    /// deferred). Pods whose claims grew online are not restarted. A saved plan made with
    /// `plan --restart-pods` carries it already.
    #[arg(long, conflicts_with = "plan")]
    pub restart_pods: bool,
    /// Wait this long for another apply of the same stack to finish (default: refuse at once).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The stack spec (TOML): its name and namespace say which stack.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Also delete claims (template claims included) and volumes, with their data.
    #[arg(long)]
    pub delete_data: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Give up waiting after this long, overall [default: 5m, or `timeout` in the user config].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Output format: human or JSON lines.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: ApplyFormat,
    /// Only show the removal plan: exit 0 when there is nothing to remove, 2 when there is.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Wait this long for another apply of the same stack to finish (default: refuse at once).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The stack spec (TOML).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Only this claim (repeatable; standalone or made from a claim template).
    #[arg(long = "claim", value_name = "NAME")]
    pub claims: Vec<String>,
    /// VolumeSnapshotClass (default: the default class of each claim's driver).
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
    /// Give up waiting for the snapshots after this long [default: 5m].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Wait this long for an apply of the same stack to finish (default: refuse at once).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub lock_timeout: Option<Duration>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: ApplyFormat,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// The stack spec (TOML).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: ApplyFormat,
}

const IMPORT_EXAMPLES: &str = "\
Examples:
  # Everything of namespace demo, as stack demo
  kubectl stateful import -n demo -o stack.toml

  # One StatefulSet (with its claims' volumes), as stack db
  kubectl stateful import -n demo statefulset/db --name db

  # Then: no changes but adoptions, and apply takes the objects over without restarting pods
  kubectl stateful plan -f stack.toml --detailed-exitcode
  kubectl stateful apply -f stack.toml --yes";

#[derive(Debug, Args)]
#[command(after_help = IMPORT_EXAMPLES)]
pub struct ImportArgs {
    /// Objects to import, as kubectl names them: statefulset/db, deploy/web, ds/agent, pvc/data,
    /// pv/disk-1, storageclass/local [default: the workloads and claims of the namespace].
    #[arg(value_name = "TYPE/NAME")]
    pub objects: Vec<String>,
    /// Only objects with these labels (a kubectl label selector, e.g. app=db,tier!=cache).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// The stack's name [default: the namespace].
    #[arg(long, value_name = "STACK")]
    pub name: Option<String>,
    /// Write the spec to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The stack spec (TOML).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Output format (with --watch, JSON is one document per line).
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: ApplyFormat,
    /// Redraw whenever an object of the stack changes (watching, not polling), until --timeout
    /// or Ctrl-C; the exit code is that of the last report.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With --watch: stop after this long [default: 5m, or `timeout` in the user config file].
    #[arg(long, value_parser = parse_duration, requires = "watch")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    pub output: ApplyFormat,
}

/// The rollout timeout when neither the flag nor the user config sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest duration accepted (a year): longer values are almost certainly typos, and
/// would overflow the clock arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `90s`, `10m`, `1h`, `1h30m` or plain seconds; positive, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration: write e.g. 90s, 10m or 1h".into());
    }
    let too_long = || format!("invalid duration {s:?}: longer than a year (8784h)");
    let mut total = 0u64;
    let mut num = String::new();
    let digits_only = s.bytes().all(|b| b.is_ascii_digit());
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if num.is_empty() {
            return Err(format!(
                "invalid duration {s:?}: use a number and a unit (s, m or h), e.g. 90s or 10m"
            ));
        }
        let n: u64 = num.parse().map_err(|_| too_long())?;
        num.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: use s, m or h, e.g. 90s or 10m"
                ));
            }
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(too_long)?;
    }
    if digits_only {
        // Plain seconds.
        total = num.parse().map_err(|_| too_long())?;
    } else if !num.is_empty() {
        return Err(format!("invalid duration {s:?}: missing unit after {num}"));
    }
    if total == 0 {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    let d = Duration::from_secs(total);
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("0").is_err(), "0 is refused like 0s");
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert!(
            parse_duration("99999999999999999h")
                .unwrap_err()
                .contains("longer than a year")
        );
        assert!(
            parse_duration("99999999999999999999999")
                .unwrap_err()
                .contains("longer than a year")
        );
        assert!(parse_duration("9000h").is_err());
        assert_eq!(
            parse_duration("8000h"),
            Ok(Duration::from_secs(8000 * 3600))
        );
    }
}
