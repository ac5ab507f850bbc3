package bridge

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, q *queue) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k, ok := q.Get(ctx)
	if !ok {
		t.Fatal("no key became ready")
	}
	return k
}

func TestQueueCoalescesWaitingKeys(t *testing.T) {
	q := newQueue(ExponentialBackoff(time.Millisecond, time.Millisecond))
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if k := get(t, q); k != "a" {
		t.Fatalf("first key %q, want a", k)
	}
	if k := get(t, q); k != "b" {
		t.Fatalf("second key %q, want b", k)
	}
	if n := q.Len(); n != 2 {
		t.Fatalf("Len %d while both are processed, want 2", n)
	}
	q.Done("a", false)
	q.Done("b", false)
	if n := q.Len(); n != 0 {
		t.Fatalf("Len %d after Done, want 0", n)
	}
}

func TestQueueKeyAddedWhileProcessingRunsAgainAfter(t *testing.T) {
	q := newQueue(ExponentialBackoff(time.Millisecond, time.Millisecond))
	q.Add("a")
	k := get(t, q)
	q.Add("a") // an event while a worker has it
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if k2, ok := q.Get(ctx); ok {
		t.Fatalf("key %q handed out while still processed", k2)
	}
	q.Done(k, false)
	if k := get(t, q); k != "a" {
		t.Fatalf("key %q, want a again", k)
	}
}

func TestQueueRetriesFailuresWithGrowingBackoff(t *testing.T) {
	var waits []time.Duration
	var mu sync.Mutex
	q := newQueue(func(n int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, time.Duration(n)*10*time.Millisecond)
		return time.Duration(n) * 10 * time.Millisecond
	})
	q.Add("a")
	for range 3 {
		q.Done(get(t, q), true)
	}
	get(t, q)
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 3 || waits[0] >= waits[2] {
		t.Fatalf("backoffs %v, want 3 growing ones", waits)
	}
}

func TestQueueAddCancelsPendingRetry(t *testing.T) {
	q := newQueue(func(int) time.Duration { return time.Hour })
	q.Add("a")
	q.Done(get(t, q), true) // retry in an hour
	q.Add("a")              // but an event comes now
	if k := get(t, q); k != "a" {
		t.Fatalf("key %q, want a", k)
	}
}

func TestQueueNeverHandsOneKeyToTwoWorkers(t *testing.T) {
	q := newQueue(ExponentialBackoff(time.Millisecond, time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	var busy [4]atomic.Int32
	var overlap, runs atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, ok := q.Get(ctx)
				if !ok {
					return
				}
				i := int(k[0] - 'a')
				if busy[i].Add(1) > 1 {
					overlap.Add(1)
				}
				time.Sleep(100 * time.Microsecond)
				busy[i].Add(-1)
				runs.Add(1)
				q.Done(k, false)
			}
		}()
	}
	for i := range 2000 {
		q.Add(string(rune('a' + i%4)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	if overlap.Load() != 0 {
		t.Fatalf("a key was processed by two workers at once %d times", overlap.Load())
	}
	if q.Len() != 0 || runs.Load() == 0 {
		t.Fatalf("queue left %d keys after %d runs", q.Len(), runs.Load())
	}
}
