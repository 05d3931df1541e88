package csi

// The kubelet's part of an expansion (NodeExpandVolume), as
// pkg/volume/util/operationexecutor/node_expander.go writes it: once the resizer
// has left the claim at NodeResizePending, the "kubelet" of a node where a pod
// mounts the claim marks NodeResizeInProgress, grows the file system, emits
// FileSystemResizeSuccessful on the pod and the claim, and sets status.capacity
// to the volume's size with the resize conditions and status cleared
// (MarkNodeExpansionFinishedWithRecovery).

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
)

// expandsOn reports whether the simulated kubelet grows the file system for pod.
// With online expansion any pod mounting the claim will do; without, only a pod
// that was started after the expansion began (it mounts the volume afresh).
func expandsOn(pod *corev1.Pod, online bool, start *resizeStart, pendingSince time.Time) bool {
	if online {
		return true
	}
	if start != nil {
		return !start.pods[pod.UID] && !pod.CreationTimestamp.Time.Before(start.at.Truncate(time.Second))
	}
	// No record of the start (it happened before this process ran): go by the
	// time the controller finished its part.
	return !pod.CreationTimestamp.Time.Before(pendingSince.Truncate(time.Second))
}

func (d *Driver) syncNodeExpand(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	claim, err := d.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pv := d.ourVolume(claim)
	if pv == nil {
		return 0, nil
	}
	status := claim.Status.AllocatedResourceStatuses[corev1.ResourceStorage]
	if status != corev1.PersistentVolumeClaimNodeResizePending && status != corev1.PersistentVolumeClaimNodeResizeInProgress {
		return 0, nil
	}
	knobs, _, err := d.classKnobs(pv.Spec.StorageClassName)
	if err != nil {
		knobs, _ = ParseKnobs(nil)
	}
	var pendingSince time.Time
	for _, c := range claim.Status.Conditions {
		if c.Type == corev1.PersistentVolumeClaimFileSystemResizePending {
			pendingSince = c.LastTransitionTime.Time
		}
	}
	d.mu.Lock()
	start := d.resizeFrom[claim.UID]
	d.mu.Unlock()
	var candidates []*corev1.Pod
	for _, pod := range d.podsMounting(claim) {
		if expandsOn(pod, knobs.OnlineExpand, start, pendingSince) {
			candidates = append(candidates, pod)
		}
	}
	if len(candidates) == 0 {
		// Stays at FileSystemResizePending until a pod mounts the claim; pod
		// events bring the claim back here.
		return 0, nil
	}
	sort.Slice(candidates, func(i, j int) bool {
		return candidates[i].CreationTimestamp.Before(&candidates[j].CreationTimestamp)
	})
	pod := candidates[0]
	newSize := pv.Spec.Capacity[corev1.ResourceStorage]

	if status != corev1.PersistentVolumeClaimNodeResizeInProgress {
		inProgress := claim.DeepCopy()
		setResizeStatus(inProgress, corev1.PersistentVolumeClaimNodeResizeInProgress)
		updated, err := d.patchClaimStatus(ctx, claim, inProgress, true)
		if err != nil {
			return 0, fmt.Errorf("MountVolume.NodeExpandVolume failed to mark node expansion in progress: %w", err)
		}
		claim = updated
	}
	msg := fmt.Sprintf("MountVolume.NodeExpandVolume succeeded for volume %q %s", pv.Name, pod.Spec.NodeName)
	rec := d.kubeletRec[pod.Spec.NodeName]
	rec.Event(pod, corev1.EventTypeNormal, "FileSystemResizeSuccessful", msg)
	rec.Event(claim, corev1.EventTypeNormal, "FileSystemResizeSuccessful", msg)

	done := claim.DeepCopy()
	if done.Status.Capacity == nil {
		done.Status.Capacity = corev1.ResourceList{}
	}
	done.Status.Capacity[corev1.ResourceStorage] = newSize
	clearResizeStatus(done)
	done.Status.Conditions = mergeResizeConditions(done.Status.Conditions, nil, false)
	if _, err := d.patchClaimStatus(ctx, claim, done, true); err != nil {
		return 0, fmt.Errorf("mountVolume.NodeExpandVolume update pvc status failed: %w", err)
	}
	d.mu.Lock()
	delete(d.resizeFrom, claim.UID)
	d.mu.Unlock()
	return 0, nil
}
