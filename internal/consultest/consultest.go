// Package consultest runs a real Consul dev agent on loopback for tests.
//
// The binary comes from CONSUL_BIN, else from PATH (`make test` sets
// CONSUL_BIN from scripts/get-consul.sh). A missing binary is an error, never
// a skipped test.
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// Agent is a running `consul agent -dev`. Its state lives in memory, so a
// Restart loses every registration, like an agent whose data dir was wiped.
type Agent struct {
	Bin  string
	Addr string // host:port of the HTTP API
	args []string

	api *api.Client // one client, so that polls reuse connections

	mu  sync.Mutex
	cmd *exec.Cmd
	log *Buffer
}

// Binary finds the consul binary.
func Binary() (string, error) {
	if b := os.Getenv("CONSUL_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("CONSUL_BIN=%s: %w", b, err)
		}
		return b, nil
	}
	if b, err := exec.LookPath("consul"); err == nil {
		return b, nil
	}
	return "", errors.New("no consul binary: set CONSUL_BIN or run `make test` (scripts/get-consul.sh builds one)")
}

// Start starts a dev agent on free loopback ports with script checks enabled (registered over the HTTP API, they need enable_script_checks)
// and waits until it has elected itself leader. hcl adds configuration.
func Start(hcl ...string) (*Agent, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	a := &Agent{Bin: bin, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Token = a.Addr, ""
	if a.api, err = api.NewClient(cfg); err != nil {
		return nil, err
	}
	a.args = []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]), "-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-hcl", "enable_script_checks = true"}
	for _, h := range hcl {
		a.args = append(a.args, "-hcl", h)
	}
	return a, a.start()
}

func (a *Agent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = &Buffer{}
	cmd := exec.Command(a.Bin, a.args...)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("consultest: start %s: %w", a.Bin, err)
	}
	a.cmd = cmd
	c := a.api
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if leader, err := c.Status().Leader(); err == nil && leader != "" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return fmt.Errorf("consultest: agent did not become leader within 60s; log:\n%s", a.log)
}

// Stop stops the agent (SIGTERM, then SIGKILL after 10s).
func (a *Agent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
	}
	a.cmd = nil
}

// Restart stops the agent and starts it again on the same ports, empty.
func (a *Agent) Restart() error {
	a.Stop()
	return a.start()
}

// Client returns the API client for the agent.
func (a *Agent) Client() *api.Client { return a.api }

// Log returns what the agent printed so far.
func (a *Agent) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// Reset deregisters every service of the agent except Consul's own.
func (a *Agent) Reset(ctx context.Context) error {
	agent := a.Client().Agent()
	services, err := agent.Services()
	if err != nil {
		return err
	}
	for id, s := range services {
		if s.Service == "consul" {
			continue
		}
		if err := agent.ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
			return err
		}
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Buffer collects a process's output; it may be read while written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
