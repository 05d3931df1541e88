package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Two `tests/cluster/run -- CMD` at once each get their own cluster; afterwards no
// process of theirs is left and their temporary directories are gone.
func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	script := `echo "KUBECONFIG=$KUBECONFIG"; echo "STATEFUL=$STATEFUL_TEST_KUBECONFIG"; ` +
		`echo "KUBECTL=$(command -v kubectl)"; kubectl get nodes --no-headers`
	type result struct {
		out  string
		err  error
		took time.Duration
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			cmd := exec.Command(filepath.Join(clusterDir, "run"), "--", "sh", "-c", script)
			var out bytes.Buffer
			cmd.Stdout = &out
			cmd.Stderr = &out
			// Do not hand this test's own cluster to the runs.
			cmd.Env = append(os.Environ(), "KUBECONFIG=", "STATEFUL_TEST_KUBECONFIG=", "KCLUSTER_KEEP_FILES=")
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				results[i] = result{err: err}
				return
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				results[i] = result{out: out.String(), err: err, took: time.Since(start)}
			case <-time.After(240 * time.Second):
				_ = cmd.Process.Kill()
				results[i] = result{out: out.String(), err: <-done, took: time.Since(start)}
			}
		}(i)
	}
	wg.Wait()

	kubeconfigRE := regexp.MustCompile(`(?m)^KUBECONFIG=(.+)$`)
	var dirs []string
	for i, r := range results {
		t.Logf("run %d took %s; output:\n%s", i, r.took.Round(100*time.Millisecond), r.out)
		if r.err != nil {
			t.Errorf("run %d failed: %v", i, r.err)
			continue
		}
		m := kubeconfigRE.FindStringSubmatch(r.out)
		if m == nil {
			t.Errorf("run %d did not print its KUBECONFIG", i)
			continue
		}
		kc := m[1]
		dir := filepath.Dir(kc)
		dirs = append(dirs, dir)
		if !strings.Contains(r.out, "STATEFUL="+kc+"\n") {
			t.Errorf("run %d: STATEFUL_TEST_KUBECONFIG differs from KUBECONFIG", i)
		}
		if !strings.HasPrefix(filepath.Base(dir), "kstateful-cluster-") {
			t.Errorf("run %d: unexpected cluster dir %s", i, dir)
		}
		if !strings.Contains(r.out, "KUBECTL="+filepath.Join(dir, "bin", "kubectl")+"\n") {
			t.Errorf("run %d: kubectl on PATH is not the built one", i)
		}
		for _, n := range []string{"node-1", "node-2", "node-3"} {
			if !regexp.MustCompile(`(?m)^` + n + `\s+Ready\s`).MatchString(r.out) {
				t.Errorf("run %d: %s not listed as Ready", i, n)
			}
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("run %d: %s still exists after the run (%v)", i, dir, err)
		}
	}
	if len(dirs) == 2 && dirs[0] == dirs[1] {
		t.Errorf("both runs used %s", dirs[0])
	}
	for _, dir := range dirs {
		if pids := processesMentioning(dir); len(pids) > 0 {
			t.Errorf("processes of the run in %s still alive: %v", dir, pids)
		}
	}
}

// processesMentioning lists the processes whose command line contains s (all the
// components of a cluster name its directory in their flags).
func processesMentioning(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(s)) {
			continue
		}
		found = append(found, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}
