package docker

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/registrator/registrator/bridge"
)

// Fuzz mode bits: which command-line options the fuzzed container is seen with.
const (
	fuzzInternal = 1 << iota
	fuzzExplicit
	fuzzHostNet
	fuzzHostIP
	fuzzIPLabel
	fuzzTemplate
)

// containerName is the engine's rule for container names.
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// fuzzContainer builds an inspect answer from fuzzed strings: env is one
// "K=V" per line, labels one "K=V" per line, ports a comma list of -p specs
// ("8000:80", "10.1.2.3:53:53/udp"; a bare "80" or "53/udp" is exposed, not
// published), and binds a comma list of runtime bindings
// "port/proto=hostIP:hostPort" with any host IP. Only what the engine could
// report is kept: ports are numbers with tcp, udp or sctp, the image is a
// valid reference or ID and the name a valid container name; anything else
// is left out or replaced.
func fuzzContainer(env, labels, image, ports, binds, name string, mode uint8) container.InspectResponse {
	exposed := nat.PortSet{}
	portMap := nat.PortMap{}
	for _, spec := range strings.Split(ports, ",") {
		ps, bs, err := nat.ParsePortSpecs([]string{spec})
		if err != nil || len(ps) > 16 {
			continue // a wide range ("1-65535") only slows the fuzzer down
		}
		for p := range ps {
			exposed[p] = struct{}{}
			portMap[p] = append(portMap[p], bs[p]...)
		}
	}
	for _, b := range strings.Split(binds, ",") {
		key, hostport, ok := strings.Cut(b, "=")
		p, okp := enginePort(key)
		ip, hp := "", hostport
		if i := strings.LastIndex(hostport, ":"); i >= 0 {
			ip, hp = hostport[:i], hostport[i+1:]
		}
		if _, err := nat.ParsePort(hp); !ok || !okp || err != nil {
			continue
		}
		portMap[p] = append(portMap[p], nat.PortBinding{HostIP: ip, HostPort: hp})
	}
	lbls := map[string]string{}
	for _, l := range strings.Split(labels, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			lbls[k] = v
		}
	}
	if _, err := reference.ParseAnyReference(image); err != nil {
		image = "app"
	}
	if !containerName.MatchString(name) {
		name = "c1"
	}
	netMode := "bridge"
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
		"bridge": {IPAddress: "172.17.0.2"},
	}}
	ns.Ports = portMap
	if mode&fuzzHostNet != 0 {
		netMode = "host"
		ns.Ports = nat.PortMap{}
		ns.Networks = map[string]*network.EndpointSettings{"host": {}}
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:         containerID,
			Name:       "/" + name,
			Image:      "sha256:" + strings.Repeat("0123456789abcdef", 4),
			HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(netMode)},
		},
		Config: &container.Config{
			Image:        image,
			Env:          strings.Split(env, "\n"),
			Labels:       lbls,
			ExposedPorts: exposed,
		},
		NetworkSettings: ns,
	}
}

var byID = cmpopts.SortSlices(func(a, b bridge.Service) bool { return a.ID < b.ID || a.ID == b.ID && a.Name < b.Name })

// enginePort is s as the engine writes a port ("80/tcp"), if s is one.
func enginePort(s string) (nat.Port, bool) {
	proto, num := nat.SplitProtoPort(s)
	n, err := nat.ParsePort(num)
	if err != nil || num == "" || (proto != "tcp" && proto != "udp" && proto != "sctp") {
		return "", false
	}
	p, err := nat.NewPort(proto, strconv.Itoa(n))
	return p, err == nil
}

func FuzzServices(f *testing.F) {
	f.Add("", "", "nginx", "4443:443,8000:80", "", "nginx.0", uint8(0))
	f.Add("SERVICE_443_NAME=https\nSERVICE_443_ID=https.12345\nSERVICE_443_SNI=enabled\nSERVICE_80_NAME=http\nSERVICE_TAGS=www",
		"", "nginx", "4443:443,8000:80", "", "nginx.0", uint8(0))
	f.Add("", "", "progrium/redis", "10000:6379", "", "redis.0", uint8(fuzzHostIP))
	f.Add("SERVICE_TAGS=a\\,b,c\nSERVICE_REGION=eu", "SERVICE_NAME=api\nnet.ip=10.9.8.7/24", "reg:5000/team/app:1.2", "10.1.2.3:8000:80", "", "app.1", uint8(fuzzIPLabel|fuzzTemplate))
	f.Add("SERVICE_CHECK_HTTP=/health\nSERVICE_CHECK_INTERVAL=banana\nSERVICE_80_CHECK_TIMEOUT=2s", "", "web", "8000:80", "", "web.1", uint8(0))
	f.Add("SERVICE_CHECK_SCRIPT=check --ip $SERVICE_IP --port $SERVICE_PORT \"a b\"\nSERVICE_CHECK_TTL=30s\nSERVICE_CHECK_GRPC=grpc.health.v1.Health",
		"SERVICE_CHECK_TCP=1", "web", "8000:80", "", "web.1", uint8(fuzzInternal))
	f.Add("SERVICE_IGNORE=false\nSERVICE_53_NAME=dns", "", "coredns/coredns@"+digest, "53:53/udp,53:53/tcp", "", "dns.0", uint8(fuzzExplicit))
	f.Add("", "com.docker.compose.service=api", "sha256:"+strings.Repeat("0123456789abcdef", 4), "80,9000", "", "proj-api-1", uint8(fuzzHostNet))
	f.Add("SERVICE_80_IGNORE=1", "", "web", "", "80/tcp=::1:8001,80/tcp=0.0.0.0:8000,443/tcp=:,x=y", "web.1", uint8(0))
	f.Add("SERVICE_CHECK_SCRIPT=a 'b\nSERVICE_CHECK_HTTP=%zz\nSERVICE_CHECK_INITIAL_STATUS=?", "SERVICE_80_Check_Interval=-1s", "web", "8000-8001:80-81", "", "web.1", uint8(0))

	tags, err := ParseTags(`{{.Config.Image}},{{mIndex "tier" .Config.Labels}},{{splitIndex -1 "/" .Name}}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, env, labels, image, ports, binds, name string, mode uint8) {
		c := fuzzContainer(env, labels, image, ports, binds, name, mode)
		cfg := Config{Hostname: "host", HostAddr: hostAddr, Internal: mode&fuzzInternal != 0, Explicit: mode&fuzzExplicit != 0}
		if mode&fuzzHostIP != 0 {
			cfg.HostIP = "192.168.1.102"
		}
		if mode&fuzzIPLabel != 0 {
			cfg.UseIPFromLabel = "net.ip"
		}
		if mode&fuzzTemplate != 0 {
			cfg.Tags = tags
		}

		services, warnings := Services(c, cfg)
		// The same container gives the same services (their order is not
		// part of the result).
		if again, _ := Services(c, cfg); !cmp.Equal(services, again, byID) {
			t.Errorf("two calls differ:\n%s", cmp.Diff(services, again, byID))
		}

		for _, w := range warnings {
			if w == nil || w.Error() == "" {
				t.Errorf("empty warning in %v", warnings)
			}
		}
		ids := map[string]bool{}
		for _, s := range services {
			if s.ID == "" || s.Name == "" {
				t.Errorf("service without ID or name: %+v", s)
			}
			if s.Port < 0 || s.Port > 65535 {
				t.Errorf("service %s: port %d out of range", s.ID, s.Port)
			}
			if s.Container != c.ID {
				t.Errorf("service %s: container %q, want %q", s.ID, s.Container, c.ID)
			}
			if !strings.Contains(s.ID, ":") && !hasKey(env, labels, KeyID) {
				t.Errorf("service %s: default ID without host:name:port form", s.ID)
			}
			if ids[s.ID] && !hasKey(env, labels, KeyID) {
				t.Errorf("two services with ID %s", s.ID)
			}
			ids[s.ID] = true
			if strings.HasSuffix(s.ID, ":udp") && !hasKey(env, labels, KeyID) && !slices.Contains(s.Tags, "udp") {
				t.Errorf("UDP service %s without the udp tag: %q", s.ID, s.Tags)
			}
			for k := range s.Meta {
				if strings.HasPrefix(k, KeyCheckPrefix) || k == KeyName || k == KeyID || k == KeyTags || k == KeyIgnore {
					t.Errorf("service %s: Meta has %q", s.ID, k)
				}
			}
			for i, tag := range s.Tags {
				if tag == "" || strings.TrimSpace(tag) != tag {
					t.Errorf("service %s: tag %q in %q", s.ID, tag, s.Tags)
				}
				if slices.Contains(s.Tags[:i], tag) {
					t.Errorf("service %s: tag %q repeated in %q", s.ID, tag, s.Tags)
				}
			}
			if cfg.Explicit && !hasKey(env, labels, KeyName) {
				t.Errorf("-explicit: service %s registered without any SERVICE_*NAME", s.ID)
			}
			for _, ch := range s.Checks {
				checkInvariants(t, s.ID, ch)
			}
		}
	})
}

// hasKey reports whether some SERVICE_ key, generic or per port, ends with key.
func hasKey(env, labels, key string) bool {
	for _, kv := range slices.Concat(strings.Split(env, "\n"), strings.Split(labels, "\n")) {
		k, _, _ := strings.Cut(kv, "=")
		if rest, ok := strings.CutPrefix(k, Prefix); ok && strings.HasSuffix(strings.ToLower(rest), key) {
			return true
		}
	}
	return false
}

// checkInvariants: exactly one kind; an interval (a positive duration) on
// every check but TTL checks.
func checkInvariants(t *testing.T, id string, c bridge.Check) {
	t.Helper()
	kinds := 0
	for _, set := range []bool{c.HTTP != "", c.TCP != "", c.GRPC != "", c.TTL != "", len(c.Args) > 0} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		t.Errorf("service %s: check %+v has %d kinds", id, c, kinds)
	}
	for _, d := range []string{c.Interval, c.Timeout, c.DeregisterAfter, c.TTL} {
		if d == "" {
			continue
		}
		if v, err := time.ParseDuration(d); err != nil || v <= 0 {
			t.Errorf("service %s: check %+v has duration %q", id, c, d)
		}
	}
	if (c.TTL == "") != (c.Interval != "") {
		t.Errorf("service %s: check %+v: interval on a TTL check or missing on another", id, c)
	}
	switch c.InitialStatus {
	case "", "passing", "warning", "critical":
	default:
		t.Errorf("service %s: check %+v has initial status %q", id, c, c.InitialStatus)
	}
}

func FuzzSplitTags(f *testing.F) {
	for _, s := range []string{
		"", "www", "a,b", `a\,b,c`, " a , b ", ",,,", `\`, `a\`, `\\,`, `a\b`,
		"zeta,alpha,mid", "\t x \n,y", `\,\,`, "a,\\", "ü,ß\\,x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags := splitTags(s)
		for _, tag := range tags {
			if tag == "" || strings.TrimSpace(tag) != tag {
				t.Fatalf("splitTags(%q) = %q: tag %q is empty or not trimmed", s, tags, tag)
			}
		}
		// The list syntax has no escape for a backslash, so a tag that ends
		// in one cannot be written back; every other list round-trips.
		escaped := make([]string, len(tags))
		for i, tag := range tags {
			if strings.HasSuffix(tag, `\`) {
				return
			}
			escaped[i] = strings.ReplaceAll(tag, ",", `\,`)
		}
		joined := strings.Join(escaped, ",")
		if again := splitTags(joined); !slices.Equal(again, tags) {
			t.Fatalf("splitTags(%q) = %q; joined back as %q it splits as %q", s, tags, joined, again)
		}
	})
}
