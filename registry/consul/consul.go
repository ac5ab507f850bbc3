// Package consul registers services with the local Consul agent.
//
// URIs: consul://host:port, consul-tls://host:port, consul-unix:///path.sock.
// The ACL token and TLS files come from Consul's own environment variables
// (CONSUL_HTTP_TOKEN, CONSUL_CACERT, CONSUL_CLIENT_CERT, ...), and
// CONSUL_HTTP_ADDR gives the address when the URI has no host.
package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/rawbody"
)

// Meta keys that mark an entry as ours. They are written beside the
// container's attributes and never taken from them.
const (
	MetaOwner     = "registrator-owner"
	MetaContainer = "registrator-container"
	MetaRevision  = "registrator-rev"
	MetaWriter    = "registrator-host" // Service.Writer, written only when set
	metaReserved  = "registrator-"
)

// Backend is the Consul agent's service catalog.
type Backend struct {
	client *api.Client
	addr   string
	https  bool
	log    *logrus.Entry

	listMu sync.Mutex
	body   [2]rawbody.Buffer // the agent's last two service lists, reused in turn
	last   int               // which of body holds the last list
	parsed []bridge.Service  // the last list, decoded

	ownMu   sync.Mutex
	own     map[string]string // IDs of the services this backend registered and has not deregistered since: for whom (writtenFor)
	ownWake chan struct{}     // buffer 1: own gained a service
}

var (
	_ bridge.Backend  = (*Backend)(nil)
	_ bridge.Notifier = (*Backend)(nil)
)

// Open configures a client for the agent the URI names. It does not connect.
// o.Log gets what Register had to change to fit Consul's limits; the owner
// mark comes with each service, and agent services have no TTL.
func Open(u *url.URL, o bridge.BackendOptions) (*Backend, error) {
	log := o.Log
	if u.Scheme != "consul-unix" && u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("consul: %s: unexpected path %q: the consul backend takes no prefix", shown(u), u.Path)
	}
	if q := u.Query(); len(q) > 0 { // the first in order, so that the message does not depend on map order
		return nil, fmt.Errorf("consul: %s: unknown option %q", shown(u), slices.Sorted(maps.Keys(q))[0])
	}
	cfg, err := ClientConfig(u)
	if err != nil {
		return nil, err
	}
	addr := cfg.Address // NewClient rewrites a unix:// address
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	// Services reads the list's body through the rawbody.Transport.
	KeepConnections(cfg)
	cfg.HttpClient.Transport = &rawbody.Transport{Base: cfg.HttpClient.Transport}
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Backend{client: c, addr: addr, https: cfg.Scheme == "https", log: log,
		own: map[string]string{}, ownWake: make(chan struct{}, 1)}, nil
}

// shown is how an error prints the URI: registry.Display's form (that
// package imports this one), without user information.
func shown(u *url.URL) string { return u.Scheme + "://" + u.Host + u.Path }

// KeepConnections sets up the HTTP client that api.NewClient left in cfg
// for a local agent: no gzip, which would cost it and us CPU on every list
// for nothing, and bridge.IdleConns connections kept open, also to a unix
// socket (the library's client for one dials for every request). It also
// sets the transport's backstop for an answer that never comes
// (ResponseHeaderTimeout; see timeout.go).
func KeepConnections(cfg *api.Config) {
	if tr, ok := cfg.HttpClient.Transport.(*http.Transport); ok {
		tr.ResponseHeaderTimeout = ResponseHeaderTimeout
		tr.DisableCompression = true
		tr.DisableKeepAlives = false
		tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, bridge.IdleConns)
		tr.MaxIdleConns = max(tr.MaxIdleConns, bridge.IdleConns)
	}
}

// ClientConfig is the client configuration for the agent a consul URI names:
// Consul's environment (CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...), then the
// URI's host; a consul-unix URI's path is the socket, a -tls scheme means
// HTTPS. It leaves the path and query to the caller.
func ClientConfig(u *url.URL) (*api.Config, error) {
	cfg := api.DefaultConfig() // reads the CONSUL_* environment
	if u.Scheme == "consul-unix" {
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return nil, fmt.Errorf("consul: %s: no socket path (consul-unix:///path/to/consul.sock)", u)
		}
		cfg.Address = "unix://" + p
		return cfg, nil
	}
	if strings.HasSuffix(u.Scheme, "-tls") {
		cfg.Scheme = "https"
		// registrator read the client certificate from these.
		if cfg.TLSConfig.CertFile == "" {
			cfg.TLSConfig.CertFile = os.Getenv("CONSUL_TLSCERT")
		}
		if cfg.TLSConfig.KeyFile == "" {
			cfg.TLSConfig.KeyFile = os.Getenv("CONSUL_TLSKEY")
		}
	}
	if u.Host != "" {
		cfg.Address = u.Host
	}
	return cfg, nil
}

// Ping asks the agent for the cluster leader, which needs no ACL rights. Any
// HTTP answer, even "no cluster leader", means the agent is there: it
// accepts registrations and syncs them to the servers later.
func (b *Backend) Ping(ctx context.Context) error {
	_, err := b.client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	var se api.StatusError
	if err != nil && !errors.As(err, &se) {
		if b.https {
			// A refused client certificate surfaces as a failed connection.
			return fmt.Errorf("consul: agent at %s over TLS (check CONSUL_CACERT, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY): %w", b.addr, err)
		}
		return fmt.Errorf("consul: agent at %s: %w", b.addr, err)
	}
	return nil
}

// Services returns every service of the local agent.
//
// It runs every resync, and the agent's list, with every field of every
// service, is long: Services decodes only the fields it returns, and not
// at all when the agent answers byte for byte what it answered last time,
// which is the common case (the agent's JSON has no timestamps and sorts
// its keys).
func (b *Backend) Services(ctx context.Context) ([]bridge.Service, error) {
	b.listMu.Lock()
	defer b.listMu.Unlock()
	cur := &b.body[1-b.last]
	m, err := b.client.Agent().ServicesWithFilterOpts("", (&api.QueryOptions{}).WithContext(rawbody.Into(ctx, cur, "{}")))
	if err != nil {
		return nil, fmt.Errorf("consul: list services: %w", err)
	}
	if !cur.Got() { // not through our transport: the client decoded it all
		lean := make(map[string]listedService, len(m))
		for id, s := range m {
			if s != nil {
				lean[id] = listed(s)
			}
		}
		return servicesOf(lean), nil
	}
	if b.parsed != nil && bytes.Equal(cur.Bytes(), b.body[b.last].Bytes()) {
		return slices.Clone(b.parsed), nil
	}
	parsed, err := decodeServices(cur.Bytes())
	if err != nil {
		b.parsed = nil
		return nil, fmt.Errorf("consul: list services: %w", err)
	}
	b.last = 1 - b.last
	b.parsed = parsed
	return slices.Clone(b.parsed), nil
}

// listedService is what Services reads of a service in the agent's list.
type listedService struct {
	ID      string
	Kind    string
	Service string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
}

// listed is what Services reads of s.
func listed(s *api.AgentService) listedService {
	return listedService{ID: s.ID, Kind: string(s.Kind), Service: s.Service, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: s.Meta}
}

// decodeServices reads the agent's answer to /v1/agent/services: an object
// of services by ID (null for none).
func decodeServices(body []byte) ([]bridge.Service, error) {
	var lean map[string]listedService
	if err := json.Unmarshal(body, &lean); err != nil {
		return nil, err
	}
	return servicesOf(lean), nil
}

func servicesOf(m map[string]listedService) []bridge.Service {
	out := make([]bridge.Service, 0, len(m))
	for _, s := range m {
		if s.Kind == string(api.ServiceKindConnectProxy) {
			// A Connect sidecar of one of ours (SERVICE_CONNECT_SIDECAR)
			// carries its owner mark, copied by the agent; the agent
			// registers and removes it with its service.
			continue
		}
		meta := map[string]string{}
		for k, v := range s.Meta {
			if !strings.HasPrefix(k, metaReserved) {
				meta[k] = v
			}
		}
		out = append(out, bridge.Service{
			ID:        s.ID,
			Name:      s.Service,
			Address:   s.Address,
			Port:      s.Port,
			Tags:      s.Tags,
			Meta:      meta,
			Container: s.Meta[MetaContainer],
			Owner:     s.Meta[MetaOwner],
			Writer:    s.Meta[MetaWriter],
			Revision:  s.Meta[MetaRevision],
		})
	}
	slices.SortFunc(out, func(a, b bridge.Service) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Register creates or replaces the service and its checks, unless the
// agent holds a service of that ID that is someone else's (mayWrite).
func (b *Backend) Register(ctx context.Context, s bridge.Service) error {
	if err := b.mayWrite(ctx, s); err != nil {
		return err
	}
	reg, notes := registration(s)
	for _, n := range notes {
		b.log.WithField("service", s.ID).Warn("consul: " + n)
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := b.client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("consul: register %s: %w", s.ID, err)
	}
	b.owned(s, true)
	if s.Draining {
		err := b.client.Agent().EnableServiceMaintenanceOpts(s.ID, "registrator: the container is stopping", (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("consul: maintenance of draining %s: %w", s.ID, err)
		}
	}
	// A registration sets neither the status of a check that exists
	// already (Consul keeps it) nor its output: both go in with an
	// update, also when the probe printed nothing (most probes do not).
	if h := s.Health; h != nil {
		err := b.client.Agent().UpdateTTLOpts(HealthCheckID(s.ID), h.Output, healthStatus[h.Status], (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("consul: docker health output of %s: %w", s.ID, err)
		}
	}
	return nil
}

// MirrorsHealth says that Consul shows a container's Docker health as a
// check of its services.
func (b *Backend) MirrorsHealth() bool { return true }

// HealthCheckID is the ID of the check that mirrors the Docker health of
// the service's container.
func HealthCheckID(serviceID string) string { return "service:" + serviceID + ":docker-health" }

// healthStatus maps Docker health to a check status.
var healthStatus = map[string]string{
	bridge.Healthy:   api.HealthPassing,
	bridge.Starting:  api.HealthWarning,
	bridge.Unhealthy: api.HealthCritical,
}

// healthTTL is the TTL of the Docker health check: long, because the
// daemon updates the check when Docker's health changes, not on a timer.
const healthTTL = "8760h"

// registration is what Register sends for s, and notes on what of the
// service's attributes had to change to fit Consul's limits.
func registration(s bridge.Service) (*api.AgentServiceRegistration, []string) {
	reserved := 3
	if s.Writer != "" {
		reserved++
	}
	meta, notes := metaWithin(s.Meta, reserved)
	meta[MetaOwner] = s.Owner
	meta[MetaContainer] = s.Container
	meta[MetaRevision] = s.Fingerprint()
	if s.Writer != "" {
		meta[MetaWriter] = s.Writer
	}
	reg := &api.AgentServiceRegistration{
		ID:      s.ID,
		Name:    s.Name,
		Tags:    s.Tags,
		Port:    s.Port,
		Address: s.Address,
		Meta:    meta,

		EnableTagOverride: s.TagOverride,
	}
	if s.Weight > 0 {
		reg.Weights = &api.AgentWeights{Passing: s.Weight, Warning: 1}
	}
	if s.Sidecar != nil {
		// Consul registers <ID>-sidecar-proxy, a connect-proxy for this
		// service at its address, and removes it with the service.
		reg.Connect = &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{Port: s.Sidecar.Port}}
	}
	checks := make(api.AgentServiceChecks, 0, len(s.Checks)+1)
	for i, c := range s.Checks {
		// One check has Consul's ID "service:<id>", which applications that
		// update a TTL check rely on; several have "service:<id>:<n>". The
		// IDs are given, so that the Docker health check changes neither.
		id := "service:" + s.ID
		if len(s.Checks) > 1 {
			id += ":" + strconv.Itoa(i+1)
		}
		checks = append(checks, &api.AgentServiceCheck{
			CheckID:                        id,
			HTTP:                           c.HTTP,
			Method:                         c.Method,
			TCP:                            c.TCP,
			GRPC:                           c.GRPC,
			GRPCUseTLS:                     c.GRPCUseTLS,
			TLSSkipVerify:                  c.TLSSkipVerify,
			TLSServerName:                  c.TLSServerName,
			Header:                         c.Header,
			TTL:                            c.TTL,
			Args:                           c.Args,
			Interval:                       c.Interval,
			Timeout:                        c.Timeout,
			Status:                         c.InitialStatus,
			DeregisterCriticalServiceAfter: c.DeregisterAfter,
		})
	}
	if h := s.Health; h != nil {
		checks = append(checks, &api.AgentServiceCheck{
			CheckID: HealthCheckID(s.ID),
			Name:    "Docker health",
			Notes:   "The container's Docker HEALTHCHECK, mirrored by registrator: healthy is passing, starting warning, unhealthy critical.",
			TTL:     healthTTL,
			Status:  healthStatus[h.Status],
		})
	}
	reg.Checks = checks
	return reg, notes
}

// Deregister removes the service; one the agent does not know is not an
// error, and one that is someone else's now is left as it is.
func (b *Backend) Deregister(ctx context.Context, s bridge.Service) error {
	b.owned(s, false)
	if held, err := b.held(ctx, s); err != nil || held != nil {
		return err // someone else's now: nothing of ours is left to remove
	}
	err := b.client.Agent().ServiceDeregisterOpts(s.ID, (&api.QueryOptions{}).WithContext(ctx))
	if answered(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consul: deregister %s: %w", s.ID, err)
	}
	return nil
}

// Close does nothing: the agent API holds no session.
func (b *Backend) Close() error { return nil }

// answered tells whether err is the agent's answer with the HTTP status
// code.
func answered(err error, code int) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == code
}
