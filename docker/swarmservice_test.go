package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"

	"github.com/registrator/registrator/bridge"
)

// A Swarm service as a manager lists it: its spec (name, labels, the
// ports it publishes, the endpoint mode) and its endpoint (the ports and
// the virtual IP on each network).
func swarmService(name string, labels map[string]string, dnsrr bool, ports []swarm.PortConfig, vips ...swarm.EndpointVirtualIP) swarm.Service {
	spec := &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP, Ports: ports}
	if dnsrr {
		spec.Mode = swarm.ResolutionModeDNSRR
	}
	return swarm.Service{ID: "svc1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, EndpointSpec: spec},
		Endpoint: swarm.Endpoint{Spec: *spec, Ports: ports, VirtualIPs: vips}}
}

var swarmNetworks = map[string]string{"n-ingress": swarmIngress, "n-front": "front", "n-back": "back"}

func ingress(published, target uint32) swarm.PortConfig {
	return swarm.PortConfig{Protocol: swarm.PortConfigProtocolTCP, TargetPort: target, PublishedPort: published, PublishMode: swarm.PortConfigPublishModeIngress}
}

// What a Swarm service registers: its virtual IP per network (never the
// routing mesh's) and target port, IDs naming no host; its ports
// published through the routing mesh at this node's address, IDs naming
// the host; SERVICE_* from its labels; nothing for a VIP in dnsrr mode.
func TestSwarmServiceEntries(t *testing.T) {
	front := swarm.EndpointVirtualIP{NetworkID: "n-front", Addr: "10.0.1.5/24"}
	back := swarm.EndpointVirtualIP{NetworkID: "n-back", Addr: "10.0.2.7/24"}
	mesh := swarm.EndpointVirtualIP{NetworkID: "n-ingress", Addr: "10.255.0.4/16"}
	cfg := Config{Hostname: "node-1", HostAddr: "192.0.2.10"}
	for _, tc := range []struct {
		name        string
		svc         swarm.Service
		cfg         Config
		vips, nodes []string
		warn        []string
	}{
		{"published through the mesh, on one overlay", swarmService("web", nil, false, []swarm.PortConfig{ingress(8080, 80)}, mesh, front), cfg,
			[]string{"swarm:web:front:80 web 10.0.1.5:80 []"},
			[]string{"node-1:swarm:web:8080 web 192.0.2.10:8080 []"}, nil},
		{"-ip is the node's address", swarmService("web", nil, false, []swarm.PortConfig{ingress(8080, 80)}, mesh, front), Config{Hostname: "node-1", HostAddr: "192.0.2.10", HostIP: "198.51.100.1"},
			[]string{"swarm:web:front:80 web 10.0.1.5:80 []"},
			[]string{"node-1:swarm:web:8080 web 198.51.100.1:8080 []"}, nil},
		{"two networks, two ports, named and tagged by the service's labels", swarmService("api", map[string]string{"SERVICE_TAGS": "v2", "SERVICE_9000_NAME": "api-admin"}, false,
			[]swarm.PortConfig{ingress(8080, 80), {Protocol: swarm.PortConfigProtocolTCP, TargetPort: 9000}}, mesh, front, back), cfg,
			[]string{"swarm:api:back:80 api-80 10.0.2.7:80 [v2]", "swarm:api:back:9000 api-admin 10.0.2.7:9000 [v2]", "swarm:api:front:80 api-80 10.0.1.5:80 [v2]", "swarm:api:front:9000 api-admin 10.0.1.5:9000 [v2]"},
			[]string{"node-1:swarm:api:8080 api-80 192.0.2.10:8080 [v2]"}, nil},
		{"SERVICE_NETWORK chooses one network", swarmService("api", map[string]string{"SERVICE_NETWORK": "back", "SERVICE_80_NAME": "web"}, false, nil, front, back), cfg,
			[]string{"swarm:api:back:80 web 10.0.2.7:80 []"}, nil, nil},
		{"a port named only by a label, not published", swarmService("db", map[string]string{"SERVICE_5432_NAME": "pg", "SERVICE_NETWORK": "back"}, false, nil, front, back), cfg,
			[]string{"swarm:db:back:5432 pg 10.0.2.7:5432 []"}, nil, nil},
		{"-network names a network the service is not on: a warning, every network", swarmService("db", map[string]string{"SERVICE_5432_NAME": "pg"}, false, nil, front), Config{Hostname: "node-1", Network: "nope"},
			[]string{"swarm:db:front:5432 pg 10.0.1.5:5432 []"}, nil, []string{"-network"}},
		{"SERVICE_IGNORE", swarmService("web", map[string]string{"SERVICE_IGNORE": "1"}, false, []swarm.PortConfig{ingress(8080, 80)}, mesh, front), cfg, nil, nil, nil},
		{"-explicit without a name", swarmService("web", nil, false, []swarm.PortConfig{ingress(8080, 80)}, mesh, front), Config{Hostname: "node-1", Explicit: true}, nil, nil, nil},
		{"UDP", swarmService("dns", nil, false, []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolUDP, TargetPort: 53, PublishedPort: 5353, PublishMode: swarm.PortConfigPublishModeIngress}}, mesh, front), cfg,
			[]string{"swarm:dns:front:53:udp dns 10.0.1.5:53 [udp]"},
			[]string{"node-1:swarm:dns:5353:udp dns 192.0.2.10:5353 [udp]"}, nil},
		{"mode=host publishing: the tasks' bindings, not the node's entry", swarmService("web", nil, false, []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP, TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost}}, front), cfg,
			[]string{"swarm:web:front:80 web 10.0.1.5:80 []"}, nil, nil},
		{"dnsrr: no virtual IP, no entries (the tasks are registered by their nodes)", swarmService("web", nil, true, []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP, TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost}}), cfg,
			nil, nil, nil},
		{"SERVICE_ID on two networks: suffixed by each", swarmService("web", map[string]string{"SERVICE_80_ID": "web-1"}, false, []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP, TargetPort: 80}}, front, back), cfg,
			[]string{"web-1:back web 10.0.2.7:80 []", "web-1:front web 10.0.1.5:80 []"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vips, w1 := serviceVIPs(tc.svc, swarmNetworks, tc.cfg)
			nodes, w2 := serviceIngress(tc.svc, tc.cfg)
			checkWarnings(t, append(w1, w2...), tc.warn)
			if got := render(vips); !slices.Equal(got, tc.vips) {
				t.Errorf("virtual IPs:\n got %q\nwant %q", got, tc.vips)
			}
			if got := render(nodes); !slices.Equal(got, tc.nodes) {
				t.Errorf("at the node:\n got %q\nwant %q", got, tc.nodes)
			}
		})
	}
}

// render is each entry as "ID name address:port [tags]", sorted.
func render(services []bridge.Service) []string {
	var out []string
	for _, s := range services {
		out = append(out, fmt.Sprintf("%s %s %s:%d %v", s.ID, s.Name, s.Address, s.Port, s.Tags))
	}
	slices.Sort(out)
	return out
}

// The ports that per-port keys name, for a service that publishes none.
func TestNamedPorts(t *testing.T) {
	md := readMetadata([]string{"SERVICE_80_NAME=a", "SERVICE_53_udp_NAME=d", "SERVICE_80_TAGS=x", "SERVICE_99999_NAME=big", "SERVICE_NAME=all", "SERVICE_1-5_IGNORE=1"}, nil)
	if got := fmt.Sprint(md.namedPorts()); got != "[53/udp 80/tcp]" {
		t.Errorf("named ports %s, want [53/udp 80/tcp]", got)
	}
}

// swarmAPI is a manager's engine (or, with manager false, a worker's)
// whose service list fails while err is set.
type swarmAPI struct {
	client.APIClient
	manager  bool
	err      error
	services []swarm.Service
}

func (a *swarmAPI) Info(context.Context) (system.Info, error) {
	info := system.Info{Swarm: swarm.Info{ControlAvailable: a.manager}}
	if a.manager {
		info.Swarm.Cluster = &swarm.ClusterInfo{ID: "cluster-1"}
	}
	return info, nil
}

func (a *swarmAPI) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	return a.services, a.err
}

// The services' routing-mesh ports are this host's entries: a manager
// lists one container per service that publishes one; when the list
// fails (a manager that lost its quorum), the last list stands, so that a
// passing fault removes nothing; a node no longer a manager lists none.
// The virtual IPs' source is the swarm's, and answers only on a manager.
func TestSwarmServicesListing(t *testing.T) {
	published := swarmService("web", nil, false, []swarm.PortConfig{ingress(8080, 80)})
	internal := swarmService("db", nil, false, nil)
	internal.ID = "svc2"
	api := &swarmAPI{manager: true, services: []swarm.Service{published, internal}}
	s := &SwarmServices{API: api, Config: Config{Hostname: "node-1"}}
	ctx := context.Background()
	ids := func(cs []bridge.Container) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}

	got, err := s.ingressList(ctx)
	if err != nil || !slices.Equal(ids(got), []string{"swarm-ingress:svc1"}) {
		t.Fatalf("ingress list %v (%v), want the one service that publishes", ids(got), err)
	}
	all, err := s.List(ctx)
	if err != nil || !slices.Equal(ids(all), []string{"swarm-service:svc1", "swarm-service:svc2"}) {
		t.Fatalf("services %v (%v), want both", ids(all), err)
	}
	if id, err := s.Identity(ctx); err != nil || id.String() != "swarm@cluster-1" {
		t.Errorf("identity %v (%v), want swarm@cluster-1", id, err)
	}

	api.err = errors.New("rpc error: The swarm does not have a leader")
	got, err = s.ingressList(ctx)
	if err == nil || !slices.Equal(ids(got), []string{"swarm-ingress:svc1"}) {
		t.Errorf("ingress list while the manager cannot list: %v (%v), want the last list and the error", ids(got), err)
	}
	if _, err := s.List(ctx); err == nil {
		t.Error("services listed while the manager cannot list: want the error, never an empty list")
	}

	api.manager = false
	got, err = s.ingressList(ctx)
	if err != nil || len(got) != 0 {
		t.Errorf("ingress list on a node no longer a manager: %v (%v), want none", ids(got), err)
	}
	if _, err := s.Identity(ctx); err == nil {
		t.Error("identity on a worker: want an error")
	}
}
