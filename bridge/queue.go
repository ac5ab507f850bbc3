package bridge

import (
	"context"
	"sync"
	"time"
)

// queue holds the keys (container IDs) that need work. It never blocks a
// producer and never loses a key: adding a key that is already waiting is a
// no-op, and adding a key that a worker is processing makes it wait again
// once that worker is done, so the work for one key is never done by two
// workers at once and always sees the latest state.
type queue struct {
	mu         sync.Mutex
	wake       chan struct{} // buffer 1: a key became ready
	waiting    []string      // FIFO of ready keys
	ready      map[string]bool
	processing map[string]bool
	again      map[string]bool // added while processing
	timers     map[string]*time.Timer
	failures   map[string]int
	backoff    Backoff
}

func newQueue(b Backoff) *queue {
	return &queue{
		wake:       make(chan struct{}, 1),
		ready:      map[string]bool{},
		processing: map[string]bool{},
		again:      map[string]bool{},
		timers:     map[string]*time.Timer{},
		failures:   map[string]int{},
		backoff:    b,
	}
}

// Add makes key ready now, cancelling a pending retry.
func (q *queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.timers[key]; t != nil {
		t.Stop()
		delete(q.timers, key)
	}
	q.addLocked(key)
}

func (q *queue) addLocked(key string) {
	switch {
	case q.processing[key]:
		q.again[key] = true
	case !q.ready[key]:
		q.ready[key] = true
		q.waiting = append(q.waiting, key)
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// Get blocks until a key is ready or ctx is done. The caller must call Done.
func (q *queue) Get(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		if len(q.waiting) > 0 {
			key := q.waiting[0]
			q.waiting[0] = ""
			q.waiting = q.waiting[1:]
			delete(q.ready, key)
			q.processing[key] = true
			more := len(q.waiting) > 0
			q.mu.Unlock()
			if more { // pass the wake-up on to another worker
				select {
				case q.wake <- struct{}{}:
				default:
				}
			}
			return key, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-q.wake:
		}
	}
}

// AddAfter makes key ready after d, unless it is added sooner.
func (q *queue) AddAfter(key string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.timers[key]; t != nil {
		t.Stop()
	}
	q.timers[key] = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.timers, key)
		q.addLocked(key)
	})
}

// Done ends the processing of key. A failed key is retried after a backoff
// that grows with its consecutive failures, unless it is added again sooner.
func (q *queue) Done(key string, failed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if !failed {
		delete(q.failures, key)
	}
	if q.again[key] {
		delete(q.again, key)
		q.addLocked(key)
		return
	}
	if failed {
		q.failures[key]++
		if t := q.timers[key]; t != nil {
			t.Stop()
		}
		q.timers[key] = time.AfterFunc(q.backoff(q.failures[key]), func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			delete(q.timers, key)
			q.addLocked(key)
		})
	}
}

// Processing says whether a worker is processing key now.
func (q *queue) Processing(key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.processing[key]
}

// Len returns the number of keys waiting, being processed or due for a retry.
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.waiting) + len(q.processing)
	for k := range q.timers {
		if !q.ready[k] && !q.processing[k] {
			n++
		}
	}
	return n
}

// Stop cancels every pending retry.
func (q *queue) Stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
}
