package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"
)

func claim(name, class string, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(class),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			},
		},
	}
}

func createPV(t *testing.T, pv *corev1.PersistentVolume) {
	t.Helper()
	if _, err := client.CoreV1().PersistentVolumes().Create(context.Background(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating PV %s: %v", pv.Name, err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
}

func waitClaimBound(t *testing.T, ns, name string, timeout time.Duration) *corev1.PersistentVolumeClaim {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	eventually(t, timeout, fmt.Sprintf("claim %s/%s Bound", ns, name), func(ctx context.Context) (bool, error) {
		var err error
		pvc, err = client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return pvc.Status.Phase == corev1.ClaimBound, fmt.Errorf("phase %q", pvc.Status.Phase)
	})
	return pvc
}

func waitPVBound(t *testing.T, name string, timeout time.Duration) *corev1.PersistentVolume {
	t.Helper()
	var pv *corev1.PersistentVolume
	eventually(t, timeout, fmt.Sprintf("PV %s Bound", name), func(ctx context.Context) (bool, error) {
		var err error
		pv, err = client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return pv.Status.Phase == corev1.VolumeBound, fmt.Errorf("phase %q", pv.Status.Phase)
	})
	return pv
}

// A static hostPath PV and a claim of the same (unique) class and size are bound
// to each other by the real PV controller.
func TestStaticPersistentVolumeBinds(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	id := suffix()
	class := "e2e-static-" + id
	pvName := "e2e-static-" + id
	createPV(t, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName: class,
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:         corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/kstateful-e2e-static-" + id},
			},
		},
	})
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), claim("static", class, "2Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := waitClaimBound(t, ns, "static", 60*time.Second)
	if pvc.Spec.VolumeName != pvName {
		t.Fatalf("claim bound to %q, want %q", pvc.Spec.VolumeName, pvName)
	}
	pv := waitPVBound(t, pvName, 60*time.Second)
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace != ns || ref.Name != "static" || ref.UID != pvc.UID {
		t.Fatalf("PV claimRef = %+v, want %s/static", pv.Spec.ClaimRef, ns)
	}
}

// Local PVs on node-2 and a local-storage (WaitForFirstConsumer) claim: the claim
// stays Pending until a pod uses it; the scheduler then puts the pod on node-2 and
// the claim binds.
func TestLocalVolumeWaitsForFirstConsumer(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	id := suffix()
	for i := 0; i < 2; i++ {
		createPV(t, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e2e-local-%s-%d", id, i), Labels: map[string]string{"e2e": id}},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:              "local-storage",
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")},
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					Local: &corev1.LocalVolumeSource{Path: fmt.Sprintf("/mnt/disks/e2e-%s-%d", id, i)},
				},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"node-2"},
					}}}},
				}},
			},
		})
	}
	// A new volume is Pending until the PV controller's first sync makes it Available; the check
	// below is about the binder leaving the claim alone, so it starts from Available volumes
	// (otherwise a claim whose event comes before that sync fails it on the volumes' phase).
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("e2e-local-%s-%d", id, i)
		eventually(t, 60*time.Second, "PV "+name+" Available", func(ctx context.Context) (bool, error) {
			pv, err := client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return pv.Status.Phase == corev1.VolumeAvailable, nil
		})
	}
	pvc := claim("local", "local-storage", "1Gi")
	// Only this test's volumes: other users of the cluster may create local PVs too.
	pvc.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"e2e": id}}
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "event WaitForFirstConsumer on the claim", func(ctx context.Context) (bool, error) {
		events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.kind": "PersistentVolumeClaim", "involvedObject.name": "local", "reason": "WaitForFirstConsumer",
		}.String()})
		if err != nil {
			return false, err
		}
		return len(events.Items) > 0, nil
	})
	// The binder has seen the claim (the event) and must leave it alone: it stays Pending and
	// unbound for as long as we look, and so do this test's volumes.
	consistently(t, 3*time.Second, "claim without consumer stays Pending and unbound", func(ctx context.Context) error {
		got, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "local", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.Phase != corev1.ClaimPending || got.Spec.VolumeName != "" {
			return fmt.Errorf("phase %q volume %q, want Pending and unbound", got.Status.Phase, got.Spec.VolumeName)
		}
		for i := 0; i < 2; i++ {
			pv, err := client.CoreV1().PersistentVolumes().Get(ctx, fmt.Sprintf("e2e-local-%s-%d", id, i), metav1.GetOptions{})
			if err != nil {
				return err
			}
			if pv.Spec.ClaimRef != nil || pv.Status.Phase != corev1.VolumeAvailable {
				return fmt.Errorf("PV %s: phase %q claimRef %v, want Available and unclaimed", pv.Name, pv.Status.Phase, pv.Spec.ClaimRef)
			}
		}
		return nil
	})

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "consumer"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "local"}}}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "consumer pod Ready", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, "consumer", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return podReady(p), fmt.Errorf("node %q phase %q", p.Spec.NodeName, p.Status.Phase)
	})
	p, err := client.CoreV1().Pods(ns).Get(context.Background(), "consumer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "node-2" {
		t.Fatalf("consumer scheduled to %q, want node-2", p.Spec.NodeName)
	}
	bound := waitClaimBound(t, ns, "local", 60*time.Second)
	pv, err := client.CoreV1().PersistentVolumes().Get(context.Background(), bound.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pv.Labels["e2e"] != id || pv.Spec.Local == nil {
		t.Fatalf("claim bound to unexpected volume %s", pv.Name)
	}
	// Both sides of the binding point at each other (a static volume: the scheduler binds it
	// directly, there is no selected-node annotation as with provisioning).
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace != ns || ref.Name != "local" || ref.UID != bound.UID {
		t.Fatalf("PV %s claimRef = %+v, want %s/local uid %s", pv.Name, pv.Spec.ClaimRef, ns, bound.UID)
	}
	if bound.Annotations["pv.kubernetes.io/bind-completed"] != "yes" {
		t.Fatalf("claim annotations %v lack pv.kubernetes.io/bind-completed=yes", bound.Annotations)
	}
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
