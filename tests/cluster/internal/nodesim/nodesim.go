// Package nodesim simulates the kubelets of a few fake nodes in-process with
// client-go: it registers the Nodes, keeps them healthy (Ready status, Lease
// renewals) so the node lifecycle controller never taints or evicts them, and plays
// the kubelet's part for pods bound to them — marking them Running and Ready, and
// finishing their deletion — without running any container.
package nodesim

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// Names are the simulated nodes.
var Names = []string{"node-1", "node-2", "node-3"}

const (
	leaseNamespace   = "kube-node-lease"
	leaseDuration    = 40
	leaseRenewPeriod = 10 * time.Second
	kubeletVersion   = "v1.36.3"
)

// Simulator runs the fake kubelets.
type Simulator struct {
	client  kubernetes.Interface
	nodes   map[string]int // name -> index (1-based)
	queue   workqueue.TypedRateLimitingInterface[string]
	pods    corelisters.PodLister
	factory informers.SharedInformerFactory

	mu      sync.Mutex
	nextIP  map[string]int
	started time.Time
}

// New creates a simulator for Names.
func New(client kubernetes.Interface) *Simulator {
	s := &Simulator{
		client:  client,
		nodes:   map[string]int{},
		nextIP:  map[string]int{},
		started: time.Now(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodesim-pods"}),
	}
	for i, n := range Names {
		s.nodes[n] = i + 1
	}
	return s
}

// NodeIP is the (never contacted) InternalIP of node index i.
func NodeIP(i int) string { return fmt.Sprintf("127.0.1.%d", i) }

// Run registers the nodes and simulates them until ctx is done. It returns once
// the nodes have been registered and the pod informer has synced (or ctx ends);
// the work continues in goroutines until ctx is done.
func (s *Simulator) Run(ctx context.Context) error {
	for _, name := range Names {
		if err := s.register(ctx, name); err != nil {
			return err
		}
	}
	go s.heartbeat(ctx)

	s.factory = informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	podInformer := s.factory.Core().V1().Pods()
	s.pods = podInformer.Lister()
	enqueue := func(obj interface{}) {
		if pod, ok := obj.(*corev1.Pod); ok && s.nodes[pod.Spec.NodeName] == 0 {
			return
		}
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			s.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	}); err != nil {
		return err
	}
	s.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		return fmt.Errorf("pod informer did not sync")
	}
	for i := 0; i < 4; i++ {
		go s.worker(ctx)
	}
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	return nil
}

// Shutdown waits for the informers to stop (after ctx was cancelled).
func (s *Simulator) Shutdown() {
	if s.factory != nil {
		s.factory.Shutdown()
	}
}

func resources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("32"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
}

func (s *Simulator) status(name string, now metav1.Time) corev1.NodeStatus {
	cond := func(t corev1.NodeConditionType, st corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: st, Reason: reason, Message: msg,
			LastHeartbeatTime: now, LastTransitionTime: metav1.NewTime(s.started)}
	}
	return corev1.NodeStatus{
		Capacity:    resources(),
		Allocatable: resources(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "simulated kubelet is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: NodeIP(s.nodes[name])},
			{Type: corev1.NodeHostName, Address: name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID: name, SystemUUID: name, BootID: name,
			KernelVersion: "simulated", OSImage: "kstateful simulated node",
			ContainerRuntimeVersion: "fake://0", KubeletVersion: kubeletVersion,
			OperatingSystem: "linux", Architecture: "amd64",
		},
	}
}

func (s *Simulator) register(ctx context.Context, name string) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				corev1.LabelHostname:      name,
				corev1.LabelOSStable:      "linux",
				corev1.LabelArchStable:    "amd64",
				"kstateful.dev/simulated": "true",
			},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
		},
		Spec:   corev1.NodeSpec{PodCIDR: podCIDR(s.nodes[name]), PodCIDRs: []string{podCIDR(s.nodes[name])}},
		Status: s.status(name, metav1.Now()),
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := s.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return true, nil
		}
		klog.V(2).InfoS("registering node", "node", name, "err", err)
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("registering node %s: %w", name, err)
	}
	// A node created with a status keeps it, but an existing one (restart) needs it.
	return s.updateStatus(ctx, name)
}

func podCIDR(i int) string { return fmt.Sprintf("10.%d.0.0/16", 244+i) }

func (s *Simulator) updateStatus(ctx context.Context, name string) error {
	node, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	node.Status = s.status(name, metav1.Now())
	_, err = s.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (s *Simulator) renewLease(ctx context.Context, name string) error {
	now := metav1.NewMicroTime(time.Now())
	leases := s.client.CoordinationV1().Leases(leaseNamespace)
	lease, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: leaseNamespace,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(name),
				LeaseDurationSeconds: ptr.To[int32](leaseDuration),
				RenewTime:            &now,
			},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the node leases every leaseRenewPeriod and posts node status
// every other period, like a kubelet with default settings would (more often).
func (s *Simulator) heartbeat(ctx context.Context) {
	beat := func(n int) {
		for _, name := range Names {
			if err := s.renewLease(ctx, name); err != nil && ctx.Err() == nil {
				klog.InfoS("renewing node lease", "node", name, "err", err)
			}
			if n%2 == 0 {
				if err := s.updateStatus(ctx, name); err != nil && ctx.Err() == nil {
					klog.InfoS("posting node status", "node", name, "err", err)
				}
			}
		}
	}
	beat(1)
	t := time.NewTicker(leaseRenewPeriod)
	defer t.Stop()
	for n := 2; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			beat(n)
		}
	}
}

func (s *Simulator) worker(ctx context.Context) {
	for {
		key, quit := s.queue.Get()
		if quit {
			return
		}
		err := s.sync(ctx, key)
		switch {
		case err == nil:
			s.queue.Forget(key)
		case ctx.Err() != nil:
		default:
			klog.InfoS("syncing pod", "pod", key, "err", err)
			s.queue.AddRateLimited(key)
		}
		s.queue.Done(key)
	}
}

func (s *Simulator) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.nodes[pod.Spec.NodeName] == 0 {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		// The containers are "stopped" at once: finish the graceful deletion.
		err := s.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || isRunningReady(pod) {
		return nil
	}
	updated := pod.DeepCopy()
	s.running(updated)
	_, err = s.client.CoreV1().Pods(ns).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Conflict: a newer version is on its way through the informer.
		return nil
	}
	return err
}

func isRunningReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		return false
	}
	if len(pod.Status.ContainerStatuses) != len(pod.Spec.Containers) {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (s *Simulator) podIP(node string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nextIP[node]
	s.nextIP[node] = n + 1
	return fmt.Sprintf("10.%d.%d.%d", 244+s.nodes[node], (n/250)%256, n%250+2)
}

// running fills in the status a kubelet would report once all containers started.
func (s *Simulator) running(pod *corev1.Pod) {
	now := metav1.Now()
	st := &pod.Status
	st.Phase = corev1.PodRunning
	hostIP := NodeIP(s.nodes[pod.Spec.NodeName])
	st.HostIP = hostIP
	st.HostIPs = []corev1.HostIP{{IP: hostIP}}
	if st.PodIP == "" {
		ip := s.podIP(pod.Spec.NodeName)
		if pod.Spec.HostNetwork {
			ip = hostIP
		}
		st.PodIP = ip
		st.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers,
		corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		setCondition(st, t, now)
	}
	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			st.InitContainerStatuses = append(st.InitContainerStatuses, runningStatus(pod, c, now))
			continue
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "fake://" + c.Image, Ready: true,
			ContainerID: fmt.Sprintf("fake://%s-%s", pod.UID, c.Name),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}},
		})
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, runningStatus(pod, c, now))
	}
}

func runningStatus(pod *corev1.Pod, c corev1.Container, now metav1.Time) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: "fake://" + c.Image,
		ContainerID: fmt.Sprintf("fake://%s-%s", pod.UID, c.Name),
		Ready:       true, Started: ptr.To(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
	}
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, now metav1.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != corev1.ConditionTrue {
				st.Conditions[i].Status = corev1.ConditionTrue
				st.Conditions[i].LastTransitionTime = now
				st.Conditions[i].Reason, st.Conditions[i].Message = "", ""
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
}
