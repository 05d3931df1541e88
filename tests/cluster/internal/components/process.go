// Package components starts the Kubernetes control-plane components
// (kube-apiserver, kube-controller-manager, kube-scheduler) as child processes of
// the kcluster binary itself, and stops them again.
//
// Every child runs in its own process group (so a terminal's Ctrl-C reaches only
// kcluster, which then shuts down in order) and has PR_SET_PDEATHSIG=SIGKILL, so
// that a kcluster that is killed outright never leaves an orphaned apiserver behind.
package components

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is one running component.
type Process struct {
	Name    string
	LogFile string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// self returns the path to exec for a child running this very binary. On Linux
// /proc/self/exe names the running image even when the file was replaced by a
// rebuild in the meantime.
func self() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// Start runs this binary as `<self> name args...` with stdout and stderr appended
// to logFile.
func Start(name string, args []string, logFile string) (*Process, error) {
	exe, err := self()
	if err != nil {
		return nil, err
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own copy of the descriptor
	cmd := exec.Command(exe, append([]string{name}, args...)...)
	cmd.Args[0] = "kcluster"
	cmd.Stdin = nil
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogFile: logFile, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id (and process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Err describes how the process exited, with the end of its log; only meaningful
// after Exited is closed.
func (p *Process) Err() error {
	status := "with status 0"
	if p.err != nil {
		status = p.err.Error()
	}
	return fmt.Errorf("%s exited %s (log %s):\n%s", p.Name, status, p.LogFile, Tail(p.LogFile, 8))
}

// Tail returns the last n lines of a file, indented, for error messages.
func Tail(file string, n int) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			l = l[:400] + "..."
		}
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// Stop sends SIGTERM to the process group, waits at most grace, then sends
// SIGKILL and waits (bounded) for the process to be reaped.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		// Reap anything else left in the group (components do not fork, but be sure).
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}
