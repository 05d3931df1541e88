package csi

// The external-provisioner part: claims the PV controller handed to this driver
// (annotation volume.kubernetes.io/storage-provisioner) get a PersistentVolume
// pvc-<claim uid>; Released volumes with reclaim policy Delete are deleted again.
// Modelled on sigs.k8s.io/sig-storage-lib-external-provisioner (controller.go) and
// kubernetes-csi/external-provisioner (pkg/controller/controller.go).

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// rpcError renders an error the way a gRPC status error prints.
func rpcError(code, format string, args ...interface{}) error {
	return fmt.Errorf("rpc error: code = %s desc = %s", code, fmt.Sprintf(format, args...))
}

func claimClass(claim *corev1.PersistentVolumeClaim) string {
	if claim.Spec.StorageClassName != nil {
		return *claim.Spec.StorageClassName
	}
	return claim.Annotations[corev1.BetaStorageClassAnnotation]
}

// shouldProvision is the provisioner library's shouldProvision for this driver.
func shouldProvision(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) bool {
	if claim.Spec.VolumeName != "" || claim.DeletionTimestamp != nil {
		return false
	}
	p, ok := claim.Annotations[annStorageProvisioner]
	if !ok {
		p = claim.Annotations[annBetaStorageProvisioner]
	}
	if p != DriverName || class == nil || class.Provisioner != DriverName {
		return false
	}
	if class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
		return claim.Annotations[annSelectedNode] != ""
	}
	return true
}

// allowedZones are the zones a class allows (allowedTopologies on the driver's key).
func allowedZones(class *storagev1.StorageClass) []string {
	if len(class.AllowedTopologies) == 0 {
		return ZoneNames
	}
	var zones []string
	for _, term := range class.AllowedTopologies {
		for _, expr := range term.MatchLabelExpressions {
			if expr.Key != TopologyKey {
				continue
			}
			for _, z := range expr.Values {
				if slices.Contains(ZoneNames, z) && !slices.Contains(zones, z) {
					zones = append(zones, z)
				}
			}
		}
	}
	return zones
}

func (d *Driver) syncProvision(ctx context.Context, key string) (time.Duration, error) {
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
	class, err := d.classes.Get(claimClass(claim))
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	if err != nil {
		class = nil
	}
	if !shouldProvision(claim, class) {
		d.endProvision(claim)
		return 0, nil
	}
	pvName := "pvc-" + string(claim.UID)
	if _, err := d.volumes.Get(pvName); err == nil {
		d.endProvision(claim)
		return 0, nil
	}

	d.mu.Lock()
	started, inFlight := d.provOps[claim.UID]
	if !inFlight {
		started = time.Now()
		d.provOps[claim.UID] = started
	}
	d.mu.Unlock()
	if !inFlight {
		d.provRec.Event(claim, corev1.EventTypeNormal, "Provisioning",
			fmt.Sprintf("External provisioner is provisioning volume for claim %q", klog.KObj(claim)))
	}
	fail := func(err error) (time.Duration, error) {
		d.endProvision(claim)
		d.provRec.Event(claim, corev1.EventTypeWarning, "ProvisioningFailed",
			fmt.Sprintf("failed to provision volume with StorageClass %q: %v", class.Name, err))
		return 0, err
	}

	knobs, err := ParseKnobs(class.Parameters)
	if err != nil {
		return fail(rpcError("InvalidArgument", "%v", err))
	}
	zone, err := d.pickZone(claim, class)
	if err != nil {
		return fail(err)
	}
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if size.Sign() <= 0 {
		return fail(fmt.Errorf("claim has no storage request"))
	}
	snapHandle, err := d.checkDataSource(claim, size)
	if err != nil {
		return fail(err)
	}
	// CreateVolume "takes" the configured delay.
	if remaining := knobs.ProvisionDelay - time.Since(started); remaining > 0 {
		return remaining, nil
	}
	if knobs.Fail[OpProvision] {
		return fail(rpcError("Internal", "simulated failure: StorageClass parameter %s includes %q", ParamFail, OpProvision))
	}
	if knobs.MaxSize != nil && size.Cmp(*knobs.MaxSize) > 0 {
		return fail(rpcError("OutOfRange", "requested size %d exceeds the maximum volume size %d (%s)",
			size.Value(), knobs.MaxSize.Value(), ParamMaxSize))
	}

	// CreateVolume itself: the volume's content, empty or restored from the
	// snapshot, exists before its PersistentVolume is saved.
	if err := d.data.createVolume(volumeHandle(claim), snapHandle); err != nil {
		return fail(err)
	}

	pv := d.buildVolume(claim, class, zone, pvName)
	_, err = d.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		// The volume exists on the "backend"; keep trying to save the object
		// (the library's volume store retries as well).
		return 0, fmt.Errorf("saving PersistentVolume %s: %w", pvName, err)
	}
	d.endProvision(claim)
	if err == nil {
		d.provRec.Event(claim, corev1.EventTypeNormal, "ProvisioningSucceeded",
			fmt.Sprintf("Successfully provisioned volume %s", pvName))
	}
	return 0, nil
}

func (d *Driver) endProvision(claim *corev1.PersistentVolumeClaim) {
	d.mu.Lock()
	delete(d.provOps, claim.UID)
	d.mu.Unlock()
}

// pickZone is the topology the volume is created in: the selected node's zone
// for WaitForFirstConsumer, otherwise the next allowed zone in turn.
func (d *Driver) pickZone(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) (string, error) {
	if nodeName := claim.Annotations[annSelectedNode]; nodeName != "" {
		node, err := d.nodes.Get(nodeName)
		if err != nil {
			return "", fmt.Errorf("failed to get target node: %v", err)
		}
		zone := node.Labels[TopologyKey]
		if zone == "" {
			return "", rpcError("ResourceExhausted", "node %s has no topology label %s: driver %s is not installed there", nodeName, TopologyKey, DriverName)
		}
		return zone, nil
	}
	zones := allowedZones(class)
	if len(zones) == 0 {
		return "", rpcError("InvalidArgument", "allowedTopologies of StorageClass %s name no zone of %s", class.Name, DriverName)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	z := zones[d.nextZone%len(zones)]
	d.nextZone++
	return z, nil
}

// dataSource returns the claim's VolumeSnapshot data source name, or "" and an
// error for sources this driver cannot handle.
func dataSource(claim *corev1.PersistentVolumeClaim) (string, error) {
	var group *string
	var kind, name string
	switch {
	case claim.Spec.DataSourceRef != nil:
		group, kind, name = claim.Spec.DataSourceRef.APIGroup, claim.Spec.DataSourceRef.Kind, claim.Spec.DataSourceRef.Name
	case claim.Spec.DataSource != nil:
		group, kind, name = claim.Spec.DataSource.APIGroup, claim.Spec.DataSource.Kind, claim.Spec.DataSource.Name
	default:
		return "", nil
	}
	if group != nil && *group == snapshotGV.Group && kind == "VolumeSnapshot" {
		return name, nil
	}
	if (group == nil || *group == "") && kind == "PersistentVolumeClaim" {
		return "", fmt.Errorf("error getting handle for DataSource Type PersistentVolumeClaim by Name %s: %s does not support volume cloning", name, DriverName)
	}
	g := ""
	if group != nil {
		g = *group
	}
	return "", fmt.Errorf("the data source %s/%s %s is not supported by %s", g, kind, name, DriverName)
}

// checkDataSource verifies a VolumeSnapshot source as the external-provisioner
// does: the snapshot must be ready, bound to a content of this driver with a
// snapshot handle, and the claim must ask for at least its restoreSize. It
// returns the snapshot handle to restore from ("" without a data source).
func (d *Driver) checkDataSource(claim *corev1.PersistentVolumeClaim, size resource.Quantity) (string, error) {
	snapName, err := dataSource(claim)
	if err != nil || snapName == "" {
		return "", err
	}
	wrap := func(format string, args ...interface{}) error {
		return fmt.Errorf("error getting handle for DataSource Type VolumeSnapshot by Name %s: %s", snapName, fmt.Sprintf(format, args...))
	}
	obj, err := d.snapshots.ByNamespace(claim.Namespace).Get(snapName)
	if err != nil {
		return "", wrap("error getting snapshot %s from api server: %v", snapName, err)
	}
	snap, err := toSnapshot(obj)
	if err != nil {
		return "", wrap("%v", err)
	}
	if snap.Status == nil || snap.Status.ReadyToUse == nil || !*snap.Status.ReadyToUse ||
		snap.Status.BoundVolumeSnapshotContentName == nil {
		return "", wrap("snapshot %s is not Ready", snapName)
	}
	cobj, err := d.contents.Get(*snap.Status.BoundVolumeSnapshotContentName)
	if err != nil {
		return "", wrap("error getting snapshot content for snapshot %s: %v", snapName, err)
	}
	content, err := toContent(cobj)
	if err != nil {
		return "", wrap("%v", err)
	}
	if content.Spec.VolumeSnapshotRef.UID != snap.UID || content.Spec.VolumeSnapshotRef.Name != snap.Name ||
		content.Spec.VolumeSnapshotRef.Namespace != snap.Namespace {
		return "", wrap("snapshot content %s is bound to a different snapshot", content.Name)
	}
	if content.Spec.Driver != DriverName {
		return "", wrap("snapshot %s was taken by driver %s, not %s", snapName, content.Spec.Driver, DriverName)
	}
	if content.Status == nil || content.Status.SnapshotHandle == nil {
		return "", wrap("snapshot handle %s is not available", content.Name)
	}
	if content.Status.RestoreSize != nil && size.Value() < *content.Status.RestoreSize {
		return "", wrap("requested volume size %d is less than the size %d for the source snapshot %s",
			size.Value(), *content.Status.RestoreSize, snapName)
	}
	return *content.Status.SnapshotHandle, nil
}

// volumeHandle is the handle CreateVolume returns for claim's volume.
func volumeHandle(claim *corev1.PersistentVolumeClaim) string {
	return "vol-" + string(claim.UID)
}

// buildVolume is the PersistentVolume external-provisioner saves for claim.
func (d *Driver) buildVolume(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, zone, pvName string) *corev1.PersistentVolume {
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	mode := corev1.PersistentVolumeFilesystem
	if claim.Spec.VolumeMode != nil {
		mode = *claim.Spec.VolumeMode
	}
	csiSource := &corev1.CSIPersistentVolumeSource{
		Driver:           DriverName,
		VolumeHandle:     volumeHandle(claim),
		VolumeAttributes: map[string]string{attrProvisionerIdentity: d.identity},
	}
	if mode == corev1.PersistentVolumeFilesystem {
		csiSource.FSType = class.Parameters[ParamFSType]
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        pvName,
			Annotations: map[string]string{annProvisionedBy: DriverName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(size.Value(), resource.BinarySI)},
			AccessModes:                   claim.Spec.AccessModes,
			VolumeMode:                    &mode,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: csiSource},
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion,
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: TopologyKey, Operator: corev1.NodeSelectorOpIn, Values: []string{zone},
				}}}},
			}},
		},
	}
	if reclaim == corev1.PersistentVolumeReclaimDelete {
		pv.Finalizers = []string{provisionerFinalizer}
	}
	return pv
}

// syncDelete deletes Released volumes of this driver with reclaim policy Delete:
// DeleteVolume on the "backend", then the PV object, then the provisioner's
// finalizer (the order of the provisioner library).
func (d *Driver) syncDelete(ctx context.Context, name string) (time.Duration, error) {
	pv, err := d.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if pv.Annotations[annProvisionedBy] != DriverName || pv.Spec.CSI == nil || pv.Spec.CSI.Driver != DriverName {
		return 0, nil
	}
	hasFinalizer := slices.Contains(pv.Finalizers, provisionerFinalizer)
	if pv.DeletionTimestamp != nil && !hasFinalizer {
		return 0, nil
	}
	if pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return 0, nil
	}
	knobs, _, err := d.classKnobs(pv.Spec.StorageClassName)
	if err == nil && knobs.Fail[OpDelete] {
		err = rpcError("Internal", "simulated failure: StorageClass parameter %s includes %q", ParamFail, OpDelete)
	}
	if err == nil {
		// DeleteVolume itself: the content goes before the PV object.
		err = d.data.deleteVolume(pv.Spec.CSI.VolumeHandle)
	}
	if err != nil {
		d.provRec.Event(pv, corev1.EventTypeWarning, "VolumeFailedDelete", err.Error())
		return 0, err
	}
	klog.InfoS("csi: volume deleted", "pv", pv.Name, "handle", pv.Spec.CSI.VolumeHandle)
	if pv.DeletionTimestamp == nil {
		err := d.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
	}
	if hasFinalizer {
		return 0, d.removeVolumeFinalizer(ctx, pv.Name)
	}
	return 0, nil
}

func (d *Driver) removeVolumeFinalizer(ctx context.Context, name string) error {
	patch := fmt.Sprintf(`{"metadata":{"$deleteFromPrimitiveList/finalizers":[%q]}}`, provisionerFinalizer)
	_, err := d.client.CoreV1().PersistentVolumes().Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
