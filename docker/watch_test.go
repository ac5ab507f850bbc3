package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"

	"github.com/registrator/registrator/bridge"
)

// streamAPI is an engine that answers Info and ServerVersion and sends
// msgs on its event stream.
type streamAPI struct {
	client.APIClient
	podman   bool
	rootless bool // a rootless Podman's, as uid 1001
	msgs     []events.Message
	opts     chan events.ListOptions
}

func (a *streamAPI) Info(context.Context) (system.Info, error) {
	return system.Info{ID: "random-" + time.Now().String(), Name: "node-1"}, nil
}

func (a *streamAPI) ServerVersion(context.Context) (types.Version, error) {
	v := types.Version{Version: "20.10.24", APIVersion: "1.41"}
	if a.podman {
		v.Components = []types.ComponentVersion{{Name: "Podman Engine", Version: "4.3.1"}}
	}
	return v, nil
}

func (a *streamAPI) DaemonHost() string { return "unix:///test.sock" }

// HTTPClient answers Podman's own /info: rootful, or rootless as uid 1001
// when the API is rootless.
func (a *streamAPI) HTTPClient() *http.Client {
	return &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		body := `{"host":{"security":{"rootless":false}}}`
		if a.rootless {
			body = `{"host":{"security":{"rootless":true},"idMappings":{"uidmap":[{"container_id":0,"host_id":1001,"size":1},{"container_id":1,"host_id":100000,"size":65536}]}}}`
		}
		if !strings.HasSuffix(r.URL.Path, "/libpod/info") {
			return &http.Response{StatusCode: http.StatusNotFound, Body: io.NopCloser(strings.NewReader("page not found"))}, nil
		}
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(body))}, nil
	})}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (a *streamAPI) Events(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error) {
	a.opts <- o
	msgs := make(chan events.Message)
	go func() {
		for _, m := range a.msgs {
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return msgs, make(chan error)
}

// streamEngine is an Engine on an API whose event stream gives msgs, with
// its identity read (which says whether it is Podman).
func streamEngine(t *testing.T, podman bool, msgs ...events.Message) (*streamAPI, *Engine) {
	t.Helper()
	api := &streamAPI{podman: podman, msgs: msgs, opts: make(chan events.ListOptions, 1)}
	e := &Engine{API: api}
	if _, err := e.ID(context.Background()); err != nil {
		t.Fatal(err)
	}
	return api, e
}

func ev(typ events.Type, action events.Action, id string, attrs map[string]string) events.Message {
	return events.Message{Type: typ, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}}
}

// Under Podman the stream is not filtered by event (Podman 4.3 then drops
// die, stop and kill) and the daemon picks the actions itself, remove
// among them; a kill that names no signal does not start a drain, a stop
// does. Under Docker a kill starts a drain unless its signal is a reload.
func TestWatchPicksEventsAndDrainsOnPodmanAndDocker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		podman   bool
		msgs     []events.Message
		changed  []string
		stopping []string
		filtered bool
		swarm    bool // -swarm-services
	}{
		{
			name:   "podman",
			podman: true,
			msgs: []events.Message{
				ev(events.ContainerEventType, "create", "c0", nil),
				ev(events.ContainerEventType, events.ActionStart, "c1", nil),
				ev(events.ContainerEventType, events.ActionKill, "c2", nil), // a SIGHUP, for all we know
				ev(events.ContainerEventType, events.ActionStop, "c3", nil),
				ev(events.ContainerEventType, "cleanup", "c4", nil),
				ev(events.ContainerEventType, "remove", "c5", nil),
				ev(events.ContainerEventType, events.ActionDie, "c6", nil), // Podman 4.3's only sign of a stop
			},
			changed:  []string{"c1", "c2", "c3", "c5", "c6"},
			stopping: []string{"c3", "c6"},
		},
		{
			name: "docker",
			msgs: []events.Message{
				ev(events.ContainerEventType, events.ActionKill, "c1", map[string]string{"signal": "15"}),
				ev(events.ContainerEventType, events.ActionKill, "c2", map[string]string{"signal": "1"}),
				ev(events.ContainerEventType, events.ActionStop, "c3", nil),
				ev(events.ContainerEventType, "health_status: healthy", "c4", nil),
				ev(events.NetworkEventType, events.ActionConnect, "n1", map[string]string{"container": "c5"}),
			},
			changed:  []string{"c1", "c2", "c3", "c4", "c5"},
			stopping: []string{"c1"},
			filtered: true,
		},
		{
			name: "docker with -swarm-services: a service's events name both of its sources",
			msgs: []events.Message{
				ev(events.ServiceEventType, events.ActionCreate, "s1", map[string]string{"name": "web"}),
				ev(events.ContainerEventType, events.ActionStart, "c1", nil),
				ev(events.ServiceEventType, events.ActionRemove, "s1", map[string]string{"name": "web"}),
			},
			changed:  []string{"swarm-service:s1", "swarm-ingress:s1", "c1", "swarm-service:s1", "swarm-ingress:s1"},
			filtered: true,
			swarm:    true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, e := streamEngine(t, tc.podman, tc.msgs...)
			if tc.swarm {
				e.Swarm = &SwarmServices{API: api}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var changed []string
			done := make(chan struct{})
			go e.Watch(ctx, bridge.Handler{Connected: func() {}, Changed: func(id string) {
				mu.Lock()
				defer mu.Unlock()
				if changed = append(changed, id); len(changed) == len(tc.changed) {
					close(done)
				}
			}})
			o := <-api.opts
			if got := o.Filters.Contains("event"); got != tc.filtered {
				t.Errorf("subscription filtered by event: %v, want %v", got, tc.filtered)
			}
			if got := o.Filters.ExactMatch("type", "service"); got != tc.swarm {
				t.Errorf("subscribed to service events: %v, want %v", got, tc.swarm)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("changed %v, want %v", changed, tc.changed)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, id := range tc.changed {
				if changed[i] != id {
					t.Fatalf("changed %v, want %v", changed, tc.changed)
				}
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			var stopping []string
			for _, id := range tc.changed {
				if _, ok := e.stopping[id]; ok {
					stopping = append(stopping, id)
				}
			}
			if !slices.Equal(stopping, tc.stopping) {
				t.Errorf("draining %v, want %v", stopping, tc.stopping)
			}
		})
	}
}

// Under Podman the identity is the host's, not the random ID its API
// answers each time.
func TestIDUnderPodmanIsStable(t *testing.T) {
	e := &Engine{API: &streamAPI{podman: true}}
	a, _ := e.ID(context.Background())
	b, _ := e.ID(context.Background())
	if a != "podman@node-1" || a != b {
		t.Fatalf("IDs %q and %q, want podman@node-1 twice", a, b)
	}
}

// A rootless Podman's identity names its user (one host may run rootful
// Podman and a rootless one per user), and it takes the entries an
// earlier version marked podman@<host> for its own containers.
func TestIDUnderRootlessPodmanNamesTheUser(t *testing.T) {
	e := &Engine{API: &streamAPI{podman: true, rootless: true}}
	id, err := e.Identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != "podman-rootless-1001@node-1" {
		t.Fatalf("identity %q, want podman-rootless-1001@node-1", id)
	}
	if want := bridge.NewIdentity("podman-rootless-1001@node-1", "node-1", "").Adopting("podman@node-1"); id != want {
		t.Errorf("identity %+v, want %+v (adopting podman@node-1)", id, want)
	}
}

// Podman may send health_status before it has stored the probe's result:
// the container is read again a moment after the event.
func TestPodmanHealthEventIsReadAgainAMomentLater(t *testing.T) {
	_, e := streamEngine(t, true, ev(events.ContainerEventType, "health_status", "c1", nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var at []time.Time
	twice := make(chan struct{})
	go e.Watch(ctx, bridge.Handler{Connected: func() {}, Changed: func(id string) {
		mu.Lock()
		defer mu.Unlock()
		if at = append(at, time.Now()); len(at) == 2 {
			close(twice)
		}
	}})
	select {
	case <-twice:
	case <-time.After(5 * time.Second):
		t.Fatal("read once only")
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := at[1].Sub(at[0]); gap < podmanHealthLag/2 {
		t.Errorf("read again %s after the first, want about %s", gap, podmanHealthLag)
	}
}

// clockAPI is a streamAPI whose /info gives its call count as the clock.
type clockAPI struct {
	*streamAPI
	mu    sync.Mutex
	calls int
}

func (a *clockAPI) Info(context.Context) (system.Info, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return system.Info{ID: "engine-1", Name: "node-1", SystemTime: fmt.Sprintf("clock-%d", a.calls)}, nil
}

// The first event subscription starts at the clock of ID's /info, which
// it does not ask again; one after ID's answer has aged asks.
func TestWatchStartsAtIdentitysClock(t *testing.T) {
	for _, tc := range []struct {
		name      string
		age       time.Duration
		since     string
		infoCalls int
	}{
		{"fresh", 0, "clock-1", 1},
		{"aged", idInfoFresh + time.Second, "clock-2", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &clockAPI{streamAPI: &streamAPI{opts: make(chan events.ListOptions, 1)}}
			e := &Engine{API: api}
			if _, err := e.ID(t.Context()); err != nil {
				t.Fatal(err)
			}
			e.mu.Lock()
			e.idInfoAt = e.idInfoAt.Add(-tc.age)
			e.mu.Unlock()
			// The fake stream never ends: Watch is left to the test's end.
			go e.Watch(t.Context(), bridge.Handler{Changed: func(string) {}, Connected: func() {}})
			o := <-api.opts
			if o.Since != tc.since {
				t.Errorf("subscribed since %q, want %q", o.Since, tc.since)
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			if api.calls != tc.infoCalls {
				t.Errorf("/info asked %d times, want %d", api.calls, tc.infoCalls)
			}
		})
	}
}
