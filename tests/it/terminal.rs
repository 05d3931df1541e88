//! What only happens on a terminal, through a pseudo-terminal: colors, and the confirmation
//! prompt of `apply`.

use crate::support::{
    TestCtx, args, assert_contains, run_on_terminal, run_on_terminal_with, run_plugin_env,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

const ESC: &str = "\u{1b}[";

const CLAIM: &str = "[[claim]]\nname = \"data\"\nsize = \"1Gi\"\n";

/// Colors only on a terminal; never with --no-color, NO_COLOR or `color = false` in the config
/// file; and the flag wins over `color = true`.
#[tokio::test]
async fn colors_only_on_a_terminal_and_never_when_turned_off() {
    let ctx = TestCtx::new("colors").await;
    let spec = ctx.spec("c", CLAIM);
    let plan = args(&["plan", "-f", spec.to_str().unwrap(), "-n", &ctx.ns]);
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = plan.clone();
        a.extend(args(extra));
        a
    };
    let config = |text: &str| {
        let path = ctx.dir.path().join(format!("config-{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };

    let colored = run_on_terminal(&plan, &[], &[]);
    assert_eq!(colored.code, 0, "{}", colored.output);
    assert_contains(&colored.output, "pvc/data will be created");
    assert!(
        colored.output.contains(ESC),
        "a terminal gets colors:\n{}",
        colored.output
    );

    let color_on = config("color = true\n");
    let color_off = config("color = false\n");
    for (what, argv, env) in [
        ("--no-color", with(&["--no-color"]), vec![]),
        ("NO_COLOR=1", plan.clone(), vec![("NO_COLOR", Some("1"))]),
        ("TERM=dumb", plan.clone(), vec![("TERM", Some("dumb"))]),
        (
            "color = false",
            plan.clone(),
            vec![("KUBECTL_STATEFUL_CONFIG", Some(color_off.as_str()))],
        ),
        (
            "--no-color over color = true",
            with(&["--no-color"]),
            vec![("KUBECTL_STATEFUL_CONFIG", Some(color_on.as_str()))],
        ),
    ] {
        let run = run_on_terminal(&argv, &env, &[]);
        assert_eq!(run.code, 0, "{what}: {}", run.output);
        assert_contains(&run.output, "pvc/data will be created");
        assert!(
            !run.output.contains(ESC),
            "{what}: no colors expected:\n{}",
            run.output
        );
    }
    // Not a terminal: no colors even without NO_COLOR and with `color = true`.
    let piped = run_plugin_env(
        &plan,
        &[
            ("NO_COLOR", None),
            ("TERM", Some("xterm")),
            ("KUBECTL_STATEFUL_CONFIG", Some(color_on.as_str())),
        ],
        None,
    );
    piped.expect_code(0);
    assert_contains(&piped.stdout, "pvc/data will be created");
    assert!(!piped.stdout.contains(ESC), "{}", piped.stdout);
}

/// On a terminal apply asks, and only `yes` applies.
#[tokio::test]
async fn apply_asks_on_a_terminal_and_only_yes_applies() {
    let ctx = TestCtx::new("confirm").await;
    let spec = ctx.spec("c", CLAIM);
    let apply = args(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "-n",
        &ctx.ns,
        "--timeout",
        "1m",
    ]);
    let prompt = "Do you want to apply these changes? Only 'yes' will be accepted: ";
    let claims: kube::Api<PersistentVolumeClaim> =
        kube::Api::namespaced(crate::support::client().await, &ctx.ns);

    let no = run_on_terminal(&apply, &[], &[(prompt, "y")]);
    assert_eq!(no.code, 1, "{}", no.output);
    assert_contains(&no.output, "pvc/data will be created");
    assert_contains(&no.output, "apply cancelled");
    assert!(claims.get_opt("data").await.unwrap().is_none());

    let yes = run_on_terminal(&apply, &[], &[(prompt, "yes")]);
    assert_eq!(yes.code, 0, "{}", yes.output);
    assert_contains(&yes.output, "pvc/data: ready: Bound to");
    assert!(claims.get_opt("data").await.unwrap().is_some());

    // Nothing to change: no question.
    let again = run_on_terminal(&apply, &[], &[]);
    assert_eq!(again.code, 0, "{}", again.output);
    assert!(!again.output.contains(prompt), "{}", again.output);
}

/// The prompt may wait for long: after `yes`, apply checks again that nothing changed since the
/// plan, and writes nothing if something did.
#[tokio::test]
async fn a_change_made_while_the_prompt_waits_is_found_after_yes_and_nothing_is_written() {
    let ctx = TestCtx::new("confirmstale").await;
    let sts = "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\nreplicas = 1\n";
    let spec = ctx.spec("c", sts);
    let spec = spec.to_str().unwrap();
    ctx.run(&["apply", "-f", spec, "--yes", "--timeout", "1m"])
        .expect_code(0);
    ctx.spec("c", &sts.replace("img:1", "img:2"));
    let apply = args(&["apply", "-f", spec, "-n", &ctx.ns, "--timeout", "1m"]);
    let prompt = "Do you want to apply these changes? Only 'yes' will be accepted: ";
    let run = run_on_terminal_with(&apply, &[], &[(prompt, "yes")], |_| {
        crate::support::kubectl(
            Some(&ctx.ns),
            &["scale", "statefulset/db", "--replicas=3"],
            None,
        );
    });
    assert_eq!(run.code, 1, "{}", run.output);
    let output = run.output.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_contains(&output, "statefulset/db will be updated");
    assert_contains(&output, "statefulset/db changed since the plan was made");
    let api: kube::Api<StatefulSet> =
        kube::Api::namespaced(crate::support::client().await, &ctx.ns);
    let live = api.get("db").await.unwrap().spec.unwrap();
    assert_eq!(live.replicas, Some(3), "their change stays");
    let image = live.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("img:1"), "nothing written");
}
