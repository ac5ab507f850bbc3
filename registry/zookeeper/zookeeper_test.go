package zookeeper

import (
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/zktest"
	"github.com/registrator/registrator/registry/kv"
	"github.com/registrator/registrator/registry/registrytest"
)

var server *zktest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	if testkit.FuzzOnly() { // the fuzz targets need no server
		os.Exit(m.Run())
	}
	s, err := zktest.Start()
	if err != nil {
		os.Stderr.WriteString("zookeeper tests need a ZooKeeper server: " + err.Error() + "\n")
		os.Exit(1)
	}
	server = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

func open(t *testing.T, uri string, ttl time.Duration) *kv.Backend {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(u, kv.Options{Owner: "owner-a", TTL: ttl, Log: registrytest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestContract(t *testing.T) {
	uri := "zookeeper://" + server.Addr + "/services"
	registrytest.Run(t, registrytest.Harness{
		Open: func(t *testing.T) bridge.Backend {
			if err := server.Reset("/"); err != nil {
				t.Fatal(err)
			}
			return open(t, uri, 0)
		},
		Reopen: func(t *testing.T) bridge.Backend { return open(t, uri, 0) },
		WriteUnmarked: func(t *testing.T, id string) {
			c := server.Conn()
			for _, p := range []string{"/services", "/services/other"} {
				if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
					t.Fatal(err)
				}
			}
			if _, err := c.Create("/services/other/"+id, []byte(`{"Name":"other","IP":"10.1.1.1","PublicPort":1}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
		},
		WriteLegacy: func(t *testing.T, s bridge.Service) {
			value, err := Layout{Base: "/services"}.Value(s)
			if err != nil {
				t.Fatal(err)
			}
			createAll(t, Layout{Base: "/services"}.Key(s), value)
		},
		WriteForeign: func(t *testing.T, s bridge.Service) {
			createAll(t, Layout{Base: "/services"}.Key(s), []byte(`{"Name":"`+s.Name+`","IP":"`+s.Address+`","PublicPort":`+strconv.Itoa(s.Port)+`,"Tags":["not-registrator"]}`))
		},
		Stored: func(s bridge.Service) bridge.Service {
			s.Checks = nil
			return s
		},
		// A new session cannot take over the old one's ephemeral znodes:
		// a restarted daemon writes its entries again.
		RestartRewrites: true,
	})
}

// registrator's layout and body, as an ephemeral znode of the session.
func TestLayout(t *testing.T) {
	if err := server.Reset("/"); err != nil {
		t.Fatal(err)
	}
	b := open(t, "zookeeper://"+server.Addr+"/base", 0)
	s := bridge.Service{ID: "host:web.1:80", Name: "web", Address: "10.0.0.5", Port: 8080, ExposedPort: 80,
		Tags: []string{"a"}, Meta: map[string]string{"k": "v"}, Container: "c1", Owner: "owner-a"}
	ctx := registrytest.Context(t)
	if err := b.Register(ctx, s); err != nil {
		t.Fatal(err)
	}
	data, stat, err := server.Conn().Get("/base/web/10.0.0.5:8080")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"Attrs":{"k":"v"},"ContainerID":"c1","IP":"10.0.0.5","Name":"web","PrivatePort":80,"PublicPort":8080,"Tags":["a"]}`
	if norm, _ := json.Marshal(got); string(norm) != want {
		t.Errorf("body %s, want %s", norm, want)
	}
	if stat.EphemeralOwner == 0 {
		t.Error("the znode is not ephemeral")
	}
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct{ uri, err string }{
		{"zookeeper://127.0.0.1:2181/services", ""},
		{"zookeeper://127.0.0.1:2181,127.0.0.2:2181/a/b", ""},
		{"zookeeper://127.0.0.1:2181", "base path"},
		{"zookeeper://127.0.0.1:2181/a//b", "base path"},
		{"zookeeper:///services", "no host"},
		{"zookeeper://127.0.0.1:2181/s?x=1", `unknown option "x"`},
		{"zookeeper://127.0.0.1:2181/s?marks=/s/m", "inside the base path"},
	} {
		u, _ := url.Parse(tc.uri)
		b, err := Open(u, kv.Options{Owner: "o", Log: registrytest.Quiet()})
		if err == nil {
			b.Close()
		}
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Open(%s) error %v, want %q", tc.uri, err, tc.err)
		}
	}
}

// A server that accepts connections and never answers: every call returns
// by its context's end (the client holds a request until it has a
// session, and its calls take no context), and the daemon's Ping, List
// and Commit with it.
func TestCallsEndWithTheirContextOnAHungServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	b := open(t, "zookeeper://"+l.Addr().String()+"/services", 0)
	st := b.Store()
	for name, call := range map[string]func(context.Context) error{
		"Ping": b.Ping,
		"List": func(ctx context.Context) error { _, err := st.List(ctx, "/services/", "/registrator/"); return err },
		"Get":  func(ctx context.Context) error { _, _, err := st.Get(ctx, "/registrator/x"); return err },
		"Commit": func(ctx context.Context) error {
			return st.Commit(ctx, "", []kv.Op{{Key: "/services/web/x", Value: []byte("{}")}})
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s on a server that never answers: nil error", name)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s took %s, past its context's 300 ms", name, took)
		}
	}
}

// createAll creates the persistent node p with data, and its parents.
func createAll(t *testing.T, p string, data []byte) {
	t.Helper()
	c := server.Conn()
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i := 1; i < len(parts); i++ {
		if _, err := c.Create("/"+strings.Join(parts[:i], "/"), nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatal(err)
		}
	}
	if _, err := c.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
}
