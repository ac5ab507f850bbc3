package bridge

import (
	"context"
	"time"
)

// Backoff returns how long to wait before retry number n (n ≥ 1). It is the
// one retry policy of the daemon: the queue's retries of a failed sync and
// of a failed full reconcile, the wait for the engine at start, the event
// stream's reconnects and the wait for each backend at start all use one.
type Backoff func(n int) time.Duration

// ExponentialBackoff doubles from base up to max.
func ExponentialBackoff(base, max time.Duration) Backoff {
	return func(n int) time.Duration {
		d := base
		for i := 1; i < n && d < max; i++ {
			d *= 2
		}
		return min(d, max)
	}
}

// ConstantBackoff waits d before every retry.
func ConstantBackoff(d time.Duration) Backoff {
	return func(int) time.Duration { return d }
}

// Sleep waits before retry number n, or until ctx is done, and then
// returns ctx's error.
func (b Backoff) Sleep(ctx context.Context, n int) error {
	t := time.NewTimer(b(n))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
