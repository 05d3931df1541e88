//! Runs the `kubectl stateful` steps of examples/ci/github-actions.yml verbatim, job by job,
//! against the test control plane: plan on a pull request, apply on main, plan again.

use crate::support::{TestCtx, cluster};
use std::path::Path;
use std::process::Command;

/// The `run:` scripts of a job that call the plugin, in order.
fn plugin_steps(workflow: &serde_yaml::Value, job: &str) -> Vec<String> {
    workflow["jobs"][job]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .filter(|run| run.contains("kubectl stateful"))
        .map(str::to_string)
        .collect()
}

fn run_step(script: &str, ctx: &TestCtx, workdir: &Path, output: &Path) -> std::process::Output {
    let c = cluster();
    let path = ctx.plugin_path();
    // GitHub runs `run:` steps with `bash --noprofile --norc -eo pipefail {0}`.
    Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(workdir)
        .env("PATH", path)
        .env("KUBECONFIG", &c.kubeconfig)
        .env("STACK", workdir.join("deploy/stack.toml"))
        .env("NAMESPACE", &ctx.ns)
        .env("GITHUB_OUTPUT", output)
        .env("GITHUB_STEP_SUMMARY", workdir.join("summary.md"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[tokio::test]
async fn github_actions_workflow_steps_plan_then_apply() {
    let ctx = TestCtx::new("ci").await;
    let workflow: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/ci/github-actions.yml"
        ))
        .unwrap(),
    )
    .unwrap();
    let work = ctx.dir.path().join("checkout");
    std::fs::create_dir_all(work.join("deploy")).unwrap();
    std::fs::copy(ctx.example("postgres"), work.join("deploy/stack.toml")).unwrap();
    let output = ctx.dir.path().join("github_output");

    let plan_steps = plugin_steps(&workflow, "plan");
    let apply_steps = plugin_steps(&workflow, "apply");
    assert_eq!(plan_steps.len(), 1);
    assert_eq!(apply_steps.len(), 2);

    // Pull request: changes are not a failure, and the Markdown plan is ready to post.
    let out = run_step(&plan_steps[0], &ctx, &work, &output);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap().trim(),
        "exitcode=2"
    );
    let md = std::fs::read_to_string(work.join("plan.md")).unwrap();
    assert!(
        md.contains("**Plan: 2 to create, 0 to update, 0 to replace, 0 unchanged.**"),
        "{md}"
    );

    // Main: plan, then apply exactly that plan.
    for step in &apply_steps {
        let out = run_step(step, &ctx, &work, &output);
        assert!(
            out.status.success(),
            "step failed: {step}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = std::fs::read_to_string(work.join("apply.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["ok"], true);

    // The next pull request sees no changes.
    std::fs::write(&output, "").unwrap();
    let out = run_step(&plan_steps[0], &ctx, &work, &output);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&output).unwrap().trim(),
        "exitcode=0"
    );
}
