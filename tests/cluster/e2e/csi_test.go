package e2e

// The simulated CSI driver csi.stateful.test (internal/csi): provisioning on the
// consumer's zone, expansion through the resizer's and the kubelet's states,
// snapshots and restores, and the fault knobs.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
)

const (
	driverName         = "csi.stateful.test"
	topologyKey        = "topology.stateful.test/zone"
	pvcSourceFinalizer = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
)

var zoneOf = map[string]string{"node-1": "zone-a", "node-2": "zone-b", "node-3": "zone-c"}

var (
	snapshotsGVR = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"}
	contentsGVR  = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotcontents"}
	vscGVR       = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotclasses"}
)

var (
	dynOnce sync.Once
	dynC    dynamic.Interface
)

func dyn(t *testing.T) dynamic.Interface {
	t.Helper()
	dynOnce.Do(func() {
		var err error
		if dynC, err = dynamic.NewForConfig(restConfig); err != nil {
			panic(err)
		}
	})
	return dynC
}

// csiClass creates a StorageClass of the driver (expandable, reclaim Delete) and
// removes it when t ends.
func csiClass(t *testing.T, name string, binding storagev1.VolumeBindingMode, params map[string]string) *storagev1.StorageClass {
	t.Helper()
	del := corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: name},
		Provisioner:          driverName,
		Parameters:           params,
		ReclaimPolicy:        &del,
		VolumeBindingMode:    &binding,
		AllowVolumeExpansion: ptr.To(true),
	}
	if _, err := client.StorageV1().StorageClasses().Create(context.Background(), sc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating StorageClass %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = client.StorageV1().StorageClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return sc
}

// replaceClass re-creates a class under the same name with other parameters
// (StorageClass parameters are immutable).
func replaceClass(t *testing.T, sc *storagev1.StorageClass, params map[string]string) {
	t.Helper()
	ctx := context.Background()
	if err := client.StorageV1().StorageClasses().Delete(ctx, sc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "StorageClass "+sc.Name+" gone", func(ctx context.Context) (bool, error) {
		_, err := client.StorageV1().StorageClasses().Get(ctx, sc.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	n := sc.DeepCopy()
	n.ResourceVersion, n.UID, n.Parameters = "", "", params
	if _, err := client.StorageV1().StorageClasses().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createClaim(t *testing.T, ns string, pvc *corev1.PersistentVolumeClaim) {
	t.Helper()
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), pvc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating claim %s: %v", pvc.Name, err)
	}
}

func consumer(name, claimName, node string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName}}}},
		},
	}
	if node != "" {
		p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
	}
	return p
}

func runPod(t *testing.T, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if _, err := client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	var p *corev1.Pod
	eventually(t, 90*time.Second, "pod "+pod.Name+" Ready", func(ctx context.Context) (bool, error) {
		var err error
		p, err = client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return podReady(p), fmt.Errorf("node %q phase %q", p.Spec.NodeName, p.Status.Phase)
	})
	return p
}

func deletePod(t *testing.T, ns, name string) {
	t.Helper()
	if err := client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "pod "+name+" gone", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
}

func getClaim(t *testing.T, ns, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc
}

func getPV(t *testing.T, name string) *corev1.PersistentVolume {
	t.Helper()
	pv, err := client.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

func resizeClaim(t *testing.T, ns, name, size string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"resources":{"requests":{"storage":%q}}}}`, size)
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Patch(context.Background(), name,
		types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("resizing claim %s to %s: %v", name, size, err)
	}
}

// waitEvent waits for an event with reason on the object and returns it.
func waitEvent(t *testing.T, ns, kind, name, reason string, timeout time.Duration) corev1.Event {
	t.Helper()
	var ev corev1.Event
	eventually(t, timeout, fmt.Sprintf("event %s on %s %s", reason, kind, name), func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.kind": kind, "involvedObject.name": name, "reason": reason,
		}.String()})
		if err != nil || len(list.Items) == 0 {
			return false, err
		}
		ev = list.Items[0]
		return true, nil
	})
	return ev
}

func quantity(q resource.Quantity) string { return q.String() }

func claimCapacity(pvc *corev1.PersistentVolumeClaim) string {
	return quantity(pvc.Status.Capacity[corev1.ResourceStorage])
}

func resizeStatus(pvc *corev1.PersistentVolumeClaim) corev1.ClaimResourceStatus {
	return pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]
}

func conditionTypes(pvc *corev1.PersistentVolumeClaim) []string {
	var out []string
	for _, c := range pvc.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out = append(out, string(c.Type))
		}
	}
	return out
}

func hasConditionType(pvc *corev1.PersistentVolumeClaim, t corev1.PersistentVolumeClaimConditionType) bool {
	return slices.Contains(conditionTypes(pvc), string(t))
}

// claimHistory records every version of a claim from now on.
type claimHistory struct {
	mu       sync.Mutex
	versions []*corev1.PersistentVolumeClaim
	stop     func()
}

func watchClaim(t *testing.T, ns string, pvc *corev1.PersistentVolumeClaim) *claimHistory {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	w, err := client.CoreV1().PersistentVolumeClaims(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", pvc.Name).String(),
		ResourceVersion: pvc.ResourceVersion,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h := &claimHistory{stop: func() { w.Stop(); cancel() }}
	go func() {
		for ev := range w.ResultChan() {
			if c, ok := ev.Object.(*corev1.PersistentVolumeClaim); ok && ev.Type == watch.Modified {
				h.mu.Lock()
				h.versions = append(h.versions, c)
				h.mu.Unlock()
			}
		}
	}()
	t.Cleanup(h.stop)
	return h
}

// waitFor waits until a recorded version satisfies ok and returns it.
func (h *claimHistory) waitFor(t *testing.T, timeout time.Duration, what string, ok func(*corev1.PersistentVolumeClaim) bool) *corev1.PersistentVolumeClaim {
	t.Helper()
	var found *corev1.PersistentVolumeClaim
	eventually(t, timeout, what+" in the claim's watch history", func(context.Context) (bool, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, v := range h.versions {
			if ok(v) {
				found = v
				return true, nil
			}
		}
		return false, fmt.Errorf("%d versions recorded", len(h.versions))
	})
	return found
}

// first is the index of the first recorded version that satisfies ok, or -1.
func (h *claimHistory) first(ok func(*corev1.PersistentVolumeClaim) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.IndexFunc(h.versions, ok)
}

// seen reports which condition types and resize statuses the claim went through.
func (h *claimHistory) seen() (conds, statuses map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	conds, statuses = map[string]bool{}, map[string]bool{}
	for _, v := range h.versions {
		for _, c := range conditionTypes(v) {
			conds[c] = true
		}
		if s := resizeStatus(v); s != "" {
			statuses[string(s)] = true
		}
	}
	return conds, statuses
}

func waitCapacity(t *testing.T, ns, name, size string, timeout time.Duration) *corev1.PersistentVolumeClaim {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	eventually(t, timeout, fmt.Sprintf("claim %s capacity %s", name, size), func(ctx context.Context) (bool, error) {
		var err error
		pvc, err = client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return claimCapacity(pvc) == size, fmt.Errorf("capacity %s, resize status %q, conditions %v",
			claimCapacity(pvc), resizeStatus(pvc), conditionTypes(pvc))
	})
	return pvc
}

// waitNodeResizePending waits until the controller part of an expansion is done.
func waitNodeResizePending(t *testing.T, ns, name string, timeout time.Duration) *corev1.PersistentVolumeClaim {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	eventually(t, timeout, "claim "+name+" at NodeResizePending", func(ctx context.Context) (bool, error) {
		var err error
		pvc, err = client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ok := resizeStatus(pvc) == corev1.PersistentVolumeClaimNodeResizePending &&
			hasConditionType(pvc, corev1.PersistentVolumeClaimFileSystemResizePending)
		return ok, fmt.Errorf("resize status %q, conditions %v", resizeStatus(pvc), conditionTypes(pvc))
	})
	return pvc
}

func checkExpanded(t *testing.T, pvc *corev1.PersistentVolumeClaim, size string) {
	t.Helper()
	if s := resizeStatus(pvc); s != "" {
		t.Errorf("allocatedResourceStatuses[storage] = %q after the expansion, want none", s)
	}
	for _, c := range []corev1.PersistentVolumeClaimConditionType{corev1.PersistentVolumeClaimResizing,
		corev1.PersistentVolumeClaimFileSystemResizePending, corev1.PersistentVolumeClaimControllerResizeError} {
		if hasConditionType(pvc, c) {
			t.Errorf("condition %s still set after the expansion", c)
		}
	}
	if a := pvc.Status.AllocatedResources[corev1.ResourceStorage]; quantity(a) != size {
		t.Errorf("allocatedResources[storage] = %s, want %s", quantity(a), size)
	}
	if pv := getPV(t, pvc.Spec.VolumeName); quantity(pv.Spec.Capacity[corev1.ResourceStorage]) != size {
		t.Errorf("PV capacity %s, want %s", quantity(pv.Spec.Capacity[corev1.ResourceStorage]), size)
	}
}

// The driver is registered as the kubelet's plugin registration leaves it: a
// CSIDriver without attachment, and on every node a CSINode entry with the zone
// topology key and the zone label.
func TestCSIDriverRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv, err := client.StorageV1().CSIDrivers().Get(ctx, driverName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("CSIDriver %s: %v", driverName, err)
	}
	if drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired {
		t.Errorf("CSIDriver attachRequired %v, want false", drv.Spec.AttachRequired)
	}
	if !slices.Equal(drv.Spec.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}) {
		t.Errorf("CSIDriver volumeLifecycleModes %v", drv.Spec.VolumeLifecycleModes)
	}
	for node, zone := range zoneOf {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels[topologyKey] != zone {
			t.Errorf("node %s label %s=%q, want %q", node, topologyKey, n.Labels[topologyKey], zone)
		}
		cn, err := client.StorageV1().CSINodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Errorf("CSINode %s: %v", node, err)
			continue
		}
		i := slices.IndexFunc(cn.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == driverName })
		if i < 0 {
			t.Errorf("CSINode %s drivers %+v lack %s", node, cn.Spec.Drivers, driverName)
			continue
		}
		if d := cn.Spec.Drivers[i]; d.NodeID != node || !slices.Equal(d.TopologyKeys, []string{topologyKey}) {
			t.Errorf("CSINode %s driver entry %+v, want nodeID %s and topology key %s", node, d, node, topologyKey)
		}
		if refs := cn.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Node" || refs[0].Name != node || refs[0].UID != n.UID {
			t.Errorf("CSINode %s owner references %+v, want its Node", node, refs)
		}
	}
}

// A fast (WaitForFirstConsumer) claim is provisioned in the zone of the node its
// consumer is scheduled to, like external-provisioner does it, and binds; deleting
// the claim after the pod deletes the PV.
func TestCSIProvisionInConsumerZone(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createClaim(t, ns, claim("data", "fast", "1Gi"))
	waitEvent(t, ns, "PersistentVolumeClaim", "data", "WaitForFirstConsumer", 60*time.Second)
	if pvc := getClaim(t, ns, "data"); pvc.Status.Phase != corev1.ClaimPending {
		t.Fatalf("claim without consumer is %s", pvc.Status.Phase)
	}
	runPod(t, ns, consumer("app", "data", "node-3"))
	pvc := waitClaimBound(t, ns, "data", 60*time.Second)
	if pvc.Annotations["volume.kubernetes.io/storage-provisioner"] != driverName ||
		pvc.Annotations["volume.kubernetes.io/selected-node"] != "node-3" {
		t.Errorf("claim annotations %v", pvc.Annotations)
	}
	pv := getPV(t, pvc.Spec.VolumeName)
	if pv.Name != "pvc-"+string(pvc.UID) {
		t.Errorf("PV name %s, want pvc-<claim uid>", pv.Name)
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != driverName || pv.Spec.CSI.VolumeHandle == "" || pv.Spec.CSI.FSType != "ext4" {
		t.Errorf("PV csi source %+v", pv.Spec.CSI)
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != driverName {
		t.Errorf("PV annotations %v", pv.Annotations)
	}
	if !slices.Contains(pv.Finalizers, "external-provisioner.volume.kubernetes.io/finalizer") {
		t.Errorf("PV finalizers %v", pv.Finalizers)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID || ref.Name != "data" || ref.Namespace != ns {
		t.Errorf("PV claimRef %+v", pv.Spec.ClaimRef)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.StorageClassName != "fast" ||
		quantity(pv.Spec.Capacity[corev1.ResourceStorage]) != "1Gi" {
		t.Errorf("PV reclaim %s class %s capacity %v", pv.Spec.PersistentVolumeReclaimPolicy, pv.Spec.StorageClassName, pv.Spec.Capacity)
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || terms[0].MatchExpressions[0].Key != topologyKey ||
		!slices.Equal(terms[0].MatchExpressions[0].Values, []string{"zone-c"}) {
		t.Errorf("PV node affinity %+v, want %s in [zone-c]", terms, topologyKey)
	}
	for _, reason := range []string{"Provisioning", "ProvisioningSucceeded"} {
		waitEvent(t, ns, "PersistentVolumeClaim", "data", reason, 10*time.Second)
	}

	deletePod(t, ns, "app")
	if err := client.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "PV "+pv.Name+" deleted", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
}

// A fast-immediate claim binds without a consumer; its volume's zone then decides
// where a pod using it can run.
func TestCSIImmediateBindingPinsConsumer(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createClaim(t, ns, claim("data", "fast-immediate", "1Gi"))
	pvc := waitClaimBound(t, ns, "data", 60*time.Second)
	pv := getPV(t, pvc.Spec.VolumeName)
	zone := pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0]
	p := runPod(t, ns, consumer("app", "data", ""))
	if zoneOf[p.Spec.NodeName] != zone {
		t.Fatalf("pod on %s (%s), volume in %s", p.Spec.NodeName, zoneOf[p.Spec.NodeName], zone)
	}
	node, err := client.CoreV1().Nodes().Get(context.Background(), p.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels[topologyKey] != zone {
		t.Fatalf("node %s labels %v", node.Name, node.Labels)
	}
}

// Growing a mounted claim: the resizer's ControllerResizeInProgress/Resizing, the
// PV's capacity, NodeResizePending/FileSystemResizePending, then the kubelet's
// file system resize on the pod's node and the new capacity.
func TestCSIExpandMountedClaim(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createClaim(t, ns, claim("data", "fast", "1Gi"))
	runPod(t, ns, consumer("app", "data", ""))
	pvc := waitClaimBound(t, ns, "data", 60*time.Second)
	h := watchClaim(t, ns, pvc)
	resizeClaim(t, ns, "data", "2Gi")
	pvc = waitCapacity(t, ns, "data", "2Gi", 60*time.Second)
	checkExpanded(t, pvc, "2Gi")
	// The GET may see the new capacity before the watch delivers that version.
	h.waitFor(t, 30*time.Second, "capacity 2Gi", func(v *corev1.PersistentVolumeClaim) bool { return claimCapacity(v) == "2Gi" })
	conds, statuses := h.seen()
	for _, c := range []string{"Resizing", "FileSystemResizePending"} {
		if !conds[c] {
			t.Errorf("condition %s never seen (saw %v)", c, conds)
		}
	}
	for _, s := range []string{"ControllerResizeInProgress", "NodeResizePending", "NodeResizeInProgress"} {
		if !statuses[s] {
			t.Errorf("resize status %s never seen (saw %v)", s, statuses)
		}
	}
	// In the order external-resizer and then the kubelet write them, the new
	// capacity last.
	type step struct {
		what string
		ok   func(*corev1.PersistentVolumeClaim) bool
	}
	var steps []step
	for _, s := range []corev1.ClaimResourceStatus{corev1.PersistentVolumeClaimControllerResizeInProgress,
		corev1.PersistentVolumeClaimNodeResizePending, corev1.PersistentVolumeClaimNodeResizeInProgress} {
		steps = append(steps, step{"resize status " + string(s), func(v *corev1.PersistentVolumeClaim) bool { return resizeStatus(v) == s }})
	}
	steps = append(steps, step{"capacity 2Gi", func(v *corev1.PersistentVolumeClaim) bool { return claimCapacity(v) == "2Gi" }})
	for i := 1; i < len(steps); i++ {
		before, after := h.first(steps[i-1].ok), h.first(steps[i].ok)
		if before >= 0 && after >= 0 && before >= after {
			t.Errorf("%s first in version %d, %s in version %d: want %s first",
				steps[i-1].what, before, steps[i].what, after, steps[i-1].what)
		}
	}
	for _, reason := range []string{"ExternalExpanding", "Resizing", "FileSystemResizeRequired", "FileSystemResizeSuccessful"} {
		waitEvent(t, ns, "PersistentVolumeClaim", "data", reason, 10*time.Second)
	}
	waitEvent(t, ns, "Pod", "app", "FileSystemResizeSuccessful", 10*time.Second)
}

// A claim no pod mounts stops at FileSystemResizePending (the PV has grown, the
// file system not) until a pod mounts it.
func TestCSIExpandUnmountedClaimWaitsForPod(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	createClaim(t, ns, claim("data", "fast-immediate", "1Gi"))
	waitClaimBound(t, ns, "data", 60*time.Second)
	resizeClaim(t, ns, "data", "2Gi")
	pvc := waitNodeResizePending(t, ns, "data", 60*time.Second)
	if pv := getPV(t, pvc.Spec.VolumeName); quantity(pv.Spec.Capacity[corev1.ResourceStorage]) != "2Gi" {
		t.Fatalf("PV capacity %v, want 2Gi", pv.Spec.Capacity)
	}
	consistently(t, 2*time.Second, "unmounted claim stays at NodeResizePending", func(ctx context.Context) error {
		c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if claimCapacity(c) != "1Gi" || resizeStatus(c) != corev1.PersistentVolumeClaimNodeResizePending ||
			!hasConditionType(c, corev1.PersistentVolumeClaimFileSystemResizePending) {
			return fmt.Errorf("capacity %s status %q conditions %v, want 1Gi, NodeResizePending, FileSystemResizePending",
				claimCapacity(c), resizeStatus(c), conditionTypes(c))
		}
		return nil
	})
	runPod(t, ns, consumer("app", "data", ""))
	checkExpanded(t, waitCapacity(t, ns, "data", "2Gi", 60*time.Second), "2Gi")
}

// With online-expansion "false" a running pod does not get the file system grown;
// the pod re-created after the expansion started does.
func TestCSIExpandOfflineNeedsPodRestart(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	class := "e2e-offline-" + suffix()
	csiClass(t, class, storagev1.VolumeBindingWaitForFirstConsumer, map[string]string{"stateful.test/online-expansion": "false"})
	createClaim(t, ns, claim("data", class, "1Gi"))
	runPod(t, ns, consumer("app", "data", ""))
	waitClaimBound(t, ns, "data", 60*time.Second)
	resizeClaim(t, ns, "data", "2Gi")
	waitNodeResizePending(t, ns, "data", 60*time.Second)
	consistently(t, 2*time.Second, "offline expansion waits while the old pod runs", func(ctx context.Context) error {
		c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if claimCapacity(c) != "1Gi" || resizeStatus(c) != corev1.PersistentVolumeClaimNodeResizePending {
			return fmt.Errorf("capacity %s status %q, want 1Gi and NodeResizePending", claimCapacity(c), resizeStatus(c))
		}
		return nil
	})
	deletePod(t, ns, "app")
	runPod(t, ns, consumer("app", "data", ""))
	checkExpanded(t, waitCapacity(t, ns, "data", "2Gi", 60*time.Second), "2Gi")
	waitEvent(t, ns, "PersistentVolumeClaim", "data", "FileSystemResizeSuccessful", 10*time.Second)
}

func createSnapshot(t *testing.T, ns, name, claimName, class string) {
	t.Helper()
	spec := map[string]interface{}{"source": map[string]interface{}{"persistentVolumeClaimName": claimName}}
	if class != "" {
		spec["volumeSnapshotClassName"] = class
	}
	obj := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
		"metadata": map[string]interface{}{"name": name}, "spec": spec,
	}}
	if _, err := dyn(t).Resource(snapshotsGVR).Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating VolumeSnapshot %s: %v", name, err)
	}
}

func getSnapshot(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	s, err := dyn(t).Resource(snapshotsGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitSnapshotReady(t *testing.T, ns, name string, timeout time.Duration) *unstructured.Unstructured {
	t.Helper()
	var s *unstructured.Unstructured
	eventually(t, timeout, "VolumeSnapshot "+name+" readyToUse", func(ctx context.Context) (bool, error) {
		var err error
		s, err = dyn(t).Resource(snapshotsGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready, _, _ := unstructured.NestedBool(s.Object, "status", "readyToUse")
		st, _, _ := unstructured.NestedMap(s.Object, "status")
		return ready, fmt.Errorf("status %v", st)
	})
	return s
}

func restoreClaim(name, class, size, snapshot string) *corev1.PersistentVolumeClaim {
	c := claim(name, class, size)
	c.Spec.DataSourceRef = &corev1.TypedObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: snapshot}
	return c
}

func snapshotClass(t *testing.T, name, policy string, params map[string]string) {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
		"metadata": map[string]interface{}{"name": name}, "driver": driverName, "deletionPolicy": policy,
	}}
	if len(params) > 0 {
		p := map[string]interface{}{}
		for k, v := range params {
			p[k] = v
		}
		obj.Object["parameters"] = p
	}
	if _, err := dyn(t).Resource(vscGVR).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating VolumeSnapshotClass %s: %v", name, err)
	}
	t.Cleanup(func() { _ = dyn(t).Resource(vscGVR).Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

func replaceSnapshotClass(t *testing.T, name, policy string, params map[string]string) {
	t.Helper()
	if err := dyn(t).Resource(vscGVR).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "VolumeSnapshotClass "+name+" gone", func(ctx context.Context) (bool, error) {
		_, err := dyn(t).Resource(vscGVR).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	snapshotClass(t, name, policy, params)
}

// A snapshot of a bound claim becomes ready with its restoreSize; a claim restored
// from it binds; one asking for less than restoreSize is refused with an event and
// keeps the snapshot from being deleted; with policy Delete the content goes with
// the snapshot.
func TestCSISnapshotAndRestore(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	createClaim(t, ns, claim("data", "fast-immediate", "2Gi"))
	pvc := waitClaimBound(t, ns, "data", 60*time.Second)
	pv := getPV(t, pvc.Spec.VolumeName)
	createSnapshot(t, ns, "snap", "data", "") // the default class: fast-snapshots
	s := waitSnapshotReady(t, ns, "snap", 60*time.Second)
	if cls, _, _ := unstructured.NestedString(s.Object, "spec", "volumeSnapshotClassName"); cls != "fast-snapshots" {
		t.Errorf("default VolumeSnapshotClass %q, want fast-snapshots", cls)
	}
	size, _, _ := unstructured.NestedString(s.Object, "status", "restoreSize")
	created, _, _ := unstructured.NestedString(s.Object, "status", "creationTime")
	contentName, _, _ := unstructured.NestedString(s.Object, "status", "boundVolumeSnapshotContentName")
	if size != "2Gi" || created == "" || contentName != "snapcontent-"+string(s.GetUID()) {
		t.Errorf("snapshot status restoreSize %q creationTime %q content %q", size, created, contentName)
	}
	for _, f := range []string{"snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection",
		"snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"} {
		if !slices.Contains(s.GetFinalizers(), f) {
			t.Errorf("snapshot finalizers %v lack %s", s.GetFinalizers(), f)
		}
	}
	content, err := dyn(t).Resource(contentsGVR).Get(ctx, contentName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	handle, _, _ := unstructured.NestedString(content.Object, "spec", "source", "volumeHandle")
	snapHandle, _, _ := unstructured.NestedString(content.Object, "status", "snapshotHandle")
	ready, _, _ := unstructured.NestedBool(content.Object, "status", "readyToUse")
	restore, _, _ := unstructured.NestedInt64(content.Object, "status", "restoreSize")
	contentCreated, _, _ := unstructured.NestedInt64(content.Object, "status", "creationTime")
	if handle != pv.Spec.CSI.VolumeHandle || snapHandle == "" || !ready || restore != 2<<30 || contentCreated <= 0 {
		t.Errorf("content source %q (want %q) handle %q ready %v restoreSize %d creationTime %d",
			handle, pv.Spec.CSI.VolumeHandle, snapHandle, ready, restore, contentCreated)
	}
	// The snapshot-controller adds the content's finalizer on its own schedule (it
	// may come after readyToUse, as on real clusters).
	eventually(t, 30*time.Second, "content finalizer", func(ctx context.Context) (bool, error) {
		c, err := dyn(t).Resource(contentsGVR).Get(ctx, contentName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return slices.Contains(c.GetFinalizers(), "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"),
			fmt.Errorf("finalizers %v", c.GetFinalizers())
	})
	for _, reason := range []string{"CreatingSnapshot", "SnapshotCreated", "SnapshotReady"} {
		waitEvent(t, ns, "VolumeSnapshot", "snap", reason, 10*time.Second)
	}
	eventually(t, 30*time.Second, "source claim's snapshot finalizer removed", func(ctx context.Context) (bool, error) {
		c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		return err == nil && !slices.Contains(c.Finalizers, pvcSourceFinalizer), err
	})

	createClaim(t, ns, restoreClaim("restored", "fast-immediate", "2Gi", "snap"))
	createClaim(t, ns, restoreClaim("small", "fast-immediate", "1Gi", "snap"))
	waitClaimBound(t, ns, "restored", 60*time.Second)
	ev := waitEvent(t, ns, "PersistentVolumeClaim", "small", "ProvisioningFailed", 60*time.Second)
	if !strings.Contains(ev.Message, "is less than the size") {
		t.Errorf("ProvisioningFailed message %q", ev.Message)
	}
	if c := getClaim(t, ns, "small"); c.Status.Phase != corev1.ClaimPending {
		t.Errorf("too small restore is %s", c.Status.Phase)
	}

	// The pending restore holds the snapshot up; once it is gone the snapshot and
	// its content (deletionPolicy Delete) are deleted.
	if err := dyn(t).Resource(snapshotsGVR).Namespace(ns).Delete(ctx, "snap", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ns, "VolumeSnapshot", "snap", "SnapshotDeletePending", 30*time.Second)
	if err := client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "small", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "snapshot and content deleted", func(ctx context.Context) (bool, error) {
		_, err1 := dyn(t).Resource(snapshotsGVR).Namespace(ns).Get(ctx, "snap", metav1.GetOptions{})
		_, err2 := dyn(t).Resource(contentsGVR).Get(ctx, contentName, metav1.GetOptions{})
		return apierrors.IsNotFound(err1) && apierrors.IsNotFound(err2), fmt.Errorf("snapshot: %v, content: %v", err1, err2)
	})
}

// A snapshot that takes a while to become ready: a restore waits for it; with
// deletionPolicy Retain the content outlives the snapshot.
func TestCSISnapshotDelayAndRetain(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	vsc := "e2e-retain-" + suffix()
	snapshotClass(t, vsc, "Retain", map[string]string{"stateful.test/snapshot-delay": "6s"})
	createClaim(t, ns, claim("data", "fast-immediate", "1Gi"))
	waitClaimBound(t, ns, "data", 60*time.Second)
	createSnapshot(t, ns, "snap", "data", vsc)
	waitEvent(t, ns, "VolumeSnapshot", "snap", "SnapshotCreated", 30*time.Second)
	// The snapshot-controller protects the source claim while the snapshot is
	// being cut (ensurePVCFinalizer, before it creates the content).
	if c := getClaim(t, ns, "data"); !slices.Contains(c.Finalizers, pvcSourceFinalizer) {
		t.Errorf("source claim finalizers %v while the snapshot is not ready, want %s", c.Finalizers, pvcSourceFinalizer)
	}
	if ready, _, _ := unstructured.NestedBool(getSnapshot(t, ns, "snap").Object, "status", "readyToUse"); ready {
		t.Fatal("snapshot ready before its snapshot-delay")
	}
	createClaim(t, ns, restoreClaim("restored", "fast-immediate", "1Gi", "snap"))
	ev := waitEvent(t, ns, "PersistentVolumeClaim", "restored", "ProvisioningFailed", 30*time.Second)
	if !strings.Contains(ev.Message, "is not Ready") {
		t.Errorf("ProvisioningFailed message %q", ev.Message)
	}
	s := waitSnapshotReady(t, ns, "snap", 60*time.Second)
	// … and removes the protection once no snapshot of the claim is still unready.
	eventually(t, 30*time.Second, "source claim's snapshot finalizer removed", func(ctx context.Context) (bool, error) {
		c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return !slices.Contains(c.Finalizers, pvcSourceFinalizer), fmt.Errorf("finalizers %v", c.Finalizers)
	})
	waitClaimBound(t, ns, "restored", 60*time.Second)

	contentName, _, _ := unstructured.NestedString(s.Object, "status", "boundVolumeSnapshotContentName")
	t.Cleanup(func() {
		_ = dyn(t).Resource(contentsGVR).Delete(context.Background(), contentName, metav1.DeleteOptions{})
	})
	if err := dyn(t).Resource(snapshotsGVR).Namespace(ns).Delete(ctx, "snap", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "snapshot deleted", func(ctx context.Context) (bool, error) {
		_, err := dyn(t).Resource(snapshotsGVR).Namespace(ns).Get(ctx, "snap", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	content, err := dyn(t).Resource(contentsGVR).Get(ctx, contentName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("content with deletionPolicy Retain: %v", err)
	}
	if content.GetAnnotations()["snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"] != "yes" {
		t.Errorf("retained content annotations %v", content.GetAnnotations())
	}
	if err := dyn(t).Resource(contentsGVR).Delete(ctx, contentName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "retained content deleted by hand", func(ctx context.Context) (bool, error) {
		_, err := dyn(t).Resource(contentsGVR).Get(ctx, contentName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
}

// Every stateful.test/fail mode leaves the failure the real component records,
// keeps retrying, and recovers when the class is re-created without it; an
// infeasible expansion recovers when the claim's request is lowered again.
func TestCSIFaults(t *testing.T) {
	t.Parallel()

	t.Run("provision", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		sc := csiClass(t, "e2e-failprov-"+suffix(), storagev1.VolumeBindingImmediate, map[string]string{"stateful.test/fail": "provision"})
		createClaim(t, ns, claim("data", sc.Name, "1Gi"))
		waitEvent(t, ns, "PersistentVolumeClaim", "data", "Provisioning", 30*time.Second)
		ev := waitEvent(t, ns, "PersistentVolumeClaim", "data", "ProvisioningFailed", 30*time.Second)
		if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "simulated failure") {
			t.Errorf("ProvisioningFailed %s %q", ev.Type, ev.Message)
		}
		eventually(t, 30*time.Second, "a retry", func(ctx context.Context) (bool, error) {
			list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
				"involvedObject.name": "data", "reason": "ProvisioningFailed"}.String()})
			return err == nil && len(list.Items) > 0 && list.Items[0].Count >= 2, err
		})
		if c := getClaim(t, ns, "data"); c.Status.Phase != corev1.ClaimPending {
			t.Fatalf("claim %s despite the failure", c.Status.Phase)
		}
		replaceClass(t, sc, nil)
		waitClaimBound(t, ns, "data", 60*time.Second)
	})

	t.Run("provision-delay", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		sc := csiClass(t, "e2e-slowprov-"+suffix(), storagev1.VolumeBindingImmediate, map[string]string{"stateful.test/provision-delay": "3s"})
		start := time.Now()
		createClaim(t, ns, claim("data", sc.Name, "1Gi"))
		waitEvent(t, ns, "PersistentVolumeClaim", "data", "Provisioning", 30*time.Second)
		waitClaimBound(t, ns, "data", 60*time.Second)
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("bound after %s, before the provision-delay of 3s", d)
		}
	})

	t.Run("resize", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		sc := csiClass(t, "e2e-failresize-"+suffix(), storagev1.VolumeBindingImmediate, map[string]string{"stateful.test/fail": "resize"})
		createClaim(t, ns, claim("data", sc.Name, "1Gi"))
		pvc := waitClaimBound(t, ns, "data", 60*time.Second)
		resizeClaim(t, ns, "data", "2Gi")
		ev := waitEvent(t, ns, "PersistentVolumeClaim", "data", "VolumeResizeFailed", 30*time.Second)
		if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "simulated failure") {
			t.Errorf("VolumeResizeFailed %s %q", ev.Type, ev.Message)
		}
		eventually(t, 30*time.Second, "ControllerResizeError recorded", func(ctx context.Context) (bool, error) {
			c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return hasConditionType(c, corev1.PersistentVolumeClaimControllerResizeError) &&
					resizeStatus(c) == corev1.PersistentVolumeClaimControllerResizeInProgress,
				fmt.Errorf("status %q conditions %v", resizeStatus(c), conditionTypes(c))
		})
		if pv := getPV(t, pvc.Spec.VolumeName); quantity(pv.Spec.Capacity[corev1.ResourceStorage]) != "1Gi" {
			t.Fatalf("PV grew to %v despite the failure", pv.Spec.Capacity)
		}
		replaceClass(t, sc, nil)
		waitNodeResizePending(t, ns, "data", 60*time.Second)
		runPod(t, ns, consumer("app", "data", ""))
		checkExpanded(t, waitCapacity(t, ns, "data", "2Gi", 60*time.Second), "2Gi")
	})

	t.Run("resize-delay", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		sc := csiClass(t, "e2e-slowresize-"+suffix(), storagev1.VolumeBindingImmediate, map[string]string{"stateful.test/resize-delay": "10s"})
		createClaim(t, ns, claim("data", sc.Name, "1Gi"))
		pvc := waitClaimBound(t, ns, "data", 60*time.Second)
		h := watchClaim(t, ns, pvc)
		resizeClaim(t, ns, "data", "2Gi")
		// From the resizer's first status write (seen through the watch) ControllerExpandVolume
		// takes 10s, and for 2s of it the claim must show the controller part in progress and
		// the PV keep its size. The delay is five times the check because the watch's delivery
		// of that first write has no bound under load (with 3s, a second of latency on two
		// busy cores failed the check).
		h.waitFor(t, 30*time.Second, "ControllerResizeInProgress", func(v *corev1.PersistentVolumeClaim) bool {
			return resizeStatus(v) == corev1.PersistentVolumeClaimControllerResizeInProgress
		})
		consistently(t, 2*time.Second, "claim stays at ControllerResizeInProgress during the resize-delay", func(ctx context.Context) error {
			c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
			if err != nil {
				return err
			}
			pv, err := client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			pvSize := quantity(pv.Spec.Capacity[corev1.ResourceStorage])
			if resizeStatus(c) != corev1.PersistentVolumeClaimControllerResizeInProgress ||
				!hasConditionType(c, corev1.PersistentVolumeClaimResizing) || claimCapacity(c) != "1Gi" || pvSize != "1Gi" {
				return fmt.Errorf("status %q conditions %v capacity %s PV capacity %s, want ControllerResizeInProgress, Resizing, 1Gi, 1Gi",
					resizeStatus(c), conditionTypes(c), claimCapacity(c), pvSize)
			}
			return nil
		})
		// Then it proceeds: no pod mounts the claim, so it stops at NodeResizePending.
		pvc = waitNodeResizePending(t, ns, "data", 30*time.Second)
		if pv := getPV(t, pvc.Spec.VolumeName); quantity(pv.Spec.Capacity[corev1.ResourceStorage]) != "2Gi" {
			t.Errorf("PV capacity %v after the resize-delay, want 2Gi", pv.Spec.Capacity)
		}
		waitEvent(t, ns, "PersistentVolumeClaim", "data", "FileSystemResizeRequired", 10*time.Second)
	})

	t.Run("resize-failure-recovery", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		sc := csiClass(t, "e2e-failrecover-"+suffix(), storagev1.VolumeBindingImmediate, map[string]string{"stateful.test/fail": "resize"})
		createClaim(t, ns, claim("data", sc.Name, "1Gi"))
		pvc := waitClaimBound(t, ns, "data", 60*time.Second)
		allocated := func(c *corev1.PersistentVolumeClaim) string {
			return quantity(c.Status.AllocatedResources[corev1.ResourceStorage])
		}
		failingAt := func(size string) {
			t.Helper()
			eventually(t, 30*time.Second, "expansion to "+size+" failing", func(ctx context.Context) (bool, error) {
				c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				return allocated(c) == size && resizeStatus(c) == corev1.PersistentVolumeClaimControllerResizeInProgress &&
						hasConditionType(c, corev1.PersistentVolumeClaimControllerResizeError),
					fmt.Errorf("allocated %s status %q conditions %v", allocated(c), resizeStatus(c), conditionTypes(c))
			})
		}
		resizeClaim(t, ns, "data", "3Gi")
		failingAt("3Gi")
		// Expansion recovery: after a final error the resizer takes the lowered
		// request (still above the capacity) as its new target, while it fails.
		resizeClaim(t, ns, "data", "2Gi")
		failingAt("2Gi")
		if pv := getPV(t, pvc.Spec.VolumeName); quantity(pv.Spec.Capacity[corev1.ResourceStorage]) != "1Gi" {
			t.Fatalf("PV grew to %v despite the failure", pv.Spec.Capacity)
		}
		replaceClass(t, sc, nil)
		waitNodeResizePending(t, ns, "data", 60*time.Second)
		runPod(t, ns, consumer("app", "data", ""))
		checkExpanded(t, waitCapacity(t, ns, "data", "2Gi", 60*time.Second), "2Gi")
	})

	t.Run("resize-infeasible-recovery", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		sc := csiClass(t, "e2e-maxsize-"+suffix(), storagev1.VolumeBindingImmediate, map[string]string{"stateful.test/max-size": "3Gi"})
		createClaim(t, ns, claim("data", sc.Name, "1Gi"))
		waitClaimBound(t, ns, "data", 60*time.Second)
		runPod(t, ns, consumer("app", "data", ""))
		resizeClaim(t, ns, "data", "10Gi")
		eventually(t, 30*time.Second, "ControllerResizeInfeasible", func(ctx context.Context) (bool, error) {
			c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return resizeStatus(c) == corev1.PersistentVolumeClaimControllerResizeInfeasible &&
					hasConditionType(c, corev1.PersistentVolumeClaimControllerResizeError),
				fmt.Errorf("status %q conditions %v", resizeStatus(c), conditionTypes(c))
		})
		ev := waitEvent(t, ns, "PersistentVolumeClaim", "data", "VolumeResizeFailed", 10*time.Second)
		if !strings.Contains(ev.Message, "OutOfRange") {
			t.Errorf("VolumeResizeFailed %q", ev.Message)
		}
		// Lowering the request below capacity stays forbidden; back to 2Gi recovers.
		patch := `{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}`
		if _, err := client.CoreV1().PersistentVolumeClaims(ns).Patch(context.Background(), "data", types.MergePatchType,
			[]byte(patch), metav1.PatchOptions{}); err == nil || !apierrors.IsInvalid(err) {
			t.Errorf("lowering the request to the capacity: %v, want Invalid", err)
		}
		resizeClaim(t, ns, "data", "2Gi")
		checkExpanded(t, waitCapacity(t, ns, "data", "2Gi", 60*time.Second), "2Gi")
	})

	t.Run("snapshot", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		vsc := "e2e-failsnap-" + suffix()
		snapshotClass(t, vsc, "Delete", map[string]string{"stateful.test/fail": "snapshot"})
		createClaim(t, ns, claim("data", "fast-immediate", "1Gi"))
		waitClaimBound(t, ns, "data", 60*time.Second)
		createSnapshot(t, ns, "snap", "data", vsc)
		var contentName string
		eventually(t, 30*time.Second, "snapshot error", func(ctx context.Context) (bool, error) {
			s, err := dyn(t).Resource(snapshotsGVR).Namespace(ns).Get(ctx, "snap", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			msg, _, _ := unstructured.NestedString(s.Object, "status", "error", "message")
			ready, found, _ := unstructured.NestedBool(s.Object, "status", "readyToUse")
			contentName, _, _ = unstructured.NestedString(s.Object, "status", "boundVolumeSnapshotContentName")
			return strings.Contains(msg, "simulated failure") && found && !ready, fmt.Errorf("status error %q", msg)
		})
		waitEvent(t, "", "VolumeSnapshotContent", contentName, "SnapshotCreationFailed", 30*time.Second)
		replaceSnapshotClass(t, vsc, "Delete", nil)
		s := waitSnapshotReady(t, ns, "snap", 60*time.Second)
		if msg, found, _ := unstructured.NestedString(s.Object, "status", "error", "message"); found {
			t.Errorf("error %q left on the ready snapshot", msg)
		}
	})

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		ns := namespace(t)
		sc := csiClass(t, "e2e-faildel-"+suffix(), storagev1.VolumeBindingImmediate, map[string]string{"stateful.test/fail": "delete"})
		createClaim(t, ns, claim("data", sc.Name, "1Gi"))
		pvc := waitClaimBound(t, ns, "data", 60*time.Second)
		if err := client.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), "data", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, "", "PersistentVolume", pvc.Spec.VolumeName, "VolumeFailedDelete", 60*time.Second)
		if pv := getPV(t, pvc.Spec.VolumeName); pv.Status.Phase != corev1.VolumeReleased {
			t.Fatalf("PV %s, want Released", pv.Status.Phase)
		}
		replaceClass(t, sc, nil)
		eventually(t, 60*time.Second, "PV deleted", func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
			return apierrors.IsNotFound(err), err
		})
	})
}
