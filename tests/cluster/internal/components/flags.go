package components

import (
	"fmt"
	"path/filepath"
)

// Config is everything the component command lines are built from.
type Config struct {
	Dir string // the cluster directory; logs go to Dir/<component>.log

	EtcdURL string

	APIServerPort, ControllerManagerPort, SchedulerPort int

	CACert, CAKey             string
	ServingCert, ServingKey   string
	SAKey, SAPub              string
	FrontProxyCA              string
	FrontProxyCert            string
	FrontProxyKey             string
	ControllerManagerKubeconf string
	SchedulerKubeconf         string
}

// ServiceAccountIssuer is the issuer of service-account tokens.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// LogFile is where component name logs.
func (c *Config) LogFile(name string) string { return filepath.Join(c.Dir, name+".log") }

// APIServerArgs is the kube-apiserver command line.
func (c *Config) APIServerArgs() []string {
	return []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.APIServerPort),
		"--cert-dir=" + filepath.Join(c.Dir, "pki", "apiserver"),
		"--tls-cert-file=" + c.ServingCert,
		"--tls-private-key-file=" + c.ServingKey,
		"--client-ca-file=" + c.CACert,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + c.SAPub,
		"--service-account-signing-key-file=" + c.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--requestheader-client-ca-file=" + c.FrontProxyCA,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + c.FrontProxyCert,
		"--proxy-client-key-file=" + c.FrontProxyKey,
		// The only address the apiserver has is 127.0.0.1, which Endpoints and
		// EndpointSlices reject; do not publish endpoints for the kubernetes service.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	}
}

// ControllerManagerArgs is the kube-controller-manager command line.
func (c *Config) ControllerManagerArgs() []string {
	return []string{
		"--kubeconfig=" + c.ControllerManagerKubeconf,
		"--authentication-kubeconfig=" + c.ControllerManagerKubeconf,
		"--authorization-kubeconfig=" + c.ControllerManagerKubeconf,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.ControllerManagerPort),
		"--tls-cert-file=" + c.ServingCert,
		"--tls-private-key-file=" + c.ServingKey,
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + c.SAKey,
		"--root-ca-file=" + c.CACert,
		"--cluster-signing-cert-file=" + c.CACert,
		"--cluster-signing-key-file=" + c.CAKey,
		"--enable-hostpath-provisioner=true",
		"--cluster-name=kstateful",
		"--profiling=false",
	}
}

// SchedulerArgs is the kube-scheduler command line.
func (c *Config) SchedulerArgs() []string {
	return []string{
		"--kubeconfig=" + c.SchedulerKubeconf,
		"--authentication-kubeconfig=" + c.SchedulerKubeconf,
		"--authorization-kubeconfig=" + c.SchedulerKubeconf,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.SchedulerPort),
		"--tls-cert-file=" + c.ServingCert,
		"--tls-private-key-file=" + c.ServingKey,
		"--leader-elect=false",
	}
}
