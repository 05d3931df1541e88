//! The rollout graph of a real plan: `plan -o dot` parses as Graphviz, and `plan -o markdown`
//! carries a Mermaid diagram that the real `mermaid` package parses (tests/mermaid/check.mjs),
//! as do the snapshots of the renderer and the README's example.

use crate::support::{TestCtx, assert_contains};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn mermaid_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mermaid")
}

/// Installs the pinned `mermaid` (`npm ci` into tests/mermaid/node_modules) once per run, and
/// again only when package-lock.json changed. Node.js and npm are required: without them this
/// fails, it does not skip.
fn mermaid_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        for tool in ["node", "npm"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                found,
                "{tool} not found: the Mermaid diagrams are checked with the mermaid npm package, \
                 which needs Node.js 20 or newer and npm on PATH (see README, \"The two commands\")"
            );
        }
        let dir = mermaid_dir();
        let lock =
            std::fs::read(dir.join("package-lock.json")).expect("tests/mermaid/package-lock.json");
        let marker = dir.join("node_modules/.installed-lock.json");
        if std::fs::read(&marker).ok().as_ref() == Some(&lock) {
            return;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("run npm ci");
        assert!(
            out.status.success(),
            "npm ci in tests/mermaid failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&marker, &lock).unwrap();
    });
}

/// Runs tests/mermaid/check.mjs on files (relative to the repository) or, with `stdin`, on that
/// text; panics with its report unless every diagram parses. Returns the report.
fn check_mermaid(files: &[&str], stdin: Option<&str>) -> String {
    mermaid_installed();
    let mut cmd = Command::new("node");
    cmd.arg(mermaid_dir().join("check.mjs"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.arg("-");
    }
    cmd.args(files);
    let mut child = cmd.spawn().expect("run node");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mermaid refused a diagram:\n{report}");
    report
}

#[test]
fn mermaid_parses_the_snapshots_and_the_readme_diagram() {
    let report = check_mermaid(
        &[
            "src/render/snapshots/kubectl_stateful__render__graph__tests__mermaid_snapshot_is_well_formed.snap",
            "src/render/snapshots/kubectl_stateful__render__tests__markdown_view.snap",
            "README.md",
        ],
        None,
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{report}"
    );
}

#[test]
fn the_mermaid_check_refuses_a_broken_diagram() {
    mermaid_installed();
    for (broken, why) in [
        (
            "flowchart LR\n  subgraph p1 [\"1. x\"]\n    n0[\"a]:::create\n  end\n  classDef create fill:#fff\n",
            "Parse error",
        ),
        (
            "flowchart LR\n  subgraph p1 [\"1. x\"]\n    n0[\"a\"]:::create\n  end\n  n0 -->|class| n1\n  classDef create fill:#fff\n",
            "node n1 has no label",
        ),
        (
            "flowchart LR\n  subgraph p1 [\"1. x\"]\n    n0[\"a\"]:::create\n  end\n",
            "class create is not defined",
        ),
    ] {
        let out = std::process::Command::new("node")
            .arg(mermaid_dir().join("check.mjs"))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(broken.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "accepted:\n{broken}");
        assert_contains(&stdout, why);
    }
}

#[tokio::test]
async fn plan_draws_the_rollout_as_dot_and_mermaid() {
    let ctx = TestCtx::new("graph").await;
    let spec = ctx.example("local-pv");
    let spec = spec.to_str().unwrap();
    let dot = ctx.run(&["plan", "-f", spec, "-o", "dot"]);
    dot.expect_code(0);
    let graph = graphviz_rust::parse(&dot.stdout).unwrap_or_else(|e| panic!("{e}\n{}", dot.stdout));
    assert!(matches!(
        graph,
        graphviz_rust::dot_structures::Graph::DiGraph { .. }
    ));
    for node in [
        "label=\"storageclass/",
        "label=\"pv/",
        "label=\"statefulset/kafka\\ncreate\"",
        "label=\"pvc/data-kafka-0…2\\nfrom the template\"",
        "[label=\"class\"]",
        "[label=\"template\"]",
    ] {
        assert_contains(&dot.stdout, node);
    }
    let md = ctx.run(&["plan", "-f", spec, "-o", "markdown"]);
    md.expect_code(0);
    assert_contains(&md.stdout, "#### Rollout\n\n```mermaid\nflowchart LR\n");
    assert_contains(
        &md.stdout,
        "\"statefulset/kafka<br/><i>create</i>\"]:::create",
    );
    check_mermaid(&[], Some(&md.stdout));
}

const MOUNTED: &str = r#"
[[claim]]
name = "keep"
size = "1Gi"

[[claim]]
name = "scratch"
size = "1Gi"

[[deployment]]
name = "web"
image = "nginx"
[[deployment.mount]]
claim = "scratch"
path = "/scratch"
"#;

#[tokio::test]
async fn a_pruned_object_is_drawn_with_its_live_bindings() {
    let ctx = TestCtx::new("graph-prune").await;
    let spec = ctx.spec("g", MOUNTED);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    ctx.spec("g", "[[claim]]\nname = \"keep\"\nsize = \"1Gi\"\n");
    let md = ctx.run(&[
        "plan",
        "-f",
        spec,
        "--prune",
        "--prune-data",
        "-o",
        "markdown",
    ]);
    md.expect_code(0);
    let (claim, web) = (
        "[\"pvc/scratch<br/><i>delete</i>\"]:::delete",
        "[\"deployment/web<br/><i>delete</i>\"]:::delete",
    );
    assert_contains(&md.stdout, claim);
    assert_contains(&md.stdout, web);
    let id = |node: &str| {
        md.stdout
            .lines()
            .find(|l| l.ends_with(node))
            .and_then(|l| l.trim().split('[').next())
            .unwrap()
            .to_string()
    };
    assert_contains(
        &md.stdout,
        &format!("  {} -.->|mounts| {}\n", id(claim), id(web)),
    );
    check_mermaid(&[], Some(&md.stdout));
}
