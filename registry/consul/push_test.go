package consul

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/registrytest"
)

// cutAgent is an agent that took registrations while cut off from its
// servers: /v1/agent/services answers held, the catalog answers catalog
// until a registration comes (the agent passes on what it holds), or
// fails while down. Every registration's query and body are kept.
type cutAgent struct {
	mu      sync.Mutex
	held    map[string]*api.AgentService
	catalog map[string]*api.AgentService
	down    bool
	regs    []string // "<query> <body>"
	reads   int      // of the catalog
}

func (a *cutAgent) serve(t *testing.T) (*Backend, *logtest.Hook) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		switch r.URL.Path {
		case "/v1/agent/services":
			_ = json.NewEncoder(w).Encode(a.held)
		case "/v1/catalog/node-services/host-a":
			a.reads++
			if a.down {
				http.Error(w, "No known Consul servers", http.StatusInternalServerError)
				return
			}
			list := api.CatalogNodeServiceList{Node: &api.Node{Node: "host-a"}}
			for _, s := range a.catalog {
				list.Services = append(list.Services, s)
			}
			_ = json.NewEncoder(w).Encode(list)
		case "/v1/agent/service/register":
			body, _ := io.ReadAll(r.Body)
			a.regs = append(a.regs, r.URL.RawQuery+" "+strings.TrimSpace(string(body)))
			a.catalog = a.held
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse("consul://" + strings.TrimPrefix(srv.URL, "http://"))
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	b, err := Open(u, bridge.BackendOptions{Log: logrus.NewEntry(logger)})
	if err != nil {
		t.Fatal(err)
	}
	return b, hook
}

// held is s as the agent lists it after Register.
func held(s bridge.Service) *api.AgentService {
	reg, _ := registration(s)
	return &api.AgentService{ID: reg.ID, Service: reg.Name, Port: reg.Port, Address: reg.Address, Tags: reg.Tags, Meta: reg.Meta}
}

// waitPushed waits for the running pushPending to end.
func waitPushed(t *testing.T, b *Backend) {
	t.Helper()
	deadline := time.Now().Add(pushTries * 2 * time.Second)
	for b.pushing.Load() {
		if time.Now().After(deadline) {
			t.Fatal("pushPending still runs")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The agent holds two services of ours and an unmarked one; the servers'
// catalog lacks one of ours and still has one the daemon deregistered.
// While the servers cannot be read, nothing is written; then the missing
// entry is registered twice, once with its revision marked (which the
// agent must pass on) and once exactly as it was registered, without
// replacing checks (a maintenance mode set meanwhile stays), and nothing
// more once the catalog is equal.
func TestPushPendingWritesAMissingEntryTwiceUntilTheServersHoldIt(t *testing.T) {
	web := bridge.Service{ID: "host-a:web:80", Name: "web", Address: "10.0.0.1", Port: 32768, Container: "c1", Owner: "o",
		Checks: []bridge.Check{{HTTP: "http://10.0.0.1:32768/", Interval: "10s"}}}
	api1 := bridge.Service{ID: "host-a:api:80", Name: "api", Address: "10.0.0.1", Port: 32769, Container: "c2", Owner: "o"}
	gone := bridge.Service{ID: "host-a:old:80", Name: "old", Address: "10.0.0.1", Port: 32770, Container: "c3", Owner: "o"}
	a := &cutAgent{down: true,
		held:    map[string]*api.AgentService{web.ID: held(web), api1.ID: held(api1), "other": {ID: "other", Service: "other"}},
		catalog: map[string]*api.AgentService{web.ID: held(web), gone.ID: held(gone), "other": {ID: "other", Service: "other"}},
	}
	b, log := a.serve(t)
	b.sent[web.ID] = web
	b.sent[api1.ID] = api1
	b.pushPending(t.Context(), "host-a", "test")
	waitPushed(t, b)
	a.mu.Lock()
	if a.reads != pushTries || len(a.regs) != 0 {
		t.Fatalf("with the servers out of reach: %d reads of the catalog and registrations %v, want %d reads and none", a.reads, a.regs, pushTries)
	}
	a.down, a.reads = false, 0
	a.mu.Unlock()

	b.pushPending(t.Context(), "host-a", "test")
	waitPushed(t, b)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.regs) != 2 {
		t.Fatalf("registrations %v, want two of %s", a.regs, api1.ID)
	}
	marked := registrationJSON(t, api1)
	marked["Meta"].(map[string]any)[MetaRevision] = api1.Fingerprint() + "+push"
	for i, want := range []map[string]any{marked, registrationJSON(t, api1)} {
		query, body, _ := strings.Cut(a.regs[i], " ")
		if strings.Contains(query, "replace-existing-checks") {
			t.Errorf("registration %d replaces checks (%q): it would end a maintenance mode", i+1, query)
		}
		var got map[string]any
		_ = json.Unmarshal([]byte(body), &got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("registration %d (-want +got):\n%s", i+1, diff)
		}
	}
	if a.reads != 2 {
		t.Errorf("%d reads of the catalog, want 2 (one before the writes, one after)", a.reads)
	}
	if !slices.ContainsFunc(log.AllEntries(), func(e *logrus.Entry) bool { return strings.Contains(e.Message, "hold what the agent holds again") }) {
		t.Errorf("no word that the servers hold what the agent holds; log %v", log.AllEntries())
	}
}

// registrationJSON is what Register sends for s, as JSON decodes it.
func registrationJSON(t *testing.T, s bridge.Service) map[string]any {
	t.Helper()
	reg, _ := registration(s)
	b, err := json.Marshal(reg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// When the catalog differs only by an entry the agent no longer holds (its
// removal not passed on), one service of ours is registered again exactly
// as it was, which makes the agent pass the removal on.
func TestPushPendingPassesOnARemovalWithOneWrite(t *testing.T) {
	web := bridge.Service{ID: "host-a:web:80", Name: "web", Address: "10.0.0.1", Port: 32768, Container: "c1", Owner: "o"}
	gone := bridge.Service{ID: "host-a:old:80", Name: "old", Address: "10.0.0.1", Port: 32770, Container: "c3", Owner: "o"}
	a := &cutAgent{held: map[string]*api.AgentService{web.ID: held(web)},
		catalog: map[string]*api.AgentService{web.ID: held(web), gone.ID: held(gone)}}
	b, _ := a.serve(t)
	b.sent[web.ID] = web
	b.pushPending(t.Context(), "host-a", "test")
	waitPushed(t, b)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.regs) != 1 {
		t.Fatalf("registrations %v, want one", a.regs)
	}
	var got map[string]any
	_, body, _ := strings.Cut(a.regs[0], " ")
	_ = json.Unmarshal([]byte(body), &got)
	if diff := cmp.Diff(registrationJSON(t, web), got); diff != "" {
		t.Errorf("the registration is not the service as registered (-want +got):\n%s", diff)
	}
}

// A service whose entry in the agent is not what this backend last
// registered (changed since by someone else) is not written back; nor is
// anything while a Register or Deregister runs, which passes the agent's
// changes on itself and must not be overtaken by an older version.
func TestNudgeWritesNothingStaleNorBesideAWrite(t *testing.T) {
	web := bridge.Service{ID: "host-a:web:80", Name: "web", Address: "10.0.0.1", Port: 32768, Container: "c1", Owner: "o"}
	changed := held(web)
	changed.Meta = map[string]string{MetaOwner: "o", MetaRevision: "someone else's"}
	a := &cutAgent{held: map[string]*api.AgentService{web.ID: changed}, catalog: map[string]*api.AgentService{}}
	b, _ := a.serve(t)
	b.sent[web.ID] = web
	if n, err := b.nudge(t.Context(), map[string]string{web.ID: "someone else's"}, []string{web.ID}); n != 0 || err != nil {
		t.Errorf("nudge wrote %d entries (err %v) over a changed entry", n, err)
	}
	b.writes.RLock()
	n, err := b.nudge(t.Context(), map[string]string{web.ID: web.Fingerprint()}, []string{web.ID})
	b.writes.RUnlock()
	if n != 0 || err != nil {
		t.Errorf("nudge wrote %d entries (err %v) while a write ran", n, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.regs) != 0 {
		t.Errorf("registrations %v, want none", a.regs)
	}
}

// On a real agent, what users see stays as it was: the service, its
// check's status and a maintenance mode set by hand, after both kinds of
// nudge; and after the one that registers a service again unchanged, also
// the catalog's indexes (nothing reached the servers).
func TestNudgeChangesNothingOnARealAgent(t *testing.T) {
	b := emptyAgent(t)
	ctx := registrytest.Context(t)
	s := bridge.Service{ID: "h:web:80", Name: "web", Address: "127.0.0.1", Port: 80, Container: "c1", Owner: "o",
		Checks: []bridge.Check{{TTL: "1h", InitialStatus: api.HealthCritical}}}
	if err := b.Register(ctx, s); err != nil {
		t.Fatal(err)
	}
	c := agent.Client()
	if err := c.Agent().UpdateTTL("service:h:web:80", "fine", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().EnableServiceMaintenance(s.ID, "by hand"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, ctx, true)
	if before["check _service_maintenance:h:web:80"] == "" || before["check service:h:web:80"] != "passing fine" || before["catalog h:web:80"] == "" {
		t.Fatalf("before the nudge %v: the test expects the maintenance check, the passing check and the catalog entry, or it proves nothing", before)
	}
	local := map[string]string{s.ID: s.Fingerprint()}
	if n, err := b.nudge(ctx, local, []string{"h:gone:80"}); n != 1 || err != nil {
		t.Fatalf("nudge for a removal: %d written, err %v; want 1", n, err)
	}
	if diff := cmp.Diff(before, snapshot(t, ctx, true)); diff != "" {
		t.Errorf("registering again unchanged changed what the agent and the catalog hold (-before +after):\n%s", diff)
	}
	before = snapshot(t, ctx, false)
	if n, err := b.nudge(ctx, local, []string{s.ID}); n != 1 || err != nil {
		t.Fatalf("nudge for a missing entry: %d written, err %v; want 1", n, err)
	}
	if diff := cmp.Diff(before, snapshot(t, ctx, false)); diff != "" {
		t.Errorf("writing the entry twice changed what the agent and the catalog hold (-before +after):\n%s", diff)
	}
}

// snapshot is the test agent's checks with their statuses, and the
// catalog's entries for web, with their indexes or without.
func snapshot(t *testing.T, ctx context.Context, indexes bool) map[string]string {
	t.Helper()
	c := agent.Client()
	out := map[string]string{}
	checks, err := c.Agent().ChecksWithFilterOpts("", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for id, ch := range checks {
		out["check "+id] = ch.Status + " " + ch.Output
	}
	svcs, _, err := c.Catalog().Service("web", "", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if !indexes {
			s.CreateIndex, s.ModifyIndex = 0, 0
		}
		b, _ := json.Marshal(s)
		out["catalog "+s.ServiceID] = string(b)
	}
	return out
}
