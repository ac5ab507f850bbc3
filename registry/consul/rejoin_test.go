package consul

import (
	"context"
	"encoding/json"
	"fmt"
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

// fakeAgent is a Consul agent named host-a as keepJoined sees it: the
// members it answers, this node's serfHealth (health; "" answers 404), the
// joins it was asked for and its reads of the members, each under mu; join,
// if set, runs at each join (under mu).
type fakeAgent struct {
	mu      sync.Mutex
	members []map[string]any
	health  string
	joins   []string
	reads   int         // of the members
	failed  []time.Time // when each read of the node's health failed
	join    func(addr string)
	log     *logtest.Hook
}

var serverTags = map[string]string{"role": "consul", "dc": "dc1"}

// member is one of the agent's members; a server named sN is at 10.0.0.N.
func member(name string, status int, server bool) map[string]any {
	addr := "10.0.0.1"
	if n, ok := strings.CutPrefix(name, "s"); ok {
		addr = "10.0.0." + n
	}
	m := map[string]any{"Name": name, "Addr": addr, "Port": 8301, "Status": status}
	if server {
		m["Tags"] = serverTags
	}
	return m
}

// start serves the agent and runs keepJoined against it until the test
// ends.
func (a *fakeAgent) start(t *testing.T) {
	t.Helper()
	healthIndex := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		switch {
		case r.URL.Path == "/v1/agent/self":
			_ = json.NewEncoder(w).Encode(map[string]any{"Config": map[string]any{"NodeName": "host-a"}})
		case r.URL.Path == "/v1/agent/members":
			a.reads++
			_ = json.NewEncoder(w).Encode(a.members)
		case r.URL.Path == "/v1/health/node/host-a" && a.health == "error":
			a.failed = append(a.failed, time.Now())
			http.Error(w, "rpc error getting client: failed to get conn: dial tcp: connect: no route to host", http.StatusInternalServerError)
		case r.URL.Path == "/v1/health/node/host-a" && a.health != "":
			if !r.URL.Query().Has("stale") {
				t.Errorf("health read not stale-allowed: %s", r.URL)
			}
			if a.health == "passing" && r.URL.Query().Get("index") == strconv.Itoa(healthIndex) {
				a.mu.Unlock() // a blocking query: nothing changes any more
				<-r.Context().Done()
				a.mu.Lock()
				return
			}
			healthIndex++
			w.Header().Set("X-Consul-Index", strconv.Itoa(healthIndex))
			_ = json.NewEncoder(w).Encode([]map[string]any{{"Node": "host-a", "CheckID": "serfHealth", "Status": a.health}})
		case strings.HasPrefix(r.URL.Path, "/v1/agent/join/"):
			addr := strings.TrimPrefix(r.URL.Path, "/v1/agent/join/")
			a.joins = append(a.joins, addr)
			if a.join != nil {
				a.join(addr)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	u, _ := url.Parse("consul://" + strings.TrimPrefix(srv.URL, "http://"))
	logger, hook := logtest.NewNullLogger()
	a.log = hook
	b, err := Open(u, bridge.BackendOptions{Rejoin: true, Log: logrus.NewEntry(logger)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(srv.Close)
	t.Cleanup(cancel) // first: the blocked queries end, then the server
	go b.keepJoined(ctx)
}

// until waits, up to reads more reads of the members than now (each
// RejoinEvery) and one more, for cond (under mu) to hold.
func (a *fakeAgent) until(t *testing.T, reads int, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Duration(reads+1) * RejoinEvery)
	for {
		a.mu.Lock()
		ok := cond()
		a.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %d reads of the members; log: %v", what, reads, a.log.AllEntries())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *fakeAgent) logged(text string) func() bool {
	return func() bool {
		return slices.ContainsFunc(a.log.AllEntries(), func(e *logrus.Entry) bool { return strings.Contains(e.Message, text) })
	}
}

// An agent's view of its members (as /v1/agent/members answers): while
// its gossip holds every server failed, the servers it holds failed are
// joined again, never a client, a server that left, or itself; once one
// is alive again, no more joins.
func TestKeepJoinedJoinsFailedServersOnly(t *testing.T) {
	a := &fakeAgent{members: []map[string]any{
		member("host-a", memberFailed, true),
		member("s2", memberFailed, true),
		member("s3", memberFailed, true),
		member("s4", memberLeft, true),
		member("c9", memberFailed, false),
	}}
	a.join = func(string) {
		if len(a.joins) == 2 { // the joins bring them back
			a.members[1]["Status"], a.members[2]["Status"] = 1, 1
		}
	}
	a.start(t)
	a.until(t, 4, "the servers seen again", a.logged("sees the server again"))
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Equal(a.joins, []string{"10.0.0.2:8301", "10.0.0.3:8301"}) {
		t.Errorf("joins %v, want one each of s2 and s3 (10.0.0.2:8301, 10.0.0.3:8301)", a.joins)
	}
}

// The servers hold this node failed (its serfHealth critical) while the
// agent's gossip holds every server alive: the agent is asked to join the
// servers (not a client, not one that left), again while the answer stays
// critical, and no more once it is passing.
func TestKeepJoinedJoinsWhenTheServersHoldTheNodeFailed(t *testing.T) {
	a := &fakeAgent{health: "critical", members: []map[string]any{
		member("host-a", 1, false),
		member("s2", 1, true),
		member("s3", 1, true),
		member("s4", memberLeft, true),
		member("c9", 1, false),
	}}
	a.join = func(string) {
		if len(a.joins) == 4 { // the second round of joins makes it refute
			a.health = "passing"
		}
	}
	a.start(t)
	a.until(t, 5, "the node alive again", a.logged("hold this node alive again"))
	// No join follows the passing answer: two more reads of the members
	// (the other loop) later, the joins are what they were.
	a.mu.Lock()
	reads := a.reads
	a.mu.Unlock()
	a.until(t, 2, "two more reads of the members", func() bool { return a.reads >= reads+2 })
	a.mu.Lock()
	defer a.mu.Unlock()
	got := map[string]int{}
	for _, j := range a.joins {
		got[j]++
	}
	if want := map[string]int{"10.0.0.2:8301": 2, "10.0.0.3:8301": 2}; !maps.Equal(got, want) {
		t.Errorf("joins %v, want %v", got, want)
	}
}

// With one server alive in the agent's gossip, a failed one is left to the
// cluster: no join, however many reads of the members.
func TestKeepJoinedLeavesOneFailedServerToTheCluster(t *testing.T) {
	a := &fakeAgent{members: []map[string]any{
		member("s2", 1, true),
		member("s3", memberFailed, true),
	}}
	a.start(t)
	a.until(t, 3, "three reads of the members", func() bool { return a.reads >= 3 })
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.joins) > 0 {
		t.Errorf("joins %v with a server alive, want none", a.joins)
	}
}

// While the agent cannot read the node's health from its servers (cut off
// from them), the read is asked for again every heldFailedProbe, more
// often than the members are read (RejoinEvery): the first read that works
// after a reconnection finds the node held failed, and the join follows it
// at once. The gaps between failed reads are judged by their median, so
// that one read a loaded machine held up does not decide.
func TestKeepJoinedAsksAgainSoonWhileTheServersCannotBeRead(t *testing.T) {
	a := &fakeAgent{health: "error", members: []map[string]any{
		member("host-a", 1, false),
		member("s2", 1, true),
	}}
	a.start(t)
	const n = 7
	a.until(t, 8, fmt.Sprintf("%d failed reads of the node's health", n), func() bool { return len(a.failed) >= n })
	a.mu.Lock()
	var gaps []time.Duration
	for i := 1; i < n; i++ {
		gaps = append(gaps, a.failed[i].Sub(a.failed[i-1]))
	}
	a.health = "critical" // the link is back; the servers hold the node failed
	a.mu.Unlock()
	slices.Sort(gaps)
	if median := gaps[len(gaps)/2]; median >= RejoinEvery/2 {
		t.Errorf("failed reads of the node's health %v apart (median %v), want under half of RejoinEvery (%v)", gaps, median, RejoinEvery)
	}
	a.until(t, 1, "a join after the first read that works", func() bool { return len(a.joins) > 0 })
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Equal(a.joins[:1], []string{"10.0.0.2:8301"}) {
		t.Errorf("joins %v, want s2 (10.0.0.2:8301)", a.joins)
	}
}
