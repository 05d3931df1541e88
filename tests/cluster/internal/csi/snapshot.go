package csi

// Snapshots, as the snapshot-controller (pkg/common-controller) and the
// csi-snapshotter sidecar (pkg/sidecar-controller) of
// kubernetes-csi/external-snapshotter write them, on the snapshot.storage.k8s.io/v1
// CRDs. The objects are read through dynamic informers into the local structs
// below, which mirror the v1 types of
// github.com/kubernetes-csi/external-snapshotter/client/v8 field for field (JSON
// names included) for the fields used here.
//
// Left out: pre-provisioned snapshots (source.volumeSnapshotContentName),
// VolumeGroupSnapshots, secrets, distributed snapshotting.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Finalizers and annotations of the snapshot components (pkg/utils/util.go).
const (
	contentFinalizer        = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
	snapshotBoundFinalizer  = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
	snapshotSourceFinalizer = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
	pvcSourceFinalizer      = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
	annDefaultSnapshotClass = "snapshot.storage.kubernetes.io/is-default-class"
	annBeingDeleted         = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
	annBeingCreated         = "snapshot.storage.kubernetes.io/volumesnapshot-being-created"
)

type volumeSnapshot struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              volumeSnapshotSpec    `json:"spec"`
	Status            *volumeSnapshotStatus `json:"status,omitempty"`
}

type volumeSnapshotSpec struct {
	Source                  volumeSnapshotSource `json:"source"`
	VolumeSnapshotClassName *string              `json:"volumeSnapshotClassName,omitempty"`
}

type volumeSnapshotSource struct {
	PersistentVolumeClaimName *string `json:"persistentVolumeClaimName,omitempty"`
	VolumeSnapshotContentName *string `json:"volumeSnapshotContentName,omitempty"`
}

type volumeSnapshotStatus struct {
	BoundVolumeSnapshotContentName *string              `json:"boundVolumeSnapshotContentName,omitempty"`
	CreationTime                   *metav1.Time         `json:"creationTime,omitempty"`
	ReadyToUse                     *bool                `json:"readyToUse,omitempty"`
	RestoreSize                    *resource.Quantity   `json:"restoreSize,omitempty"`
	Error                          *volumeSnapshotError `json:"error,omitempty"`
	VolumeGroupSnapshotName        *string              `json:"volumeGroupSnapshotName,omitempty"`
}

type volumeSnapshotError struct {
	Time    *metav1.Time `json:"time,omitempty"`
	Message *string      `json:"message,omitempty"`
}

type volumeSnapshotClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Driver            string            `json:"driver"`
	Parameters        map[string]string `json:"parameters,omitempty"`
	DeletionPolicy    string            `json:"deletionPolicy"`
}

type volumeSnapshotContent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              volumeSnapshotContentSpec    `json:"spec"`
	Status            *volumeSnapshotContentStatus `json:"status,omitempty"`
}

type volumeSnapshotContentSpec struct {
	VolumeSnapshotRef       corev1.ObjectReference       `json:"volumeSnapshotRef"`
	DeletionPolicy          string                       `json:"deletionPolicy"`
	Driver                  string                       `json:"driver"`
	VolumeSnapshotClassName *string                      `json:"volumeSnapshotClassName,omitempty"`
	Source                  volumeSnapshotContentSource  `json:"source"`
	SourceVolumeMode        *corev1.PersistentVolumeMode `json:"sourceVolumeMode,omitempty"`
}

type volumeSnapshotContentSource struct {
	VolumeHandle   *string `json:"volumeHandle,omitempty"`
	SnapshotHandle *string `json:"snapshotHandle,omitempty"`
}

type volumeSnapshotContentStatus struct {
	SnapshotHandle            *string              `json:"snapshotHandle,omitempty"`
	CreationTime              *int64               `json:"creationTime,omitempty"`
	RestoreSize               *int64               `json:"restoreSize,omitempty"`
	ReadyToUse                *bool                `json:"readyToUse,omitempty"`
	Error                     *volumeSnapshotError `json:"error,omitempty"`
	VolumeGroupSnapshotHandle *string              `json:"volumeGroupSnapshotHandle,omitempty"`
}

func fromUnstructured(obj runtime.Object, into interface{}) error {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("unexpected object %T", obj)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

func toSnapshot(obj runtime.Object) (*volumeSnapshot, error) {
	s := &volumeSnapshot{}
	return s, fromUnstructured(obj, s)
}

func toContent(obj runtime.Object) (*volumeSnapshotContent, error) {
	c := &volumeSnapshotContent{}
	return c, fromUnstructured(obj, c)
}

func toSnapshotClass(obj runtime.Object) (*volumeSnapshotClass, error) {
	c := &volumeSnapshotClass{}
	return c, fromUnstructured(obj, c)
}

func toUnstructured(obj interface{}) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

func snapshotReady(s *volumeSnapshot) bool {
	return s.Status != nil && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
}

func contentReady(c *volumeSnapshotContent) bool {
	return c.Status != nil && c.Status.ReadyToUse != nil && *c.Status.ReadyToUse
}

func contentName(s *volumeSnapshot) string { return "snapcontent-" + string(s.UID) }

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// patch sends a JSON merge patch; ns "" for cluster-scoped objects.
func (d *Driver) patch(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, body map[string]interface{}, subresources ...string) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if ns == "" {
		return d.dyn.Resource(gvr).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}, subresources...)
	}
	return d.dyn.Resource(gvr).Namespace(ns).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}, subresources...)
}

// setFinalizers writes the finalizer list, guarded by resourceVersion.
func (d *Driver) setFinalizers(ctx context.Context, gvr schema.GroupVersionResource, meta metav1.ObjectMeta, finalizers []string) error {
	if finalizers == nil {
		finalizers = []string{}
	}
	_, err := d.patch(ctx, gvr, meta.Namespace, meta.Name, map[string]interface{}{
		"metadata": map[string]interface{}{"finalizers": finalizers, "resourceVersion": meta.ResourceVersion}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (d *Driver) setAnnotation(ctx context.Context, gvr schema.GroupVersionResource, meta metav1.ObjectMeta, key string, value *string) (*unstructured.Unstructured, error) {
	var v interface{}
	if value != nil {
		v = *value
	}
	return d.patch(ctx, gvr, meta.Namespace, meta.Name, map[string]interface{}{
		"metadata": map[string]interface{}{"annotations": map[string]interface{}{key: v}}})
}

func without(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == s })
}

// ---------------------------------------------------------------------------
// snapshot-controller

func (d *Driver) onContent(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	d.contentCtrl.add(u.GetName())
	d.sidecar.add(u.GetName())
	if c, err := toContent(u); err == nil && c.Spec.VolumeSnapshotRef.Name != "" {
		d.snapshotCtrl.add(c.Spec.VolumeSnapshotRef.Namespace + "/" + c.Spec.VolumeSnapshotRef.Name)
	}
}

func (d *Driver) enqueueSnapshotsOfClaim(claim *corev1.PersistentVolumeClaim) {
	if d.snapshots == nil {
		return
	}
	objs, err := d.snapshots.ByNamespace(claim.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	source, _ := dataSource(claim)
	for _, obj := range objs {
		s, err := toSnapshot(obj)
		if err != nil {
			continue
		}
		if str(s.Spec.Source.PersistentVolumeClaimName) == claim.Name || s.Name == source {
			d.snapshotCtrl.add(s.Namespace + "/" + s.Name)
		}
	}
}

// snapshotError sets status.error (and readyToUse false) and emits the event, once
// per distinct message (updateSnapshotErrorStatusWithEvent).
func (d *Driver) snapshotError(ctx context.Context, obj *unstructured.Unstructured, s *volumeSnapshot, reason, message string) {
	if s.Status != nil && s.Status.Error != nil && str(s.Status.Error.Message) == message {
		return
	}
	status := s.Status
	if status == nil {
		status = &volumeSnapshotStatus{}
	}
	now := metav1.Now()
	status.Error = &volumeSnapshotError{Time: &now, Message: &message}
	status.ReadyToUse = ptrTo(false)
	if err := d.writeSnapshotStatus(ctx, obj, status); err != nil {
		klog.InfoS("csi: updating VolumeSnapshot error status", "snapshot", klog.KObj(s), "err", err)
	}
	d.snapCtrlRec.Event(obj, corev1.EventTypeWarning, reason, message)
}

func ptrTo[T any](v T) *T { return &v }

// statusPatch is a JSON merge patch that sets status to the given struct, with
// explicit nulls for fields the old status had and the new one lacks.
func statusPatch(obj *unstructured.Unstructured, status interface{}) (map[string]interface{}, error) {
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return nil, err
	}
	old, _, _ := unstructured.NestedMap(obj.Object, "status")
	for k := range old {
		if _, ok := st[k]; !ok {
			st[k] = nil
		}
	}
	return map[string]interface{}{"status": st}, nil
}

func (d *Driver) writeSnapshotStatus(ctx context.Context, obj *unstructured.Unstructured, status *volumeSnapshotStatus) error {
	body, err := statusPatch(obj, status)
	if err != nil {
		return err
	}
	_, err = d.patch(ctx, snapshotsGVR, obj.GetNamespace(), obj.GetName(), body, "status")
	return err
}

func (d *Driver) syncSnapshot(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	robj, err := d.snapshots.ByNamespace(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	obj := robj.(*unstructured.Unstructured)
	s, err := toSnapshot(obj)
	if err != nil {
		return 0, err
	}
	if err := d.removeClaimFinalizer(ctx, s, false); err != nil {
		d.snapCtrlRec.Event(obj, corev1.EventTypeWarning, "ErrorPVCFinalizer", "Error check and remove PVC Finalizer for VolumeSnapshot")
	}
	if s.DeletionTimestamp != nil {
		return d.deleteSnapshot(ctx, obj, s)
	}
	claimName := str(s.Spec.Source.PersistentVolumeClaimName)
	if claimName == "" {
		// Pre-provisioned snapshots are not simulated.
		d.snapshotError(ctx, obj, s, "SnapshotContentMissing",
			"pre-provisioned snapshots (source.volumeSnapshotContentName) are not simulated by the kcluster snapshot-controller")
		return 0, nil
	}

	if s.Spec.VolumeSnapshotClassName == nil {
		return d.setDefaultClass(ctx, obj, s)
	}

	var content *volumeSnapshotContent
	if cobj, err := d.contents.Get(contentName(s)); err == nil {
		if content, err = toContent(cobj); err != nil {
			return 0, err
		}
		ref := content.Spec.VolumeSnapshotRef
		if ref.Name != s.Name || ref.Namespace != s.Namespace || ref.UID != s.UID {
			msg := fmt.Sprintf("VolumeSnapshotContent [%s] is bound to a different snapshot", content.Name)
			d.snapshotError(ctx, obj, s, "SnapshotContentMisbound", msg)
			return 0, fmt.Errorf("%s", msg)
		}
	}

	// Finalizers first (checkandAddSnapshotFinalizers).
	fins := slices.Clone(s.Finalizers)
	if !slices.Contains(fins, snapshotSourceFinalizer) {
		fins = append(fins, snapshotSourceFinalizer)
	}
	if content != nil && content.Spec.DeletionPolicy == "Delete" && !slices.Contains(fins, snapshotBoundFinalizer) {
		fins = append(fins, snapshotBoundFinalizer)
	}
	if len(fins) != len(s.Finalizers) {
		if err := d.setFinalizers(ctx, snapshotsGVR, s.ObjectMeta, fins); err != nil {
			d.snapCtrlRec.Event(obj, corev1.EventTypeWarning, "SnapshotFinalizerError",
				fmt.Sprintf("Failed to check and update snapshot: %v", err))
			return 0, err
		}
		return 0, nil // the update brings the snapshot back
	}

	if content == nil {
		return d.createContent(ctx, obj, s, claimName)
	}
	return 0, d.updateSnapshotStatus(ctx, obj, s, content)
}

// setDefaultClass fills in the default VolumeSnapshotClass of the source volume's
// driver (SetDefaultSnapshotClass).
func (d *Driver) setDefaultClass(ctx context.Context, obj *unstructured.Unstructured, s *volumeSnapshot) (time.Duration, error) {
	fail := func(err error) (time.Duration, error) {
		d.snapshotError(ctx, obj, s, "SetDefaultSnapshotClassFailed", fmt.Sprintf("Failed to set default snapshot class with error %v", err))
		return 0, err
	}
	pv, err := d.sourceVolume(s.Namespace, str(s.Spec.Source.PersistentVolumeClaimName))
	if err != nil {
		return fail(err)
	}
	if pv.Spec.CSI == nil {
		return fail(fmt.Errorf("snapshotting non-CSI volumes is not supported, snapshot:%s/%s", s.Namespace, s.Name))
	}
	objs, err := d.snapClass.List(labels.Everything())
	if err != nil {
		return fail(err)
	}
	var defaults []string
	for _, o := range objs {
		c, err := toSnapshotClass(o)
		if err == nil && c.Annotations[annDefaultSnapshotClass] == "true" && c.Driver == pv.Spec.CSI.Driver {
			defaults = append(defaults, c.Name)
		}
	}
	switch len(defaults) {
	case 0:
		return fail(fmt.Errorf("cannot find default snapshot class"))
	case 1:
	default:
		return fail(fmt.Errorf("%d default snapshot classes were found", len(defaults)))
	}
	_, err = d.patch(ctx, snapshotsGVR, s.Namespace, s.Name, map[string]interface{}{
		"spec": map[string]interface{}{"volumeSnapshotClassName": defaults[0]}})
	return 0, err
}

// sourceVolume is the bound PV of a snapshot's source claim.
func (d *Driver) sourceVolume(ns, claimName string) (*corev1.PersistentVolume, error) {
	claim, err := d.claims.PersistentVolumeClaims(ns).Get(claimName)
	if err != nil {
		return nil, fmt.Errorf("failed to retrieve PVC %s from the lister: %q", claimName, err.Error())
	}
	if claim.Status.Phase != corev1.ClaimBound {
		return nil, fmt.Errorf("the PVC %s is not yet bound to a PV, will not attempt to take a snapshot", claimName)
	}
	pv, err := d.volumes.Get(claim.Spec.VolumeName)
	if err != nil {
		return nil, fmt.Errorf("failed to retrieve PV %s from the API server: %q", claim.Spec.VolumeName, err.Error())
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Name != claim.Name || ref.Namespace != claim.Namespace || (ref.UID != "" && ref.UID != claim.UID) {
		return nil, fmt.Errorf("claim in dataSource not bound or invalid")
	}
	return pv, nil
}

func (d *Driver) createContent(ctx context.Context, obj *unstructured.Unstructured, s *volumeSnapshot, claimName string) (time.Duration, error) {
	fail := func(err error) (time.Duration, error) {
		d.snapshotError(ctx, obj, s, "SnapshotContentCreationFailed", fmt.Sprintf("Failed to create snapshot content with error %v", err))
		return 0, err
	}
	className := *s.Spec.VolumeSnapshotClassName
	cobj, err := d.snapClass.Get(className)
	if err != nil {
		return fail(fmt.Errorf("failed to get input parameters to create snapshot %s: %q", s.Name, err.Error()))
	}
	class, err := toSnapshotClass(cobj)
	if err != nil {
		return fail(err)
	}
	pv, err := d.sourceVolume(s.Namespace, claimName)
	if err != nil {
		return fail(fmt.Errorf("failed to get input parameters to create snapshot %s: %q", s.Name, err.Error()))
	}
	if pv.Spec.CSI == nil {
		return fail(fmt.Errorf("cannot find CSI PersistentVolumeSource for volume %s", pv.Name))
	}
	// ensurePVCFinalizer: the claim stays until the snapshot is cut.
	claim, err := d.claims.PersistentVolumeClaims(s.Namespace).Get(claimName)
	if err != nil {
		return fail(err)
	}
	if !slices.Contains(claim.Finalizers, pvcSourceFinalizer) {
		if claim.DeletionTimestamp != nil {
			return fail(fmt.Errorf("cannot add finalizer on claim because it is being deleted"))
		}
		c := claim.DeepCopy()
		c.Finalizers = append(c.Finalizers, pvcSourceFinalizer)
		if _, err := d.client.CoreV1().PersistentVolumeClaims(c.Namespace).Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			return fail(fmt.Errorf("snapshot controller failed to update %s on API server: %v", c.Name, err))
		}
	}
	content := &volumeSnapshotContent{
		TypeMeta:   metav1.TypeMeta{APIVersion: snapshotGV.String(), Kind: "VolumeSnapshotContent"},
		ObjectMeta: metav1.ObjectMeta{Name: contentName(s)},
		Spec: volumeSnapshotContentSpec{
			VolumeSnapshotRef: corev1.ObjectReference{
				Kind: "VolumeSnapshot", APIVersion: snapshotGV.String(),
				Namespace: s.Namespace, Name: s.Name, UID: s.UID, ResourceVersion: s.ResourceVersion,
			},
			DeletionPolicy:          class.DeletionPolicy,
			Driver:                  class.Driver,
			VolumeSnapshotClassName: &class.Name,
			Source:                  volumeSnapshotContentSource{VolumeHandle: &pv.Spec.CSI.VolumeHandle},
			SourceVolumeMode:        pv.Spec.VolumeMode,
		},
	}
	u, err := toUnstructured(content)
	if err != nil {
		return fail(err)
	}
	delete(u.Object, "status")
	if _, err := d.dyn.Resource(contentsGVR).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		msg := fmt.Sprintf("Error creating volume snapshot content object for snapshot %s/%s: %v.", s.Namespace, s.Name, err)
		d.snapCtrlRec.Event(obj, corev1.EventTypeWarning, "CreateSnapshotContentFailed", msg)
		return fail(fmt.Errorf("snapshot controller failed to update %s/%s on API server: %v", s.Namespace, s.Name, err))
	}
	d.snapCtrlRec.Event(obj, corev1.EventTypeNormal, "CreatingSnapshot",
		fmt.Sprintf("Waiting for a snapshot %s/%s to be created by the CSI driver.", s.Namespace, s.Name))
	status := s.Status
	if status == nil {
		status = &volumeSnapshotStatus{}
	}
	status.BoundVolumeSnapshotContentName = ptrTo(contentName(s))
	if status.ReadyToUse == nil {
		status.ReadyToUse = ptrTo(false)
	}
	if err := d.writeSnapshotStatus(ctx, obj, status); err != nil {
		d.snapshotError(ctx, obj, s, "SnapshotStatusUpdateFailed", fmt.Sprintf("Snapshot status update failed, %v", err))
		return 0, err
	}
	return 0, nil
}

// updateSnapshotStatus copies the content's status to the snapshot, with the
// SnapshotCreated and SnapshotReady events.
func (d *Driver) updateSnapshotStatus(ctx context.Context, obj *unstructured.Unstructured, s *volumeSnapshot, c *volumeSnapshotContent) error {
	old := s.Status
	status := &volumeSnapshotStatus{}
	if old != nil {
		cp := *old
		status = &cp
	}
	changed := old == nil
	if status.BoundVolumeSnapshotContentName == nil {
		status.BoundVolumeSnapshotContentName = ptrTo(c.Name)
		changed = true
	}
	ready := false
	var createdAt *metav1.Time
	var size *int64
	var cerr *volumeSnapshotError
	if c.Status != nil {
		ready = c.Status.ReadyToUse != nil && *c.Status.ReadyToUse
		if c.Status.CreationTime != nil {
			t := metav1.NewTime(time.Unix(0, *c.Status.CreationTime))
			createdAt = &t
		}
		size, cerr = c.Status.RestoreSize, c.Status.Error
	}
	if status.CreationTime == nil && createdAt != nil {
		status.CreationTime = createdAt
		changed = true
	}
	if status.ReadyToUse == nil || *status.ReadyToUse != ready {
		status.ReadyToUse = ptrTo(ready)
		changed = true
		if ready {
			status.Error = nil
		}
	}
	if size != nil && (status.RestoreSize == nil || (status.RestoreSize.IsZero() && *size > 0)) {
		status.RestoreSize = resource.NewQuantity(*size, resource.BinarySI)
		changed = true
	}
	switch {
	case cerr != nil && (status.Error == nil || str(status.Error.Message) != str(cerr.Message)):
		e := *cerr
		status.Error = &e
		changed = true
	case cerr == nil && status.Error != nil && old != nil && old.Error != nil && c.Status != nil:
		status.Error = nil
		changed = true
	}
	if !changed {
		if ready {
			return d.removeClaimFinalizer(ctx, s, false)
		}
		return nil
	}
	wasCreated := old != nil && old.CreationTime != nil
	wasReady := old != nil && old.ReadyToUse != nil && *old.ReadyToUse
	if !wasCreated && status.CreationTime != nil {
		d.snapCtrlRec.Event(obj, corev1.EventTypeNormal, "SnapshotCreated",
			fmt.Sprintf("Snapshot %s/%s was successfully created by the CSI driver.", s.Namespace, s.Name))
	}
	if !wasReady && ready {
		d.snapCtrlRec.Event(obj, corev1.EventTypeNormal, "SnapshotReady",
			fmt.Sprintf("Snapshot %s/%s is ready to use.", s.Namespace, s.Name))
	}
	return d.writeSnapshotStatus(ctx, obj, status)
}

// removeClaimFinalizer drops the source claim's finalizer once no snapshot of it
// is still being cut (checkandRemovePVCFinalizer).
func (d *Driver) removeClaimFinalizer(ctx context.Context, s *volumeSnapshot, skipCurrent bool) error {
	claimName := str(s.Spec.Source.PersistentVolumeClaimName)
	if claimName == "" {
		return nil
	}
	claim, err := d.claims.PersistentVolumeClaims(s.Namespace).Get(claimName)
	if err != nil || !slices.Contains(claim.Finalizers, pvcSourceFinalizer) {
		return nil
	}
	objs, err := d.snapshots.ByNamespace(s.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, o := range objs {
		other, err := toSnapshot(o)
		if err != nil || (skipCurrent && other.Name == s.Name) {
			continue
		}
		if str(other.Spec.Source.PersistentVolumeClaimName) == claimName && !snapshotReady(other) {
			return nil // still in use as a source
		}
	}
	c, err := d.client.CoreV1().PersistentVolumeClaims(claim.Namespace).Get(ctx, claimName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	c.Finalizers = without(c.Finalizers, pvcSourceFinalizer)
	_, err = d.client.CoreV1().PersistentVolumeClaims(c.Namespace).Update(ctx, c, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// deleteSnapshot is processSnapshotWithDeletionTimestamp: wait while a claim is
// being restored from the snapshot, mark the content, delete it when the policy
// says Delete, and drop the snapshot's finalizers (the bound one only once the
// content is gone).
func (d *Driver) deleteSnapshot(ctx context.Context, obj *unstructured.Unstructured, s *volumeSnapshot) (time.Duration, error) {
	if !slices.Contains(s.Finalizers, snapshotSourceFinalizer) && !slices.Contains(s.Finalizers, snapshotBoundFinalizer) {
		return 0, nil
	}
	name := contentName(s)
	if s.Status != nil && s.Status.BoundVolumeSnapshotContentName != nil {
		name = *s.Status.BoundVolumeSnapshotContentName
	}
	var content *volumeSnapshotContent
	if cobj, err := d.contents.Get(name); err == nil {
		c, err := toContent(cobj)
		if err != nil {
			return 0, err
		}
		if ref := c.Spec.VolumeSnapshotRef; ref.Name == s.Name && ref.Namespace == s.Namespace && ref.UID == s.UID {
			content = c
		}
	}
	deleteContent := content != nil && content.Spec.DeletionPolicy == "Delete"
	if content != nil && d.restoringFrom(s) {
		d.snapCtrlRec.Event(obj, corev1.EventTypeWarning, "SnapshotDeletePending", "Snapshot is being used to restore a PVC")
		return 5 * time.Second, nil
	}
	if content != nil && content.Annotations[annBeingDeleted] != "yes" {
		if _, err := d.setAnnotation(ctx, contentsGVR, content.ObjectMeta, annBeingDeleted, ptrTo("yes")); err != nil && !apierrors.IsNotFound(err) {
			return 0, err
		}
	}
	if deleteContent && content.DeletionTimestamp == nil {
		err := d.dyn.Resource(contentsGVR).Delete(ctx, content.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			d.snapCtrlRec.Event(obj, corev1.EventTypeWarning, "SnapshotContentObjectDeleteError", "Failed to delete snapshot content API object")
			return 0, fmt.Errorf("failed to delete VolumeSnapshotContent %s from API server: %q", content.Name, err)
		}
	}
	if err := d.removeClaimFinalizer(ctx, s, true); err != nil {
		d.snapCtrlRec.Event(obj, corev1.EventTypeWarning, "ErrorPVCFinalizer", "Error check and remove PVC Finalizer for VolumeSnapshot")
		return 0, err
	}
	fins := without(s.Finalizers, snapshotSourceFinalizer)
	if !deleteContent {
		fins = without(fins, snapshotBoundFinalizer)
	}
	if len(fins) == len(s.Finalizers) {
		return 0, nil // waiting for the content to go
	}
	return 0, d.setFinalizers(ctx, snapshotsGVR, s.ObjectMeta, fins)
}

// restoringFrom reports whether a Pending claim in the snapshot's namespace uses
// it as its data source (isVolumeBeingCreatedFromSnapshot).
func (d *Driver) restoringFrom(s *volumeSnapshot) bool {
	claims, err := d.claims.PersistentVolumeClaims(s.Namespace).List(labels.Everything())
	if err != nil {
		return false
	}
	for _, c := range claims {
		if name, _ := dataSource(c); name == s.Name && c.Status.Phase == corev1.ClaimPending {
			return true
		}
	}
	return false
}

// syncContent is the snapshot-controller's content sync: it adds the content's
// protection finalizer.
func (d *Driver) syncContent(ctx context.Context, name string) (time.Duration, error) {
	cobj, err := d.contents.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	c, err := toContent(cobj)
	if err != nil {
		return 0, err
	}
	if c.Spec.VolumeSnapshotRef.UID == "" || c.DeletionTimestamp != nil || slices.Contains(c.Finalizers, contentFinalizer) {
		return 0, nil
	}
	return 0, d.setFinalizers(ctx, contentsGVR, c.ObjectMeta, append(slices.Clone(c.Finalizers), contentFinalizer))
}

// ---------------------------------------------------------------------------
// csi-snapshotter

// snapshotKnobs are the fault knobs of a content: its VolumeSnapshotClass's
// parameters over those of the source volume's StorageClass.
func (d *Driver) snapshotKnobs(c *volumeSnapshotContent) (Knobs, *corev1.PersistentVolume, error) {
	var scParams, vscParams map[string]string
	var pv *corev1.PersistentVolume
	if c.Spec.Source.VolumeHandle != nil {
		if objs, err := d.volumeIdx.ByIndex(indexByHandle, *c.Spec.Source.VolumeHandle); err == nil && len(objs) > 0 {
			pv = objs[0].(*corev1.PersistentVolume)
			if sc, err := d.classes.Get(pv.Spec.StorageClassName); err == nil {
				scParams = sc.Parameters
			}
		}
	}
	if c.Spec.VolumeSnapshotClassName != nil {
		if o, err := d.snapClass.Get(*c.Spec.VolumeSnapshotClassName); err == nil {
			if vsc, err := toSnapshotClass(o); err == nil {
				vscParams = vsc.Parameters
			}
		}
	}
	k, err := ParseKnobs(merged(scParams, vscParams))
	return k, pv, err
}

func (d *Driver) writeContentStatus(ctx context.Context, obj *unstructured.Unstructured, status *volumeSnapshotContentStatus) (*unstructured.Unstructured, error) {
	body, err := statusPatch(obj, status)
	if err != nil {
		return nil, err
	}
	return d.patch(ctx, contentsGVR, "", obj.GetName(), body, "status")
}

func (d *Driver) syncSidecar(ctx context.Context, name string) (time.Duration, error) {
	robj, err := d.contents.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	obj := robj.(*unstructured.Unstructured)
	c, err := toContent(obj)
	if err != nil {
		return 0, err
	}
	if c.Spec.Driver != DriverName {
		return 0, nil
	}
	if c.DeletionTimestamp != nil {
		if c.Spec.DeletionPolicy == "Delete" && c.Status != nil && c.Status.SnapshotHandle != nil {
			// DeleteSnapshot: the copy goes before the content's finalizer.
			if err := d.data.deleteSnapshot(*c.Status.SnapshotHandle); err != nil {
				d.snapSideRec.Event(obj, corev1.EventTypeWarning, "SnapshotDeleteError",
					fmt.Sprintf("Failed to delete snapshot: %v", err))
				return 0, err
			}
			klog.InfoS("csi: snapshot deleted", "content", c.Name, "handle", *c.Status.SnapshotHandle)
		}
		if !slices.Contains(c.Finalizers, contentFinalizer) {
			return 0, nil
		}
		return 0, d.setFinalizers(ctx, contentsGVR, c.ObjectMeta, without(c.Finalizers, contentFinalizer))
	}
	if c.Spec.Source.VolumeHandle == nil {
		return 0, nil // pre-provisioned: not simulated
	}
	if c.Status == nil || c.Status.SnapshotHandle == nil {
		return d.createSnapshot(ctx, obj, c)
	}
	if contentReady(c) {
		if _, ok := c.Annotations[annBeingCreated]; ok {
			_, err := d.setAnnotation(ctx, contentsGVR, c.ObjectMeta, annBeingCreated, nil)
			return 0, err
		}
		return 0, nil
	}
	// Cut but still "uploading": ready once snapshot-delay has passed.
	knobs, _, _ := d.snapshotKnobs(c)
	created := time.Unix(0, 0)
	if c.Status.CreationTime != nil {
		created = time.Unix(0, *c.Status.CreationTime)
	}
	if remaining := time.Until(created.Add(knobs.SnapshotDelay)); remaining > 0 {
		return remaining, nil
	}
	status := *c.Status
	status.ReadyToUse = ptrTo(true)
	status.Error = nil
	_, err = d.writeContentStatus(ctx, obj, &status)
	return 0, err
}

// createSnapshot is CreateSnapshot through the "driver" (createSnapshotWrapper).
func (d *Driver) createSnapshot(ctx context.Context, obj *unstructured.Unstructured, c *volumeSnapshotContent) (time.Duration, error) {
	knobs, pv, kerr := d.snapshotKnobs(c)
	if _, ok := c.Annotations[annBeingCreated]; !ok {
		updated, err := d.setAnnotation(ctx, contentsGVR, c.ObjectMeta, annBeingCreated, ptrTo("yes"))
		if err != nil {
			return 0, fmt.Errorf("failed to add VolumeSnapshotBeingCreated annotation on the content %s: %q", c.Name, err.Error())
		}
		obj = updated
	}
	var err error
	switch {
	case kerr != nil:
		err = rpcError("InvalidArgument", "%v", kerr)
	case knobs.Fail[OpSnapshot]:
		err = rpcError("Internal", "simulated failure: class parameter %s includes %q", ParamFail, OpSnapshot)
	case pv == nil:
		err = rpcError("NotFound", "source volume %s not found", *c.Spec.Source.VolumeHandle)
	}
	handle := "snap-" + string(c.Spec.VolumeSnapshotRef.UID)
	if err == nil {
		// CreateSnapshot itself: the volume's content as it is now, copied
		// before the content's status names the snapshot.
		err = d.data.cutSnapshot(*c.Spec.Source.VolumeHandle, handle)
	}
	if err != nil {
		// A final error: the request is no longer in flight.
		if updated, aerr := d.setAnnotation(ctx, contentsGVR, c.ObjectMeta, annBeingCreated, nil); aerr == nil {
			obj = updated
		}
		msg := fmt.Sprintf("Failed to create snapshot: failed to take snapshot of the volume %s: %q", *c.Spec.Source.VolumeHandle, err.Error())
		if c.Status == nil || c.Status.Error == nil || str(c.Status.Error.Message) != msg {
			status := &volumeSnapshotContentStatus{}
			if c.Status != nil {
				cp := *c.Status
				status = &cp
			}
			now := metav1.Now()
			status.Error = &volumeSnapshotError{Time: &now, Message: &msg}
			status.ReadyToUse = ptrTo(false)
			if _, werr := d.writeContentStatus(ctx, obj, status); werr != nil {
				klog.InfoS("csi: updating VolumeSnapshotContent error status", "content", c.Name, "err", werr)
			}
			d.snapSideRec.Event(obj, corev1.EventTypeWarning, "SnapshotCreationFailed", msg)
		}
		return 0, fmt.Errorf("%s", msg)
	}
	size := pv.Spec.Capacity[corev1.ResourceStorage]
	status := &volumeSnapshotContentStatus{
		SnapshotHandle: ptrTo(handle),
		CreationTime:   ptrTo(time.Now().UnixNano()),
		RestoreSize:    ptrTo(size.Value()),
		ReadyToUse:     ptrTo(knobs.SnapshotDelay == 0),
	}
	updated, err := d.writeContentStatus(ctx, obj, status)
	if err != nil {
		return 0, fmt.Errorf("error updating status for volume snapshot content %s: %v", c.Name, err)
	}
	if _, err := d.setAnnotation(ctx, contentsGVR, metav1.ObjectMeta{Name: updated.GetName()}, annBeingCreated, nil); err != nil {
		return 0, err
	}
	return knobs.SnapshotDelay, nil
}
