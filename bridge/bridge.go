package bridge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Config tunes a Bridge.
type Config struct {
	// Owner is this host's identity: its mark is written with every entry,
	// and only entries it owns are ever changed or removed.
	Owner Identity
	// OnSuccess keeps the services of a container that exited with a failure
	// (a non-zero code that is not a signal) instead of removing them.
	OnSuccess bool
	// Cleanup also removes entries without an owner mark whose ID has the form
	// registrator used for this host (Hostname:container:port) and whose
	// container no longer runs: entries left by gliderlabs/registrator.
	Cleanup  bool
	Hostname string
	// Resync is the period of the full reconcile.
	Resync time.Duration
	// Workers is how many containers are synced in parallel; DefaultWorkers
	// if not set.
	Workers int
	// Retry spaces the retries of a container whose sync failed, and of a
	// failed full reconcile.
	Retry Backoff
	// Timeout bounds every call to the backend and to Docker.
	Timeout time.Duration
	// DryRun logs the writes the plan calls for instead of making them.
	DryRun bool
	// Observer is told what the bridge does; nil for none.
	Observer Observer
}

// Bridge applies the plan. Create it with New, feed it with Changed and
// Resync, and run it with Run.
type Bridge struct {
	src     Source
	backend Backend
	cfg     Config
	policy  policy // the parts of cfg and the backend the desired-state rule reads
	log     *logrus.Entry
	q       *queue
	resync  chan struct{} // buffer 1: a full reconcile is wanted
	failed  chan struct{} // buffer 1: a backend call failed (see awaitBackend)
	back    atomic.Bool   // awaitBackend saw the backend answer again
	gaveUp  atomic.Bool   // a write timed out since the last that succeeded

	mu         sync.Mutex
	containers map[string]*known             // by container ID
	actual     map[string]map[string]Service // by container ID, then service ID: what the backend holds
	seq        uint64                        // counts changes to actual made by workers
	touched    map[string]uint64             // container ID → seq of its last change
	changedAt  map[string]time.Time          // container ID → when Changed first reported an unhandled change
	reconciled bool                          // a full reconcile has succeeded
	twins      map[string]bool               // hosts whose engines share ours' ID, warned about
	held       map[heldKey]string            // services whose entry someone else holds: who
}

// known is what the bridge remembers of a container it has synced.
type known struct {
	fingerprint string    // from the last List that saw it; "" after an event's sync
	desired     []Service // what its last successful sync decided should exist
	desiredRevs []string  // the Fingerprint of each of desired, computed once
	name        string    // from the last inspection
	services    []Service // what the last sync, successful or not, wanted in the backend
	serviceRevs []string  // the Fingerprint of each of services
	err         string    // the error of the last sync, "" if it succeeded
}

// DefaultWorkers is how many containers a Bridge syncs in parallel unless
// its Config says otherwise.
const DefaultWorkers = 4

// IdleConns is how many idle connections a client of the engine or of a
// backend should keep: one for each worker and two more (a full
// reconcile's list, a probe). An HTTP client keeps 2 or 3 by default;
// with four workers at once it then closes a connection after about one
// call in five and dials again, which costs the daemon, the engine and
// the agent each a connection's setup on the busiest path (a startup
// sync of 1000 containers dialled the engine 199 times and the agent 79
// times).
const IdleConns = DefaultWorkers + 2

// New returns a Bridge; call Run to start it.
func New(src Source, backend Backend, cfg Config, log *logrus.Entry) *Bridge {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Retry == nil {
		cfg.Retry = ExponentialBackoff(500*time.Millisecond, 30*time.Second)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	mirrors := false
	if m, ok := backend.(HealthMirror); ok {
		mirrors = m.MirrorsHealth()
	}
	return &Bridge{
		src:        src,
		backend:    backend,
		cfg:        cfg,
		policy:     policy{OnSuccess: cfg.OnSuccess, MirrorsHealth: mirrors},
		log:        log,
		q:          newQueue(cfg.Retry),
		resync:     make(chan struct{}, 1),
		failed:     make(chan struct{}, 1),
		containers: map[string]*known{},
		actual:     map[string]map[string]Service{},
		touched:    map[string]uint64{},
		changedAt:  map[string]time.Time{},
	}
}

// Changed says that something happened to a container. It never blocks.
func (b *Bridge) Changed(containerID string) {
	b.mu.Lock()
	if _, ok := b.changedAt[containerID]; !ok {
		b.changedAt[containerID] = time.Now()
	}
	b.mu.Unlock()
	b.q.Add(containerID)
}

// Resync asks for a full reconcile. It never blocks; requests made while one
// is pending are merged.
func (b *Bridge) Resync() {
	select {
	case b.resync <- struct{}{}:
	default:
	}
}

func (b *Bridge) inspect(ctx context.Context, id string) (Container, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	return b.src.Inspect(ctx, id)
}

// call runs one backend operation with the configured timeout. A failure
// wakes awaitBackend.
func (b *Bridge) call(ctx context.Context, op func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	err := op(cctx)
	if err != nil && ctx.Err() == nil {
		select {
		case b.failed <- struct{}{}:
		default:
		}
	}
	return err
}

// LateWrites is how long after the backend takes a write again, following
// writes the bridge gave up on, it reads every entry again (a full
// reconcile). A write given up on (its call timed out) may still be
// applied, and after newer ones: a Consul agent cut off from its servers
// holds the requests of its stall and serves them in no set order once it
// ends. On the test bed a registration given up on during a cut was
// applied after the deregistration that followed it, and the entry stayed
// until the next -resync (docs/history/reliability-rounds.md, "After a
// cut, again"). The writes
// the agent held are served within milliseconds of the first it answers.
const LateWrites = 2 * time.Second

// write is call for an operation that changes the backend. After a write
// that timed out, the first that succeeds asks for a full reconcile
// LateWrites later.
func (b *Bridge) write(ctx context.Context, op func(context.Context) error) error {
	err := b.call(ctx, op)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		b.gaveUp.Store(true)
	case err == nil && b.gaveUp.Swap(false):
		time.AfterFunc(LateWrites, b.Resync)
	}
	return err
}

// Ping checks that the backend answers.
func (b *Bridge) Ping(ctx context.Context) error {
	return b.call(ctx, b.backend.Ping)
}

// ShortID is an ID as logs show it: a container's first 12 characters;
// for the ID of another kind of source, "<kind>:" and the first 12 of the
// rest ("swarm-service:1a2b3c4d5e6f").
func ShortID(id string) string {
	kind, rest, ok := strings.Cut(id, ":")
	if !ok {
		return id[:min(len(id), 12)]
	}
	return kind + ":" + rest[:min(len(rest), 12)]
}
