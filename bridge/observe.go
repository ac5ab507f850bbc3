package bridge

import (
	"maps"
	"slices"
	"time"
)

// Observer is told what a bridge does, for metrics. Its methods must be
// quick and safe for concurrent use.
type Observer interface {
	// Reconciled ends a full reconcile; repaired counts the entries it
	// found missing (to be written again) and stale (to be removed).
	Reconciled(took time.Duration, err error, missing, stale int)
	// Wrote ends a write to the backend: action is register or deregister;
	// took is how long the backend took to answer.
	Wrote(action string, took time.Duration, err error)
	// Synced ends the sync that applied a change, took after it was
	// reported with Changed.
	Synced(took time.Duration)
}

type nopObserver struct{}

func (nopObserver) Reconciled(time.Duration, error, int, int) {}
func (nopObserver) Wrote(string, time.Duration, error)        {}
func (nopObserver) Synced(time.Duration)                      {}

// Sync states of a service, as Status reports them.
const (
	InSync  = "in sync" // the backend holds what should exist
	Pending = "pending" // queued or being written
	Failing = "failing" // the last write failed; it is retried
	Held    = "held"    // someone else holds the entry: not registered, looked at again every pass
)

// ServiceStatus is one service of a container and its state in the backend.
type ServiceStatus struct {
	Service Service
	State   string
	Error   string `json:",omitempty"` // the last error, when failing
}

// ContainerStatus is what the bridge holds for one running container.
type ContainerStatus struct {
	ID       string
	Name     string
	Services []ServiceStatus
}

// Status returns, for every container that should have services, each
// service and its state, by container ID.
func (b *Bridge) Status() []ContainerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []ContainerStatus
	for _, id := range slices.Sorted(maps.Keys(b.containers)) {
		k := b.containers[id]
		if len(k.services) == 0 {
			continue
		}
		cs := ContainerStatus{ID: id, Name: k.name}
		for i, s := range k.services {
			st := ServiceStatus{Service: s, State: Pending}
			if a, ok := b.actual[id][s.ID]; ok && a.Owner == b.cfg.Owner.String() && a.Revision == k.serviceRevs[i] {
				st.State = InSync
			} else if holder, ok := b.held[heldKey{id, s.ID}]; ok {
				st.State, st.Error = Held, "the entry is held by "+holder
			} else if k.err != "" {
				st.State, st.Error = Failing, k.err
			}
			cs.Services = append(cs.Services, st)
		}
		out = append(out, cs)
	}
	return out
}

// Reconciled reports whether a full reconcile has succeeded.
func (b *Bridge) Reconciled() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reconciled
}
