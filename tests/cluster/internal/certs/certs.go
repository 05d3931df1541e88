// Package certs generates the throw-away PKI of one test cluster: a CA, serving and
// client certificates, the service-account signing key pair and kubeconfig files.
// Everything is written below one directory so that concurrent clusters never share
// key material.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const validity = 10 * 365 * 24 * time.Hour

// Pair is a PEM encoded certificate and its PEM encoded private key, together with
// the files they were written to.
type Pair struct {
	CertPEM, KeyPEM   []byte
	CertFile, KeyFile string
}

// PKI holds every file the control plane needs.
type PKI struct {
	Dir string
	CA  Pair
	// Serving is the TLS serving certificate shared by all components (SANs
	// 127.0.0.1, localhost and the in-cluster names of the kubernetes service).
	Serving Pair
	// Clients maps a user name (system:admin, system:kube-controller-manager,
	// system:kube-scheduler) to its client certificate.
	Clients map[string]Pair
	// FrontProxyCA and FrontProxyClient configure the apiserver's requestheader
	// authentication and its aggregator's client certificate.
	FrontProxyCA, FrontProxyClient Pair
	// SAKeyFile and SAPubFile are the service-account token signing key pair.
	SAKeyFile, SAPubFile string

	caCert *x509.Certificate
	caKey  crypto.Signer
}

// Client certificate identities. The admin is in system:masters (cluster-admin via
// RBAC's bootstrap binding); the components use the users the bootstrap RBAC
// policy grants their roles to.
const (
	AdminUser             = "kubernetes-admin"
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	FrontProxyUser        = "front-proxy-client"
)

// Generate creates a fresh PKI below dir.
func Generate(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &PKI{Dir: dir, Clients: map[string]Pair{}}
	var err error
	if p.caCert, p.caKey, p.CA, err = p.newCA("ca", "kstateful-test-ca"); err != nil {
		return nil, err
	}
	// The aggregation layer's front proxy has its own CA (as kubeadm sets it up);
	// delegated authentication in the other components expects it.
	frontCA, frontKey, frontPair, err := p.newCA("front-proxy-ca", "kstateful-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	p.FrontProxyCA = frontPair
	if p.FrontProxyClient, err = p.issueWith(frontCA, frontKey, "front-proxy-client", &x509.Certificate{
		Subject:     pkix.Name{CommonName: FrontProxyUser},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, err
	}

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 96, 0, 1)},
	}
	if p.Serving, err = p.issue("serving", serving); err != nil {
		return nil, err
	}
	clients := []struct {
		file, user string
		orgs       []string
	}{
		{"admin", AdminUser, []string{"system:masters"}},
		{"kube-controller-manager", ControllerManagerUser, nil},
		{"kube-scheduler", SchedulerUser, nil},
	}
	for _, c := range clients {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: c.user, Organization: c.orgs},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if p.Clients[c.user], err = p.issue(c.file, tmpl); err != nil {
			return nil, err
		}
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	p.SAKeyFile = filepath.Join(dir, "sa.key")
	p.SAPubFile = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(p.SAKeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.SAPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// newCA creates a self-signed CA and writes it as name.crt/name.key.
func (p *PKI) newCA(name, cn string) (*x509.Certificate, crypto.Signer, Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, Pair{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, Pair{}, err
	}
	pair, err := p.write(name, der, key)
	return cert, key, pair, err
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

// issue signs tmpl (completed with serial, validity and key usage) with the CA.
func (p *PKI) issue(name string, tmpl *x509.Certificate) (Pair, error) {
	return p.issueWith(p.caCert, p.caKey, name, tmpl)
}

func (p *PKI) issueWith(caCert *x509.Certificate, caKey crypto.Signer, name string, tmpl *x509.Certificate) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(validity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return Pair{}, fmt.Errorf("issuing %s certificate: %w", name, err)
	}
	return p.write(name, der, key)
}

func (p *PKI) write(name string, der []byte, key *ecdsa.PrivateKey) (Pair, error) {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	pair := Pair{
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		CertFile: filepath.Join(p.Dir, name+".crt"),
		KeyFile:  filepath.Join(p.Dir, name+".key"),
	}
	if err := os.WriteFile(pair.CertFile, pair.CertPEM, 0o644); err != nil {
		return Pair{}, err
	}
	if err := os.WriteFile(pair.KeyFile, pair.KeyPEM, 0o600); err != nil {
		return Pair{}, err
	}
	return pair, nil
}

// WriteKubeconfig writes a kubeconfig with embedded credentials for user (one of
// the Clients) talking to server, with a single context named "kstateful".
func (p *PKI) WriteKubeconfig(path, server, user string) error {
	client, ok := p.Clients[user]
	if !ok {
		return fmt.Errorf("no client certificate for %q", user)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kstateful"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.CA.CertPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: client.CertPEM, ClientKeyData: client.KeyPEM}
	cfg.Contexts["kstateful"] = &clientcmdapi.Context{Cluster: "kstateful", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "kstateful"
	// Write to a temporary name and rename, so a reader never sees a partial file.
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
