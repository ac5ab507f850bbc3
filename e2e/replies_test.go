package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// standInAgent stands in for a Consul agent, for the consul and consulkv
// backends alike: in mode "ok" it answers what a healthy agent holding
// nothing answers; in "malformed", what no agent should (an
// /v1/agent/self without the node's name, which the client library's
// NodeName panicked on; the service list cut off; nulls where objects
// belong); in "hang", it accepts every request and never answers.
type standInAgent struct {
	mu       sync.Mutex
	mode     string
	services map[string]map[string]any // what was registered, as /v1/agent/services lists it
	released chan struct{}             // closed when the test ends: held requests end
	addr     string
}

func (a *standInAgent) set(mode string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mode = mode
}

func (a *standInAgent) current() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode
}

// hold keeps a request unanswered until the client gives up or the test
// ends.
func (a *standInAgent) hold(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-a.released:
	}
}

const standInSession = "8c5a1f4e-0000-4000-8000-000000000001"

func startStandInAgent(t *testing.T) *standInAgent {
	t.Helper()
	a := &standInAgent{mode: "ok", released: make(chan struct{}), services: map[string]map[string]any{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := a.current()
		if mode == "hang" {
			a.hold(r)
			return
		}
		bad := mode == "malformed"
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Consul-Index", "7")
		w.Header().Set("X-Consul-KnownLeader", "true")
		w.Header().Set("X-Consul-LastContact", "0")
		answer := func(ok, malformed string) {
			if bad {
				_, _ = io.WriteString(w, malformed)
			} else {
				_, _ = io.WriteString(w, ok)
			}
		}
		p := r.URL.Path
		switch {
		case p == "/v1/status/leader":
			answer(`"127.0.0.1:8300"`, `"127.0.0.1:8300"`)
		case p == "/v1/agent/self":
			answer(`{"Config":{"NodeName":"standin"}}`, `{"Config":{}}`)
		case p == "/v1/agent/services":
			a.mu.Lock()
			list, _ := json.Marshal(a.services)
			a.mu.Unlock()
			answer(string(list), `{"x":{"ID":"x","Service":"web","Po`)
		case p == "/v1/agent/service/register":
			var reg struct {
				ID, Name, Address string
				Port              int
				Tags              []string
				Meta              map[string]string
			}
			if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			a.mu.Lock()
			a.services[reg.ID] = map[string]any{"ID": reg.ID, "Service": reg.Name, "Address": reg.Address, "Port": reg.Port, "Tags": reg.Tags, "Meta": reg.Meta}
			a.mu.Unlock()
		case strings.HasPrefix(p, "/v1/agent/service/deregister/"):
			a.mu.Lock()
			delete(a.services, strings.TrimPrefix(p, "/v1/agent/service/deregister/"))
			a.mu.Unlock()
		case strings.HasPrefix(p, "/v1/health/node/"):
			answer(`[{"Node":"standin","CheckID":"serfHealth","Status":"passing"}]`, `[null,{"CheckID":null}]`)
		case strings.HasPrefix(p, "/v1/kv/"):
			w.WriteHeader(http.StatusNotFound)
		case p == "/v1/session/create":
			answer(`{"ID":"`+standInSession+`"}`, `{"ID":"`+standInSession+`"}`)
		case strings.HasPrefix(p, "/v1/session/info/"), strings.HasPrefix(p, "/v1/agent/service/") && r.Method == http.MethodGet:
			if r.URL.Query().Get("index") != "" || r.URL.Query().Get("hash") != "" {
				a.hold(r) // a blocking query: nothing changes
				return
			}
			if strings.HasPrefix(p, "/v1/agent/service/") {
				a.mu.Lock()
				svc, ok := a.services[strings.TrimPrefix(p, "/v1/agent/service/")]
				one, _ := json.Marshal(svc)
				a.mu.Unlock()
				if !ok {
					http.Error(w, "unknown service", http.StatusNotFound)
					return
				}
				w.Header().Set("X-Consul-ContentHash", "standin")
				answer(string(one), `{"ID":`)
				return
			}
			answer(`[{"ID":"`+standInSession+`","TTL":"30s"}]`, `[null]`)
		case strings.HasPrefix(p, "/v1/session/renew/"):
			answer(`[{"ID":"`+standInSession+`","TTL":"30s"}]`, `[null]`)
		case p == "/v1/txn":
			if bad {
				w.WriteHeader(http.StatusConflict)
			}
			answer(`{"Results":[],"Errors":null}`, `{"Results":[null,{"KV":null}],"Errors":[null]}`)
		default: // registrations, deregistrations, checks, session destroy
			answer(`{}`, `{`)
		}
	}))
	t.Cleanup(func() { close(a.released); srv.Close() })
	a.addr = strings.TrimPrefix(srv.URL, "http://")
	return a
}

// hangingProxy forwards TCP to a server until told to hang: from then on
// it accepts connections and forwards nothing either way, on the
// connections it had and the new ones, as a server that froze would.
type hangingProxy struct {
	addr     string
	mu       sync.Mutex
	hung     bool
	released chan struct{}
}

func (p *hangingProxy) hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
}

func (p *hangingProxy) isHung() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hung
}

func startHangingProxy(t *testing.T, target string) *hangingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hangingProxy{addr: l.Addr().String(), released: make(chan struct{})}
	var conns sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer conns.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 && p.isHung() {
				<-p.released // hold what came, for ever
				return
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = dst.(*net.TCPConn).CloseWrite()
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				if p.isHung() {
					<-p.released
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				conns.Add(2)
				go pipe(up, c)
				go pipe(c, up)
				<-p.released
			}()
		}
	}()
	t.Cleanup(func() { close(p.released); l.Close() })
	return p
}

// ready asks /ready, which must answer within 3 seconds, for its reasons.
func ready(addr string) ([]string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + "/ready")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct{ Reasons []string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	return r.Reasons, nil
}

// A stand-in Consul agent that answers malformed replies and then hangs,
// and an etcd that freezes, beside a real Consul: the daemon keeps
// running, /health and /ready answer within seconds throughout, /ready
// names each backend that fails, and the real Consul keeps getting the
// containers' registrations.
func TestStandInsAnsweringMalformedRepliesAndHanging(t *testing.T) {
	clean(t)
	fake := startStandInAgent(t)
	frozen := startHangingProxy(t, etcdSrv.Addr)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	real, standIn, standInKV, standInEtcd := "consul://"+agent.Addr, "consul://"+fake.addr, "consulkv://"+fake.addr+"/standin", "etcd://"+frozen.addr+"/standin"
	d := startDaemonURIs(t, []string{real, standIn, standInKV, standInEtcd}, "-http-addr", httpAddr, "-resync", "2")

	// serving checks, for a while, that the daemon runs and that /health
	// and /ready answer within 3 s each time.
	serving := func(for_ time.Duration) {
		t.Helper()
		c := http.Client{Timeout: 3 * time.Second}
		for end := time.Now().Add(for_); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if d.gone() {
				t.Fatalf("the daemon exited: %v", d.cmd.ProcessState)
			}
			resp, err := c.Get("http://" + httpAddr + "/health")
			if err != nil {
				t.Fatalf("/health: %v", err)
			}
			resp.Body.Close()
			if _, err := ready(httpAddr); err != nil {
				t.Fatalf("/ready: %v", err)
			}
		}
	}
	// failing waits until /ready says that the backend of each name is
	// unreachable, with the text given, and not the real Consul.
	failing := func(want map[string]string) {
		t.Helper()
		eventually(t, settle, func() error {
			reasons, err := ready(httpAddr)
			if err != nil {
				return err
			}
			all := strings.Join(reasons, "\n")
			if strings.Contains(all, "consul://"+agent.Addr+": unreachable") {
				t.Fatalf("the real Consul is reported unreachable:\n%s", all)
			}
			for name, text := range want {
				found := false
				for _, r := range reasons {
					found = found || strings.HasPrefix(r, name+": unreachable") && strings.Contains(r, text)
				}
				if !found {
					return fmt.Errorf("/ready does not say that %s is unreachable (%s):\n%s", name, text, all)
				}
			}
			return nil
		})
	}

	run(t, "--name", "before", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("before", "80"))
	serving(2 * time.Second)

	// Malformed replies: the consulkv backend's ping reads an
	// /v1/agent/self without the node's name, the consul backend's list
	// is cut off.
	fake.set("malformed")
	run(t, "--name", "during-malformed", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("before", "80"), id("during-malformed", "80"))
	failing(map[string]string{"consulkv://" + fake.addr + "/standin": "names no node"})
	d.warned(t, "consul: list services", "unexpected end of JSON input")
	serving(6 * time.Second) // more than a round of pings (5 s)

	// Hangs: the stand-in agent accepts and never answers, etcd freezes.
	fake.set("hang")
	frozen.hang()
	run(t, "--name", "during-hang", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("before", "80"), id("during-malformed", "80"), id("during-hang", "80"))
	failing(map[string]string{
		"consul://" + fake.addr:                "",
		"consulkv://" + fake.addr + "/standin": "",
		"etcd://" + frozen.addr + "/standin":   "",
	})
	serving(6 * time.Second)

	docker(t, "rm", "-f", "before")
	expectIDs(t, id("during-malformed", "80"), id("during-hang", "80"))
	if strings.Contains(d.out.String(), "panic:") {
		t.Fatal("the daemon's log holds a panic")
	}
	if d.gone() {
		t.Fatal(errors.New("the daemon exited"))
	}
}
