package consul

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/registrator/registrator/bridge"
)

// An agent's view of its members (as /v1/agent/members answers): only a
// server its gossip holds failed is joined again, never a client, a
// server that left, or itself; once it is alive again, no more joins.
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
				{"Name": "s2", "Addr": "10.0.0.2", "Port": 8301, "Status": 1, "Tags": server},
				{"Name": "s3", "Addr": "10.0.0.3", "Port": 8301, "Status": s3, "Tags": server},
				{"Name": "s4", "Addr": "10.0.0.4", "Port": 8301, "Status": 3, "Tags": server},
				{"Name": "c1", "Addr": "10.0.0.9", "Port": 8301, "Status": 4, "Tags": map[string]string{"role": "node"}},
			})
		case strings.HasPrefix(r.URL.Path, "/v1/agent/join/"):
			joins = append(joins, strings.TrimPrefix(r.URL.Path, "/v1/agent/join/"))
			s3 = 1 // the join brings it back
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
	if len(joins) != 1 || joins[0] != "10.0.0.3:8301" {
		t.Errorf("joins %v, want one of s3 (10.0.0.3:8301)", joins)
	}
}
