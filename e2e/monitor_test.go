package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/registrator/registrator/internal/testkit"
)

// scrape reads the daemon's metrics.
func scrape(addr string) (testkit.Metrics, error) {
	return testkit.Scrape("http://" + addr + "/metrics")
}

// metric sums the series of name whose labels include each of labels.
func metric(m testkit.Metrics, name string, labels ...string) float64 { return m.Sum(name, labels...) }

func getJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

type serviceStatus []struct {
	ID       string
	Name     string
	Services []struct {
		ID       string
		Backends map[string]struct{ State, Error string }
	}
}

// The numbers move as containers come and go, and /v1/services says what
// is registered where.
func TestMetricsAndServicesFollowContainers(t *testing.T) {
	clean(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	consul := "consul://" + agent.Addr
	be := `backend="` + consul + `"`
	startDaemonURIs(t, []string{consul}, "-http-addr", addr, "-resync", "1")
	before, err := scrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"m1", "m2", "m3"} {
		run(t, "--name", n, "-p", "127.0.0.1::80", imgSvc, "80")
	}
	expectIDs(t, id("m1", "80"), id("m2", "80"), id("m3", "80"))
	eventually(t, settle, func() error {
		m, err := scrape(addr)
		if err != nil {
			return err
		}
		for _, c := range []struct {
			name string
			got  float64
			want float64
		}{
			{"containers", metric(m, "registrator_containers"), 3},
			{"services in sync", metric(m, "registrator_services", be, `state="in sync"`), 3},
			{"registers ok", metric(m, "registrator_writes_total", `action="register"`, be, `result="ok"`) - metric(before, "registrator_writes_total", `action="register"`, be, `result="ok"`), 3},
			{"start events", metric(m, "registrator_events_total", `action="start"`, `type="container"`) - metric(before, "registrator_events_total", `action="start"`, `type="container"`), 3},
			{"latency samples", metric(m, "registrator_event_to_registry_seconds_count", be), 3},
			{"timed registers", metric(m, "registrator_write_duration_seconds_count", `action="register"`, be) - metric(before, "registrator_write_duration_seconds_count", `action="register"`, be), 3},
			{"backend up", metric(m, "registrator_backend_up", be), 1},
			{"docker up", metric(m, "registrator_docker_up"), 1},
		} {
			if c.name == "latency samples" && c.got >= c.want {
				continue // network events may add samples
			}
			if c.got != c.want {
				return fmt.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		}
		if metric(m, "registrator_reconciles_total", be, `result="ok"`) < 2 {
			return fmt.Errorf("fewer than 2 reconciles with -resync 1")
		}
		return nil
	})

	var status serviceStatus
	if code, err := getJSON("http://"+addr+"/v1/services", &status); err != nil || code != 200 {
		t.Fatalf("/v1/services: %d %v", code, err)
	}
	if len(status) != 3 {
		t.Fatalf("/v1/services lists %d containers, want 3: %+v", len(status), status)
	}
	for _, c := range status {
		if len(c.Services) != 1 || c.Services[0].ID != id(c.Name, "80") || c.Services[0].Backends[consul].State != "in sync" {
			t.Errorf("/v1/services entry %+v: want one service %s in sync in %s", c, id(c.Name, "80"), consul)
		}
	}

	// Drift: an entry removed behind the daemon's back is repaired and counted.
	if err := agent.Client().Agent().ServiceDeregister(id("m1", "80")); err != nil {
		t.Fatal(err)
	}
	expectIDs(t, id("m1", "80"), id("m2", "80"), id("m3", "80"))
	eventually(t, settle, func() error {
		m, err := scrape(addr)
		if err != nil {
			return err
		}
		if got := metric(m, "registrator_drift_repaired_total", be, `kind="missing"`); got < 1 {
			return fmt.Errorf("drift repaired (missing) = %v, want at least 1", got)
		}
		return nil
	})

	docker(t, "rm", "-f", "m1", "m2", "m3")
	expectIDs(t)
	eventually(t, settle, func() error {
		m, err := scrape(addr)
		if err != nil {
			return err
		}
		if got := metric(m, "registrator_containers"); got != 0 {
			return fmt.Errorf("containers = %v after removal, want 0", got)
		}
		if got := metric(m, "registrator_writes_total", `action="deregister"`, be, `result="ok"`); got != 3 {
			return fmt.Errorf("deregisters = %v, want 3", got)
		}
		return nil
	})
	if code, err := getJSON("http://"+addr+"/v1/services", &status); err != nil || code != 200 || len(status) != 0 {
		t.Fatalf("/v1/services after removal: %d %v %+v, want empty", code, err, status)
	}
}

// /ready is false until the backend answers and the first reconcile is
// done, false while a backend is down, and true again once it is back.
func TestReadyFollowsBackends(t *testing.T) {
	clean(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ready := func() (bool, []string, error) {
		var r struct {
			Ready   bool
			Reasons []string
		}
		code, err := getJSON("http://"+addr+"/ready", &r)
		if err == nil && (code == 200) != r.Ready {
			err = fmt.Errorf("/ready status %d with ready=%v", code, r.Ready)
		}
		return r.Ready, r.Reasons, err
	}
	agent.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = agent.Restart()
		}
	})
	// The daemon waits for the agent (-retry-attempts -1); its listener is up.
	d := launch(t, []string{"consul://" + agent.Addr}, "-http-addr", addr, "-retry-attempts", "-1", "-retry-interval", "200")
	d.waitFor(t, "serving /metrics")
	if ok, reasons, err := ready(); err != nil || ok {
		t.Fatalf("/ready while the backend is unreachable at start: %v %v %v, want false", ok, reasons, err)
	}
	if resp, err := http.Get("http://" + addr + "/health"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health while waiting for the backend: %v %v, want 200", resp, err)
	}
	if err := agent.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	eventually(t, settle, func() error {
		if ok, reasons, err := ready(); err != nil || !ok {
			return fmt.Errorf("/ready: %v %v %v", ok, reasons, err)
		}
		return nil
	})

	agent.Stop()
	restarted = false
	eventually(t, settle, func() error {
		ok, reasons, err := ready()
		if err != nil || ok || !strings.Contains(strings.Join(reasons, " "), "unreachable") {
			return fmt.Errorf("/ready with the backend down: %v %v %v, want false naming it unreachable", ok, reasons, err)
		}
		m, err := scrape(addr)
		if err != nil {
			return err
		}
		if up := metric(m, "registrator_backend_up", `backend="consul://`+agent.Addr+`"`); up != 0 {
			return fmt.Errorf("backend_up = %v with the agent down", up)
		}
		return nil
	})
	if err := agent.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	eventually(t, settle, func() error {
		if ok, reasons, err := ready(); err != nil || !ok {
			return fmt.Errorf("/ready after the agent came back: %v %v %v", ok, reasons, err)
		}
		return nil
	})
	if d.gone() {
		t.Fatal("the daemon exited")
	}
}

// -dry-run computes and logs the plan and writes nothing.
func TestDryRunWritesNothing(t *testing.T) {
	clean(t)
	d := startDaemon(t, "-dry-run", "-resync", "1")
	run(t, "--name", "planned", "-p", "127.0.0.1::80", imgSvc, "80")
	eventually(t, settle, func() error {
		if !strings.Contains(d.out.String(), "dry run: would register svc") {
			return fmt.Errorf("no plan logged yet")
		}
		return nil
	})
	d.waitPasses(t, 2)
	all, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	for id := range all {
		if id != "consul" {
			t.Errorf("dry run registered %s", id)
		}
	}
}
