package csi

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestParseKnobs(t *testing.T) {
	k, err := ParseKnobs(map[string]string{
		ParamProvisionDelay: "2s", ParamResizeDelay: "150ms", ParamSnapshotDelay: "1m",
		ParamFail: "provision, snapshot", ParamOnlineExpansion: "false", ParamMaxSize: "3Gi",
		ParamFSType: "ext4", "unrelated": "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if k.ProvisionDelay != 2*time.Second || k.ResizeDelay != 150*time.Millisecond || k.SnapshotDelay != time.Minute {
		t.Errorf("delays %v %v %v", k.ProvisionDelay, k.ResizeDelay, k.SnapshotDelay)
	}
	if !k.Fail[OpProvision] || !k.Fail[OpSnapshot] || k.Fail[OpResize] || k.OnlineExpand {
		t.Errorf("fail %v online %v", k.Fail, k.OnlineExpand)
	}
	if k.MaxSize == nil || k.MaxSize.String() != "3Gi" {
		t.Errorf("max size %v", k.MaxSize)
	}
	if d, err := ParseKnobs(nil); err != nil || !d.OnlineExpand || len(d.Fail) != 0 || d.MaxSize != nil {
		t.Errorf("defaults %+v %v", d, err)
	}
	for _, bad := range []map[string]string{
		{ParamResizeDelay: "soon"},
		{ParamProvisionDelay: "-1s"},
		{ParamSnapshotDelay: "2h"},
		{ParamFail: "provision,explode"},
		{ParamOnlineExpansion: "maybe"},
		{ParamMaxSize: "0"},
	} {
		if _, err := ParseKnobs(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

func pvcWith(spec, capacity string, allocated string, status corev1.ClaimResourceStatus, conds ...corev1.PersistentVolumeClaimConditionType) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{
		Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceStorage: q(spec)}}},
		Status: corev1.PersistentVolumeClaimStatus{Capacity: corev1.ResourceList{corev1.ResourceStorage: q(capacity)}},
	}
	if allocated != "" {
		c.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: q(allocated)}
	}
	if status != "" {
		c.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{corev1.ResourceStorage: status}
	}
	for _, t := range conds {
		c.Status.Conditions = append(c.Status.Conditions, corev1.PersistentVolumeClaimCondition{Type: t, Status: corev1.ConditionTrue})
	}
	return c
}

// Cases after external-resizer's expand_and_recover_test.go.
func TestResizeDecision(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pvc        *corev1.PersistentVolumeClaim
		pvSize     string
		finalError bool
		want       string
		skip       bool
	}{
		{"new expansion", pvcWith("2Gi", "1Gi", "", ""), "1Gi", false, "2Gi", false},
		{"in progress keeps allocated", pvcWith("3Gi", "1Gi", "2Gi", corev1.PersistentVolumeClaimControllerResizeInProgress), "1Gi", false, "2Gi", false},
		{"in progress after final error takes new spec", pvcWith("3Gi", "1Gi", "2Gi", corev1.PersistentVolumeClaimControllerResizeInProgress), "1Gi", true, "3Gi", false},
		{"infeasible, request lowered: recovery", pvcWith("2Gi", "1Gi", "10Gi", corev1.PersistentVolumeClaimControllerResizeInfeasible), "1Gi", false, "2Gi", false},
		{"node pending is left to the kubelet", pvcWith("2Gi", "1Gi", "2Gi", corev1.PersistentVolumeClaimNodeResizePending), "2Gi", false, "2Gi", true},
		{"node pending, grown further: wait", pvcWith("3Gi", "1Gi", "2Gi", corev1.PersistentVolumeClaimNodeResizePending), "2Gi", false, "2Gi", true},
		{"node pending, but PV still small", pvcWith("3Gi", "1Gi", "2Gi", corev1.PersistentVolumeClaimNodeResizePending), "1Gi", false, "2Gi", false},
		{"PV grown, status lost: resume", pvcWith("2Gi", "1Gi", "2Gi", ""), "2Gi", false, "2Gi", false},
		{"PV grown, fs pending (old resizer)", pvcWith("2Gi", "1Gi", "", "", corev1.PersistentVolumeClaimFileSystemResizePending), "2Gi", false, "2Gi", true},
		{"node infeasible: controller retries allocated", pvcWith("2Gi", "1Gi", "2Gi", corev1.PersistentVolumeClaimNodeResizeInfeasible), "2Gi", false, "2Gi", false},
	} {
		got, skip := resizeDecision(tc.pvc, q(tc.pvSize), tc.finalError)
		if skip != tc.skip || (!skip && got.String() != tc.want) {
			t.Errorf("%s: got %s skip=%v, want %s skip=%v", tc.name, got.String(), skip, tc.want, tc.skip)
		}
	}
}

func TestMergeResizeConditions(t *testing.T) {
	cond := func(t corev1.PersistentVolumeClaimConditionType, msg string) corev1.PersistentVolumeClaimCondition {
		return corev1.PersistentVolumeClaimCondition{Type: t, Status: corev1.ConditionTrue, Message: msg}
	}
	old := []corev1.PersistentVolumeClaimCondition{
		cond("Other", ""), cond(corev1.PersistentVolumeClaimResizing, "old"), cond(corev1.PersistentVolumeClaimControllerResizeError, "boom"),
	}
	types := func(cs []corev1.PersistentVolumeClaimCondition) []string {
		var out []string
		for _, c := range cs {
			out = append(out, string(c.Type)+"="+c.Message)
		}
		return out
	}
	got := types(mergeResizeConditions(old, []corev1.PersistentVolumeClaimCondition{cond(corev1.PersistentVolumeClaimResizing, "new")}, false))
	if want := []string{"Other=", "Resizing=new"}; !slices.Equal(got, want) {
		t.Errorf("replace: %v, want %v", got, want)
	}
	got = types(mergeResizeConditions(old, []corev1.PersistentVolumeClaimCondition{cond(corev1.PersistentVolumeClaimFileSystemResizePending, "fs")}, true))
	if want := []string{"Other=", "Resizing=old", "ControllerResizeError=boom", "FileSystemResizePending=fs"}; !slices.Equal(got, want) {
		t.Errorf("keep: %v, want %v", got, want)
	}
	if got := types(mergeResizeConditions(old, nil, false)); !slices.Equal(got, []string{"Other="}) {
		t.Errorf("clear: %v", got)
	}
}

func TestExpandsOn(t *testing.T) {
	start := &resizeStart{at: time.Date(2030, 1, 1, 10, 0, 0, 500e6, time.UTC), pods: map[types.UID]bool{"old": true}}
	pod := func(uid string, created time.Time) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: metav1.NewTime(created)}}
	}
	before := start.at.Add(-time.Minute)
	after := start.at.Add(time.Second)
	if !expandsOn(pod("old", before), true, start, time.Time{}) {
		t.Error("online expansion must use any mounting pod")
	}
	if expandsOn(pod("old", before), false, start, time.Time{}) {
		t.Error("offline: the pod that mounted the claim when the expansion began must not count")
	}
	if expandsOn(pod("unseen", before), false, start, time.Time{}) {
		t.Error("offline: a pod created before the expansion must not count")
	}
	if !expandsOn(pod("new", after), false, start, time.Time{}) {
		t.Error("offline: a pod started after the expansion began must count")
	}
	if !expandsOn(pod("new", after), false, nil, start.at) || expandsOn(pod("old", before), false, nil, start.at) {
		t.Error("offline without a record: go by the FileSystemResizePending time")
	}
}

func TestProvisioningRules(t *testing.T) {
	wffc, imm := storagev1.VolumeBindingWaitForFirstConsumer, storagev1.VolumeBindingImmediate
	class := func(mode storagev1.VolumeBindingMode) *storagev1.StorageClass {
		return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Provisioner: DriverName, VolumeBindingMode: &mode}
	}
	claim := func(ann map[string]string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Annotations: ann}}
	}
	ours := map[string]string{annStorageProvisioner: DriverName}
	selected := map[string]string{annStorageProvisioner: DriverName, annSelectedNode: "node-1"}
	if !shouldProvision(claim(ours), class(imm)) || shouldProvision(claim(ours), class(wffc)) || !shouldProvision(claim(selected), class(wffc)) {
		t.Error("binding modes")
	}
	if shouldProvision(claim(map[string]string{annStorageProvisioner: "other"}), class(imm)) || shouldProvision(claim(nil), class(imm)) {
		t.Error("claims of other provisioners")
	}
	bound := claim(ours)
	bound.Spec.VolumeName = "pv"
	if shouldProvision(bound, class(imm)) {
		t.Error("bound claim")
	}

	restricted := class(imm)
	restricted.AllowedTopologies = []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{
		{Key: TopologyKey, Values: []string{"zone-c", "zone-x", "zone-a"}}}}}
	if got := allowedZones(restricted); !slices.Equal(got, []string{"zone-c", "zone-a"}) {
		t.Errorf("allowed zones %v", got)
	}
	if got := allowedZones(class(imm)); !slices.Equal(got, ZoneNames) {
		t.Errorf("all zones %v", got)
	}

	snap := claim(nil)
	snap.Spec.DataSourceRef = &corev1.TypedObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "s"}
	if name, err := dataSource(snap); name != "s" || err != nil {
		t.Errorf("snapshot source: %q %v", name, err)
	}
	clone := claim(nil)
	clone.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "src"}
	if _, err := dataSource(clone); err == nil || !strings.Contains(err.Error(), "cloning") {
		t.Errorf("clone source: %v", err)
	}
}

// The whole life of a volume against fake clients: the test plays the PV
// controller and the scheduler (annotations, binding), the driver does the rest.
func TestDriverAgainstFakeClients(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		snapshotsGVR: "VolumeSnapshotList", contentsGVR: "VolumeSnapshotContentList", classesGVR: "VolumeSnapshotClassList",
	})
	for _, n := range []string{"node-1", "node-2", "node-3"} {
		if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	if _, err := client.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: DriverName, VolumeBindingMode: &wffc,
		Parameters: map[string]string{ParamFSType: "xfs"}, AllowVolumeExpansion: ptr.To(true),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := New(client, dyn, "")
	if err := d.Run(ctx, []string{"node-1", "node-2", "node-3"}); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	defer cancel()

	poll := func(what string, cond func(ctx context.Context) (bool, error)) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 15*time.Second, true, cond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}

	// Registration: every node, and a CSIDriver without attachment.
	for node, zone := range map[string]string{"node-1": "zone-a", "node-2": "zone-b", "node-3": "zone-c"} {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels[TopologyKey] != zone {
			t.Errorf("%s labels %v, want %s=%s", node, n.Labels, TopologyKey, zone)
		}
		cn, err := client.StorageV1().CSINodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Errorf("CSINode %s: %v", node, err)
			continue
		}
		if len(cn.Spec.Drivers) != 1 || cn.Spec.Drivers[0].Name != DriverName || cn.Spec.Drivers[0].NodeID != node ||
			!slices.Equal(cn.Spec.Drivers[0].TopologyKeys, []string{TopologyKey}) {
			t.Errorf("CSINode %s drivers %+v", node, cn.Spec.Drivers)
		}
		if len(cn.OwnerReferences) != 1 || cn.OwnerReferences[0].Kind != "Node" || cn.OwnerReferences[0].Name != node {
			t.Errorf("CSINode %s owner references %+v", node, cn.OwnerReferences)
		}
	}
	drv, err := client.StorageV1().CSIDrivers().Get(ctx, DriverName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("CSIDriver: %v", err)
	}
	if drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired {
		t.Errorf("CSIDriver attachRequired %v, want false", drv.Spec.AttachRequired)
	}

	// Provisioning on the selected node's zone.
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "ns", UID: "u1", Annotations: map[string]string{
			annStorageProvisioner: DriverName, annSelectedNode: "node-2"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("fast"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: q("1Gi")}},
		},
	}
	if _, err := client.CoreV1().PersistentVolumeClaims("ns").Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pv *corev1.PersistentVolume
	poll("PV provisioned", func(ctx context.Context) (bool, error) {
		pv, err = client.CoreV1().PersistentVolumes().Get(ctx, "pvc-u1", metav1.GetOptions{})
		return err == nil, nil
	})
	if pv.Spec.CSI.FSType != "xfs" || pv.Spec.ClaimRef.UID != "u1" || pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "zone-b" ||
		!slices.Contains(pv.Finalizers, provisionerFinalizer) || pv.Annotations[annProvisionedBy] != DriverName {
		t.Errorf("PV %+v", pv)
	}

	// The PV controller binds.
	pv.Status.Phase = corev1.VolumeBound
	if _, err := client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc, _ = client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "data", metav1.GetOptions{})
	pvc.Spec.VolumeName = pv.Name
	if pvc, err = client.CoreV1().PersistentVolumeClaims("ns").Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: q("1Gi")}}
	if _, err := client.CoreV1().PersistentVolumeClaims("ns").UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Expansion: controller part, then nothing until a pod mounts the claim.
	pvc, _ = client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "data", metav1.GetOptions{})
	pvc.Spec.Resources.Requests[corev1.ResourceStorage] = q("2Gi")
	if _, err := client.CoreV1().PersistentVolumeClaims("ns").Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("NodeResizePending", func(ctx context.Context) (bool, error) {
		c, err := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "data", metav1.GetOptions{})
		return err == nil && c.Status.AllocatedResourceStatuses[corev1.ResourceStorage] == corev1.PersistentVolumeClaimNodeResizePending &&
			hasCondition(c, corev1.PersistentVolumeClaimFileSystemResizePending), nil
	})
	pv, _ = client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	if c := pv.Spec.Capacity[corev1.ResourceStorage]; c.String() != "2Gi" {
		t.Errorf("PV capacity %s", c.String())
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", UID: "p1"},
		Spec: corev1.PodSpec{NodeName: "node-2", Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}},
	}
	if _, err := client.CoreV1().Pods("ns").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("file system grown", func(ctx context.Context) (bool, error) {
		c, err := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		capacity := c.Status.Capacity[corev1.ResourceStorage]
		return capacity.String() == "2Gi" && c.Status.AllocatedResourceStatuses == nil && len(c.Status.Conditions) == 0, nil
	})

	// Snapshot: content, finalizers, ready with the volume's size.
	if _, err := dyn.Resource(classesGVR).Get(ctx, SnapshotClass, metav1.GetOptions{}); err != nil {
		t.Fatalf("VolumeSnapshotClass: %v", err)
	}
	snap := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
		"metadata": map[string]interface{}{"name": "snap", "namespace": "ns", "uid": "s1"},
		"spec":     map[string]interface{}{"source": map[string]interface{}{"persistentVolumeClaimName": "data"}},
	}}
	if _, err := dyn.Resource(snapshotsGVR).Namespace("ns").Create(ctx, snap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("snapshot ready", func(ctx context.Context) (bool, error) {
		s, err := dyn.Resource(snapshotsGVR).Namespace("ns").Get(ctx, "snap", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ready, _, _ := unstructured.NestedBool(s.Object, "status", "readyToUse")
		size, _, _ := unstructured.NestedString(s.Object, "status", "restoreSize")
		return ready && size == "2Gi" && slices.Contains(s.GetFinalizers(), snapshotSourceFinalizer) &&
			slices.Contains(s.GetFinalizers(), snapshotBoundFinalizer), nil
	})
	content, err := dyn.Resource(contentsGVR).Get(ctx, "snapcontent-s1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := unstructured.NestedString(content.Object, "spec", "source", "volumeHandle"); h != pv.Spec.CSI.VolumeHandle {
		t.Errorf("content source %q", h)
	}
	poll("content finalizer", func(ctx context.Context) (bool, error) {
		c, err := dyn.Resource(contentsGVR).Get(ctx, "snapcontent-s1", metav1.GetOptions{})
		return err == nil && slices.Contains(c.GetFinalizers(), contentFinalizer), nil
	})

	// Release: the volume is deleted.
	pv, _ = client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	pv.Status.Phase = corev1.VolumeReleased
	if _, err := client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("released PV deleted", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err != nil, nil
	})

	// Events are written asynchronously by the broadcaster.
	want := []string{"PersistentVolumeClaim/Provisioning", "PersistentVolumeClaim/ProvisioningSucceeded",
		"PersistentVolumeClaim/Resizing", "PersistentVolumeClaim/FileSystemResizeRequired",
		"PersistentVolumeClaim/FileSystemResizeSuccessful", "Pod/FileSystemResizeSuccessful",
		"VolumeSnapshot/CreatingSnapshot", "VolumeSnapshot/SnapshotCreated", "VolumeSnapshot/SnapshotReady"}
	seen := map[string]bool{}
	poll("events", func(ctx context.Context) (bool, error) {
		events, err := client.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range events.Items {
			seen[e.InvolvedObject.Kind+"/"+e.Reason] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false, nil
			}
		}
		return true, nil
	})
}
