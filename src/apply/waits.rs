//! Wait rules: pure functions of an object's JSON that say whether it is done, whether it
//! succeeded, and what to tell the user ("2/3 replicas ready").

use crate::plan::ops::WaitRule;
use serde_json::Value;

/// Applies a plan's wait rule to the object's current state (`None`: it does not exist).
pub fn check(rule: WaitRule, obj: Option<&Value>) -> WaitStatus {
    match rule {
        WaitRule::VolumeAvailable => volume(obj),
        WaitRule::ClaimBound => claim(obj),
        WaitRule::StatefulSetReady => statefulset(obj),
        WaitRule::DeploymentReady => deployment(obj),
        WaitRule::DaemonSetReady => daemonset(obj),
        WaitRule::Gone => gone(obj),
        WaitRule::ClaimResized => claim_resized(obj),
        WaitRule::SnapshotReady => snapshot(obj),
        WaitRule::ClaimExpanded => claim_expanded(obj),
        // The uid of the pod deleted is not part of the rule: the executor passes it.
        WaitRule::PodReplaced => pod_replaced(obj, None),
    }
}

/// Done when the object no longer exists.
pub fn gone(obj: Option<&Value>) -> WaitStatus {
    match obj {
        None => WaitStatus::ready("deleted"),
        Some(o) if o.pointer("/metadata/deletionTimestamp").is_some() => {
            let finalizers = o
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            if finalizers.is_empty() {
                WaitStatus::waiting("being deleted")
            } else {
                WaitStatus::waiting(format!("being deleted; held by finalizers {finalizers}"))
            }
        }
        Some(_) => WaitStatus::waiting("waiting for the deletion to start"),
    }
}

/// The state of one wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitStatus {
    pub done: bool,
    pub ok: bool,
    pub message: String,
}

impl WaitStatus {
    pub(crate) fn waiting(message: impl Into<String>) -> Self {
        WaitStatus {
            done: false,
            ok: false,
            message: message.into(),
        }
    }
    pub(crate) fn ready(message: impl Into<String>) -> Self {
        WaitStatus {
            done: true,
            ok: true,
            message: message.into(),
        }
    }
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        WaitStatus {
            done: true,
            ok: false,
            message: message.into(),
        }
    }
}

fn i64_at(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// A PersistentVolume is ready when `Available` (or already `Bound`).
pub fn volume(pv: Option<&Value>) -> WaitStatus {
    let Some(pv) = pv else {
        return WaitStatus::waiting("waiting for the volume to appear");
    };
    match str_at(pv, "/status/phase") {
        "Available" => WaitStatus::ready("Available"),
        "Bound" => WaitStatus::ready(format!("Bound to {}", str_at(pv, "/spec/claimRef/name"))),
        "Failed" => WaitStatus::failed(format!("volume failed: {}", str_at(pv, "/status/message"))),
        "Released" => WaitStatus::failed(
            "Released: its claim was deleted and the reclaim policy keeps it from binding again; remove spec.claimRef to reuse it",
        ),
        "" => WaitStatus::waiting("waiting for the volume's phase"),
        other => WaitStatus::waiting(format!("phase {other}")),
    }
}

/// A claim is ready when `Bound`.
pub fn claim(pvc: Option<&Value>) -> WaitStatus {
    let Some(pvc) = pvc else {
        return WaitStatus::waiting("waiting for the claim to be created");
    };
    match str_at(pvc, "/status/phase") {
        "Bound" => WaitStatus::ready(format!("Bound to {}", str_at(pvc, "/spec/volumeName"))),
        "Lost" => WaitStatus::failed(format!(
            "Lost: its volume {} is gone",
            str_at(pvc, "/spec/volumeName")
        )),
        _ => WaitStatus::waiting("waiting for the claim to be Bound"),
    }
}

/// A StatefulSet is ready when the controller has seen its generation, every replica is ready,
/// and (for RollingUpdate) every pod above the partition runs the update revision.
pub fn statefulset(sts: Option<&Value>) -> WaitStatus {
    let Some(sts) = sts else {
        return WaitStatus::waiting("waiting for the StatefulSet to appear");
    };
    let generation = i64_at(sts, "/metadata/generation");
    let observed = i64_at(sts, "/status/observedGeneration");
    if observed < generation {
        return WaitStatus::waiting("waiting for the controller to observe the new generation");
    }
    let replicas = sts
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = i64_at(sts, "/status/readyReplicas");
    let available = sts
        .pointer("/status/availableReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(ready);
    let current = i64_at(sts, "/status/replicas");
    let strategy = str_at(sts, "/spec/updateStrategy/type");
    if strategy == "OnDelete" {
        if ready < replicas || current != replicas {
            return WaitStatus::waiting(format!("{ready}/{replicas} replicas ready"));
        }
        return WaitStatus::ready(format!(
            "{ready}/{replicas} replicas ready; updateStrategy OnDelete: pods take a new template only when deleted, so the update is not waited for"
        ));
    }
    if current > replicas {
        return WaitStatus::waiting(format!("{} pods to terminate", current - replicas));
    }
    if ready < replicas {
        return WaitStatus::waiting(format!("{ready}/{replicas} replicas ready"));
    }
    if available < replicas {
        return WaitStatus::waiting(format!(
            "{available}/{replicas} replicas available (minReadySeconds)"
        ));
    }
    let partition = i64_at(sts, "/spec/updateStrategy/rollingUpdate/partition");
    let updated = i64_at(sts, "/status/updatedReplicas");
    let expected_updated = (replicas - partition).max(0);
    if updated < expected_updated {
        return WaitStatus::waiting(format!("{updated}/{expected_updated} replicas updated"));
    }
    let update_rev = str_at(sts, "/status/updateRevision");
    let current_rev = str_at(sts, "/status/currentRevision");
    if partition == 0 && !update_rev.is_empty() && update_rev != current_rev {
        return WaitStatus::waiting(
            "waiting for the rollout to finish (currentRevision != updateRevision)",
        );
    }
    if partition > 0 {
        return WaitStatus::ready(format!(
            "{ready}/{replicas} replicas ready, {updated} updated (partition {partition}: lower ordinals keep the old revision)"
        ));
    }
    WaitStatus::ready(format!("{ready}/{replicas} replicas ready"))
}

/// A claim's expansion is done when `status.capacity` reaches its request. Reports the phases
/// the resizer and kubelet write: `Resizing` (controller), `FileSystemResizePending` (waits for
/// a pod to mount it); an infeasible expansion has failed.
pub fn claim_resized(pvc: Option<&Value>) -> WaitStatus {
    let Some(pvc) = pvc else {
        return WaitStatus::failed("the claim is gone");
    };
    if str_at(pvc, "/status/phase") != "Bound" {
        return WaitStatus::waiting("waiting for the claim to be Bound");
    }
    let want = str_at(pvc, "/spec/resources/requests/storage");
    let have = str_at(pvc, "/status/capacity/storage");
    let parse = |s: &str| crate::spec::quantity::Quantity::parse(s).ok();
    if let (Some(w), Some(h)) = (parse(want), parse(have))
        && h.cmp_exact(&w) != std::cmp::Ordering::Less
    {
        return WaitStatus::ready(format!("capacity {have}"));
    }
    let status = str_at(pvc, "/status/allocatedResourceStatuses/storage");
    let condition = |t: &str| {
        pvc.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t && c["status"] == "True"))
    };
    if matches!(
        status,
        "ControllerResizeInfeasible" | "NodeResizeInfeasible"
    ) {
        let why = condition("ControllerResizeError")
            .or_else(|| condition("NodeResizeError"))
            .and_then(|c| c["message"].as_str())
            .unwrap_or(status);
        return WaitStatus::failed(format!("expansion to {want} failed: {why}"));
    }
    if condition("FileSystemResizePending").is_some() || status == "NodeResizePending" {
        return WaitStatus::waiting(format!("{FILE_SYSTEM_PENDING} ({have} → {want})"));
    }
    if condition("Resizing").is_some() || status == "ControllerResizeInProgress" {
        return WaitStatus::waiting(format!("resizing the volume ({have} → {want})"));
    }
    WaitStatus::waiting(format!("waiting for the resizer ({have} → {want})"))
}

/// The controller part of an expansion is done: the claim has its new capacity, or only the
/// node's part (the file system) is left. Failures are those of [`claim_resized`].
pub fn claim_expanded(pvc: Option<&Value>) -> WaitStatus {
    let status = claim_resized(pvc);
    if !status.done && status.message.starts_with(FILE_SYSTEM_PENDING) {
        let have = pvc
            .map(|p| str_at(p, "/status/allocatedResources/storage"))
            .filter(|s| !s.is_empty())
            .or_else(|| pvc.map(|p| str_at(p, "/spec/resources/requests/storage")))
            .unwrap_or_default();
        return WaitStatus::ready(format!(
            "volume expanded to {have}; the file system grows when a pod mounts it"
        ));
    }
    status
}

/// Whether a claim's file system waits for the node (`FileSystemResizePending`, or
/// `NodeResizePending`) and has not reached its request yet.
pub fn file_system_pending(pvc: &Value) -> bool {
    let status = claim_resized(Some(pvc));
    !status.done && status.message.starts_with(FILE_SYSTEM_PENDING)
}

/// A restarted pod: done when the pod exists, is not the one deleted (`old_uid`), is not being
/// deleted, and is Ready. A failed pod has failed.
pub fn pod_replaced(pod: Option<&Value>, old_uid: Option<&str>) -> WaitStatus {
    let Some(pod) = pod else {
        return WaitStatus::waiting("waiting for its StatefulSet to create the pod again");
    };
    let uid = str_at(pod, "/metadata/uid");
    if old_uid.is_some_and(|o| o == uid) {
        return WaitStatus::waiting("waiting for the old pod to terminate");
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return WaitStatus::waiting("waiting for the old pod to terminate");
    }
    let phase = str_at(pod, "/status/phase");
    if phase == "Failed" {
        return WaitStatus::failed(format!(
            "the new pod failed: {}",
            str_at(pod, "/status/message")
        ));
    }
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    match (ready, old_uid) {
        (true, Some(_)) => WaitStatus::ready(format!("restarted and Ready (uid {uid})")),
        (true, None) => WaitStatus::ready("Ready; not restarted"),
        (false, _) if phase.is_empty() => WaitStatus::waiting("waiting for the pod to start"),
        (false, _) => WaitStatus::waiting(format!("{phase}, not Ready yet")),
    }
}

/// How long a mounted claim may stay `FileSystemResizePending` after its pods are Ready before
/// the wait concludes that the driver grows file systems only on mount (offline expansion).
pub const NODE_RESIZE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A claim whose file system waits for the node while pods that started before the expansion
/// mount it: once that has lasted [`NODE_RESIZE_GRACE`] (`pending_for`, measured by the caller
/// from when it first saw the claim and its Ready pods so), the driver evidently grows file
/// systems only when a pod mounts the volume, and waiting longer would not help. Returns the
/// explanation to report the claim as deferred with; `None` while it may still grow.
pub fn node_resize_stalled(
    pvc: &Value,
    pods: &[Value],
    pending_for: std::time::Duration,
) -> Option<String> {
    if !file_system_pending(pvc) || pods.is_empty() || pending_for < NODE_RESIZE_GRACE {
        return None;
    }
    // When the node's part became due (the controller finished); a pod started after that
    // grows the file system on mount, so it is waited for.
    let since = pvc
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "FileSystemResizePending"))
        .map(|c| str_at(c, "/lastTransitionTime"))
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
    let mut names = Vec::new();
    for pod in pods {
        let ready = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        let started = str_at(pod, "/status/startTime")
            .parse::<k8s_openapi::jiff::Timestamp>()
            .ok();
        let before = match (started, since) {
            (Some(s), Some(t)) => s <= t,
            _ => true,
        };
        if !ready || !before || pod.pointer("/metadata/deletionTimestamp").is_some() {
            return None;
        }
        names.push(format!("pod/{}", str_at(pod, "/metadata/name")));
    }
    let names = names.join(", ");
    Some(format!(
        "expanded, but the file system resize is pending while {names} mounts it: the driver grows file systems only on mount; restart the pod, or apply with --restart-pods (a StatefulSet's claims)"
    ))
}

/// A VolumeSnapshot is ready when `status.readyToUse`; a snapshot error is a failure, but for
/// the one the snapshot controller sets while the source claim is not Bound yet (it retries):
/// that is still waiting.
pub fn snapshot(vs: Option<&Value>) -> WaitStatus {
    let Some(vs) = vs else {
        return WaitStatus::waiting("waiting for the snapshot to appear");
    };
    if vs.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true) {
        return WaitStatus::ready(format!(
            "ready to use, {} (content {})",
            str_at(vs, "/status/restoreSize"),
            str_at(vs, "/status/boundVolumeSnapshotContentName")
        ));
    }
    let error = str_at(vs, "/status/error/message");
    if error.contains(CLAIM_NOT_BOUND) {
        return WaitStatus::waiting(format!(
            "waiting for pvc/{} to be Bound (the snapshot controller retries: {error})",
            str_at(vs, "/spec/source/persistentVolumeClaimName")
        ));
    }
    if !error.is_empty() {
        return WaitStatus::failed(format!("snapshot failed: {error}"));
    }
    if str_at(vs, "/status/boundVolumeSnapshotContentName").is_empty() {
        WaitStatus::waiting("waiting for the snapshot controller")
    } else {
        WaitStatus::waiting("taking the snapshot")
    }
}

/// What the snapshot controller's error says while the snapshot's claim is not Bound ("the PVC
/// data is not yet bound to a PV, will not attempt to take a snapshot").
const CLAIM_NOT_BOUND: &str = "is not yet bound to a PV";

/// The start of the message of a claim whose file system grows only when a pod mounts it.
pub const FILE_SYSTEM_PENDING: &str = "file system resize pending: waits for a pod to mount it";

/// A Deployment is ready when the controller has seen its generation, every replica runs the
/// new template and is available, and no old replica is left. A rollout past its progress
/// deadline has failed.
pub fn deployment(d: Option<&Value>) -> WaitStatus {
    let Some(d) = d else {
        return WaitStatus::waiting("waiting for the Deployment to appear");
    };
    if i64_at(d, "/status/observedGeneration") < i64_at(d, "/metadata/generation") {
        return WaitStatus::waiting("waiting for the controller to observe the new generation");
    }
    if let Some(conds) = d.pointer("/status/conditions").and_then(Value::as_array)
        && let Some(stuck) = conds
            .iter()
            .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
    {
        return WaitStatus::failed(format!(
            "rollout stuck: {}",
            stuck["message"]
                .as_str()
                .unwrap_or("progress deadline exceeded")
        ));
    }
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = i64_at(d, "/status/updatedReplicas");
    let total = i64_at(d, "/status/replicas");
    let available = i64_at(d, "/status/availableReplicas");
    if updated < replicas {
        return WaitStatus::waiting(format!("{updated}/{replicas} replicas updated"));
    }
    if total > updated {
        return WaitStatus::waiting(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < replicas {
        return WaitStatus::waiting(format!("{available}/{replicas} replicas available"));
    }
    WaitStatus::ready(format!("{available}/{replicas} replicas available"))
}

/// A DaemonSet is ready when the controller has seen its generation and every node it should
/// run on has an updated, ready pod (with `OnDelete`, ready pods are enough).
pub fn daemonset(ds: Option<&Value>) -> WaitStatus {
    let Some(ds) = ds else {
        return WaitStatus::waiting("waiting for the DaemonSet to appear");
    };
    if i64_at(ds, "/status/observedGeneration") < i64_at(ds, "/metadata/generation") {
        return WaitStatus::waiting("waiting for the controller to observe the new generation");
    }
    let desired = i64_at(ds, "/status/desiredNumberScheduled");
    let updated = i64_at(ds, "/status/updatedNumberScheduled");
    let ready = i64_at(ds, "/status/numberReady");
    let available = ds
        .pointer("/status/numberAvailable")
        .and_then(Value::as_i64)
        .unwrap_or(ready);
    let on_delete = str_at(ds, "/spec/updateStrategy/type") == "OnDelete";
    if !on_delete && updated < desired {
        return WaitStatus::waiting(format!("{updated}/{desired} pods updated"));
    }
    if ready < desired {
        return WaitStatus::waiting(format!("{ready}/{desired} pods ready"));
    }
    if available < desired {
        return WaitStatus::waiting(format!(
            "{available}/{desired} pods available (minReadySeconds)"
        ));
    }
    if desired == 0 {
        return WaitStatus::ready("no node matches its node selector: 0 pods");
    }
    WaitStatus::ready(format!("{ready}/{desired} pods ready"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn gone_names_the_finalizers_that_hold_it() {
        assert!(gone(None).ok);
        let held = gone(Some(&yaml(
            "metadata: {deletionTimestamp: x, finalizers: [kubernetes.io/pvc-protection]}",
        )));
        assert!(!held.done);
        assert!(held.message.contains("kubernetes.io/pvc-protection"));
    }

    #[test]
    fn deployment_waits_for_updated_and_available_replicas() {
        let d = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 2}\nstatus: {observedGeneration: 2, replicas: 3, updatedReplicas: 2, availableReplicas: 2}",
        );
        assert_eq!(
            deployment(Some(&d)).message,
            "1 old replicas pending termination"
        );
        let done = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 2}\nstatus: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}",
        );
        assert!(deployment(Some(&done)).ok);
        let stuck = yaml(
            "metadata: {generation: 1}\nstatus: {observedGeneration: 1, conditions: [{type: Progressing, reason: ProgressDeadlineExceeded, message: too slow}]}",
        );
        let st = deployment(Some(&stuck));
        assert!(st.done && !st.ok && st.message.contains("too slow"));
    }

    #[test]
    fn daemonset_waits_for_every_node() {
        let ds = yaml(
            "metadata: {generation: 1}\nstatus: {observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberReady: 2}",
        );
        assert_eq!(daemonset(Some(&ds)).message, "2/3 pods ready");
        let done = yaml(
            "metadata: {generation: 1}\nstatus: {observedGeneration: 1, desiredNumberScheduled: 3, updatedNumberScheduled: 3, numberReady: 3, numberAvailable: 3}",
        );
        assert_eq!(daemonset(Some(&done)), WaitStatus::ready("3/3 pods ready"));
    }

    #[test]
    fn claim_resize_reports_each_phase() {
        let pvc = |status: &str| {
            yaml(&format!(
                "spec: {{resources: {{requests: {{storage: 2Gi}}}}}}\nstatus: {{phase: Bound, capacity: {{storage: 1Gi}}, {status}}}"
            ))
        };
        assert!(
            claim_resized(Some(&pvc("conditions: [{type: Resizing, status: 'True'}]")))
                .message
                .starts_with("resizing the volume (1Gi → 2Gi)")
        );
        assert!(
            claim_resized(Some(&pvc(
                "conditions: [{type: FileSystemResizePending, status: 'True'}]"
            )))
            .message
            .starts_with(FILE_SYSTEM_PENDING)
        );
        let failed = claim_resized(Some(&pvc(
            "allocatedResourceStatuses: {storage: ControllerResizeInfeasible}, conditions: [{type: ControllerResizeError, status: 'True', message: no space}]",
        )));
        assert!(
            failed.done && !failed.ok && failed.message.contains("no space"),
            "{failed:?}"
        );
        let done = yaml(
            "spec: {resources: {requests: {storage: 2Gi}}}\nstatus: {phase: Bound, capacity: {storage: 2048Mi}}",
        );
        assert!(claim_resized(Some(&done)).ok);
    }

    fn pending_claim() -> Value {
        yaml(
            "spec: {resources: {requests: {storage: 2Gi}}}\nstatus: {phase: Bound, capacity: {storage: 1Gi}, allocatedResources: {storage: 2Gi}, \
             conditions: [{type: Resizing, status: 'True'}, {type: FileSystemResizePending, status: 'True', lastTransitionTime: '2026-01-02T15:00:10Z'}]}",
        )
    }

    fn pod(name: &str, uid: &str, started: &str, ready: bool) -> Value {
        yaml(&format!(
            "metadata: {{name: {name}, uid: {uid}}}\nstatus: {{phase: Running, startTime: '{started}', conditions: [{{type: Ready, status: '{}'}}]}}",
            if ready { "True" } else { "False" }
        ))
    }

    #[test]
    fn claim_expanded_is_done_once_only_the_file_system_is_left() {
        let st = claim_expanded(Some(&pending_claim()));
        assert!(st.done && st.ok, "{st:?}");
        assert_eq!(
            st.message,
            "volume expanded to 2Gi; the file system grows when a pod mounts it"
        );
        let resizing = yaml(
            "spec: {resources: {requests: {storage: 2Gi}}}\nstatus: {phase: Bound, capacity: {storage: 1Gi}, conditions: [{type: Resizing, status: 'True'}]}",
        );
        assert!(!claim_expanded(Some(&resizing)).done);
        let done = yaml(
            "spec: {resources: {requests: {storage: 2Gi}}}\nstatus: {phase: Bound, capacity: {storage: 2Gi}}",
        );
        assert_eq!(
            claim_expanded(Some(&done)),
            WaitStatus::ready("capacity 2Gi")
        );
        let infeasible = claim_expanded(Some(&yaml(
            "spec: {resources: {requests: {storage: 2Gi}}}\nstatus: {phase: Bound, capacity: {storage: 1Gi}, allocatedResourceStatuses: {storage: ControllerResizeInfeasible}}",
        )));
        assert!(infeasible.done && !infeasible.ok);
        assert!(file_system_pending(&pending_claim()));
        assert!(!file_system_pending(&done));
    }

    #[test]
    fn a_restarted_pod_is_done_when_its_replacement_is_ready() {
        let old = pod("db-0", "u1", "2026-01-02T15:00:00Z", true);
        assert_eq!(
            pod_replaced(Some(&old), Some("u1")).message,
            "waiting for the old pod to terminate"
        );
        assert!(!pod_replaced(None, Some("u1")).done);
        let starting = pod("db-0", "u2", "2026-01-02T15:00:20Z", false);
        assert_eq!(
            pod_replaced(Some(&starting), Some("u1")).message,
            "Running, not Ready yet"
        );
        let new = pod("db-0", "u2", "2026-01-02T15:00:20Z", true);
        assert_eq!(
            pod_replaced(Some(&new), Some("u1")),
            WaitStatus::ready("restarted and Ready (uid u2)")
        );
        // Not restarted (its claims grew online): Ready is enough.
        assert_eq!(
            pod_replaced(Some(&old), None),
            WaitStatus::ready("Ready; not restarted")
        );
        let failed = yaml("metadata: {uid: u3}\nstatus: {phase: Failed, message: evicted}");
        assert!(!pod_replaced(Some(&failed), Some("u1")).ok);
    }

    #[test]
    fn a_file_system_that_waits_for_pods_started_before_the_expansion_is_deferred() {
        let claim = pending_claim();
        let long = NODE_RESIZE_GRACE;
        let early = pod("db-0", "u1", "2026-01-02T15:00:00Z", true);
        let why = node_resize_stalled(&claim, std::slice::from_ref(&early), long).unwrap();
        assert!(why.contains("pod/db-0 mounts it"), "{why}");
        assert!(why.contains("--restart-pods"), "{why}");
        // Not before the grace period is over: an online driver may still be growing it.
        assert!(node_resize_stalled(&claim, std::slice::from_ref(&early), long / 2).is_none());
        // A pod started after the expansion grows it on mount: waited for.
        let late = pod("db-0", "u2", "2026-01-02T15:00:20Z", true);
        assert!(node_resize_stalled(&claim, &[late], long).is_none());
        // A pod that is not Ready yet may still mount it.
        let unready = pod("db-0", "u1", "2026-01-02T15:00:00Z", false);
        assert!(node_resize_stalled(&claim, &[unready], long).is_none());
        // Done, or nothing mounts it (deferred elsewhere): not stalled.
        let done = yaml(
            "spec: {resources: {requests: {storage: 2Gi}}}\nstatus: {phase: Bound, capacity: {storage: 2Gi}}",
        );
        assert!(node_resize_stalled(&done, &[early], long).is_none());
        assert!(node_resize_stalled(&claim, &[], long).is_none());
    }

    #[test]
    fn a_snapshot_of_a_claim_not_bound_yet_waits_and_other_errors_fail() {
        let unbound = snapshot(Some(&yaml(
            "spec: {source: {persistentVolumeClaimName: orders}}\n\
             status: {readyToUse: false, error: {message: 'Failed to create snapshot content with error the PVC orders is not yet bound to a PV, will not attempt to take a snapshot'}}",
        )));
        assert!(!unbound.done, "{unbound:?}");
        assert!(
            unbound
                .message
                .starts_with("waiting for pvc/orders to be Bound"),
            "{unbound:?}"
        );
        let failed = snapshot(Some(&yaml(
            "spec: {source: {persistentVolumeClaimName: orders}}\n\
             status: {readyToUse: false, error: {message: 'Failed to create snapshot content with error cannot find default snapshot class'}}",
        )));
        assert!(failed.done && !failed.ok, "{failed:?}");
        assert_eq!(
            failed.message,
            "snapshot failed: Failed to create snapshot content with error cannot find default snapshot class"
        );
    }

    #[test]
    fn claim_waits_until_bound() {
        assert_eq!(
            claim(Some(&yaml("status: {phase: Pending}"))).message,
            "waiting for the claim to be Bound"
        );
        let bound = claim(Some(&yaml(
            "spec: {volumeName: pv-1}\nstatus: {phase: Bound}",
        )));
        assert_eq!(
            bound,
            WaitStatus {
                done: true,
                ok: true,
                message: "Bound to pv-1".into()
            }
        );
        assert!(
            !claim(Some(&yaml(
                "spec: {volumeName: pv-1}\nstatus: {phase: Lost}"
            )))
            .ok
        );
    }

    #[test]
    fn volume_ready_when_available_or_bound() {
        assert!(volume(Some(&yaml("status: {phase: Available}"))).ok);
        assert!(
            volume(Some(&yaml(
                "spec: {claimRef: {name: c}}\nstatus: {phase: Bound}"
            )))
            .ok
        );
        let released = volume(Some(&yaml("status: {phase: Released}")));
        assert!(released.done && !released.ok);
    }

    #[test]
    fn statefulset_counts_ready_replicas() {
        let s = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 3}\nstatus: {observedGeneration: 2, replicas: 3, readyReplicas: 2, updatedReplicas: 3}",
        );
        assert_eq!(statefulset(Some(&s)).message, "2/3 replicas ready");
    }

    #[test]
    fn statefulset_waits_for_new_generation() {
        let s = yaml(
            "metadata: {generation: 3}\nspec: {replicas: 1}\nstatus: {observedGeneration: 2, readyReplicas: 1}",
        );
        assert!(!statefulset(Some(&s)).done);
    }

    #[test]
    fn statefulset_waits_for_revision() {
        let s = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 2}\nstatus: {observedGeneration: 2, replicas: 2, readyReplicas: 2, \
             availableReplicas: 2, updatedReplicas: 2, currentRevision: a, updateRevision: b}",
        );
        assert!(!statefulset(Some(&s)).done);
        let mut done = s.clone();
        done["status"]["currentRevision"] = "b".into();
        assert_eq!(
            statefulset(Some(&done)),
            WaitStatus {
                done: true,
                ok: true,
                message: "2/2 replicas ready".into()
            }
        );
    }

    #[test]
    fn statefulset_respects_partition() {
        let s = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 3, updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}}\n\
             status: {observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 1, currentRevision: a, updateRevision: b}",
        );
        let st = statefulset(Some(&s));
        assert!(st.done && st.ok, "{st:?}");
        assert!(st.message.contains("partition 2"));
    }

    #[test]
    fn on_delete_is_reported_not_waited_for() {
        let s = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 1, updateStrategy: {type: OnDelete}}\n\
             status: {observedGeneration: 2, replicas: 1, readyReplicas: 1, updatedReplicas: 0, currentRevision: a, updateRevision: b}",
        );
        let st = statefulset(Some(&s));
        assert!(st.done && st.ok);
        assert!(st.message.contains("OnDelete"));
    }

    #[test]
    fn scale_down_waits_for_pods_to_terminate() {
        let s = yaml(
            "metadata: {generation: 2}\nspec: {replicas: 1}\nstatus: {observedGeneration: 2, replicas: 3, readyReplicas: 3}",
        );
        assert_eq!(statefulset(Some(&s)).message, "2 pods to terminate");
    }
}
