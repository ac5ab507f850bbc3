package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/registrator/registrator/bridge"
)

// latency starts n containers one at a time, and removes them after.
func (b *bench) latency(t *target, r *result, n int) error {
	ctx := context.Background()
	// At debug level, for the daemon's stamps of each container.
	d, dlog, err := b.traced(t, "-resync", "30")
	if err != nil {
		return err
	}
	defer d.stop()
	defer removeContainers()
	events, stopEvents, err := startEvents()
	if err != nil {
		return err
	}
	defer stopEvents()
	hb := startHeartbeat()
	defer hb.stop()
	var lat, acked []float64
	for i := range n {
		name := fmt.Sprintf("bench-lat-%d", i)
		// The poller runs from before `docker run`, so that the CLI's own
		// round trips do not count: it notes when the service first shows.
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		hb.reset()
		delay0 := runDelay()
		seen, err := t.seen(pctx, b.id(name))
		if err != nil {
			cancel()
			return err
		}
		var cid string
		cid, err = docker("run", "-d", "--label", label+"=1", "--name", name, "--expose", "80", image, "80")
		if err == nil {
			// StartedAt is read once the service shows: a `docker
			// inspect` process running beside the registration took CPU
			// from it on two cores.
			visible, ok := <-seen
			stall, delay := hb.gap(), runDelay()-delay0
			var started string
			if !ok {
				err = fmt.Errorf("%s never registered", name)
			} else if started, err = docker("inspect", "-f", "{{.State.StartedAt}}", name); err == nil {
				var at time.Time
				if at, err = time.Parse(time.RFC3339Nano, started); err == nil {
					lat = append(lat, float64(visible.Sub(at).Microseconds())/1000)
					dlog.acked(b.id(name), time.Second)
					p := dlog.parts(bridge.ShortID(cid), b.id(name), at, visible, events.at(name, time.Second))
					p.BenchStall, p.BenchRunDelay = &stall, &delay
					r.LatencySamples = append(r.LatencySamples, p)
					if p.Read != nil {
						acked = append(acked, p.Total-*p.Read)
					}
				}
			}
		}
		cancel()
		if err != nil {
			return err
		}
	}
	if sum, n, err := d.histogram("registrator_write_duration_seconds", `action="register"`); err == nil && n > 0 {
		r.LatencyWriteMS = sum / n * 1000
	}
	r.LatencySplitMS = split(r.LatencySamples)
	r.LatencyWorstMS = worst(r.LatencySamples)
	r.LatencyEventMS = r.LatencySplitMS["start_event"]
	r.LatencyCount = len(lat)
	r.LatencyMS = map[string]float64{"median": percentile(lat, 50), "p90": percentile(lat, 90), "p99": percentile(lat, 99)}
	r.LatencyAckedMS = map[string]float64{"median": percentile(acked, 50), "p90": percentile(acked, 90), "p99": percentile(acked, 99)}
	return nil
}

// startupSync starts the daemon over the n running containers, against an
// emptied backend, and times it until all n are registered. Before, it
// times the backend alone taking n such registrations from a plain client.
func (b *bench) startupSync(t *target, r *result, n int) error {
	ctx := context.Background()
	if err := t.reset(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := parallel(n, bridge.DefaultWorkers, func(i int) error { return t.register(ctx, i) }); err != nil {
		return fmt.Errorf("the backend alone: %w", err)
	}
	r.BackendAlone[strconv.Itoa(n)] = time.Since(start).Seconds()
	if err := t.reset(ctx); err != nil {
		return err
	}
	settle()
	start = time.Now()
	d, err := b.start(t, "-resync", "30")
	if err != nil {
		return err
	}
	defer d.stop()
	if err := t.waitHeld(ctx, n); err != nil {
		return err
	}
	took := time.Since(start)
	if err := t.waitCount(ctx, n); err != nil {
		return err
	}
	r.StartupSync[strconv.Itoa(n)] = took.Seconds()
	return nil
}

// burst starts n containers at once, then removes them at once.
func (b *bench) burst(t *target, r *result, n int) error {
	ctx := context.Background()
	if err := t.reset(ctx); err != nil {
		return err
	}
	d, err := b.start(t, "-resync", "30")
	if err != nil {
		return err
	}
	defer d.stop()
	defer removeContainers()
	r.BurstN = n
	if err := parallel(n, n, func(i int) error {
		_, err := docker("run", "-d", "--label", label+"=1", "--name", fmt.Sprintf("bench-burst-%d", i), "--expose", "80", image, "80")
		return err
	}); err != nil {
		return err
	}
	last := time.Now()
	if err := d.waitWritten(ctx, "register", n); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	r.BurstStartS = time.Since(last).Seconds()
	if err := t.waitCount(ctx, n); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := parallel(n, n, func(i int) error {
		_, err := docker("rm", "-f", fmt.Sprintf("bench-burst-%d", i))
		return err
	}); err != nil {
		return err
	}
	last = time.Now()
	if err := d.waitWritten(ctx, "deregister", n); err != nil {
		return fmt.Errorf("removal: %w", err)
	}
	r.BurstRemoveS = time.Since(last).Seconds()
	if err := t.waitCount(ctx, 0); err != nil {
		return fmt.Errorf("removal: %w", err)
	}
	return nil
}

// steady runs the daemon with -resync 1 over the n running containers,
// unchanged.
func (b *bench) steady(t *target, r *result, n int, dur time.Duration) error {
	ctx := context.Background()
	r.SteadyN = n
	args := []string{"-resync", "1"}
	var prof string
	if b.profile != "" {
		var err error
		if prof, err = freeAddr(); err != nil {
			return err
		}
		args = append(args, "-pprof-addr", prof)
	}
	d, err := b.start(t, args...)
	if err != nil {
		return err
	}
	d.prof = prof
	defer d.stop()
	if err := t.waitCount(ctx, n); err != nil {
		return err
	}
	time.Sleep(3 * time.Second) // let the first passes settle
	w0, p0, err := d.writesAndPasses()
	if err != nil {
		return err
	}
	cpu0, err := d.cpu()
	if err != nil {
		return err
	}
	profiled := make(chan error, 1)
	if b.profile != "" {
		go func() {
			profiled <- d.profile(fmt.Sprintf("profile?seconds=%d", int(dur.Seconds())), filepath.Join(b.profile, "cpu-"+t.name+".pprof"))
		}()
	} else {
		profiled <- nil
	}
	time.Sleep(dur)
	if err := <-profiled; err != nil {
		return err
	}
	if b.profile != "" {
		if err := d.profile("heap", filepath.Join(b.profile, "heap-"+t.name+".pprof")); err != nil {
			return err
		}
	}
	w1, p1, err := d.writesAndPasses()
	if err != nil {
		return err
	}
	cpu1, err := d.cpu()
	if err != nil {
		return err
	}
	if p1 > p0 {
		r.SteadyWrites = (w1 - w0) / (p1 - p0)
	}
	r.SteadyCPUPerMin = (cpu1 - cpu0) / dur.Minutes()
	return nil
}
