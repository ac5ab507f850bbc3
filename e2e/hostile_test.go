package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/testproc"
)

// Metadata users get wrong or push to extremes: each container is still
// registered with what can be used, each problem is one warning naming
// the container and the key, and the other containers are untouched.
func TestHostileMetadata(t *testing.T) {
	clean(t)
	d := startDaemonURIs(t, []string{"consul://" + agent.Addr, etcdURI("/hostile")})

	tags := make([]string, 10000)
	for i := range tags {
		tags[i] = "t" + strconv.Itoa(i)
	}
	run(t, "--name", "many-tags", "-p", "127.0.0.1::80", "-e", "SERVICE_TAGS="+strings.Join(tags, ","), imgSvc, "80")

	// A 1 MiB label: too big for the CLI, so through the API.
	runHugeLabel(t, "huge-label", "SERVICE_NOTE", strings.Repeat("n", 1<<20))
	run(t, "--name", "unicode", "-p", "127.0.0.1::80", "-e", "SERVICE_NAME=café-服务", "-e", "SERVICE_OWNER=Zoë 🚀", imgSvc, "80")
	run(t, "--name", "misplaced", "-p", "127.0.0.1::80", "-e", "SERVICE_9999_NAME=nowhere", "-e", "SERVICE_80a_NAME=typo", imgSvc, "80")
	run(t, "--name", "odd-checks", "-p", "127.0.0.1::80", "-e", "SERVICE_CHECK_INTERVAL=99999999999h",
		"-e", "SERVICE_CHECK_HTTP=/%zz", "-e", "SERVICE_CHECK_TIMEOUT=-5s", "-e", "SERVICE_CHECK_TCP=true", imgSvc, "80")
	run(t, "--name", "fine", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("many-tags", "80"), id("huge-label", "80"), id("unicode", "80"), id("misplaced", "80"), id("odd-checks", "80"), id("fine", "80"))

	got, err := registered()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got[id("many-tags", "80")].Tags); n != 64 {
		t.Errorf("many-tags has %d tags in Consul, want the first 64", n)
	}
	if note, ok := got[id("huge-label", "80")].Meta["note"]; ok {
		t.Errorf("huge-label's note is %d bytes in Consul, want it left out (over 4096 bytes)", len(note))
	}
	if s := got[id("unicode", "80")]; s.Name != "café-服务" || s.Meta["owner"] != "Zoë 🚀" {
		t.Errorf("unicode registered as %+v, want its name and attribute as given", s)
	}
	if s := got[id("misplaced", "80")]; s.Name != "svc" || s.Meta["80a_name"] != "typo" {
		t.Errorf("misplaced registered as %+v, want name svc and attribute 80a_name", s)
	}
	if c := checks(t, id("odd-checks", "80")); len(c) != 1 {
		t.Errorf("odd-checks has %d checks, want the TCP one only", len(c))
	}
	keys, err := kv("/hostile/")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys["/hostile/café-服务/"+id("unicode", "80")]; !ok || len(keys) != 6 {
		t.Errorf("etcd holds %d keys, want 6 with the unicode name as given", len(keys))
	}

	d.warned(t, "unicode", "SERVICE_NAME", "not a DNS label")
	d.warned(t, "misplaced", "SERVICE_9999_NAME", "neither exposes nor publishes port 9999")
	d.warned(t, "misplaced", "SERVICE_80a_NAME", "not a port number")
	d.warned(t, "odd-checks", "SERVICE_CHECK_INTERVAL", "not a positive duration")
	d.warned(t, "odd-checks", "SERVICE_CHECK_TIMEOUT", "not a positive duration")
	d.warned(t, "odd-checks", "SERVICE_CHECK_HTTP", "not a URL path")
	d.warned(t, "many-tags", "SERVICE_TAGS", "9936 tag(s) past the first 64 left out")
	d.warned(t, "huge-label", "SERVICE_NOTE (1048576 bytes)", "at most 4096 bytes, left out")
	for _, line := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(line, "level=warning") && strings.Contains(line, "fine") {
			t.Errorf("a warning about the container that is fine: %s", line)
		}
	}
}

// runHugeLabel runs imgSvc publishing port 80 on loopback with one label
// whose value is too big for a command line.
func runHugeLabel(t *testing.T, name, key, value string) {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	cfg := &container.Config{Image: imgSvc, Cmd: []string{"80"}, Labels: map[string]string{label: "1", key: value},
		ExposedPorts: nat.PortSet{"80/tcp": {}}}
	hc := &container.HostConfig{PortBindings: nat.PortMap{"80/tcp": {{HostIP: "127.0.0.1"}}}}
	cr, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", cr.ID).Run() })
	if err := cli.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
}

// faultyProxy stands in front of the Consul agent and can answer 500s,
// garbage, or late.
type faultyProxy struct {
	mu    sync.Mutex
	mode  string // "pass", "500" or "garbage"
	delay time.Duration
	addr  string
}

func (p *faultyProxy) set(mode string, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = mode, delay
}

func startFaultyProxy(t *testing.T, target string) *faultyProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultyProxy{mode: "pass", addr: l.Addr().String()}
	upstream := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		mode, delay := p.mode, p.delay
		p.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		switch mode {
		case "500":
			http.Error(w, "test proxy: internal error", http.StatusInternalServerError)
		case "garbage":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("\x00\x01 this is not JSON {{"))
		default:
			upstream.ServeHTTP(w, r)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

// A registry that answers 500s or garbage: the daemon logs what it got,
// keeps running, and catches up once the registry answers properly.
func TestRegistryAnswering500sAndGarbage(t *testing.T) {
	clean(t)
	p := startFaultyProxy(t, agent.Addr)
	d := startDaemonURIs(t, []string{"consul://" + p.addr}, "-resync", "2")
	run(t, "--name", "before", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("before", "80"))

	p.set("500", 0)
	run(t, "--name", "during-500s", "-p", "127.0.0.1::80", imgSvc, "80")
	d.warned(t, "will retry", "Unexpected response code: 500", "test proxy: internal error")

	p.set("garbage", 0)
	mark := len(d.out.String())
	run(t, "--name", "during-garbage", "-p", "127.0.0.1::80", imgSvc, "80")
	eventually(t, settle, func() error {
		for _, line := range strings.Split(d.out.String()[mark:], "\n") {
			if strings.Contains(line, "level=warning") && strings.Contains(line, "invalid character") {
				return nil
			}
		}
		return errors.New("no warning about the undecodable answer")
	})
	if d.gone() {
		t.Fatal("the daemon exited")
	}

	p.set("pass", 0)
	expectIDs(t, id("before", "80"), id("during-500s", "80"), id("during-garbage", "80"))
}

// A Docker API that answers slowly: within the call timeout (10 s) the
// daemon just waits; beyond it, it logs the timeout and retries, and it
// converges once the engine answers in time again.
func TestSlowDockerAPI(t *testing.T) {
	clean(t)
	socket, proxy := startRecordingProxy(t)
	d := launchEnv(t, []string{"DOCKER_HOST=unix://" + socket}, []string{"consul://" + agent.Addr}, "-resync", "2")
	d.waitFor(t, "registrator started")

	proxy.setDelay(3 * time.Second)
	run(t, "--name", "slow", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("slow", "80"))

	proxy.setDelay(12 * time.Second)
	run(t, "--name", "slower", "-p", "127.0.0.1::80", imgSvc, "80")
	d.warned(t, "context deadline exceeded")
	proxy.setDelay(0)
	eventually(t, 60*time.Second, func() error {
		got, err := registered()
		if err != nil {
			return err
		}
		if len(got) != 2 {
			return fmt.Errorf("registered %v, want slow and slower", got)
		}
		return nil
	})
	if d.gone() {
		t.Fatal("the daemon exited")
	}
}

// Load: 200 containers started while Consul answers only 500s, so that
// all of them pile up; then Consul comes back slow (every call 250 ms
// late) and half of the containers are removed. The daemon consumes
// events throughout, its memory stays bounded, and the registry converges
// through the slow backend. Runs the daemon built without the race
// detector, so that its memory is what users see.
func TestLoadWithSlowBackend(t *testing.T) {
	const n = 200
	clean(t)
	t.Cleanup(removeContainers)
	bin := filepath.Join(t.TempDir(), "registrator")
	if err := testkit.BuildDaemon(bin); err != nil {
		t.Fatal(err)
	}
	p := startFaultyProxy(t, agent.Addr)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	d := launchBin(t, bin, nil, []string{"consul://" + p.addr}, "-resync", "5", "-http-addr", addr, "-log-level", "info")
	d.waitFor(t, "registrator started")

	var peak atomic.Int64 // KiB
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if kb := testproc.StatusKiB(d.cmd.Process.Pid, "VmRSS"); kb > peak.Load() {
				peak.Store(kb)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopSampling); <-sampled }()
	events := func(action string) float64 {
		m, err := scrape(addr)
		if err != nil {
			return -1
		}
		return metric(m, "registrator_events_total", `action="`+action+`"`, `type="container"`)
	}
	consumed := func(action string, want int) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			if got := events(action); got < float64(want) {
				return fmt.Errorf("%v %s events consumed, want %d", got, action, want)
			}
			return nil
		})
	}

	names := make([]string, n)
	want := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("load-%03d", i)
		want[i] = id(names[i], "80")
	}
	p.set("500", 0)
	began := time.Now()
	parallel(t, 8, names, func(name string) []string {
		return []string{"run", "-d", "--label", label + "=1", "--name", name, "-p", "127.0.0.1::80", imgSvc, "80"}
	})
	started := time.Now()
	consumed("start", n)
	t.Logf("%d containers started in %s while Consul answered 500s; every start event consumed %s after the last docker run",
		n, started.Sub(began).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	passes := func() float64 {
		m, err := scrape(addr)
		if err != nil {
			return -1
		}
		return metric(m, "registrator_reconciles_total")
	}
	before := passes()
	eventually(t, 2*settle, func() error { // a full pass (-resync 5) while the retries pile up
		if got := passes(); got < before+1 {
			return fmt.Errorf("%v full reconciles, waiting for %v", got, before+1)
		}
		return nil
	})
	if err := sameIDs(nil); err != nil {
		t.Fatalf("registrations went through the failing proxy: %v", err)
	}

	p.set("pass", 250*time.Millisecond)
	recovered := time.Now()
	eventually(t, 3*time.Minute, func() error { return sameIDs(want) })
	t.Logf("all %d registered %s after Consul came back, slow", n, time.Since(recovered).Round(time.Millisecond))

	began = time.Now()
	parallel(t, 8, names[:n/2], func(name string) []string { return []string{"rm", "-f", name} })
	removed := time.Now()
	consumed("destroy", n/2)
	eventually(t, 2*time.Minute, func() error { return sameIDs(want[n/2:]) })
	t.Logf("%d containers removed in %s; registry equal to the %d left %s after the last docker rm",
		n/2, removed.Sub(began).Round(time.Millisecond), n/2, time.Since(removed).Round(time.Millisecond))
	if d.gone() {
		t.Fatal("the daemon exited")
	}
	const limit = 100 << 10 // KiB
	t.Logf("peak RSS of the daemon: %.1f MiB", float64(peak.Load())/1024)
	if peak.Load() > limit {
		t.Errorf("peak RSS %d KiB, more than %d KiB", peak.Load(), limit)
	}
}

// parallel runs the docker CLI with args(item) for every item, width at a time.
func parallel(t *testing.T, width int, items []string, args func(string) []string) {
	t.Helper()
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if out, err := exec.Command("docker", args(it)...).CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("docker %v: %v: %s", args(it), err, out))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// sameIDs says whether our registrations in Consul are exactly ids.
func sameIDs(ids []string) error {
	got, err := registered()
	if err != nil {
		return err
	}
	missing, stale := 0, 0
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
		if _, ok := got[id]; !ok {
			missing++
		}
	}
	for id := range got {
		if !want[id] {
			stale++
		}
	}
	if missing+stale > 0 {
		return fmt.Errorf("%d missing, %d stale", missing, stale)
	}
	return nil
}
