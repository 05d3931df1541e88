//! Authentication as kubectl does it, on the real control plane: an exec credential plugin
//! (client.authentication.k8s.io/v1), a bearer token file, client certificates from files,
//! `--as`/`--as-group` impersonation; and wrong, revoked or unobtainable credentials reported
//! on one line that names the context and never shows the credential.

use crate::support::{Run, TestCtx, assert_contains, cluster, run_plugin};
use base64::Engine;
use std::path::{Path, PathBuf};

fn kubectl(args: &[&str]) -> String {
    crate::support::kubectl(None, args, None).trim().to_string()
}

/// The admin kubeconfig's server and CA, and its client certificate and key (PEM).
struct Admin {
    server: String,
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn admin() -> Admin {
    let text = std::fs::read_to_string(&cluster().kubeconfig).unwrap();
    let kc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let b64 = |v: &serde_yaml::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let cluster = &kc["clusters"][0]["cluster"];
    let user = &kc["users"][0]["user"];
    Admin {
        server: cluster["server"].as_str().unwrap().to_string(),
        ca: b64(&cluster["certificate-authority-data"]),
        cert: b64(&user["client-certificate-data"]),
        key: b64(&user["client-key-data"]),
    }
}

/// A kubeconfig whose context `context` uses the user stanza `user` (YAML, indented by 4).
pub(crate) fn kubeconfig(ctx: &TestCtx, context: &str, user: &str) -> PathBuf {
    let a = admin();
    let ca = ctx.dir.path().join("ca.crt");
    std::fs::write(&ca, &a.ca).unwrap();
    let path = ctx.dir.path().join(format!("{context}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: {context}\n  context: {{cluster: test, user: {context}-user, namespace: {}}}\nusers:\n- name: {context}-user\n  user:\n{user}",
            a.server,
            ca.display(),
            ctx.ns
        ),
    )
    .unwrap();
    path
}

/// A service account of the test's namespace allowed everything, and a token for it.
pub(crate) fn service_account_token(ctx: &TestCtx, name: &str) -> String {
    kubectl(&["-n", &ctx.ns, "create", "serviceaccount", name]);
    kubectl(&[
        "create",
        "clusterrolebinding",
        &format!("{}-{name}", ctx.prefix),
        "--clusterrole=cluster-admin",
        &format!("--serviceaccount={}:{name}", ctx.ns),
    ]);
    kubectl(&["-n", &ctx.ns, "create", "token", name, "--duration=1h"])
}

/// Runs the plugin with `kubeconfig` (and no other).
fn run_with(kubeconfig: &Path, args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(["--kubeconfig".into(), kubeconfig.display().to_string()]);
    run_plugin(&all, None)
}

/// An exec credential plugin: prints an ExecCredential with the token in `token_file`, and
/// counts its runs in `token_file.runs`.
fn exec_plugin(ctx: &TestCtx, token_file: &Path) -> PathBuf {
    let script = ctx.dir.path().join("get-token");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {runs}\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\"}}}}' \"$(cat {token})\"\n",
            runs = token_file.with_extension("runs").display(),
            token = token_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

pub(crate) fn exec_user(script: &Path) -> String {
    format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        script.display()
    )
}

const SPEC: &str = "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n";

/// Exactly one line on standard error, naming the context, without `secret`.
#[track_caller]
fn one_line_error(run: &Run, context: &str, secret: &str) {
    run.expect_code(1);
    let text = run.stderr.trim();
    assert_eq!(text.lines().count(), 1, "one line:\n{}", run.stderr);
    assert_contains(text, &format!("context {context:?}"));
    assert!(
        !run.stderr.contains(secret),
        "the credential leaked:\n{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains(secret),
        "the credential leaked:\n{}",
        run.stdout
    );
}

#[tokio::test]
async fn an_exec_credential_plugin_plans_and_applies() {
    let ctx = TestCtx::new("authexec").await;
    let token = service_account_token(&ctx, "deployer");
    let token_file = ctx.dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let script = exec_plugin(&ctx, &token_file);
    let kc = kubeconfig(&ctx, "sso", &exec_user(&script));
    let spec = ctx.spec("s", SPEC);
    let spec = spec.to_str().unwrap();
    run_with(&kc, &["plan", "-f", spec, "--detailed-exitcode"]).expect_code(2);
    run_with(&kc, &["apply", "-f", spec, "--yes", "--timeout", "1m"]).expect_code(0);
    run_with(&kc, &["status", "-f", spec]).expect_code(0);
    let runs = std::fs::read_to_string(token_file.with_extension("runs")).unwrap();
    assert!(runs.lines().count() >= 1, "the plugin gave the credentials");
    // Written with the account's credentials.
    let claim = kubectl(&[
        "-n",
        &ctx.ns,
        "get",
        "pvc",
        "data",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert_contains(&claim, "kubectl-stateful/stack");

    // A token the API server did not sign (forged, or from another cluster): refused.
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06YWRtaW4ifQ.c2lnbmF0dXJl";
    std::fs::write(&token_file, forged).unwrap();
    let refused = run_with(&kc, &["plan", "-f", spec]);
    one_line_error(&refused, "sso", forged);
    assert_contains(
        &refused.stderr,
        "rejected the credentials of user \"sso-user\" (401 Unauthorized)",
    );
}

#[tokio::test]
async fn a_failing_credential_plugin_is_one_line_without_its_output() {
    let ctx = TestCtx::new("authexecfail").await;
    let script = ctx.dir.path().join("sso-login");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"status\":{\"token\":\"leaked-token-value-42\"}}'\necho 'error: login required, run: sso login' >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kc = kubeconfig(&ctx, "corp", &exec_user(&script));
    let spec = ctx.spec("s", SPEC);
    let run = run_with(&kc, &["plan", "-f", spec.to_str().unwrap()]);
    one_line_error(&run, "corp", "leaked-token-value-42");
    assert_contains(
        &run.stderr,
        &format!(
            "the credential plugin {:?} failed",
            script.display().to_string()
        ),
    );
    assert_contains(&run.stderr, "exit status: 3");
    assert_contains(&run.stderr, "login required, run: sso login");
}

#[tokio::test]
async fn a_bearer_token_file_and_a_wrong_token() {
    let ctx = TestCtx::new("authtoken").await;
    let token = service_account_token(&ctx, "ci");
    let token_file = ctx.dir.path().join("ci.token");
    std::fs::write(&token_file, &token).unwrap();
    let kc = kubeconfig(
        &ctx,
        "ci",
        &format!("    tokenFile: {}\n", token_file.display()),
    );
    let spec = ctx.spec("s", SPEC);
    let spec = spec.to_str().unwrap();
    run_with(&kc, &["plan", "-f", spec, "--detailed-exitcode"]).expect_code(2);

    let wrong = "not-a-valid-token-0123456789";
    let kc = kubeconfig(&ctx, "wrong", &format!("    token: {wrong}\n"));
    let run = run_with(&kc, &["plan", "-f", spec]);
    one_line_error(&run, "wrong", wrong);
    assert_contains(&run.stderr, "401 Unauthorized");
    // Every command checks the same way.
    one_line_error(&run_with(&kc, &["status", "-f", spec]), "wrong", wrong);
    one_line_error(&run_with(&kc, &["import"]), "wrong", wrong);
}

#[tokio::test]
async fn client_certificates_from_files() {
    let ctx = TestCtx::new("authcert").await;
    let a = admin();
    let (cert, key) = (
        ctx.dir.path().join("admin.crt"),
        ctx.dir.path().join("admin.key"),
    );
    std::fs::write(&cert, &a.cert).unwrap();
    std::fs::write(&key, &a.key).unwrap();
    let kc = kubeconfig(
        &ctx,
        "certs",
        &format!(
            "    client-certificate: {}\n    client-key: {}\n",
            cert.display(),
            key.display()
        ),
    );
    let spec = ctx.spec("s", SPEC);
    run_with(
        &kc,
        &["plan", "-f", spec.to_str().unwrap(), "--detailed-exitcode"],
    )
    .expect_code(2);
}

#[tokio::test]
async fn impersonation_with_as_and_as_group() {
    let ctx = TestCtx::new("authas").await;
    kubectl(&["-n", &ctx.ns, "create", "serviceaccount", "nobody"]);
    let spec = ctx.spec("s", SPEC);
    let spec = spec.to_str().unwrap();
    let who = format!("system:serviceaccount:{}:nobody", ctx.ns);
    let denied = ctx.run(&["plan", "-f", spec, "--as", &who]);
    denied.expect_code(1);
    // The first read refused (the namespace or a list, whichever the plan sends first).
    assert_contains(&denied.stderr, &format!("User \"{who}\" cannot "));

    ctx.run(&[
        "plan",
        "-f",
        spec,
        "--as",
        "someone",
        "--as-group",
        "system:masters",
        "--detailed-exitcode",
    ])
    .expect_code(2);
    // A usage error like any other: exit 1 (2 means "changes present").
    let usage = ctx.run(&["plan", "-f", spec, "--as-group", "system:masters"]);
    usage.expect_code(1);
    assert_contains(&usage.stderr, "--as-group needs --as");
}

#[tokio::test]
async fn a_revoked_token_is_one_line_naming_the_context() {
    let ctx = TestCtx::new("authrevoked").await;
    // A token bound to a Secret: deleting the Secret revokes it, as logging out of a cloud
    // provider's session does.
    service_account_token(&ctx, "bound");
    kubectl(&["-n", &ctx.ns, "create", "secret", "generic", "session"]);
    let token = kubectl(&[
        "-n",
        &ctx.ns,
        "create",
        "token",
        "bound",
        "--bound-object-kind",
        "Secret",
        "--bound-object-name",
        "session",
        "--duration=1h",
    ]);
    let kc = kubeconfig(&ctx, "session", &format!("    token: {token}\n"));
    let spec = ctx.spec("s", SPEC);
    let spec = spec.to_str().unwrap();
    run_with(&kc, &["plan", "-f", spec, "--detailed-exitcode"]).expect_code(2);

    kubectl(&["-n", &ctx.ns, "delete", "secret", "session"]);
    // The API server learns of the deletion through its informers: wait (bounded) until it
    // refuses the token three times in a row, so that the plugin meets a token that is revoked
    // from its first request on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut refusals = 0;
    while refusals < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the API server still takes the token 30 s after its Secret was deleted"
        );
        let whoami = std::process::Command::new(cluster().kubectl_dir.join("kubectl"))
            .args(["auth", "whoami", "--kubeconfig"])
            .arg(&kc)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&whoami.stderr).contains("Unauthorized") {
            refusals += 1;
        } else {
            refusals = 0;
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let refused = run_with(&kc, &["plan", "-f", spec]);
    one_line_error(&refused, "session", &token);
    assert_contains(
        &refused.stderr,
        "rejected the credentials of user \"session-user\" (401 Unauthorized): they are wrong, expired or revoked",
    );
    // No piece of the token either (its signature, the last part of the JWT).
    let signature = token.rsplit('.').next().unwrap();
    assert!(signature.len() > 20 && !refused.stderr.contains(signature));
}

#[tokio::test]
async fn an_unreadable_token_file_is_one_line_naming_the_file() {
    let ctx = TestCtx::new("authnofile").await;
    let missing = ctx.dir.path().join("secrets/ci/token");
    let kc = kubeconfig(
        &ctx,
        "prod",
        &format!("    tokenFile: {}\n", missing.display()),
    );
    let spec = ctx.spec("s", SPEC);
    let run = run_with(&kc, &["plan", "-f", spec.to_str().unwrap()]);
    run.expect_code(1);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "× context \"prod\": cannot read the token file {}: No such file or directory (os error 2)",
            missing.display()
        ),
        "the README's one line"
    );
}
