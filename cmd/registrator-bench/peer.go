package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/testproc"
)

// The side-by-side mode (-peer PATH): this daemon and the program users
// run instead, gliderlabs/registrator (built by
// ../shared/peer/build-registrator.sh), through the same phases on one
// Consul dev agent (the peer speaks etcd's v2 API only), each run taking
// them in turn (every other run the peer first). Both run with their
// defaults but -internal (and -resync 1 for the steady state), as users
// run them: the peer's default is no resync at all, ours 30 s. Both are
// measured alike, from outside: what the agent holds and /proc, never our
// metrics or log.

// program is one daemon under comparison.
type program struct {
	name string
	file string // the name of its logs under -logs
	bin  string
	args []string // before every phase's own
	env  []string
}

// burstWait is how long after the last command of a burst the registry is
// watched; what it does not hold then is counted as missed.
const burstWait = 60 * time.Second

func sideBySide(peerBin string, latencyN int, syncNs, burstNs []int, steadyFor time.Duration, runs int, out, logs, logLevel string) error {
	dir, err := os.MkdirTemp("", "registrator-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if logs != "" {
		if err := os.MkdirAll(logs, 0o755); err != nil {
			return err
		}
	}
	ours := program{name: "registrator (ours)", file: "ours", bin: dir + "/registrator"}
	if logLevel != "" { // to read in its log what an odd figure waited on
		ours.args = []string{"-log-level", logLevel}
	}
	if err := testkit.BuildDaemon(ours.bin); err != nil {
		return err
	}
	// gliderlabs/registrator reads DOCKER_HOST, else /tmp/docker.sock.
	peer := program{name: "gliderlabs/registrator", file: "peer", bin: peerBin, env: []string{"DOCKER_HOST=unix:///var/run/docker.sock"}}
	if err := buildImage(dir); err != nil {
		return err
	}
	removeContainers()
	defer removeContainers()
	a, err := consultest.Start()
	if err != nil {
		return err
	}
	defer a.Stop()
	host, _ := os.Hostname()
	s := &side{agent: a, host: host, logs: logs}

	rep := sideReport{Machine: machine(), Runs: runs, PerRun: map[string][]figures{}}
	progs := []program{ours, peer}
	// The steady state runs over the largest sync's containers.
	steady := len(syncNs) > 0 && steadyFor > 0
	for run := range runs {
		order := slices.Clone(progs)
		if run%2 == 1 {
			slices.Reverse(order)
		}
		fs := map[string]*figures{}
		for _, p := range progs {
			fs[p.name] = &figures{SyncS: map[string]float64{}, PeakRSSMB: map[string]float64{}, BurstStartS: map[string]float64{},
				BurstMissed: map[string]float64{}, BurstRmS: map[string]float64{}, BurstLeft: map[string]float64{}}
		}
		each := func(phase string, f func(p program, fig *figures) error) error {
			s.phase = fmt.Sprintf("run%d-%s", run+1, strings.ReplaceAll(phase, " ", "-"))
			for _, p := range order {
				settle()
				if err := f(p, fs[p.name]); err != nil {
					return fmt.Errorf("%s, %s: %w", p.name, phase, err)
				}
			}
			return nil
		}
		if latencyN > 0 {
			if err := each("latency", func(p program, fig *figures) error { return s.latency(p, fig, latencyN) }); err != nil {
				return err
			}
		}
		running := 0
		for _, n := range syncNs {
			if err := startContainers("bench-sync", running, n); err != nil {
				return err
			}
			running = n
			if err := each(fmt.Sprintf("startup sync of %d", n), func(p program, fig *figures) error { return s.sync(p, fig, n) }); err != nil {
				return err
			}
		}
		if steady {
			if err := each("steady state", func(p program, fig *figures) error { return s.steady(p, fig, running, steadyFor) }); err != nil {
				return err
			}
		}
		removeContainers()
		for _, n := range burstNs {
			if err := each(fmt.Sprintf("burst of %d", n), func(p program, fig *figures) error { return s.burst(p, fig, n) }); err != nil {
				return err
			}
		}
		for _, p := range progs {
			rep.PerRun[p.name] = append(rep.PerRun[p.name], *fs[p.name])
		}
		fmt.Fprintf(os.Stderr, "registrator-bench: side-by-side run %d of %d done\n", run+1, runs)
	}
	printSide(rep, ours.name, peer.name, syncNs, steady, burstNs)
	if out != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// side is the agent both programs write to.
type side struct {
	agent *consultest.Agent
	host  string
	logs  string // -logs: the programs' logs are kept here, one file per program and phase
	phase string // the phase running, for the logs' names
}

// running is one program started against the agent.
type running struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *side) start(p program, args ...string) (*running, error) {
	r := &running{done: make(chan struct{})}
	r.cmd = exec.Command(p.bin, append(append(append([]string{"-internal"}, p.args...), args...), "consul://"+s.agent.Addr)...)
	r.cmd.Env = append(os.Environ(), p.env...)
	if s.logs != "" { // both log every registration: kept only when asked for
		f, err := os.OpenFile(filepath.Join(s.logs, s.phase+"-"+p.file+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child has its own descriptor
		r.cmd.Stderr = f
	}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	return r, nil
}

// fresh empties the agent, and its catalog, and starts the program
// against it.
func (s *side) fresh(p program, args ...string) (*running, error) {
	if err := s.agent.Empty(context.Background()); err != nil {
		return nil, err
	}
	return s.start(p, args...)
}

func (r *running) stop() { testkit.Stop(r.cmd.Process, r.done, 10*time.Second) }

// count is how many entries of the bench's containers the agent holds.
func (s *side) count(ctx context.Context) (int, error) {
	all, err := s.agent.Client().Agent().ServicesWithFilterOpts("", (&api.QueryOptions{}).WithContext(ctx))
	n := 0
	for id := range all {
		if strings.HasPrefix(id, s.host+":bench-") {
			n++
		}
	}
	return n, err
}

// waitCount waits until the agent holds n entries, for at most timeout;
// it returns how many it held last. Every 20 ms it asks the agent how many
// services it holds in all (cheap); it lists them, to count the bench's
// own, until it knows how many of the agent's are not the bench's, and
// then only when the count says the bench's may be n. What is not the
// bench's is taken from a list only when the agent's count was the same
// before and after it: an entry written or removed during the list would
// skew it, and a skewed one never let the count say n (a burst's removal
// once timed out at 60 s with every entry gone).
func (s *side) waitCount(n int, timeout time.Duration) int {
	ctx := context.Background()
	last, others := -1, -1
	_ = pollUntil(ctx, 20*time.Millisecond, timeout, func() (bool, error) {
		held, err := s.agent.Held()
		if err != nil || (others >= 0 && held-others != n) {
			return false, err
		}
		c, err := s.count(ctx)
		if err != nil {
			return false, err
		}
		last = c
		if after, err := s.agent.Held(); err == nil && after == held {
			others = held - c
		} else {
			others = -1
		}
		return c == n, nil
	})
	if last != n {
		if c, err := s.count(ctx); err == nil {
			last = c
		}
	}
	return last
}

// latency starts n containers one at a time: from StartedAt to the
// catalog listing the service. Before each, the floor: one plain agent
// write, timed to the catalog listing it; and the engine's start event
// after StartedAt.
func (s *side) latency(p program, fig *figures, n int) error {
	ctx := context.Background()
	r, err := s.fresh(p)
	if err != nil {
		return err
	}
	defer r.stop()
	defer removeContainers()
	events, stopEvents, err := startEvents()
	if err != nil {
		return err
	}
	defer stopEvents()
	var lat, write, event []float64
	for i := range n {
		probe := fmt.Sprintf("floor-%d", i)
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		seen, err := catalogSeen(pctx, s.agent.Client().Catalog(), "floor", probe)
		if err == nil {
			t0 := time.Now()
			err = s.agent.Client().Agent().ServiceRegisterOpts(&api.AgentServiceRegistration{ID: probe, Name: "floor", Port: 80, Address: "172.17.0.2"},
				api.ServiceRegisterOpts{}.WithContext(pctx))
			if at, ok := <-seen; err == nil && ok {
				write = append(write, float64(at.Sub(t0).Microseconds())/1000)
			}
			_ = s.agent.Client().Agent().ServiceDeregister(probe)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}

		name := fmt.Sprintf("bench-lat-%d", i)
		pctx, cancel = context.WithTimeout(ctx, 20*time.Second)
		seen, err = catalogSeen(pctx, s.agent.Client().Catalog(), "svc", s.host+":"+name+":80")
		if err == nil {
			_, err = docker("run", "-d", "--label", label+"=1", "--name", name, "--expose", "80", image, "80")
		}
		if err == nil {
			visible, ok := <-seen
			var started string
			if !ok {
				err = fmt.Errorf("%s never registered", name)
			} else if started, err = docker("inspect", "-f", "{{.State.StartedAt}}", name); err == nil {
				var at time.Time
				if at, err = time.Parse(time.RFC3339Nano, started); err == nil {
					lat = append(lat, float64(visible.Sub(at).Microseconds())/1000)
					if ev := events.at(name, time.Second); ev != nil {
						event = append(event, float64(ev.at.Sub(at).Microseconds())/1000)
					}
				}
			}
		}
		cancel()
		if err != nil {
			return err
		}
	}
	fig.LatencyMS = map[string]float64{"median": percentile(lat, 50), "p90": percentile(lat, 90)}
	fig.FloorMS = map[string]float64{"start_event": percentile(event, 50), "agent_write": percentile(write, 50)}
	fig.FloorMS["sum"] = fig.FloorMS["start_event"] + fig.FloorMS["agent_write"]
	return nil
}

// sync starts the program over n running containers against the emptied
// agent: until the agent holds all n; then its peak RSS.
func (s *side) sync(p program, fig *figures, n int) error {
	if err := s.agent.Empty(context.Background()); err != nil {
		return err
	}
	start := time.Now() // from the program's start, the agent emptied before
	r, err := s.start(p)
	if err != nil {
		return err
	}
	defer r.stop()
	if got := s.waitCount(n, 5*time.Minute); got != n {
		return fmt.Errorf("%d of %d registered after 5 minutes", got, n)
	}
	fig.SyncS[strconv.Itoa(n)] = time.Since(start).Seconds()
	fig.PeakRSSMB[strconv.Itoa(n)] = float64(testproc.StatusKiB(r.cmd.Process.Pid, "VmHWM")) / 1024
	return nil
}

// steady: the program with -resync 1 over n unchanged containers, its CPU
// seconds per minute.
func (s *side) steady(p program, fig *figures, n int, dur time.Duration) error {
	r, err := s.fresh(p, "-resync", "1")
	if err != nil {
		return err
	}
	defer r.stop()
	if got := s.waitCount(n, 5*time.Minute); got != n {
		return fmt.Errorf("%d of %d registered after 5 minutes", got, n)
	}
	time.Sleep(3 * time.Second) // the first passes settle
	cpu0, err := processCPU(r.cmd.Process.Pid)
	if err != nil {
		return err
	}
	time.Sleep(dur)
	cpu1, err := processCPU(r.cmd.Process.Pid)
	if err != nil {
		return err
	}
	fig.SteadyCPU = (cpu1 - cpu0) / dur.Minutes()
	return nil
}

// burst creates n containers, then starts them all at once, then removes
// them all at once, each through the engine's API from this one process
// (n docker CLI processes at once do not survive a 2-core machine at
// n = 500): from the last start's (removal's) answer to the agent holding
// all (none), and what it still misses (holds) burstWait later.
func (s *side) burst(p program, fig *figures, n int) error {
	ctx := context.Background()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	defer removeContainers()
	ids := make([]string, n)
	if err := parallel(n, 8, func(i int) error {
		c, err := cli.ContainerCreate(ctx, &container.Config{
			Image: image, Cmd: []string{"80"}, Labels: map[string]string{label: "1"},
			ExposedPorts: nat.PortSet{"80/tcp": struct{}{}},
		}, nil, nil, nil, fmt.Sprintf("bench-burst-%d", i))
		ids[i] = c.ID
		return err
	}); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	r, err := s.fresh(p)
	if err != nil {
		return err
	}
	defer r.stop()
	time.Sleep(time.Second) // subscribed to the engine's events
	k := strconv.Itoa(n)
	if err := parallel(n, n, func(i int) error { return cli.ContainerStart(ctx, ids[i], container.StartOptions{}) }); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	last := time.Now()
	got := s.waitCount(n, burstWait)
	fig.BurstStartS[k], fig.BurstMissed[k] = time.Since(last).Seconds(), float64(n-got)
	if err := parallel(n, n, func(i int) error {
		return cli.ContainerRemove(ctx, ids[i], container.RemoveOptions{Force: true})
	}); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	last = time.Now()
	got = s.waitCount(0, burstWait)
	fig.BurstRmS[k], fig.BurstLeft[k] = time.Since(last).Seconds(), float64(got)
	return nil
}
