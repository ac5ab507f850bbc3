package e2e

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Registrator exited when the engine restarted. The daemon must ride it out,
// reconnect, and leave the registry equal to what runs afterwards.
func TestEngineRestart(t *testing.T) {
	clean(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	d := startDaemon(t, "-http-addr", addr)
	pa, pb := freePort(t), freePort(t)
	run(t, "--name", "comes-back", "--restart", "always", "-p", pub(pa, "80"), imgSvc, "80")
	run(t, "--name", "stays-down", "-p", pub(pb, "80"), imgSvc, "80")
	expectIDs(t, id("comes-back", "80"), id("stays-down", "80"))

	start := time.Now()
	restartEngine(t)
	t.Logf("engine restarted in %s", time.Since(start))
	expect(t, map[string]svc{id("comes-back", "80"): {Name: "svc", Address: "127.0.0.1", Port: pa}})
	t.Logf("registry equal to the running containers %s after the restart began", time.Since(start))
	if d.gone() {
		t.Fatal("the daemon exited when the engine restarted")
	}
	// The event stream is back: a new container is seen.
	run(t, "--name", "after", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("comes-back", "80"), id("after", "80"))
	m, err := scrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	if r, up := metric(m, "registrator_event_stream_reconnects_total"), metric(m, "registrator_docker_up"); r < 1 || up != 1 {
		t.Errorf("after the engine restart: reconnects %v, docker_up %v; want at least 1 and 1", r, up)
	}
}

// A Consul dev agent that restarts has lost every registration; with the
// default flags (-resync 30) they come back within 5 s: the daemon notices
// the restart itself.
func TestConsulAgentRestart(t *testing.T) {
	clean(t)
	d := startDaemon(t)
	p := freePort(t)
	run(t, "--name", "survivor", "-p", pub(p, "80"), "-e", "SERVICE_CHECK_TTL=1h", imgSvc, "80")
	expectIDs(t, id("survivor", "80"))
	registrations := strings.Count(d.out.String(), "msg=\"registered svc")
	restarting := time.Now()
	if err := agent.Restart(); err != nil {
		t.Fatal(err)
	}
	// The daemon may have put the service back before Restart returned:
	// what shows that the agent came back empty is a second registration.
	eventually(t, settle, func() error {
		if n := strings.Count(d.out.String(), "msg=\"registered svc"); n <= registrations {
			return errors.New("not registered again yet")
		}
		return nil
	})
	expect(t, map[string]svc{id("survivor", "80"): {Name: "svc", Address: "127.0.0.1", Port: p}})
	if took := time.Since(restarting); took > 5*time.Second {
		t.Errorf("registrations back %s after the agent was restarted, more than 5 s (the resync period is 30 s)", took)
	} else {
		t.Logf("registrations back %s after the agent was restarted (stopped, started empty, answering)", took)
	}
	if len(checks(t, id("survivor", "80"))) != 1 {
		t.Error("the check did not come back with the service")
	}
	if d.gone() {
		t.Fatal("the daemon exited")
	}
}

// A daemon killed with -9 leaves its entries; containers removed while it was
// down are deregistered when it starts again, without -cleanup.
func TestKill9AndRestart(t *testing.T) {
	clean(t)
	d := startDaemon(t)
	for _, n := range []string{"removed-while-down", "stopped-while-down", "untouched"} {
		run(t, "--name", n, "-p", "127.0.0.1::80", imgSvc, "80")
	}
	expectIDs(t, id("removed-while-down", "80"), id("stopped-while-down", "80"), id("untouched", "80"))
	before := modifyIndex(t, "svc", id("untouched", "80"))
	d.kill9(t)

	docker(t, "rm", "-f", "removed-while-down")
	docker(t, "stop", "stopped-while-down")
	run(t, "--name", "started-while-down", "-p", "127.0.0.1::80", imgSvc, "80")
	if got, _ := registered(); len(got) != 3 {
		t.Fatalf("%d registrations while the daemon was down, want the 3 stale ones", len(got))
	}

	startDaemon(t)
	expectIDs(t, id("untouched", "80"), id("started-while-down", "80"))
	if after := modifyIndex(t, "svc", id("untouched", "80")); after != before {
		t.Errorf("the unchanged service was rewritten (ModifyIndex %d → %d)", before, after)
	}
}

// Consul unreachable for a while: writes fail and are retried, nothing is lost.
func TestConsulOutageIsRetried(t *testing.T) {
	clean(t)
	d := startDaemon(t, "-resync", "2")
	agent.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := agent.Restart(); err != nil {
				t.Error(err)
			}
		}
	})
	run(t, "--name", "during-outage", "-p", "127.0.0.1::80", imgSvc, "80")
	eventually(t, settle, func() error {
		if !strings.Contains(d.out.String(), "will retry") {
			return errors.New("no failed write logged yet")
		}
		return nil
	})
	if err := agent.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	expectIDs(t, id("during-outage", "80"))
}
