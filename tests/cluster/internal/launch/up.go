// Package launch implements kcluster's own subcommands: `up`, which runs a cluster
// in the foreground until told to stop, and `run`, which wraps a command with a
// fresh cluster.
package launch

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"kubectl-stateful/tests/cluster/internal/cluster"
)

// stopSignals end `up` and are forwarded by `run`.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

func exitCodeForSignal(s os.Signal) int {
	if sig, ok := s.(syscall.Signal); ok {
		return 128 + int(sig)
	}
	return 1
}

func commonFlags(fs *flag.FlagSet) (timeout *time.Duration, keep *bool) {
	timeout = fs.Duration("ready-timeout", 120*time.Second, "how long to wait for the cluster to become ready")
	keep = fs.Bool("keep-files", os.Getenv("KCLUSTER_KEEP_FILES") != "",
		"leave logs, certificates and etcd data behind for debugging (env KCLUSTER_KEEP_FILES=1)")
	return timeout, keep
}

// Up implements `kcluster up --dir DIR [--exit-on-stdin-eof]`.
func Up(args []string) int {
	fs := flag.NewFlagSet("kcluster up", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for everything of the cluster (required)")
	stdinEOF := fs.Bool("exit-on-stdin-eof", false, "also shut down when stdin reaches EOF")
	timeout, keep := commonFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: kcluster up --dir DIR [--exit-on-stdin-eof] [--ready-timeout 120s] [--keep-files]")
		return 2
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopSignals...)
	eof := make(chan struct{})
	if *stdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(eof)
		}()
	}
	// Abort the start-up as well when told to stop.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stopReason string
	go func() {
		select {
		case s := <-sigs:
			stopReason = "signal " + s.String()
		case <-eof:
			stopReason = "stdin closed"
		case <-ctx.Done():
			return
		}
		cancel()
	}()

	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Dir: *dir, ReadyTimeout: *timeout, KeepFiles: *keep})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "kcluster: start-up aborted (%s)\n", stopReason)
			return 1
		}
		fmt.Fprintf(os.Stderr, "kcluster: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "kcluster: cluster ready in %s in %s\n", time.Since(start).Round(100*time.Millisecond), c.Dir)
	fmt.Printf("READY KUBECONFIG=%s\n", c.Kubeconfig)

	code := 0
	select {
	case <-ctx.Done():
		fmt.Fprintf(os.Stderr, "kcluster: shutting down (%s)\n", stopReason)
	case err := <-c.Failed():
		fmt.Fprintf(os.Stderr, "kcluster: %v; shutting down\n", err)
		code = 1
	}
	c.Stop()
	return code
}
