//! The executor driven through the fake gateway: ordering, dependencies, failures, retries and
//! the deadline, without a cluster.

use super::*;
use crate::gateway::fake::FakeGateway;
use crate::gateway::retry::{RetryPolicy, Retrying};
use crate::kinds::Kind;
use crate::plan::{LiveVersion, Plan, Step, WaitPlan};
use std::sync::Mutex;

#[derive(Default)]
struct Collect(Mutex<Vec<Event>>);

impl Sink for Collect {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                Event::Finished { ok, .. } => format!("finished ok={ok}"),
                e => crate::ui::plain_line(e)
                    .split(" (")
                    .next()
                    .unwrap()
                    .to_string(),
            })
            .collect()
    }
}

fn step(kind: Kind, name: &str, action: Action, manifest: Value) -> Step {
    Step {
        object: ObjectRef::new(kind, "ns", name),
        action,
        origin: String::new(),
        changed_paths: vec![],
        replace_paths: vec![],
        conflicts: vec![],
        reasons: vec![],
        error: None,
        location: None,
        before: None,
        after: None,
        manifest,
        live: None,
        wait: WaitPlan::default(),
        adopt: false,
        protect: false,
        resize: None,
        deletes_claims: Vec::new(),
        data_at_risk: Vec::new(),
        allow_replace: false,
        snapshots: Vec::new(),
    }
}

fn ready_pv(name: &str) -> Step {
    step(
        Kind::PersistentVolume,
        name,
        Action::Create,
        json!({"metadata": {"name": name}, "status": {"phase": "Available"}}),
    )
}

fn bound_claim(name: &str) -> Step {
    step(
        Kind::PersistentVolumeClaim,
        name,
        Action::Create,
        json!({"metadata": {"name": name}, "spec": {"volumeName": "v"}, "status": {"phase": "Bound"}}),
    )
}

/// The plan's update of the volume `pv-a` stored in the fake (to `spec.size: 2`), with the
/// version it saw.
fn planned_update(fake: &FakeGateway, id: &ObjectRef) -> Step {
    let live = fake.object(id).unwrap();
    let mut s = ready_pv("pv-a");
    s.action = Action::Update;
    s.manifest = json!({"metadata": {"name": "pv-a"}, "spec": {"size": 2}});
    s.before = Some(crate::plan::normalize::normalize(
        Kind::PersistentVolume,
        &live,
        &s.manifest,
    ));
    s.live = Some(LiveVersion {
        uid: live["metadata"]["uid"].as_str().unwrap().into(),
        resource_version: live["metadata"]["resourceVersion"].as_str().unwrap().into(),
        ..Default::default()
    });
    s
}

fn plan(steps: Vec<Step>) -> Plan {
    Plan::new("s".into(), "ns".into(), "https://fake".into(), steps)
}

fn options() -> ApplyOptions {
    ApplyOptions {
        timeout: Duration::from_secs(5),
        concurrency: 4,
        ..Default::default()
    }
}

fn code(code: u16, reason: &str) -> ApiFailure {
    ApiFailure {
        code,
        reason: reason.into(),
        message: format!("HTTP {code}"),
        ..Default::default()
    }
}

fn context<'a>(
    gw: &'a dyn Gateway,
    hub: &'a WatchHub<'a>,
    options: &'a ApplyOptions,
    sink: &'a dyn Sink,
    timeout: Duration,
) -> Ctx<'a> {
    Ctx {
        gw,
        options,
        deadline: Instant::now() + timeout,
        sink,
        written: Written::default(),
        hub,
        explaining: tokio::sync::Semaphore::new(1),
    }
}

fn fast_retries(fake: FakeGateway) -> Retrying<FakeGateway> {
    Retrying::new(
        fake,
        RetryPolicy {
            request_timeout: Duration::from_secs(1),
            max_attempts: 4,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        },
    )
}

#[tokio::test]
async fn writes_follow_the_rollout_order_and_wait_for_each_phase() {
    let fake = FakeGateway::new();
    let sink = Collect::default();
    // Listed out of order on purpose: the operations put them in phase order.
    let p = plan(vec![bound_claim("c"), ready_pv("pv-b"), ready_pv("pv-a")]);
    let written = execute(&fake, &p, &options(), &sink).await.unwrap();
    assert_eq!(written, 3);
    let writes = fake.writes();
    assert_eq!(writes.last().unwrap(), "create pvc/c");
    assert!(writes[..2].contains(&"create pv/pv-a".to_string()));
    let lines = sink.lines();
    let ready_pvs = lines
        .iter()
        .position(|l| l == "pv/pv-a: ready: Available")
        .unwrap();
    let claim_phase = lines
        .iter()
        .position(|l| l == "==> PersistentVolumeClaims and VolumeSnapshots")
        .unwrap();
    assert!(ready_pvs < claim_phase, "{lines:#?}");
    assert_eq!(lines.last().unwrap(), "finished ok=true");
}

#[tokio::test]
async fn a_failed_step_stops_its_dependents_and_nothing_else() {
    let fake = FakeGateway::new();
    let bad = ObjectRef::new(Kind::PersistentVolume, "ns", "pv-bad");
    fake.fail_next("create", &bad, code(422, "Invalid"), 1);
    let sink = Collect::default();
    let p = plan(vec![
        ready_pv("pv-bad"),
        ready_pv("pv-good"),
        bound_claim("c"),
    ]);
    let err = execute(&fake, &p, &options(), &sink).await.unwrap_err();
    assert!(
        matches!(&err, ApplyError::Failed(f) if f.len() == 1 && f[0].starts_with("pv/pv-bad")),
        "{err}"
    );
    // The other volume of the phase is written and waited for; the claim depends on both.
    assert_eq!(fake.writes(), vec!["create pv/pv-bad", "create pv/pv-good"]);
    assert!(
        sink.lines()
            .contains(&"pv/pv-good: ready: Available".to_string())
    );
    assert!(
        fake.object(&ObjectRef::new(Kind::PersistentVolumeClaim, "ns", "c"))
            .is_none()
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let fake = FakeGateway::new();
    let pv = ObjectRef::new(Kind::PersistentVolume, "ns", "pv-a");
    fake.fail_next("create", &pv, code(429, "TooManyRequests"), 2);
    let gw = fast_retries(fake.clone());
    execute(
        &gw,
        &plan(vec![ready_pv("pv-a")]),
        &options(),
        &Collect::default(),
    )
    .await
    .unwrap();
    assert_eq!(fake.calls("create"), 3);

    let fake = FakeGateway::new();
    let mut update = ready_pv("pv-a");
    update.action = Action::Update;
    fake.fail_next("apply", &pv, code(503, "ServiceUnavailable"), 2);
    let gw = fast_retries(fake.clone());
    execute(
        &gw,
        &plan(vec![update.clone()]),
        &options(),
        &Collect::default(),
    )
    .await
    .unwrap();
    assert_eq!(fake.calls("apply"), 3);

    let fake = FakeGateway::new();
    fake.fail_next("apply", &pv, code(403, "Forbidden"), 1);
    let gw = fast_retries(fake.clone());
    let err = execute(&gw, &plan(vec![update]), &options(), &Collect::default())
        .await
        .unwrap_err();
    assert_eq!(fake.calls("apply"), 1);
    assert!(err.to_string().contains("rbac.yaml"), "{err}");
}

#[tokio::test]
async fn the_deadline_ends_a_wait_that_never_finishes() {
    let fake = FakeGateway::new();
    let sink = Collect::default();
    let pending = step(
        Kind::PersistentVolumeClaim,
        "c",
        Action::Create,
        json!({"metadata": {"name": "c"}, "status": {"phase": "Pending"}}),
    );
    let opts = ApplyOptions {
        timeout: Duration::from_millis(300),
        ..options()
    };
    let start = std::time::Instant::now();
    let err = execute(&fake, &plan(vec![pending]), &opts, &sink)
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        sink.lines()
            .contains(&"pvc/c: waiting for the claim to be Bound".to_string())
    );
}

#[tokio::test]
async fn replace_runs_its_recipe_in_order() {
    let fake = FakeGateway::new();
    let id = ObjectRef::new(Kind::PersistentVolume, "ns", "pv-a");
    fake.put(
        &id,
        json!({"metadata": {"uid": "old"}, "spec": {"old": true}}),
    );
    let mut replace = ready_pv("pv-a");
    replace.action = Action::Replace;
    replace.allow_replace = true;
    replace.live = Some(LiveVersion {
        uid: "old".into(),
        resource_version: "1".into(),
        ..Default::default()
    });
    let p = plan(vec![replace]);
    // The delete is answered only at its third attempt, after backoffs: a queue that started
    // the create without waiting for the delete and for the object to be gone would find the
    // old object (AlreadyExists) and fail.
    fake.fail_next("delete", &id, code(503, "ServiceUnavailable"), 2);
    let gw = Retrying::new(
        fake.clone(),
        RetryPolicy {
            request_timeout: Duration::from_secs(1),
            max_attempts: 4,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(50),
        },
    );
    let sink = Collect::default();
    let opts = ApplyOptions {
        replace: vec!["pv/pv-a".into()],
        ..options()
    };
    let written = execute(&gw, &p, &opts, &sink).await;
    assert!(written.is_ok(), "{written:?}: {:?}", sink.lines());
    assert_eq!(
        fake.writes(),
        vec![
            "delete pv/pv-a",
            "delete pv/pv-a",
            "delete pv/pv-a",
            "create pv/pv-a"
        ]
    );
    let now = fake.object(&id).unwrap();
    assert_ne!(now["metadata"]["uid"], "old");
    assert_eq!(now["spec"].get("old"), None);
    let lines: Vec<String> = sink
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("pv/pv-a"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "pv/pv-a: deleted",
            "pv/pv-a: ready: deleted",
            "pv/pv-a: created",
            "pv/pv-a: ready: Available"
        ]
    );
}

#[tokio::test]
async fn a_delete_never_removes_an_object_with_another_uid() {
    let fake = FakeGateway::new();
    let id = ObjectRef::new(Kind::PersistentVolume, "ns", "pv-a");
    fake.put(&id, json!({"metadata": {"uid": "someone-elses"}}));
    let op = Operation {
        id: 0,
        object: id.clone(),
        step: 0,
        op: Op::Delete {
            uid: "ours".into(),
            propagation: gateway::Propagation::Orphan,
        },
        after: vec![],
        after_phase: None,
        completes_phase: None,
    };
    let s = ready_pv("pv-a");
    let p = plan(vec![]);
    let hub = WatchHub::new(&fake, &p);
    let (opts, sink) = (options(), Collect::default());
    let ctx = context(&fake, &hub, &opts, &sink, Duration::from_secs(1));
    let r = hub.drive(super::run(&ctx, &op, &s)).await;
    assert!(r.is_err());
    assert!(fake.object(&id).is_some());
}

/// The gate before a StatefulSet is deleted to be created again: read right before the delete,
/// a StatefulSet that runs more replicas than the manifest it would be re-created from (scaled
/// since the plan) is not deleted; one that runs as many is, with its resourceVersion as a
/// precondition (a status write in between is read and checked again).
#[tokio::test]
async fn a_statefulset_is_not_deleted_for_a_rebuild_that_would_scale_it_down() {
    let fake = FakeGateway::new();
    let id = ObjectRef::new(Kind::StatefulSet, "ns", "db");
    let live = |replicas: u64, rv: &str| {
        json!({"metadata": {"name": "db", "uid": "u1", "resourceVersion": rv},
               "spec": {"replicas": replicas,
                        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}})
    };
    let op = Operation {
        id: 0,
        object: id.clone(),
        step: 0,
        op: Op::Delete {
            uid: "u1".into(),
            propagation: gateway::Propagation::Orphan,
        },
        after: vec![],
        after_phase: None,
        completes_phase: None,
    };
    for action in [Action::Resize, Action::Replace] {
        let s = step(
            Kind::StatefulSet,
            "db",
            action,
            json!({"metadata": {"name": "db"}, "spec": {"replicas": 2}}),
        );
        fake.put(&id, live(4, "7"));
        let writes_before = fake.writes().len();
        let p = plan(vec![]);
        let hub = WatchHub::new(&fake, &p);
        let (opts, sink) = (options(), Collect::default());
        let ctx = context(&fake, &hub, &opts, &sink, Duration::from_secs(1));
        let r = hub.drive(super::run(&ctx, &op, &s)).await;
        let Err(message) = r else {
            panic!("{action:?}: not refused")
        };
        assert!(
            message.contains("it runs 4 replicas now and would be re-created with 2"),
            "{message}"
        );
        assert!(message.contains("db-2, db-3"), "{message}");
        assert!(fake.object(&id).is_some(), "{action:?}: not deleted");
        assert_eq!(fake.writes().len(), writes_before, "{:?}", fake.writes());

        // As many replicas as the manifest: deleted, with the version read as a precondition.
        fake.put(&id, live(2, "8"));
        let r = hub.drive(super::run(&ctx, &op, &s)).await;
        assert!(r.is_ok(), "{action:?}: {:?}", r.err());
        assert!(fake.object(&id).is_none(), "{action:?}: deleted");
    }
    // A plain delete (prune) is not a rebuild: its pods go, as planned. Its claims go only as
    // planned: with whenDeleted turned to Delete since the plan, the delete is refused.
    let prune = Operation {
        op: Op::Delete {
            uid: "u1".into(),
            propagation: gateway::Propagation::Background,
        },
        ..op.clone()
    };
    let mut s = step(
        Kind::StatefulSet,
        "db",
        Action::Delete,
        json!({"metadata": {"name": "db"}, "spec": {"replicas": 0}}),
    );
    let p = plan(vec![]);
    let hub = WatchHub::new(&fake, &p);
    let (opts, sink) = (options(), Collect::default());
    let ctx = context(&fake, &hub, &opts, &sink, Duration::from_secs(1));
    let takes = json!({"metadata": {"name": "db", "uid": "u1", "resourceVersion": "10"},
        "spec": {"replicas": 1, "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
    fake.put(&id, takes.clone());
    let Err(message) = hub.drive(super::run(&ctx, &prune, &s)).await else {
        panic!("deleted with claims the plan did not show")
    };
    assert!(message.contains("the claims data-db-0"), "{message}");
    assert!(fake.object(&id).is_some());
    // Planned with them (the plan showed the claims, and --prune-data allowed them): deleted.
    s.deletes_claims = vec!["data-db-0".into()];
    assert!(hub.drive(super::run(&ctx, &prune, &s)).await.is_ok());
    assert!(fake.object(&id).is_none());
    fake.put(&id, live(4, "9"));
    assert!(hub.drive(super::run(&ctx, &prune, &s)).await.is_ok());
}

#[tokio::test]
async fn a_create_does_not_take_over_an_object_that_appeared_meanwhile() {
    let fake = FakeGateway::new();
    let id = ObjectRef::new(Kind::PersistentVolume, "ns", "pv-a");
    fake.put(&id, json!({"metadata": {"labels": {"owner": "someone"}}}));
    let err = execute(
        &fake,
        &plan(vec![ready_pv("pv-a")]),
        &options(),
        &Collect::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("created by someone else"), "{err}");
    assert_eq!(
        fake.object(&id).unwrap()["metadata"]["labels"]["owner"],
        "someone"
    );
}

#[tokio::test]
async fn an_update_survives_status_changes_but_not_spec_changes_since_the_plan() {
    for (change, ok) in [("status", true), ("spec", false)] {
        let fake = FakeGateway::new();
        let id = ObjectRef::new(Kind::PersistentVolume, "ns", "pv-a");
        fake.put(
            &id,
            json!({"spec": {"size": 1}, "status": {"phase": "Available"}}),
        );
        let s = planned_update(&fake, &id);
        // Someone writes the object after the plan; the fake refuses the stale version once.
        fake.update(&id, |o| o[change]["touched"] = json!(true));
        fake.fail_next("apply", &id, code(409, "Conflict"), 1);
        let r = execute(&fake, &plan(vec![s]), &options(), &Collect::default()).await;
        assert_eq!(r.is_ok(), ok, "{change}: {r:?}");
        if !ok {
            assert!(
                r.unwrap_err()
                    .to_string()
                    .contains("changed since the plan was made")
            );
        }
    }
}

#[tokio::test]
async fn a_stale_version_after_a_lost_answer_is_a_write_that_may_have_landed() {
    let fake = FakeGateway::new();
    let id = ObjectRef::new(Kind::PersistentVolume, "ns", "pv-a");
    fake.put(&id, json!({"spec": {"size": 1}}));
    let s = planned_update(&fake, &id);
    // The first attempt's answer is lost (as if it landed and changed the version); the
    // second is refused as stale.
    fake.update(&id, |o| o["spec"]["size"] = json!(2));
    fake.fail_next("apply", &id, code(504, "Timeout"), 1);
    fake.fail_next("apply", &id, code(409, "Conflict"), 1);
    let gw = fast_retries(fake.clone());
    let err = execute(&gw, &plan(vec![s]), &options(), &Collect::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the write may have been applied all the same: run apply again to converge"),
        "{err}"
    );
    assert!(!err.contains("changed since the plan was made"), "{err}");
}

#[tokio::test]
async fn adoption_and_conflicts_need_consent() {
    let mut adopt = ready_pv("pv-a");
    adopt.action = Action::Adopt;
    let mut conflict = ready_pv("pv-b");
    conflict.action = Action::Update;
    conflict.conflicts = vec![gateway::FieldConflict {
        manager: "kubectl".into(),
        field: "spec.x".into(),
    }];
    let p = plan(vec![adopt, conflict]);
    let fake = FakeGateway::new();
    let err = execute(&fake, &p, &options(), &Collect::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::Adopt(_)), "{err}");
    let with_adopt = ApplyOptions {
        adopt: true,
        ..options()
    };
    let err = execute(&fake, &p, &with_adopt, &Collect::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApplyError::Conflicts(ref c) if c[0].contains("\"kubectl\"")),
        "{err}"
    );
    assert!(fake.writes().is_empty());
    let both = ApplyOptions {
        force_conflicts: true,
        ..with_adopt
    };
    execute(&fake, &p, &both, &Collect::default())
        .await
        .unwrap();
    assert_eq!(fake.writes().len(), 2);
}

#[tokio::test]
async fn a_spec_changed_by_another_writer_during_the_wait_fails_naming_it() {
    let fake = FakeGateway::new();
    let id = ObjectRef::new(Kind::StatefulSet, "ns", "db");
    let s = step(
        Kind::StatefulSet,
        "db",
        Action::Create,
        json!({"metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 1}}),
    );
    let p = plan(vec![s]);
    let changer = fake.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        changer.update(&id, |o| {
            o["metadata"]["generation"] = json!(2);
            o["spec"]["replicas"] = json!(5);
            o["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update", "time": "2026-11-25T12:00:00Z"}]);
        });
    });
    let err = execute(&fake, &p, &options(), &Collect::default())
        .await
        .unwrap_err();
    writer.await.unwrap();
    assert!(
        err.to_string()
            .contains("changed by kubectl during apply (generation 1 → 2)"),
        "{err}"
    );
}

fn pinned_claim(name: &str, volume: &str) -> Step {
    step(
        Kind::PersistentVolumeClaim,
        name,
        Action::Create,
        json!({"metadata": {"name": name}, "spec": {"volumeName": volume}, "status": {"phase": "Bound"}}),
    )
}

#[tokio::test]
async fn waits_share_one_watch_per_kind_and_a_claim_needs_only_its_volume() {
    let fake = FakeGateway::new();
    let mut steps = Vec::new();
    for i in 0..5 {
        steps.push(ready_pv(&format!("pv-{i}")));
        steps.push(pinned_claim(&format!("c-{i}"), &format!("pv-{i}")));
    }
    let mut slow = ready_pv("pv-slow");
    slow.manifest["status"]["phase"] = json!("Pending");
    steps.push(slow);
    steps.push(pinned_claim("c-slow", "pv-slow"));
    // One write at a time: a wait that takes long must not hold that slot.
    let opts = ApplyOptions {
        concurrency: 1,
        ..options()
    };
    let controller = fake.clone();
    let volume = tokio::spawn(async move {
        // The slow volume becomes Available only once a claim of another volume was created
        // (or after 3 s, and the test then fails).
        let mut early = false;
        for _ in 0..300 {
            if controller.writes().contains(&"create pvc/c-4".to_string()) {
                early = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let id = ObjectRef::new(Kind::PersistentVolume, "", "pv-slow");
        controller.update(&id, |o| o["status"]["phase"] = json!("Available"));
        early
    });
    let sink = Collect::default();
    let written = execute(&fake, &plan(steps), &opts, &sink).await.unwrap();
    assert_eq!(written, 12);
    assert!(
        volume.await.unwrap(),
        "the claims waited for every volume: {:#?}",
        sink.lines()
    );
    let writes = fake.writes();
    let pos = |w: &str| writes.iter().position(|x| x == w).unwrap();
    assert!(
        pos("create pvc/c-slow") > pos("create pvc/c-4"),
        "{writes:#?}"
    );
    assert_eq!(
        fake.calls("watch"),
        2,
        "one watch for the volumes, one for the claims"
    );
}

/// `--concurrency N`: at most N writes are in flight at once, and N of them are when there is
/// enough to write (a limit that were ignored, or one write at a time, both fail).
#[tokio::test]
async fn concurrency_is_the_number_of_writes_in_flight() {
    for (concurrency, expected) in [(2, 2), (4, 4), (1, 1)] {
        let fake = FakeGateway::new();
        fake.slow(&["create"], Duration::from_millis(50));
        let steps = (0..8).map(|i| ready_pv(&format!("pv-{i}"))).collect();
        let opts = ApplyOptions {
            concurrency,
            ..options()
        };
        let sink = Collect::default();
        let written = execute(&fake, &plan(steps), &opts, &sink).await.unwrap();
        assert_eq!(written, 8);
        assert_eq!(
            fake.peak_in_flight(),
            expected,
            "--concurrency {concurrency}: {:#?}",
            sink.lines()
        );
    }
}
