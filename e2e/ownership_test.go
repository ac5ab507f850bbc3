package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// serviceWatch records every state of one of the agent's services, by a
// blocking query on it, from before the test acts until it ends: a
// change that came and went is seen too. A missing service is recorded as
// a nil.
type serviceWatch struct {
	mu     sync.Mutex
	states []*api.AgentService
}

func watchService(t *testing.T, id string) *serviceWatch {
	t.Helper()
	w := &serviceWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		first := started // closed after the first answer
		hash := ""
		for ctx.Err() == nil {
			s, meta, err := agent.Client().Agent().Service(id, (&api.QueryOptions{WaitHash: hash, WaitTime: 10 * time.Second}).WithContext(ctx))
			var se api.StatusError
			switch {
			case errors.As(err, &se) && se.Code == http.StatusNotFound:
				s, hash = nil, ""
			case err != nil:
				time.Sleep(20 * time.Millisecond)
				continue
			default:
				hash = meta.LastContentHash
			}
			w.mu.Lock()
			if n := len(w.states); n == 0 || !sameService(w.states[n-1], s) {
				w.states = append(w.states, s)
			}
			w.mu.Unlock()
			if first != nil {
				close(first)
				first = nil
			}
			if s == nil { // a 404 does not block: poll
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}()
	<-started
	return w
}

func sameService(a, b *api.AgentService) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Service == b.Service && a.Address == b.Address && a.Port == b.Port &&
		a.Meta["registrator-owner"] == b.Meta["registrator-owner"] && a.Meta["registrator-container"] == b.Meta["registrator-container"]
}

func (w *serviceWatch) seen() []*api.AgentService {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*api.AgentService{}, w.states...)
}

func describeStates(states []*api.AgentService) string {
	out := ""
	for _, s := range states {
		if s == nil {
			out += " [missing]"
			continue
		}
		out += fmt.Sprintf(" [%s at %s:%d owner %q]", s.Service, s.Address, s.Port, s.Meta["registrator-owner"])
	}
	return out
}

// A service registered on the agent by hand (vault) and a container that
// claims its ID: the container's service is not registered, the daemon
// says so once, naming the container and the holder, /v1/services and
// explain show it held, and vault is never changed, not even for a moment, nor removed
// when the container goes.
func TestForeignServiceIsNeitherTakenNorRemoved(t *testing.T) {
	clean(t)
	vault := &api.AgentServiceRegistration{ID: "vault", Name: "vault", Address: "127.0.0.7", Port: 8200}
	if err := agent.Client().Agent().ServiceRegister(vault); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Client().Agent().ServiceDeregister("vault") })
	watch := watchService(t, "vault")

	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	consul := "consul://" + agent.Addr
	d := startDaemonURIs(t, []string{consul}, "-http-addr", addr, "-resync", "1")
	run(t, "--name", "impostor", "-p", "127.0.0.1::80", "-e", "SERVICE_ID=vault", "-e", "SERVICE_NAME=vault", imgSvc, "80")
	run(t, "--name", "fine", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("fine", "80"))
	d.warned(t, "impostor", "vault", "held by service vault, an entry without registrator's mark")
	d.waitPasses(t, 3)
	if n := d.lines("level=warning", "held by"); n != 1 {
		t.Errorf("%d warnings about the held entry after 3 passes, want 1", n)
	}

	var status serviceStatus
	if code, err := getJSON("http://"+addr+"/v1/services", &status); err != nil || code != 200 {
		t.Fatalf("/v1/services: %d %v", code, err)
	}
	held := false
	for _, c := range status {
		for _, s := range c.Services {
			if c.Name == "impostor" && s.ID == "vault" && s.Backends[consul].State == "held" {
				held = true
			}
		}
	}
	if !held {
		t.Errorf("/v1/services does not show impostor's vault as held: %+v", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, daemonBin, "explain", "-http-addr", addr, "impostor").CombinedOutput()
	if want := "the daemon: vault in " + consul + ": held: the entry is held by service vault"; err != nil || !strings.Contains(string(out), want) {
		t.Errorf("explain (%v) lacks %q:\n%s", err, want, out)
	}
	m, err := scrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := metric(m, "registrator_services", `backend="`+consul+`"`, `state="held"`); got != 1 {
		t.Errorf("registrator_services{state=\"held\"} = %v, want 1", got)
	}

	docker(t, "rm", "-f", "impostor")
	d.waitPasses(t, 3)
	states := watch.seen()
	if len(states) != 1 || states[0] == nil || states[0].Address != "127.0.0.7" || states[0].Port != 8200 || states[0].Meta["registrator-owner"] != "" {
		t.Errorf("vault went through%s; want it as registered by hand, and nothing else, throughout", describeStates(states))
	}
}

// Swapping gliderlabs/registrator for this daemon in place: registrator's
// unmarked entry of a running container is exactly what the daemon would
// register, so the daemon, started with -cleanup, takes it over where it
// is. The service is present at every moment, and ends marked as ours.
func TestSwapFromRegistratorKeepsTheServiceThroughout(t *testing.T) {
	clean(t)
	p := freePort(t)
	run(t, "--name", "legacy", "-p", pub(p, "80"), imgSvc, "80")
	sid := id("legacy", "80")
	// What registrator wrote for it: no mark.
	if err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{ID: sid, Name: "svc", Address: "127.0.0.1", Port: p}); err != nil {
		t.Fatal(err)
	}
	watch := watchService(t, sid)
	d := startDaemon(t, "-cleanup", "-resync", "1")
	expectIDs(t, sid)
	d.waitPasses(t, 2)
	states := watch.seen()
	for _, s := range states {
		if s == nil {
			t.Fatalf("the service was missing at some moment:%s", describeStates(states))
		}
	}
	if last := states[len(states)-1]; last.Meta["registrator-owner"] == "" || last.Port != p {
		t.Errorf("the service went through%s; want it marked as the daemon's in the end", describeStates(states))
	}
	if n := d.lines("held by"); n != 0 {
		t.Errorf("the daemon logged %d lines about a held entry, want none", n)
	}
}
