//! Completion for kubectl's plugin completion (kubectl 1.26 and later): for
//! `kubectl stateful …<TAB>`, kubectl runs `kubectl_complete-stateful ARGS… WORD` (the words
//! after the plugin's name, the last one being completed) and reads one candidate per line
//! (`value<TAB>description`) followed by a cobra directive line `:N`.
//!
//! `kubectl_complete-stateful` (shipped next to the binary) runs `kubectl-stateful __complete
//! ARGS…`, answered here from the clap definition of the command line: subcommands, flags,
//! flag values (output formats, shells, kubeconfig contexts), stack files (`*.toml`) and saved
//! plans (`*.json`).

use crate::cli::Cli;
use clap::{Arg, ArgAction, Command, CommandFactory};

/// Cobra's shell completion directives.
mod directive {
    pub const DEFAULT: u32 = 0;
    pub const NO_SPACE: u32 = 2;
    pub const NO_FILE_COMP: u32 = 4;
    pub const FILTER_FILE_EXT: u32 = 8;
}

/// The completions for `args` (the last one is the word being completed), in cobra's format.
pub fn complete(args: &[String]) -> String {
    let (candidates, directive) = candidates(args);
    let mut out = String::new();
    for (value, help) in candidates {
        if help.is_empty() {
            out.push_str(&format!("{value}\n"));
        } else {
            out.push_str(&format!("{value}\t{help}\n"));
        }
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

type Candidates = Vec<(String, String)>;

fn candidates(args: &[String]) -> (Candidates, u32) {
    let root = Cli::command();
    let (word, before) = match args.split_last() {
        Some((w, b)) => (w.as_str(), b),
        None => ("", &[][..]),
    };
    let mut cmd = &root;
    let mut in_sub = false;
    let mut kubeconfig: Option<String> = None;
    let mut pending: Option<Arg> = None;
    let mut positionals = 0;
    for token in before {
        if let Some(arg) = pending.take() {
            if arg.get_id() == "kubeconfig" {
                kubeconfig = Some(token.clone());
            }
            continue;
        }
        if token == "--" {
            continue;
        }
        if let Some(flag) = token.strip_prefix("--") {
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (flag, None),
            };
            if let Some(arg) = find_long(cmd, &root, name) {
                match value {
                    Some(v) if arg.get_id() == "kubeconfig" => kubeconfig = Some(v.to_string()),
                    Some(_) => {}
                    None if takes_value(&arg) => pending = Some(arg),
                    None => {}
                }
            }
            continue;
        }
        if token.len() > 1 && token.starts_with('-') {
            let short = token.chars().nth(1).unwrap_or('-');
            if let Some(arg) = find_short(cmd, &root, short)
                && takes_value(&arg)
                && token.len() == 2
            {
                pending = Some(arg);
            }
            continue;
        }
        if !in_sub && let Some(sub) = cmd.find_subcommand(token) {
            cmd = sub;
            in_sub = true;
            continue;
        }
        positionals += 1;
    }
    if let Some(arg) = pending {
        return values(&arg, word, "", kubeconfig.as_deref());
    }
    if let Some(flag) = word.strip_prefix("--")
        && let Some((name, value)) = flag.split_once('=')
    {
        return match find_long(cmd, &root, name) {
            Some(arg) => values(&arg, value, &format!("--{name}="), kubeconfig.as_deref()),
            None => (Vec::new(), directive::NO_FILE_COMP),
        };
    }
    if word.starts_with('-') {
        return (flags(cmd, &root, word), directive::NO_FILE_COMP);
    }
    if !in_sub {
        let subs = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name().starts_with(word))
            .map(|s| {
                (
                    s.get_name().to_string(),
                    s.get_about().map(|a| a.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        return (subs, directive::NO_FILE_COMP);
    }
    positional(cmd, positionals, word)
}

/// Values of the `positional`-th positional argument of a subcommand.
fn positional(cmd: &Command, index: usize, word: &str) -> (Candidates, u32) {
    match cmd.get_name() {
        // `apply PLANFILE`: a plan saved with `plan --out`.
        "apply" if index == 0 => (
            vec![("json".into(), String::new())],
            directive::FILTER_FILE_EXT,
        ),
        // `import TYPE/NAME…`: the kinds import reads.
        "import" if !word.contains('/') => (
            [
                "statefulset/",
                "deployment/",
                "daemonset/",
                "pvc/",
                "pv/",
                "storageclass/",
            ]
            .iter()
            .filter(|k| k.starts_with(word))
            .map(|k| (k.to_string(), String::new()))
            .collect(),
            directive::NO_SPACE | directive::NO_FILE_COMP,
        ),
        _ => {
            let arg = cmd
                .get_arguments()
                .filter(|a| a.is_positional())
                .nth(index)
                .cloned();
            match arg {
                Some(arg) => values(&arg, word, "", None),
                None => (Vec::new(), directive::NO_FILE_COMP),
            }
        }
    }
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

fn all_args<'a>(cmd: &'a Command, root: &'a Command) -> impl Iterator<Item = &'a Arg> {
    cmd.get_arguments()
        .chain(root.get_arguments().filter(|a| a.is_global_set()))
}

fn find_long(cmd: &Command, root: &Command, name: &str) -> Option<Arg> {
    all_args(cmd, root)
        .find(|a| a.get_long() == Some(name))
        .cloned()
}

fn find_short(cmd: &Command, root: &Command, short: char) -> Option<Arg> {
    all_args(cmd, root)
        .find(|a| a.get_short() == Some(short))
        .cloned()
}

/// The flags of `cmd` (and the global ones) that start with `word`.
fn flags(cmd: &Command, root: &Command, word: &str) -> Candidates {
    let mut out: Candidates = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for arg in all_args(cmd, root) {
        if arg.is_hide_set() {
            continue;
        }
        let help = arg
            .get_help()
            .map(|h| first_sentence(&h.to_string()))
            .unwrap_or_default();
        if let Some(long) = arg.get_long() {
            let flag = format!("--{long}");
            if flag.starts_with(word) && seen.insert(flag.clone()) {
                out.push((flag, help.clone()));
            }
        }
        if word.len() <= 2
            && let Some(short) = arg.get_short()
        {
            let flag = format!("-{short}");
            if flag.starts_with(word) && seen.insert(flag.clone()) {
                out.push((flag, help));
            }
        }
    }
    for long in ["--help"] {
        if long.starts_with(word) && seen.insert(long.to_string()) {
            out.push((long.to_string(), "Print help".into()));
        }
    }
    out
}

fn first_sentence(help: &str) -> String {
    let line = help.lines().next().unwrap_or_default();
    match line.find(". ") {
        Some(i) => line[..i].to_string(),
        None => line.trim_end_matches('.').to_string(),
    }
}

/// Values for a flag or positional: its possible values, stack files for `-f`, contexts for
/// `--context`, file names where a path is asked for.
fn values(arg: &Arg, word: &str, prefix: &str, kubeconfig: Option<&str>) -> (Candidates, u32) {
    let id = arg.get_id().as_str();
    match id {
        "file" => {
            return (
                vec![("toml".into(), String::new())],
                directive::FILTER_FILE_EXT,
            );
        }
        "context" => {
            let list = contexts(kubeconfig)
                .into_iter()
                .filter(|c| c.starts_with(word))
                .map(|c| (format!("{prefix}{c}"), String::new()))
                .collect();
            return (list, directive::NO_FILE_COMP);
        }
        _ => {}
    }
    let possible: Candidates = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set() && p.get_name().starts_with(word))
        .map(|p| {
            (
                format!("{prefix}{}", p.get_name()),
                p.get_help().map(|h| h.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    if !possible.is_empty() {
        return (possible, directive::NO_FILE_COMP);
    }
    let path_like = arg.get_value_hint() == clap::ValueHint::FilePath
        || arg.get_value_hint() == clap::ValueHint::AnyPath
        || matches!(
            arg.get_value_names()
                .and_then(|n| n.first())
                .map(|n| n.as_str()),
            Some("PATH" | "FILE" | "PLANFILE")
        );
    if path_like {
        (Vec::new(), directive::DEFAULT)
    } else {
        (Vec::new(), directive::NO_FILE_COMP)
    }
}

/// The context names of the kubeconfig (`--kubeconfig` on the line, else `KUBECONFIG`, else
/// `~/.kube/config`).
fn contexts(kubeconfig: Option<&str>) -> Vec<String> {
    let kc = match kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    kc.map(|kc| kc.contexts.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> String {
        let mut args: Vec<String> = line.split(' ').map(str::to_string).collect();
        if line.is_empty() {
            args = vec![String::new()];
        }
        complete(&args)
    }

    #[test]
    fn subcommands_flags_and_values() {
        let top = run("");
        for sub in [
            "plan\t",
            "apply\t",
            "import\t",
            "status\t",
            "version\t",
            "completion\t",
        ] {
            assert!(top.contains(sub), "{sub} in {top}");
        }
        assert!(!top.contains("__complete"));
        assert!(top.ends_with(":4\n"));
        assert_eq!(
            run("st"),
            "status\tShow every object of the stack as the cluster holds it; exit 1 unless all are healthy\n:4\n"
        );
        let flags = run("plan --");
        for f in [
            "--filename\t",
            "--output\t",
            "--detailed-exitcode\t",
            "--context\t",
            "--as\t",
        ] {
            assert!(flags.contains(f), "{f} in {flags}");
        }
        assert_eq!(
            run("plan -o "),
            "human\njson\nmarkdown\ndot\tThe rollout graph for Graphviz (`dot -Tsvg`)\n:4\n"
        );
        assert_eq!(run("plan --output=m"), "--output=markdown\n:4\n");
        assert_eq!(run("plan -f "), "toml\n:8\n");
        assert_eq!(run("apply "), "json\n:8\n");
        assert_eq!(run("--context x plan -f "), "toml\n:8\n");
        assert_eq!(run("import sta"), "statefulset/\n:6\n");
        assert_eq!(run("import -o "), ":0\n");
        assert!(run("completion ").starts_with("bash\n"));
    }

    #[test]
    fn contexts_come_from_the_kubeconfig_on_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kc");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: prod\n  context: {cluster: c, user: u}\n- name: staging\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        let p = path.display();
        assert_eq!(
            run(&format!("--kubeconfig {p} plan --context ")),
            "prod\nstaging\n:4\n"
        );
        assert_eq!(
            run(&format!("--kubeconfig={p} --context=st")),
            "--context=staging\n:4\n"
        );
    }
}
