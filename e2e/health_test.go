package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/registrator/registrator/registry/consul"
)

// A container's Docker HEALTHCHECK, starting → healthy → unhealthy →
// healthy, is mirrored each time, on Docker and on Podman: in Consul as the
// service's "Docker health" check (warning, passing, critical, passing)
// with the probe's output; in etcd by the entry being there only while
// healthy. A container that asks for SERVICE_DOCKER_HEALTH=healthy is
// registered only while healthy. (Podman: the probe runs when its systemd
// timer fires; here the test runs it, see engine.probe.)
func TestDockerHealthMirrored(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		e.daemon(t, []string{"consul://" + agent.Addr, etcdURI("/services")})
		p := freePort(t)
		// The image's start period (120 s) keeps Docker's own probes from
		// failing before the test says what they answer; Docker ends it at
		// the first success. Podman ignores every failure within it, even
		// after a success, so for Podman, whose probes run only when the
		// test runs them, the check is given without one (Podman 4.3 takes
		// a start period from the command line only with the command).
		var opts []string
		if e.podman {
			opts = []string{"--health-cmd", `["/testsvc","-probe"]`, "--health-retries", "1", "--health-start-period", "0s"}
		}
		e.run(t, append(opts, "--name", "hc", "-p", pub(p, "80"), "-e", "SERVICE_CHECK_TCP=1", "-e", "SERVICE_CHECK_INTERVAL=1s", imgHealth, "80")...)
		e.run(t, append(opts, "--name", "hc-only", "-p", "127.0.0.1::80", "-e", "SERVICE_DOCKER_HEALTH=healthy", imgHealth, "80")...)
		sid := id("hc", "80")
		key := "/services/health/" + sid
		value := "127.0.0.1:" + strconv.Itoa(p)
		onlyKey := "/services/health/" + id("hc-only", "80")
		onlyValue := e.port(t, "hc-only", "80/tcp")

		check := func(status, output string) error {
			c := checks(t, sid)[consul.HealthCheckID(sid)]
			if c == nil {
				return fmt.Errorf("no Docker health check on %s", sid)
			}
			if c.Status != status || !strings.Contains(c.Output, output) {
				return fmt.Errorf("Docker health check %s with output %q, want %s with %q", c.Status, c.Output, status, output)
			}
			return nil
		}
		set := func(name, state string) {
			e.cmd(t, "exec", name, "/testsvc", "-set", state)
			e.probe(t, name)
		}

		expectIDs(t, sid)
		eventually(t, settle, func() error { return check("warning", "") })
		expectKV(t, "/services/", map[string]string{})

		set("hc", "healthy")
		set("hc-only", "healthy")
		eventually(t, settle, func() error { return check("passing", "probe says healthy") })
		expectKV(t, "/services/", map[string]string{key: value, onlyKey: onlyValue})
		expectIDs(t, sid, id("hc-only", "80"))

		// The user's check and the Docker health check live side by side.
		eventually(t, settle, func() error {
			if c := checks(t, sid)["service:"+sid]; c == nil || c.Status != "passing" || c.Type != "tcp" {
				return fmt.Errorf("the SERVICE_CHECK_TCP check beside Docker health: %+v, want a passing tcp check service:%s", c, sid)
			}
			return nil
		})

		set("hc", "unhealthy")
		eventually(t, settle, func() error { return check("critical", "probe says unhealthy") })
		expectKV(t, "/services/", map[string]string{onlyKey: onlyValue})
		expectIDs(t, sid, id("hc-only", "80"))

		set("hc", "healthy")
		set("hc-only", "unhealthy")
		eventually(t, settle, func() error { return check("passing", "probe says healthy") })
		expectKV(t, "/services/", map[string]string{key: value})
		expectIDs(t, sid)
	})
}

// A probe that prints nothing (curl -fs, most probes) is followed as well:
// starting → healthy → unhealthy → healthy is, in Consul, the Docker health
// check's warning, passing, critical, passing; in every key-value backend
// (etcd, Consul KV, ZooKeeper, skydns2), the entry there only while healthy.
// (A Consul check kept its status through a re-registration, and the
// status was only sent with a probe's output: it stayed at warning.)
func TestDockerHealthOfASilentProbe(t *testing.T) {
	clean(t)
	if _, err := agent.Client().KV().DeleteTree("quiet-kv", nil); err != nil {
		t.Fatal(err)
	}
	startDaemonURIs(t, []string{"consul://" + agent.Addr, etcdURI("/services"), "consulkv://" + agent.Addr + "/quiet-kv",
		"zookeeper://" + zkSrv.Addr + "/quiet-zk", "skydns2://" + etcdSrv.Addr + "/skydns.local"})
	run(t, "--name", "silent", "-p", "127.0.0.1::80", imgQuiet, "80")
	sid := id("silent", "80")

	held := func() (map[string]bool, error) {
		out := map[string]bool{}
		c := checks(t, sid)[consul.HealthCheckID(sid)]
		if c == nil {
			return nil, fmt.Errorf("no Docker health check on %s", sid)
		}
		out["consul "+c.Status] = true
		// Each key-value backend holds the service's key while healthy.
		for name, read := range map[string]func() (map[string]string, error){
			"etcd":      func() (map[string]string, error) { return kv("/services/quiet/") },
			"consulkv":  func() (map[string]string, error) { return consulKV("quiet-kv/") },
			"zookeeper": func() (map[string]string, error) { return znodes("/quiet-zk") },
			"skydns2":   func() (map[string]string, error) { return kv("/skydns/local/skydns/quiet/") },
		} {
			keys, err := read()
			if err != nil {
				return nil, err
			}
			out[name] = len(keys) > 0
		}
		return out, nil
	}
	expectHeld := func(consulStatus string, kvHeld bool) {
		t.Helper()
		want := map[string]bool{"consul " + consulStatus: true, "etcd": kvHeld, "consulkv": kvHeld, "zookeeper": kvHeld, "skydns2": kvHeld}
		eventually(t, settle, func() error {
			got, err := held()
			if err != nil {
				return err
			}
			if d := cmp.Diff(want, got); d != "" {
				return fmt.Errorf("held (-want +got):\n%s", d)
			}
			return nil
		})
	}
	set := func(state string) { docker(t, "exec", "silent", "/testsvc", "-set", state) }

	expectIDs(t, sid)
	expectHeld("warning", false)
	set("healthy")
	expectHeld("passing", true)
	set("unhealthy")
	expectHeld("critical", false)
	set("healthy")
	expectHeld("passing", true)
}
