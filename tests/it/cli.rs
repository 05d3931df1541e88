//! The command line as CI and users meet it: exit codes, refusals, output formats, plugin discovery.

use crate::support::{TestCtx, assert_contains, cluster};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

#[tokio::test]
async fn spec_error_exits_1_and_writes_nothing() {
    let ctx = TestCtx::new("specerr").await;
    let spec = ctx.spec(
        "bad",
        "[[claim]]\nname = \"data\"\nsize = \"10GB-x\"\n\n[[statefulset]]\nname = \"db\"\nimage = \"x\"\n",
    );
    let run = ctx.run(&["apply", "-f", spec.to_str().unwrap(), "--yes"]);
    run.expect_code(1);
    assert_contains(&run.stderr, "claim[0].size: invalid quantity \"10GB-x\"");
    assert_contains(&run.stderr, "bad.toml:3:8");
    assert_eq!(ctx.count::<StatefulSet>().await, 0);
    assert_eq!(ctx.count::<Service>().await, 0);

    // Machine-readable plans get a machine-readable failure.
    let json = ctx.run(&["plan", "-f", spec.to_str().unwrap(), "-o", "json"]);
    json.expect_code(1);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["format_version"], 4);
    let e = &v["error"]["spec_errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(3), Some(8))
    );
    assert_eq!(e["key"], "claim[0].size");
}

#[tokio::test]
async fn unknown_volume_is_a_spec_error_with_position() {
    let ctx = TestCtx::new("unknownvolume").await;
    let spec = ctx.spec(
        "c",
        "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\nvolume = \"gold\"\n",
    );
    let run = ctx.run(&["plan", "-f", spec.to_str().unwrap()]);
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        &format!(
            "PersistentVolume \"{}\" is neither in the spec nor in the cluster",
            ctx.unique("gold")
        ),
    );
    assert_contains(&run.stderr, "c.toml:4:10");
    // The help lists the volumes there are (a fresh cluster may have none yet).
    assert!(
        run.stderr.contains("known volumes: ") || run.stderr.contains("there are no volumes"),
        "{}",
        run.stderr
    );
    // An unknown class is no longer an error (static binding): see workloads.rs.
}

#[tokio::test]
async fn namespace_flag_contradicting_the_spec_is_an_error() {
    let ctx = TestCtx::new("nsflag").await;
    let spec = ctx.spec(
        "s",
        "namespace = \"elsewhere\"\n[[claim]]\nname = \"c\"\nsize = \"1Gi\"\n",
    );
    let run = ctx.run(&["plan", "-f", spec.to_str().unwrap()]);
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        "contradicts the spec's namespace \"elsewhere\"",
    );
}

#[tokio::test]
async fn apply_without_terminal_or_yes_refuses() {
    let ctx = TestCtx::new("noyes").await;
    let spec = ctx.example("postgres");
    let run = ctx.run(&["apply", "-f", spec.to_str().unwrap()]);
    run.expect_code(1);
    assert_contains(&run.stderr, "refusing to apply without confirmation");
    assert_contains(&run.stderr, "--yes");
    assert_eq!(ctx.count::<StatefulSet>().await, 0);
}

#[tokio::test]
async fn plan_outputs_json_and_markdown() {
    let ctx = TestCtx::new("formats").await;
    let spec = ctx.example("shared-claim");
    let spec = spec.to_str().unwrap();
    let json = ctx.run(&["plan", "-f", spec, "-o", "json", "--detailed-exitcode"]);
    json.expect_code(2);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["format_version"], 4);
    assert_eq!(v["namespace"], ctx.ns.as_str());
    assert_eq!(v["summary"]["create"], 4);
    let kinds: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["object"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Service",
            "StatefulSet"
        ]
    );
    let md = ctx.run(&["plan", "-f", spec, "-o", "markdown"]);
    md.expect_code(0);
    assert_contains(&md.stdout, "| `+` | `statefulset/thumbnailer` | create |");
    assert_contains(
        &md.stdout,
        "<details><summary>create <code>pvc/media</code></summary>",
    );
}

#[tokio::test]
async fn saved_plan_applies_exactly_and_is_refused_when_stale() {
    let ctx = TestCtx::new("savedplan").await;
    let spec = ctx.example("postgres");
    let spec = spec.to_str().unwrap();
    let original = std::fs::read_to_string(spec).unwrap();
    let plan_file = ctx.dir.path().join("plan.json");
    let plan_file = plan_file.to_str().unwrap();
    ctx.run(&["plan", "-f", spec, "--out", plan_file])
        .expect_code(0);
    // The spec changes after the plan was saved: apply PLANFILE rolls out what was saved, it
    // does not plan the spec again.
    std::fs::write(
        spec,
        original
            .replace("replicas = 3", "replicas = 1")
            .replace("postgres:17", "postgres:18"),
    )
    .unwrap();
    let apply = ctx.run(&["apply", plan_file, "--yes"]);
    apply.expect_code(0);
    assert_contains(
        &apply.stdout,
        "statefulset/postgres: ready: 3/3 replicas ready",
    );
    let sts: kube::Api<StatefulSet> =
        kube::Api::namespaced(crate::support::client().await, &ctx.ns);
    let applied = sts.get("postgres").await.unwrap().spec.unwrap();
    assert_eq!(applied.replicas, Some(3));
    assert_eq!(
        applied.template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("postgres:17")
    );
    // What the edited spec would change is still to do.
    let pending = ctx.run(&["plan", "-f", spec, "-o", "json", "--detailed-exitcode"]);
    pending.expect_code(2);
    let v: Value = serde_json::from_str(&pending.stdout).unwrap();
    assert_eq!(
        crate::support::step_of(&v, "StatefulSet")["changed_paths"],
        serde_json::json!(["spec.replicas", "spec.template.spec.containers[0].image"])
    );

    // A plan made now, then a change behind its back: applying it must be refused.
    ctx.run(&["plan", "-f", spec, "--out", plan_file])
        .expect_code(0);
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"changed": "by-hand"}}}}});
    sts.patch(
        "postgres",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let stale = ctx.run(&["apply", plan_file, "--yes"]);
    stale.expect_code(1);
    assert_contains(
        &stale.stderr,
        &format!(
            "the saved plan {plan_file} is stale: statefulset/postgres changed since the plan was made"
        ),
    );
    assert_contains(&stale.stderr, "plan` again");
    assert_eq!(
        sts.get("postgres").await.unwrap().spec.unwrap().replicas,
        Some(3),
        "a refused plan writes nothing"
    );
}

#[tokio::test]
async fn runs_through_kubectl_plugin_discovery() {
    let ctx = TestCtx::new("discovery").await;
    let c = cluster();
    let path = ctx.plugin_path();
    let kubectl = |args: &[&str]| {
        std::process::Command::new(c.kubectl_dir.join("kubectl"))
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &c.kubeconfig)
            .output()
            .unwrap()
    };
    let version = kubectl(&["stateful", "version"]);
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("kubectl-stateful {}", env!("CARGO_PKG_VERSION"))
    );
    let list = kubectl(&["plugin", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("kubectl-stateful"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
    let spec = ctx.example("postgres");
    let plan = kubectl(&[
        "stateful",
        "plan",
        "-f",
        spec.to_str().unwrap(),
        "-n",
        &ctx.ns,
        "--detailed-exitcode",
    ]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(String::from_utf8_lossy(&plan.stdout).contains("Plan: 2 to create"));
}

#[tokio::test]
async fn context_and_its_namespace_are_used_like_kubectl() {
    let ctx = TestCtx::new("context").await;
    // A kubeconfig whose current context points nowhere, plus a context on the test cluster
    // with the test's namespace.
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster().kubeconfig).unwrap()).unwrap();
    let real = kc["contexts"][0].clone();
    let mut mine = real.clone();
    mine["name"] = "mine".into();
    mine["context"]["namespace"] = ctx.ns.clone().into();
    let mut nowhere_cluster = kc["clusters"][0].clone();
    nowhere_cluster["name"] = "nowhere".into();
    nowhere_cluster["cluster"]["server"] = "https://127.0.0.1:1".into();
    let mut nowhere = real.clone();
    nowhere["name"] = "nowhere".into();
    nowhere["context"]["cluster"] = "nowhere".into();
    kc["clusters"]
        .as_sequence_mut()
        .unwrap()
        .push(nowhere_cluster);
    let contexts = kc["contexts"].as_sequence_mut().unwrap();
    contexts.push(mine);
    contexts.push(nowhere);
    kc["current-context"] = "nowhere".into();
    let path = ctx.dir.path().join("multi.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    let spec = ctx.example("postgres");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "plan".to_string(),
            "-f".into(),
            spec.to_str().unwrap().into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    // The kubeconfig comes from KUBECONFIG, as with kubectl.
    let with_env = |a: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"))
            .args(&a)
            .env("KUBECONFIG", &path)
            .env("KUBECTL_STATEFUL_CONFIG", "/nonexistent")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = with_env(args(&["--context", "mine"]));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_contains(
        &stdout,
        &format!("Stack postgres in namespace {} (2 objects)", ctx.ns),
    );
    // The current context points nowhere: the message names it, its server and what failed.
    let (code, stdout, stderr) = with_env(args(&[]));
    assert_eq!(code, Some(1), "the current context points nowhere");
    assert!(stdout.is_empty(), "{stdout}");
    assert_contains(
        &stderr,
        "cannot plan against context \"nowhere\" (https://127.0.0.1:1/)",
    );
    assert!(
        [
            "listing StorageClasses",
            "listing PersistentVolumes",
            "reading namespace"
        ]
        .iter()
        .any(|what| stderr.contains(what)),
        "{stderr}"
    );
    // --context names another one in the message.
    let (code, _, stderr) = with_env(args(&["--context", "nowhere"]));
    assert_eq!(code, Some(1));
    assert_contains(&stderr, "context \"nowhere\"");
}

#[tokio::test]
async fn a_broken_user_config_never_blocks_version_or_completion() {
    let ctx = TestCtx::new("brokenconfig").await;
    let config = ctx.dir.path().join("config.toml");
    std::fs::write(&config, "color = false\ntimeout = [\n").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"))
            .args(args)
            .env("KUBECTL_STATEFUL_CONFIG", &config)
            .env("KUBECONFIG", &cluster().kubeconfig)
            .output()
            .unwrap()
    };
    assert!(run(&["version"]).status.success());
    assert!(run(&["completion", "bash"]).status.success());
    let spec = ctx.example("postgres");
    let plan = run(&["plan", "-f", spec.to_str().unwrap(), "-n", &ctx.ns]);
    assert_eq!(plan.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&plan.stderr);
    assert_contains(&stderr, &format!("{}:2:", config.display()));
    // A bad value is located too.
    std::fs::write(&config, "timeout = \"soon\"\n").unwrap();
    let plan = run(&["plan", "-f", spec.to_str().unwrap(), "-n", &ctx.ns]);
    assert_eq!(plan.status.code(), Some(1));
    assert_contains(
        &String::from_utf8_lossy(&plan.stderr),
        &format!(
            "{}:1:11: timeout: invalid duration \"soon\"",
            config.display()
        ),
    );
}

#[tokio::test]
async fn a_closed_standard_output_ends_plan_quietly() {
    let ctx = TestCtx::new("closedpipe").await;
    let spec = ctx.example("local-pv");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-stateful"))
        .args(["plan", "-f", spec.to_str().unwrap(), "-n", &ctx.ns])
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("KUBECTL_STATEFUL_CONFIG", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -c 0`: the reader goes away before the plan is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

#[tokio::test]
async fn apply_json_ends_with_an_error_event_whenever_it_fails() {
    let ctx = TestCtx::new("applyjsonerr").await;
    let spec = ctx.example("postgres");
    // Refused: no terminal and no --yes.
    let refused = ctx.run(&["apply", "-f", spec.to_str().unwrap(), "-o", "json"]);
    refused.expect_code(1);
    let last: Value = serde_json::from_str(refused.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_contains(
        last["message"].as_str().unwrap(),
        "refusing to apply without confirmation",
    );
    // A bad spec: the error event carries the located spec errors.
    let bad = ctx.spec("bad", "[[claim]]\nname = \"data\"\nsize = \"500m\"\n");
    let run = ctx.run(&["apply", "-f", bad.to_str().unwrap(), "-o", "json", "--yes"]);
    run.expect_code(1);
    let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["spec_errors"][0]["key"], "claim[0].size");
    assert_eq!(last["spec_errors"][0]["line"], 3);
}

/// Progress goes where the plan went: with stdout on a terminal and stderr in a file, the
/// rollout is still shown (`script` provides the terminal).
#[tokio::test]
async fn progress_is_shown_on_a_terminal_even_when_stderr_is_redirected() {
    let ctx = TestCtx::new("ttyprogress").await;
    let spec = ctx.spec("t", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let log = ctx.dir.path().join("stderr.log");
    let typescript = ctx.dir.path().join("typescript");
    let command = format!(
        "{} apply -f {} -n {} --yes --timeout 2m 2>{}",
        env!("CARGO_BIN_EXE_kubectl-stateful"),
        spec.display(),
        ctx.ns,
        log.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command])
        .arg(&typescript)
        .env("KUBECONFIG", &cluster().kubeconfig)
        .env("KUBECTL_STATEFUL_CONFIG", "/nonexistent")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) provides the terminal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = std::fs::read_to_string(&typescript).unwrap();
    assert_contains(&shown, "pvc/data: ready: Bound to");
    assert_contains(&shown, "Apply complete: 1 applied");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
}
