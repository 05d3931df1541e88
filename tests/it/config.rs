//! Where settings come from: the user config file (flags win), the kubeconfig and namespace
//! fallbacks, and --concurrency.

use crate::support::{
    Run, TestCtx, args, assert_contains, cluster, kubeconfig_with, run_plugin_env,
};

/// A claim that can never bind (no class, a selector no volume of any test matches — volumes are
/// cluster-wide, so the label is one no test gives a volume): apply times out on it.
const NEVER_BINDS: &str = "[[claim]]\nname = \"orphan\"\nsize = \"1Gi\"\nclass = \"\"\nselector = { absent = \"by-design\" }\n";

/// The whole seconds in `pvc/NAME: FAILED: timed out after Ns`.
fn timed_out_after(run: &Run, claim: &str) -> u64 {
    let marker = format!("pvc/{claim}: FAILED: timed out after ");
    let rest = run
        .stdout
        .split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{}", run.stdout));
    rest.split('s').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn config_file_timeout_applies_and_the_flag_wins() {
    let ctx = TestCtx::new("configtimeout").await;
    let spec = ctx.spec("orphan", NEVER_BINDS);
    let config = ctx.dir.path().join("config.toml");
    std::fs::write(&config, "timeout = \"2s\"\n").unwrap();
    let config = config.to_str().unwrap();
    let env = [("KUBECTL_STATEFUL_CONFIG", Some(config))];
    let apply = |extra: &[&str]| {
        let mut a = args(&[
            "apply",
            "-f",
            spec.to_str().unwrap(),
            "--yes",
            "-n",
            &ctx.ns,
        ]);
        a.extend(args(extra));
        run_plugin_env(&a, &env, None)
    };
    // The file's 2s, not the default 5m.
    let from_file = apply(&[]);
    from_file.expect_code(1);
    assert!(
        timed_out_after(&from_file, "orphan") <= 2,
        "{}",
        from_file.stdout
    );
    // The flag's 6s, not the file's 2s.
    let from_flag = apply(&["--timeout", "6s"]);
    from_flag.expect_code(1);
    let secs = timed_out_after(&from_flag, "orphan");
    assert!((3..=6).contains(&secs), "{}", from_flag.stdout);

    // A broken config file is an error naming the file, before anything is done.
    std::fs::write(config, "timeout = \"soon\"\n").unwrap();
    let bad = apply(&[]);
    bad.expect_code(1);
    assert_contains(
        &bad.stderr,
        &format!("{config}:1:11: timeout: invalid duration \"soon\""),
    );
    std::fs::write(config, "colour = false\n").unwrap();
    let unknown = apply(&[]);
    unknown.expect_code(1);
    assert_contains(&unknown.stderr, config);
    assert_contains(&unknown.stderr, "unknown field `colour`");
}

/// `--concurrency` bounds the writes in flight, not the waits: waits share one watch per kind
/// and make no requests, so at `--concurrency 1` the second claim's wait does not queue behind
/// the first one's (which would use up the whole timeout).
#[tokio::test]
async fn concurrency_bounds_writes_not_waits() {
    let ctx = TestCtx::new("concurrency").await;
    let spec = ctx.spec(
        "two",
        &format!("{NEVER_BINDS}\n{}", NEVER_BINDS.replace("orphan", "other")),
    );
    let serial = ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--timeout",
        "6s",
        "--concurrency",
        "1",
    ]);
    serial.expect_code(1);
    assert_contains(&serial.stdout, "Apply failed: 2 applied");
    for claim in ["orphan", "other"] {
        assert!(
            timed_out_after(&serial, claim) >= 3,
            "both waits ran at once:\n{}",
            serial.stdout
        );
    }
}

/// `--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`.
#[tokio::test]
async fn kubeconfig_flag_then_env_then_home() {
    let ctx = TestCtx::new("kubeconfigs").await;
    let spec = ctx.spec("c", "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n");
    let real = cluster().kubeconfig.to_str().unwrap().to_string();
    let nowhere = kubeconfig_with(ctx.dir.path(), "nowhere.kubeconfig", |kc| {
        kc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1".into();
    });
    let nowhere = nowhere.to_str().unwrap();
    let home_with = |name: &str, kubeconfig: &str| {
        let home = ctx.dir.path().join(name);
        std::fs::create_dir_all(home.join(".kube")).unwrap();
        std::fs::copy(kubeconfig, home.join(".kube/config")).unwrap();
        home.to_str().unwrap().to_string()
    };
    let good_home = home_with("good-home", &real);
    let bad_home = home_with("bad-home", nowhere);
    let plan = |extra: &[&str], env: &[(&str, Option<&str>)]| {
        let mut a = args(&["plan", "-f", spec.to_str().unwrap(), "-n", &ctx.ns]);
        a.extend(args(extra));
        run_plugin_env(&a, env, None)
    };
    let planned = format!("Stack c in namespace {} (1 object)", ctx.ns);

    // The flag wins over KUBECONFIG and the home directory.
    let run = plan(
        &["--kubeconfig", &real],
        &[("KUBECONFIG", Some(nowhere)), ("HOME", Some(&bad_home))],
    );
    run.expect_code(0);
    assert_contains(&run.stdout, &planned);
    // KUBECONFIG wins over the home directory.
    let run = plan(
        &[],
        &[("KUBECONFIG", Some(&real)), ("HOME", Some(&bad_home))],
    );
    run.expect_code(0);
    assert_contains(&run.stdout, &planned);
    // Neither: ~/.kube/config.
    let run = plan(&[], &[("KUBECONFIG", None), ("HOME", Some(&good_home))]);
    run.expect_code(0);
    assert_contains(&run.stdout, &planned);
    // And each of them is really read: pointing it nowhere fails.
    for (extra, env) in [
        (
            vec!["--kubeconfig", nowhere],
            vec![("KUBECONFIG", Some(real.as_str()))],
        ),
        (
            vec![],
            vec![
                ("KUBECONFIG", Some(nowhere)),
                ("HOME", Some(good_home.as_str())),
            ],
        ),
        (
            vec![],
            vec![("KUBECONFIG", None), ("HOME", Some(bad_home.as_str()))],
        ),
    ] {
        let run = plan(&extra, &env);
        run.expect_code(1);
        assert_contains(&run.stderr, "https://127.0.0.1:1");
    }
}

/// `-n`, else the spec's namespace, else the context's, else `default`.
#[tokio::test]
async fn namespace_flag_then_spec_then_context_then_default() {
    let ctx = TestCtx::new("nsfallback").await;
    let ns = ctx.ns.clone();
    let kubeconfig = kubeconfig_with(ctx.dir.path(), "ns.kubeconfig", |kc| {
        let mut with_ns = kc["contexts"][0].clone();
        with_ns["name"] = "with-ns".into();
        with_ns["context"]["namespace"] = ns.clone().into();
        let mut without = kc["contexts"][0].clone();
        without["name"] = "without-ns".into();
        if let Some(c) = without["context"].as_mapping_mut() {
            c.remove("namespace");
        }
        let contexts = kc["contexts"].as_sequence_mut().unwrap();
        contexts.push(with_ns);
        contexts.push(without);
        kc["current-context"] = "with-ns".into();
    });
    let claim = "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n";
    let plain = ctx.spec("plain", claim);
    let spec_ns = format!("{ns}-spec");
    let in_spec = ctx.spec("inspec", &format!("namespace = \"{spec_ns}\"\n{claim}"));
    let plan = |spec: &std::path::Path, extra: &[&str]| {
        let mut a = args(&["plan", "-f", spec.to_str().unwrap()]);
        a.extend(args(extra));
        let run = run_plugin_env(
            &a,
            &[("KUBECONFIG", Some(kubeconfig.to_str().unwrap()))],
            None,
        );
        run.expect_code(0);
        run.stdout
    };
    let flag_ns = format!("{ns}-flag");
    assert_contains(
        &plan(&plain, &["-n", &flag_ns]),
        &format!("Stack plain in namespace {flag_ns} (2 objects)"),
    );
    assert_contains(
        &plan(&in_spec, &[]),
        &format!("Stack inspec in namespace {spec_ns} (2 objects)"),
    );
    assert_contains(
        &plan(&in_spec, &["-n", &spec_ns]),
        &format!("Stack inspec in namespace {spec_ns}"),
    );
    assert_contains(
        &plan(&plain, &[]),
        &format!("Stack plain in namespace {ns} (1 object)"),
    );
    assert_contains(
        &plan(&plain, &["--context", "without-ns"]),
        "Stack plain in namespace default (1 object)",
    );
}
