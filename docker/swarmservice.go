package docker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/go-connections/nat"

	"github.com/registrator/registrator/bridge"
)

// A Swarm service, as a manager knows it (-swarm-services), is registered
// in two ways, each through the bridge of its owner:
//
//   - its virtual IP on each network it is on (never the routing mesh's)
//     and each target port: the same entries whichever manager writes
//     them, so they are the swarm's, marked "swarm@<cluster ID>" and
//     written by every manager's daemon alike (SwarmServices). IDs name
//     no host: "swarm:<service>:<network>:<port>".
//   - each port it publishes through the routing mesh, at this node's
//     address (-ip, else the host name's): an entry of this host, marked
//     as its containers' are, ID "<host>:swarm:<service>:<published
//     port>" (Engine, when its Swarm is set).
//
// A service in dnsrr mode has no virtual IP: only its ingress-published
// ports are registered here (dnsrr allows none), its tasks by their
// nodes. SERVICE_* keys are read from the service's own labels.

// Prefixes of the IDs the bridges know a Swarm service by.
const (
	swarmServicePrefix = "swarm-service:" // its virtual IPs (SwarmServices)
	swarmIngressPrefix = "swarm-ingress:" // its ports published on this node (Engine)
)

// IsSwarmService reports whether id is one of SwarmServices' (the
// others are Engine's).
func IsSwarmService(id string) bool { return strings.HasPrefix(id, swarmServicePrefix) }

// SwarmServices is the source of the entries of the Swarm's services that
// are the swarm's rather than a node's: their virtual IPs. It answers only
// on a manager (a worker's engine refuses to list services).
type SwarmServices struct {
	API    client.APIClient
	Config Config

	mu       sync.Mutex
	networks map[string]string // network ID → name; names never change
	ingress  []bridge.Container
}

// Manager reports whether the engine is a Swarm manager, and the cluster's
// ID if it is.
func (s *SwarmServices) Manager(ctx context.Context) (cluster string, manager bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	info, err := s.API.Info(ctx)
	if err != nil {
		return "", false, err
	}
	if !info.Swarm.ControlAvailable || info.Swarm.Cluster == nil {
		return "", false, nil
	}
	return info.Swarm.Cluster.ID, true, nil
}

// Identity is the swarm's: every manager's daemon writes the same entries
// with the same mark, so that none takes another's for stale.
func (s *SwarmServices) Identity(ctx context.Context) (bridge.Identity, error) {
	cluster, manager, err := s.Manager(ctx)
	if err != nil {
		return bridge.Identity{}, err
	}
	if !manager {
		return bridge.Identity{}, fmt.Errorf("docker: -swarm-services: this node is not a Swarm manager")
	}
	return bridge.NewIdentity("swarm@"+cluster, s.Config.Hostname, ""), nil
}

// List returns every service as a container of this source, running, its
// fingerprint the service's version and endpoint.
func (s *SwarmServices) List(ctx context.Context) ([]bridge.Container, error) {
	services, err := s.API.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker: list Swarm services: %w", err)
	}
	out := make([]bridge.Container, 0, len(services))
	for _, svc := range services {
		out = append(out, bridge.Container{ID: swarmServicePrefix + svc.ID, Name: svc.Spec.Name, Running: true, Fingerprint: serviceFingerprint(svc)})
	}
	return out, nil
}

// Inspect derives the virtual-IP entries of one service.
func (s *SwarmServices) Inspect(ctx context.Context, id string) (bridge.Container, error) {
	svc, err := s.service(ctx, id, swarmServicePrefix)
	if err != nil {
		return bridge.Container{ID: id}, err
	}
	names, err := s.networkNames(ctx, svc)
	if err != nil {
		return bridge.Container{ID: id}, err
	}
	services, warnings := serviceVIPs(svc, names, s.Config)
	return serviceContainer(id, svc, services, warnings), nil
}

// serviceContainer is the container with the given ID that stands for
// svc, holding the entries and warnings derived for it.
func serviceContainer(id string, svc swarm.Service, services []bridge.Service, warnings []error) bridge.Container {
	for i := range services {
		services[i].Container = id
	}
	return bridge.Container{ID: id, Name: svc.Spec.Name, Running: true, Services: services, Warnings: warnings}
}

// ingressList is what Engine.List adds on a manager: one container per
// service that publishes a port through the routing mesh. When the
// services cannot be listed (a manager that lost its quorum), the last
// list stands, so that a passing fault removes nothing; on a node that is
// no manager it is empty.
func (s *SwarmServices) ingressList(ctx context.Context) ([]bridge.Container, error) {
	services, err := s.API.ServiceList(ctx, swarm.ServiceListOptions{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if _, manager, merr := s.Manager(ctx); merr == nil && !manager {
			s.ingress = nil
			return nil, nil
		}
		return slices.Clone(s.ingress), fmt.Errorf("docker: list Swarm services: %w", err)
	}
	s.ingress = s.ingress[:0]
	for _, svc := range services {
		if len(ingressPorts(svc)) > 0 {
			s.ingress = append(s.ingress, bridge.Container{ID: swarmIngressPrefix + svc.ID, Name: svc.Spec.Name, Running: true, Fingerprint: serviceFingerprint(svc)})
		}
	}
	return slices.Clone(s.ingress), nil
}

// inspectIngress derives the entries of one service's ports published
// through the routing mesh, at this node's address.
func (s *SwarmServices) inspectIngress(ctx context.Context, id string, cfg Config) (bridge.Container, error) {
	svc, err := s.service(ctx, id, swarmIngressPrefix)
	if err != nil {
		return bridge.Container{ID: id}, err
	}
	services, warnings := serviceIngress(svc, cfg)
	return serviceContainer(id, svc, services, warnings), nil
}

func (s *SwarmServices) service(ctx context.Context, id, prefix string) (swarm.Service, error) {
	svc, _, err := s.API.ServiceInspectWithRaw(ctx, strings.TrimPrefix(id, prefix), swarm.ServiceInspectOptions{})
	if errdefs.IsNotFound(err) {
		return svc, fmt.Errorf("docker: Swarm service %s: %w", strings.TrimPrefix(id, prefix), bridge.ErrNotFound)
	}
	if err != nil {
		return svc, fmt.Errorf("docker: Swarm service %s: %w", strings.TrimPrefix(id, prefix), err)
	}
	return svc, nil
}

// networkNames are the names of the networks the service has virtual IPs
// on, by ID.
func (s *SwarmServices) networkNames(ctx context.Context, svc swarm.Service) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.networks == nil {
		s.networks = map[string]string{}
	}
	for _, vip := range svc.Endpoint.VirtualIPs {
		if _, ok := s.networks[vip.NetworkID]; ok {
			continue
		}
		n, err := s.API.NetworkInspect(ctx, vip.NetworkID, network.InspectOptions{})
		if errdefs.IsNotFound(err) {
			continue // removed since: its address goes with it
		}
		if err != nil {
			return nil, fmt.Errorf("docker: network %s of Swarm service %s: %w", vip.NetworkID, svc.Spec.Name, err)
		}
		if n.Ingress {
			s.networks[vip.NetworkID] = swarmIngress
		} else {
			s.networks[vip.NetworkID] = n.Name
		}
	}
	return maps.Clone(s.networks), nil
}

// serviceFingerprint changes whenever the service's spec or endpoint does.
func serviceFingerprint(svc swarm.Service) string {
	b, _ := json.Marshal(struct {
		V uint64
		E swarm.Endpoint
		L map[string]string
	}{svc.Version.Index, svc.Endpoint, svc.Spec.Labels})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// servicePort is one target port of a service.
type servicePort struct {
	nat.Port
	published int // through the routing mesh; 0 when not
}

// targetPorts are the service's target ports, from its endpoint (its spec's
// while the endpoint is not filled in yet), and the ports its
// SERVICE_<port>_* labels name, by number and protocol.
func targetPorts(svc swarm.Service, md metadata) []servicePort {
	ports := svc.Endpoint.Ports
	if len(ports) == 0 && svc.Spec.EndpointSpec != nil {
		ports = svc.Spec.EndpointSpec.Ports
	}
	all := map[nat.Port]servicePort{}
	for _, p := range ports {
		np, err := nat.NewPort(string(cmp.Or(p.Protocol, swarm.PortConfigProtocolTCP)), strconv.Itoa(int(p.TargetPort)))
		if err != nil || p.TargetPort == 0 {
			continue
		}
		sp := all[np]
		sp.Port = np
		// A published port past 65535 (a malformed answer) is none.
		if p.PublishMode != swarm.PortConfigPublishModeHost && p.PublishedPort != 0 && p.PublishedPort <= 65535 && sp.published == 0 {
			sp.published = int(p.PublishedPort)
		}
		all[np] = sp
	}
	for _, np := range md.namedPorts() {
		if _, ok := all[np]; !ok {
			all[np] = servicePort{Port: np}
		}
	}
	out := slices.Collect(maps.Values(all))
	slices.SortFunc(out, func(a, b servicePort) int {
		return cmp.Or(cmp.Compare(a.Int(), b.Int()), cmp.Compare(a.Proto(), b.Proto()))
	})
	return out
}

// ingressPorts are the ports the service publishes through the routing
// mesh.
func ingressPorts(svc swarm.Service) []servicePort {
	return slices.DeleteFunc(targetPorts(svc, readMetadata(nil, nil)), func(p servicePort) bool { return p.published == 0 })
}

// serviceVIPs are the entries of a service's virtual IPs: one per network
// it is on (SERVICE_NETWORK or -network choose one) and target port.
func serviceVIPs(svc swarm.Service, networks map[string]string, cfg Config) ([]bridge.Service, []error) {
	md := readMetadata(nil, svc.Spec.Labels)
	ports := targetPorts(svc, md)
	var vips []struct{ network, addr string }
	for _, v := range svc.Endpoint.VirtualIPs {
		name := networks[v.NetworkID]
		ip, _, err := net.ParseCIDR(v.Addr)
		if name == "" || name == swarmIngress || err != nil {
			continue
		}
		vips = append(vips, struct{ network, addr string }{name, ip.String()})
	}
	slices.SortFunc(vips, func(a, b struct{ network, addr string }) int { return strings.Compare(a.network, b.network) })
	var out []bridge.Service
	var warnings []error
	if svc.Spec.EndpointSpec != nil && svc.Spec.EndpointSpec.Mode == swarm.ResolutionModeDNSRR {
		return nil, nil // no virtual IP: its tasks are registered by their nodes
	}
	for _, p := range ports {
		m := md.forPort(p.Port.Port(), p.Proto())
		if skip(m, cfg) {
			continue
		}
		chosen := vips
		if want := cmp.Or(strings.TrimSpace(m.value(KeyNetwork)), cfg.Network); want != "" {
			i := slices.IndexFunc(vips, func(v struct{ network, addr string }) bool { return v.network == want })
			if i >= 0 {
				chosen = vips[i : i+1]
			} else {
				warnings = append(warnings, fmt.Errorf("%s: service %s has no virtual IP on that network; every network's is registered", described(cmp.Or(keyIfSet(m, KeyNetwork), "-network"), want), svc.Spec.Name))
			}
		}
		for _, v := range chosen {
			s, w := serviceEntry(svc, m, p.Port, len(ports) > 1, v.addr, p.Int())
			warnings = append(warnings, w...)
			s.ID = "swarm:" + svc.Spec.Name + ":" + v.network + ":" + p.Port.Port()
			if id := m.value(KeyID); id != "" {
				s.ID = id
				if len(chosen) > 1 {
					s.ID += ":" + v.network
				}
			}
			if proto := p.Proto(); proto != "tcp" {
				s.ID += ":" + proto
			}
			out, warnings = admit(out, warnings, s, m, cfg, svc.Spec.Name)
		}
	}
	return out, dedupe(warnings)
}

// serviceIngress are the entries of the ports a service publishes through
// the routing mesh, at this node's address.
func serviceIngress(svc swarm.Service, cfg Config) ([]bridge.Service, []error) {
	md := readMetadata(nil, svc.Spec.Labels)
	all := targetPorts(svc, md)
	addr := cmp.Or(cfg.HostIP, cfg.HostAddr)
	var out []bridge.Service
	var warnings []error
	for _, p := range all {
		m := md.forPort(p.Port.Port(), p.Proto())
		if p.published == 0 || skip(m, cfg) {
			continue
		}
		s, w := serviceEntry(svc, m, p.Port, len(all) > 1, addr, p.published)
		warnings = append(warnings, w...)
		s.ID = cfg.Hostname + ":swarm:" + svc.Spec.Name + ":" + strconv.Itoa(p.published)
		if proto := p.Proto(); proto != "tcp" {
			s.ID += ":" + proto
		}
		out, warnings = admit(out, warnings, s, m, cfg, svc.Spec.Name)
	}
	return out, dedupe(warnings)
}

// admit adds s, an entry of the Swarm service named svc, to out, unless
// refusal refuses it or out holds -max-services entries already; warnings
// say which.
func admit(out []bridge.Service, warnings []error, s bridge.Service, m portMetadata, cfg Config, svc string) ([]bridge.Service, []error) {
	if why := refusal(s, m, cfg); why != "" {
		return out, append(warnings, fmt.Errorf("service %s: port %d not registered: %s", svc, s.ExposedPort, why))
	}
	if limit := cfg.maxServices(); len(out) >= limit {
		return out, append(warnings, fmt.Errorf("service %s: entries past -max-services (%d) not registered", svc, limit))
	}
	return append(out, s), warnings
}

// skip reports whether the port's metadata leaves it out.
func skip(m portMetadata, cfg Config) bool {
	return isSet(m.value(KeyIgnore)) || cfg.Explicit && m.value(KeyName) == ""
}

// serviceEntry is one entry of a service's port, named and described by
// the service's labels as a container's port is by its metadata.
func serviceEntry(svc swarm.Service, m portMetadata, p nat.Port, group bool, addr string, port int) (bridge.Service, []error) {
	var warnings []error
	s := bridge.Service{Name: m.value(KeyName), ExposedPort: p.Int(), Address: addr, Port: port}
	if s.Name == "" {
		s.Name = svc.Spec.Name
	}
	if group && !m.fromPort(KeyName) {
		s.Name += "-" + p.Port()
	}
	s.Tags, warnings = ownTags(m)
	if p.Proto() == "udp" {
		s.Tags = joinTags(s.Tags, []string{"udp"})
	}
	var w []error
	s.Meta, w = m.attributes()
	warnings = append(warnings, w...)
	warnings = append(warnings, consulFields(&s, m)...)
	s.Checks, w = checks(m, s.Address, s.Port)
	return s, append(warnings, w...)
}
