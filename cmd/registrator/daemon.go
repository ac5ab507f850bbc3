package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/docker"
	"github.com/registrator/registrator/monitor"
)

// daemon runs until ctx is done. Every goroutine it starts belongs to one
// group, and it returns once all have stopped: nil after ctx is done, an
// error for a misconfiguration found at start.
func daemon(ctx context.Context, o options, log *logrus.Entry) error {
	mon := monitor.New()
	var srv, prof *monitor.Server
	if o.httpAddr != "" {
		var err error
		if srv, err = monitor.Listen(o.httpAddr, mon.Handler(), log); err != nil {
			return fmt.Errorf("-http-addr: %w", err)
		}
		if !loopback(o.httpAddr) {
			log.Warnf("-http-addr %s is not a loopback address: whoever reaches it reads /metrics and /v1/services "+
				"(every service this host registers, its address and port, and each registry's address); "+
				"bind it to 127.0.0.1 unless something elsewhere must scrape it, and then let only that reach it (docs/monitoring.md)", o.httpAddr)
		}
	}
	if o.pprofAddr != "" {
		var err error
		if prof, err = monitor.ListenProfiler(o.pprofAddr, log); err != nil {
			return fmt.Errorf("-pprof-addr: %w", err)
		}
	}
	api, err := docker.Connect()
	if err != nil {
		return err
	}
	defer api.Close()
	ctx, cancel := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(ctx)
	defer func() { cancel(); _ = g.Wait() }() // on every return: nothing left running
	for _, s := range []*monitor.Server{srv, prof} {
		if s != nil {
			g.Go(func() error { return s.Serve(ctx) })
		}
	}
	cfg := deriveConfig(o, log)
	engine := &docker.Engine{API: api, Config: cfg, Selector: o.selector, ExplicitID: o.id, Log: log}
	if err := engine.FollowInterfaces(); err != nil {
		return err
	}
	// The engine's ID is the owner mark, which backends need from the start.
	owner, err := engine.Identity(ctx)
	if err != nil { // only when stopped while waiting
		return nil
	}
	backends, err := openBackends(ctx, o, owner, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer closeBackends(backends)
	// -swarm-services: the services' ports published through the routing
	// mesh are this host's entries (the engine adds them while the node is
	// a manager); their virtual IPs are the swarm's, in bridges of their
	// own that start once the node is a manager.
	var swarm *swarmServices
	if o.swarmServices {
		ss := &docker.SwarmServices{API: api, Config: cfg}
		engine.Swarm = ss
		swarm = &swarmServices{src: ss}
		g.Go(func() error { return swarm.run(ctx, o, cfg, mon, log) })
	}
	// One bridge per backend: each has its own queue and retries, so that
	// one backend's outage never holds up another's writes.
	var bridges []*bridge.Bridge
	for _, b := range backends {
		br := bridge.New(engine, b.Backend, bridge.Config{
			Owner: owner, OnSuccess: o.onSuccess, Cleanup: o.cleanup, Hostname: cfg.Hostname, Resync: o.resync,
			DryRun: o.dryRun, Observer: mon.Observer(b.name),
		}, log.WithField("backend", b.name))
		mon.Add(b.name, br)
		bridges = append(bridges, br)
		g.Go(func() error { return br.Run(ctx) })
	}
	started := logrus.Fields{"engine": engine.Kind(), "socket": api.DaemonHost(), "owner": owner.String(), "registry": redacted(o.uris), "version": version, "dry-run": o.dryRun}
	if !o.selector.Empty() {
		started["container-filter"] = o.selector.String()
	}
	log.WithFields(started).Info("registrator started")
	if srv != nil { // the pings feed /ready and registrator_backend_up, served only there
		g.Go(func() error { mon.Run(ctx); return nil })
	}
	g.Go(func() error {
		engine.Watch(ctx, bridge.Handler{
			Changed: func(id string) {
				to := bridges
				if docker.IsSwarmService(id) {
					to = swarm.bridges()
				}
				for _, b := range to {
					b.Changed(id)
				}
			},
			Connected: func() {
				mon.DockerConnected()
				for _, b := range append(bridges, swarm.bridges()...) {
					b.Resync()
				}
			},
			Event: mon.Event,
			Lost:  mon.DockerLost,
		})
		return nil
	})
	return g.Wait()
}

// swarmServices runs the bridges of the Swarm services' virtual IPs, one
// per backend, opened for the swarm's mark, from the moment the node is a
// manager (at start, or promoted later) until the daemon stops.
type swarmServices struct {
	src *docker.SwarmServices

	mu      sync.Mutex
	running []*bridge.Bridge
}

// swarmPoll is how often a node that is not a manager is asked again.
const swarmPoll = 5 * time.Second

// bridges are the running bridges; none on a nil swarmServices or before
// the node is a manager.
func (s *swarmServices) bridges() []*bridge.Bridge {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

func (s *swarmServices) run(ctx context.Context, o options, cfg docker.Config, mon *monitor.Monitor, log *logrus.Entry) error {
	said := false
	for {
		_, manager, err := s.src.Manager(ctx)
		if manager {
			break
		}
		switch {
		case err != nil && ctx.Err() == nil:
			log.WithField("error", err).Warn("-swarm-services: cannot ask the engine whether it is a Swarm manager; asking again")
		case err == nil && !said:
			log.Warnf("-swarm-services: this node is not a Swarm manager: the managers' daemons register the Swarm services (asked again every %s)", swarmPoll)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(swarmPoll):
		}
	}
	owner, err := s.src.Identity(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("-swarm-services: %w", err)
	}
	backends, err := openBackends(ctx, o, owner, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("-swarm-services: %w", err)
	}
	defer closeBackends(backends)
	g, ctx := errgroup.WithContext(ctx)
	var running []*bridge.Bridge
	for _, b := range backends {
		name := "swarm-services " + b.name
		br := bridge.New(s.src, b.Backend, bridge.Config{
			Owner: owner, Hostname: cfg.Hostname, Resync: o.resync, DryRun: o.dryRun, Observer: mon.Observer(name),
		}, log.WithField("backend", name))
		mon.Add(name, br)
		running = append(running, br)
		g.Go(func() error { return br.Run(ctx) })
	}
	s.mu.Lock()
	s.running = running
	s.mu.Unlock()
	log.WithField("owner", owner.String()).Info("-swarm-services: this node is a Swarm manager: registering the Swarm services")
	for _, br := range running {
		br.Resync()
	}
	return g.Wait()
}
