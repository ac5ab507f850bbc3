// Command registrator keeps a service registry equal to the containers
// running on this Docker host. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes: 0 after SIGTERM/SIGINT, 2 for a misconfiguration at start.
const exitMisconfigured = 2

func main() {
	// The memory profiler's sampling keeps a table of over a megabyte that
	// a daemon of a few megabytes of heap does not need unless -pprof-addr
	// asks for profiles: off from the start, on again for -pprof-addr.
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
	if err := checkURIs(o.uris); err != nil {
		fmt.Fprintf(os.Stderr, "registrator: %v\n", err)
		return exitMisconfigured
	}
	if err := handOver(o.uris, args); err != nil {
		fmt.Fprintf(os.Stderr, "registrator: %v\n", err)
		return exitMisconfigured
	}
	log := newLogger(o)
	for _, w := range o.ignored {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon(ctx, o, log); err != nil {
		fmt.Fprintf(os.Stderr, "registrator: %v\n", err)
		return exitMisconfigured
	}
	log.Info("stopped; registrations are left in place")
	return 0
}
