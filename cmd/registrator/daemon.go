package main

import (
	"context"
	"fmt"

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
	var srv *monitor.Server
	if o.httpAddr != "" {
		h := mon.Handler()
		if o.pprof {
			h = monitor.WithProfiler(h)
		}
		var err error
		if srv, err = monitor.Listen(o.httpAddr, h, log); err != nil {
			return fmt.Errorf("-http-addr: %w", err)
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
	if srv != nil {
		g.Go(func() error { return srv.Serve(ctx) })
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
	backends, err := openBackends(ctx, o, owner.String(), log)
	defer func() {
		for _, b := range backends {
			b.Close()
		}
	}()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// -swarm-services: the services' virtual IPs are the swarm's entries,
	// written alike by every manager's daemon under the swarm's mark, with
	// backends opened for that mark; their ingress ports are this host's.
	var swarmSrc *docker.SwarmServices
	var swarmOwner bridge.Identity
	var swarmBackends []backend
	defer func() {
		for _, b := range swarmBackends {
			b.Close()
		}
	}()
	if o.swarmServices {
		ss := &docker.SwarmServices{API: api, Config: cfg}
		switch _, manager, err := ss.Manager(ctx); {
		case err != nil:
			return fmt.Errorf("-swarm-services: %w", err)
		case !manager:
			log.Warn("-swarm-services: this node is not a Swarm manager: the managers' daemons register the Swarm services; this one registers its own tasks and containers (a node promoted later needs its daemon restarted)")
		default:
			if swarmOwner, err = ss.Identity(ctx); err != nil {
				return fmt.Errorf("-swarm-services: %w", err)
			}
			swarmBackends, err = openBackends(ctx, o, swarmOwner.String(), log)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			swarmSrc, engine.Swarm = ss, ss
		}
	}
	// One bridge per backend: each has its own queue and retries, so that
	// one backend's outage never holds up another's writes.
	var bridges, swarmBridges []*bridge.Bridge
	for _, b := range backends {
		br := bridge.New(engine, b.Backend, bridge.Config{
			Owner: owner, OnSuccess: o.onSuccess, Cleanup: o.cleanup, Hostname: cfg.Hostname, Resync: o.resync,
			DryRun: o.dryRun, Observer: mon.Observer(b.name),
		}, log.WithField("backend", b.name))
		mon.Add(b.name, br)
		bridges = append(bridges, br)
		g.Go(func() error { return br.Run(ctx) })
	}
	for _, b := range swarmBackends {
		name := "swarm-services " + b.name
		br := bridge.New(swarmSrc, b.Backend, bridge.Config{
			Owner: swarmOwner, Hostname: cfg.Hostname, Resync: o.resync, DryRun: o.dryRun, Observer: mon.Observer(name),
		}, log.WithField("backend", name))
		mon.Add(name, br)
		swarmBridges = append(swarmBridges, br)
		g.Go(func() error { return br.Run(ctx) })
	}
	started := logrus.Fields{"engine": engine.Kind(), "socket": api.DaemonHost(), "owner": owner.String(), "registry": redacted(o.uris), "version": version, "dry-run": o.dryRun}
	if !o.selector.Empty() {
		started["container-filter"] = o.selector.String()
	}
	if swarmSrc != nil {
		started["swarm-services"] = swarmOwner.String()
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
					to = swarmBridges
				}
				for _, b := range to {
					b.Changed(id)
				}
			},
			Connected: func() {
				mon.DockerConnected()
				for _, b := range append(bridges, swarmBridges...) {
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
