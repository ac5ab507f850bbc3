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

// Two hosts given the same -id by mistake (a template that sets
// REGISTRATOR_ID alike everywhere), with the same container name and port,
// writing into one Consul agent, one etcd and Consul KV: every host's
// entries stay, through many full passes with -cleanup; neither daemon
// removes or rewrites the other's; each names the other host. Each takes
// a lease of its own (the second to start does not adopt the first one's):
// when one is lost, its etcd entries go with its lease and the other's
// stay.
func TestTwoHostsGivenOneID(t *testing.T) {
	clean(t)
	// Nothing of an earlier run's: its sessions outlive it (Consul's least
	// TTL is 10 s), and removing its entries would be right but counted.
	if _, err := agent.Client().KV().DeleteTree("", nil); err != nil {
		t.Fatal(err)
	}
	b := bedHost(t, "same-id-b")
	uris := []string{"consul://" + agent.Addr, etcdURI("/services"), "consulkv://" + agent.Addr + "/same-id"}
	args := []string{"-id", "rack-7", "-cleanup", "-resync", "1", "-ttl", "5", "-ttl-refresh", "2", "-ip", "127.0.0.1"}
	da := startDaemonURIs(t, uris, args...)
	run(t, "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("web", "80"))
	db := startHostDaemon(t, b, uris, args...)
	hostDocker(t, b, "run", "-d", "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	started := time.Now()
	ids := []string{id("web", "80"), "same-id-b:web:80"}
	both := func() error {
		for prefix, read := range map[string]func(string) (map[string]string, error){"/services/svc/": kv, "same-id/svc/": consulKV} {
			got, err := read(prefix)
			if err != nil {
				return err
			}
			for _, i := range ids {
				if _, ok := got[prefix+i]; !ok {
					return fmt.Errorf("%s holds %v, want both hosts' web", prefix, got)
				}
			}
		}
		return nil
	}
	expectIDs(t, ids...)
	eventually(t, settle, both)
	t.Logf("two hosts given one -id, the same name and port on each (Consul, etcd, Consul KV): converged %s after the change",
		time.Since(started).Round(time.Millisecond))

	da.waitPasses(t, 3)
	db.waitPasses(t, 3)
	expectIDs(t, ids...)
	if err := both(); err != nil {
		t.Error(err)
	}
	for name, d := range map[string]*daemon{"this host's": da, "same-id-b's": db} {
		if strings.Contains(d.out.String(), "deregistered") {
			t.Errorf("%s daemon deregistered something:\n%s", name, d.out)
		}
	}
	da.waitFor(t, `host same-id-b writes with this host's identity \"rack-7\" (this host is `+host+`)`)
	db.waitFor(t, `host `+host+` writes with this host's identity \"rack-7\" (this host is same-id-b)`)

	// same-id-b lost: its etcd entry leaves with its own lease (-ttl 5);
	// this host's stays.
	db.kill9(t)
	lost := time.Now()
	took := waitLeft(t, 15*time.Second, lost, "/services/svc/"+id("web", "80"), "/services/svc/same-id-b:web:80")
	t.Logf("same-id-b's etcd entry gone %s after its daemon was killed (TTL 5 s)", took.Round(time.Millisecond))
}
