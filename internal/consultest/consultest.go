// Package consultest runs a real Consul dev agent on loopback for tests.
//
// The binary comes from CONSUL_BIN, else from PATH (`make test` sets
// CONSUL_BIN from scripts/get-consul.sh). A missing binary is an error, never
// a skipped test.
package consultest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/testproc"
)

// Agent is a running `consul agent -dev`. Its state lives in memory, so a
// Restart loses every registration, like an agent whose data dir was wiped.
type Agent struct {
	Bin  string
	Addr string // host:port of the HTTP API

	api  *api.Client // one client, so that polls reuse connections
	proc *testproc.Process
}

// Binary finds the consul binary.
func Binary() (string, error) {
	return testproc.Find("CONSUL_BIN", "consul", "run `make test` (scripts/get-consul.sh builds one)")
}

// Start starts a dev agent on free loopback ports with script checks enabled
// (registered over the HTTP API, they need enable_script_checks) and waits
// until it has elected itself leader. hcl adds configuration.
func Start(hcl ...string) (*Agent, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	a := &Agent{Bin: bin}
	// Fresh ports per attempt: another test may take one that FreePorts
	// gave before the agent binds it.
	err = testproc.Retry(func() error {
		ports, err := testproc.FreePorts(4)
		if err != nil {
			return err
		}
		a.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		cfg := api.DefaultConfig()
		cfg.Address, cfg.Token = a.Addr, ""
		if a.api, err = api.NewClient(cfg); err != nil {
			return err
		}
		args := []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", strconv.Itoa(ports[0]), "-serf-lan-port", strconv.Itoa(ports[1]),
			"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
			"-hcl", "enable_script_checks = true",
			// -dev logs at debug level: each sync of the agent's state
			// logs a line per service in sync, hundreds per registration
			// with a few hundred services, all written while it holds its
			// state lock. Agents run at info unless told otherwise.
			"-log-level", "info"}
		for _, h := range hcl {
			args = append(args, "-hcl", h)
		}
		a.proc = &testproc.Process{Bin: bin, Args: args}
		return a.start()
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) start() error {
	err := a.proc.Start(func() error {
		leader, err := a.api.Status().Leader()
		if err == nil && leader == "" {
			err = errors.New("no leader yet")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("consultest: %w", err)
	}
	return nil
}

// Stop stops the agent (SIGTERM, then SIGKILL after 10s).
func (a *Agent) Stop() { a.proc.Stop() }

// Restart stops the agent and starts it again on the same ports, empty.
func (a *Agent) Restart() error {
	a.Stop()
	return a.start()
}

// Client returns the API client for the agent.
func (a *Agent) Client() *api.Client { return a.api }

// Log returns what the agent printed so far.
func (a *Agent) Log() string { return a.proc.Log() }

// Held is how many services the agent holds in its local state, Consul's
// own left out, from its /v1/agent/self: a poll that costs the agent next
// to nothing, where listing 1000 services every 20 ms kept it busy
// encoding lists (about half a megabyte each).
func (a *Agent) Held() (int, error) {
	self, err := a.api.Agent().Self()
	if err != nil {
		return 0, err
	}
	stats, _ := self["Stats"]["agent"].(map[string]any)
	v, _ := stats["services"].(string)
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("consul: /v1/agent/self: services %q: %w", v, err)
	}
	return n, nil
}

// Empty is Reset, then waits, up to a minute, until the catalog lists no
// service of the agent's node but Consul's own: after a Reset the agent
// goes on removing the services from the catalog for a while, holding the
// lock that registrations wait on.
func (a *Agent) Empty(ctx context.Context) error {
	if err := a.Reset(ctx); err != nil {
		return err
	}
	node, err := a.api.Agent().NodeName()
	if err != nil {
		return err
	}
	return testkit.Eventually(ctx, time.Minute, 50*time.Millisecond, func() error {
		n, _, err := a.api.Catalog().NodeServiceList(node, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return err
		}
		if n == nil {
			return fmt.Errorf("consul: node %s not in the catalog", node)
		}
		for _, s := range n.Services {
			if s.Service != "consul" {
				return fmt.Errorf("consul: the catalog still lists %s of node %s", s.ID, node)
			}
		}
		return nil
	})
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
