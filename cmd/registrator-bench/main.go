// Command registrator-bench measures the daemon against the real Docker
// engine and real Consul and etcd servers, and prints one table and writes
// it as JSON. See docs/performance.md.
//
//	go run ./cmd/registrator-bench -out docs/performance.json
//
// It builds the daemon and the test image, starts its own Consul dev agent
// and etcd server on loopback, and measures, each run, every backend in
// turn over the same containers (every other run in the opposite order),
// waiting before each phase until the machine is nine tenths idle:
//   - latency: containers started one at a time; from the container's
//     State.StartedAt to the service visible in the backend (a blocking
//     query of Consul's catalog, an etcd watch), split into the engine's,
//     the daemon's and the backend's parts by the daemon's debug log;
//   - startup sync: N containers already running, from daemon start to all
//     N registered (the backend's answers to the daemon's writes, counted
//     by the daemon's metrics, then checked in the backend);
//   - burst: B containers started concurrently; from the last `docker run`
//     returning to the last registration, and the same for removal (the
//     same way);
//   - steady state: N containers unchanged, -resync 1: backend writes and
//     CPU seconds per minute;
//   - memory: the daemon's peak RSS over the run, and the peak of its
//     anonymous part (RSS less the pages of the binary), sampled every
//     50 ms.
//
// Containers use -internal (exposed ports, nothing published), so that the
// engine starts no docker-proxy per port; the daemon's work is the same.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/registrator/registrator/internal/testkit"
)

const (
	label = "registrator-bench"
	image = "bench.local/svc:latest"
)

type result struct {
	Backend      string             `json:"backend"`
	LatencyMS    map[string]float64 `json:"latency_ms"` // median, p90, p99
	LatencyCount int                `json:"latency_count"`
	// The same, to the backend's acknowledgement of the registration
	// (the daemon's log) instead of the bench's reader seeing it.
	LatencyAckedMS map[string]float64 `json:"latency_acked_ms"`
	// Every container's latency in the order they started, split into
	// its parts; in each run's figures, not in the medians.
	LatencySamples []latencyParts `json:"latency_samples_ms,omitempty"`
	// Where the latency goes: the median of each part; and the parts of
	// the slowest container (over all runs, in the medians).
	LatencySplitMS map[string]float64 `json:"latency_split_ms"`
	LatencyWorstMS latencyParts       `json:"latency_worst_ms"`
	// The engine's start event after StartedAt (median), and the backend's
	// answer to a registration (mean, from the daemon's
	// registrator_write_duration_seconds).
	LatencyEventMS float64            `json:"latency_start_event_ms"`
	LatencyWriteMS float64            `json:"latency_backend_write_ms"`
	StartupSync    map[string]float64 `json:"startup_sync_s"` // by N
	// The backend alone: N registrations like the daemon's by a plain
	// client, as many at a time as the daemon's workers, into the emptied
	// backend; by N.
	BackendAlone    map[string]float64 `json:"startup_sync_backend_alone_s"`
	BurstN          int                `json:"burst_n"`
	BurstStartS     float64            `json:"burst_start_converged_s"`
	BurstRemoveS    float64            `json:"burst_remove_converged_s"`
	SteadyN         int                `json:"steady_n"`
	SteadyWrites    float64            `json:"steady_writes_per_pass"`
	SteadyCPUPerMin float64            `json:"steady_cpu_s_per_min"`
	PeakRSSMB       float64            `json:"peak_rss_mb"`
	PeakAnonMB      float64            `json:"peak_anon_mb"` // RssAnon, sampled`
}

type report struct {
	Machine map[string]string `json:"machine"`
	Runs    int               `json:"runs"`
	Results []result          `json:"results"`           // per backend, each figure the median over the runs
	PerRun  []result          `json:"per_run,omitempty"` // every run's figures, when there were several
}

func main() {
	latencyN := flag.Int("latency", 50, "containers started one at a time for the latency figures (0 skips them)")
	syncN := flag.String("sync", "100,500", "comma list of N for the startup sync (empty skips it)")
	burstN := flag.Int("burst", 100, "containers started at once for the burst (0 skips it)")
	steadyN := flag.Int("steady", 500, "unchanged containers for the steady state (at least the largest -sync; 0 skips it)")
	steadyFor := flag.Duration("steady-for", 60*time.Second, "how long the steady state is measured")
	backends := flag.String("backends", "consul,etcd", "backends to measure")
	out := flag.String("out", "", "write the results as JSON to this file")
	runs := flag.Int("runs", 1, "repeat the measurement this many times and report each figure's median (the lower middle value for an even count)")
	logLevel := flag.String("log-level", "warn", "the daemon's -log-level; its log goes to the bench's standard error (with -peer: ours runs at its default, info, unless this is given)")
	profile := flag.String("profile", "", "write a CPU profile of the steady state and a heap profile after it to this `directory` (cpu-<backend>.pprof, heap-<backend>.pprof)")
	peer := flag.String("peer", "", "side by side with the program at this `path` (gliderlabs/registrator, built by ../shared/peer/build-registrator.sh) on Consul: latency, startup sync and peak RSS at each -sync, CPU of -resync 1 over -steady-for at the largest, bursts of each -peer-burst; measured alike from outside both")
	logs := flag.String("logs", "", "with -peer: keep both programs' logs in this `directory`, one file per run, phase and program")
	peerBurst := flag.String("peer-burst", "100,500", "with -peer: comma list of burst sizes (empty skips the bursts)")
	measure := flag.Bool("parts", false, "print what each large dependency costs in binary size and idle memory, each built alone into a program that only imports it, then exit")
	flag.Parse()
	if *measure {
		if err := measureParts(); err != nil {
			fmt.Fprintln(os.Stderr, "registrator-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *peer != "" {
		syncNs, err1 := numbers(*syncN)
		burstNs, err2 := numbers(*peerBurst)
		err := cmp.Or(err1, err2)
		level := "" // side by side, both run at their defaults unless asked
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "log-level" {
				level = f.Value.String()
			}
		})
		if err == nil {
			err = sideBySide(*peer, *latencyN, syncNs, burstNs, *steadyFor, *runs, *out, *logs, level)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "registrator-bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*latencyN, *syncN, *burstN, *steadyN, *steadyFor, strings.Split(*backends, ","), *out, *profile, *logLevel, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "registrator-bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	daemon   string // the built binary
	host     string
	profile  string // directory for the steady state's profiles, or ""
	logLevel string // the daemon's

	mu sync.Mutex // guards the targets' peaks
}

func run(latencyN int, syncList string, burstN, steadyN int, steadyFor time.Duration, backends []string, out, profile, logLevel string, runs int) error {
	if runs < 1 {
		return fmt.Errorf("-runs %d: at least 1", runs)
	}
	dir, err := os.MkdirTemp("", "registrator-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{daemon: filepath.Join(dir, "registrator"), profile: profile, logLevel: logLevel}
	b.host, _ = os.Hostname()
	// Built as `make build` and the image build it: static, stripped.
	if err := testkit.BuildDaemon(b.daemon); err != nil {
		return err
	}
	if err := buildImage(dir); err != nil {
		return err
	}
	removeContainers()
	defer removeContainers()

	syncNs, err := numbers(syncList)
	if err != nil {
		return err
	}

	var targets []*target
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	for _, name := range backends {
		t, err := startTarget(name)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	rep := report{Machine: machine(), Runs: runs}
	perBackend := make([][]result, len(targets))
	for i := range runs {
		rs, err := b.measure(targets, i, latencyN, syncNs, burstN, steadyN, steadyFor)
		if err != nil {
			return err
		}
		for j := range rs {
			perBackend[j] = append(perBackend[j], rs[j])
		}
		fmt.Fprintf(os.Stderr, "registrator-bench: run %d of %d done\n", i+1, runs)
	}
	for _, rs := range perBackend {
		rep.Results = append(rep.Results, medianOf(rs))
		if runs > 1 {
			rep.PerRun = append(rep.PerRun, rs...)
		}
	}
	printTable(rep)
	if out != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// numbers reads a comma list of positive numbers, sorted; an empty list
// is none.
func numbers(list string) ([]int, error) {
	var out []int
	if strings.TrimSpace(list) == "" {
		return nil, nil // none: the phase is skipped
	}
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: not a list of positive numbers", list)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// measure is one run: each phase for every target in turn, over the same
// containers (starting 500 containers takes longer than the rest of a
// run). Every other run takes the targets in the opposite order, so that
// neither always comes first after the engine has started containers.
func (b *bench) measure(targets []*target, run, latencyN int, syncNs []int, burstN, steadyN int, steadyFor time.Duration) ([]result, error) {
	rs := make([]result, len(targets))
	order := make([]int, len(targets))
	for i := range targets {
		rs[i] = result{Backend: targets[i].name, StartupSync: map[string]float64{}, BackendAlone: map[string]float64{}}
		order[i] = i
		targets[i].peak, targets[i].anon = 0, 0
	}
	if run%2 == 1 {
		slices.Reverse(order)
	}
	each := func(phase string, f func(t *target, r *result) error) error {
		for _, i := range order {
			if err := f(targets[i], &rs[i]); err != nil {
				return fmt.Errorf("%s, %s: %w", targets[i].name, phase, err)
			}
		}
		return nil
	}
	if latencyN > 0 {
		settle()
		if err := each("latency", func(t *target, r *result) error { return b.latency(t, r, latencyN) }); err != nil {
			return nil, err
		}
	}
	running := 0
	for _, n := range syncNs {
		if err := startContainers("bench-sync", running, n); err != nil {
			return nil, err
		}
		running = n
		settle()
		if err := each(fmt.Sprintf("startup sync of %d", n), func(t *target, r *result) error { return b.startupSync(t, r, n) }); err != nil {
			return nil, err
		}
	}
	if steadyN > running {
		if err := startContainers("bench-sync", running, steadyN); err != nil {
			return nil, err
		}
		running = steadyN
		settle()
	}
	if steadyN > 0 {
		if err := each("steady state", func(t *target, r *result) error { return b.steady(t, r, running, steadyFor) }); err != nil {
			return nil, err
		}
	}
	removeContainers()
	if burstN > 0 {
		settle()
		if err := each("burst", func(t *target, r *result) error { return b.burst(t, r, burstN) }); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, t := range targets {
		rs[i].PeakRSSMB, rs[i].PeakAnonMB = t.peak, t.anon
	}
	return rs, nil
}

// medianOf is one result whose every figure is the median of that figure
// over rs (all of one backend).
func medianOf(rs []result) result {
	med := func(f func(r result) float64) float64 {
		vals := make([]float64, len(rs))
		for i, r := range rs {
			vals[i] = f(r)
		}
		return percentile(vals, 50)
	}
	out := rs[0]
	if len(rs) > 1 { // they stay in each run's figures
		out.LatencySamples = nil
	}
	out.LatencySplitMS = map[string]float64{}
	for k := range rs[0].LatencySplitMS {
		out.LatencySplitMS[k] = med(func(r result) float64 { return r.LatencySplitMS[k] })
	}
	var worsts []latencyParts
	for _, r := range rs {
		worsts = append(worsts, r.LatencyWorstMS)
	}
	out.LatencyWorstMS = worst(worsts)
	out.LatencyMS, out.LatencyAckedMS = map[string]float64{}, map[string]float64{}
	for _, k := range []string{"median", "p90", "p99"} {
		out.LatencyMS[k] = med(func(r result) float64 { return r.LatencyMS[k] })
		out.LatencyAckedMS[k] = med(func(r result) float64 { return r.LatencyAckedMS[k] })
	}
	out.StartupSync = map[string]float64{}
	for k := range rs[0].StartupSync {
		out.StartupSync[k] = med(func(r result) float64 { return r.StartupSync[k] })
	}
	out.BackendAlone = map[string]float64{}
	for k := range rs[0].BackendAlone {
		out.BackendAlone[k] = med(func(r result) float64 { return r.BackendAlone[k] })
	}
	out.LatencyEventMS = med(func(r result) float64 { return r.LatencyEventMS })
	out.LatencyWriteMS = med(func(r result) float64 { return r.LatencyWriteMS })
	out.BurstStartS = med(func(r result) float64 { return r.BurstStartS })
	out.BurstRemoveS = med(func(r result) float64 { return r.BurstRemoveS })
	out.SteadyWrites = med(func(r result) float64 { return r.SteadyWrites })
	out.SteadyCPUPerMin = med(func(r result) float64 { return r.SteadyCPUPerMin })
	out.PeakRSSMB = med(func(r result) float64 { return r.PeakRSSMB })
	out.PeakAnonMB = med(func(r result) float64 { return r.PeakAnonMB })
	return out
}
