package bed

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

	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/registrator/registrator/internal/testproc"
)

// Cluster is a registry cluster on the LAN, as users run one: three
// server machines, each with a Consul server and an etcd member, and a
// Consul client agent on every host that joins it (Agent). Everything runs
// with its defaults but for the addresses, the data directories and the
// update check.
type Cluster struct {
	Servers []*Server
	Etcd    *clientv3.Client // every member's endpoint

	consulBin, dir string
}

// noCheckpoint keeps every Consul process of the bed from asking
// checkpoint-api.hashicorp.com for a newer release, as a non-dev agent does
// once it runs: a test sends nothing beyond the addresses it made.
const noCheckpoint = "disable_update_check = true"

// Server is one of the cluster's server machines.
type Server struct {
	*Node
	Consul *testproc.Process
	Member *testproc.Process // etcd
	api    *api.Client
}

// Cluster starts three server machines on the LAN and waits until Consul
// has a leader and etcd answers a linearizable read. Without consulBin
// the servers run etcd alone.
func (l *LAN) Cluster(consulBin, etcdBin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", prefix+"cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{consulBin: consulBin, dir: dir}
	for i := 1; i <= 3; i++ {
		n, err := l.Node(fmt.Sprintf("server-%d", i))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Servers = append(c.Servers, &Server{Node: n})
	}
	var peers, endpoints []string
	for i, s := range c.Servers {
		peers = append(peers, fmt.Sprintf("e%d=http://%s:2380", i+1, s.Addr))
		endpoints = append(endpoints, "http://"+s.Addr+":2379")
	}
	for i, s := range c.Servers {
		args := []string{"agent", "-server", "-bootstrap-expect", "3", "-node", s.Name,
			"-bind", s.Addr, "-client", "127.0.0.1 " + s.Addr, "-data-dir", filepath.Join(dir, s.Name, "consul"),
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-hcl", noCheckpoint}
		for _, o := range c.Servers {
			if o != s {
				args = append(args, "-retry-join", o.Addr)
			}
		}
		if consulBin != "" {
			s.Consul = s.Process(consulBin, args...)
		}
		cfg := api.DefaultConfig()
		cfg.Address, cfg.Token = s.Addr+":8500", ""
		if s.api, err = api.NewClient(cfg); err != nil {
			c.Close()
			return nil, err
		}
		s.Member = s.Process(etcdBin, "--name", fmt.Sprintf("e%d", i+1), "--data-dir", filepath.Join(dir, s.Name, "etcd"),
			"--listen-client-urls", endpoints[i], "--advertise-client-urls", endpoints[i],
			"--listen-peer-urls", fmt.Sprintf("http://%s:2380", s.Addr), "--initial-advertise-peer-urls", fmt.Sprintf("http://%s:2380", s.Addr),
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "registrator-bed", "--logger", "zap", "--log-level", "warn")
	}
	c.Etcd, err = clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.Close()
		return nil, err
	}
	// No member is ready before a quorum is: start them together.
	var wg sync.WaitGroup
	errs := make([]error, 2*len(c.Servers))
	for i, s := range c.Servers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if s.Consul != nil {
				errs[2*i] = s.StartConsul()
			}
		}()
		go func() { defer wg.Done(); errs[2*i+1] = s.StartMember() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// StartConsul starts the server's Consul server (again) and waits until it
// knows a leader.
func (s *Server) StartConsul() error {
	return s.Consul.Start(func() error { return hasLeader(s.api) })
}

// StartMember starts the server's etcd member (again) and waits until it
// answers a linearizable read itself.
func (s *Server) StartMember() error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + s.Addr + ":2379"}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	return s.Member.Start(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health-probe")
		return err
	})
}

// Dir is where the cluster keeps its servers' and agents' data.
func (c *Cluster) Dir() string { return c.dir }

// ConsulAPI is a client of this server's Consul HTTP API.
func (s *Server) ConsulAPI() *api.Client { return s.api }

func hasLeader(c *api.Client) error {
	leader, err := c.Status().Leader()
	if err == nil && leader == "" {
		err = errors.New("no leader yet")
	}
	return err
}

// EtcdEndpoints is every member's client address, as an etcd:// URI wants
// them.
func (c *Cluster) EtcdEndpoints() string {
	var eps []string
	for _, s := range c.Servers {
		eps = append(eps, net.JoinHostPort(s.Addr, "2379"))
	}
	return strings.Join(eps, ",")
}

// ConsulLeader is the server that leads Consul's raft now.
func (c *Cluster) ConsulLeader() (*Server, error) {
	for _, s := range c.Servers {
		leader, err := s.api.Status().Leader()
		if err != nil || leader == "" {
			continue
		}
		for _, o := range c.Servers {
			if strings.HasPrefix(leader, o.Addr+":") {
				return o, nil
			}
		}
	}
	return nil, errors.New("bed: no Consul server knows a leader")
}

// EtcdLeader is the server whose member leads etcd's raft now.
func (c *Cluster) EtcdLeader(ctx context.Context) (*Server, error) {
	for _, s := range c.Servers {
		st, err := c.Etcd.Status(ctx, s.Addr+":2379")
		if err != nil || st.Leader == 0 {
			continue
		}
		if st.Header.MemberId == st.Leader {
			return s, nil
		}
	}
	return nil, errors.New("bed: no etcd member leads")
}

// Agent is a Consul client agent on a host, joined to the cluster: its
// HTTP API on the host's 127.0.0.1:8500 (for the host's daemon) and at its
// LAN address (API, for the test).
type Agent struct {
	Proc *testproc.Process
	API  *api.Client
	dir  string
}

// Agent starts a client agent on h and waits until it knows the leader;
// hcl adds configuration.
func (c *Cluster) Agent(h *Host, hcl ...string) (*Agent, error) {
	a := &Agent{dir: filepath.Join(c.dir, h.Name, "consul")}
	args := []string{"agent", "-node", h.Name, "-bind", h.Addr, "-client", "127.0.0.1 " + h.Addr,
		"-data-dir", a.dir, "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-hcl", noCheckpoint}
	for _, s := range c.Servers {
		args = append(args, "-retry-join", s.Addr)
	}
	timeout, err := RPCClientTimeout()
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		args = append(args, "-hcl", fmt.Sprintf("limits { rpc_client_timeout = %q }", timeout))
	}
	for _, h := range hcl {
		args = append(args, "-hcl", h)
	}
	a.Proc = h.Process(c.consulBin, args...)
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Token = h.Addr+":8500", ""
	if a.API, err = api.NewClient(cfg); err != nil {
		return nil, err
	}
	return a, a.Start()
}

// Start starts the agent (again) with the state it kept.
func (a *Agent) Start() error { return a.Proc.Start(func() error { return hasLeader(a.API) }) }

// RestartEmpty stops the agent, deletes its state and starts it again: an
// agent reinstalled, or one whose data directory was lost.
func (a *Agent) RestartEmpty() error {
	a.Proc.Stop()
	if err := os.RemoveAll(a.dir); err != nil {
		return err
	}
	return a.Start()
}

// Close stops every server process and removes the cluster's data (the
// server machines themselves go with the LAN).
func (c *Cluster) Close() {
	if c.Etcd != nil {
		c.Etcd.Close()
	}
	for _, s := range c.Servers {
		s.Node.Close()
	}
	_ = os.RemoveAll(c.dir)
}
