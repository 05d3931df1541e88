// Package e2e tests the test cluster itself against the real control plane: it
// starts one cluster with `kcluster up --exit-on-stdin-eof` for the whole package
// (or uses the one named by STATEFUL_TEST_KUBECONFIG) and checks that the storage,
// StatefulSet, scheduling, validation and authentication behaviour the
// kubectl-stateful tests rely on is the real thing, and that the simulated CSI
// driver writes what the real sidecars write (csi_test.go).
package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var (
	// clusterDir is ../ (tests/cluster), where the build/run scripts live.
	clusterDir string
	// kcluster is the built binary.
	kcluster string
	// kubeconfig, restConfig and client reach the cluster under test.
	kubeconfig string
	restConfig *rest.Config
	client     kubernetes.Interface
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if clusterDir, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	build := exec.Command(filepath.Join(clusterDir, "build"))
	build.Stderr = os.Stderr
	out, err := build.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building kcluster: %v\n", err)
		return 1
	}
	kcluster = strings.TrimSpace(string(out))

	if kc := os.Getenv("STATEFUL_TEST_KUBECONFIG"); kc != "" {
		kubeconfig = kc
	} else {
		stop, kc, err := startCluster()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer stop()
		kubeconfig = kc
		defer func() {
			if failed {
				saveLogs(filepath.Dir(kc))
			}
		}()
	}
	if restConfig, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	restConfig.QPS, restConfig.Burst = 50, 100
	if client, err = kubernetes.NewForConfig(restConfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	failed = m.Run() != 0
	if failed {
		return 1
	}
	return 0
}

// failed records whether a test failed, so the cluster's logs are kept.
var failed bool

// saveLogs copies the cluster's log files somewhere that survives its cleanup.
func saveLogs(dir string) {
	dst, err := os.MkdirTemp("", "kstateful-e2e-logs-")
	if err != nil {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		if data, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(l)), data, 0o644)
		}
	}
	fmt.Fprintf(os.Stderr, "tests failed; the cluster's logs are in %s\n", dst)
}

// startCluster runs `kcluster up --dir DIR --exit-on-stdin-eof` the way the Rust
// test support does: the cluster lives as long as the pipe to its stdin is open.
func startCluster() (stop func(), kubeconfig string, err error) {
	dir, err := os.MkdirTemp("", "kstateful-e2e-")
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(kcluster, "up", "--dir", dir, "--exit-on-stdin-eof")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	exited := make(chan error, 1)
	stop = func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			fmt.Fprintln(os.Stderr, "kcluster did not stop within 60s after stdin closed; killing it")
			_ = cmd.Process.Kill()
			<-exited
		}
		if os.Getenv("KCLUSTER_KEEP_FILES") == "" {
			os.RemoveAll(dir)
		}
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if kc, ok := strings.CutPrefix(sc.Text(), "READY KUBECONFIG="); ok {
				ready <- kc
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case kc := <-ready:
		return stop, kc, nil
	case err := <-exited:
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("kcluster up exited before it was ready: %v", err)
	case <-time.After(180 * time.Second):
		stop()
		return nil, "", fmt.Errorf("kcluster up was not ready after 180s")
	}
}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// namespace creates a unique namespace for t and deletes it when t ends.
func namespace(t *testing.T) string {
	t.Helper()
	name := "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-") + "-" + suffix()
	ctx := context.Background()
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, name)
		}
		_ = client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// dumpNamespace logs the state of ns for a failed test.
func dumpNamespace(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			t.Logf("pod %s: node %q phase %s conditions %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
		}
	}
	if pvcs, err := client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, c := range pvcs.Items {
			t.Logf("claim %s: phase %s volume %q annotations %v", c.Name, c.Status.Phase, c.Spec.VolumeName, c.Annotations)
		}
	}
	if events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, e := range events.Items {
			t.Logf("event %s/%s %s %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Type, e.Reason, e.Message)
		}
	}
	if nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range nodes.Items {
			t.Logf("node %s: taints %v", n.Name, n.Spec.Taints)
		}
	}
}

// eventually polls cond every 200ms for at most timeout; on timeout the test fails
// with what describe returns.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, last)
	}
}

// consistently checks cond every 200ms for d; the test fails at the first error.
func consistently(t *testing.T, d time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := cond(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
