package certs

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func parse(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	p, err := Generate(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parse(t, p.CA.CertPEM))

	serving := parse(t, p.Serving.CertPEM)
	for _, name := range []string{"localhost", "kubernetes.default.svc"} {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("serving cert for %s: %v", name, err)
		}
	}
	if err := serving.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if !serving.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IP SANs %v", serving.IPAddresses)
	}

	want := map[string][]string{
		AdminUser:             {"system:masters"},
		ControllerManagerUser: nil,
		SchedulerUser:         nil,
	}
	for user, orgs := range want {
		c := parse(t, p.Clients[user].CertPEM)
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", user, err)
		}
		if c.Subject.CommonName != user || len(c.Subject.Organization) != len(orgs) {
			t.Errorf("%s: subject %v", user, c.Subject)
		}
	}

	kc := filepath.Join(dir, "kubeconfig")
	if err := p.WriteKubeconfig(kc, "https://127.0.0.1:6443", AdminUser); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || len(cfg.CertData) == 0 || len(cfg.CAData) == 0 {
		t.Errorf("kubeconfig: %+v", cfg)
	}
	for _, f := range []string{p.SAKeyFile, p.SAPubFile, p.FrontProxyCA.CertFile, p.FrontProxyClient.KeyFile} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
}
