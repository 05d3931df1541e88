package csi

// The external-resizer part (ControllerExpandVolume), with the decision table of
// kubernetes-csi/external-resizer pkg/controller/expand_and_recover.go
// (RecoverVolumeExpansionFailure, GA since Kubernetes 1.34) and the status
// writes of pkg/controller/resize_status.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/tools/cache"
)

// resizeOp is a ControllerExpandVolume call "in flight" (resize-delay).
type resizeOp struct {
	size resource.Quantity
	due  time.Time
}

// resizeStart remembers when an expansion to size began and which pods mounted
// the claim then (for online-expansion "false").
type resizeStart struct {
	at   time.Time
	size resource.Quantity
	pods map[types.UID]bool
}

// resizeDecision is the size the resizer expands to, or skip when there is
// nothing to do for the controller (the node part is pending, or nothing changed).
// It is expand_and_recover.go's table.
func resizeDecision(pvc *corev1.PersistentVolumeClaim, pvSize resource.Quantity, finalError bool) (newSize resource.Quantity, skip bool) {
	spec := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	status := pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]
	var allocated *resource.Quantity
	if q, ok := pvc.Status.AllocatedResources[corev1.ResourceStorage]; ok {
		allocated = &q
	}
	newSize = spec
	if pvSize.Cmp(spec) < 0 {
		switch status {
		case corev1.PersistentVolumeClaimNodeResizeInfeasible:
			if allocated != nil {
				newSize = *allocated
			}
		case corev1.PersistentVolumeClaimNodeResizePending, corev1.PersistentVolumeClaimNodeResizeInProgress:
			if allocated != nil {
				newSize = *allocated
			}
			if pvSize.Cmp(newSize) >= 0 {
				return newSize, true
			}
		case corev1.PersistentVolumeClaimControllerResizeInProgress:
			if finalError {
				newSize = spec
			} else if allocated != nil {
				newSize = *allocated
			}
		default:
			newSize = spec
		}
		return newSize, false
	}
	switch status {
	case corev1.PersistentVolumeClaimNodeResizeInProgress, corev1.PersistentVolumeClaimNodeResizePending:
		return newSize, true
	case corev1.PersistentVolumeClaimNodeResizeInfeasible:
		if allocated != nil {
			newSize = *allocated
		}
	case corev1.PersistentVolumeClaimControllerResizeInProgress, corev1.PersistentVolumeClaimControllerResizeInfeasible:
		if allocated != nil {
			newSize = *allocated
		}
	default:
		if status == "" && allocated != nil {
			newSize = *allocated
		} else {
			if hasCondition(pvc, corev1.PersistentVolumeClaimFileSystemResizePending) {
				return newSize, true
			}
			newSize = spec
		}
	}
	return newSize, false
}

func hasCondition(pvc *corev1.PersistentVolumeClaim, t corev1.PersistentVolumeClaimConditionType) bool {
	for _, c := range pvc.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

var resizeConditions = map[corev1.PersistentVolumeClaimConditionType]bool{
	corev1.PersistentVolumeClaimResizing:                true,
	corev1.PersistentVolumeClaimFileSystemResizePending: true,
	corev1.PersistentVolumeClaimControllerResizeError:   true,
	corev1.PersistentVolumeClaimNodeResizeError:         true,
}

// mergeResizeConditions is the resizer's MergeResizeConditionsOfPVC: resize
// conditions in add replace those of the same type; other resize conditions are
// dropped unless keepOld; other conditions stay.
func mergeResizeConditions(old, add []corev1.PersistentVolumeClaimCondition, keepOld bool) []corev1.PersistentVolumeClaimCondition {
	adding := map[corev1.PersistentVolumeClaimConditionType]corev1.PersistentVolumeClaimCondition{}
	var order []corev1.PersistentVolumeClaimConditionType
	for _, c := range add {
		adding[c.Type] = c
		order = append(order, c.Type)
	}
	var out []corev1.PersistentVolumeClaimCondition
	for _, c := range old {
		if !resizeConditions[c.Type] {
			out = append(out, c)
			continue
		}
		if n, ok := adding[c.Type]; ok {
			out = append(out, n)
			delete(adding, c.Type)
		} else if keepOld {
			out = append(out, c)
		}
	}
	for _, t := range order {
		if c, ok := adding[t]; ok {
			out = append(out, c)
		}
	}
	return out
}

func setResizeStatus(pvc *corev1.PersistentVolumeClaim, status corev1.ClaimResourceStatus) {
	if pvc.Status.AllocatedResourceStatuses == nil {
		pvc.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{}
	}
	pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage] = status
}

func clearResizeStatus(pvc *corev1.PersistentVolumeClaim) {
	delete(pvc.Status.AllocatedResourceStatuses, corev1.ResourceStorage)
	if len(pvc.Status.AllocatedResourceStatuses) == 0 {
		pvc.Status.AllocatedResourceStatuses = nil
	}
}

// patchClaimStatus sends the strategic merge patch from old to new to the status
// subresource, optionally guarded by old's resourceVersion (util.PatchClaim).
func (d *Driver) patchClaimStatus(ctx context.Context, old, new *corev1.PersistentVolumeClaim, rvCheck bool) (*corev1.PersistentVolumeClaim, error) {
	oldData, err := json.Marshal(old)
	if err != nil {
		return old, err
	}
	newData, err := json.Marshal(new)
	if err != nil {
		return old, err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, old)
	if err != nil {
		return old, err
	}
	if rvCheck {
		var m map[string]interface{}
		if err := json.Unmarshal(patch, &m); err != nil {
			return old, err
		}
		meta, _ := m["metadata"].(map[string]interface{})
		if meta == nil {
			meta = map[string]interface{}{}
			m["metadata"] = meta
		}
		meta["resourceVersion"] = old.ResourceVersion
		if patch, err = json.Marshal(m); err != nil {
			return old, err
		}
	}
	updated, err := d.client.CoreV1().PersistentVolumeClaims(old.Namespace).Patch(ctx, old.Name,
		types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return old, fmt.Errorf("can't patch status of PVC %s/%s: %w", old.Namespace, old.Name, err)
	}
	return updated, nil
}

// ourVolume returns the claim's PV when it is a bound volume of this driver.
func (d *Driver) ourVolume(claim *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	if claim.Status.Phase != corev1.ClaimBound || claim.Spec.VolumeName == "" {
		return nil
	}
	pv, err := d.volumes.Get(claim.Spec.VolumeName)
	if err != nil || pv.Spec.CSI == nil || pv.Spec.CSI.Driver != DriverName {
		return nil
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace != claim.Namespace || ref.UID != claim.UID {
		return nil
	}
	return pv
}

func (d *Driver) syncResize(ctx context.Context, key string) (time.Duration, error) {
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
	spec := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	capacity := claim.Status.Capacity[corev1.ResourceStorage]
	uid := claim.UID
	if spec.Cmp(capacity) <= 0 {
		d.mu.Lock()
		delete(d.resizeOps, uid)
		delete(d.finalErr, uid)
		delete(d.slow, uid)
		d.mu.Unlock()
		return 0, nil
	}
	pvSize := pv.Spec.Capacity[corev1.ResourceStorage]
	d.mu.Lock()
	finalErr := d.finalErr[uid]
	slowSince, inSlow := d.slow[uid]
	op := d.resizeOps[uid]
	d.mu.Unlock()
	newSize, skip := resizeDecision(claim, pvSize, finalErr)
	if skip {
		return 0, nil
	}

	if op == nil || op.size.Cmp(newSize) != 0 {
		updateStatus := true
		if allocated, ok := claim.Status.AllocatedResources[corev1.ResourceStorage]; ok && allocated.Cmp(newSize) == 0 {
			if remaining := slowRetry - time.Since(slowSince); inSlow && remaining > 0 {
				// Failed as infeasible before, with this very size: retry slowly.
				return remaining, nil
			}
			updateStatus = false
		}
		updated := claim.DeepCopy()
		progress := corev1.PersistentVolumeClaimCondition{
			Type: corev1.PersistentVolumeClaimResizing, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
		updated.Status.Conditions = mergeResizeConditions(updated.Status.Conditions,
			[]corev1.PersistentVolumeClaimCondition{progress}, !updateStatus)
		if updateStatus {
			setResizeStatus(updated, corev1.PersistentVolumeClaimControllerResizeInProgress)
		}
		if updated.Status.AllocatedResources == nil {
			updated.Status.AllocatedResources = corev1.ResourceList{}
		}
		updated.Status.AllocatedResources[corev1.ResourceStorage] = newSize
		if _, err := d.patchClaimStatus(ctx, claim, updated, true); err != nil {
			return 0, fmt.Errorf("marking pvc %s as resizing failed: %w", key, err)
		}
		knobs, _, _ := d.classKnobs(pv.Spec.StorageClassName)
		d.mu.Lock()
		if updateStatus || d.resizeFrom[uid] == nil || d.resizeFrom[uid].size.Cmp(newSize) != 0 {
			d.resizeFrom[uid] = &resizeStart{at: time.Now(), size: newSize, pods: d.mountingPods(claim)}
		}
		op = &resizeOp{size: newSize, due: time.Now().Add(knobs.ResizeDelay)}
		d.resizeOps[uid] = op
		d.mu.Unlock()
		d.resizerRec.Event(claim, corev1.EventTypeNormal, "Resizing",
			fmt.Sprintf("External resizer is resizing volume %s", pv.Name))
	}
	if remaining := time.Until(op.due); remaining > 0 {
		return remaining, nil
	}
	d.mu.Lock()
	delete(d.resizeOps, uid)
	d.mu.Unlock()

	// ControllerExpandVolume.
	knobs, _, err := d.classKnobs(pv.Spec.StorageClassName)
	infeasible := false
	switch {
	case err != nil:
		err, infeasible = rpcError("InvalidArgument", "%v", err), true
	case knobs.Fail[OpResize]:
		err = rpcError("Internal", "simulated failure: StorageClass parameter %s includes %q", ParamFail, OpResize)
	case knobs.MaxSize != nil && newSize.Cmp(*knobs.MaxSize) > 0:
		err, infeasible = rpcError("OutOfRange", "requested size %d exceeds the maximum volume size %d (%s)",
			newSize.Value(), knobs.MaxSize.Value(), ParamMaxSize), true
	}
	// Work on the current claim: the patch above changed it.
	current, gerr := d.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if gerr != nil {
		return 0, gerr
	}
	if err != nil {
		err = fmt.Errorf("resize volume %q by resizer %q failed: %v", pv.Name, DriverName, err)
		d.mu.Lock()
		d.finalErr[uid] = true
		if infeasible {
			d.slow[uid] = time.Now()
		} else {
			delete(d.slow, uid)
		}
		d.mu.Unlock()
		failed := current.DeepCopy()
		if infeasible {
			setResizeStatus(failed, corev1.PersistentVolumeClaimControllerResizeInfeasible)
		}
		failed.Status.Conditions = mergeResizeConditions(failed.Status.Conditions, []corev1.PersistentVolumeClaimCondition{{
			Type: corev1.PersistentVolumeClaimControllerResizeError, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.Now(), Message: fmt.Sprintf("failed to expand pvc with %v", err),
		}}, true)
		if _, perr := d.patchClaimStatus(ctx, current, failed, false); perr != nil {
			err = fmt.Errorf("resizing failed in controller with %v but failed to update PVC %s with: %v", err, key, perr)
		}
		d.resizerRec.Event(current, corev1.EventTypeWarning, "VolumeResizeFailed", err.Error())
		if infeasible {
			return slowRetry, nil
		}
		return 0, err
	}
	d.mu.Lock()
	delete(d.finalErr, uid)
	delete(d.slow, uid)
	d.mu.Unlock()

	patch := fmt.Sprintf(`{"spec":{"capacity":{"storage":%q}}}`, newSize.String())
	if _, err := d.client.CoreV1().PersistentVolumes().Patch(ctx, pv.Name, types.StrategicMergePatchType,
		[]byte(patch), metav1.PatchOptions{}); err != nil {
		err = fmt.Errorf("updating capacity of PV %q to %s failed: %v", pv.Name, newSize.String(), err)
		d.resizerRec.Event(current, corev1.EventTypeWarning, "VolumeResizeFailed", err.Error())
		return 0, err
	}
	// The driver always needs the node part (NodeExpandVolume) afterwards.
	pending := current.DeepCopy()
	pending.Status.Conditions = mergeResizeConditions(pending.Status.Conditions, []corev1.PersistentVolumeClaimCondition{{
		Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue,
		LastTransitionTime: metav1.Now(),
		Message:            "Waiting for user to (re-)start a pod to finish file system resize of volume on node.",
	}}, true)
	setResizeStatus(pending, corev1.PersistentVolumeClaimNodeResizePending)
	if _, err := d.patchClaimStatus(ctx, current, pending, true); err != nil {
		err = fmt.Errorf("mark PVC %q as node expansion required failed: %v", key, err)
		d.resizerRec.Event(current, corev1.EventTypeWarning, "VolumeResizeFailed", err.Error())
		return 0, err
	}
	d.resizerRec.Event(current, corev1.EventTypeNormal, "FileSystemResizeRequired", "Require file system resize of volume on node")
	return 0, nil
}

// mountingPods are the UIDs of the live pods on simulated nodes that mount claim
// (it only reads informer caches, so it may be called with d.mu held).
func (d *Driver) mountingPods(claim *corev1.PersistentVolumeClaim) map[types.UID]bool {
	out := map[types.UID]bool{}
	for _, pod := range d.podsMounting(claim) {
		out[pod.UID] = true
	}
	return out
}

func (d *Driver) podsMounting(claim *corev1.PersistentVolumeClaim) []*corev1.Pod {
	objs, err := d.podIdx.ByIndex(indexByClaim, claim.Namespace+"/"+claim.Name)
	if err != nil {
		return nil
	}
	var pods []*corev1.Pod
	for _, obj := range objs {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Namespace != claim.Namespace || pod.DeletionTimestamp != nil {
			continue
		}
		if _, ours := d.kubeletRec[pod.Spec.NodeName]; !ours {
			continue
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		pods = append(pods, pod)
	}
	return pods
}
