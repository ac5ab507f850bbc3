package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/testproc"
)

// id is the service ID the daemon gives port 80 of a container.
func (b *bench) id(container string) string { return b.host + ":" + container + ":80" }

// daemon is one run of the registrator binary.
type daemon struct {
	b    *bench
	t    *target
	cmd  *exec.Cmd
	addr string // its -http-addr
	prof string // its -pprof-addr, when profiled
	done chan struct{}
}

func (b *bench) start(t *target, args ...string) (*daemon, error) {
	return b.launch(t, nil, args...)
}

// traced starts the daemon logging at debug level into a daemonLog.
func (b *bench) traced(t *target, args ...string) (*daemon, *daemonLog, error) {
	l := newDaemonLog(b.logLevel)
	d, err := b.launch(t, l, args...)
	return d, l, err
}

// freeAddr is a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (b *bench) launch(t *target, dl *daemonLog, args ...string) (*daemon, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	d := &daemon{b: b, t: t, addr: addr, done: make(chan struct{})}
	flags := []string{"-internal", "-http-addr", addr, "-log-level", b.logLevel}
	var pw *io.PipeWriter
	if dl != nil {
		flags = []string{"-internal", "-http-addr", addr, "-log-level", "debug", "-log-format", "json"}
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		go dl.read(pr)
	}
	d.cmd = exec.Command(b.daemon, append(append(flags, args...), t.uri)...)
	d.cmd.Stderr = os.Stderr
	if pw != nil {
		d.cmd.Stderr = pw
	}
	if err := d.cmd.Start(); err != nil {
		if pw != nil {
			pw.Close()
		}
		return nil, err
	}
	go func() {
		_ = d.cmd.Wait()
		if pw != nil {
			pw.Close()
		}
		close(d.done)
	}()
	go d.sampleAnon()
	return d, nil
}

// sampleAnon keeps the peak of the daemon's anonymous RSS (the kernel
// keeps only the peak of the whole, VmHWM) until it exits.
func (d *daemon) sampleAnon() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-tick.C:
			kib := testproc.StatusKiB(d.cmd.Process.Pid, "RssAnon")
			d.b.mu.Lock()
			d.t.anon = max(d.t.anon, float64(kib)/1024)
			d.b.mu.Unlock()
		}
	}
}

// stop ends the daemon, noting its peak RSS.
func (d *daemon) stop() {
	d.b.mu.Lock()
	d.t.peak = max(d.t.peak, float64(testproc.StatusKiB(d.cmd.Process.Pid, "VmHWM"))/1024)
	d.b.mu.Unlock()
	testkit.Stop(d.cmd.Process, d.done, 10*time.Second)
}

// profile saves the daemon's /debug/pprof/<what> in file.
func (d *daemon) profile(what, file string) error {
	resp, err := http.Get("http://" + d.prof + "/debug/pprof/" + what)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", what, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpu is the daemon's user and system CPU seconds so far.
func (d *daemon) cpu() (float64, error) { return processCPU(d.cmd.Process.Pid) }

// processCPU is a process's user and system CPU seconds so far.
func processCPU(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name in parentheses: utime is the 14th field
	// of the line, stime the 15th; clock ticks of 1/100 s on Linux.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil
}

// scrape reads the daemon's metrics.
func (d *daemon) scrape() (testkit.Metrics, error) {
	return testkit.Scrape("http://" + d.addr + "/metrics")
}

// written is how many writes of action ("register" or "deregister") the
// backend has accepted from the daemon.
func (d *daemon) written(action string) (int, error) {
	m, err := d.scrape()
	return int(m.Sum("registrator_writes_total", `action="`+action+`"`, `result="ok"`)), err
}

// histogram reads the sum and count of a histogram of the daemon, over
// the series whose labels contain label.
func (d *daemon) histogram(name, label string) (sum, count float64, err error) {
	m, err := d.scrape()
	return m.Sum(name+"_sum", label), m.Sum(name+"_count", label), err
}

// writesAndPasses reads the daemon's write and reconcile counters.
func (d *daemon) writesAndPasses() (writes, passes float64, err error) {
	m, err := d.scrape()
	return m.Sum("registrator_writes_total"), m.Sum("registrator_reconciles_total"), err
}

// startEvents follows the engine's container start events, by container
// name, through `docker events`.
func startEvents() (*startTimes, func(), error) {
	cmd := exec.Command("docker", "events", "--filter", "type=container", "--filter", "event=start", "--format", "{{.TimeNano}} {{.Actor.Attributes.name}}")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	st := &startTimes{byName: map[string]eventStamp{}}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			received := time.Now()
			ns, name, ok := strings.Cut(sc.Text(), " ")
			n, err := strconv.ParseInt(ns, 10, 64)
			if !ok || err != nil {
				continue
			}
			st.mu.Lock()
			st.byName[name] = eventStamp{at: time.Unix(0, n), received: received}
			st.mu.Unlock()
		}
	}()
	return st, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}

type startTimes struct {
	mu     sync.Mutex
	byName map[string]eventStamp
}

// eventStamp is when the engine stamped an event, and when the bench read
// it.
type eventStamp struct{ at, received time.Time }

// at is the container's start event, waiting up to wait for the stream to
// deliver it; nil if it did not.
func (st *startTimes) at(name string, wait time.Duration) *eventStamp {
	var t eventStamp
	if !waitFor(wait, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		var ok bool
		t, ok = st.byName[name]
		return ok
	}) {
		return nil
	}
	return &t
}

func docker(args ...string) (string, error) { return testkit.Docker(args...) }

// startContainers runs containers prefix-from .. prefix-(to-1), 8 at a time.
func startContainers(prefix string, from, to int) error {
	return parallel(to-from, 8, func(i int) error {
		_, err := docker("run", "-d", "--label", label+"=1", "--name", fmt.Sprintf("%s-%d", prefix, from+i), "--expose", "80", image, "80")
		return err
	})
}

// parallel runs f(0..n-1), at most conc at a time, and returns the first error.
func parallel(n, conc int, f func(i int) error) error {
	sem := make(chan struct{}, conc)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// settle waits, up to 30 s, until the machine is nine tenths idle over a
// second: after starting hundreds of containers the engine goes on working
// for a while, and a measurement started at once would time the engine's
// leftovers too.
func settle() {
	for range 30 {
		busy0, all0 := cpuTimes()
		time.Sleep(time.Second)
		busy1, all1 := cpuTimes()
		if all1 > all0 && (busy1-busy0)/(all1-all0) < 0.1 {
			return
		}
	}
}

// cpuTimes is the machine's busy and total CPU time so far (in ticks, from
// /proc/stat).
func cpuTimes() (busy, all float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is counted in user time already.
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseFloat(v, 64)
		all += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, all
}

func removeContainers() { testkit.RemoveContainers(label) }

// pollUntil asks f every interval until it says yes, for at most timeout.
func pollUntil(ctx context.Context, every, timeout time.Duration, f func() (bool, error)) error {
	return testkit.Eventually(ctx, timeout, every, func() error {
		ok, err := f()
		if ok {
			return nil
		}
		if err == nil {
			err = errors.New("not yet")
		}
		return err
	})
}

// percentile of values (nearest rank).
func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// buildImage builds the test image FROM scratch from e2e/testsvc.
func buildImage(dir string) error {
	ctxDir := filepath.Join(dir, "image")
	if err := os.Mkdir(ctxDir, 0o755); err != nil {
		return err
	}
	return testkit.BuildImages(ctxDir, testkit.Image{Tags: []string{image}})
}

// machine records what the figures come from.
func machine() map[string]string {
	m := map[string]string{"cores": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(), "date": time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			m["memory"] = fmt.Sprintf("%.1f GiB", kb/1024/1024)
		}
	}
	if v, err := docker("version", "-f", "{{.Server.Version}}"); err == nil {
		m["docker"] = v
	}
	if bin, err := consultest.Binary(); err == nil {
		if out, err := exec.Command(bin, "version").Output(); err == nil {
			m["consul"] = strings.SplitN(string(out), "\n", 2)[0]
		}
	}
	if out, err := exec.Command("etcd", "--version").Output(); err == nil {
		m["etcd"] = strings.SplitN(string(out), "\n", 2)[0]
	}
	return m
}

func printTable(rep report) {
	fmt.Printf("machine: %v\n\n", rep.Machine)
	fmt.Printf("%-8s %-42s %-22s %-20s %-22s %-8s\n", "backend", "latency ms (med/p90/p99)", "startup sync s", "burst s (start/rm)", "steady (writes, cpu/min)", "peak RSS (anon)")
	for _, r := range rep.Results {
		var sync []string
		for _, k := range slices.Sorted(maps.Keys(r.StartupSync)) {
			sync = append(sync, fmt.Sprintf("%s: %.2f", k, r.StartupSync[k]))
		}
		fmt.Printf("%-8s %-42s %-22s %-20s %-22s %.1f MB (%.1f)\n", r.Backend,
			fmt.Sprintf("%.1f / %.1f / %.1f (n=%d)", r.LatencyMS["median"], r.LatencyMS["p90"], r.LatencyMS["p99"], r.LatencyCount),
			strings.Join(sync, ", "),
			fmt.Sprintf("%.2f / %.2f (n=%d)", r.BurstStartS, r.BurstRemoveS, r.BurstN),
			fmt.Sprintf("%.1f, %.2f s (n=%d)", r.SteadyWrites, r.SteadyCPUPerMin, r.SteadyN),
			r.PeakRSSMB, r.PeakAnonMB)
	}
	fmt.Println()
	for _, r := range rep.Results {
		if r.LatencyCount > 0 {
			fmt.Printf("%s latency: the engine's start event %.1f ms after StartedAt (median); the backend's answer to a registration %.1f ms (mean)\n",
				r.Backend, r.LatencyEventMS, r.LatencyWriteMS)
			fmt.Printf("%s latency to the backend's acknowledgement (ms): %.1f / %.1f / %.1f (med/p90/p99)\n", r.Backend, r.LatencyAckedMS["median"], r.LatencyAckedMS["p90"], r.LatencyAckedMS["p99"])
			fmt.Printf("%s latency, median of each part (ms): %s\n", r.Backend, splitText(r.LatencySplitMS))
			worst := map[string]float64{}
			for k, v := range r.LatencyWorstMS.byName() {
				if v != nil {
					worst[k] = *v
				}
			}
			fmt.Printf("%s latency, the slowest container: %.1f ms = %s\n", r.Backend, r.LatencyWorstMS.Total, splitText(worst))
		}
		for _, k := range slices.Sorted(maps.Keys(r.BackendAlone)) {
			fmt.Printf("%s startup sync of %s: the backend alone took the registrations from a plain client in %.2f s\n", r.Backend, k, r.BackendAlone[k])
		}
	}
}

// splitText lists the parts of a latency in their order.
func splitText(parts map[string]float64) string {
	var out []string
	for _, k := range []string{"start_event", "delivery", "inspect", "write", "read", "bench_delivery", "inspect_took", "bench_stall"} {
		if v, ok := parts[k]; ok {
			out = append(out, fmt.Sprintf("%s %.1f", k, v))
		}
	}
	return strings.Join(out, ", ")
}
