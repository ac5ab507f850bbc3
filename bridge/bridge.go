package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/internal/shorten"
)

// Config tunes a Bridge.
type Config struct {
	// Owner is written with every entry and only entries with this owner are
	// ever changed or removed.
	Owner string
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
	log     *logrus.Entry
	q       *queue
	resync  chan struct{} // buffer 1: a full reconcile is wanted

	mu         sync.Mutex
	containers map[string]*known             // by container ID
	actual     map[string]map[string]Service // by container ID, then service ID: what the backend holds
	seq        uint64                        // counts changes to actual made by workers
	touched    map[string]uint64             // container ID → seq of its last change
	changedAt  map[string]time.Time          // container ID → when Changed first reported an unhandled change
	reconciled bool                          // a full reconcile has succeeded
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
	return &Bridge{
		src:        src,
		backend:    backend,
		cfg:        cfg,
		log:        log,
		q:          newQueue(cfg.Retry),
		resync:     make(chan struct{}, 1),
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

// Run syncs until ctx is done. The first full reconcile happens at the first
// Resync call, so that the caller can subscribe to events before it.
func (b *Bridge) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range b.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(ctx)
		}()
	}
	b.reconcileLoop(ctx)
	wg.Wait()
	b.q.Stop()
	return nil
}

func (b *Bridge) work(ctx context.Context) {
	for {
		id, ok := b.q.Get(ctx)
		if !ok {
			return
		}
		b.mu.Lock()
		changed, measured := b.changedAt[id]
		delete(b.changedAt, id)
		b.mu.Unlock()
		err := b.sync(ctx, id)
		if measured {
			// An event's inspection may have seen a state that no list
			// has (a container stopped and started again while the
			// stream was down): the next full reconcile must look at it
			// again even if its list reads as the last one did.
			b.mu.Lock()
			if k := b.containers[id]; k != nil {
				k.fingerprint = ""
			}
			b.mu.Unlock()
		}
		switch {
		case err != nil && ctx.Err() == nil:
			b.log.WithFields(logrus.Fields{"container": shorten.ID(id), "error": err}).Warn("sync failed, will retry")
			if measured { // the change is still to be applied
				b.mu.Lock()
				if _, newer := b.changedAt[id]; !newer {
					b.changedAt[id] = changed
				}
				b.mu.Unlock()
			}
		case err == nil && measured:
			b.cfg.Observer.Synced(time.Since(changed))
		}
		b.q.Done(id, err != nil)
	}
}

func (b *Bridge) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(b.cfg.Resync)
	defer tick.Stop()
	failures := 0
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.resync:
		}
		if retry != nil {
			retry.Stop()
			retry = nil
		}
		start := time.Now()
		missing, stale, err := b.reconcile(ctx)
		if ctx.Err() == nil {
			b.cfg.Observer.Reconciled(time.Since(start), err, missing, stale)
		}
		if err == nil {
			b.mu.Lock()
			b.reconciled = true
			b.mu.Unlock()
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := min(b.cfg.Retry(failures), b.cfg.Resync)
		b.log.WithField("error", err).Warnf("full reconcile failed, retrying in %s", wait)
		retry = time.AfterFunc(wait, b.Resync)
	}
}

// reconcile compares everything: it reads every container and every entry,
// refreshes what the bridge believes the backend holds, and queues each
// container whose entries may differ from what should exist. It acts on
// nothing unless both reads succeeded. It counts the entries it found
// missing from the backend and the stale ones it found there.
func (b *Bridge) reconcile(ctx context.Context) (missing, stale int, err error) {
	list, err := b.src.List(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("list containers: %w", err)
	}
	b.mu.Lock()
	start := b.seq
	b.mu.Unlock()
	var entries []Service
	err = b.call(ctx, func(ctx context.Context) (err error) {
		entries, err = b.backend.Services(ctx)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read registry: %w", err)
	}

	byContainer := map[string]map[string]Service{}
	var legacy []Service
	for _, e := range entries {
		switch {
		case e.Owner == b.cfg.Owner && e.Container != "":
			if byContainer[e.Container] == nil {
				byContainer[e.Container] = map[string]Service{}
			}
			byContainer[e.Container][e.ID] = e
		case e.Owner == "" && b.cfg.Cleanup:
			legacy = append(legacy, e)
		}
	}

	b.mu.Lock()
	// What a worker changed after the read started is newer than the read.
	for id := range b.actual {
		if _, ok := byContainer[id]; !ok && b.touched[id] <= start {
			delete(b.actual, id)
		}
	}
	for id, services := range byContainer {
		if b.touched[id] <= start {
			b.actual[id] = services
		}
	}
	for id, t := range b.touched {
		if t <= start {
			delete(b.touched, id)
		}
	}

	listed := make(map[string]Container, len(list))
	running := map[string]bool{} // by container name, for -cleanup
	todo := map[string]bool{}
	for _, c := range list {
		listed[c.ID] = c
		if c.Running {
			running[c.Name] = true
		}
		k := b.containers[c.ID]
		switch {
		case c.Running && (k == nil || k.fingerprint != c.Fingerprint):
			todo[c.ID] = true
			if k == nil {
				k = &known{}
				b.containers[c.ID] = k
			}
		case !c.Running && k != nil && k.fingerprint != c.Fingerprint:
			todo[c.ID] = true
		}
		if k != nil {
			k.fingerprint = c.Fingerprint
		}
	}
	for id, k := range b.containers {
		if _, ok := listed[id]; !ok {
			todo[id] = true // gone while we were not looking
		}
		if k.err != "" {
			// Its last sync failed and waits for a retry whose backoff
			// may have grown long while the engine or the backend was
			// away; this read just worked, so try now.
			todo[id] = true
		}
		reg, dereg := plan(b.cfg.Owner, k.desired, k.desiredRevs, slices.Collect(maps.Values(b.actual[id])))
		if len(reg)+len(dereg) > 0 {
			todo[id] = true // the backend drifted
			missing += len(reg)
			stale += len(dereg)
		}
	}
	for id, entries := range b.actual {
		if b.containers[id] == nil {
			todo[id] = true // entries of a container we never synced: a crash left them
			stale += len(entries)
		}
	}
	b.mu.Unlock()

	b.log.WithFields(logrus.Fields{"containers": len(list), "entries": len(entries), "queued": len(todo)}).Debug("full reconcile")
	for id := range todo {
		b.q.Add(id)
	}
	return missing, stale, b.cleanup(ctx, legacy, running)
}

// legacyID matches the IDs gliderlabs/registrator gave: host:container:port[:udp].
var legacyID = regexp.MustCompile(`^(.+?):([a-zA-Z0-9][a-zA-Z0-9_.-]+):[0-9]+(?::udp)?$`)

func (b *Bridge) cleanup(ctx context.Context, legacy []Service, running map[string]bool) error {
	var errs []error
	for _, e := range legacy {
		m := legacyID.FindStringSubmatch(e.ID)
		if m == nil || m[1] != b.cfg.Hostname || running[m[2]] {
			continue
		}
		err := b.call(ctx, func(ctx context.Context) error { return b.backend.Deregister(ctx, e) })
		log := b.log.WithFields(logrus.Fields{"service": e.ID, "action": "cleanup"})
		if err != nil {
			errs = append(errs, fmt.Errorf("remove dangling %s: %w", e.ID, err))
			continue
		}
		log.Info("removed dangling entry")
	}
	return errors.Join(errs...)
}

// sync makes the entries of one container equal to what should exist now.
func (b *Bridge) sync(ctx context.Context, id string) error {
	began := time.Now()
	c, err := b.inspect(ctx, id)
	if b.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		b.log.WithFields(logrus.Fields{"container": shorten.ID(id), "took": time.Since(began).String()}).Debug("inspected")
	}
	gone := errors.Is(err, ErrNotFound)
	if err != nil && !gone {
		err = fmt.Errorf("inspect: %w", err)
		b.mu.Lock()
		if k := b.containers[id]; k != nil {
			k.err = err.Error() // the next full reconcile retries it
		}
		b.mu.Unlock()
		return err
	}
	log := b.log.WithField("container", shorten.ID(id))
	for _, w := range c.Warnings {
		log.WithField("error", w).Warnf("container %s: metadata warning", c.Name)
	}

	b.mu.Lock()
	actual := slices.Collect(maps.Values(b.actual[id]))
	var desired []Service
	switch {
	case gone:
	case c.Running:
		desired = b.forBackend(c.Services)
	case !c.Stopping.IsZero() && time.Since(c.Stopping) < c.Drain && b.containers[id] != nil:
		// Stopped within its drain period: its services stay, draining,
		// and go when the period ends.
		for _, s := range b.containers[id].desired {
			s.Draining = true
			desired = append(desired, s)
		}
		desired = b.forBackend(desired)
		b.q.AddAfter(id, c.Drain-time.Since(c.Stopping))
	case b.keeps(c):
		desired = actual // kept: -deregister on-success, SERVICE_DEREGISTER
	}
	revs := fingerprints(desired)
	register, deregister := plan(b.cfg.Owner, desired, revs, actual)
	b.mu.Unlock()

	if b.cfg.DryRun {
		for _, s := range register {
			log.WithFields(logrus.Fields{"service": s.ID, "action": "register"}).Infof("dry run: would register %s at %s:%d", s.Name, s.Address, s.Port)
		}
		for _, s := range deregister {
			log.WithFields(logrus.Fields{"service": s.ID, "action": "deregister"}).Infof("dry run: would deregister %s", s.Name)
		}
		register, deregister = nil, nil
	}
	var errs []error
	for _, s := range register {
		s.Owner = b.cfg.Owner
		began := time.Now()
		err := b.call(ctx, func(ctx context.Context) error { return b.backend.Register(ctx, s) })
		b.cfg.Observer.Wrote("register", time.Since(began), err)
		if err != nil {
			errs = append(errs, fmt.Errorf("register %s: %w", s.ID, err))
			continue
		}
		s.Revision = s.Fingerprint()
		b.record(id, s.ID, &s)
		log.WithFields(logrus.Fields{"service": s.ID, "action": "register"}).Infof("registered %s at %s:%d", s.Name, s.Address, s.Port)
	}
	for _, s := range deregister {
		began := time.Now()
		err := b.call(ctx, func(ctx context.Context) error { return b.backend.Deregister(ctx, s) })
		b.cfg.Observer.Wrote("deregister", time.Since(began), err)
		if err != nil {
			errs = append(errs, fmt.Errorf("deregister %s: %w", s.ID, err))
			continue
		}
		b.record(id, s.ID, nil)
		log.WithFields(logrus.Fields{"service": s.ID, "action": "deregister"}).Infof("deregistered %s", s.Name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if gone && len(errs) == 0 {
		delete(b.containers, id)
		return nil
	}
	k := b.containers[id]
	if k == nil {
		k = &known{}
		b.containers[id] = k
	}
	k.name, k.services, k.serviceRevs = c.Name, desired, revs
	if len(errs) > 0 {
		err := errors.Join(errs...)
		k.err = err.Error()
		return err
	}
	k.err = ""
	k.desired, k.desiredRevs = desired, revs
	if len(register)+len(deregister) == 0 {
		log.Debug("in sync")
	}
	return nil
}

// forBackend adapts services to what the backend shows: one that mirrors
// Docker health gets it, and draining services; any other holds a service
// only while its container is healthy and not stopping.
func (b *Bridge) forBackend(services []Service) []Service {
	if m, ok := b.backend.(HealthMirror); ok && m.MirrorsHealth() {
		return services
	}
	var out []Service
	for _, s := range services {
		if s.Draining {
			continue
		}
		if s.Health != nil {
			if s.Health.Status != Healthy {
				continue
			}
			s.Health = nil
		}
		out = append(out, s)
	}
	return out
}

func (b *Bridge) inspect(ctx context.Context, id string) (Container, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	return b.src.Inspect(ctx, id)
}

// record notes a change the backend accepted: s written, or removed if nil.
func (b *Bridge) record(container, serviceID string, s *Service) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.touched[container] = b.seq
	if s == nil {
		delete(b.actual[container], serviceID)
		if len(b.actual[container]) == 0 {
			delete(b.actual, container)
		}
		return
	}
	if b.actual[container] == nil {
		b.actual[container] = map[string]Service{}
	}
	b.actual[container][serviceID] = *s
}

// call runs one backend operation with the configured timeout.
func (b *Bridge) call(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	return op(ctx)
}

// Ping checks that the backend answers.
func (b *Bridge) Ping(ctx context.Context) error {
	return b.call(ctx, b.backend.Ping)
}

// keeps reports whether the services of a container that stopped stay
// registered, by its own policy or else -deregister.
func (b *Bridge) keeps(c Container) bool {
	switch c.Deregister {
	case DeregisterNever:
		return true
	case DeregisterOnSuccess:
		return failed(c.ExitCode)
	case DeregisterAlways:
		return false
	}
	return b.cfg.OnSuccess && failed(c.ExitCode)
}

// failed reports whether an exit code is a failure of the program rather
// than a clean exit or the result of a signal (stop, kill: 128+n).
func failed(code int) bool { return code != 0 && code&128 == 0 }
