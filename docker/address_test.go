package docker

import (
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

// Where a service is reached: the network chosen among several, and the
// IP family.
func TestAddressChoice(t *testing.T) {
	twoNets := func(env ...string) run {
		return run{name: "app.1", image: "app", expose: []string{"80"}, net: "front", env: env,
			ips:  map[string]string{"front": "172.20.0.2", "back": "172.21.0.2", "bridge": "172.17.0.2"},
			ips6: map[string]string{"front": "fd00:20::2", "back": "fd00:21::2"}}
	}
	v6pub := func(env ...string) run {
		return run{name: "web.1", image: "web", expose: []string{"80"}, env: env, ports: nat.PortMap{
			"80/tcp": {{HostIP: "0.0.0.0", HostPort: "8000"}, {HostIP: "::", HostPort: "8000"}}}}
	}
	for _, tc := range []struct {
		name string
		run  run
		cfg  Config
		want string // address:port
		warn []string
	}{
		{"-internal: the network the network mode names", twoNets(), Config{Internal: true}, "172.20.0.2:80", nil},
		{"-internal -network back", twoNets(), Config{Internal: true, Network: "back"}, "172.21.0.2:80", nil},
		{"SERVICE_NETWORK beats -network", twoNets("SERVICE_NETWORK=back"), Config{Internal: true, Network: "front"}, "172.21.0.2:80", nil},
		{"per-port SERVICE_80_NETWORK", twoNets("SERVICE_NETWORK=front", "SERVICE_80_NETWORK=back"), Config{Internal: true}, "172.21.0.2:80", nil},
		{"a network the container is not on: a warning and the default rule", twoNets("SERVICE_NETWORK=nope"), Config{Internal: true}, "172.20.0.2:80", []string{"SERVICE_NETWORK"}},
		{"-network not on the container names the flag", twoNets(), Config{Internal: true, Network: "nope"}, "172.20.0.2:80", []string{"-network"}},
		{"-internal by IPv6", twoNets(), Config{Internal: true, IPv6: true}, "fd00:20::2:80", nil},
		{"SERVICE_IP_FAMILY=6 on the chosen network", twoNets("SERVICE_IP_FAMILY=6", "SERVICE_NETWORK=back"), Config{Internal: true}, "fd00:21::2:80", nil},
		{"SERVICE_IP_FAMILY=4 beats -ip-family 6", twoNets("SERVICE_IP_FAMILY=4"), Config{Internal: true, IPv6: true}, "172.20.0.2:80", nil},
		{"a bad family warns", twoNets("SERVICE_IP_FAMILY=5"), Config{Internal: true}, "172.20.0.2:80", []string{"SERVICE_IP_FAMILY"}},
		{"published on every interface, IPv4", v6pub(), Config{HostAddr: "10.0.0.5", HostAddr6: "fd00::5"}, "10.0.0.5:8000", nil},
		{"published on every interface, IPv6: the host's IPv6 address", v6pub(), Config{HostAddr: "10.0.0.5", HostAddr6: "fd00::5", IPv6: true}, "fd00::5:8000", nil},
		{"-ip6 beats the host's IPv6 address", v6pub(), Config{HostAddr6: "fd00::5", HostIP6: "fd00::99", IPv6: true}, "fd00::99:8000", nil},
		{"-ip does not apply to IPv6", v6pub(), Config{HostAddr6: "fd00::5", HostIP: "10.9.9.9", IPv6: true}, "fd00::5:8000", nil},
		{"-internal, no address of its own (rootless Podman): where it is published, with a warning", run{name: "web.1", image: "web", expose: []string{"80"}, net: "slirp4netns",
			ports: nat.PortMap{"80/tcp": {{HostIP: "", HostPort: "46563"}}}}, Config{Internal: true, HostAddr: "10.0.0.5"}, "10.0.0.5:46563", []string{"-internal"}},
		{"-internal, no address of its own, -ip", run{name: "web.1", image: "web", expose: []string{"80"}, net: "slirp4netns",
			ports: nat.PortMap{"80/tcp": {{HostIP: "127.0.0.1", HostPort: "46563"}}}}, Config{Internal: true, HostAddr: "10.0.0.5", HostIP: "10.9.9.9"}, "10.9.9.9:46563", []string{"-internal"}},
		{"-internal on the host's network: the host's address", run{name: "web.1", image: "web", expose: []string{"80"}, net: "host"}, Config{Internal: true, HostAddr: "10.0.0.5"}, "10.0.0.5:80", nil},
		{"a port bound to one IPv6 address", run{name: "web.1", image: "web", expose: []string{"80"}, ports: nat.PortMap{
			"80/tcp": {{HostIP: "fd00::7", HostPort: "8000"}}}}, Config{IPv6: true, HostAddr6: "fd00::5"}, "fd00::7:8000", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Hostname = "host"
			got, warnings := Services(tc.run.inspect(t), tc.cfg)
			checkWarnings(t, warnings, tc.warn)
			if len(got) != 1 {
				t.Fatalf("services %+v, want one", got)
			}
			if addr := got[0].Address + ":" + strconv.Itoa(got[0].Port); addr != tc.want {
				t.Errorf("address %s, want %s", addr, tc.want)
			}
			for _, k := range []string{"network", "ip_family"} {
				if _, ok := got[0].Meta[k]; ok {
					t.Errorf("SERVICE_%s leaked into Meta", strings.ToUpper(k))
				}
			}
		})
	}
}

// Explain says why each port yields no service.
func TestExplainReasons(t *testing.T) {
	r := run{name: "c.1", image: "app", expose: []string{"80", "81", "82", "9000"}, publish: []string{"8080:80", "8081:81", "8082:82"},
		env:    []string{"SERVICE_81_IGNORE=1", "SERVICE_82_DOCKER_HEALTH=healthy", "SERVICE_80_NAME=web"},
		health: &container.Health{Status: "starting"}}
	decisions, _ := Explain(r.inspect(t), Config{Hostname: "host", Explicit: true})
	want := map[string]string{
		"80/tcp":   "",
		"81/tcp":   "SERVICE_81_IGNORE is set",
		"82/tcp":   "-explicit and no SERVICE_NAME or SERVICE_82_NAME",
		"9000/tcp": "exposed but not published",
	}
	if len(decisions) != len(want) {
		t.Fatalf("%d decisions, want %d: %+v", len(decisions), len(want), decisions)
	}
	for _, d := range decisions {
		w := want[d.Port]
		if w == "" {
			if d.Service == nil {
				t.Errorf("%s: no service (%s), want one", d.Port, d.Skipped)
			}
			continue
		}
		if d.Service != nil || !strings.Contains(d.Skipped, w) {
			t.Errorf("%s: service %v, reason %q; want none because %q", d.Port, d.Service, d.Skipped, w)
		}
	}
	rootless := run{name: "c.1", image: "app", expose: []string{"80", "81"}, net: "slirp4netns", ports: nat.PortMap{"80/tcp": {{HostPort: "8080"}}, "81/tcp": nil}}
	decisions, _ = Explain(rootless.inspect(t), Config{Hostname: "host", Internal: true})
	if len(decisions) != 2 || decisions[0].Service == nil || decisions[1].Service != nil || !strings.Contains(decisions[1].Skipped, "no address of its own") {
		t.Errorf("-internal, no address of its own: %+v; want 80 where published, 81 skipped for want of an address", decisions)
	}
	r.env = append(r.env, "SERVICE_82_NAME=api")
	decisions, _ = Explain(r.inspect(t), Config{Hostname: "host", Explicit: true})
	for _, d := range decisions {
		if d.Port == "82/tcp" && (d.Service != nil || !strings.Contains(d.Skipped, "Docker health is starting")) {
			t.Errorf("82/tcp while starting with healthy-only: %+v, want no service because of Docker health", d)
		}
	}
}
