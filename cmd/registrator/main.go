// Command registrator keeps a service registry equal to the containers
// running on this Docker host. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/docker"
	"github.com/registrator/registrator/monitor"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes: 0 after SIGTERM/SIGINT, 2 for a misconfiguration at start.
const exitMisconfigured = 2

func main() {
	// The memory profiler's sampling keeps a table of over a megabyte that
	// a daemon of a few megabytes of heap does not need unless -pprof
	// asks for profiles: off from the start, on again for -pprof.
	runtime.MemProfileRate = 0
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "explain" {
		return explainCommand(args[1:])
	}
	o, err := parseFlags(args, os.Stdout, os.Getenv)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "registrator: %v (see registrator -h)\n", err)
		return exitMisconfigured
	case o.version:
		fmt.Println("registrator", version)
		return 0
	case o.healthcheck:
		return healthcheck(o.httpAddr)
	}
	log := newLogger(o)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "registrator: %v\n", err)
		return exitMisconfigured
	}
	mon := monitor.New()
	if o.httpAddr != "" {
		h := mon.Handler()
		if o.pprof {
			runtime.MemProfileRate = defaultMemProfileRate
			h = withProfiler(h)
		}
		if err := monitor.Serve(ctx, o.httpAddr, h, log); err != nil {
			return fail(fmt.Errorf("-http-addr: %w", err))
		}
	}
	api, err := docker.Connect()
	if err != nil {
		return fail(err)
	}
	defer api.Close()
	// The engine's ID is the owner mark, which backends need from the start.
	owner, err := docker.EngineID(ctx, api, func(n int, err error) time.Duration {
		log.WithField("error", err).Warn("waiting for the Docker engine")
		return min(time.Duration(n)*time.Second, 10*time.Second)
	})
	if err != nil { // only when stopped while waiting
		return 0
	}
	backends, err := openBackends(ctx, o, owner, log)
	defer func() {
		for _, b := range backends {
			b.Close()
		}
	}()
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		return fail(err)
	}
	cfg := deriveConfig(o, log)
	// One bridge per backend: each has its own queue and retries, so that
	// one backend's outage never holds up another's writes.
	src := &docker.Source{API: api, Config: cfg}
	var bridges []*bridge.Bridge
	for _, b := range backends {
		br := bridge.New(src, b.Backend, bridge.Config{
			Owner: owner, OnSuccess: o.onSuccess, Cleanup: o.cleanup, Hostname: cfg.Hostname, Resync: o.resync,
			DryRun: o.dryRun, Observer: mon.Observer(b.name),
		}, log.WithField("backend", b.name))
		mon.Add(b.name, br)
		bridges = append(bridges, br)
	}
	log.WithFields(logrus.Fields{"owner": owner, "registry": redacted(o.uris), "version": version, "dry-run": o.dryRun}).Info("registrator started")
	go mon.Run(ctx)
	go docker.Watch(ctx, api, log, docker.Handler{
		Changed: func(id string) {
			for _, b := range bridges {
				b.Changed(id)
			}
		},
		Connected: func() {
			mon.DockerConnected()
			for _, b := range bridges {
				b.Resync()
			}
		},
		Event:    mon.Event,
		Lost:     mon.DockerLost,
		Stopping: src.Stopping,
	})
	var wg sync.WaitGroup
	for _, b := range bridges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Run(ctx)
		}()
	}
	wg.Wait()
	log.Info("stopped; registrations are left in place")
	return 0
}

// defaultMemProfileRate is the Go runtime's own default.
const defaultMemProfileRate = 512 * 1024

// withProfiler adds Go's profiler under /debug/pprof/ to h.
func withProfiler(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
