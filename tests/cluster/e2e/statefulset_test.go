package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// A StatefulSet of 3 with a volumeClaimTemplate on the default class: the real
// StatefulSet controller creates the claims, the host-path provisioner provisions
// them, the simulated nodes run the pods; scaling to 1 removes two pods but keeps
// all three claims.
func TestStatefulSetWithVolumeClaims(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	_, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](3),
			ServiceName: "web",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "registry.k8s.io/nginx-slim:0.27",
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
				}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
					},
				},
			}},
		},
	}
	if _, err := client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	eventually(t, 120*time.Second, "3 ready replicas", func(ctx context.Context) (bool, error) {
		s, err := client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return s.Status.ReadyReplicas == 3, fmt.Errorf("ready %d/3", s.Status.ReadyReplicas)
	})
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("data-web-%d", i)
		pvc := waitClaimBound(t, ns, name, 60*time.Second)
		if class := ptr.Deref(pvc.Spec.StorageClassName, ""); class != "standard" {
			t.Errorf("%s has class %q, want the default class standard", name, class)
		}
		pv, err := client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pv.Spec.HostPath == nil || !strings.HasPrefix(pv.Spec.HostPath.Path, "/tmp/hostpath_pv/") {
			t.Fatalf("%s: PV %s is not a provisioned host-path volume: %+v", name, pv.Name, pv.Spec.PersistentVolumeSource)
		}
		if _, err := os.Stat(pv.Spec.HostPath.Path); err != nil {
			t.Errorf("%s: provisioned directory: %v", name, err)
		}
		pod, err := client.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("web-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !podReady(pod) || pod.Status.PodIP == "" || !strings.HasPrefix(pod.Spec.NodeName, "node-") {
			t.Errorf("pod %s: node %q phase %q ip %q ready %v", pod.Name, pod.Spec.NodeName, pod.Status.Phase, pod.Status.PodIP, podReady(pod))
		}
	}

	// A rolling update replaces every pod (the simulated kubelet finishes each
	// deletion at once) and keeps the claims.
	update := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.k8s.io/nginx-slim:0.28"}]}}}}`)
	if _, err := client.AppsV1().StatefulSets(ns).Patch(ctx, "web", types.StrategicMergePatchType, update, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 120*time.Second, "rolling update to complete", func(ctx context.Context) (bool, error) {
		s, err := client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := s.Status
		return st.ObservedGeneration == s.Generation && st.UpdatedReplicas == 3 && st.ReadyReplicas == 3 &&
				st.CurrentRevision == st.UpdateRevision,
			fmt.Errorf("updated %d ready %d current %s update %s", st.UpdatedReplicas, st.ReadyReplicas, st.CurrentRevision, st.UpdateRevision)
	})
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("after the rolling update there are %d pods, want 3", len(pods.Items))
	}
	for _, p := range pods.Items {
		if img := p.Spec.Containers[0].Image; img != "registry.k8s.io/nginx-slim:0.28" || !podReady(&p) {
			t.Errorf("after the rolling update pod %s has image %s, ready %v", p.Name, img, podReady(&p))
		}
	}

	patch := []byte(`{"spec":{"replicas":1}}`)
	if _, err := client.AppsV1().StatefulSets(ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 120*time.Second, "scale down to 1 pod", func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		s, err := client.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(names) == 1 && names[0] == "web-0" && s.Status.Replicas == 1 && s.Status.ReadyReplicas == 1,
			fmt.Errorf("pods %v, status replicas %d ready %d", names, s.Status.Replicas, s.Status.ReadyReplicas)
	})
	claims, err := client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range claims.Items {
		if c.Status.Phase != corev1.ClaimBound {
			t.Errorf("claim %s is %s after scale-down", c.Name, c.Status.Phase)
		}
		names = append(names, c.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "data-web-0,data-web-1,data-web-2" {
		t.Fatalf("claims after scale-down: %v, want data-web-0..2", names)
	}
}
