package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/go-connections/nat"
)

// The soak: a seeded random driver starts, stops, kills, restarts, renames
// and removes containers while faults hit the engine, the registries and
// the daemon. After every phase (some churn with one fault in it) an
// invariant checker compares Consul and etcd with `docker ps` and records
// how long they took to agree again.
//
// SOAK_DURATION (default 60s) bounds the driving; every fault kind is
// injected at least once however short it is. SOAK_SEED replays a run's
// choices (timing still varies). SOAK_REPORT names a file for the figures
// as JSON (`make soak` writes docs/reliability.json). -short skips it,
// except in CI (CI=true).

const (
	soakLabel   = "registrator-soak"
	soakSlots   = 20 // containers at most
	soakWorkers = 3  // operations in flight at most
	soakTTL     = 5  // seconds: the etcd lease TTL the daemon runs with
	// soakSettle is how long the registry may take to agree with the
	// engine after a phase; an entry still wrong then is stale or missing.
	soakSettle = 30 * time.Second
)

var soakFaults = []string{"none", "engine-restart", "consul-restart", "etcd-restart", "etcd-outage-beyond-ttl", "daemon-kill9"}

// soakReport is what a run found; SOAK_REPORT gets it as JSON.
type soakReport struct {
	Seed        uint64                   `json:"seed"`
	Duration    string                   `json:"duration"`
	Phases      int                      `json:"phases"`
	Ops         map[string]int           `json:"operations"`
	OpErrors    int                      `json:"operation_errors"` // refused by the engine, mostly while it restarts
	Faults      map[string]int           `json:"faults"`
	Converge    map[string]convergeStats `json:"converge_ms"`
	Stale       int                      `json:"stale_after_settle"`
	Missing     int                      `json:"missing_after_settle"`
	DaemonExits int                      `json:"daemon_exits"` // exits nobody asked for
	Containers  int                      `json:"max_containers"`
	Command     string                   `json:"command"`
	Machine     string                   `json:"machine"`
}

type convergeStats struct {
	N      int   `json:"n"`
	Median int64 `json:"median"`
	Worst  int64 `json:"worst"`
	all    []time.Duration
}

func TestSoak(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("the soak is not part of -short runs (CI runs it always)")
	}
	clean(t)
	duration := 60 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		duration = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED: %v", err)
		}
		seed = s
	}
	t.Logf("soak: seed %d, %s (replay with SOAK_SEED=%d)", seed, duration, seed)
	// What went wrong is said again at the very end, after the daemons'
	// logs, where a reader of only the output's tail (CI's) finds it.
	var failures []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	t.Cleanup(func() {
		if t.Failed() {
			what := strings.Join(failures, "\n")
			if what == "" {
				what = "no phase failed its check: a fault could not be applied or undone (the first error above)"
			}
			t.Logf("soak failed with seed %d: replay with SOAK_SEED=%d\n%s", seed, seed, what)
		}
	})

	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	t.Cleanup(removeContainers) // soak containers carry the suite's label too

	uris := []string{"consul://" + agent.Addr, etcdURI("/soak")}
	// The default -resync (30 s): every repair the daemon can notice (an
	// engine reconnect, an agent that came back empty, a lease that ended)
	// must not wait for it. -ttl is short so that an etcd outage outlasts
	// the lease within a short soak.
	args := []string{"-ttl", strconv.Itoa(soakTTL), "-ttl-refresh", "1"}
	d := startDaemonURIs(t, uris, args...)

	rep := &soakReport{Seed: seed, Duration: duration.String(), Ops: map[string]int{}, Faults: map[string]int{},
		Converge: map[string]convergeStats{}, Containers: soakSlots,
		Command: fmt.Sprintf("make soak SOAK_DURATION=%s SOAK_SEED=%d", duration, seed), Machine: machine()}
	drv := &churn{cli: cli, slots: make([]slot, soakSlots), rep: rep}
	for i := range drv.slots {
		drv.slots[i].n = i
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	order := slices.Clone(soakFaults)
	begin := time.Now()
	for phase := 0; ; phase++ {
		if phase%len(order) == 0 {
			if time.Since(begin) > duration {
				break
			}
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		fault := order[phase%len(order)]
		rep.Phases++
		rep.Faults[fault]++

		// Churn for 1 to 3 s, then inject the fault; the churn goes on
		// through it and stops when the fault is over, so the time to
		// converge counts from the recovery and covers what changed
		// during the outage. A phase without a fault churns 3 to 6 s.
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range soakWorkers {
			r := rand.New(rand.NewPCG(seed, uint64(phase*soakWorkers+w+1)))
			wg.Go(func() { drv.run(ctx, r) })
		}
		phaseStart := time.Now()
		time.Sleep(time.Second + time.Duration(rng.Int64N(int64(2*time.Second))))
		d = inject(t, fault, d, drv, uris, args, rng)
		over := time.Now()
		stop()
		wg.Wait()
		churned := time.Since(phaseStart)

		if d.gone() {
			rep.DaemonExits++
			fail("phase %d (%s): the daemon exited by itself: %v", phase, fault, d.cmd.ProcessState)
			d = startDaemonURIs(t, uris, args...)
		}
		took, diff := converge(t, cli, over)
		if diff != nil {
			rep.Stale += diff.stale
			rep.Missing += diff.missing
			fail("phase %d (%s): registry still differs from docker ps %s after the phase ended:\n%s", phase, fault, soakSettle, diff.text)
			continue
		}
		cs := rep.Converge[fault]
		cs.all = append(cs.all, took)
		rep.Converge[fault] = cs
		t.Logf("phase %d: %-22s churned %.1fs, converged %4d ms after the fault was over", phase, fault, churned.Seconds(), took.Milliseconds())
	}
	for k, cs := range rep.Converge {
		slices.Sort(cs.all)
		cs.N, cs.Median, cs.Worst = len(cs.all), cs.all[(len(cs.all)-1)/2].Milliseconds(), cs.all[len(cs.all)-1].Milliseconds()
		rep.Converge[k] = cs
	}
	out, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("soak figures:\n%s", out)
	if path := os.Getenv("SOAK_REPORT"); path != "" {
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// inject applies one fault and returns the daemon that runs afterwards.
func inject(t *testing.T, fault string, d *daemon, drv *churn, uris, args []string, rng *rand.Rand) *daemon {
	t.Helper()
	pause := func(min, spread time.Duration) { time.Sleep(min + time.Duration(rng.Int64N(int64(spread)))) }
	switch fault {
	case "none":
		pause(2*time.Second, 3*time.Second)
	case "engine-restart":
		drv.gate.Lock()
		restartEngine(t)
		drv.gate.Unlock()
	case "consul-restart": // a dev agent comes back empty
		if err := agent.Restart(); err != nil {
			t.Fatal(err)
		}
	case "etcd-restart":
		etcdSrv.Stop()
		pause(500*time.Millisecond, time.Second)
		if err := etcdSrv.Start(); err != nil {
			t.Fatal(err)
		}
	case "etcd-outage-beyond-ttl": // the lease and every entry on it expire
		etcdSrv.Stop()
		pause(soakTTL*time.Second+2*time.Second, 2*time.Second)
		if err := etcdSrv.Start(); err != nil {
			t.Fatal(err)
		}
	case "daemon-kill9":
		d.kill9(t)
		pause(0, 2*time.Second)
		d = startDaemonURIs(t, uris, args...)
	default:
		t.Fatalf("unknown fault %q", fault)
	}
	return d
}

// churn drives containers: each slot holds at most one.
type churn struct {
	cli   *client.Client
	slots []slot
	mu    sync.Mutex
	rep   *soakReport
	// gate holds operations back while the engine shuts down: dockerd
	// serves requests until it has stopped, and a steady stream of starts
	// keeps it from ever finishing.
	gate sync.RWMutex
}

type slot struct {
	mu  sync.Mutex
	n   int    // its index: container names are soak-<n>-<gen>
	id  string // "" when empty
	gen int    // containers and renames so far
}

func (c *churn) run(ctx context.Context, r *rand.Rand) {
	for ctx.Err() == nil {
		s := &c.slots[r.IntN(len(c.slots))]
		if !s.mu.TryLock() {
			continue
		}
		c.gate.RLock()
		op, err := c.step(s, r)
		c.gate.RUnlock()
		s.mu.Unlock()
		c.mu.Lock()
		if err != nil {
			c.rep.OpErrors++
		} else {
			c.rep.Ops[op]++
		}
		c.mu.Unlock()
		time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
	}
}

// step applies one random operation to the slot's container. Operations
// are not cut short when the phase ends: a half-done `docker run` would
// leave the test, not the daemon, in an odd state.
func (c *churn) step(s *slot, r *rand.Rand) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.id == "" {
		return "run", c.create(ctx, s, r)
	}
	stopNow := 1
	var op string
	var err error
	switch n := r.IntN(100); {
	case n < 15:
		op, err = "stop", c.cli.ContainerStop(ctx, s.id, container.StopOptions{Timeout: &stopNow})
	case n < 30:
		op, err = "kill", c.cli.ContainerKill(ctx, s.id, "KILL")
	case n < 50:
		op, err = "start", c.cli.ContainerStart(ctx, s.id, container.StartOptions{})
	case n < 65:
		op, err = "restart", c.cli.ContainerRestart(ctx, s.id, container.StopOptions{Timeout: &stopNow})
	case n < 80:
		s.gen++
		op, err = "rename", c.cli.ContainerRename(ctx, s.id, fmt.Sprintf("soak-%d-%d", s.n, s.gen))
	default:
		op, err = "remove", c.cli.ContainerRemove(ctx, s.id, container.RemoveOptions{Force: true})
		if err == nil {
			s.id = ""
		}
	}
	if errdefs.IsNotFound(err) {
		s.id = ""
	}
	return op, err
}

// create runs a container publishing one or two ports on loopback, some
// with a restart policy and some with a SERVICE_NAME label.
func (c *churn) create(ctx context.Context, s *slot, r *rand.Rand) error {
	ports := []string{"80"}
	if r.IntN(3) == 0 {
		ports = append(ports, "53/udp")
	}
	exposed, bindings := nat.PortSet{}, nat.PortMap{}
	for _, p := range ports {
		np := nat.Port(p)
		if !strings.Contains(p, "/") {
			np = nat.Port(p + "/tcp")
		}
		exposed[np] = struct{}{}
		bindings[np] = []nat.PortBinding{{HostIP: "127.0.0.1"}}
	}
	labels := map[string]string{label: "1", soakLabel: "1"}
	if r.IntN(3) == 0 {
		labels["SERVICE_NAME"] = "soak" + strconv.Itoa(r.IntN(3))
	}
	hc := &container.HostConfig{PortBindings: bindings}
	if r.IntN(4) == 0 {
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyAlways}
	}
	s.gen++
	name := fmt.Sprintf("soak-%d-%d", s.n, s.gen)
	cr, err := c.cli.ContainerCreate(ctx, &container.Config{Image: imgSvc, Cmd: ports, Labels: labels, ExposedPorts: exposed}, hc, nil, nil, name)
	if err != nil {
		return err
	}
	s.id = cr.ID
	return c.cli.ContainerStart(ctx, cr.ID, container.StartOptions{})
}

// entry is one registration as the checker compares it: name and address.
type entry struct {
	Name string
	Addr string
}

// wantFromDocker is what the registries must hold for the running soak
// containers: service ID → name and published address.
func wantFromDocker(ctx context.Context, cli *client.Client) (map[string]entry, error) {
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", soakLabel))})
	if err != nil {
		return nil, err
	}
	want := map[string]entry{}
	for _, c := range cs {
		if c.State != "running" || len(c.Names) == 0 {
			continue
		}
		name := cmp.Or(c.Labels["SERVICE_NAME"], "svc")
		published := slices.DeleteFunc(slices.Clone(c.Ports), func(p container.Port) bool { return p.PublicPort == 0 })
		for _, p := range published {
			if len(published) > 1 { // the contract's rule for several ports
				name = cmp.Or(c.Labels["SERVICE_NAME"], "svc") + "-" + strconv.Itoa(int(p.PrivatePort))
			}
			sid := id(strings.TrimPrefix(c.Names[0], "/"), strconv.Itoa(int(p.PrivatePort)))
			if p.Type == "udp" {
				sid += ":udp"
			}
			want[sid] = entry{Name: name, Addr: p.IP + ":" + strconv.Itoa(int(p.PublicPort))}
		}
	}
	return want, nil
}

// soakDiff is how the registries differ from what runs.
type soakDiff struct {
	stale, missing int
	text           string
}

// compare checks Consul and etcd against want.
func compare(want map[string]entry) (*soakDiff, error) {
	consul, err := registered()
	if err != nil {
		return nil, err
	}
	keys, err := kv("/soak/")
	if err != nil {
		return nil, err
	}
	got := map[string]map[string]entry{"consul": {}, "etcd": {}}
	for id, s := range consul {
		got["consul"][id] = entry{Name: s.Name, Addr: s.Address + ":" + strconv.Itoa(s.Port)}
	}
	for k, v := range keys {
		parts := strings.SplitN(strings.TrimPrefix(k, "/soak/"), "/", 2)
		if len(parts) != 2 {
			got["etcd"][k] = entry{Addr: v}
			continue
		}
		got["etcd"][parts[1]] = entry{Name: parts[0], Addr: v}
	}
	var d soakDiff
	var lines []string
	for _, backend := range []string{"consul", "etcd"} {
		for id, e := range got[backend] {
			if w, ok := want[id]; !ok || w != e {
				d.stale++
				lines = append(lines, fmt.Sprintf("  %s: stale %s %+v (want %+v)", backend, id, e, w))
			}
		}
		for id, w := range want {
			if _, ok := got[backend][id]; !ok {
				d.missing++
				lines = append(lines, fmt.Sprintf("  %s: missing %s %+v", backend, id, w))
			}
		}
	}
	if len(lines) == 0 {
		return nil, nil
	}
	slices.Sort(lines)
	d.text = strings.Join(lines, "\n")
	return &d, nil
}

// converge waits until the registries equal what runs, on three polls in a
// row, and returns how long after since that was; after soakSettle it
// returns the difference instead.
func converge(t *testing.T, cli *client.Client, since time.Time) (time.Duration, *soakDiff) {
	t.Helper()
	start := time.Now()
	var first time.Time
	streak := 0
	var last *soakDiff
	for time.Since(start) < soakSettle {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		want, err := wantFromDocker(ctx, cli)
		cancel()
		var diff *soakDiff
		if err == nil {
			diff, err = compare(want)
		}
		switch {
		case err != nil:
			streak = 0
			last = &soakDiff{text: "  cannot compare: " + err.Error()}
		case diff != nil:
			streak, last = 0, diff
		default:
			if streak == 0 {
				first = time.Now()
			}
			if streak++; streak == 3 {
				return first.Sub(since), nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, last
}

// machine describes this machine for the figures.
func machine() string {
	out, _ := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Output()
	return fmt.Sprintf("%d cores, Docker %s", runtime.NumCPU(), strings.TrimSpace(string(out)))
}
