package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// fakeSource is an engine in memory.
type fakeSource struct {
	mu         sync.Mutex
	containers map[string]Container
	listErr    error
	inspectErr error
	inspects   int
	lists      int // List calls: one at the start of every full reconcile
}

func (f *fakeSource) set(c Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.Fingerprint = fmt.Sprint(c.Running, c.ExitCode, len(c.Services), c.Name)
	f.containers[c.ID] = c
}

func (f *fakeSource) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers, id)
}

func (f *fakeSource) List(context.Context) ([]Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []Container
	for _, c := range f.containers {
		c.Services = nil
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeSource) Inspect(_ context.Context, id string) (Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspects++
	if f.inspectErr != nil {
		return Container{}, f.inspectErr
	}
	c, ok := f.containers[id]
	if !ok {
		return Container{ID: id}, ErrNotFound
	}
	return c, nil
}

// fakeBackend is a registry in memory that counts writes and can fail them.
type fakeBackend struct {
	mu                sync.Mutex
	entries           map[string]Service
	registers, deregs int
	failWrites        int               // the next n writes fail
	down              bool              // every call fails, pings too
	failReads         int               // the next n Services calls fail
	replaced          map[string]string // service ID → the mark a Register named in Replaces
	// holdSecond, when set, holds the Register call after the first
	// accepted one until it is closed, after telling heldSecond.
	holdSecond, heldSecond chan struct{}
	// lateOnce makes the next Register time out as a stalled agent's does,
	// and keeps it in late, which the backend applies after the next
	// Deregister of the same ID: a request the caller gave up on, served
	// after a newer one.
	lateOnce bool
	late     *Service
}

func (f *fakeBackend) Services(context.Context) ([]Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("backend away")
	}
	if f.failReads > 0 {
		f.failReads--
		return nil, errors.New("backend not ready")
	}
	return slices.Collect(maps.Values(f.entries)), nil
}

func (f *fakeBackend) Register(_ context.Context, s Service) error {
	f.mu.Lock()
	if f.registers == 1 && f.holdSecond != nil {
		f.mu.Unlock()
		close(f.heldSecond)
		<-f.holdSecond
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if f.down {
		return errors.New("backend away")
	}
	if f.failWrites > 0 {
		f.failWrites--
		return errors.New("backend down")
	}
	s.Revision = s.Fingerprint()
	if f.lateOnce {
		f.lateOnce, f.late = false, &s
		return fmt.Errorf("register %s: %w", s.ID, context.DeadlineExceeded)
	}
	if s.Replaces != "" {
		if f.replaced == nil {
			f.replaced = map[string]string{}
		}
		f.replaced[s.ID] = s.Replaces
		s.Replaces = ""
	}
	f.entries[s.ID] = s
	f.registers++
	return nil
}

func (f *fakeBackend) Deregister(_ context.Context, s Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWrites > 0 {
		f.failWrites--
		return errors.New("backend down")
	}
	delete(f.entries, s.ID)
	f.deregs++
	if f.late != nil && f.late.ID == s.ID {
		f.entries[s.ID], f.late = *f.late, nil
	}
	return nil
}

func (f *fakeBackend) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("backend away")
	}
	return nil
}

func (f *fakeBackend) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}
func (f *fakeBackend) Close() error { return nil }

func (f *fakeBackend) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.entries))
}

func (f *fakeBackend) writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registers + f.deregs
}

func (f *fakeBackend) put(s Service) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries[s.ID] = s
}

const owner = "engine-1"

func running(id string, ports ...int) Container {
	c := Container{ID: id, Name: "n" + id, Running: true}
	for _, p := range ports {
		c.Services = append(c.Services, Service{ID: fmt.Sprintf("%s:%d", id, p), Name: "web", Port: p, Container: id})
	}
	return c
}

type env struct {
	src *fakeSource
	be  *fakeBackend
	b   *Bridge
	obs *countingObserver
}

// countingObserver counts the full reconciles that ended, and passes
// everything on to the test's own observer, if any.
type countingObserver struct {
	Observer
	reconciled atomic.Int64
}

func (c *countingObserver) Reconciled(took time.Duration, err error, missing, stale int) {
	c.Observer.Reconciled(took, err, missing, stale)
	c.reconciled.Add(1)
}

func start(t *testing.T, cfg Config, setup func(*fakeSource, *fakeBackend)) *env {
	t.Helper()
	e := &env{src: &fakeSource{containers: map[string]Container{}}, be: &fakeBackend{entries: map[string]Service{}}}
	if setup != nil {
		setup(e.src, e.be)
	}
	if cfg.Owner == (Identity{}) {
		cfg.Owner = Identity{mark: owner}
	}
	if cfg.Retry == nil {
		cfg.Retry = ExponentialBackoff(time.Millisecond, 20*time.Millisecond)
	}
	if cfg.Resync == 0 {
		cfg.Resync = time.Hour // tests call Resync themselves
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	e.obs = &countingObserver{Observer: cfg.Observer}
	cfg.Observer = e.obs
	log := logrus.New()
	log.SetOutput(io.Discard)
	e.b = New(e.src, e.be, cfg, logrus.NewEntry(log))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e.b.Resync()
	return e
}

// settle waits until the registry holds exactly want.
func (e *env) settle(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	if want == nil {
		want = []string{}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.be.ids()
		if got == nil {
			got = []string{}
		}
		if slices.Equal(got, want) && e.b.q.Len() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry holds %v, want %v", got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// resync asks for a full reconcile and waits until one that started after
// the request has ended and everything it queued is done.
func (e *env) resync(t *testing.T) {
	t.Helper()
	e.reconcile(t)
	e.idle(t)
}

// reconcile asks for a full reconcile and waits until one that started
// after the request has ended.
func (e *env) reconcile(t *testing.T) {
	t.Helper()
	e.src.mu.Lock()
	before := e.src.lists
	e.src.mu.Unlock()
	e.b.Resync()
	var started int
	waitFor(t, func() bool {
		e.src.mu.Lock()
		defer e.src.mu.Unlock()
		started = e.src.lists
		return started > before
	})
	waitFor(t, func() bool { return e.obs.reconciled.Load() >= int64(started) })
}

// idle waits until no container is queued, being synced or due for a retry.
func (e *env) idle(t *testing.T) {
	t.Helper()
	waitFor(t, func() bool { return e.b.q.Len() == 0 })
}

func TestStartRegistersRunningContainersAndRemovesOurLeftovers(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80, 443))
		src.set(Container{ID: "c2", Name: "stopped"})
		be.put(stored(Service{ID: "gone:80", Container: "gone"}, owner))       // ours, container gone: a crash left it
		be.put(Service{ID: "foreign"})                                         // not ours: no mark
		be.put(stored(Service{ID: "other:80", Container: "gone"}, "engine-2")) // another host's
	})
	e.settle(t, "c1:80", "c1:443", "foreign", "other:80")
}

func TestUnchangedServicesAreNeverWrittenAgain(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.idle(t)
	before := e.be.writes()
	for range 5 {
		e.b.Changed("c1")
		e.resync(t)
	}
	if n := e.be.writes() - before; n != 0 {
		t.Fatalf("%d writes for an unchanged container", n)
	}
}

func TestEventsSyncOneContainer(t *testing.T) {
	e := start(t, Config{}, nil)
	e.settle(t)
	e.src.set(running("c1", 80))
	e.b.Changed("c1")
	e.settle(t, "c1:80")
	e.src.set(running("c1", 80, 81)) // e.g. a network connect
	e.b.Changed("c1")
	e.settle(t, "c1:80", "c1:81")
	e.src.remove("c1")
	e.b.Changed("c1")
	e.settle(t)
}

func TestFailedWritesAreRetriedUntilTheySucceed(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80))
		be.failWrites = 5
	})
	e.settle(t, "c1:80")
}

func TestFailedRemovalIsRetriedEvenIfTheContainerIsGone(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.be.mu.Lock()
	e.be.failWrites = 3
	e.be.mu.Unlock()
	e.src.remove("c1")
	e.b.Changed("c1")
	e.settle(t)
}

func TestRegistryThatLostItsStateIsRepairedByResync(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.be.mu.Lock()
	e.be.entries = map[string]Service{} // agent restarted empty
	e.be.mu.Unlock()
	e.b.Resync()
	e.settle(t, "c1:80")
}

func TestResyncCatchesAMissedEvent(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.src.remove("c1")
	e.src.set(running("c2", 90))
	e.b.Resync() // no event for either
	e.settle(t, "c2:90")
}

// The engine stops a container as it shuts down; the event's sync sees it
// stopped and removes its services; the engine comes back and starts it
// again before the event stream is back, with the same ports, so the list
// after the reconnect reads exactly as the last one before the shutdown.
// That container must still be synced again: what the bridge decided came
// from an inspection newer than that last list. (Found by the soak: two
// engine restarts in a row gave a container its port back.)
func TestResyncSyncsAContainerThatCameBackAsTheLastListSawIt(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.resync(t)                                 // the last list before the shutdown: c1 running
	e.src.set(Container{ID: "c1", Name: "nc1"}) // stopped by the shutdown
	e.b.Changed("c1")                           // its die event
	e.settle(t)
	e.src.set(running("c1", 80)) // restarted by the engine, no event seen
	e.b.Resync()                 // the reconnect's full reconcile
	e.settle(t, "c1:80")
}

// A container whose sync failed while the engine went away is synced at the
// next full reconcile (the one after the reconnect), not only when its
// retry backoff, long by then, runs out; even though the list already
// showed its new state before the engine went.
func TestResyncRetriesFailedSyncsAtOnce(t *testing.T) {
	e := start(t, Config{Retry: ExponentialBackoff(time.Hour, time.Hour)}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.src.mu.Lock()
	e.src.inspectErr = errors.New("engine shutting down")
	inspected := e.src.inspects
	e.src.mu.Unlock()
	e.src.set(Container{ID: "c1", Name: "nc1"}) // killed by the shutdown
	e.b.Changed("c1")
	e.reconcile(t)           // lists the stopped container; its sync fails again
	waitFor(t, func() bool { // a failed sync, its retry an hour away
		e.src.mu.Lock()
		n := e.src.inspects
		e.src.mu.Unlock()
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return n > inspected && e.b.containers["c1"].err != "" && e.b.q.Len() == 1
	})
	e.src.mu.Lock()
	e.src.inspectErr = nil
	e.src.mu.Unlock()
	e.b.Resync()
	e.settle(t)
}

// A backend that comes back is noticed within a probe's interval, however
// far away the backoff has put the retries.
func TestABackendThatAnswersAgainGetsAFullReconcileAtOnce(t *testing.T) {
	e := start(t, Config{Retry: ExponentialBackoff(time.Hour, time.Hour)}, nil)
	e.settle(t)
	e.be.setDown(true)
	e.src.set(running("c1", 80))
	e.b.Changed("c1") // its sync fails; the retry is an hour away
	waitFor(t, func() bool {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return e.b.containers["c1"] != nil && e.b.containers["c1"].err != ""
	})
	e.be.setDown(false)
	e.settle(t, "c1:80")
}

// A registration that timed out and that the backend applied later, after
// the container's deregistration (a Consul agent serving the requests it
// held during a stall in no set order), is removed by the full reconcile
// that the first write to succeed after the timeout asks for, LateWrites
// later, not left until the next -resync (an hour here).
func TestAWriteAppliedAfterItTimedOutIsUndone(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) {
		src.set(running("c1", 80))
	})
	e.settle(t, "c1:80")
	e.be.mu.Lock()
	e.be.lateOnce = true
	e.be.mu.Unlock()
	c := running("c1", 80)
	c.Services[0].Tags = []string{"v2"}
	e.src.set(c)
	e.b.Changed("c1") // times out, then its retry succeeds
	waitFor(t, func() bool {
		e.be.mu.Lock()
		defer e.be.mu.Unlock()
		return e.be.late != nil && slices.Equal(e.be.entries["c1:80"].Tags, []string{"v2"})
	})
	e.src.remove("c1")
	e.b.Changed("c1") // deregistered; then the late registration lands
	waitFor(t, func() bool {
		e.be.mu.Lock()
		defer e.be.mu.Unlock()
		return e.be.late == nil
	})
	if got := e.be.ids(); !slices.Equal(got, []string{"c1:80"}) {
		t.Fatalf("after the late write the registry holds %v, want c1:80 back", got)
	}
	e.settle(t)
}

// A backend that answers pings again before it can serve (a Consul node
// rejoining its cluster) is retried from the shortest wait, not after the
// backoff its outage grew.
func TestABackendThatAnswersAgainIsRetriedFromTheShortestWait(t *testing.T) {
	retry := func(n int) time.Duration {
		if n <= 1 {
			return time.Millisecond
		}
		return time.Hour
	}
	e := start(t, Config{Retry: retry}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80))
		be.down = true
	})
	waitFor(t, func() bool { return e.obs.reconciled.Load() >= 2 }) // the second retry is an hour away
	e.be.mu.Lock()
	e.be.down, e.be.failReads = false, 1
	e.be.mu.Unlock()
	e.settle(t, "c1:80")
}

// A container whose engine asks to be looked at again is inspected again
// then, with no event and no full reconcile.
func TestLookAgainInspectsAgain(t *testing.T) {
	c := running("c1", 80)
	c.LookAgain = 20 * time.Millisecond
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(c) })
	waitFor(t, func() bool { return slices.Equal(e.be.ids(), []string{"c1:80"}) }) // a look is always pending: never idle
	e.src.mu.Lock()
	before := e.src.inspects
	e.src.mu.Unlock()
	waitFor(t, func() bool {
		e.src.mu.Lock()
		defer e.src.mu.Unlock()
		return e.src.inspects >= before+2
	})
	if n := e.obs.reconciled.Load(); n != 1 {
		t.Errorf("%d full reconciles, want the first only", n)
	}
}

func TestNothingIsRemovedWhenTheListFails(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.src.mu.Lock()
	e.src.listErr = errors.New("engine restarting")
	delete(e.src.containers, "c1")
	e.src.mu.Unlock()
	e.resync(t)
	if got := e.be.ids(); !slices.Equal(got, []string{"c1:80"}) {
		t.Fatalf("registry %v after a failed list, want it untouched", got)
	}
}

func TestDeregisterOnSuccess(t *testing.T) {
	for _, tc := range []struct {
		name string
		exit int
		keep bool
	}{
		{"exit 0 deregisters", 0, false},
		{"failure keeps", 3, true},
		{"SIGTERM (143) deregisters", 143, false},
		{"SIGKILL (137) deregisters", 137, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, Config{OnSuccess: true}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
			e.settle(t, "c1:80")
			e.src.set(Container{ID: "c1", Name: "nc1", ExitCode: tc.exit})
			e.b.Changed("c1")
			if tc.keep {
				e.idle(t)
				e.resync(t)
				e.settle(t, "c1:80")
			} else {
				e.settle(t)
			}
			e.src.remove("c1") // docker rm: always deregisters
			e.b.Changed("c1")
			e.settle(t)
		})
	}
}

func TestDeregisterAlwaysRemovesAFailedContainer(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) { src.set(running("c1", 80)) })
	e.settle(t, "c1:80")
	e.src.set(Container{ID: "c1", Name: "nc1", ExitCode: 3})
	e.b.Changed("c1")
	e.settle(t)
}

func TestCleanupRemovesRegistratorLeftoversOfThisHostOnly(t *testing.T) {
	e := start(t, Config{Cleanup: true, Hostname: "h1"}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80))             // named nc1
		be.put(Service{ID: "h1:old:80"})       // registrator's, container gone: removed
		be.put(Service{ID: "h1:nc1:8080:udp"}) // registrator's, container still runs: kept
		be.put(Service{ID: "h2:old:80"})       // another host's: kept
		be.put(Service{ID: "custom-id"})       // not registrator's form: kept
	})
	e.settle(t, "c1:80", "h1:nc1:8080:udp", "h2:old:80", "custom-id")
}

func TestWithoutCleanupUnmarkedEntriesStay(t *testing.T) {
	e := start(t, Config{Hostname: "h1"}, func(_ *fakeSource, be *fakeBackend) { be.put(Service{ID: "h1:old:80"}) })
	e.resync(t)
	e.settle(t, "h1:old:80")
}

func TestResyncInspectsOnlyWhatTheListSaysChanged(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, _ *fakeBackend) {
		for i := range 10 {
			src.set(running(fmt.Sprint("c", i), 80))
		}
	})
	// The first pass's syncs all done first: a full pass that overlaps a
	// sync between its write and its end sees the entry without the
	// desired state yet, and queues the container once more (harmless: it
	// is found in sync; this test counts inspections).
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("c%d:80", i))
	}
	e.settle(t, ids...)
	for range 4 {
		e.resync(t)
	}
	e.src.mu.Lock()
	n := e.src.inspects
	e.src.mu.Unlock()
	if n != 10 {
		t.Fatalf("%d inspections for 10 unchanged containers over 5 full passes, want 10", n)
	}
}

// driftObserver adds up what full passes report as drift.
type driftObserver struct {
	nopObserver
	missing, stale atomic.Int64
}

func (d *driftObserver) Reconciled(_ time.Duration, _ error, missing, stale int) {
	d.missing.Add(int64(missing))
	d.stale.Add(int64(stale))
}

// A full pass that runs while a worker is between a container's two
// writes sees the first entry without the container's desired state yet:
// it is no drift (the sync is making it right), and counting it as one
// would feed RegistratorDriftRepeated on a host where containers churn.
func TestPassDuringASyncCountsNoDrift(t *testing.T) {
	obs := &driftObserver{}
	hold, held := make(chan struct{}), make(chan struct{})
	e := start(t, Config{Observer: obs}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80, 443))
		be.holdSecond, be.heldSecond = hold, held
	})
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the second registration never came")
	}
	e.reconcile(t)
	close(hold)
	e.settle(t, "c1:443", "c1:80")
	if m, s := obs.missing.Load(), obs.stale.Load(); m+s != 0 {
		t.Fatalf("full passes reported %d missing and %d stale entries, want none", m, s)
	}
}
