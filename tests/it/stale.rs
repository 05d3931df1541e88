//! Saved plans (`plan --out`, `apply PLANFILE`): every way a plan can be stale is refused, and a
//! change to an object's status alone is not one of them.

use crate::support::{
    TestCtx, args, assert_contains, client, eventually, kubeconfig_with, run_plugin,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

const KEEP: &str = "[[claim]]\nname = \"keep\"\nsize = \"1Gi\"\n";

fn with_label(text: &str) -> String {
    format!("{text}labels = {{ tier = \"gold\" }}\n")
}

struct Saved<'a> {
    ctx: &'a TestCtx,
    spec: std::path::PathBuf,
    plan: std::path::PathBuf,
}

impl Saved<'_> {
    /// Writes `text` as the spec and saves its plan.
    fn plan(&self, text: &str) {
        self.ctx.spec("stack", text);
        self.ctx
            .run(&[
                "plan",
                "-f",
                self.spec.to_str().unwrap(),
                "--out",
                self.plan.to_str().unwrap(),
            ])
            .expect_code(0);
    }

    fn apply(&self) -> crate::support::Run {
        self.ctx.run(&[
            "apply",
            self.plan.to_str().unwrap(),
            "--yes",
            "--timeout",
            "1m",
        ])
    }
}

async fn setup(name: &str) -> (TestCtx, Api<PersistentVolumeClaim>) {
    let ctx = TestCtx::new(name).await;
    let spec = ctx.spec("stack", KEEP);
    ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    let claims = Api::namespaced(client().await, &ctx.ns);
    (ctx, claims)
}

fn saved(ctx: &TestCtx) -> Saved<'_> {
    Saved {
        ctx,
        spec: ctx.dir.path().join("stack.toml"),
        plan: ctx.dir.path().join("plan.json"),
    }
}

fn version(claim: &PersistentVolumeClaim) -> String {
    claim.metadata.resource_version.clone().unwrap()
}

#[tokio::test]
async fn status_only_change_since_the_plan_is_accepted() {
    let (ctx, claims) = setup("stalestatus").await;
    let s = saved(&ctx);
    s.plan(&with_label(KEEP));
    let before = version(&claims.get("keep").await.unwrap());
    let status = json!({"status": {"conditions": [{"type": "Resizing", "status": "False", "reason": "ByTest"}]}});
    claims
        .patch_status("keep", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let changed = claims.get("keep").await.unwrap();
    assert_ne!(
        version(&changed),
        before,
        "the status patch changed the object"
    );
    let apply = s.apply();
    apply.expect_code(0);
    assert_contains(&apply.stdout, "pvc/keep: updated");
    let labels = claims.get("keep").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels["tier"], "gold");
}

#[tokio::test]
async fn objects_created_deleted_or_recreated_since_the_plan_are_refused() {
    let (ctx, claims) = setup("stalelife").await;
    let s = saved(&ctx);
    let new_claim = |name: &str| -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        }))
        .unwrap()
    };

    // Created since: the plan says "create", the cluster now has it.
    s.plan(&format!("{KEEP}\n{}", KEEP.replace("keep", "late")));
    claims
        .create(&PostParams::default(), &new_claim("late"))
        .await
        .unwrap();
    let stale = s.apply();
    stale.expect_code(1);
    assert_contains(
        &stale.stderr,
        "is stale: pvc/late was created since the plan was made",
    );

    // Deleted since, then re-created with the same name (another uid).
    s.plan(&with_label(KEEP));
    claims
        .delete("keep", &DeleteParams::default())
        .await
        .unwrap();
    eventually("pvc/keep gone", Duration::from_secs(60), || {
        let claims = claims.clone();
        async move { claims.get_opt("keep").await.unwrap().is_none() }
    })
    .await;
    let stale = s.apply();
    stale.expect_code(1);
    assert_contains(
        &stale.stderr,
        "is stale: pvc/keep was deleted since the plan was made",
    );
    claims
        .create(&PostParams::default(), &new_claim("keep"))
        .await
        .unwrap();
    let stale = s.apply();
    stale.expect_code(1);
    assert_contains(
        &stale.stderr,
        "pvc/keep was deleted and created again since the plan was made",
    );
    let labels = claims.get("keep").await.unwrap().metadata.labels;
    assert!(
        !labels.unwrap_or_default().contains_key("tier"),
        "a refused plan writes nothing"
    );
}

#[tokio::test]
async fn plan_for_another_server_or_format_is_refused() {
    let (ctx, claims) = setup("staleserver").await;
    let s = saved(&ctx);
    s.plan(&with_label(KEEP));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s.plan).unwrap()).unwrap();
    let server = plan["server"].as_str().unwrap().to_string();
    assert!(server.starts_with("https://127.0.0.1:"), "{server}");

    // The same cluster under another name is another server as far as the plan knows.
    let other = server.replace("127.0.0.1", "localhost");
    let kubeconfig = kubeconfig_with(ctx.dir.path(), "localhost.kubeconfig", |kc| {
        kc["clusters"][0]["cluster"]["server"] = other.trim_end_matches('/').into();
    });
    let run = run_plugin(
        &args(&[
            "apply",
            s.plan.to_str().unwrap(),
            "--yes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]),
        None,
    );
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        &format!("was made against {server} but the current context points at {other}"),
    );

    // A plan that does not say where it was made (an edited artifact) is applied nowhere.
    let mut nowhere = plan.clone();
    nowhere["server"] = "".into();
    let path = ctx.dir.path().join("nowhere.json");
    std::fs::write(&path, nowhere.to_string()).unwrap();
    let run = ctx.run(&["apply", path.to_str().unwrap(), "--yes"]);
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        "does not say which cluster it was made against (its \"server\" is empty)",
    );
    assert!(
        !claims
            .get("keep")
            .await
            .unwrap()
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("tier"),
        "nothing written"
    );

    // A plan of another format version.
    let mut future = plan.clone();
    future["format_version"] = 5.into();
    let path = ctx.dir.path().join("future.json");
    std::fs::write(&path, future.to_string()).unwrap();
    let run = ctx.run(&["apply", path.to_str().unwrap(), "--yes"]);
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        &format!(
            "{}: format_version: the plan has format 5, this version reads format 4",
            path.display()
        ),
    );
    // Not a plan at all.
    std::fs::write(&path, "{\"steps\": 3}").unwrap();
    let run = ctx.run(&["apply", path.to_str().unwrap(), "--yes"]);
    run.expect_code(1);
    assert_contains(&run.stderr, "not a saved plan: it has no format_version");

    let labels = claims.get("keep").await.unwrap().metadata.labels;
    assert!(!labels.unwrap_or_default().contains_key("tier"));
    // The plan itself was fine all along.
    s.apply().expect_code(0);
}

/// With `KUBECTL_STATEFUL_PLAN_KEY` set in the plan and apply jobs, a plan file changed after it
/// was written (here: the labels apply would send, edited in the step's manifest and nowhere
/// else, so the shown diff would not show them) or written without the key is refused, and
/// nothing is written; the untouched signed plan applies.
#[tokio::test]
async fn a_signed_plan_changed_after_it_was_written_is_refused() {
    let (ctx, claims) = setup("signedplan").await;
    let spec = ctx.spec("stack", &with_label(KEEP));
    let plan = ctx.dir.path().join("signed.json");
    let key = [("KUBECTL_STATEFUL_PLAN_KEY", Some("ci-secret-1"))];
    let with_ns = |list: &[&str]| {
        let mut a = args(list);
        a.extend(["-n".to_string(), ctx.ns.clone()]);
        a
    };
    crate::support::run_plugin_env(
        &with_ns(&[
            "plan",
            "-f",
            spec.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap(),
        ]),
        &key,
        None,
    )
    .expect_code(0);
    let text = std::fs::read_to_string(&plan).unwrap();
    assert_contains(&text, "\"signature\": \"hmac-sha256:");
    let apply = |file: &std::path::Path, env: &[(&str, Option<&str>)]| {
        crate::support::run_plugin_env(
            &with_ns(&["apply", file.to_str().unwrap(), "--yes", "--timeout", "1m"]),
            env,
            None,
        )
    };
    let tampered = ctx.dir.path().join("tampered.json");
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let step = doc["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["object"]["name"] == "keep")
        .unwrap();
    step["manifest"]["metadata"]["labels"]["tier"] = "edited".into();
    std::fs::write(&tampered, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let run = apply(&tampered, &key);
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        "signature: the plan's signature does not match its content",
    );
    // Written without the key: unsigned, refused where the key is set.
    let unsigned = ctx.dir.path().join("unsigned.json");
    ctx.run(&[
        "plan",
        "-f",
        spec.to_str().unwrap(),
        "--out",
        unsigned.to_str().unwrap(),
    ])
    .expect_code(0);
    let run = apply(&unsigned, &key);
    run.expect_code(1);
    assert_contains(&run.stderr, "signature: the plan is not signed");
    let labels = claims.get("keep").await.unwrap().metadata.labels;
    assert!(
        !labels.unwrap_or_default().contains_key("tier"),
        "a refused plan writes nothing"
    );
    apply(&plan, &key).expect_code(0);
    let labels = claims.get("keep").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels["tier"], "gold");
}

/// A Deployment with a secret-looking value (the saved plan keeps it; no message may show it).
const WEB: &str = "[[deployment]]\nname = \"web\"\nimage = \"IMAGE\"\nenv = { DB_PASSWORD = \"hunter2-saved\", MODE = \"fast\" }\n";

fn web(image: &str) -> String {
    WEB.replace("IMAGE", image)
}

/// `plan`'s saved file with the image of the Deployment step's `manifest` (what apply sends)
/// edited and nothing else — its `after` (the diff the plan shows) still says the planned
/// image — written next to it; the step's index and the edited file.
fn with_manifest_image(s: &Saved<'_>, image: &str) -> (usize, std::path::PathBuf) {
    let text = std::fs::read_to_string(&s.plan).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let steps = doc["steps"].as_array_mut().unwrap();
    let n = steps
        .iter()
        .position(|s| s["object"]["kind"] == "Deployment")
        .unwrap();
    steps[n]["manifest"]["spec"]["template"]["spec"]["containers"][0]["image"] = image.into();
    let edited = s.ctx.dir.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    (n, edited)
}

/// Refused, naming the file, the step's manifest and the path, never the values.
fn expect_manifest_refused(ctx: &TestCtx, file: &std::path::Path, step: usize) {
    let run = ctx.run(&["apply", file.to_str().unwrap(), "--yes", "--timeout", "1m"]);
    run.expect_code(1);
    assert_contains(
        &run.stderr,
        &format!(
            "{}: steps[{step}].manifest: the manifest sets spec.template.spec.containers[0].image to a value the plan does not show",
            file.display()
        ),
    );
    assert_contains(&run.stderr, "the plan was changed after it was saved");
    for value in ["evil", "hunter2-saved"] {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "{value} shown:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
}

/// A saved plan is applied only when what it sends is what it shows: the image of an update's
/// manifest edited in the file (its diff left saying the planned image) is refused at
/// `steps[N].manifest` and nothing is written; the plan as saved — the server's defaults around
/// the manifest, a secret value, an unchanged claim — applies.
#[tokio::test]
async fn an_update_whose_manifest_is_not_what_the_plan_shows_is_refused() {
    let ctx = TestCtx::new("staleshownupdate").await;
    let s = saved(&ctx);
    let first = format!("{KEEP}\n{}", web("web:1"));
    let spec = ctx.spec("stack", &first);
    ctx.run(&[
        "apply",
        "-f",
        spec.to_str().unwrap(),
        "--yes",
        "--timeout",
        "1m",
    ])
    .expect_code(0);
    let deployments: Api<Deployment> = Api::namespaced(client().await, &ctx.ns);
    let image = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap()
    };
    let live = deployments.get("web").await.unwrap();
    s.plan(&format!("{KEEP}\n{}", web("web:2")));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s.plan).unwrap()).unwrap();
    let (n, edited) = with_manifest_image(&s, "evil:6");
    assert_eq!(plan["steps"][n]["action"], "update");
    assert_eq!(
        plan["steps"][n]["after"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:2"
    );
    expect_manifest_refused(&ctx, &edited, n);
    let now = deployments.get("web").await.unwrap();
    assert_eq!(image(&now), "web:1");
    assert_eq!(
        now.metadata.resource_version, live.metadata.resource_version,
        "a refused plan writes nothing"
    );
    let apply = s.apply();
    apply.expect_code(0);
    assert_eq!(image(&deployments.get("web").await.unwrap()), "web:2");
}

/// The same for a create: the plan shows the manifest itself, so an edited one is refused and
/// the object is not created; the plan as saved creates it.
#[tokio::test]
async fn a_create_whose_manifest_is_not_what_the_plan_shows_is_refused() {
    let ctx = TestCtx::new("staleshowncreate").await;
    let s = saved(&ctx);
    s.plan(&web("web:1"));
    let (n, edited) = with_manifest_image(&s, "evil:6");
    expect_manifest_refused(&ctx, &edited, n);
    let deployments: Api<Deployment> = Api::namespaced(client().await, &ctx.ns);
    assert!(
        deployments.get_opt("web").await.unwrap().is_none(),
        "a refused plan creates nothing"
    );
    s.apply().expect_code(0);
    assert!(deployments.get_opt("web").await.unwrap().is_some());
}
