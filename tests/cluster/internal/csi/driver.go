// Package csi simulates the CSI driver csi.stateful.test and the Kubernetes
// sidecars around it, at the API level only: no gRPC, no mounts. It keeps the
// content of its volumes and snapshots as directories (data.go) so that tests
// can check whether data survived, and writes the objects, annotations, finalizers, conditions and events the real
// components write, in the same order:
//
//   - registration (kubelet plugin registration): the CSIDriver object, a CSINode
//     entry per node with the topology key topology.stateful.test/zone, and the
//     zone labels on the Nodes;
//   - provisioner.go: external-provisioner (CreateVolume/DeleteVolume);
//   - resizer.go: external-resizer (ControllerExpandVolume);
//   - kubelet.go: the kubelet's part of an expansion (NodeExpandVolume);
//   - snapshot.go: snapshot-controller and csi-snapshotter, on the published
//     snapshot.storage.k8s.io/v1 CRDs (package crds).
//
// Fault knobs come from class parameters (params.go).
package csi

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"kubectl-stateful/tests/cluster/internal/csi/crds"
)

// Names of the driver and of what it installs.
const (
	DriverName    = "csi.stateful.test"
	TopologyKey   = "topology.stateful.test/zone"
	SnapshotClass = "fast-snapshots"
)

// Zones of the simulated nodes: node-1 → zone-a, node-2 → zone-b, node-3 → zone-c.
var Zones = map[string]string{"node-1": "zone-a", "node-2": "zone-b", "node-3": "zone-c"}

// ZoneNames are the zones in order.
var ZoneNames = []string{"zone-a", "zone-b", "zone-c"}

// Well-known annotations and finalizers of the real components.
const (
	annStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	annBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode           = "volume.kubernetes.io/selected-node"
	annProvisionedBy          = "pv.kubernetes.io/provisioned-by"
	provisionerFinalizer      = "external-provisioner.volume.kubernetes.io/finalizer"
	attrProvisionerIdentity   = "storage.kubernetes.io/csiProvisionerIdentity"
)

// Snapshot API.
var (
	snapshotGV   = schema.GroupVersion{Group: "snapshot.storage.k8s.io", Version: "v1"}
	snapshotsGVR = snapshotGV.WithResource("volumesnapshots")
	contentsGVR  = snapshotGV.WithResource("volumesnapshotcontents")
	classesGVR   = snapshotGV.WithResource("volumesnapshotclasses")
)

// Driver runs the simulated driver and sidecars.
type Driver struct {
	client kubernetes.Interface
	dyn    dynamic.Interface

	identity string    // the provisioner identity, as external-provisioner makes one
	data     dataStore // the volumes' and snapshots' content

	factory    informers.SharedInformerFactory
	dynFactory dynamicinformer.DynamicSharedInformerFactory
	claims     corelisters.PersistentVolumeClaimLister
	volumes    corelisters.PersistentVolumeLister
	volumeIdx  cache.Indexer
	classes    storagelisters.StorageClassLister
	nodes      corelisters.NodeLister
	pods       corelisters.PodLister
	podIdx     cache.Indexer
	snapshots  cache.GenericLister
	contents   cache.GenericLister
	snapClass  cache.GenericLister

	broadcaster record.EventBroadcaster
	provRec     record.EventRecorder
	resizerRec  record.EventRecorder
	snapCtrlRec record.EventRecorder
	snapSideRec record.EventRecorder
	kubeletRec  map[string]record.EventRecorder

	provisionClaims  *loop
	provisionVolumes *loop
	resizer          *loop
	kubelet          *loop
	snapshotCtrl     *loop
	contentCtrl      *loop
	sidecar          *loop

	mu         sync.Mutex
	provOps    map[types.UID]time.Time // claim → CreateVolume started
	resizeOps  map[types.UID]*resizeOp
	finalErr   map[types.UID]bool // claims whose last controller expansion failed with a final error
	slow       map[types.UID]time.Time
	resizeFrom map[types.UID]*resizeStart
	nextZone   int
}

// New creates a driver; Run starts it. dataDir holds the content of the
// volumes and snapshots (see data.go; created when needed); "" keeps no data.
func New(client kubernetes.Interface, dyn dynamic.Interface, dataDir string) *Driver {
	d := &Driver{
		client:     client,
		dyn:        dyn,
		data:       dataStore{root: dataDir},
		identity:   strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond), 10) + "-" + string(uuid.NewUUID())[:4] + "-" + DriverName,
		provOps:    map[types.UID]time.Time{},
		resizeOps:  map[types.UID]*resizeOp{},
		finalErr:   map[types.UID]bool{},
		slow:       map[types.UID]time.Time{},
		resizeFrom: map[types.UID]*resizeStart{},
		kubeletRec: map[string]record.EventRecorder{},
	}
	d.provisionClaims = newLoop("csi-provisioner-claims", d.syncProvision)
	d.provisionVolumes = newLoop("csi-provisioner-volumes", d.syncDelete)
	d.resizer = newLoop("csi-resizer", d.syncResize)
	d.kubelet = newLoop("csi-kubelet-expand", d.syncNodeExpand)
	d.snapshotCtrl = newLoop("snapshot-controller-snapshots", d.syncSnapshot)
	d.contentCtrl = newLoop("snapshot-controller-contents", d.syncContent)
	d.sidecar = newLoop("csi-snapshotter", d.syncSidecar)
	return d
}

// InstallCRDs creates the snapshot CRDs (existing ones are left alone). It does
// not wait for them to be established; Run does.
func InstallCRDs(ctx context.Context, ext apiextensions.Interface) error {
	list, err := crds.CRDs()
	if err != nil {
		return err
	}
	for _, crd := range list {
		_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
		}
	}
	return nil
}

// WaitCRDs waits until the snapshot CRDs are established (at most timeout).
func WaitCRDs(ctx context.Context, ext apiextensions.Interface, timeout time.Duration) error {
	list, err := crds.CRDs()
	if err != nil {
		return err
	}
	var missing string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, want := range list {
			crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, want.Name, metav1.GetOptions{})
			if err != nil {
				missing = fmt.Sprintf("%s: %v", want.Name, err)
				return false, nil
			}
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				missing = want.Name + " not established"
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("snapshot CRDs: %s: %w", missing, err)
	}
	return nil
}

// CSIDriverObject is the driver's registration object.
func CSIDriverObject() *storagev1.CSIDriver {
	return &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: DriverName},
		Spec: storagev1.CSIDriverSpec{
			// Without attachRequired: false every pod would wait for a VolumeAttachment.
			AttachRequired:       ptr.To(false),
			PodInfoOnMount:       ptr.To(false),
			StorageCapacity:      ptr.To(false),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
		},
	}
}

// SnapshotClassObject is the VolumeSnapshotClass installed at start. It is the
// default class for this driver (annotation snapshot.storage.kubernetes.io/is-default-class).
func SnapshotClassObject() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": snapshotGV.String(),
		"kind":       "VolumeSnapshotClass",
		"metadata": map[string]interface{}{
			"name":        SnapshotClass,
			"annotations": map[string]interface{}{annDefaultSnapshotClass: "true"},
		},
		"driver":         DriverName,
		"deletionPolicy": "Delete",
	}}
}

// Register plays the kubelet's plugin registration on every node in nodeNames:
// the zone label on the Node and the driver in its CSINode (created if missing,
// owned by the Node like the kubelet makes it). It also creates the CSIDriver
// object and the VolumeSnapshotClass (the CRDs must be established).
func (d *Driver) Register(ctx context.Context, nodeNames []string) error {
	_, err := d.client.StorageV1().CSIDrivers().Create(ctx, CSIDriverObject(), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating CSIDriver: %w", err)
	}
	for _, name := range nodeNames {
		if err := d.registerNode(ctx, name); err != nil {
			return fmt.Errorf("registering %s on node %s: %w", DriverName, name, err)
		}
	}
	_, err = d.dyn.Resource(classesGVR).Create(ctx, SnapshotClassObject(), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating VolumeSnapshotClass %s: %w", SnapshotClass, err)
	}
	return nil
}

func (d *Driver) registerNode(ctx context.Context, name string) error {
	zone, ok := Zones[name]
	if !ok {
		return fmt.Errorf("no zone for node %s", name)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, TopologyKey, zone)
	node, err := d.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return err
	}
	entry := storagev1.CSINodeDriver{Name: DriverName, NodeID: name, TopologyKeys: []string{TopologyKey}}
	csiNodes := d.client.StorageV1().CSINodes()
	existing, err := csiNodes.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = csiNodes.Create(ctx, &storagev1.CSINode{
			ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID}}},
			Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{entry}},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	for _, drv := range existing.Spec.Drivers {
		if drv.Name == DriverName {
			return nil
		}
	}
	existing.Spec.Drivers = append(existing.Spec.Drivers, entry)
	_, err = csiNodes.Update(ctx, existing, metav1.UpdateOptions{})
	return err
}

// NotReady lists what of the registration is still missing (for the cluster's
// readiness check).
func NotReady(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, nodeNames []string) []string {
	var missing []string
	if _, err := client.StorageV1().CSIDrivers().Get(ctx, DriverName, metav1.GetOptions{}); err != nil {
		missing = append(missing, fmt.Sprintf("CSIDriver %s: %v", DriverName, err))
	}
	for _, name := range nodeNames {
		n, err := client.StorageV1().CSINodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			missing = append(missing, fmt.Sprintf("CSINode %s: %v", name, err))
			continue
		}
		found := false
		for _, drv := range n.Spec.Drivers {
			found = found || drv.Name == DriverName
		}
		if !found {
			missing = append(missing, fmt.Sprintf("CSINode %s has no driver %s", name, DriverName))
		}
	}
	if _, err := dyn.Resource(classesGVR).Get(ctx, SnapshotClass, metav1.GetOptions{}); err != nil {
		missing = append(missing, fmt.Sprintf("VolumeSnapshotClass %s: %v", SnapshotClass, err))
	}
	sort.Strings(missing)
	return missing
}

// Run registers the driver on nodeNames, starts the informers and controllers and
// returns once the caches have synced. The controllers run until ctx is done.
func (d *Driver) Run(ctx context.Context, nodeNames []string) error {
	if err := d.data.init(); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := d.Register(ctx, nodeNames); err != nil {
		return err
	}
	d.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	d.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: d.client.CoreV1().Events("")})
	rec := func(component, host string) record.EventRecorder {
		return d.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component, Host: host})
	}
	d.provRec = rec(DriverName+"_kcluster_"+string(uuid.NewUUID()), "")
	d.resizerRec = rec("external-resizer "+DriverName, "")
	d.snapCtrlRec = rec("snapshot-controller", "")
	d.snapSideRec = rec("csi-snapshotter "+DriverName, "")
	for _, n := range nodeNames {
		d.kubeletRec[n] = rec("kubelet", n)
	}

	if err := d.setupInformers(); err != nil {
		return err
	}
	d.factory.Start(ctx.Done())
	d.dynFactory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for typ, ok := range d.factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	for gvr, ok := range d.dynFactory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync", gvr)
		}
	}
	for _, l := range []*loop{d.provisionClaims, d.provisionVolumes, d.resizer, d.kubelet,
		d.snapshotCtrl, d.contentCtrl, d.sidecar} {
		l.run(ctx, 2)
	}
	klog.InfoS("csi: driver running", "driver", DriverName, "identity", d.identity)
	return nil
}

// Shutdown stops the informers and the event broadcaster (after ctx of Run was
// cancelled).
func (d *Driver) Shutdown() {
	if d.factory != nil {
		d.factory.Shutdown()
	}
	if d.dynFactory != nil {
		d.dynFactory.Shutdown()
	}
	if d.broadcaster != nil {
		d.broadcaster.Shutdown()
	}
}

const (
	indexByHandle = "csi-volume-handle"
	indexByClaim  = "claim"
)

func (d *Driver) setupInformers() error {
	d.factory = informers.NewSharedInformerFactory(d.client, resync)
	d.dynFactory = dynamicinformer.NewDynamicSharedInformerFactory(d.dyn, resync)

	claimInf := d.factory.Core().V1().PersistentVolumeClaims()
	volumeInf := d.factory.Core().V1().PersistentVolumes()
	classInf := d.factory.Storage().V1().StorageClasses()
	nodeInf := d.factory.Core().V1().Nodes()
	podInf := d.factory.Core().V1().Pods()
	d.claims, d.volumes, d.classes = claimInf.Lister(), volumeInf.Lister(), classInf.Lister()
	d.nodes, d.pods = nodeInf.Lister(), podInf.Lister()

	if err := volumeInf.Informer().AddIndexers(cache.Indexers{indexByHandle: func(obj interface{}) ([]string, error) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok && pv.Spec.CSI != nil && pv.Spec.CSI.Driver == DriverName {
			return []string{pv.Spec.CSI.VolumeHandle}, nil
		}
		return nil, nil
	}}); err != nil {
		return err
	}
	d.volumeIdx = volumeInf.Informer().GetIndexer()
	if err := podInf.Informer().AddIndexers(cache.Indexers{indexByClaim: func(obj interface{}) ([]string, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, nil
		}
		var keys []string
		for _, name := range podClaimNames(pod) {
			keys = append(keys, pod.Namespace+"/"+name)
		}
		return keys, nil
	}}); err != nil {
		return err
	}
	d.podIdx = podInf.Informer().GetIndexer()

	snapInf := d.dynFactory.ForResource(snapshotsGVR)
	contentInf := d.dynFactory.ForResource(contentsGVR)
	snapClassInf := d.dynFactory.ForResource(classesGVR)
	d.snapshots, d.contents, d.snapClass = snapInf.Lister(), contentInf.Lister(), snapClassInf.Lister()

	key := func(obj interface{}) (string, bool) {
		k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		return k, err == nil
	}
	onClaim := func(obj interface{}) {
		k, ok := key(obj)
		if !ok {
			return
		}
		d.provisionClaims.add(k)
		d.resizer.add(k)
		d.kubelet.add(k)
		if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			// Snapshots of this claim wait for it to be bound; restores from a
			// snapshot hold up its deletion while they are pending.
			d.enqueueSnapshotsOfClaim(pvc)
		}
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{claimInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: onClaim, UpdateFunc: func(_, obj interface{}) { onClaim(obj) }, DeleteFunc: onClaim}},
		{volumeInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    d.onVolume,
			UpdateFunc: func(_, obj interface{}) { d.onVolume(obj) },
			DeleteFunc: d.onVolume,
		}},
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    d.onPod,
			UpdateFunc: func(_, obj interface{}) { d.onPod(obj) },
		}},
		{classInf.Informer(), cache.ResourceEventHandlerFuncs{}},
		{nodeInf.Informer(), cache.ResourceEventHandlerFuncs{}},
		{snapInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj interface{}) { d.enqueue(d.snapshotCtrl, obj) },
			UpdateFunc: func(_, obj interface{}) { d.enqueue(d.snapshotCtrl, obj) },
			DeleteFunc: func(obj interface{}) { d.enqueue(d.snapshotCtrl, obj) },
		}},
		{contentInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    d.onContent,
			UpdateFunc: func(_, obj interface{}) { d.onContent(obj) },
			DeleteFunc: d.onContent,
		}},
		{snapClassInf.Informer(), cache.ResourceEventHandlerFuncs{}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return err
		}
	}
	return nil
}

func (d *Driver) enqueue(l *loop, obj interface{}) {
	if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		l.add(k)
	}
}

func (d *Driver) onVolume(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pv, ok := obj.(*corev1.PersistentVolume)
	if !ok {
		return
	}
	d.provisionVolumes.add(pv.Name)
	if ref := pv.Spec.ClaimRef; ref != nil {
		k := ref.Namespace + "/" + ref.Name
		d.resizer.add(k)
		d.kubelet.add(k)
	}
}

func (d *Driver) onPod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	for _, name := range podClaimNames(pod) {
		d.kubelet.add(pod.Namespace + "/" + name)
	}
}

// podClaimNames are the claims a pod mounts (including generic ephemeral volumes,
// whose claims are named <pod>-<volume>).
func podClaimNames(pod *corev1.Pod) []string {
	var names []string
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			names = append(names, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			names = append(names, pod.Name+"-"+v.Name)
		}
	}
	return names
}

// classKnobs returns the fault knobs of a StorageClass (missing class: none).
func (d *Driver) classKnobs(name string) (Knobs, map[string]string, error) {
	sc, err := d.classes.Get(name)
	if apierrors.IsNotFound(err) {
		k, _ := ParseKnobs(nil)
		return k, nil, nil
	}
	if err != nil {
		return Knobs{}, nil, err
	}
	k, err := ParseKnobs(sc.Parameters)
	return k, sc.Parameters, err
}
