//! The command line without the cluster's help: usage errors, --help and --version, completions,
//! the spec checks the README lists, and the documents printed when no plan can be made.

use crate::support::{TestCtx, args, assert_contains, kubeconfig_with, run_plugin};
use serde_json::Value;

/// Usage errors are errors like any other: exit 1 (2 is reserved for "changes present").
#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    for (argv, message) in [
        (vec!["plan"], "--filename <FILE>"),
        (vec!["plan", "-f", "x.toml", "--bogus"], "--bogus"),
        (vec!["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (vec![], "Usage:"),
        (
            vec!["plan", "-f", "x.toml", "-o", "yaml"],
            "invalid value 'yaml'",
        ),
        (
            vec!["plan", "-f", "x.toml", "--concurrency", "0"],
            "--concurrency <N>",
        ),
        (
            vec!["plan", "-f", "x.toml", "--concurrency", "65"],
            "65 is not in 1..=64",
        ),
        (
            vec!["apply", "-f", "x.toml", "--timeout", "soon"],
            "invalid duration",
        ),
        (
            vec!["apply", "plan.json", "-f", "x.toml"],
            "cannot be used with",
        ),
        (vec!["completion", "tcsh"], "invalid value 'tcsh'"),
    ] {
        let run = run_plugin(&args(&argv), None);
        assert_eq!(run.code, 1, "{argv:?} must exit 1:\n{}", run.stderr);
        assert_contains(&run.stderr, message);
        assert!(run.stdout.is_empty(), "{argv:?} printed on stdout");
    }
    for argv in [
        vec!["--help"],
        vec!["plan", "--help"],
        vec!["apply", "-h"],
        vec!["help", "plan"],
    ] {
        let run = run_plugin(&args(&argv), None);
        run.expect_code(0);
        assert_contains(&run.stdout, "Usage: kubectl stateful");
    }
    let version = run_plugin(&args(&["--version"]), None);
    version.expect_code(0);
    assert_eq!(
        version.stdout.trim(),
        format!("kubectl-stateful {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completion_scripts_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = run_plugin(&args(&["completion", shell]), None);
        run.expect_code(0);
        for word in ["kubectl-stateful", "plan", "apply", "detailed-exitcode"] {
            assert!(
                run.stdout.contains(word),
                "{shell} completion lacks {word:?}"
            );
        }
    }
    // The bash script is valid bash and registers a completion for the command.
    let bash = run_plugin(&args(&["completion", "bash"]), None);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("completion.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let out = std::process::Command::new("bash")
        .args(["--noprofile", "--norc", "-c"])
        .arg(format!(
            "set -e; source {}; complete -p kubectl-stateful",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_contains(&String::from_utf8_lossy(&out.stdout), "kubectl-stateful");
}

/// Runs `plan -f` on a spec text and returns the run; spec checks happen before any request.
fn plan_spec(ctx: &TestCtx, name: &str, text: &str) -> crate::support::Run {
    let path = ctx.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    ctx.run(&["plan", "-f", path.to_str().unwrap()])
}

/// Each check the README lists under "Checked before anything is sent" that has no other test.
#[tokio::test]
async fn spec_checks_the_readme_lists() {
    let ctx = TestCtx::new("specchecks").await;
    let cases = [
        (
            "classes",
            "[[volume]]\nname = \"pv-a\"\ncapacity = \"1Gi\"\nclass = \"gold\"\nhost_path = { path = \"/tmp/a\" }\n\n\
             [[claim]]\nname = \"c\"\nsize = \"1Gi\"\nclass = \"silver\"\nvolume = \"pv-a\"\n",
            "classes.toml:10:9",
            "claim[0].class: claim class \"silver\" differs from volume \"pv-a\"'s class \"gold\"; they would never bind",
        ),
        (
            "mounts",
            "[[claim]]\nname = \"shared\"\nsize = \"1Gi\"\n\n[[statefulset]]\nname = \"db\"\nimage = \"x\"\n\
             [[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nmount = \"/data\"\n\
             [[statefulset.mount]]\nclaim = \"shared\"\npath = \"/data\"\n",
            "mounts.toml:14:8",
            "statefulset[0].mount[0].path: duplicate mount path \"/data\" (first defined at statefulset[0].volume_claim[0].mount)",
        ),
        (
            "volsel",
            "[[claim]]\nname = \"c\"\nsize = \"1Gi\"\nvolume = \"pv-a\"\nselector = { disk = \"ssd\" }\n",
            "volsel.toml:1:1",
            "claim[0]: set either volume or selector, not both",
        ),
        (
            "ondelete",
            "[[statefulset]]\nname = \"db\"\nimage = \"x\"\nupdate_strategy = { type = \"OnDelete\", partition = 1 }\n",
            "ondelete.toml:4:19",
            "statefulset[0].update_strategy: partition and max_unavailable apply only to RollingUpdate",
        ),
    ];
    for (name, text, position, message) in cases {
        let run = plan_spec(&ctx, name, text);
        run.expect_code(1);
        assert_contains(&run.stderr, message);
        assert_contains(&run.stderr, &format!("{name}.toml: 1 error in the spec"));
        assert_contains(&run.stderr, &format!("{position}]"));
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
    }
}

/// When no plan can be made, `-o json` and `-o markdown` still print a document (exit 1).
#[tokio::test]
async fn failure_documents_in_json_and_markdown() {
    let ctx = TestCtx::new("failuredocs").await;
    let bad = ctx.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[claim]]\nname = \"data\"\nsize = \"10GB-x\"\n\n[[claim]]\nname = \"Data\"\nsize = \"1Gi\"\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();

    let md = ctx.run(&["plan", "-f", bad, "-o", "markdown"]);
    md.expect_code(1);
    assert!(
        md.stdout
            .starts_with("### kubectl stateful plan failed\n\n**"),
        "{}",
        md.stdout
    );
    assert_contains(&md.stdout, "2 errors in the spec");
    assert_contains(
        &md.stdout,
        &format!("```text\n{bad}:3:8: claim[0].size: invalid quantity \"10GB-x\""),
    );
    assert_contains(
        &md.stdout,
        &format!("{bad}:6:8: claim[1].name: \"Data\" is not a valid name"),
    );
    assert_contains(&md.stderr, "claim[0].size");

    let json = ctx.run(&["plan", "-f", bad, "-o", "json"]);
    json.expect_code(1);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["format_version"], 4);
    let errors = v["error"]["spec_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[1],
        serde_json::json!({"file": bad, "line": 6, "column": 8, "key": "claim[1].name",
            "message": "\"Data\" is not a valid name: 'D' is not allowed"})
    );

    // Other failures: a message naming what failed, and no spec errors.
    let good = ctx.spec("good", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let nowhere = kubeconfig_with(ctx.dir.path(), "nowhere.kubeconfig", |kc| {
        kc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1".into();
    });
    for (format, check) in [("json", true), ("markdown", false)] {
        let run = run_plugin(
            &args(&[
                "plan",
                "-f",
                good.to_str().unwrap(),
                "-o",
                format,
                "--kubeconfig",
                nowhere.to_str().unwrap(),
            ]),
            None,
        );
        run.expect_code(1);
        if check {
            let v: Value = serde_json::from_str(&run.stdout).unwrap();
            assert_eq!(v["error"]["spec_errors"], serde_json::json!([]));
            let message = v["error"]["message"].as_str().unwrap();
            assert_contains(message, "cannot plan against context");
            assert_contains(message, "https://127.0.0.1:1");
            // Which request failed: the first of the reads planning starts with.
            assert!(
                [
                    "listing StorageClasses",
                    "listing PersistentVolumes",
                    "reading namespace"
                ]
                .iter()
                .any(|what| message.contains(what)),
                "{message}"
            );
        } else {
            assert!(
                run.stdout.starts_with(
                    "### kubectl stateful plan failed\n\n**cannot plan against context"
                ),
                "{}",
                run.stdout
            );
            assert!(!run.stdout.contains("```text"), "{}", run.stdout);
        }
    }
}
