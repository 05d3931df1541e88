// Command kcluster is a multi-call binary for the kubectl-stateful tests: the real
// Kubernetes control-plane components and kubectl, built from Go modules, plus the
// `up` and `run` commands that assemble them into a throw-away cluster (see
// tests/cluster/README.md).
//
//	kcluster up --dir DIR [--exit-on-stdin-eof]   run a cluster in the foreground
//	kcluster run -- CMD [ARGS...]                  run CMD against a fresh cluster
//	kcluster kube-apiserver|kube-controller-manager|kube-scheduler|kubectl ARGS...
//
// The component is chosen by the first argument or by the name the binary is
// invoked under (argv[0]), so a symlink named kubectl is kubectl.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"

	"kubectl-stateful/tests/cluster/internal/launch"
)

const usage = `usage:
  kcluster up --dir DIR [--exit-on-stdin-eof] [--ready-timeout 120s] [--keep-files]
  kcluster run [--ready-timeout 120s] [--keep-files] -- CMD [ARGS...]
  kcluster kube-apiserver|kube-controller-manager|kube-scheduler|kubectl ARGS...
`

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	switch name {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl":
	default:
		if len(args) == 0 {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	os.Args = append([]string{name}, args...)
	switch name {
	case "up":
		os.Exit(launch.Up(args))
	case "run":
		os.Exit(launch.Run(args))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kubectl":
		os.Exit(cli.Run(kubectlcmd.NewDefaultKubectlCommand()))
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
}
