//! kubectl's plugin completion (`kubectl stateful <TAB>`), through the kubectl built from the
//! Kubernetes sources: it finds `kubectl_complete-stateful` (shipped in completion/) on PATH and
//! relays its candidates and directive.

use crate::support::{TestCtx, assert_contains, cluster};
use std::process::Command;

/// `kubectl __complete ARGS…` with the plugin and its completion script on PATH.
fn kubectl_complete(ctx: &TestCtx, args: &[&str]) -> String {
    let path = ctx.plugin_path();
    let bin = ctx.dir.path().join("bin");
    let script = bin.join("kubectl_complete-stateful");
    if !script.exists() {
        std::os::unix::fs::symlink(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("completion/kubectl_complete-stateful"),
            &script,
        )
        .unwrap();
    }
    let out = Command::new(cluster().kubectl_dir.join("kubectl"))
        .arg("__complete")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &cluster().kubeconfig)
        .output()
        .expect("run kubectl __complete");
    assert!(
        out.status.success(),
        "kubectl __complete {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn kubectl_completes_subcommands_flags_files_and_contexts() {
    let ctx = TestCtx::new("complete").await;
    // The plugin's name itself comes from kubectl's plugin discovery.
    assert_contains(&kubectl_complete(&ctx, &["stat"]), "stateful\t");

    let subs = kubectl_complete(&ctx, &["stateful", ""]);
    for sub in [
        "plan\tShow what applying",
        "apply\t",
        "import\t",
        "status\t",
        "version\t",
    ] {
        assert_contains(&subs, sub);
    }
    assert!(subs.ends_with(":4\n"), "{subs}");

    let flags = kubectl_complete(&ctx, &["stateful", "status", "--w"]);
    assert_contains(
        &flags,
        "--watch\tRedraw whenever an object of the stack changes",
    );
    let outputs = kubectl_complete(&ctx, &["stateful", "plan", "-o", ""]);
    assert_eq!(outputs.lines().next(), Some("human"));
    assert_contains(&outputs, "dot\t");

    // Stack files: the shell lists *.toml.
    assert_eq!(
        kubectl_complete(&ctx, &["stateful", "plan", "-f", ""]),
        "toml\n:8\n"
    );
    assert_eq!(
        kubectl_complete(&ctx, &["stateful", "apply", ""]),
        "json\n:8\n"
    );

    let kc = ctx.dir.path().join("two.kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: prod-eu\n  context: {cluster: c, user: u}\n- name: staging\n  context: {cluster: c, user: u}\n",
    )
    .unwrap();
    let kc = kc.to_str().unwrap();
    assert_eq!(
        kubectl_complete(
            &ctx,
            &["stateful", "--kubeconfig", kc, "plan", "--context", "pro"]
        ),
        "prod-eu\n:4\n"
    );
    // Without --kubeconfig: KUBECONFIG's contexts.
    assert_contains(
        &kubectl_complete(&ctx, &["stateful", "status", "--context", ""]),
        "kstateful\n",
    );
}
