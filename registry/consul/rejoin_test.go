package consul

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/registrator/registrator/bridge"
)

// An agent's view of its members (as /v1/agent/members answers): while
// its gossip holds every server failed, the servers it holds failed are
// joined again, never a client, a server that left, or itself; once one
// is alive again, no more joins.
func TestKeepJoinedJoinsFailedServersOnly(t *testing.T) {
	var mu sync.Mutex
	s3 := 4 // failed
	var joins []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path == "/v1/agent/self":
			_ = json.NewEncoder(w).Encode(map[string]any{"Config": map[string]any{"NodeName": "host-a"}})
		case r.URL.Path == "/v1/agent/members":
			server := map[string]string{"role": "consul", "dc": "dc1"}
			_ = json.NewEncoder(w).Encode([]map[string]any{
				{"Name": "host-a", "Addr": "10.0.0.1", "Port": 8301, "Status": 4, "Tags": server},
				{"Name": "s2", "Addr": "10.0.0.2", "Port": 8301, "Status": s3, "Tags": server},
				{"Name": "s3", "Addr": "10.0.0.3", "Port": 8301, "Status": s3, "Tags": server},
				{"Name": "s4", "Addr": "10.0.0.4", "Port": 8301, "Status": 3, "Tags": server},
				{"Name": "c1", "Addr": "10.0.0.9", "Port": 8301, "Status": 4, "Tags": map[string]string{"role": "node"}},
			})
		case strings.HasPrefix(r.URL.Path, "/v1/agent/join/"):
			joins = append(joins, strings.TrimPrefix(r.URL.Path, "/v1/agent/join/"))
			if len(joins) == 2 {
				s3 = 1 // the joins bring them back
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse("consul://" + strings.TrimPrefix(srv.URL, "http://"))
	logger, hook := logtest.NewNullLogger()
	b, err := Open(u, bridge.BackendOptions{Rejoin: true, Log: logrus.NewEntry(logger)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.keepJoined(ctx)
	// The join, then a read that finds s3 alive again.
	deadline := time.Now().Add(4 * RejoinEvery)
	for !slices.ContainsFunc(hook.AllEntries(), func(e *logrus.Entry) bool { return strings.Contains(e.Message, "sees the server again") }) {
		if time.Now().After(deadline) {
			t.Fatalf("s3 not seen again within four reads of the members; log: %v", hook.AllEntries())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(joins, []string{"10.0.0.2:8301", "10.0.0.3:8301"}) {
		t.Errorf("joins %v, want one each of s2 and s3 (10.0.0.2:8301, 10.0.0.3:8301)", joins)
	}
}

// The servers hold this node failed (its serfHealth critical) while the
// agent's gossip holds every server alive: the agent is asked to join the
// servers (not a client, not one that left), again while the answer stays
// critical, and no more once it is passing.
func TestKeepJoinedJoinsWhenTheServersHoldTheNodeFailed(t *testing.T) {
	var mu sync.Mutex
	status := "critical"
	joins := map[string]int{}
	healthAsked, membersAsked := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path == "/v1/agent/self":
			_ = json.NewEncoder(w).Encode(map[string]any{"Config": map[string]any{"NodeName": "host-a"}})
		case r.URL.Path == "/v1/agent/members":
			membersAsked++
			server := map[string]string{"role": "consul", "dc": "dc1"}
			_ = json.NewEncoder(w).Encode([]map[string]any{
				{"Name": "host-a", "Addr": "10.0.0.1", "Port": 8301, "Status": 1},
				{"Name": "s2", "Addr": "10.0.0.2", "Port": 8301, "Status": 1, "Tags": server},
				{"Name": "s3", "Addr": "10.0.0.3", "Port": 8301, "Status": 1, "Tags": server},
				{"Name": "s4", "Addr": "10.0.0.4", "Port": 8301, "Status": 3, "Tags": server},
				{"Name": "c1", "Addr": "10.0.0.9", "Port": 8301, "Status": 1, "Tags": map[string]string{"role": "node"}},
			})
		case r.URL.Path == "/v1/health/node/host-a":
			if !r.URL.Query().Has("stale") {
				t.Errorf("health read not stale-allowed: %s", r.URL)
			}
			if status == "passing" && r.URL.Query().Get("index") == strconv.Itoa(healthAsked) {
				mu.Unlock() // a blocking query: nothing changes any more
				<-r.Context().Done()
				mu.Lock()
				return
			}
			healthAsked++
			w.Header().Set("X-Consul-Index", strconv.Itoa(healthAsked))
			_ = json.NewEncoder(w).Encode([]map[string]any{{"Node": "host-a", "CheckID": "serfHealth", "Status": status}})
		case strings.HasPrefix(r.URL.Path, "/v1/agent/join/"):
			joins[strings.TrimPrefix(r.URL.Path, "/v1/agent/join/")]++
			if joins["10.0.0.2:8301"] == 2 {
				status = "passing" // the second round of joins makes it refute
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse("consul://" + strings.TrimPrefix(srv.URL, "http://"))
	logger, hook := logtest.NewNullLogger()
	b, err := Open(u, bridge.BackendOptions{Rejoin: true, Log: logrus.NewEntry(logger)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.keepJoined(ctx)
	deadline := time.Now().Add(6 * RejoinEvery)
	for !slices.ContainsFunc(hook.AllEntries(), func(e *logrus.Entry) bool { return strings.Contains(e.Message, "hold this node alive again") }) {
		if time.Now().After(deadline) {
			t.Fatalf("the node not seen alive again; log: %v", hook.AllEntries())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// No join follows the passing answer: two more reads of the members
	// (the other loop) later, the joins are what they were.
	mu.Lock()
	m0 := membersAsked
	mu.Unlock()
	for {
		mu.Lock()
		m := membersAsked
		mu.Unlock()
		if m >= m0+2 {
			break
		}
		if time.Now().After(deadline.Add(4 * RejoinEvery)) {
			t.Fatal("the members not read twice more")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"10.0.0.2:8301": 2, "10.0.0.3:8301": 2}
	if !maps.Equal(joins, want) {
		t.Errorf("joins %v, want %v", joins, want)
	}
}

// With one server alive in the agent's gossip, a failed one is left to the
// cluster: no join, however many reads of the members.
func TestKeepJoinedLeavesOneFailedServerToTheCluster(t *testing.T) {
	var mu sync.Mutex
	var joins []string
	reads := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path == "/v1/agent/self":
			_ = json.NewEncoder(w).Encode(map[string]any{"Config": map[string]any{"NodeName": "host-a"}})
		case r.URL.Path == "/v1/agent/members":
			reads++
			server := map[string]string{"role": "consul", "dc": "dc1"}
			_ = json.NewEncoder(w).Encode([]map[string]any{
				{"Name": "s2", "Addr": "10.0.0.2", "Port": 8301, "Status": 1, "Tags": server},
				{"Name": "s3", "Addr": "10.0.0.3", "Port": 8301, "Status": 4, "Tags": server},
			})
		case strings.HasPrefix(r.URL.Path, "/v1/agent/join/"):
			joins = append(joins, strings.TrimPrefix(r.URL.Path, "/v1/agent/join/"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse("consul://" + strings.TrimPrefix(srv.URL, "http://"))
	logger, _ := logtest.NewNullLogger()
	b, err := Open(u, bridge.BackendOptions{Rejoin: true, Log: logrus.NewEntry(logger)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.keepJoined(ctx)
	deadline := time.Now().Add(6 * RejoinEvery)
	for {
		mu.Lock()
		n := reads
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the members not read three times")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(joins) > 0 {
		t.Errorf("joins %v with a server alive, want none", joins)
	}
}
