package bridge

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// counts is what a recorder was told.
type counts struct {
	reconciles      int
	missing, stale  int
	writes, failed  int
	synced          int
	reconcileErrors int
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu sync.Mutex
	counts
}

func (r *recorder) Reconciled(_ time.Duration, err error, missing, stale int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconciles++
	if err != nil {
		r.reconcileErrors++
	}
	r.missing += missing
	r.stale += stale
}

func (r *recorder) Wrote(_ string, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	if err != nil {
		r.failed++
	}
}

func (r *recorder) Synced(time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.synced++
}

func (r *recorder) get() counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

func TestObserverCountsWritesSyncsAndRepairs(t *testing.T) {
	rec := &recorder{}
	e := start(t, Config{Observer: rec}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80))
		be.put(stored(Service{ID: "gone:80", Container: "gone"}, owner))
	})
	e.settle(t, "c1:80")
	if !e.b.Reconciled() {
		t.Error("Reconciled is false after a full reconcile")
	}
	got := rec.get()
	if got.reconciles != 1 || got.stale != 1 || got.writes != 2 || got.failed != 0 {
		t.Errorf("after start: %+v; want 1 reconcile finding 1 stale entry, 2 writes", got)
	}

	e.src.set(running("c2", 80))
	e.b.Changed("c2")
	e.settle(t, "c1:80", "c2:80")
	if got := rec.get(); got.synced != 1 || got.writes != 3 {
		t.Errorf("after one change: %+v; want 1 sync measured and 3 writes", got)
	}

	e.be.mu.Lock()
	delete(e.be.entries, "c1:80") // the backend lost an entry
	e.be.mu.Unlock()
	e.b.Resync()
	e.settle(t, "c1:80", "c2:80")
	if got := rec.get(); got.missing != 1 {
		t.Errorf("after the backend lost an entry: %+v; want 1 missing found", got)
	}
}

func TestStatusReportsStateOfEachService(t *testing.T) {
	e := start(t, Config{}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80, 443))
	})
	e.settle(t, "c1:443", "c1:80")
	st := e.b.Status()
	if len(st) != 1 || st[0].Name != "nc1" || len(st[0].Services) != 2 {
		t.Fatalf("status %+v, want container nc1 with 2 services", st)
	}
	for _, s := range st[0].Services {
		if s.State != InSync {
			t.Errorf("%s is %q, want %q", s.Service.ID, s.State, InSync)
		}
	}

	e.be.mu.Lock()
	e.be.failWrites = 1000
	e.be.mu.Unlock()
	e.src.set(running("c2", 80))
	e.b.Changed("c2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var state, msg string
		for _, c := range e.b.Status() {
			if c.ID == "c2" && len(c.Services) == 1 {
				state, msg = c.Services[0].State, c.Services[0].Error
			}
		}
		if state == Failing && msg != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c2's service is %q (%q), want %q with the error", state, msg, Failing)
		}
		time.Sleep(5 * time.Millisecond)
	}

	e.src.remove("c1")
	e.b.Changed("c1")
	e.be.mu.Lock()
	e.be.failWrites = 0
	e.be.mu.Unlock()
	e.settle(t, "c2:80")
	for _, c := range e.b.Status() {
		if c.ID == "c1" {
			t.Errorf("removed container still in the status: %+v", c)
		}
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	rec := &recorder{}
	e := start(t, Config{DryRun: true, Observer: rec}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80))
		be.put(stored(Service{ID: "gone:80", Container: "gone"}, owner))
	})
	e.resync(t)
	e.src.set(running("c2", 80))
	e.b.Changed("c2")
	e.idle(t)
	if w := e.be.writes(); w != 0 {
		t.Fatalf("%d writes in a dry run", w)
	}
	if ids := e.be.ids(); len(ids) != 1 || ids[0] != "gone:80" {
		t.Fatalf("registry holds %v, want it untouched", ids)
	}
	if got := rec.get(); got.writes != 0 {
		t.Errorf("observer told of %d writes in a dry run", got.writes)
	}
}

func TestReconcileErrorsAreObserved(t *testing.T) {
	rec := &recorder{}
	e := start(t, Config{Observer: rec}, func(src *fakeSource, be *fakeBackend) {
		src.listErr = errors.New("engine down")
	})
	deadline := time.Now().Add(5 * time.Second)
	for rec.get().reconcileErrors == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a failed reconcile was not observed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if e.b.Reconciled() {
		t.Error("Reconciled is true though every reconcile failed")
	}
}

// A backend that does not show Docker health holds a service only while
// its container is healthy; the status is not written to it.
func TestHealthWithdrawsFromBackendsWithoutChecks(t *testing.T) {
	withHealth := func(status string) Container {
		c := running("c1", 80)
		c.Services[0].Health = &Health{Status: status, Output: "probe"}
		return c
	}
	e := start(t, Config{}, func(src *fakeSource, be *fakeBackend) { src.set(withHealth(Starting)) })
	e.settle(t)
	for _, step := range []struct {
		status string
		want   []string
	}{{Healthy, []string{"c1:80"}}, {Unhealthy, nil}, {Healthy, []string{"c1:80"}}} {
		e.src.set(withHealth(step.status))
		e.b.Changed("c1")
		e.settle(t, step.want...)
	}
	e.be.mu.Lock()
	defer e.be.mu.Unlock()
	if h := e.be.entries["c1:80"].Health; h != nil {
		t.Errorf("the backend was given the health %+v", h)
	}
}

// mirror is a backend that shows draining and health itself, as Consul does.
type mirror struct{ *fakeBackend }

func (mirror) MirrorsHealth() bool { return true }

// A stopping container's services are withdrawn from a backend without
// maintenance; one that shows it keeps them, draining, for the drain
// period after the container stopped, then they go.
func TestDrain(t *testing.T) {
	t.Run("withdrawn from a backend without maintenance", func(t *testing.T) {
		e := start(t, Config{}, func(src *fakeSource, be *fakeBackend) { src.set(running("c1", 80)) })
		e.settle(t, "c1:80")
		c := running("c1", 80)
		c.Services[0].Draining = true
		c.Stopping = time.Now()
		e.src.set(c)
		e.b.Changed("c1")
		e.settle(t)
	})
	t.Run("kept draining for the drain period", func(t *testing.T) {
		src := &fakeSource{containers: map[string]Container{}}
		be := mirror{&fakeBackend{entries: map[string]Service{}}}
		src.set(running("c1", 80))
		b := New(src, be, Config{Owner: Identity{mark: owner}, Resync: time.Hour, Retry: ExponentialBackoff(time.Millisecond, 20*time.Millisecond)}, quietLog())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { b.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		b.Resync()
		waitFor(t, func() bool { return len(be.ids()) == 1 })

		stopped := time.Now()
		src.set(Container{ID: "c1", Name: "nc1", Stopping: stopped, Drain: 300 * time.Millisecond})
		b.Changed("c1")
		waitFor(t, func() bool {
			be.mu.Lock()
			defer be.mu.Unlock()
			return be.entries["c1:80"].Draining
		})
		waitFor(t, func() bool { return len(be.ids()) == 0 })
		if took := time.Since(stopped); took < 300*time.Millisecond {
			t.Errorf("deregistered %s after stopping, before the drain period (300ms) ended", took)
		}
	})
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Status judges a service by what this backend should hold: a key-value
// backend holds a healthy service without its health, and that is in sync.
func TestStatusOfAServiceWithHealthInABackendWithoutChecks(t *testing.T) {
	c := running("c1", 80)
	c.Services[0].Health = &Health{Status: Healthy, Output: "ok"}
	e := start(t, Config{}, func(src *fakeSource, be *fakeBackend) { src.set(c) })
	e.settle(t, "c1:80")
	st := e.b.Status()
	if len(st) != 1 || len(st[0].Services) != 1 || st[0].Services[0].State != InSync {
		t.Fatalf("status %+v, want c1:80 in sync", st)
	}
}
