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
