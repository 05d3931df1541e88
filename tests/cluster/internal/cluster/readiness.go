package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"kubectl-stateful/tests/cluster/internal/components"
	"kubectl-stateful/tests/cluster/internal/csi"
	"kubectl-stateful/tests/cluster/internal/nodesim"
	"kubectl-stateful/tests/cluster/internal/storage"
)

const pollInterval = 200 * time.Millisecond

func (c *Cluster) remaining() time.Duration {
	return c.opts.ReadyTimeout - time.Since(c.startedAt)
}

func (c *Cluster) logHint() string {
	var logs []string
	for _, n := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kcluster"} {
		logs = append(logs, filepath.Join(c.Dir, n+".log"))
	}
	hint := "see " + strings.Join(logs, ", ")
	if !c.opts.KeepFiles {
		hint += " (removed on exit: keep them with --keep-files or KCLUSTER_KEEP_FILES=1)"
	}
	return hint
}

// waitAPIServer waits for /readyz of a freshly started apiserver.
func (c *Cluster) waitAPIServer(ctx context.Context, cfg *rest.Config, p *components.Process) error {
	client, err := restClientFor(cfg)
	if err != nil {
		return err
	}
	last := "no answer yet"
	err = wait.PollUntilContextTimeout(ctx, pollInterval, c.remaining(), true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.Exited():
			return false, p.Err()
		default:
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			last = fmt.Sprintf("%v %s", err, lastLines(string(body), 5))
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver not ready after %s (/readyz: %s): %w; %s",
			time.Since(c.startedAt).Round(time.Second), last, err, c.logHint())
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// waitReady waits until /readyz is ok, the simulated nodes are Ready without
// NoSchedule taints, the default ServiceAccount exists in namespace default, the
// StorageClasses exist and the CSI driver is registered (CSIDriver, CSINodes,
// VolumeSnapshotClass). The error names what was still missing.
func (c *Cluster) waitReady(ctx context.Context) error {
	var missing []string
	err := wait.PollUntilContextTimeout(ctx, pollInterval, c.remaining(), true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-c.failed:
			return false, err
		case err := <-c.csiErr:
			if err != nil {
				return false, err
			}
			c.csiErr <- nil // keep the result for start()
		default:
		}
		missing = c.notReady(ctx)
		return len(missing) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("cluster not ready after %s: %s: %w; %s",
			time.Since(c.startedAt).Round(time.Second), strings.Join(missing, "; "), err, c.logHint())
	}
	return nil
}

func (c *Cluster) notReady(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var missing []string
	if _, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		missing = append(missing, fmt.Sprintf("/readyz: %v", err))
	}
	nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		missing = append(missing, fmt.Sprintf("listing nodes: %v", err))
	} else {
		seen := map[string]*corev1.Node{}
		for i := range nodes.Items {
			seen[nodes.Items[i].Name] = &nodes.Items[i]
		}
		for _, name := range nodesim.Names {
			if problem := nodeProblem(seen[name]); problem != "" {
				missing = append(missing, fmt.Sprintf("node %s %s", name, problem))
			}
		}
	}
	if _, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		missing = append(missing, fmt.Sprintf("ServiceAccount default/default (created by kube-controller-manager): %v", err))
	}
	for _, sc := range storage.Classes() {
		if _, err := c.client.StorageV1().StorageClasses().Get(ctx, sc.Name, metav1.GetOptions{}); err != nil {
			missing = append(missing, fmt.Sprintf("StorageClass %s: %v", sc.Name, err))
		}
	}
	missing = append(missing, csi.NotReady(ctx, c.client, c.dyn, nodesim.Names)...)
	sort.Strings(missing)
	return missing
}

func nodeProblem(n *corev1.Node) string {
	if n == nil {
		return "not registered"
	}
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return "not Ready"
	}
	// The TaintNodesByCondition admission plugin adds node.kubernetes.io/not-ready
	// at registration; the node lifecycle controller lifts it once it sees Ready.
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return fmt.Sprintf("still tainted %s:%s (lifted by the node lifecycle controller)", t.Key, t.Effect)
		}
	}
	return ""
}
