// Package cluster assembles one complete, throw-away Kubernetes control plane in a
// single directory: a generated PKI, an embedded etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler as child processes, three simulated
// nodes and the default StorageClasses. Start brings it up and waits until it is
// ready; Stop tears everything down again and removes what Start created.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"kubectl-stateful/tests/cluster/internal/certs"
	"kubectl-stateful/tests/cluster/internal/components"
	"kubectl-stateful/tests/cluster/internal/csi"
	"kubectl-stateful/tests/cluster/internal/etcd"
	"kubectl-stateful/tests/cluster/internal/nodesim"
	"kubectl-stateful/tests/cluster/internal/storage"
)

// Options configure Start.
type Options struct {
	// Dir holds everything of the cluster. It is created if missing.
	Dir string
	// RemoveDir makes Stop remove Dir itself (not only what Start created in it).
	RemoveDir bool
	// KeepFiles makes Stop leave the files in Dir (logs, certificates, etcd data)
	// for debugging. Host-path volume directories are removed regardless.
	KeepFiles bool
	// ReadyTimeout bounds the wait for readiness (default 120s).
	ReadyTimeout time.Duration
}

// Cluster is a running control plane.
type Cluster struct {
	Dir string
	// Kubeconfig is the admin kubeconfig, written once the cluster is ready.
	Kubeconfig string

	opts      Options
	created   []string // entries of Dir created by Start, removed by Stop
	etcd      *etcd.Server
	procs     []*components.Process
	cancel    context.CancelFunc
	sim       *nodesim.Simulator
	driver    *csi.Driver
	csiDone   chan struct{} // closed when the driver's start-up goroutine ended
	csiErr    chan error    // its result
	tracker   *storage.HostPathTracker
	client    kubernetes.Interface
	dyn       dynamic.Interface
	ext       apiextensions.Interface
	klogFile  *os.File
	failed    chan error
	stopping  chan struct{}
	stopOnce  sync.Once
	startedAt time.Time
}

// Failed receives an error when a component exits while the cluster runs.
func (c *Cluster) Failed() <-chan error { return c.failed }

// Start brings up a cluster and waits until it is ready. On error everything
// started so far has been stopped and removed again. Cancelling ctx aborts the
// start-up. Free ports are chosen per run; should another process grab one of
// them between the choice and the bind, the start is retried with new ports.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 120 * time.Second
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		opts.RemoveDir = true
	}
	for _, name := range []string{"kubeconfig", "etcd", "pki"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("%s already holds a cluster (%s exists)", dir, name)
		}
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		c := &Cluster{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), opts: opts,
			failed: make(chan error, 1), stopping: make(chan struct{}), startedAt: time.Now()}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		err := c.start(ctx)
		if err == nil {
			return c, nil
		}
		keep := c.opts.KeepFiles
		if attempt < attempts && ctx.Err() == nil && strings.Contains(err.Error(), "address already in use") {
			// Retry from scratch; the failed attempt's files are not interesting.
			c.opts.KeepFiles = false
			c.Stop()
			c.opts.KeepFiles = keep
			continue
		}
		c.Stop()
		return nil, err
	}
}

// path returns Dir/name and remembers it for removal.
func (c *Cluster) path(name string) string {
	p := filepath.Join(c.Dir, name)
	c.created = append(c.created, p)
	return p
}

func (c *Cluster) start(ctx context.Context) error {
	// client-go and friends log through klog: keep that out of stdout/stderr.
	f, err := os.OpenFile(c.path("kcluster.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c.klogFile = f
	klog.LogToStderr(false)
	klog.SetOutput(f)

	pki, err := certs.Generate(c.path("pki"))
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdLog := c.path("etcd.log")
	c.etcd, err = etcd.Start(c.path("etcd"), etcdLog, ports[0], ports[1], 30*time.Second)
	if err != nil {
		return err
	}

	server := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	adminKubeconfig := filepath.Join(pki.Dir, "admin.kubeconfig")
	cfg := &components.Config{
		Dir:                       c.Dir,
		EtcdURL:                   c.etcd.ClientURL,
		APIServerPort:             ports[2],
		ControllerManagerPort:     ports[3],
		SchedulerPort:             ports[4],
		CACert:                    pki.CA.CertFile,
		CAKey:                     pki.CA.KeyFile,
		ServingCert:               pki.Serving.CertFile,
		ServingKey:                pki.Serving.KeyFile,
		SAKey:                     pki.SAKeyFile,
		SAPub:                     pki.SAPubFile,
		FrontProxyCA:              pki.FrontProxyCA.CertFile,
		FrontProxyCert:            pki.FrontProxyClient.CertFile,
		FrontProxyKey:             pki.FrontProxyClient.KeyFile,
		ControllerManagerKubeconf: filepath.Join(pki.Dir, "kube-controller-manager.kubeconfig"),
		SchedulerKubeconf:         filepath.Join(pki.Dir, "kube-scheduler.kubeconfig"),
	}
	for path, user := range map[string]string{
		adminKubeconfig:               certs.AdminUser,
		cfg.ControllerManagerKubeconf: certs.ControllerManagerUser,
		cfg.SchedulerKubeconf:         certs.SchedulerUser,
	} {
		if err := pki.WriteKubeconfig(path, server, user); err != nil {
			return err
		}
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", adminKubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = 100, 200
	restCfg.UserAgent = "kcluster"
	c.client, err = kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	if c.dyn, err = dynamic.NewForConfig(restCfg); err != nil {
		return err
	}
	if c.ext, err = apiextensions.NewForConfig(restCfg); err != nil {
		return err
	}

	apiserver, err := c.launch("kube-apiserver", cfg.APIServerArgs(), cfg)
	if err != nil {
		return err
	}
	if err := c.waitAPIServer(ctx, restCfg, apiserver); err != nil {
		return err
	}
	// The apiserver establishes CRDs while the other components start.
	if err := csi.InstallCRDs(ctx, c.ext); err != nil {
		return err
	}
	if _, err := c.launch("kube-controller-manager", cfg.ControllerManagerArgs(), cfg); err != nil {
		return err
	}
	if _, err := c.launch("kube-scheduler", cfg.SchedulerArgs(), cfg); err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.tracker = storage.NewHostPathTracker(c.client, c.path("hostpath-volumes.txt"))
	if err := c.tracker.Start(runCtx); err != nil {
		return err
	}
	if err := storage.EnsureClasses(ctx, c.client); err != nil {
		return err
	}
	c.sim = nodesim.New(c.client)
	if err := c.sim.Run(runCtx); err != nil {
		return fmt.Errorf("simulating nodes: %w", err)
	}
	// The CSI driver starts while the controller-manager lifts the nodes' taints
	// and creates the default ServiceAccount; waitReady checks its registration.
	// The driver keeps its volumes' content in DIR/csi-data (removed with DIR).
	c.driver = csi.New(c.client, c.dyn, c.path(csi.DataDirName))
	c.csiDone, c.csiErr = make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(c.csiDone)
		err := csi.WaitCRDs(runCtx, c.ext, c.remaining())
		if err == nil {
			err = c.driver.Run(runCtx, nodesim.Names)
		}
		if err != nil {
			err = fmt.Errorf("simulating CSI driver %s: %w; %s", csi.DriverName, err, c.logHint())
		}
		c.csiErr <- err
	}()

	if err := c.waitReady(ctx); err != nil {
		return err
	}
	// Registered is not yet running: wait for the driver's informers to sync.
	select {
	case err := <-c.csiErr:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(c.remaining()):
		return fmt.Errorf("CSI driver %s not running after %s; %s", csi.DriverName,
			time.Since(c.startedAt).Round(time.Second), c.logHint())
	}
	// Publishing the kubeconfig is the signal that the cluster is ready.
	data, err := os.ReadFile(adminKubeconfig)
	if err != nil {
		return err
	}
	tmp := c.Kubeconfig + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	c.created = append(c.created, tmp, c.Kubeconfig)
	return os.Rename(tmp, c.Kubeconfig)
}

// launch starts a component and watches it: an exit before Stop is reported on
// Failed.
func (c *Cluster) launch(name string, args []string, cfg *components.Config) (*components.Process, error) {
	log := c.path(name + ".log")
	p, err := components.Start(name, args, log)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	klog.InfoS("started component", "name", name, "pid", p.Pid(), "log", log)
	go func() {
		select {
		case <-p.Exited():
			select {
			case <-c.stopping:
			case c.failed <- p.Err():
			default:
			}
		case <-c.stopping:
		}
	}()
	return p, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are held open
// together so they are distinct, then released for the components to bind.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Stop shuts the cluster down in order — simulator, controller-manager and
// scheduler, apiserver, etcd — each child with SIGTERM and, after a bounded wait,
// SIGKILL; then removes the host-path volumes this cluster provisioned and the
// files Start created. It is safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(c.stop)
}

func (c *Cluster) stop() {
	close(c.stopping)
	if c.tracker != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.tracker.Refresh(ctx)
		cancel()
	}
	if c.cancel != nil {
		c.cancel()
	}
	if c.csiDone != nil {
		<-c.csiDone // bounded: its API calls end with the cancelled context
		c.driver.Shutdown()
	}
	if c.sim != nil {
		c.sim.Shutdown()
	}
	// Stop in reverse start order: scheduler and controller-manager together, then
	// the apiserver.
	var wg sync.WaitGroup
	for i := len(c.procs) - 1; i >= 1; i-- {
		wg.Add(1)
		go func(p *components.Process) {
			defer wg.Done()
			p.Stop(10 * time.Second)
		}(c.procs[i])
	}
	wg.Wait()
	if len(c.procs) > 0 {
		c.procs[0].Stop(15 * time.Second)
	}
	if c.etcd != nil {
		c.etcd.Stop()
	}
	if c.tracker != nil {
		for _, dir := range c.tracker.Remove() {
			klog.InfoS("removed host-path volume", "dir", dir)
		}
	}
	klog.Flush()
	if c.klogFile != nil {
		klog.SetOutput(os.Stderr)
		klog.LogToStderr(true)
		c.klogFile.Close()
	}
	if c.opts.KeepFiles {
		return
	}
	if c.opts.RemoveDir {
		removeAll(c.Dir)
		return
	}
	for _, p := range c.created {
		removeAll(p)
	}
}

// removeAll removes path, retrying briefly: a child that was SIGKILLed may still be
// closing files for a moment.
func removeAll(path string) {
	var err error
	for i := 0; i < 5; i++ {
		if err = os.RemoveAll(path); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "kcluster: removing %s: %v\n", path, err)
}

// restClientFor is shared by the readiness checks.
func restClientFor(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(c)
}
