// Package etcdtest runs a real etcd server on loopback for tests.
//
// The binary comes from ETCD_BIN, else from PATH (Debian's etcd-server
// package, which `make setup` installs). A missing binary is an error, never
// a skipped test.
package etcdtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/registrator/registrator/internal/testproc"
)

// Server is a single-member etcd cluster with its data in a temporary
// directory. Stop and Start keep the data; Wipe starts over empty.
type Server struct {
	Addr string // host:port of the client API

	dir  string
	cli  *clientv3.Client
	proc *testproc.Process
}

// Binary finds the etcd binary.
func Binary() (string, error) {
	return testproc.Find("ETCD_BIN", "etcd", "run `make setup` (installs Debian's etcd-server)")
}

// Start starts a server on free loopback ports and waits until it answers.
// extra adds command-line flags.
func Start(extra ...string) (*Server, error) { return start(nil, extra...) }

// TLS is the configuration of a server that serves clients over TLS only
// and requires a client certificate signed by CA.
type TLS struct {
	CertFile, KeyFile, CAFile string
	Client                    *tls.Config // what the test's own client uses
}

// StartTLS starts a server that serves clients over TLS only.
func StartTLS(t TLS) (*Server, error) {
	return start(t.Client, "--cert-file", t.CertFile, "--key-file", t.KeyFile,
		"--client-cert-auth", "--trusted-ca-file", t.CAFile)
}

func start(clientTLS *tls.Config, extra ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	// Fresh ports per attempt: another test may take one that FreePorts
	// gave before the server binds it.
	err = testproc.Retry(func() error {
		ports, err := testproc.FreePorts(2)
		if err != nil {
			return err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		scheme := "http://"
		if clientTLS != nil {
			scheme = "https://"
		}
		client := scheme + s.Addr
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		args := []string{"--name", "test", "--data-dir", dir + "/data",
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "test=" + peer, "--log-level", "warn", "--logger", "zap"}
		s.proc = &testproc.Process{Bin: bin, Args: append(args, extra...)}
		if s.cli != nil {
			s.cli.Close()
		}
		s.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 2 * time.Second, Logger: zap.NewNop(), TLS: clientTLS})
		if err != nil {
			return err
		}
		return s.Start()
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Start starts the server again after Stop, with the data it had.
func (s *Server) Start() error {
	err := s.proc.Start(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := s.cli.Get(ctx, "health-probe")
		return err
	})
	if err != nil {
		return fmt.Errorf("etcdtest: %w", err)
	}
	return nil
}

// Stop stops the server, keeping its data.
func (s *Server) Stop() { s.proc.Stop() }

// Wipe stops the server, deletes its data and starts it again: a new, empty
// cluster, as after a disaster recovery.
func (s *Server) Wipe() error {
	s.Stop()
	if err := os.RemoveAll(s.dir + "/data"); err != nil {
		return err
	}
	return s.Start()
}

// Reset deletes every key.
func (s *Server) Reset(ctx context.Context) error {
	_, err := s.cli.Delete(ctx, "\x00", clientv3.WithFromKey())
	return err
}

// Client returns a client of the server.
func (s *Server) Client() *clientv3.Client { return s.cli }

// Log returns what the server printed since it last started.
func (s *Server) Log() string { return s.proc.Log() }

// Close stops the server and deletes its data.
func (s *Server) Close() {
	if s.proc != nil {
		s.Stop()
	}
	if s.cli != nil {
		s.cli.Close()
	}
	os.RemoveAll(s.dir)
}
