package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/registrator/registrator/internal/bed"
	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/etcdtest"
)

// bedHost starts a simulated host (internal/bed) with the test image
// loaded, removed again when the test ends.
func bedHost(t *testing.T, name string) *bed.Host {
	t.Helper()
	h, err := bed.Start(name)
	return readyHost(t, h, err, imgSvc)
}

// bedCluster makes a LAN and a cluster on it (internal/bed), etcd alone
// unless withConsul, removed again when the test ends.
func bedCluster(t *testing.T, withConsul bool) (*bed.LAN, *bed.Cluster) {
	t.Helper()
	var consulBin string
	if withConsul {
		var err error
		if consulBin, err = consultest.Binary(); err != nil {
			t.Fatal(err)
		}
	}
	etcdBin, err := etcdtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	lan, err := bed.NewLAN()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lan.Close)
	cluster, err := lan.Cluster(consulBin, etcdBin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return lan, cluster
}

// lanHost starts a simulated host on lan with images loaded, removed again
// when the test ends.
func lanHost(t *testing.T, lan *bed.LAN, name string, images ...string) *bed.Host {
	t.Helper()
	h, err := lan.Host(name)
	return readyHost(t, h, err, images...)
}

func readyHost(t *testing.T, h *bed.Host, err error, images ...string) *bed.Host {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's dockerd log:\n%s", h.Name, h.Log())
		}
		h.Close()
	})
	if err := h.Load(images...); err != nil {
		t.Fatal(err)
	}
	return h
}

// hostDocker runs the docker CLI against a bed host's engine.
func hostDocker(t *testing.T, h *bed.Host, args ...string) string {
	t.Helper()
	out, err := h.Docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startHostDaemon runs the daemon for a bed host: under its name, on its
// engine.
func startHostDaemon(t *testing.T, h *bed.Host, uris []string, args ...string) *daemon {
	t.Helper()
	wrapper, err := h.Wrap(t.TempDir(), daemonBin)
	if err != nil {
		t.Fatal(err)
	}
	d := launchBin(t, wrapper, []string{"DOCKER_HOST=" + h.DockerHost()}, uris, args...)
	d.waitFor(t, "registrator started")
	return d
}

// startInside runs the daemon for a bed host on a LAN inside the host, as
// it runs on a real one: in its network namespace, under its name, on its
// engine.
func startInside(t *testing.T, h *bed.Host, uris []string, args ...string) *daemon {
	t.Helper()
	wrapper, err := h.WrapInside(t.TempDir(), daemonBin)
	if err != nil {
		t.Fatal(err)
	}
	d := launchBin(t, wrapper, []string{"DOCKER_HOST=" + h.DockerHost()}, uris, args...)
	d.waitFor(t, "registrator started")
	return d
}

// Two hosts cloned from one image, their engines sharing key.json and so
// their ID, with the same container names and ports, both registering into
// one Consul agent and one etcd: every host's services are there, with
// distinct IDs, and stay there through many full passes; neither daemon
// removes or rewrites the other's; each says once which host shares its
// engine's ID.
func TestTwoEnginesWithOneEngineID(t *testing.T) {
	clean(t)
	b := bedHost(t, "twin-b")
	if a, bID := docker(t, "info", "-f", "{{.ID}}"), hostDocker(t, b, "info", "-f", "{{.ID}}"); a != bID {
		t.Fatalf("engine IDs %s and %s: the test needs the shared key.json to give both one ID", a, bID)
	}
	if n := hostDocker(t, b, "info", "-f", "{{.Name}}"); n != "twin-b" {
		t.Fatalf("the second engine is named %q, want twin-b", n)
	}
	uris := []string{"consul://" + agent.Addr, etcdURI("/services")}
	da := startDaemonURIs(t, uris, "-resync", "1", "-ip", "127.0.0.1")
	dbProc := startHostDaemon(t, b, uris, "-resync", "1", "-ip", "127.0.0.1")

	run(t, "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	hostDocker(t, b, "run", "-d", "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	started := time.Now()
	ids := []string{id("web", "80"), "twin-b:web:80"}
	expectIDs(t, ids...)
	eventually(t, settle, func() error {
		got, err := kv("/services/svc/")
		if err != nil {
			return err
		}
		for _, i := range ids {
			if _, ok := got["/services/svc/"+i]; !ok {
				return fmt.Errorf("etcd has %v, want both hosts' web", got)
			}
		}
		return nil
	})
	t.Logf("two engines with one engine ID, the same name and port on each (Consul and etcd): converged %s after the change",
		time.Since(started).Round(time.Millisecond))

	da.waitPasses(t, 3)
	dbProc.waitPasses(t, 3)
	expectIDs(t, ids...)
	for name, d := range map[string]*daemon{"this host's": da, "twin-b's": dbProc} {
		if strings.Contains(d.out.String(), "deregistered") || strings.Count(d.out.String(), "action=register") != 2 {
			t.Errorf("%s daemon deregistered or registered again (want one registration per backend):\n%s", name, d.out)
		}
	}
	da.waitFor(t, "host twin-b's engine has this engine's ID (this host is "+host+")")
	dbProc.waitFor(t, "host "+host+"'s engine has this engine's ID (this host is twin-b)")
}
