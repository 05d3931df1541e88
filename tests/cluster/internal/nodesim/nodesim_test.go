package nodesim

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
)

func TestSimulator(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	s := New(client)
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	defer cancel()

	for _, name := range Names {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels[corev1.LabelHostname] != name || n.Status.Allocatable.Pods().Value() != 110 {
			t.Errorf("node %s: labels %v allocatable %v", name, n.Labels, n.Status.Allocatable)
		}
	}

	pod := func(name, node string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "img"}}},
		}
	}
	for _, p := range []*corev1.Pod{pod("ours", "node-2"), pod("foreign", "elsewhere")} {
		if _, err := client.CoreV1().Pods("ns").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(what string, cond func(ctx context.Context) (bool, error)) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, cond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	poll("pod on node-2 running", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("ns").Get(ctx, "ours", metav1.GetOptions{})
		return err == nil && isRunningReady(p), nil
	})
	p, _ := client.CoreV1().Pods("ns").Get(ctx, "ours", metav1.GetOptions{})
	if p.Status.HostIP != NodeIP(2) || len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready {
		t.Errorf("status %+v", p.Status)
	}
	f, _ := client.CoreV1().Pods("ns").Get(ctx, "foreign", metav1.GetOptions{})
	if f.Status.Phase != "" {
		t.Errorf("pod on a foreign node was touched: %+v", f.Status)
	}

	now := metav1.Now()
	p.DeletionTimestamp = &now
	if _, err := client.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("terminating pod removed", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Pods("ns").Get(ctx, "ours", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}
