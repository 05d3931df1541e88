package launch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"kubectl-stateful/tests/cluster/internal/cluster"
)

// commandGrace bounds how long `run` waits for CMD after forwarding a signal
// before it kills CMD.
const commandGrace = 30 * time.Second

// Run implements `kcluster run [flags] -- CMD [ARGS...]`: start a cluster in a
// fresh temporary directory, run CMD against it, tear everything down, and exit
// with CMD's exit status.
func Run(args []string) int {
	fs := flag.NewFlagSet("kcluster run", flag.ContinueOnError)
	timeout, keep := commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "usage: kcluster run [--ready-timeout 120s] [--keep-files] -- CMD [ARGS...]")
		return 2
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, stopSignals...)

	dir, err := os.MkdirTemp("", "kstateful-cluster-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "kcluster: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startErr := make(chan error, 1)
	var c *cluster.Cluster
	go func() {
		var err error
		c, err = cluster.Start(ctx, cluster.Options{Dir: dir, RemoveDir: true, ReadyTimeout: *timeout, KeepFiles: *keep})
		startErr <- err
	}()
	select {
	case err := <-startErr:
		if err != nil {
			fmt.Fprintf(os.Stderr, "kcluster: %v\n", err)
			if !*keep {
				os.RemoveAll(dir)
			}
			return 1
		}
	case s := <-sigs:
		cancel()
		<-startErr // Start cleans up after itself when aborted
		if !*keep {
			os.RemoveAll(dir)
		}
		fmt.Fprintf(os.Stderr, "kcluster: start-up aborted by %s\n", s)
		return exitCodeForSignal(s)
	}
	defer c.Stop()

	// A bin directory whose kubectl is this binary, first on PATH.
	bin := filepath.Join(dir, "bin")
	self, err := os.Executable()
	if err == nil {
		err = os.MkdirAll(bin, 0o755)
	}
	if err == nil {
		err = os.Symlink(self, filepath.Join(bin, "kubectl"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kcluster: %v\n", err)
		return 1
	}

	// Resolve CMD with the new PATH, so that `run -- kubectl ...` finds our kubectl.
	path := argv[0]
	if path == "kubectl" {
		path = filepath.Join(bin, "kubectl")
	} else if path, err = exec.LookPath(path); err != nil {
		fmt.Fprintf(os.Stderr, "kcluster: %v\n", err)
		return 127
	}
	cmd := &exec.Cmd{Path: path, Args: argv}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+c.Kubeconfig,
		"STATEFUL_TEST_KUBECONFIG="+c.Kubeconfig,
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
	// If kcluster dies, CMD is told to stop too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "kcluster: %v\n", err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var kill <-chan time.Time
	for {
		select {
		case err := <-done:
			return exitCode(err)
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
			if kill == nil {
				kill = time.After(commandGrace)
			}
		case <-kill:
			fmt.Fprintf(os.Stderr, "kcluster: %s did not exit %s after the signal; killing it\n", argv[0], commandGrace)
			_ = cmd.Process.Kill()
		case err := <-c.Failed():
			fmt.Fprintf(os.Stderr, "kcluster: warning: %v\n", err)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(os.Stderr, "kcluster: %v\n", err)
	return 1
}
