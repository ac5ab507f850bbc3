package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/registry/skydns2"
)

// kv returns every key under prefix with its value.
func kv(prefix string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := etcdSrv.Client().Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range resp.Kvs {
		out[string(e.Key)] = string(e.Value)
	}
	return out, nil
}

// expectKV waits until the keys under prefix are exactly want.
func expectKV(t *testing.T, prefix string, want map[string]string) {
	t.Helper()
	expectKeys(t, "etcd keys under "+prefix, func() (map[string]string, error) { return kv(prefix) }, want)
}

func etcdURI(path string) string { return "etcd://" + etcdSrv.Addr + path }

// registrator's etcd layout, written with the v3 API on a lease.
func TestEtcdRegistersAndDeregisters(t *testing.T) {
	clean(t)
	startDaemonURIs(t, []string{etcdURI("/services")})
	p1, p2 := freePort(t), freePort(t)
	run(t, "--name", "web.1", "-p", pub(p1, "80"), imgSvc, "80")
	run(t, "--name", "dns", "-p", pub(p2, "53/udp"), "-e", "SERVICE_NAME=resolver", imgSvc, "53/udp")
	expectKV(t, "/services/", map[string]string{
		"/services/svc/" + id("web.1", "80"):        "127.0.0.1:" + strconv.Itoa(p1),
		"/services/resolver/" + id("dns", "53:udp"): "127.0.0.1:" + strconv.Itoa(p2),
	})
	resp, err := etcdSrv.Client().Get(context.Background(), "/services/svc/"+id("web.1", "80"))
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("entry %v (%v): want one key on a lease", resp, err)
	}
	docker(t, "stop", "web.1")
	docker(t, "rm", "-f", "dns")
	expectKV(t, "/services/", map[string]string{})
	expectKV(t, "/registrator/", map[string]string{
		"/registrator/%2Fservices/leases/" + identity(t): fmt.Sprintf("%x", resp.Kvs[0].Lease),
	})
}

func TestEtcdJSONFormat(t *testing.T) {
	clean(t)
	startDaemonURIs(t, []string{etcdURI("/svc?format=json")})
	p := freePort(t)
	run(t, "--name", "api", "-p", pub(p, "80"), "-e", "SERVICE_TAGS=a,b", "-e", "SERVICE_TEAM=core", imgSvc, "80")
	want := fmt.Sprintf(`{"id":%q,"name":"svc","address":"127.0.0.1","port":%d,"tags":["a","b"],"meta":{"team":"core"}}`, id("api", "80"), p)
	expectKV(t, "/svc/", map[string]string{"/svc/svc/" + id("api", "80"): want})
}

// CoreDNS's etcd plugin reads /skydns/<reversed domain>/<name>/<label> with
// a JSON body holding host and port.
func TestSkyDNS2(t *testing.T) {
	clean(t)
	startDaemonURIs(t, []string{"skydns2://" + etcdSrv.Addr + "/skydns.local"})
	p := freePort(t)
	run(t, "--name", "web.1", "-p", pub(p, "80"), "-e", "SERVICE_NAME=web", imgSvc, "80")
	key := "/skydns/local/skydns/web/" + skydns2.Label(id("web.1", "80"))
	expectKV(t, "/skydns/", map[string]string{key: `{"host":"127.0.0.1","port":` + strconv.Itoa(p) + `}`})
	docker(t, "rm", "-f", "web.1")
	expectKV(t, "/skydns/", map[string]string{})
}

// A daemon killed with -9 leaves its entries on its lease; started again
// within the TTL it adopts the lease, keeps unchanged entries untouched and
// removes those of containers that went away meanwhile.
func TestEtcdKill9AndRestart(t *testing.T) {
	clean(t)
	d := startDaemonURIs(t, []string{etcdURI("/services")})
	pa, pb := freePort(t), freePort(t)
	run(t, "--name", "stays", "-p", pub(pa, "80"), imgSvc, "80")
	run(t, "--name", "goes", "-p", pub(pb, "80"), imgSvc, "80")
	stays, goes := "/services/svc/"+id("stays", "80"), "/services/svc/"+id("goes", "80")
	expectKV(t, "/services/", map[string]string{stays: "127.0.0.1:" + strconv.Itoa(pa), goes: "127.0.0.1:" + strconv.Itoa(pb)})
	before, err := etcdSrv.Client().Get(context.Background(), stays)
	if err != nil {
		t.Fatal(err)
	}
	d.kill9(t)
	docker(t, "rm", "-f", "goes")
	d2 := startDaemonURIs(t, []string{etcdURI("/services")})
	expectKV(t, "/services/", map[string]string{stays: "127.0.0.1:" + strconv.Itoa(pa)})
	after, err := etcdSrv.Client().Get(context.Background(), stays)
	if err != nil {
		t.Fatal(err)
	}
	if after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Errorf("the unchanged entry was rewritten (mod revision %d → %d)", before.Kvs[0].ModRevision, after.Kvs[0].ModRevision)
	}
	if !strings.Contains(d2.out.String(), "adopted the lease") {
		t.Error("the restarted daemon did not adopt its lease")
	}
}

// etcd stopped for longer than the TTL, then started again; and etcd wiped
// (a new cluster: the lease is gone). Both times every running container is
// back; after the wipe within 5 s with the default -resync of 30 s: the
// daemon notices its lease ended.
func TestEtcdOutageAndWipe(t *testing.T) {
	clean(t)
	d := startDaemonURIs(t, []string{etcdURI("/services")}, "-ttl", "5", "-ttl-refresh", "1") // -resync 30, the default
	p := freePort(t)
	run(t, "--name", "survivor", "-p", pub(p, "80"), imgSvc, "80")
	want := map[string]string{"/services/svc/" + id("survivor", "80"): "127.0.0.1:" + strconv.Itoa(p)}
	expectKV(t, "/services/", want)

	etcdSrv.Stop()
	t.Cleanup(func() { _ = etcdSrv.Start() })     // ErrRunning unless the test stopped early
	d.waitFor(t, "lease lost (keep-alive ended)") // the TTL ran out with etcd away
	p2 := freePort(t)
	run(t, "--name", "during-outage", "-p", pub(p2, "80"), imgSvc, "80")
	if err := etcdSrv.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	want["/services/svc/"+id("during-outage", "80")] = "127.0.0.1:" + strconv.Itoa(p2)
	expectKV(t, "/services/", want)
	t.Logf("after the outage: registry equal %s after etcd came back", time.Since(start))

	if err := etcdSrv.Wipe(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	expectKV(t, "/services/", want)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("after the wipe: entries back after %s, more than 5 s (the resync period is 30 s)", took)
	} else {
		t.Logf("after the wipe: entries back %s after etcd restarted empty", took)
	}
	if d.gone() {
		t.Fatal("the daemon exited")
	}
}

// Two backends at once: each gets every service, and one that is down
// never holds up the other.
func TestTwoBackendsOneDown(t *testing.T) {
	clean(t)
	startDaemonURIs(t, []string{"consul://" + agent.Addr, etcdURI("/services")}, "-resync", "2")
	p := freePort(t)
	run(t, "--name", "both", "-p", pub(p, "80"), imgSvc, "80")
	expectIDs(t, id("both", "80"))
	expectKV(t, "/services/", map[string]string{"/services/svc/" + id("both", "80"): "127.0.0.1:" + strconv.Itoa(p)})

	etcdSrv.Stop()
	t.Cleanup(func() { _ = etcdSrv.Start() })
	p2 := freePort(t)
	start := time.Now()
	run(t, "--name", "while-etcd-down", "-p", pub(p2, "80"), imgSvc, "80")
	expectIDs(t, id("both", "80"), id("while-etcd-down", "80"))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Consul got the new service %s after the start, with etcd down: held up", took)
	}
	if err := etcdSrv.Start(); err != nil {
		t.Fatal(err)
	}
	expectKV(t, "/services/", map[string]string{
		"/services/svc/" + id("both", "80"):            "127.0.0.1:" + strconv.Itoa(p),
		"/services/svc/" + id("while-etcd-down", "80"): "127.0.0.1:" + strconv.Itoa(p2),
	})
}

// identity is this host's owner mark: <engine ID>@<host name>.
func identity(t *testing.T) string {
	t.Helper()
	return docker(t, "info", "-f", "{{.ID}}@{{.Name}}")
}

// The image's /bin/registrator is the lean build: given an etcd URI it
// hands itself over to the full build beside it, in the same process (a
// supervisor's PID stays right), and serves Consul itself. Without the full
// build beside it, it says so and exits 2.
func TestLeanBuildHandsEtcdToTheFullBuild(t *testing.T) {
	clean(t)
	exe := func(d *daemon) string {
		path, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", d.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Base(path)
	}
	both := startDaemonURIs(t, []string{"consul://" + agent.Addr, etcdURI("/lean")})
	consul := startDaemon(t)
	if got := exe(both); got != testkit.FullBuild {
		t.Errorf("the daemon given consul:// and etcd:// runs %s, want %s", got, testkit.FullBuild)
	}
	if got := exe(consul); got != filepath.Base(daemonBin) {
		t.Errorf("the daemon given consul:// runs %s, want %s", got, filepath.Base(daemonBin))
	}
	p := freePort(t)
	run(t, "--name", "lean.1", "-p", pub(p, "80"), imgSvc, "80")
	expectKV(t, "/lean/", map[string]string{"/lean/svc/" + id("lean.1", "80"): "127.0.0.1:" + strconv.Itoa(p)})
	expectIDs(t, id("lean.1", "80"))

	alone := filepath.Join(t.TempDir(), "registrator")
	if err := copyFile(daemonBin, alone); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, alone, "-retry-attempts", "0", etcdURI("/lean"))
	out, _ := cmd.CombinedOutput()
	want := "etcd://" + etcdSrv.Addr + "/lean is served by " + testkit.FullBuild + ", which should be beside this lean build"
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), want) {
		t.Errorf("the lean build alone, given etcd://: exit %d, output %q; want 2 and %q", code, out, want)
	}
}
