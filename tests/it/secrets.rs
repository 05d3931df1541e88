//! Secrets never leak: a bearer token and a client key in the kubeconfig, a secret-looking
//! environment value in the spec; every output of every command (human, JSON, Markdown,
//! JSON-lines events, error messages) is searched for them. Only the saved plan file, which
//! apply needs whole, holds the spec's value, and only its owner may read it.

use crate::support::{TestCtx, cluster, run_plugin};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn no_output_of_any_command_shows_a_token_a_key_or_a_secret_value() {
    let ctx = TestCtx::new("secrets").await;
    let token = "kst-planted-token-5d1e8a90c4b2";
    let password = "kst-planted-password-77f3e1";
    // The admin kubeconfig (client certificate and key) with a token planted besides.
    let mut kc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster().kubeconfig).unwrap()).unwrap();
    let key_data = kc["users"][0]["user"]["client-key-data"]
        .as_str()
        .expect("the admin kubeconfig has an embedded client key")
        .to_string();
    let key_pem =
        String::from_utf8(base64_decode(&key_data).expect("client-key-data is base64")).unwrap();
    let key_line = key_pem
        .lines()
        .find(|l| l.len() > 40 && !l.starts_with("-----"))
        .unwrap()
        .to_string();
    for user in kc["users"].as_sequence_mut().unwrap() {
        user["user"]["token"] = token.into();
    }
    let kubeconfig = ctx.dir.path().join("planted.kubeconfig");
    std::fs::write(&kubeconfig, serde_yaml::to_string(&kc).unwrap()).unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();
    let spec = ctx.spec(
        "app",
        &format!(
            "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nenv = {{ DB_PASSWORD = \"{password}\", PGDATA = \"/var/lib/pg\" }}\n"
        ),
    );
    let spec = spec.to_str().unwrap().to_string();
    let bad = ctx.spec(
        "bad",
        "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = -1\n",
    );
    let bad = bad.to_str().unwrap().to_string();
    let planfile = ctx.dir.path().join("plan.json");
    let planfile = planfile.to_str().unwrap().to_string();
    // Only the token, for the refused-credential path.
    let mut token_only = kc.clone();
    for user in token_only["users"].as_sequence_mut().unwrap() {
        user["user"] = serde_yaml::from_str(&format!("token: {token}-x")).unwrap();
    }
    let token_only_path = ctx.dir.path().join("token-only.kubeconfig");
    std::fs::write(
        &token_only_path,
        serde_yaml::to_string(&token_only).unwrap(),
    )
    .unwrap();
    let token_only_path = token_only_path.to_str().unwrap().to_string();

    let common = |extra: &[&str], kubeconfig: &str| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend([
            "-n".into(),
            ctx.ns.clone(),
            "--kubeconfig".into(),
            kubeconfig.into(),
        ]);
        a
    };
    let commands: Vec<Vec<String>> = vec![
        common(&["plan", "-f", &spec], &kubeconfig),
        common(&["plan", "-f", &spec, "-o", "json"], &kubeconfig),
        common(&["plan", "-f", &spec, "-o", "markdown"], &kubeconfig),
        common(&["plan", "-f", &spec, "--out", &planfile], &kubeconfig),
        common(&["plan", "-f", &bad], &kubeconfig),
        common(&["plan", "-f", &bad, "-o", "json"], &kubeconfig),
        common(&["plan", "-f", &spec], &token_only_path),
        common(
            &[
                "apply",
                "-f",
                &spec,
                "--yes",
                "-o",
                "json",
                "--timeout",
                "1m",
            ],
            &token_only_path,
        ),
        common(
            &["apply", &planfile, "--yes", "-o", "json", "--timeout", "1m"],
            &kubeconfig,
        ),
        common(
            &["apply", "-f", &spec, "--yes", "--timeout", "1m"],
            &kubeconfig,
        ),
        common(
            &[
                "apply",
                "-f",
                &spec,
                "--yes",
                "-o",
                "json",
                "--timeout",
                "1m",
            ],
            &kubeconfig,
        ),
        common(
            &["plan", "-f", &spec, "-o", "json", "--detailed-exitcode"],
            &kubeconfig,
        ),
        vec!["version".into(), "-o".into(), "json".into()],
    ];
    let mut seen = 0;
    for args in &commands {
        let run = run_plugin(args, None);
        assert!(run.code != 101, "{args:?} panicked: {}", run.stderr);
        let all = format!("{}{}", run.stdout, run.stderr);
        for (what, secret) in [
            ("the token", token),
            ("the client key", key_line.as_str()),
            ("the client key data", &key_data[..40]),
            ("the secret-looking env value", password),
        ] {
            assert!(
                !all.contains(secret),
                "{what} in the output of {args:?}:\n{all}"
            );
        }
        if all.contains("(sensitive value)") {
            seen += 1;
        }
    }
    assert!(seen >= 4, "the hidden value is shown as hidden");
    // The saved plan holds the value (apply needs it), readable by its owner only.
    let saved = std::fs::read_to_string(&planfile).unwrap();
    assert!(saved.contains(password));
    let mode = std::fs::metadata(&planfile).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the saved plan is readable by others");
    // A plan printed with hidden values cannot be applied by mistake.
    let printed = ctx.dir.path().join("printed.json");
    let out = run_plugin(
        &common(&["plan", "-f", &spec, "-o", "json"], &kubeconfig),
        None,
    );
    std::fs::write(&printed, &out.stdout).unwrap();
    let refused = run_plugin(
        &common(&["apply", printed.to_str().unwrap(), "--yes"], &kubeconfig),
        None,
    );
    refused.expect_code(1);
    crate::support::assert_contains(&refused.stderr, "sensitive values masked");
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `(out, err)` of a run, both searched for `secret`.
#[track_caller]
fn no_leak(run: &crate::support::Run, secret: &str, what: &str) {
    assert!(run.code != 101, "{what} panicked: {}", run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(!all.contains(secret), "{what} shows the secret:\n{all}");
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A claim-template resize of a StatefulSet whose retention is `whenDeleted: Delete` writes
/// the StatefulSet with `Retain` first: a manifest of the recipe's own, in the step's
/// `resize.retain_manifest` and in an `apply-manifest` operation. No view shows its value.
#[tokio::test]
async fn a_resize_recipe_shows_no_secret_value_in_any_view() {
    let ctx = TestCtx::new("secretresize").await;
    let password = "kst-recipe-password-4c1d9e";
    let sts = |size: &str| {
        format!(
            "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nenv = {{ DB_PASSWORD = \"{password}\", MODE = \"fast\" }}\nretention = {{ when_deleted = \"Delete\", when_scaled = \"Retain\" }}\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"{size}\"\nclass = \"fast\"\nmount = \"/data\"\n"
        )
    };
    let spec = ctx.spec("r", &sts("1Gi"));
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "2m"])
        .expect_code(0);
    ctx.spec("r", &sts("2Gi"));
    let json = ctx.run(&["plan", "-f", spec, "-o", "json"]);
    json.expect_code(0);
    no_leak(&json, password, "plan -o json");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let step = crate::support::step_of(&doc, "StatefulSet");
    assert_eq!(step["action"], "resize", "{}", json.stdout);
    let env = |m: &serde_json::Value| m["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let masked = serde_json::json!([
        {"name": "DB_PASSWORD", "value": "(sensitive value)"},
        {"name": "MODE", "value": "fast"}
    ]);
    assert_eq!(env(&step["resize"]["retain_manifest"]), masked);
    let recipe: Vec<&serde_json::Value> = doc["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["op"] == "apply-manifest" && o["object"]["kind"] == "StatefulSet")
        .collect();
    assert_eq!(recipe.len(), 1, "{}", json.stdout);
    assert_eq!(env(&recipe[0]["manifest"]), masked);
    for (args, what) in [
        (vec!["plan", "-f", spec], "plan"),
        (
            vec!["plan", "-f", spec, "-o", "markdown"],
            "plan -o markdown",
        ),
        (vec!["plan", "-f", spec, "-o", "dot"], "plan -o dot"),
    ] {
        let run = ctx.run(&args);
        run.expect_code(0);
        no_leak(&run, password, what);
    }
    // The saved plan keeps the value in the recipe too: apply sends it.
    let planfile = ctx.dir.path().join("resize.json");
    ctx.run(&["plan", "-f", spec, "--out", planfile.to_str().unwrap()])
        .expect_code(0);
    let saved = std::fs::read_to_string(&planfile).unwrap();
    assert!(saved.matches(password).count() >= 3, "{saved}");
    let apply = ctx.run(&[
        "apply",
        "-f",
        spec,
        "--yes",
        "-o",
        "json",
        "--timeout",
        "2m",
    ]);
    apply.expect_code(0);
    no_leak(&apply, password, "apply -o json");
    let events = crate::support::json_lines(&apply.stdout);
    assert_eq!(events[0]["event"], "plan");
    assert!(
        events[0]["plan"]["operations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["op"] == "apply-manifest"
                && o["manifest"].to_string().contains("(sensitive value)")),
        "{}",
        apply.stdout
    );
}

/// `import` never writes a secret-looking value: it writes a placeholder that plan refuses at
/// its line (it can never be applied in the value's place), and says on standard error how to
/// supply it. With the value supplied, the spec adopts the object unchanged.
#[tokio::test]
async fn import_writes_secret_values_as_a_placeholder_that_plan_refuses() {
    let ctx = TestCtx::new("secretimport").await;
    let password = "kst-import-password-0b7a2f";
    let token = "kst-import-token-93e1c5";
    crate::support::kubectl(
        Some(&ctx.ns),
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  clusterIP: None\n  selector: {{app: db}}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  selector:\n    matchLabels: {{app: db}}\n  template:\n    metadata:\n      labels: {{app: db}}\n    spec:\n      containers:\n      - name: db\n        image: img:1\n        env:\n        - name: DB_PASSWORD\n          value: {password}\n        - name: API_TOKEN\n          value: {token}\n        - name: PGDATA\n          value: /var/lib/pg\n"
        )),
    );
    let out = ctx.dir.path().join("imported.toml");
    let import = ctx.run(&["import", "statefulset/db", "-o", out.to_str().unwrap()]);
    import.expect_code(0);
    for secret in [password, token] {
        no_leak(&import, secret, "import -o");
    }
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains(password) && !text.contains(token),
        "the imported spec holds the value:\n{text}"
    );
    crate::support::assert_contains(&text, "DB_PASSWORD = \"(sensitive value, not imported)\"");
    crate::support::assert_contains(&text, "API_TOKEN = \"(sensitive value, not imported)\"");
    crate::support::assert_contains(&text, "PGDATA = \"/var/lib/pg\"");
    crate::support::assert_contains(
        &import.stderr,
        &format!(
            "Warning: statefulset/db: env DB_PASSWORD, API_TOKEN looked secret and were not imported: the spec says \"(sensitive value, not imported)\", which plan refuses. Replace it by the value (plans mask it), or create a Secret and refer to it: kubectl create secret generic db-env -n {} --from-literal=DB_PASSWORD=… --from-literal=API_TOKEN=…, then DB_PASSWORD = {{ secret = \"db-env\", key = \"DB_PASSWORD\" }}",
            ctx.ns
        ),
    );
    // Import checked the spec with the values: nothing but the stack's labels would change.
    crate::support::assert_contains(&import.stderr, "Checked: a plan of it changes nothing");
    assert_eq!(mode(&out), 0o600, "the imported spec is readable by others");
    // To standard output: the same.
    let stdout = ctx.run(&["import", "statefulset/db"]);
    stdout.expect_code(0);
    no_leak(&stdout, password, "import");
    no_leak(&stdout, token, "import");
    crate::support::assert_contains(&stdout.stdout, "(sensitive value, not imported)");
    // The placeholder does not pass for the value: plan and apply refuse it at its line.
    let file = out.to_str().unwrap();
    for args in [
        vec!["plan", "-f", file],
        vec!["apply", "-f", file, "--yes", "--timeout", "30s"],
    ] {
        let refused = ctx.run(&args);
        refused.expect_code(1);
        crate::support::assert_contains(
            &refused.stderr,
            "statefulset[0].env.DB_PASSWORD: DB_PASSWORD holds the placeholder import writes for a value that looks secret, not a value",
        );
        crate::support::assert_contains(&refused.stderr, "imported.toml:");
    }
    // Supplied, the value adopts the object as it runs.
    let supplied = text
        .replace(
            "DB_PASSWORD = \"(sensitive value, not imported)\"",
            &format!("DB_PASSWORD = \"{password}\""),
        )
        .replace(
            "API_TOKEN = \"(sensitive value, not imported)\"",
            &format!("API_TOKEN = \"{token}\""),
        );
    std::fs::write(&out, supplied).unwrap();
    let plan = ctx.run(&["plan", "-f", file, "-o", "json"]);
    plan.expect_code(0);
    no_leak(&plan, password, "plan of the supplied spec");
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let step = crate::support::step_of(&doc, "StatefulSet");
    assert_eq!(step["action"], "adopt", "{}", plan.stdout);
}

/// Plan files and imported specs are written atomically and owner-only, and never through a
/// symbolic link: a link is refused (exit 1, the flag and path named) and nothing is written.
#[tokio::test]
async fn plan_files_and_imported_specs_are_owner_only_and_never_written_through_a_link() {
    use std::os::unix::fs::symlink;
    let ctx = TestCtx::new("secretfiles").await;
    let password = "kst-file-password-5e2b8a";
    let spec = ctx.spec(
        "f",
        &format!(
            "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nenv = {{ DB_PASSWORD = \"{password}\" }}\n"
        ),
    );
    let spec = spec.to_str().unwrap();
    let dir = ctx.dir.path();
    // An existing world-readable file becomes owner-only.
    let planfile = dir.join("plan.json");
    std::fs::write(&planfile, "old").unwrap();
    std::fs::set_permissions(&planfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    ctx.run(&["plan", "-f", spec, "--out", planfile.to_str().unwrap()])
        .expect_code(0);
    assert_eq!(mode(&planfile), 0o600, "the saved plan kept mode 0644");
    assert!(
        std::fs::read_to_string(&planfile)
            .unwrap()
            .contains(password)
    );
    // A link, to a file or dangling: refused before planning, nothing written or printed.
    let target = dir.join("shared.json");
    std::fs::write(&target, "keep").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.join("link.json");
    symlink(&target, &link).unwrap();
    let dangling = dir.join("dangling.json");
    let dangling_target = dir.join("created-through-the-link.json");
    symlink(&dangling_target, &dangling).unwrap();
    for l in [&link, &dangling] {
        let run = ctx.run(&["plan", "-f", spec, "--out", l.to_str().unwrap()]);
        run.expect_code(1);
        no_leak(&run, password, "plan --out LINK");
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        crate::support::assert_contains(
            &run.stderr,
            &format!("--out {}: is a symbolic link (to ", l.display()),
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert!(!dangling_target.exists());

    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    let imported = dir.join("imported.toml");
    std::fs::write(&imported, "old").unwrap();
    std::fs::set_permissions(&imported, std::fs::Permissions::from_mode(0o644)).unwrap();
    ctx.run(&[
        "import",
        "statefulset/db",
        "-o",
        imported.to_str().unwrap(),
        "--force",
    ])
    .expect_code(0);
    assert_eq!(mode(&imported), 0o600);
    for l in [&link, &dangling] {
        for force in [false, true] {
            let mut args = vec!["import", "statefulset/db", "-o", l.to_str().unwrap()];
            if force {
                args.push("--force");
            }
            let run = ctx.run(&args);
            run.expect_code(1);
            crate::support::assert_contains(
                &run.stderr,
                &format!("-o {}: is a symbolic link (to ", l.display()),
            );
        }
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert_eq!(mode(&target), 0o644);
    assert!(!dangling_target.exists());
    // No temporary file stays behind.
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    names.sort();
    assert!(names.is_empty(), "{names:?}");
}

/// A credential plugin that starts failing mid-run (kube runs it again whenever its credential
/// expires, here at every request) and prints its credential on standard output as it fails:
/// kube's error holds that output; no error and no `retrying` message shows it.
#[tokio::test]
async fn a_credential_plugin_failing_mid_run_never_shows_its_output() {
    let ctx = TestCtx::new("secretmidrun").await;
    let token = crate::auth::service_account_token(&ctx, "midrun");
    let token_file = ctx.dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let planted = "kst-midrun-credential-61f0d3";
    let count = ctx.dir.path().join("runs");
    let limit = ctx.dir.path().join("limit");
    let script = ctx.dir.path().join("sso");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}\nif [ \"$n\" -gt \"$(cat {limit})\" ]; then\n  printf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{planted}\"}}}}'\n  echo 'error: session expired' >&2\n  exit 1\nfi\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\",\"expirationTimestamp\":\"2000-01-01T00:00:00Z\"}}}}' \"$(cat {token})\"\n",
            count = count.display(),
            limit = limit.display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kc = crate::auth::kubeconfig(&ctx, "midrun", &crate::auth::exec_user(&script));
    let spec = ctx.spec("m", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let spec = spec.to_str().unwrap();
    let with = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--kubeconfig".into(), kc.display().to_string()]);
        crate::support::run_plugin(&all, None)
    };
    // How many runs planning takes, with a plugin that never fails.
    std::fs::write(&limit, "1000000").unwrap();
    with(&["plan", "-f", spec]).expect_code(0);
    let planning: u32 = std::fs::read_to_string(&count)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Fails during planning, then during the rollout.
    let mut texts = String::new();
    for (limit_runs, args) in [
        (planning / 2, vec!["plan", "-f", spec, "-o", "json"]),
        (
            planning + 2,
            vec![
                "apply",
                "-f",
                spec,
                "--yes",
                "-o",
                "json",
                "--timeout",
                "15s",
            ],
        ),
    ] {
        std::fs::write(&count, "0").unwrap();
        std::fs::write(&limit, limit_runs.to_string()).unwrap();
        let run = with(&args);
        assert_ne!(
            run.code, 0,
            "{args:?} failed:\n{}{}",
            run.stdout, run.stderr
        );
        no_leak(&run, planted, &format!("{args:?}"));
        no_leak(&run, &token, &format!("{args:?}"));
        texts.push_str(&run.stdout);
        texts.push_str(&run.stderr);
    }
    crate::support::assert_contains(
        &texts,
        "the credential plugin failed (exit status: 1): error: session expired",
    );
    crate::support::assert_contains(&texts, "\"event\":\"retrying\"");
}
