package docker

import (
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/registrator/registrator/bridge"
)

const (
	// containerID is the full ID of every container built by run.inspect.
	containerID = "4f8d5e6c7b2a19384756a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6"
	// otherImageID is the image ID of a container whose image was given by name.
	otherImageID = "sha256:9999999999999999999999999999999999999999999999999999999999999999"
	// hostAddr is what the host name resolves to (Config.HostAddr) in these tests.
	hostAddr = "10.0.0.5"
	// digest is an image digest.
	digest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
)

// run describes a container the way `docker run` and the image would, and
// builds what the engine answers to an inspect of it.
type run struct {
	name    string            // --name, without the leading slash
	image   string            // the image as given to docker run
	imageID string            // the image's ID; otherImageID when empty
	env     []string          // -e, and ENV of the image
	labels  map[string]string // -l, and LABEL of the image
	expose  []string          // EXPOSE of the image: "80", "53/udp"
	publish []string          // -p: "8000:80", "10.1.2.3:8000:80", "53:53/udp"
	net     string            // --net: "" for the default bridge, "host", or a network name
	ips     map[string]string // network name → the container's address on it
	ips6    map[string]string // network name → the container's IPv6 address on it
	// ports, when set, is the runtime port map as the engine reports it,
	// for bindings -p cannot express.
	ports nat.PortMap
	// health is the Docker health of a container with a HEALTHCHECK.
	health *container.Health
}

// inspect builds the inspect answer. A port published on every interface
// is reported the way current engines do: once for 0.0.0.0, once for ::.
func (r run) inspect(t *testing.T) container.InspectResponse {
	t.Helper()
	exposed := nat.PortSet{}
	for _, e := range r.expose {
		proto, num := nat.SplitProtoPort(e)
		p, err := nat.NewPort(proto, num)
		if err != nil {
			t.Fatalf("EXPOSE %s: %v", e, err)
		}
		exposed[p] = struct{}{}
	}
	published, bindings, err := nat.ParsePortSpecs(r.publish)
	if err != nil {
		t.Fatalf("-p %v: %v", r.publish, err)
	}
	for p := range published {
		exposed[p] = struct{}{}
	}

	mode := r.net
	if mode == "" {
		mode = "bridge"
	}
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}}
	switch {
	case r.ports != nil:
		ns.Ports = r.ports
	case mode == "host":
		ns.Ports = nat.PortMap{} // --net=host: the engine reports no port map
	default:
		ns.Ports = nat.PortMap{}
		for p := range exposed {
			ns.Ports[p] = nil // exposed, not published
		}
		for p, bs := range bindings {
			var out []nat.PortBinding
			for _, b := range bs {
				if b.HostIP == "" {
					out = append(out, nat.PortBinding{HostIP: "0.0.0.0", HostPort: b.HostPort}, nat.PortBinding{HostIP: "::", HostPort: b.HostPort})
				} else {
					out = append(out, b)
				}
			}
			ns.Ports[p] = out
		}
	}
	if mode == "host" {
		ns.Networks["host"] = &network.EndpointSettings{}
	}
	for n, ip := range r.ips {
		ns.Networks[n] = &network.EndpointSettings{IPAddress: ip}
	}
	for n, ip := range r.ips6 {
		if ns.Networks[n] == nil {
			ns.Networks[n] = &network.EndpointSettings{}
		}
		ns.Networks[n].GlobalIPv6Address = ip
	}

	imageID := r.imageID
	if imageID == "" {
		imageID = otherImageID
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:         containerID,
			Name:       "/" + r.name,
			Image:      imageID,
			State:      &container.State{Status: container.StateRunning, Running: true, Health: r.health},
			HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)},
		},
		Config: &container.Config{
			Image:        r.image,
			Env:          r.env,
			Labels:       r.labels,
			ExposedPorts: exposed,
		},
		NetworkSettings: ns,
	}
}

// nginx is `docker run --name nginx.0 -p 4443:443 -p 8000:80 nginx`.
func nginx(env ...string) run {
	return run{name: "nginx.0", image: "nginx", expose: []string{"80"}, publish: []string{"4443:443", "8000:80"}, env: env}
}

// web is a container with one port, published on every interface.
func web(env ...string) run {
	return run{name: "web.1", image: "web", expose: []string{"80"}, publish: []string{"8000:80"}, env: env}
}

// swarmTaskRun is a task of the Swarm service web, on the overlay "overlay" (after ingress by name)
// and on the routing mesh's ingress, exposing 80; ports is its runtime
// port map (empty: nothing published by the container itself).
func swarmTaskRun(env []string, ports nat.PortMap) run {
	if ports == nil {
		ports = nat.PortMap{}
	}
	return run{name: "web.1.t1", image: "svc", expose: []string{"80"}, net: "default", env: env, ports: ports,
		labels: map[string]string{LabelSwarmService: "web", LabelSwarmTask: "t1", LabelSwarmNode: "n1"},
		ips:    map[string]string{"overlay": "10.0.1.3", "ingress": "10.0.0.4"}}
}

// web80 is the service web yields without any metadata.
func web80() bridge.Service {
	return bridge.Service{ID: "host:web.1:80", Name: "web", Address: hostAddr, Port: 8000, ExposedPort: 80}
}

// with returns s changed by f, to write expected services as differences.
func with(s bridge.Service, f func(*bridge.Service)) bridge.Service {
	f(&s)
	return s
}

// httpCheck is an http or https check of url with the default interval.
func httpCheck(url string) bridge.Check {
	return bridge.Check{HTTP: url, Interval: DefaultCheckInterval}
}

func TestServices(t *testing.T) {
	const redisIP = "192.168.1.102"
	hex64 := strings.Repeat("0123456789abcdef", 4)

	for _, tc := range []struct {
		name   string
		run    run
		cfg    func(*Config) // changes to {Hostname: "host", HostAddr: hostAddr}
		tags   string        // -tags
		want   []bridge.Service
		warn   []string // each warning must name this key, in this order
		reason string   // why a failure matters, printed with it
	}{
		// Registrator's documented examples.
		{
			name: "contract example: redis.0 published on 10000 with -ip",
			run:  run{name: "redis.0", image: "progrium/redis", expose: []string{"6379"}, publish: []string{"10000:6379"}},
			cfg:  func(c *Config) { c.HostIP = redisIP },
			want: []bridge.Service{{ID: "host:redis.0:6379", Name: "redis", Port: 10000, ExposedPort: 6379, Address: redisIP}},
		},
		{
			name: "contract example: nginx with two published ports gets nginx-80 and nginx-443",
			run:  nginx(),
			want: []bridge.Service{
				{ID: "host:nginx.0:80", Name: "nginx-80", Address: hostAddr, Port: 8000, ExposedPort: 80},
				{ID: "host:nginx.0:443", Name: "nginx-443", Address: hostAddr, Port: 4443, ExposedPort: 443},
			},
		},
		{
			name: "contract example: per-port names, per-port ID, per-port attribute and generic tags",
			run:  nginx("SERVICE_443_NAME=https", "SERVICE_443_ID=https.12345", "SERVICE_443_SNI=enabled", "SERVICE_80_NAME=http", "SERVICE_TAGS=www"),
			want: []bridge.Service{
				{ID: "host:nginx.0:80", Name: "http", Address: hostAddr, Port: 8000, ExposedPort: 80, Tags: []string{"www"}},
				{ID: "https.12345", Name: "https", Address: hostAddr, Port: 4443, ExposedPort: 443, Tags: []string{"www"}, Meta: map[string]string{"sni": "enabled"}},
			},
		},

		// Port ranges and per-protocol keys; precedence: port and protocol,
		// port, range, container.
		{
			name: "a range key applies to every port in the range",
			run:  run{name: "rtp.1", image: "rtp", publish: []string{"10000-10003:10000-10003/udp", "5060:5060"}, env: []string{"SERVICE_10000-10002_IGNORE=true"}},
			want: []bridge.Service{
				{ID: "host:rtp.1:5060", Name: "rtp-5060", Address: hostAddr, Port: 5060, ExposedPort: 5060},
				{ID: "host:rtp.1:10003:udp", Name: "rtp-10003", Address: hostAddr, Port: 10003, ExposedPort: 10003, Tags: []string{"udp"}},
			},
		},
		{
			name: "per-protocol keys name 53/udp and 53/tcp apart",
			run:  run{name: "dns.1", image: "dns", publish: []string{"5353:53/udp", "5354:53"}, env: []string{"SERVICE_53_udp_NAME=dns", "SERVICE_53_TCP_NAME=dns-tcp"}},
			want: []bridge.Service{
				{ID: "host:dns.1:53", Name: "dns-tcp", Address: hostAddr, Port: 5354, ExposedPort: 53},
				{ID: "host:dns.1:53:udp", Name: "dns", Address: hostAddr, Port: 5353, ExposedPort: 53, Tags: []string{"udp"}},
			},
		},
		{
			name: "precedence: port and protocol, port, range, container",
			run: run{name: "p.1", image: "p", publish: []string{"8080:80", "8081:80/udp", "8082:81", "8091:91"}, env: []string{
				"SERVICE_NAME=c", "SERVICE_80-90_NAME=r", "SERVICE_80_NAME=port", "SERVICE_80_tcp_NAME=pp",
				"SERVICE_TEAM=all", "SERVICE_80-90_TEAM=range", "SERVICE_80_udp_TEAM=udp"}},
			want: []bridge.Service{
				{ID: "host:p.1:80", Name: "pp", Address: hostAddr, Port: 8080, ExposedPort: 80, Meta: map[string]string{"team": "range"}},
				{ID: "host:p.1:80:udp", Name: "port", Address: hostAddr, Port: 8081, ExposedPort: 80, Tags: []string{"udp"}, Meta: map[string]string{"team": "udp"}},
				{ID: "host:p.1:81", Name: "r", Address: hostAddr, Port: 8082, ExposedPort: 81, Meta: map[string]string{"team": "range"}},
				{ID: "host:p.1:91", Name: "c-91", Address: hostAddr, Port: 8091, ExposedPort: 91, Meta: map[string]string{"team": "all"}},
			},
		},
		{
			name: "overlapping ranges: the narrowest wins",
			run:  run{name: "o.1", image: "o", publish: []string{"8081:81", "8085:85"}, env: []string{"SERVICE_80-90_NAME=wide", "SERVICE_80-82_NAME=narrow"}},
			want: []bridge.Service{
				{ID: "host:o.1:81", Name: "narrow", Address: hostAddr, Port: 8081, ExposedPort: 81},
				{ID: "host:o.1:85", Name: "wide", Address: hostAddr, Port: 8085, ExposedPort: 85},
			},
		},
		{
			name: "range and protocol keys that match no port are reported, naming the key",
			run:  web("SERVICE_80_udp_NAME=z", "SERVICE_9000-9010_NAME=x", "SERVICE_90-80_NAME=y"),
			want: []bridge.Service{web80()},
			warn: []string{"SERVICE_80_udp_NAME", "SERVICE_90-80_NAME", "SERVICE_9000-9010_NAME"},
		},

		// Consul's registration fields.
		{
			name: "tag override, weight, SRV priority and TTL, a sidecar; weight, priority and ttl stay attributes",
			run:  web("SERVICE_ENABLE_TAG_OVERRIDE=true", "SERVICE_WEIGHT=7", "SERVICE_PRIORITY=3", "SERVICE_TTL=42", "SERVICE_CONNECT_SIDECAR=21000"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.TagOverride, s.Weight, s.Priority, s.RecordTTL = true, 7, 3, 42
				s.Sidecar = &bridge.Sidecar{Port: 21000}
				s.Meta = map[string]string{"weight": "7", "priority": "3", "ttl": "42"}
			})},
		},
		{
			name: "a sidecar on a port Consul chooses",
			run:  web("SERVICE_CONNECT_SIDECAR=true"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Sidecar = &bridge.Sidecar{} })},
		},
		{
			name: "bad weight, priority, ttl and sidecar port are left out with a warning",
			run:  web("SERVICE_WEIGHT=0", "SERVICE_PRIORITY=-1", "SERVICE_TTL=soon", "SERVICE_CONNECT_SIDECAR=70000"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Sidecar = &bridge.Sidecar{}
				s.Meta = map[string]string{"weight": "0", "priority": "-1", "ttl": "soon"}
			})},
			warn: []string{"SERVICE_WEIGHT", "SERVICE_PRIORITY", "SERVICE_TTL", "SERVICE_CONNECT_SIDECAR"},
		},
		{
			name: "check headers and the TLS server name of HTTPS and gRPC-over-TLS checks",
			run: web(`SERVICE_CHECK_HEADER={"Authorization": ["Basic eDp5"], "X-Env": "prod"}`, "SERVICE_CHECK_HTTPS=/health",
				"SERVICE_CHECK_HTTP=/plain", "SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_GRPC_USE_TLS=true", "SERVICE_CHECK_TLS_SERVER_NAME=web.internal"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				h := map[string][]string{"Authorization": {"Basic eDp5"}, "X-Env": {"prod"}}
				s.Checks = []bridge.Check{
					{HTTP: "http://10.0.0.5:8000/plain", Header: h, Interval: DefaultCheckInterval},
					{HTTP: "https://10.0.0.5:8000/health", Header: h, TLSServerName: "web.internal", Interval: DefaultCheckInterval},
					{GRPC: "10.0.0.5:8000", GRPCUseTLS: true, TLSServerName: "web.internal", Interval: DefaultCheckInterval},
				}
			})},
		},
		{
			name: "a check header that is not a JSON object of strings is left out with a warning",
			run:  web(`SERVICE_CHECK_HEADER=Authorization: Basic x`, "SERVICE_CHECK_HTTP=/h"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{HTTP: "http://10.0.0.5:8000/h", Interval: DefaultCheckInterval}}
			})},
			warn: []string{"SERVICE_CHECK_HEADER"},
		},

		// Swarm tasks.
		{
			name: "a Swarm task: the service's name, the task's overlay address (never ingress), the exposed port",
			run:  swarmTaskRun(nil, nil),
			want: []bridge.Service{{ID: "host:web.1.t1:80", Name: "web", Address: "10.0.1.3", Port: 80, ExposedPort: 80}},
		},
		{
			name: "a Swarm task: SERVICE_NAME beats the service's name",
			run:  swarmTaskRun([]string{"SERVICE_NAME=front"}, nil),
			want: []bridge.Service{{ID: "host:web.1.t1:80", Name: "front", Address: "10.0.1.3", Port: 80, ExposedPort: 80}},
		},
		{
			name: "a Swarm task: SERVICE_NETWORK=ingress is refused, with a warning",
			run:  swarmTaskRun([]string{"SERVICE_NETWORK=ingress"}, nil),
			want: []bridge.Service{{ID: "host:web.1.t1:80", Name: "web", Address: "10.0.1.3", Port: 80, ExposedPort: 80}},
			warn: []string{"SERVICE_NETWORK"},
		},
		{
			name: "a Swarm task on two overlays: SERVICE_NETWORK chooses, else the first by name",
			run: func() run {
				r := swarmTaskRun([]string{"SERVICE_NETWORK=zz-back"}, nil)
				r.ips["zz-back"] = "10.0.2.9"
				return r
			}(),
			want: []bridge.Service{{ID: "host:web.1.t1:80", Name: "web", Address: "10.0.2.9", Port: 80, ExposedPort: 80}},
		},
		{
			name: "a Swarm task: a port published with mode=host is an ordinary binding",
			run:  swarmTaskRun(nil, nat.PortMap{"80/tcp": {{HostIP: "0.0.0.0", HostPort: "18081"}}}),
			want: []bridge.Service{{ID: "host:web.1.t1:80", Name: "web", Address: hostAddr, Port: 18081, ExposedPort: 80}},
		},
		{
			name: "a Swarm task: SERVICE_IGNORE",
			run:  swarmTaskRun([]string{"SERVICE_IGNORE=1"}, nil),
		},
		{
			name: "a Swarm task: -explicit without SERVICE_NAME",
			run:  swarmTaskRun(nil, nil),
			cfg:  func(c *Config) { c.Explicit = true },
		},

		// Where metadata comes from.
		{
			name: "label beats env var for the same key",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, env: []string{"SERVICE_NAME=from-env"}, labels: map[string]string{"SERVICE_NAME": "from-label"}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Name = "from-label" })},
		},
		{
			name: "label beats env var for the same per-port key",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, env: []string{"SERVICE_80_NAME=from-env"}, labels: map[string]string{"SERVICE_80_NAME": "from-label"}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Name = "from-label" })},
		},
		{
			name: "rest of the key is lower-cased",
			run:  web("SERVICE_NaMe=api", "SERVICE_REGION=eu", "SERVICE_80_Check_TCP=true"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Name = "api"
				s.Meta = map[string]string{"region": "eu"}
				s.Checks = []bridge.Check{{TCP: hostAddr + ":8000", Interval: "10s"}}
			})},
		},
		{
			name: "keys without the SERVICE_ prefix are not metadata",
			run:  web("NAME=api", "service_name=api", "SERVICEX_NAME=api"),
			want: []bridge.Service{web80()},
		},
		{
			name: "per-port key beats generic key",
			run:  web("SERVICE_NAME=generic", "SERVICE_80_NAME=specific", "SERVICE_TAGS=a", "SERVICE_80_TAGS=b"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Name, s.Tags = "specific", []string{"b"} })},
		},
		{
			name: "per-port env var beats generic label",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, env: []string{"SERVICE_80_NAME=port"}, labels: map[string]string{"SERVICE_NAME": "generic"}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Name = "port" })},
		},
		{
			name: "per-port key of another port does not apply",
			run:  web("SERVICE_443_NAME=https", "SERVICE_443_REGION=eu"),
			want: []bridge.Service{web80()},
			warn: []string{"SERVICE_443_NAME", "SERVICE_443_REGION"},
		},
		{
			name: "a port part that starts with a digit but is no number makes an attribute, with a warning",
			run:  web("SERVICE_80a_NAME=x"),
			want: []bridge.Service{func() bridge.Service { s := web80(); s.Meta = map[string]string{"80a_name": "x"}; return s }()},
			warn: []string{"SERVICE_80a_NAME"},
		},
		{
			name: "a name that is no DNS label is registered as given, with one warning for all ports",
			run:  run{name: "multi", image: "web", publish: []string{"80:80", "443:443"}, env: []string{"SERVICE_NAME=café_web"}},
			want: []bridge.Service{
				{ID: "host:multi:80", Name: "café_web-80", Address: hostAddr, Port: 80, ExposedPort: 80},
				{ID: "host:multi:443", Name: "café_web-443", Address: hostAddr, Port: 443, ExposedPort: 443},
			},
			warn: []string{"SERVICE_NAME"},
		},
		{
			name: "per-port key applies to the tcp and the udp port of that number",
			run:  run{name: "dns.0", image: "coredns/coredns", publish: []string{"53:53/tcp", "53:53/udp"}, env: []string{"SERVICE_53_NAME=dns"}},
			want: []bridge.Service{
				{ID: "host:dns.0:53", Name: "dns", Address: hostAddr, Port: 53, ExposedPort: 53},
				{ID: "host:dns.0:53:udp", Name: "dns", Address: hostAddr, Port: 53, ExposedPort: 53, Tags: []string{"udp"}},
			},
		},

		// Names.
		{
			name: "generic name gets -<exposed port> with several ports, per-port name does not",
			run:  nginx("SERVICE_NAME=web", "SERVICE_443_NAME=secure"),
			want: []bridge.Service{
				{ID: "host:nginx.0:80", Name: "web-80", Address: hostAddr, Port: 8000, ExposedPort: 80},
				{ID: "host:nginx.0:443", Name: "secure", Address: hostAddr, Port: 4443, ExposedPort: 443},
			},
		},
		{
			name: "one registrable port among several exposed gets no suffix",
			run:  run{name: "web.1", image: "web", expose: []string{"80", "443", "9000"}, publish: []string{"8000:80"}},
			want: []bridge.Service{web80()},
		},
		{
			name: "default name drops registry with port, path and tag",
			run:  run{name: "app.1", image: "reg:5000/team/app:1.2", publish: []string{"8000:80"}},
			want: []bridge.Service{{ID: "host:app.1:80", Name: "app", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},
		{
			name: "default name drops a digest",
			run:  run{name: "app.1", image: "app@" + digest, publish: []string{"8000:80"}},
			want: []bridge.Service{{ID: "host:app.1:80", Name: "app", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},
		{
			name: "default name drops registry, path, tag and digest together",
			run:  run{name: "app.1", image: "reg.example.com:5000/team/sub/app:1.2@" + digest, publish: []string{"8000:80"}},
			want: []bridge.Service{{ID: "host:app.1:80", Name: "app", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},
		{
			name: "image referenced by ID is named from the compose service label",
			run:  run{name: "proj-api-1", image: "sha256:" + hex64, imageID: "sha256:" + hex64, publish: []string{"8000:80"}, labels: map[string]string{LabelComposeService: "api"}},
			want: []bridge.Service{{ID: "host:proj-api-1:80", Name: "api", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},
		{
			name: "image referenced by short ID without compose label is named after the container",
			run:  run{name: "worker-1", image: hex64[:12], imageID: "sha256:" + hex64, publish: []string{"8000:80"}},
			want: []bridge.Service{{ID: "host:worker-1:80", Name: "worker-1", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},
		{
			name: "image referenced by full ID without sha256 prefix is named after the container",
			run:  run{name: "worker-1", image: hex64, imageID: "sha256:" + hex64, publish: []string{"8000:80"}},
			want: []bridge.Service{{ID: "host:worker-1:80", Name: "worker-1", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},
		{
			name: "image named like hex that is not the container's image ID keeps its name",
			run:  run{name: "c.1", image: "deadbeefcafe", publish: []string{"8000:80"}},
			want: []bridge.Service{{ID: "host:c.1:80", Name: "deadbeefcafe", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},

		// IDs.
		{
			name: "UDP port gets :udp in its ID and the udp tag",
			run:  run{name: "dns.0", image: "dns", publish: []string{"5353:53/udp"}},
			want: []bridge.Service{{ID: "host:dns.0:53:udp", Name: "dns", Address: hostAddr, Port: 5353, ExposedPort: 53, Tags: []string{"udp"}}},
		},
		{
			name: "SERVICE_ID replaces the whole ID",
			run:  web("SERVICE_ID=web-primary"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.ID = "web-primary" })},
		},
		{
			name: "SERVICE_ID replaces the whole ID of a UDP port, udp tag kept",
			run:  run{name: "dns.0", image: "dns", publish: []string{"5353:53/udp"}, env: []string{"SERVICE_ID=dns-primary"}},
			want: []bridge.Service{{ID: "dns-primary", Name: "dns", Address: hostAddr, Port: 5353, ExposedPort: 53, Tags: []string{"udp"}}},
		},
		{
			name: "ID starts with the configured hostname",
			run:  web(),
			cfg:  func(c *Config) { c.Hostname = "node-7.example.com" },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.ID = "node-7.example.com:web.1:80" })},
		},

		// Tags.
		{
			name: "escaped comma stays inside a tag",
			run:  web(`SERVICE_TAGS=a\,b,c`),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"a,b", "c"} })},
		},
		{
			name: "tag order is kept",
			run:  web("SERVICE_TAGS=zeta,alpha,mid"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"zeta", "alpha", "mid"} })},
		},
		{
			name: "tags are trimmed and empty ones dropped",
			run:  web("SERVICE_TAGS= a , ,b,,"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"a", "b"} })},
		},
		{
			name: "-tags are appended after SERVICE_TAGS",
			run:  web("SERVICE_TAGS=www"),
			tags: "ops,blue",
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"www", "ops", "blue"} })},
		},
		{
			name: "-tags alone",
			run:  web(),
			tags: "ops",
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"ops"} })},
		},
		{
			name: "tag repeated by -tags is dropped, first kept",
			run:  web("SERVICE_TAGS=www,api"),
			tags: "api,ops,www",
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"www", "api", "ops"} })},
		},
		{
			name:   "tag repeated within SERVICE_TAGS is dropped, first kept",
			run:    web("SERVICE_TAGS=www,api,www"),
			want:   []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"www", "api"} })},
			reason: "README \"Deliberate deviations\": tags are trimmed, empty ones dropped and repeats dropped (first kept); service.go joinTags only drops repeats of the -tags list",
		},
		{
			name: "udp tag comes last and is not repeated",
			run:  run{name: "dns.0", image: "dns", publish: []string{"5353:53/udp"}, env: []string{"SERVICE_TAGS=udp,dns"}},
			tags: "ops",
			want: []bridge.Service{{ID: "host:dns.0:53:udp", Name: "dns", Address: hostAddr, Port: 5353, ExposedPort: 53, Tags: []string{"udp", "dns", "ops"}}},
		},
		{
			name: "udp tag after SERVICE_TAGS and -tags",
			run:  run{name: "dns.0", image: "dns", publish: []string{"5353:53/udp"}, env: []string{"SERVICE_TAGS=dns"}},
			tags: "ops",
			want: []bridge.Service{{ID: "host:dns.0:53:udp", Name: "dns", Address: hostAddr, Port: 5353, ExposedPort: 53, Tags: []string{"dns", "ops", "udp"}}},
		},
		{
			name: "-tags template is rendered over the container and split on commas",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, labels: map[string]string{"tier": "front"}},
			tags: `{{mIndex "tier" .Config.Labels}},{{toUpper "static"}}`,
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"front", "STATIC"} })},
		},
		{
			name: "-tags template error is a warning and the service is still produced",
			run:  web("SERVICE_TAGS=www"),
			tags: `{{matchFirstElement "(" .Config.Env}}`,
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"www"} })},
			warn: []string{"-tags"},
		},

		// Ignoring.
		{
			name: "SERVICE_IGNORE=true ignores the container",
			run:  nginx("SERVICE_IGNORE=true"),
		},
		{
			name: "SERVICE_IGNORE=1 ignores the container",
			run:  nginx("SERVICE_IGNORE=1"),
		},
		{
			name: "SERVICE_IGNORE as a label ignores the container",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, labels: map[string]string{"SERVICE_IGNORE": "true"}},
		},
		{
			name: "SERVICE_IGNORE=false does not ignore",
			run:  web("SERVICE_IGNORE=false"),
			want: []bridge.Service{web80()},
		},
		{
			name: "SERVICE_IGNORE=0 does not ignore",
			run:  web("SERVICE_IGNORE=0"),
			want: []bridge.Service{web80()},
		},
		{
			name: "SERVICE_<port>_IGNORE ignores that port only",
			run:  nginx("SERVICE_443_IGNORE=true", "SERVICE_80_NAME=http"),
			want: []bridge.Service{{ID: "host:nginx.0:80", Name: "http", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},
		{
			name: "SERVICE_<port>_IGNORE=false beats SERVICE_IGNORE=true",
			run:  nginx("SERVICE_IGNORE=true", "SERVICE_80_IGNORE=false", "SERVICE_80_NAME=http"),
			want: []bridge.Service{{ID: "host:nginx.0:80", Name: "http", Address: hostAddr, Port: 8000, ExposedPort: 80}},
		},

		// -explicit.
		{
			name: "-explicit skips a container without a name",
			run:  nginx("SERVICE_TAGS=www"),
			cfg:  func(c *Config) { c.Explicit = true },
		},
		{
			name: "-explicit keeps only the port that has a per-port name",
			run:  nginx("SERVICE_443_NAME=https"),
			cfg:  func(c *Config) { c.Explicit = true },
			want: []bridge.Service{{ID: "host:nginx.0:443", Name: "https", Address: hostAddr, Port: 4443, ExposedPort: 443}},
		},
		{
			name: "-explicit keeps every port of a container with a generic name from a label",
			run:  run{name: "nginx.0", image: "nginx", publish: []string{"4443:443", "8000:80"}, labels: map[string]string{"SERVICE_NAME": "web"}},
			cfg:  func(c *Config) { c.Explicit = true },
			want: []bridge.Service{
				{ID: "host:nginx.0:80", Name: "web-80", Address: hostAddr, Port: 8000, ExposedPort: 80},
				{ID: "host:nginx.0:443", Name: "web-443", Address: hostAddr, Port: 4443, ExposedPort: 443},
			},
		},

		// Which ports count.
		{
			name: "container without ports has no services",
			run:  run{name: "batch.1", image: "batch", env: []string{"SERVICE_NAME=batch"}},
		},
		{
			name: "unpublished exposed ports are skipped without -internal",
			run:  run{name: "db.1", image: "postgres", expose: []string{"5432"}},
		},
		{
			name: "-internal registers the container address and the exposed port",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, ips: map[string]string{"bridge": "172.17.0.5"}},
			cfg:  func(c *Config) { c.Internal = true },
			want: []bridge.Service{{ID: "host:web.1:80", Name: "web", Address: "172.17.0.5", Port: 80, ExposedPort: 80}},
		},
		{
			name: "-internal counts exposed but unpublished ports",
			run:  run{name: "app.1", image: "app", expose: []string{"80", "9000"}, publish: []string{"8000:80"}, ips: map[string]string{"bridge": "172.17.0.5"}},
			cfg:  func(c *Config) { c.Internal = true },
			want: []bridge.Service{
				{ID: "host:app.1:80", Name: "app-80", Address: "172.17.0.5", Port: 80, ExposedPort: 80},
				{ID: "host:app.1:9000", Name: "app-9000", Address: "172.17.0.5", Port: 9000, ExposedPort: 9000},
			},
		},
		{
			name: "-internal uses the address on the network the network mode names",
			run:  run{name: "app.1", image: "app", expose: []string{"80"}, net: "backend", ips: map[string]string{"bridge": "172.17.0.5", "backend": "10.10.0.7", "aaa": "10.20.0.9"}},
			cfg:  func(c *Config) { c.Internal = true },
			want: []bridge.Service{{ID: "host:app.1:80", Name: "app", Address: "10.10.0.7", Port: 80, ExposedPort: 80}},
		},
		{
			name: "-internal beats -ip",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, ips: map[string]string{"bridge": "172.17.0.5"}},
			cfg:  func(c *Config) { c.Internal, c.HostIP = true, redisIP },
			want: []bridge.Service{{ID: "host:web.1:80", Name: "web", Address: "172.17.0.5", Port: 80, ExposedPort: 80}},
		},
		{
			name: "--net=host: exposed ports count as published on the same port",
			run:  run{name: "dns.0", image: "dns", expose: []string{"8080", "53/udp"}, net: "host"},
			want: []bridge.Service{
				{ID: "host:dns.0:53:udp", Name: "dns-53", Address: hostAddr, Port: 53, ExposedPort: 53, Tags: []string{"udp"}},
				{ID: "host:dns.0:8080", Name: "dns-8080", Address: hostAddr, Port: 8080, ExposedPort: 8080},
			},
		},
		{
			name: "--net=host with -ip registers -ip on the exposed port",
			run:  run{name: "web.1", image: "web", expose: []string{"8080"}, net: "host"},
			cfg:  func(c *Config) { c.HostIP = redisIP },
			want: []bridge.Service{{ID: "host:web.1:8080", Name: "web", Address: redisIP, Port: 8080, ExposedPort: 8080}},
		},
		{
			name: "runtime port map overrides the exposed port",
			run:  run{name: "web.1", image: "web", expose: []string{"80"}, ports: nat.PortMap{"80/tcp": {{HostIP: "0.0.0.0", HostPort: "32768"}}}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Port = 32768 })},
		},

		// Addresses.
		{
			name: "bind IP of the port is registered",
			run:  run{name: "web.1", image: "web", publish: []string{"10.1.2.3:8000:80"}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = "10.1.2.3" })},
		},
		{
			name: "port published on every interface registers the host's address",
			run:  web(),
			want: []bridge.Service{web80()},
		},
		{
			name: "port published on every interface without a host address leaves the address empty",
			run:  web(),
			cfg:  func(c *Config) { c.HostAddr = "" },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = "" })},
		},
		{
			name: "-ip beats the bind IP",
			run:  run{name: "web.1", image: "web", publish: []string{"10.1.2.3:8000:80"}},
			cfg:  func(c *Config) { c.HostIP = redisIP },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = redisIP })},
		},
		{
			name: "-useIpFromLabel beats -ip and the bind IP and strips /cidr",
			run:  run{name: "web.1", image: "web", publish: []string{"10.1.2.3:8000:80"}, labels: map[string]string{"net.ip": "10.9.8.7/24"}},
			cfg:  func(c *Config) { c.HostIP, c.UseIPFromLabel = redisIP, "net.ip" },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = "10.9.8.7" })},
		},
		{
			name: "-useIpFromLabel beats -internal, port stays the exposed one",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, ips: map[string]string{"bridge": "172.17.0.5"}, labels: map[string]string{"net.ip": "10.9.8.7"}},
			cfg:  func(c *Config) { c.Internal, c.UseIPFromLabel = true, "net.ip" },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address, s.Port = "10.9.8.7", 80 })},
		},
		{
			name: "-useIpFromLabel without the label falls back to -ip",
			run:  web(),
			cfg:  func(c *Config) { c.HostIP, c.UseIPFromLabel = redisIP, "net.ip" },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = redisIP })},
		},
		{
			name: "IPv4 binding is preferred over the :: binding",
			run:  run{name: "web.1", image: "web", expose: []string{"80"}, ports: nat.PortMap{"80/tcp": {{HostIP: "::", HostPort: "8001"}, {HostIP: "0.0.0.0", HostPort: "8000"}}}},
			want: []bridge.Service{web80()},
		},
		{
			name: "IPv4 bind IP is preferred over an IPv6 bind IP",
			run:  run{name: "web.1", image: "web", expose: []string{"80"}, ports: nat.PortMap{"80/tcp": {{HostIP: "fd00::1", HostPort: "8001"}, {HostIP: "10.1.2.3", HostPort: "8000"}}}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = "10.1.2.3" })},
		},
		{
			name: "port published on :: only registers the host's address",
			run:  run{name: "web.1", image: "web", expose: []string{"80"}, ports: nat.PortMap{"80/tcp": {{HostIP: "::", HostPort: "8000"}}}},
			want: []bridge.Service{web80()},
		},
		{
			name: "IPv6 bind IP is registered as is",
			run:  run{name: "web.1", image: "web", expose: []string{"80"}, ports: nat.PortMap{"80/tcp": {{HostIP: "fd00::1", HostPort: "8000"}}}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = "fd00::1" })},
		},

		// Attributes.
		{
			name: "attributes become Meta; name, id, tags, ignore and check_* never do",
			run: web("SERVICE_NAME=api", "SERVICE_ID=api-1", "SERVICE_TAGS=www", "SERVICE_IGNORE=false",
				"SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_INTERVAL=5s", "SERVICE_80_CHECK_TIMEOUT=1s", "SERVICE_CHECK_FUTURE_OPTION=x",
				"SERVICE_REGION=eu", "SERVICE_80_OWNER=team-a"),
			want: []bridge.Service{{
				ID: "api-1", Name: "api", Address: hostAddr, Port: 8000, ExposedPort: 80, Tags: []string{"www"},
				Meta:   map[string]string{"region": "eu", "owner": "team-a"},
				Checks: []bridge.Check{{HTTP: "http://" + hostAddr + ":8000/health", Interval: "5s", Timeout: "1s"}},
			}},
		},
		{
			name: "per-port attribute beats generic attribute",
			run:  web("SERVICE_REGION=eu", "SERVICE_80_REGION=us"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Meta = map[string]string{"region": "us"} })},
		},
		{
			name: "generic attribute applies to every port",
			run:  nginx("SERVICE_REGION=eu"),
			want: []bridge.Service{
				{ID: "host:nginx.0:80", Name: "nginx-80", Address: hostAddr, Port: 8000, ExposedPort: 80, Meta: map[string]string{"region": "eu"}},
				{ID: "host:nginx.0:443", Name: "nginx-443", Address: hostAddr, Port: 4443, ExposedPort: 443, Meta: map[string]string{"region": "eu"}},
			},
		},

		// Checks.
		{
			name: "http check on the registered address and port, interval 10s by default",
			run:  web("SERVICE_CHECK_HTTP=/health"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{httpCheck("http://10.0.0.5:8000/health")} })},
		},
		{
			name: "https check",
			run:  web("SERVICE_CHECK_HTTPS=/health?full=1"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{httpCheck("https://10.0.0.5:8000/health?full=1")} })},
		},
		{
			name: "http check of an IPv6 address is bracketed",
			run:  run{name: "web.1", image: "web", expose: []string{"80"}, ports: nat.PortMap{"80/tcp": {{HostIP: "fd00::1", HostPort: "8000"}}}, env: []string{"SERVICE_CHECK_HTTP=/health"}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Address = "fd00::1"
				s.Checks = []bridge.Check{httpCheck("http://[fd00::1]:8000/health")}
			})},
		},
		{
			name: "check with -internal is on the container address and exposed port",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, ips: map[string]string{"bridge": "172.17.0.5"}, env: []string{"SERVICE_CHECK_HTTP=/health"}},
			cfg:  func(c *Config) { c.Internal = true },
			want: []bridge.Service{{ID: "host:web.1:80", Name: "web", Address: "172.17.0.5", Port: 80, ExposedPort: 80, Checks: []bridge.Check{httpCheck("http://172.17.0.5:80/health")}}},
		},
		{
			name: "tcp check",
			run:  web("SERVICE_CHECK_TCP=1"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{{TCP: "10.0.0.5:8000", Interval: "10s"}} })},
		},
		{
			name: "grpc check without a service name",
			run:  web("SERVICE_CHECK_GRPC=1"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{{GRPC: "10.0.0.5:8000", Interval: "10s"}} })},
		},
		{
			name: "grpc check with a service name",
			run:  web("SERVICE_CHECK_GRPC=grpc.health.v1.Health"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{GRPC: "10.0.0.5:8000/grpc.health.v1.Health", Interval: "10s"}}
			})},
		},
		{
			name: "grpc check with TLS and skip verify",
			run:  web("SERVICE_CHECK_GRPC=true", "SERVICE_CHECK_GRPC_USE_TLS=true", "SERVICE_CHECK_TLS_SKIP_VERIFY=true"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{GRPC: "10.0.0.5:8000", GRPCUseTLS: true, TLSSkipVerify: true, Interval: "10s"}}
			})},
		},
		{
			name: "https check with skip verify",
			run:  web("SERVICE_CHECK_HTTPS=/", "SERVICE_CHECK_TLS_SKIP_VERIFY=true"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{HTTP: "https://10.0.0.5:8000/", TLSSkipVerify: true, Interval: "10s"}}
			})},
		},
		{
			name: "ttl check has no interval",
			run:  web("SERVICE_CHECK_TTL=30s"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{{TTL: "30s"}} })},
		},
		{
			name: "script check replaces $SERVICE_IP and $SERVICE_PORT and splits like a shell",
			run:  web(`SERVICE_CHECK_SCRIPT=/bin/check --addr $SERVICE_IP:$SERVICE_PORT "two words" 'single quoted' esc\ aped`),
			cfg:  func(c *Config) { c.AllowScriptChecks = true },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{Args: []string{"/bin/check", "--addr", "10.0.0.5:8000", "two words", "single quoted", "esc aped"}, Interval: "10s"}}
			})},
		},
		{
			name: "script check does not expand other variables",
			run:  web(`SERVICE_CHECK_SCRIPT=check $HOME`),
			cfg:  func(c *Config) { c.AllowScriptChecks = true },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{Args: []string{"check", "$HOME"}, Interval: "10s"}}
			})},
		},
		{
			name: "script with a shell operator runs through /bin/sh -c, as Consul ran registrator's Script",
			run:  web(`SERVICE_CHECK_SCRIPT=curl -fs http://$SERVICE_IP:$SERVICE_PORT/ | grep ok`),
			cfg:  func(c *Config) { c.AllowScriptChecks = true },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{Args: []string{"/bin/sh", "-c", "curl -fs http://10.0.0.5:8000/ | grep ok"}, Interval: "10s"}}
			})},
		},
		{
			name: "check options: interval, timeout, method, initial status, deregister after",
			run: web("SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_INTERVAL=5s", "SERVICE_CHECK_TIMEOUT=2s", "SERVICE_CHECK_HTTP_METHOD=HEAD",
				"SERVICE_CHECK_INITIAL_STATUS=warning", "SERVICE_CHECK_DEREGISTER_AFTER=1m"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{HTTP: "http://10.0.0.5:8000/health", Method: "HEAD", Interval: "5s", Timeout: "2s", InitialStatus: "warning", DeregisterAfter: "1m"}}
			})},
		},
		{
			name: "ttl check takes initial status and deregister after",
			run:  web("SERVICE_CHECK_TTL=30s", "SERVICE_CHECK_INITIAL_STATUS=passing", "SERVICE_CHECK_DEREGISTER_AFTER=10m"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{{TTL: "30s", InitialStatus: "passing", DeregisterAfter: "10m"}}
			})},
		},
		{
			name: "every check kind at once, in order http, https, tcp, grpc, ttl, script",
			run: web("SERVICE_CHECK_SCRIPT=check", "SERVICE_CHECK_TTL=1m", "SERVICE_CHECK_GRPC=1", "SERVICE_CHECK_TCP=1",
				"SERVICE_CHECK_HTTPS=/s", "SERVICE_CHECK_HTTP=/h"),
			cfg: func(c *Config) { c.AllowScriptChecks = true },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Checks = []bridge.Check{
					httpCheck("http://10.0.0.5:8000/h"),
					httpCheck("https://10.0.0.5:8000/s"),
					{TCP: "10.0.0.5:8000", Interval: "10s"},
					{GRPC: "10.0.0.5:8000", Interval: "10s"},
					{TTL: "1m"},
					{Args: []string{"check"}, Interval: "10s"},
				}
			})},
		},
		{
			name: "per-port check applies to its port only",
			run:  nginx("SERVICE_443_CHECK_HTTPS=/health", "SERVICE_80_CHECK_TCP=true"),
			want: []bridge.Service{
				{ID: "host:nginx.0:80", Name: "nginx-80", Address: hostAddr, Port: 8000, ExposedPort: 80, Checks: []bridge.Check{{TCP: "10.0.0.5:8000", Interval: "10s"}}},
				{ID: "host:nginx.0:443", Name: "nginx-443", Address: hostAddr, Port: 4443, ExposedPort: 443, Checks: []bridge.Check{httpCheck("https://10.0.0.5:4443/health")}},
			},
		},

		// Values that cannot be used: a warning naming the key as written,
		// the service produced with the rest.
		{
			name: "bad per-port interval warns with the key as written, default interval used",
			run:  web("SERVICE_CHECK_HTTP=/health", "SERVICE_80_CHECK_INTERVAL=banana"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{httpCheck("http://10.0.0.5:8000/health")} })},
			warn: []string{"SERVICE_80_CHECK_INTERVAL"},
		},
		{
			name: "bad interval in a label warns with the label's spelling",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, env: []string{"SERVICE_CHECK_TCP=1"}, labels: map[string]string{"SERVICE_80_Check_Interval": "banana"}},
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{{TCP: "10.0.0.5:8000", Interval: "10s"}} })},
			warn: []string{"SERVICE_80_Check_Interval"},
		},
		{
			name: "bad timeout warns, check kept without timeout",
			run:  web("SERVICE_CHECK_TCP=1", "SERVICE_CHECK_TIMEOUT=soon"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{{TCP: "10.0.0.5:8000", Interval: "10s"}} })},
			warn: []string{"SERVICE_CHECK_TIMEOUT"},
		},
		{
			name: "bad deregister after warns, check kept without it",
			run:  web("SERVICE_CHECK_TTL=30s", "SERVICE_CHECK_DEREGISTER_AFTER=later"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{{TTL: "30s"}} })},
			warn: []string{"SERVICE_CHECK_DEREGISTER_AFTER"},
		},
		{
			name: "bad ttl warns, no check",
			run:  web("SERVICE_CHECK_TTL=forever"),
			want: []bridge.Service{web80()},
			warn: []string{"SERVICE_CHECK_TTL"},
		},
		{
			name: "bad initial status warns, check kept without it",
			run:  web("SERVICE_CHECK_TCP=1", "SERVICE_CHECK_INITIAL_STATUS=green"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{{TCP: "10.0.0.5:8000", Interval: "10s"}} })},
			warn: []string{"SERVICE_CHECK_INITIAL_STATUS"},
		},
		{
			name: "bad http method warns, GET used",
			run:  web("SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_HTTP_METHOD=GE T"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{httpCheck("http://10.0.0.5:8000/health")} })},
			warn: []string{"SERVICE_CHECK_HTTP_METHOD"},
		},
		{
			name: "bad http path warns, no check",
			run:  web("SERVICE_80_CHECK_HTTP=/%zz"),
			want: []bridge.Service{web80()},
			warn: []string{"SERVICE_80_CHECK_HTTP"},
		},
		{
			name: "script that does not split warns, no check",
			run:  web(`SERVICE_CHECK_SCRIPT=check "unterminated`),
			cfg:  func(c *Config) { c.AllowScriptChecks = true },
			want: []bridge.Service{web80()},
			warn: []string{"SERVICE_CHECK_SCRIPT"},
		},
		{
			name:   "a script check without -allow-script-checks: the service is not registered, the warning names the flag",
			run:    web("SERVICE_CHECK_SCRIPT=curl http://10.0.0.1/ | sh"),
			want:   nil,
			warn:   []string{"SERVICE_CHECK_SCRIPT"},
			reason: "a script check runs a command on the agent's host: whoever starts a container must not get that by default",
		},
		{
			name: "a per-port script check refuses only its port",
			run:  nginx("SERVICE_443_CHECK_SCRIPT=check"),
			want: []bridge.Service{nginxService(80)},
			warn: []string{"SERVICE_443_CHECK_SCRIPT"},
		},
		{
			name:   "a SERVICE_ID with a slash is refused",
			run:    web("SERVICE_ID=../../other"),
			want:   nil,
			warn:   []string{"SERVICE_ID"},
			reason: "a '/' makes a path in every key-value layout, and '..' makes Consul's agent answer a redirect",
		},
		{
			name: "a SERVICE_NAME with a control character is refused",
			run:  web("SERVICE_NAME=we\x01b"),
			want: nil,
			warn: []string{"SERVICE_NAME"},
		},
		{
			name: "a per-port SERVICE_ID of '..' refuses that port alone",
			run:  nginx("SERVICE_80_ID=.."),
			want: []bridge.Service{nginxService(443)},
			warn: []string{"SERVICE_80_ID"},
		},
		{
			name: "a SERVICE_ID with dots, colons and a space is fine",
			run:  web("SERVICE_ID=https.12345:a b"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.ID = "https.12345:a b" })},
		},
		{
			name: "a SERVICE_NAME of 256 bytes is refused",
			run:  web("SERVICE_NAME=" + strings.Repeat("n", 256)),
			want: nil,
			warn: []string{"SERVICE_NAME"},
		},
		{
			name:   "-useIpFromLabel with a host name instead of an address: the default rule applies",
			run:    run{name: "web.1", image: "web", publish: []string{"8000:80"}, labels: map[string]string{"net.ip": "metadata.google.internal"}},
			cfg:    func(c *Config) { c.UseIPFromLabel = "net.ip" },
			want:   []bridge.Service{web80()},
			warn:   []string{"-useIpFromLabel: label net.ip"},
			reason: "the agent probes the registered address: a label must not aim it at any host",
		},
		{
			name: "-useIpFromLabel with the cloud metadata address: the default rule applies",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, labels: map[string]string{"net.ip": "169.254.169.254/32"}},
			cfg:  func(c *Config) { c.UseIPFromLabel = "net.ip" },
			want: []bridge.Service{web80()},
			warn: []string{"-useIpFromLabel: label net.ip"},
		},
		{
			name: "-useIpFromLabel with loopback: the default rule applies",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, labels: map[string]string{"net.ip": "127.0.0.1"}},
			cfg:  func(c *Config) { c.UseIPFromLabel = "net.ip" },
			want: []bridge.Service{web80()},
			warn: []string{"-useIpFromLabel: label net.ip"},
		},
		{
			name: "-useIpFromLabel with an IPv6 address and a prefix",
			run:  run{name: "web.1", image: "web", publish: []string{"8000:80"}, labels: map[string]string{"net.ip": "2001:db8::7/64"}},
			cfg:  func(c *Config) { c.UseIPFromLabel = "net.ip" },
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Address = "2001:db8::7" })},
		},
		{
			name: "an HTTP method outside the allowlist: GET is used",
			run:  web("SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_HTTP_METHOD=TRACE"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{httpCheck("http://10.0.0.5:8000/health")} })},
			warn: []string{"SERVICE_CHECK_HTTP_METHOD"},
		},
		{
			name: "a SERVICE_CHECK_HEADER over 4096 bytes: no headers",
			run:  web("SERVICE_CHECK_HTTP=/health", `SERVICE_CHECK_HEADER={"X": "`+strings.Repeat("v", 4096)+`"}`),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Checks = []bridge.Check{httpCheck("http://10.0.0.5:8000/health")} })},
			warn: []string{"SERVICE_CHECK_HEADER"},
		},
		{
			name: "tags past 64, and tags over 255 bytes, are left out",
			run:  web("SERVICE_TAGS=" + strings.Repeat("t,", 70) + strings.Repeat("x", 256) + ",last"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Tags = []string{"t"} })},
			warn: []string{"SERVICE_TAGS"},
		},
		{
			name: "an attribute over 4096 bytes is left out, the others kept",
			run:  web("SERVICE_BIG="+strings.Repeat("b", 4097), "SERVICE_SMALL=s"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Meta = map[string]string{"small": "s"} })},
			warn: []string{"SERVICE_BIG"},
		},
		{
			name: "attributes past 64 are left out, in key order",
			run:  web(manyAttributes(70)...),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) { s.Meta = attributes(64) })},
			warn: []string{"SERVICE_A64"},
		},
		{
			name:   "ports past -max-services yield nothing, with one warning",
			run:    run{name: "web.1", image: "web", publish: []string{"8001:1", "8002:2", "8003:3"}},
			cfg:    func(c *Config) { c.MaxServices = 2 },
			want:   []bridge.Service{portService(1, 8001), portService(2, 8002)},
			warn:   []string{"-max-services"},
			reason: "a container exposing every port must not ask for 65 535 registrations",
		},
		{
			name: "several bad values: one warning each, the rest still used",
			run:  web("SERVICE_NAME=api", "SERVICE_CHECK_HTTP=/health", "SERVICE_CHECK_INTERVAL=banana", "SERVICE_CHECK_TIMEOUT=-1s", "SERVICE_CHECK_INITIAL_STATUS=meh"),
			want: []bridge.Service{with(web80(), func(s *bridge.Service) {
				s.Name = "api"
				s.Checks = []bridge.Check{httpCheck("http://10.0.0.5:8000/health")}
			})},
			warn: []string{"SERVICE_CHECK_INTERVAL", "SERVICE_CHECK_TIMEOUT", "SERVICE_CHECK_INITIAL_STATUS"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Hostname: "host", HostAddr: hostAddr}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if tc.tags != "" {
				var err error
				if cfg.Tags, err = ParseTags(tc.tags); err != nil {
					t.Fatalf("ParseTags(%q): %v", tc.tags, err)
				}
			}
			for i := range tc.want {
				tc.want[i].Container = containerID
			}

			got, warnings := Services(tc.run.inspect(t), cfg)

			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("services (-want +got):\n%s", d)
			}
			checkWarnings(t, warnings, tc.warn)
			if t.Failed() && tc.reason != "" {
				t.Log("why this matters:", tc.reason)
			}
		})
	}
}

// checkWarnings wants one warning per key, in order, each naming its key
// as the user wrote it.
func checkWarnings(t *testing.T, got []error, keys []string) {
	t.Helper()
	msgs := make([]string, len(got))
	for i, err := range got {
		msgs[i] = err.Error()
	}
	if len(got) != len(keys) {
		t.Errorf("got %d warnings %q, want %d naming %q", len(got), msgs, len(keys), keys)
		return
	}
	for i, key := range keys {
		if !strings.Contains(msgs[i], key) {
			t.Errorf("warning %d = %q, want it to name %s", i, msgs[i], key)
		}
	}
}

func TestServicesWithoutConfigOrBase(t *testing.T) {
	for name, c := range map[string]container.InspectResponse{
		"empty answer":    {},
		"no Config":       {ContainerJSONBase: &container.ContainerJSONBase{ID: containerID, Name: "/x"}},
		"no base":         {Config: &container.Config{Image: "x", ExposedPorts: nat.PortSet{"80/tcp": {}}}},
		"no network data": {ContainerJSONBase: &container.ContainerJSONBase{ID: containerID, Name: "/x"}, Config: &container.Config{Image: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, internal := range []bool{false, true} {
				got, warnings := Services(c, Config{Hostname: "host", Internal: internal})
				if len(got) != 0 || len(warnings) != 0 {
					t.Errorf("internal=%v: got %v, warnings %v; want nothing", internal, got, warnings)
				}
			}
		})
	}
}

// Labels are a map: two keys that lower-case alike ("SERVICE_NAME" and
// "SERVICE_Name") are the same metadata key, and which one wins must not
// change from one call to the next, or the service's fingerprint flips and
// it is re-registered on every pass.
func TestServicesIsDeterministic(t *testing.T) {
	r := run{name: "web.1", image: "web", publish: []string{"8000:80"}, labels: map[string]string{
		"SERVICE_NAME": "upper", "SERVICE_Name": "mixed", "SERVICE_name": "lower",
		"SERVICE_80_CHECK_INTERVAL": "bad1", "SERVICE_80_check_interval": "bad2",
		"SERVICE_CHECK_TCP": "1",
	}}
	c := r.inspect(t)
	cfg := Config{Hostname: "host", HostAddr: hostAddr}
	first, firstWarn := Services(c, cfg)
	for i := 0; i < 100; i++ {
		got, warn := Services(c, cfg)
		if d := cmp.Diff(first, got); d != "" {
			t.Fatalf("call %d differs from the first (-first +this):\n%s\nwhy this matters: a label that lower-cases like another is picked by map iteration order (metadata.go readMetadata), so Fingerprint changes between passes", i+2, d)
		}
		if fmt.Sprint(warn) != fmt.Sprint(firstWarn) {
			t.Fatalf("call %d warnings %v, first call %v", i+2, warn, firstWarn)
		}
	}
}

func TestSplitTags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a,b", []string{"a", "b"}},
		{`a\,b`, []string{"a,b"}},
		{`a\,b,c\,`, []string{"a,b", "c,"}},
		{` a , b `, []string{"a", "b"}},
		{",,a,,", []string{"a"}},
		{`a\b`, []string{`a\b`}}, // a backslash not before a comma is kept
		{`a\`, []string{`a\`}},
		{`\\,`, []string{`\,`}},
		{`\ ,00`, []string{`\`, "00"}}, // a trailing backslash cannot be written back (see the round trip)
	} {
		t.Run(tc.in, func(t *testing.T) {
			if d := cmp.Diff(tc.want, splitTags(tc.in), cmpopts.EquateEmpty()); d != "" {
				t.Errorf("splitTags(%q) (-want +got):\n%s", tc.in, d)
			}
		})
	}
}

// Found by FuzzSplitTags: a tag that ends in a backslash cannot be written
// back. `\ ,00` splits as [`\`, "00"] (the space is trimmed after the
// backslash was taken literally), but [`\`, "00"] joined with commas is
// `\,00`, which splits as [",00"]. The list syntax has no escape for a
// backslash.
// Every list whose tags do not end in a backslash round-trips: the syntax
// has no escape for a backslash, so `\ ,00` reads as [`\` `00`] and that
// cannot be written back (TestSplitTags pins how it reads).
func TestSplitTagsRoundTrip(t *testing.T) {
	for _, in := range []string{"a,b", `a\,b,c`, " a , b ", `a\b,c`, `x\\,y`, `a,b\c`} {
		t.Run(in, func(t *testing.T) {
			tags := splitTags(in)
			escaped := make([]string, len(tags))
			for i, tag := range tags {
				escaped[i] = strings.ReplaceAll(tag, ",", `\,`)
			}
			joined := strings.Join(escaped, ",")
			if d := cmp.Diff(tags, splitTags(joined), cmpopts.EquateEmpty()); d != "" {
				t.Errorf("splitTags(%q) = %q, joined back as %q it splits differently (-first +again):\n%s", in, tags, joined, d)
			}
		})
	}
}

// Two ports of one container must not yield the same service ID: the
// backends key entries by ID and Plan matches by ID, so one of the two is
// silently lost. The contract adds ":udp" for UDP only, so a TCP and an
// SCTP port of the same number collide.
func TestServicesHaveDistinctIDs(t *testing.T) {
	for name, r := range map[string]run{
		"tcp and udp":  {name: "c.1", image: "app", publish: []string{"8000:80/tcp", "8001:80/udp"}},
		"tcp and sctp": {name: "c.1", image: "app", publish: []string{"8000:80/tcp", "8001:80/sctp"}},
		"udp and sctp": {name: "c.1", image: "app", publish: []string{"8000:80/udp", "8001:80/sctp"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, _ := Services(r.inspect(t), Config{Hostname: "host"})
			if len(got) != 2 {
				t.Fatalf("got %d services, want 2: %+v", len(got), got)
			}
			if got[0].ID == got[1].ID {
				t.Errorf("both ports registered as %q: one entry would overwrite the other", got[0].ID)
			}
		})
	}
}

// Explain names, for each port, the key that won each setting.
func TestExplainNamesTheWinningKeys(t *testing.T) {
	r := run{name: "p.1", image: "p", publish: []string{"8080:80", "8081:80/udp", "8082:81", "8091:91"}, env: []string{
		"SERVICE_NAME=c", "SERVICE_80-90_NAME=r", "SERVICE_80_NAME=port", "SERVICE_80_tcp_NAME=pp", "SERVICE_80-90_TEAM=range"}}
	decisions, _ := Explain(r.inspect(t), Config{Hostname: "host", HostAddr: hostAddr})
	want := map[string][]string{
		"80/tcp": {"SERVICE_80-90_TEAM=range", "SERVICE_80_tcp_NAME=pp"},
		"80/udp": {"SERVICE_80-90_TEAM=range", "SERVICE_80_NAME=port"},
		"81/tcp": {"SERVICE_80-90_NAME=r", "SERVICE_80-90_TEAM=range"},
		"91/tcp": {"SERVICE_NAME=c"},
	}
	got := map[string][]string{}
	for _, d := range decisions {
		got[d.Port] = d.Keys
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("keys per port (-want +got):\n%s", d)
	}
}

// nginxService is the service of port 80 or 443 that nginx yields without
// metadata.
func nginxService(port int) bridge.Service {
	published := map[int]int{80: 8000, 443: 4443}[port]
	return bridge.Service{ID: fmt.Sprintf("host:nginx.0:%d", port), Name: fmt.Sprintf("nginx-%d", port), Address: hostAddr, Port: published, ExposedPort: port}
}

// portService is the service of the image web's exposed port, published
// on the host's port published, among several.
func portService(exposed, published int) bridge.Service {
	return bridge.Service{ID: fmt.Sprintf("host:web.1:%d", exposed), Name: fmt.Sprintf("web-%d", exposed), Address: hostAddr, Port: published, ExposedPort: exposed}
}

// manyAttributes is n attributes SERVICE_A00=v00 ..., as env.
func manyAttributes(n int) []string {
	var env []string
	for k, v := range attributes(n) {
		env = append(env, "SERVICE_"+strings.ToUpper(k)+"="+v)
	}
	return env
}

// attributes is the first n of manyAttributes' attributes, as the service
// holds them.
func attributes(n int) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("a%02d", i)] = fmt.Sprintf("v%02d", i)
	}
	return out
}
