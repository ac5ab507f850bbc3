package skydns2

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/etcdtest"
	"github.com/registrator/registrator/registry/kv"
	"github.com/registrator/registrator/registry/registrytest"
)

// The etcd server starts on first use, so that fuzzing (whose workers run
// this binary again and again) starts none.
var (
	once    sync.Once
	started *etcdtest.Server
)

func server(t *testing.T) *etcdtest.Server {
	once.Do(func() {
		s, err := etcdtest.Start()
		if err != nil {
			t.Fatalf("skydns2 tests need an etcd binary: %v", err)
		}
		started = s
	})
	if started == nil {
		t.Fatal("no etcd server")
	}
	return started
}

func TestMain(m *testing.M) {
	code := m.Run()
	if started != nil {
		started.Close()
	}
	os.Exit(code)
}

func TestContract(t *testing.T) {
	open := func(t *testing.T) bridge.Backend {
		u, _ := url.Parse("skydns2://" + server(t).Addr + "/skydns.local")
		b, err := Open(u, kv.Options{Owner: "owner-a", Log: registrytest.Quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	ctx := registrytest.Context
	registrytest.Run(t, registrytest.Harness{
		Open: func(t *testing.T) bridge.Backend {
			if err := server(t).Reset(ctx(t)); err != nil {
				t.Fatal(err)
			}
			return open(t)
		},
		Reopen: open,
		WriteUnmarked: func(t *testing.T, id string) {
			if _, err := server(t).Client().Put(ctx(t), "/skydns/local/skydns/other/"+id, `{"host":"10.1.1.1","port":1}`); err != nil {
				t.Fatal(err)
			}
		},
		WriteLegacy: func(t *testing.T, s bridge.Service) {
			l := Layout{prefix: "/skydns/local/skydns"}
			value, err := l.Value(s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := server(t).Client().Put(ctx(t), l.Key(s), string(value)); err != nil {
				t.Fatal(err)
			}
		},
		WriteForeign: func(t *testing.T, s bridge.Service) {
			if _, err := server(t).Client().Put(ctx(t), Layout{prefix: "/skydns/local/skydns"}.Key(s), `{"host":"10.1.1.1","port":1}`); err != nil {
				t.Fatal(err)
			}
		},
		Stored: func(s bridge.Service) bridge.Service {
			s.Checks, s.Meta = nil, nil
			return s
		},
	})
}

// The record CoreDNS reads: key and JSON shape.
func TestRecord(t *testing.T) {
	l := Layout{prefix: "/skydns/local/skydns"}
	s := bridge.Service{ID: "host:web.1:80", Name: "web", Address: "10.0.0.5", Port: 8080}
	if got, want := l.Key(s), "/skydns/local/skydns/web/"+Label(s.ID); got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	v, err := l.Value(s)
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	}
	if err := json.Unmarshal(v, &msg); err != nil || msg.Host != "10.0.0.5" || msg.Port != 8080 {
		t.Errorf("value %s does not decode as CoreDNS's msg.Service with host and port", v)
	}
}

func TestPrefix(t *testing.T) {
	for _, tc := range []struct{ domain, want, err string }{
		{"skydns.local", "/skydns/local/skydns", ""},
		{"Service.Consul.", "/skydns/consul/service", ""},
		{"local", "/skydns/local", ""},
		{"", "", "no domain"},
		{"a..b", "", "not a DNS label"},
		{"a_b.local", "", "not a DNS label"},
	} {
		got, err := Prefix(tc.domain)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Prefix(%q) error %v, want %q", tc.domain, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Prefix(%q) = %q, %v; want %q", tc.domain, got, err, tc.want)
		}
	}
}

func TestLabel(t *testing.T) {
	for _, tc := range []struct{ id, wantPrefix string }{
		{"web-1", "web-1"},
		{"host:web.1:80", "host-web-1-80-"},
		{"HOST:Web:80:udp", "host-web-80-udp-"},
		{"https.12345", "https-12345-"},
		{"---", ""},
		{strings.Repeat("a", 63), strings.Repeat("a", 63)},
		{strings.Repeat("a", 64), strings.Repeat("a", 54) + "-"},
	} {
		got := Label(tc.id)
		if !dnsLabel.MatchString(got) || !strings.HasPrefix(got, tc.wantPrefix) {
			t.Errorf("Label(%q) = %q, want a DNS label starting %q", tc.id, got, tc.wantPrefix)
		}
	}
	if Label("a:b") == Label("a.b") {
		t.Error("two IDs that differ only in punctuation share a label")
	}
}

func FuzzLabel(f *testing.F) {
	for _, s := range []string{"host:web.1:80", "", "é", "a-", strings.Repeat("x", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if l := Label(id); !dnsLabel.MatchString(l) {
			t.Fatalf("Label(%q) = %q is not a DNS label", id, l)
		}
	})
}
