package bridge

import (
	"context"
	"errors"
	"time"
)

// Container is what the bridge knows of one Docker container.
type Container struct {
	ID   string
	Name string // without the leading slash
	// Running is false for a container that exited, is being restarted or was
	// only created.
	Running  bool
	ExitCode int
	// Stopping is when the engine was seen stopping this run of the
	// container (a kill event: docker stop, docker kill), zero if it was
	// not. Its services are draining: Consul shows them in maintenance,
	// other backends no longer hold them.
	Stopping time.Time
	// Drain is how long the services of a stopped container stay draining
	// after Stopping before they are deregistered.
	Drain time.Duration
	// Deregister is the container's own policy for when it stops (one of
	// the Deregister* values), "" for the bridge's. A removed container is
	// always deregistered.
	Deregister string
	// Fingerprint, from List, changes whenever anything that could change the
	// container's services changes (state, name, ports, networks, labels).
	Fingerprint string
	// Services are set by Inspect for a running container; a container whose
	// metadata has faults still yields every service it can, and Warnings say
	// what was skipped, naming the key.
	Services []Service
	Warnings []error
	// LookAgain asks the bridge to inspect the container again after this
	// long, though no event may come (Podman: whether a health probe ran).
	LookAgain time.Duration
}

// Deregistration policies of a container that stopped.
const (
	DeregisterAlways    = "always"
	DeregisterOnSuccess = "on-success" // kept when it exited with a failure
	DeregisterNever     = "never"      // kept until the container is removed
)

// ErrNotFound is returned by Source.Inspect for a container that does not exist.
var ErrNotFound = errors.New("no such container")

// Source says what should exist: the containers of this host.
type Source interface {
	// List returns every container the engine knows, running or not, without
	// Services.
	List(ctx context.Context) ([]Container, error)
	// Inspect returns one container with its Services derived, or an error
	// wrapping ErrNotFound when the container is gone.
	Inspect(ctx context.Context, id string) (Container, error)
}

// Engine is this host's container engine: the Source of what should exist,
// the identity of the host's entries, and the stream of changes that wakes
// the bridge. Every difference between engines (Docker, Podman's
// Docker-compatible API, Swarm's tasks) lives in its implementation:
// docker.Engine is the first.
type Engine interface {
	Source
	// Identity returns this host's identity, which marks its entries as
	// owned. It waits, retrying, until the engine answers or ctx is done.
	Identity(ctx context.Context) (Identity, error)
	// Watch tells h of every change until ctx is done, and returns only
	// then. A broken stream is re-established; h.Connected is called each
	// time it is, after the subscription, so that a full reconcile started
	// from it misses nothing.
	Watch(ctx context.Context, h Handler)
}

// Handler is what an Engine's Watch calls. None of its functions may
// block; each may be nil but Changed.
type Handler struct {
	// Changed is called with a container's ID for every event that
	// concerns the container.
	Changed func(id string)
	// Connected is called each time the stream is (re)established.
	Connected func()
	// Lost is called when the stream breaks, with why.
	Lost func(err error)
	// Event is called for every event, with its type and action, for
	// metrics.
	Event func(typ, action string)
}
