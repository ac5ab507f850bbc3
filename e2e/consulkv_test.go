package e2e

import (
	"strconv"
	"testing"
	"time"
)

// consulKV returns every key under prefix with its value.
func consulKV(prefix string) (map[string]string, error) {
	pairs, _, err := agent.Client().KV().List(prefix, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pairs {
		out[p.Key] = string(p.Value)
	}
	return out, nil
}

func expectConsulKV(t *testing.T, prefix string, want map[string]string) {
	t.Helper()
	expectKeys(t, "consul keys under "+prefix, func() (map[string]string, error) { return consulKV(prefix) }, want)
}

// registrator's consulkv layout; a Consul agent that restarts empty gets
// every entry back within 5 s with the default flags (-resync 30): the
// daemon notices its session ended.
func TestConsulKV(t *testing.T) {
	clean(t)
	if _, err := agent.Client().KV().DeleteTree("", nil); err != nil {
		t.Fatal(err)
	}
	startDaemonURIs(t, []string{"consulkv://" + agent.Addr + "/services"})
	p1, p2 := freePort(t), freePort(t)
	run(t, "--name", "web.1", "-p", pub(p1, "80"), imgSvc, "80")
	run(t, "--name", "gone", "-p", pub(p2, "80"), "-e", "SERVICE_NAME=api", imgSvc, "80")
	web := "services/svc/" + id("web.1", "80")
	expectConsulKV(t, "services/", map[string]string{
		web:                                "127.0.0.1:" + strconv.Itoa(p1),
		"services/api/" + id("gone", "80"): "127.0.0.1:" + strconv.Itoa(p2),
	})
	docker(t, "rm", "-f", "gone")
	expectConsulKV(t, "services/", map[string]string{web: "127.0.0.1:" + strconv.Itoa(p1)})

	if err := agent.Restart(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	expectConsulKV(t, "services/", map[string]string{web: "127.0.0.1:" + strconv.Itoa(p1)})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("entries back %s after the agent restarted, more than 5 s (the resync period is 30 s)", took)
	} else {
		t.Logf("entries back %s after the agent restarted empty", took)
	}
}
