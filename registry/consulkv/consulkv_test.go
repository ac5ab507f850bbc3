package consulkv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/registry/kv"
	"github.com/registrator/registrator/registry/registrytest"
)

var agent *consultest.Agent

func TestMain(m *testing.M) {
	a, err := consultest.Start()
	if err != nil {
		os.Stderr.WriteString("consulkv tests need a Consul binary: " + err.Error() + "\n")
		os.Exit(1)
	}
	agent = a
	code := m.Run()
	a.Stop()
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

func reset(t *testing.T) {
	t.Helper()
	if _, err := agent.Client().KV().DeleteTree("", nil); err != nil {
		t.Fatal(err)
	}
}

func TestContract(t *testing.T) {
	uri := "consulkv://" + agent.Addr + "/services"
	registrytest.Run(t, registrytest.Harness{
		Open: func(t *testing.T) bridge.Backend {
			reset(t)
			return open(t, uri, 0)
		},
		Reopen: func(t *testing.T) bridge.Backend { return open(t, uri, 0) },
		WriteUnmarked: func(t *testing.T, id string) {
			if _, err := agent.Client().KV().Put(&api.KVPair{Key: "services/other/" + id, Value: []byte("10.1.1.1:1")}, nil); err != nil {
				t.Fatal(err)
			}
		},
		WriteLegacy: func(t *testing.T, s bridge.Service) {
			value := fmt.Sprintf("%s:%d", s.Address, s.Port)
			if _, err := agent.Client().KV().Put(&api.KVPair{Key: "services/" + s.Name + "/" + s.ID, Value: []byte(value)}, nil); err != nil {
				t.Fatal(err)
			}
		},
		WriteForeign: func(t *testing.T, s bridge.Service) {
			if _, err := agent.Client().KV().Put(&api.KVPair{Key: "services/" + s.Name + "/" + s.ID, Value: []byte("10.1.1.1:1")}, nil); err != nil {
				t.Fatal(err)
			}
		},
		Stored: func(s bridge.Service) bridge.Service {
			s.Checks, s.Tags, s.Meta = nil, nil, nil
			return s
		},
	})
}

// registrator's layout, the entry held by the daemon's session.
func TestLayoutAndSession(t *testing.T) {
	reset(t)
	b := open(t, "consulkv://"+agent.Addr+"/services", 0)
	s := bridge.Service{ID: "host:web.1:80", Name: "web", Address: "10.0.0.5", Port: 8080, Container: "c1", Owner: "owner-a"}
	ctx := registrytest.Context(t)
	if err := b.Register(ctx, s); err != nil {
		t.Fatal(err)
	}
	pair, _, err := agent.Client().KV().Get("services/web/host:web.1:80", nil)
	if err != nil || pair == nil {
		t.Fatalf("entry: %v, %v", pair, err)
	}
	if string(pair.Value) != "10.0.0.5:8080" || pair.Session == "" {
		t.Errorf("entry value %q session %q, want 10.0.0.5:8080 held by a session", pair.Value, pair.Session)
	}
	// The session ends (as when the node fails): the entry goes with it,
	// and the next write takes a new session.
	if _, err := agent.Client().Session().Destroy(pair.Session, nil); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := agent.Client().KV().Get("services/web/host:web.1:80", nil); p != nil {
		t.Fatal("entry outlived its session")
	}
	if err := b.Register(ctx, s); err != nil {
		t.Fatal(err)
	}
	again, _, err := agent.Client().KV().Get("services/web/host:web.1:80", nil)
	if err != nil || again == nil || again.Session == "" || again.Session == pair.Session {
		t.Fatalf("after the session ended: entry %+v (%v), want one on a new session", again, err)
	}
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct{ uri, err string }{
		{"consulkv://127.0.0.1:8500/services", ""},
		{"consulkv://127.0.0.1:8500/a/b/", ""},
		{"consulkv://127.0.0.1:8500", "no key prefix"},
		{"consulkv://127.0.0.1:8500/", "no key prefix"},
		{"consulkv://127.0.0.1:8500/s?x=1", `unknown option "x"`},
		{"consulkv://127.0.0.1:8500/s?marks=s/m", "inside the prefix"},
	} {
		u, _ := url.Parse(tc.uri)
		_, err := Open(u, kv.Options{Owner: "o", Log: registrytest.Quiet()})
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Open(%s) error %v, want %q", tc.uri, err, tc.err)
		}
	}
}

// Ping fails until the servers hold the node's serfHealth check passing:
// Consul grants no session before, and the daemon then asks every second
// instead of waiting out its backoff.
func TestPingWaitsForSerfHealth(t *testing.T) {
	for _, tc := range []struct {
		name, checks, err string
		filtered          bool
	}{
		{"node not registered yet", `[]`, "no serfHealth check", false},
		{"a token without node:read sees no check", `[]`, "", true},
		{"serfHealth not registered yet", `[{"Node":"n1","CheckID":"other","Status":"passing"}]`, "no serfHealth check", false},
		{"serfHealth critical", `[{"Node":"n1","CheckID":"serfHealth","Status":"critical"}]`, "fails its serfHealth check", false},
		{"serfHealth passing", `[{"Node":"n1","CheckID":"serfHealth","Status":"passing"}]`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
					w.WriteHeader(http.StatusNotFound)
				case r.URL.Path == "/v1/agent/self":
					w.Write([]byte(`{"Config":{"NodeName":"n1"}}`))
				case r.URL.Path == "/v1/health/node/n1":
					w.Header().Set("X-Consul-LastContact", "0")
					w.Header().Set("X-Consul-KnownLeader", "true")
					if tc.filtered {
						w.Header().Set("X-Consul-Results-Filtered-By-ACLs", "true")
					}
					w.Write([]byte(tc.checks))
				default:
					http.Error(w, "unexpected "+r.URL.Path, http.StatusTeapot)
				}
			}))
			defer srv.Close()
			b := open(t, "consulkv://"+strings.TrimPrefix(srv.URL, "http://")+"/services", 0)
			err := b.Ping(registrytest.Context(t))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Ping: %v, want nil", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Ping: %v, want an error with %q", err, tc.err)
			}
		})
	}
	// A real agent's node has its serfHealth passing.
	if err := open(t, "consulkv://"+agent.Addr+"/services", 0).Ping(registrytest.Context(t)); err != nil {
		t.Fatalf("Ping on the dev agent: %v", err)
	}
}

// The agent's answer to /v1/agent/self is decoded into a type that says
// what Ping needs, and an answer without it is an error, not a panic (the
// client library's NodeName panics on `{"Config":{}}`).
func TestAgentSelfDecode(t *testing.T) {
	for _, tc := range []struct{ body, node, err string }{
		{`{"Config":{"NodeName":"n1","Datacenter":"dc1"},"Member":{}}`, "n1", ""},
		{`{"Config":{}}`, "", "names no node"},
		{`{"Config":null}`, "", "names no node"},
		{`{}`, "", "names no node"},
		{`null`, "", "names no node"},
		{`{"Config":{"NodeName":""}}`, "", "names no node"},
		{`{"Config":{"NodeName":5}}`, "", "cannot unmarshal"},
		{`{"Config":"x"}`, "", "cannot unmarshal"},
		{`[]`, "", "cannot unmarshal"},
		{`{"Config":{"NodeN`, "", "unexpected end"},
	} {
		var a agentSelf
		node, err := "", json.Unmarshal([]byte(tc.body), &a)
		if err == nil {
			node, err = a.node()
		}
		if node != tc.node || tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: node %q, error %v; want %q and an error with %q", tc.body, node, err, tc.node, tc.err)
		}
	}
}

// An agent answering Ping's questions with nonsense, or not at all, makes
// Ping fail within its context; nothing panics.
func TestPingOnMalformedOrHungAgent(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	for _, tc := range []struct {
		name, self, checks, err string
		hang                    bool
	}{
		{"self without the node's name", `{"Config":{}}`, `[]`, "names no node", false},
		{"self truncated", `{"Config":{"Node`, `[]`, "agent/self", false},
		{"self of another shape", `["Config"]`, `[]`, "agent/self", false},
		{"a null check", `{"Config":{"NodeName":"n1"}}`, `[null]`, "no serfHealth check", false},
		{"checks truncated", `{"Config":{"NodeName":"n1"}}`, `[{"CheckID":"serf`, "health of node n1", false},
		{"an agent that never answers", "", "", "context deadline exceeded", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.hang {
					select {
					case <-hang:
					case <-r.Context().Done():
					}
					return
				}
				switch {
				case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
					w.WriteHeader(http.StatusNotFound)
				case r.URL.Path == "/v1/agent/self":
					w.Write([]byte(tc.self))
				case r.URL.Path == "/v1/health/node/n1":
					w.Write([]byte(tc.checks))
				default:
					http.Error(w, "unexpected "+r.URL.Path, http.StatusTeapot)
				}
			}))
			defer srv.Close()
			b := open(t, "consulkv://"+strings.TrimPrefix(srv.URL, "http://")+"/services", 0)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := b.Ping(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Ping: %v, want an error with %q", err, tc.err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Ping took %s, past its context's 500 ms", took)
			}
		})
	}
}

// Nonsense in a transaction's answer (null results, null errors) is an
// error or nothing, never a panic.
func TestTxnAnswersWithNulls(t *testing.T) {
	for _, body := range []string{
		`{"Results":[null,{"KV":null}],"Errors":null}`,
		`{"Results":null,"Errors":[null]}`,
		`{"Results":[{"KV":{"Key":"services/web/a","Value":"MTAuMC4wLjE6ODA="}}]}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/txn" {
				http.Error(w, "unexpected "+r.URL.Path, http.StatusTeapot)
				return
			}
			if strings.Contains(body, `"Errors":[`) {
				w.WriteHeader(http.StatusConflict)
			}
			w.Write([]byte(body))
		}))
		st := &Store{client: mustClient(t, srv.URL)}
		ctx := registrytest.Context(t)
		if _, err := st.List(ctx, "services/", "registrator/"); strings.Contains(body, `"Errors":[`) != (err != nil) {
			t.Errorf("List on %s: %v", body, err)
		}
		if err := st.Commit(ctx, "", []kv.Op{{Key: "a", Value: []byte("b")}}); strings.Contains(body, `"Errors":[`) != (err != nil) {
			t.Errorf("Commit on %s: %v", body, err)
		}
		srv.Close()
	}
}

func mustClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An agent that accepts the renewals and never answers them: the renewal
// gives up after a TTL without one (the library's RenewPeriodic waited for
// ever), and the keep-alive calls lost.
func TestRenewGivesUpOnAHungAgent(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	st := &Store{client: mustClient(t, srv.URL)}
	start := time.Now()
	err := st.renew(context.Background(), "s1", 2*time.Second)
	if err == nil {
		t.Fatal("renew returned nil, want the error of the unanswered renewals")
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("renew gave up after %s, want about the TTL (2 s) and a renewal's timeout", took)
	}
}
