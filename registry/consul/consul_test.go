package consul

import (
	"context"
	"flag"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/registry/registrytest"
)

var agent *consultest.Agent

func TestMain(m *testing.M) {
	flag.Parse()
	if testkit.FuzzOnly() { // the fuzz targets need no server
		os.Exit(m.Run())
	}
	a, err := consultest.Start()
	if err != nil {
		os.Stderr.WriteString("consul tests need a Consul binary: " + err.Error() + "\n")
		os.Exit(1)
	}
	agent = a
	code := m.Run()
	a.Stop()
	os.Exit(code)
}

func TestContract(t *testing.T) {
	open := func(t *testing.T) bridge.Backend {
		b, err := Open(&url.URL{Scheme: "consul", Host: agent.Addr}, bridge.BackendOptions{Log: registrytest.Quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	registrytest.Run(t, registrytest.Harness{
		Open: func(t *testing.T) bridge.Backend {
			if err := agent.Reset(context.Background()); err != nil {
				t.Fatal(err)
			}
			return open(t)
		},
		Reopen: open,
		// Checks are registered but not read back: the revision covers them.
		Stored: func(s bridge.Service) bridge.Service { s.Checks = nil; return s },
		WriteUnmarked: func(t *testing.T, id string) {
			err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "other", Port: 1})
			if err != nil {
				t.Fatal(err)
			}
		},
		WriteLegacy: func(t *testing.T, s bridge.Service) {
			err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{ID: s.ID, Name: s.Name, Address: s.Address, Port: s.Port, Tags: s.Tags})
			if err != nil {
				t.Fatal(err)
			}
		},
		WriteForeign: func(t *testing.T, s bridge.Service) {
			err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{ID: s.ID, Name: s.Name, Address: "10.1.1.1", Port: 1})
			if err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		uri, addr, scheme, err string
	}{
		{uri: "consul://10.0.0.1:8500", addr: "10.0.0.1:8500", scheme: "http"},
		{uri: "consul://10.0.0.1:8500/", addr: "10.0.0.1:8500", scheme: "http"},
		{uri: "consul-tls://consul.example:8501", addr: "consul.example:8501", scheme: "https"},
		{uri: "consul-unix:///var/run/consul.sock", addr: "unix:///var/run/consul.sock", scheme: "http"},
		{uri: "consul-unix://", err: "no socket path"},
		{uri: "consul://h:1/prefix", err: "takes no prefix"},
		{uri: "consul://h:1?prefix=x", err: `unknown option "prefix"`},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			u, err := url.Parse(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(u, bridge.BackendOptions{Log: registrytest.Quiet()})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Open(%s) error = %v, want one containing %q", tc.uri, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.addr != tc.addr {
				t.Errorf("address %q, want %q", b.addr, tc.addr)
			}
		})
	}
}

func TestMeta(t *testing.T) {
	long := strings.Repeat("k", 200)
	for _, tc := range []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"valid keys kept", map[string]string{"region": "eu", "a-b_C9": "x"}, map[string]string{"region": "eu", "a-b_C9": "x"}},
		{"dots and other characters become underscores", map[string]string{"com.example.tier": "1", "ké y": "v"}, map[string]string{"com_example_tier": "1", "k__y": "v"}},
		{"reserved prefixes escaped", map[string]string{"consul-version": "1", "registrator-owner": "me"}, map[string]string{"_consul-version": "1", "_registrator-owner": "me"}},
		{"long key cut to 128", map[string]string{long: "v"}, map[string]string{long[:128]: "v"}},
		{"long value cut to 512 on a rune boundary", map[string]string{"v": strings.Repeat("é", 300)}, map[string]string{"v": strings.Repeat("é", 256)}},
		{"first key in order wins a collision", map[string]string{"a.b": "1", "a_b": "2"}, map[string]string{"a_b": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, first(Meta(tc.in))); d != "" {
				t.Errorf("Meta (-want +got):\n%s", d)
			}
		})
	}
	t.Run("what is cut or left out is noted", func(t *testing.T) {
		in := map[string]string{"a.b": "1", "a_b": "2", "big": strings.Repeat("v", 1<<20)}
		for i := range 70 {
			in["z"+strconv.Itoa(100+i)] = "v"
		}
		_, notes := Meta(in)
		want := []string{`"a_b" left out`, `"big": value of 1048576 bytes cut to Consul's 512`, `11 attribute(s) from "z159" on left out`}
		if len(notes) != len(want) {
			t.Fatalf("notes %q, want %d", notes, len(want))
		}
		for i, w := range want {
			if !strings.Contains(notes[i], w) {
				t.Errorf("note %q, want it to contain %q", notes[i], w)
			}
		}
		if _, notes := Meta(map[string]string{"com.example.tier": "1"}); len(notes) != 0 {
			t.Errorf("notes %q for a renamed key, want none", notes)
		}
		// 100 two-byte runes: 200 bytes as given, 100 once each is '_'.
		if meta, notes := Meta(map[string]string{strings.Repeat("é", 100): "v"}); len(notes) != 0 || len(meta) != 1 {
			t.Errorf("notes %q for a key of 200 bytes that is 100 once sanitised, want none", notes)
		}
		// 128 bytes as given, 129 with the escape of the reserved prefix.
		if _, notes := Meta(map[string]string{"consul-" + strings.Repeat("k", 121): "v"}); len(notes) != 1 || !strings.Contains(notes[0], "key cut") {
			t.Errorf("notes %q for a key escaped past 128 bytes, want it noted as cut", notes)
		}
	})
	t.Run("at most 61 pairs, leaving room for the owner mark", func(t *testing.T) {
		in := map[string]string{}
		for i := range 100 {
			in[strings.Repeat("x", i+1)] = "v"
		}
		if got := len(first(Meta(in))); got != 61 {
			t.Errorf("%d pairs, want 61", got)
		}
		s := bridge.Service{ID: "a", Name: "web", Meta: in, Owner: "rack-7", Writer: "host-a"}
		if reg, _ := registration(s); len(reg.Meta) != 64 || reg.Meta[MetaWriter] != "host-a" {
			t.Errorf("with the writer's host: %d pairs, writer %q; want 64 with host-a", len(reg.Meta), reg.Meta[MetaWriter])
		}
		s.Writer = ""
		if reg, _ := registration(s); len(reg.Meta) != 64 {
			t.Errorf("without: %d pairs, want 64", len(reg.Meta))
		}
	})
}

func TestRegistrationChecks(t *testing.T) {
	ids := func(reg *api.AgentServiceRegistration) []string {
		var out []string
		for _, c := range reg.Checks {
			out = append(out, c.CheckID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		s    bridge.Service
		want []string
	}{
		{"one check keeps service:<id>", bridge.Service{ID: "a", Checks: []bridge.Check{{TTL: "30s"}}}, []string{"service:a"}},
		{"several are numbered", bridge.Service{ID: "a", Checks: []bridge.Check{{TTL: "30s"}, {TCP: "h:1", Interval: "5s"}}}, []string{"service:a:1", "service:a:2"}},
		{"the Docker health check changes neither", bridge.Service{ID: "a", Checks: []bridge.Check{{TTL: "30s"}}, Health: &bridge.Health{Status: bridge.Starting}},
			[]string{"service:a", "service:a:docker-health"}},
		{"Docker health alone", bridge.Service{ID: "a", Health: &bridge.Health{Status: bridge.Healthy}}, []string{"service:a:docker-health"}},
	} {
		if got := ids(first(registration(tc.s))); !slices.Equal(got, tc.want) {
			t.Errorf("%s: check IDs %v, want %v", tc.name, got, tc.want)
		}
	}
	for status, want := range map[string]string{bridge.Healthy: "passing", bridge.Starting: "warning", bridge.Unhealthy: "critical"} {
		reg, _ := registration(bridge.Service{ID: "a", Health: &bridge.Health{Status: status}})
		if got := reg.Checks[0].Status; got != want {
			t.Errorf("Docker %s: check status %q, want %q", status, got, want)
		}
	}
	s := bridge.Service{ID: "a", Owner: "me", Container: "c1", Meta: map[string]string{"x": "1"}}
	if m := first(registration(s)).Meta; m[MetaOwner] != "me" || m[MetaContainer] != "c1" || m[MetaRevision] != s.Fingerprint() || m["x"] != "1" {
		t.Errorf("meta %v lacks the owner mark or the attributes", m)
	}
}

func first[A, B any](a A, _ B) A { return a }

// Services skips decoding a list the agent repeats byte for byte; any
// change made behind the backend's back must still show at the next call,
// and what one call returned must not be changed by the next.
func TestServicesSeesEveryChangeToARepeatedList(t *testing.T) {
	b := emptyAgent(t)
	ctx := registrytest.Context(t)
	other := agent.Client().Agent()
	list := func() []bridge.Service {
		t.Helper()
		s, err := b.Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	register := func(tags ...string) {
		t.Helper()
		err := other.ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 80, Tags: tags, Meta: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
	}

	register("a")
	first := list()
	if len(first) != 1 || !slices.Equal(first[0].Tags, []string{"a"}) {
		t.Fatalf("first list %+v, want web-1 with tag a", first)
	}
	if !b.body[b.last].Got() {
		t.Fatal("the list was not read through the raw transport; the test would prove nothing")
	}
	again := list()
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("the repeated list reads differently (-first +again):\n%s", diff)
	}
	again[0].ID = "changed by the caller"
	if third := list(); third[0].ID != "web-1" {
		t.Errorf("a caller's change to one result shows in the next: %q", third[0].ID)
	}

	register("b") // behind the backend's back
	if got := list(); len(got) != 1 || !slices.Equal(got[0].Tags, []string{"b"}) {
		t.Errorf("after the tags changed: %+v, want tag b", got)
	}
	if err := other.ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 0 {
		t.Errorf("after the service was removed: %+v, want none", got)
	}
}

// A service with a Connect sidecar: the agent adds <ID>-sidecar-proxy with
// the service's owner mark, and removes it with the service. Services
// leaves it out, so that no full pass takes it for a stale entry of ours.
func TestSidecarIsNotListedAsOurs(t *testing.T) {
	b := emptyAgent(t)
	ctx := registrytest.Context(t)
	s := bridge.Service{ID: "h:web:80", Name: "web", Address: "127.0.0.1", Port: 80, Container: "c1", Owner: "o", Sidecar: &bridge.Sidecar{Port: 21001}}
	if err := b.Register(ctx, s); err != nil {
		t.Fatal(err)
	}
	all, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	p := all["h:web:80-sidecar-proxy"]
	if p == nil || p.Meta[MetaOwner] != "o" {
		t.Fatalf("sidecar %+v: the test expects the agent to copy the owner mark, or it proves nothing", p)
	}
	got, err := b.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "h:web:80" {
		t.Fatalf("Services %+v, want only h:web:80", got)
	}
	if err := b.Deregister(ctx, s); err != nil {
		t.Fatal(err)
	}
	if all, _ := agent.Client().Agent().Services(); len(all) != 0 {
		t.Errorf("after deregistering the service the agent still has %v", keys(all))
	}
}

func keys[V any](m map[string]V) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}

// emptyAgent resets the test agent and opens a backend on it.
func emptyAgent(t *testing.T) *Backend {
	t.Helper()
	if err := agent.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := Open(&url.URL{Scheme: "consul", Host: agent.Addr}, bridge.BackendOptions{Log: registrytest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
