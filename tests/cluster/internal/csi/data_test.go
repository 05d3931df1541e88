package csi

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
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

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readFile returns the file's text, or "<none>" when it does not exist.
func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func dirExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

func TestDataStore(t *testing.T) {
	root := filepath.Join(t.TempDir(), DataDirName)
	s := dataStore{root: root}
	if err := s.init(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"volumes", "snapshots"} {
		if !dirExists(filepath.Join(root, sub)) {
			t.Errorf("init made no %s directory", sub)
		}
	}
	if got, want := s.VolumeDir("vol-1"), filepath.Join(root, "volumes", "vol-1"); got != want {
		t.Errorf("VolumeDir %s, want %s", got, want)
	}
	if got, want := s.SnapshotDir("snap-1"), filepath.Join(root, "snapshots", "snap-1"); got != want {
		t.Errorf("SnapshotDir %s, want %s", got, want)
	}

	// CreateVolume: an empty directory; a retry leaves the content alone.
	if err := s.createVolume("vol-1", ""); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.VolumeDir("vol-1"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("new volume: %v %v", entries, err)
	}
	vol := s.VolumeDir("vol-1")
	writeFile(t, filepath.Join(vol, "marker"), "one")
	writeFile(t, filepath.Join(vol, "sub", "deep", "file"), "deep")
	if err := os.Symlink("marker", filepath.Join(vol, "link")); err != nil {
		t.Fatal(err)
	}
	if err := s.createVolume("vol-1", ""); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(vol, "marker")); got != "one" {
		t.Errorf("retried CreateVolume changed the content: %q", got)
	}

	// CreateSnapshot: a copy of the volume as it is now, independent of it.
	if err := s.cutSnapshot("vol-1", "snap-1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(vol, "marker"), "two")
	if err := s.cutSnapshot("vol-1", "snap-1"); err != nil { // retried: unchanged
		t.Fatal(err)
	}
	snap := s.SnapshotDir("snap-1")
	if got := readFile(t, filepath.Join(snap, "marker")); got != "one" {
		t.Errorf("snapshot marker %q, want the content at the cut (one)", got)
	}
	if got := readFile(t, filepath.Join(snap, "sub", "deep", "file")); got != "deep" {
		t.Errorf("snapshot lost a nested file: %q", got)
	}
	if link, err := os.Readlink(filepath.Join(snap, "link")); err != nil || link != "marker" {
		t.Errorf("snapshot link %q %v", link, err)
	}
	if entries, err := os.ReadDir(filepath.Join(root, "tmp")); err != nil || len(entries) != 0 {
		t.Errorf("copies left behind in tmp: %v %v", entries, err)
	}

	// Restore: the new volume gets the snapshot's content.
	if err := s.createVolume("vol-2", "snap-1"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(s.VolumeDir("vol-2"), "marker")); got != "one" {
		t.Errorf("restored marker %q, want one", got)
	}
	writeFile(t, filepath.Join(s.VolumeDir("vol-2"), "marker"), "three")
	if got := readFile(t, filepath.Join(snap, "marker")); got != "one" {
		t.Errorf("writing the restored volume changed the snapshot: %q", got)
	}

	// Failures a real driver reports.
	if err := s.createVolume("vol-3", "snap-missing"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("restore from a missing snapshot: %v", err)
	}
	if dirExists(s.VolumeDir("vol-3")) {
		t.Errorf("a failed restore left a volume")
	}
	if err := s.cutSnapshot("vol-missing", "snap-2"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("snapshot of a missing volume: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x"} {
		if err := s.createVolume(bad, ""); err == nil {
			t.Errorf("handle %q accepted", bad)
		}
		if err := s.deleteSnapshot(bad); err == nil {
			t.Errorf("snapshot handle %q accepted", bad)
		}
	}

	// DeleteVolume and DeleteSnapshot; both idempotent.
	if err := s.deleteVolume("vol-1"); err != nil {
		t.Fatal(err)
	}
	if dirExists(vol) {
		t.Errorf("deleted volume still there")
	}
	if !dirExists(snap) || !dirExists(s.VolumeDir("vol-2")) {
		t.Errorf("deleting a volume removed its snapshot or a restored volume")
	}
	if err := s.deleteVolume("vol-1"); err != nil {
		t.Errorf("second DeleteVolume: %v", err)
	}
	if err := s.deleteSnapshot("snap-1"); err != nil {
		t.Fatal(err)
	}
	if dirExists(snap) {
		t.Errorf("deleted snapshot still there")
	}
	if err := s.deleteSnapshot("snap-1"); err != nil {
		t.Errorf("second DeleteSnapshot: %v", err)
	}

	// Without a root nothing is kept and nothing fails.
	none := dataStore{}
	if err := none.init(); err != nil {
		t.Error(err)
	}
	if err := none.createVolume("vol-1", "snap-1"); err != nil {
		t.Error(err)
	}
	if err := none.cutSnapshot("vol-1", "snap-1"); err != nil {
		t.Error(err)
	}
	if none.VolumeDir("vol-1") != "" || none.SnapshotDir("snap-1") != "" {
		t.Error("a store without root names directories")
	}
}

// The content through a volume's life against fake clients: provisioning,
// expansion, a snapshot, a restore from it, the deletion of the volume and of the
// snapshot content, each in the order the sidecars make the CSI calls. The test
// plays the PV controller (binding, Released) and the snapshot-controller's
// deletion of the content.
func TestVolumeDataAgainstFakeClients(t *testing.T) {
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
	immediate := storagev1.VolumeBindingImmediate
	if _, err := client.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: "fast-immediate"}, Provisioner: DriverName, VolumeBindingMode: &immediate,
		Parameters: map[string]string{ParamFSType: "ext4"}, AllowVolumeExpansion: ptr.To(true),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), DataDirName)
	d := New(client, dyn, root)
	if err := d.Run(ctx, []string{"node-1", "node-2", "node-3"}); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	defer cancel()
	store := dataStore{root: root}

	poll := func(what string, cond func(ctx context.Context) (bool, error)) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 15*time.Second, true, cond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	claims := client.CoreV1().PersistentVolumeClaims("ns")
	newClaim := func(name, uid, size string, source *corev1.TypedLocalObjectReference) {
		t.Helper()
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid), Annotations: map[string]string{
				annStorageProvisioner: DriverName}},
			Spec: corev1.PersistentVolumeClaimSpec{
				StorageClassName: ptr.To("fast-immediate"),
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: q(size)}},
				DataSource:       source,
			},
		}
		if _, err := claims.Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// provisioned waits for the PV of claim uid: its content must exist by then.
	provisioned := func(uid string) *corev1.PersistentVolume {
		t.Helper()
		var pv *corev1.PersistentVolume
		poll("PV pvc-"+uid, func(ctx context.Context) (bool, error) {
			var err error
			pv, err = client.CoreV1().PersistentVolumes().Get(ctx, "pvc-"+uid, metav1.GetOptions{})
			return err == nil, nil
		})
		if !dirExists(store.VolumeDir(pv.Spec.CSI.VolumeHandle)) {
			t.Fatalf("PV %s saved before its content %s exists", pv.Name, store.VolumeDir(pv.Spec.CSI.VolumeHandle))
		}
		return pv
	}
	bind := func(name string, pv *corev1.PersistentVolume) {
		t.Helper()
		pv.Status.Phase = corev1.VolumeBound
		if _, err := client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		pvc, err := claims.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pvc.Spec.VolumeName = pv.Name
		if pvc, err = claims.Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: pv.Spec.Capacity}
		if _, err := claims.UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Provisioning: an empty volume.
	newClaim("data", "u1", "1Gi", nil)
	pv := provisioned("u1")
	bind("data", pv)
	vol := store.VolumeDir(pv.Spec.CSI.VolumeHandle)
	if entries, err := os.ReadDir(vol); err != nil || len(entries) != 0 {
		t.Fatalf("new volume content %v %v", entries, err)
	}
	writeFile(t, filepath.Join(vol, "marker"), "before")

	// Expansion (the controller part) keeps the content.
	pvc, _ := claims.Get(ctx, "data", metav1.GetOptions{})
	pvc.Spec.Resources.Requests[corev1.ResourceStorage] = q("2Gi")
	if _, err := claims.Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("PV expanded", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		c := p.Spec.Capacity[corev1.ResourceStorage]
		return c.String() == "2Gi", nil
	})
	if got := readFile(t, filepath.Join(vol, "marker")); got != "before" {
		t.Errorf("marker after expansion %q, want before", got)
	}

	// Snapshot: the content is copied before the content's status names it.
	snap := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
		"metadata": map[string]interface{}{"name": "snap", "namespace": "ns", "uid": "s1"},
		"spec":     map[string]interface{}{"source": map[string]interface{}{"persistentVolumeClaimName": "data"}},
	}}
	if _, err := dyn.Resource(snapshotsGVR).Namespace("ns").Create(ctx, snap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var snapHandle string
	poll("snapshot handle", func(ctx context.Context) (bool, error) {
		c, err := dyn.Resource(contentsGVR).Get(ctx, "snapcontent-s1", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		snapHandle, _, _ = unstructured.NestedString(c.Object, "status", "snapshotHandle")
		return snapHandle != "", nil
	})
	if got := readFile(t, filepath.Join(store.SnapshotDir(snapHandle), "marker")); got != "before" {
		t.Fatalf("snapshot %s marker %q once its handle was written, want before", snapHandle, got)
	}
	poll("snapshot ready", func(ctx context.Context) (bool, error) {
		s, err := dyn.Resource(snapshotsGVR).Namespace("ns").Get(ctx, "snap", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ready, _, _ := unstructured.NestedBool(s.Object, "status", "readyToUse")
		return ready, nil
	})
	poll("content finalizer", func(ctx context.Context) (bool, error) {
		c, err := dyn.Resource(contentsGVR).Get(ctx, "snapcontent-s1", metav1.GetOptions{})
		return err == nil && slices.Contains(c.GetFinalizers(), contentFinalizer), nil
	})
	// Later writes to the volume do not reach the snapshot.
	writeFile(t, filepath.Join(vol, "marker"), "after")

	// Restore: the new volume holds the snapshot's content, not the volume's.
	// At least the snapshot's restoreSize (the expanded 2Gi).
	newClaim("restored", "u2", "2Gi", &corev1.TypedLocalObjectReference{
		APIGroup: ptr.To(snapshotGV.Group), Kind: "VolumeSnapshot", Name: "snap"})
	restored := provisioned("u2")
	if got := readFile(t, filepath.Join(store.VolumeDir(restored.Spec.CSI.VolumeHandle), "marker")); got != "before" {
		t.Errorf("restored marker %q, want before", got)
	}

	// Release with reclaim Delete: the content goes before the PV object.
	pv, _ = client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	pv.Status.Phase = corev1.VolumeReleased
	if _, err := client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("released volume's content deleted", func(ctx context.Context) (bool, error) {
		return !dirExists(vol), nil
	})
	poll("released PV deleted", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err != nil, nil
	})
	if !dirExists(store.SnapshotDir(snapHandle)) || !dirExists(store.VolumeDir(restored.Spec.CSI.VolumeHandle)) {
		t.Errorf("deleting the source volume removed its snapshot or the restored volume")
	}

	// The snapshot-controller deletes the content (policy Delete): the sidecar
	// deletes the snapshot's copy before it removes the content's finalizer.
	// (The fake client deletes at once, so the test sets deletionTimestamp itself.)
	c, err := dyn.Resource(contentsGVR).Get(ctx, "snapcontent-s1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if policy, _, _ := unstructured.NestedString(c.Object, "spec", "deletionPolicy"); policy != "Delete" {
		t.Fatalf("content deletionPolicy %q", policy)
	}
	now := metav1.Now()
	c.SetDeletionTimestamp(&now)
	if _, err := dyn.Resource(contentsGVR).Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("content finalizer removed", func(ctx context.Context) (bool, error) {
		c, err := dyn.Resource(contentsGVR).Get(ctx, "snapcontent-s1", metav1.GetOptions{})
		return err == nil && !slices.Contains(c.GetFinalizers(), contentFinalizer), nil
	})
	if dirExists(store.SnapshotDir(snapHandle)) {
		t.Errorf("content finalizer removed while the snapshot's copy %s exists", store.SnapshotDir(snapHandle))
	}
	if got := readFile(t, filepath.Join(store.VolumeDir(restored.Spec.CSI.VolumeHandle), "marker")); got != "before" {
		t.Errorf("deleting the snapshot changed the restored volume: %q", got)
	}
}
