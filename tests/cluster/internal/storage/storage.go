// Package storage installs the cluster's StorageClasses and keeps track of the
// host-path directories that this cluster's kube-controller-manager provisions, so
// that exactly those can be removed at shutdown.
//
// The in-tree kubernetes.io/host-path provisioner (kube-controller-manager
// --enable-hostpath-provisioner, pkg/volume/hostpath) always creates
// /tmp/hostpath_pv/<uuid> — the /tmp prefix is hard-coded, it ignores TMPDIR and
// cannot be configured. Several clusters may share that directory, so the cleanup
// removes only directories named by PersistentVolumes of this cluster.
package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"kubectl-stateful/tests/cluster/internal/csi"
)

// Class names.
const (
	DefaultClass = "standard"
	LocalClass   = "local-storage"
	// FastClass and FastImmediateClass belong to the simulated CSI driver
	// csi.stateful.test (package csi): expandable, WaitForFirstConsumer resp.
	// Immediate binding.
	FastClass          = "fast"
	FastImmediateClass = "fast-immediate"

	// HostPathBase is where the host-path provisioner creates volumes.
	HostPathBase = "/tmp/hostpath_pv/"
)

// Classes are the StorageClasses installed at start. The host-path plugin does not
// implement volume expansion, so allowVolumeExpansion is left unset on standard.
func Classes() []*storagev1.StorageClass {
	immediate := storagev1.VolumeBindingImmediate
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	del := corev1.PersistentVolumeReclaimDelete
	csiParams := map[string]string{csi.ParamFSType: "ext4"}
	return []*storagev1.StorageClass{
		{
			ObjectMeta: metav1.ObjectMeta{Name: DefaultClass, Annotations: map[string]string{
				"storageclass.kubernetes.io/is-default-class": "true"}},
			Provisioner:       "kubernetes.io/host-path",
			ReclaimPolicy:     &del,
			VolumeBindingMode: &immediate,
		},
		{
			ObjectMeta:        metav1.ObjectMeta{Name: LocalClass},
			Provisioner:       "kubernetes.io/no-provisioner",
			ReclaimPolicy:     &del,
			VolumeBindingMode: &wffc,
		},
		{
			ObjectMeta:           metav1.ObjectMeta{Name: FastClass},
			Provisioner:          csi.DriverName,
			Parameters:           csiParams,
			ReclaimPolicy:        &del,
			VolumeBindingMode:    &wffc,
			AllowVolumeExpansion: ptr.To(true),
		},
		{
			ObjectMeta:           metav1.ObjectMeta{Name: FastImmediateClass},
			Provisioner:          csi.DriverName,
			Parameters:           csiParams,
			ReclaimPolicy:        &del,
			VolumeBindingMode:    &immediate,
			AllowVolumeExpansion: ptr.To(true),
		},
	}
}

// EnsureClasses creates the StorageClasses (existing ones are left alone).
func EnsureClasses(ctx context.Context, client kubernetes.Interface) error {
	for _, sc := range Classes() {
		_, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating StorageClass %s: %w", sc.Name, err)
		}
	}
	return nil
}

// HostPathTracker records the host-path directories of this cluster's dynamically
// provisioned PersistentVolumes, from a PV informer (so it keeps working up to the
// moment the apiserver stops) and a final list at shutdown.
type HostPathTracker struct {
	client  kubernetes.Interface
	logFile string // every tracked directory is appended here, for the record

	mu   sync.Mutex
	dirs map[string]bool
}

// NewHostPathTracker creates a tracker; recordFile lists the directories seen.
func NewHostPathTracker(client kubernetes.Interface, recordFile string) *HostPathTracker {
	return &HostPathTracker{client: client, logFile: recordFile, dirs: map[string]bool{}}
}

// provisionedDir returns the provisioner's directory of pv, if pv is one.
func provisionedDir(pv *corev1.PersistentVolume) (string, bool) {
	if pv.Spec.HostPath == nil {
		return "", false
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != "kubernetes.io/host-path" &&
		pv.Annotations["kubernetes.io/createdby"] != "hostpath-dynamic-provisioner" {
		return "", false
	}
	p := filepath.Clean(pv.Spec.HostPath.Path)
	// Exactly one level below the base, as the provisioner creates it.
	if !strings.HasPrefix(p, HostPathBase) || strings.Contains(strings.TrimPrefix(p, HostPathBase), "/") {
		return "", false
	}
	return p, true
}

func (t *HostPathTracker) add(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok {
		return
	}
	dir, ok := provisionedDir(pv)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirs[dir] {
		return
	}
	t.dirs[dir] = true
	if f, err := os.OpenFile(t.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintf(f, "%s %s\n", pv.Name, dir)
		f.Close()
	}
}

// Start runs the PV informer until ctx is done.
func (t *HostPathTracker) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(t.client, 0)
	inf := factory.Core().V1().PersistentVolumes().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    t.add,
		UpdateFunc: func(_, obj interface{}) { t.add(obj) },
		DeleteFunc: t.add,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	return nil
}

// Refresh lists the PVs once more (best effort, used just before shutdown).
func (t *HostPathTracker) Refresh(ctx context.Context) {
	list, err := t.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		klog.InfoS("listing PersistentVolumes for cleanup", "err", err)
		return
	}
	for i := range list.Items {
		t.add(&list.Items[i])
	}
}

// Remove deletes every tracked directory and returns what it removed.
func (t *HostPathTracker) Remove() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var removed []string
	for dir := range t.dirs {
		if err := os.RemoveAll(dir); err != nil {
			klog.InfoS("removing host-path volume directory", "dir", dir, "err", err)
			continue
		}
		removed = append(removed, dir)
	}
	sort.Strings(removed)
	return removed
}
