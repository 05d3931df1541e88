// Package etcd runs an embedded, single-member etcd for one test cluster, listening
// only on 127.0.0.1, with fsync disabled (the data is thrown away anyway).
package etcd

import (
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Server is a running embedded etcd.
type Server struct {
	e *embed.Etcd
	// ClientURL is the http://127.0.0.1:port URL for --etcd-servers.
	ClientURL string
}

// Start starts etcd with its data in dataDir and its log in logFile, and waits (at
// most timeout) until it serves clients.
func Start(dataDir, logFile string, clientPort, peerPort int, timeout time.Duration) (*Server, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kstateful"
	cfg.Dir = dataDir
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = true
	cfg.Logger = "zap"
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{logFile}
	// Keep the database small: the apiserver compacts every 5 minutes itself.
	cfg.QuotaBackendBytes = 2 << 30

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd (log %s): %w", logFile, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed (log %s): %w", logFile, err)
	case <-time.After(timeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd not ready after %s (log %s)", timeout, logFile)
	}
	return &Server{e: e, ClientURL: client.String()}, nil
}

// Stop shuts etcd down and waits for it.
func (s *Server) Stop() {
	done := make(chan struct{})
	go func() {
		s.e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
	}
}
