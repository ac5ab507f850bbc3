package bridge

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Run syncs until ctx is done. The first full reconcile happens at the first
// Resync call, so that the caller can subscribe to events before it.
func (b *Bridge) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if n, ok := b.backend.(Notifier); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Notify(ctx, func() {
				b.log.Info("the backend may have lost entries: full reconcile now")
				b.Resync()
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.awaitBackend(ctx)
	}()
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
			b.log.WithFields(logrus.Fields{"container": ShortID(id), "error": err}).Warn("sync failed, will retry")
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
			b.back.Store(false)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		if b.back.Swap(false) {
			// The backend answers again but is not ready yet (a Consul
			// node rejoining its cluster takes a few seconds to take a
			// session): retry from the shortest wait again, not after the
			// backoff the outage grew.
			failures = 1
		}
		wait := min(b.cfg.Retry(failures), b.cfg.Resync)
		b.log.WithField("error", err).Warnf("full reconcile failed, retrying in %s", wait)
		retry = time.AfterFunc(wait, b.Resync)
	}
}

// ProbeInterval is how often a backend that stopped answering is asked
// whether it is back.
const ProbeInterval = time.Second

// awaitBackend turns the backend's return into a full reconcile. The
// retries of what failed while it was away (a container's sync, a full
// reconcile) back off, up to 30 s; without this, a backend back after a
// partition or a restart would wait for them. When a backend call fails,
// it pings the backend: a ping that fails, or that hangs for more than
// ProbeInterval (a link that drops packets holds calls until it comes
// back), means the backend was away; it then pings every ProbeInterval
// until one answers, and asks for a full reconcile, which retries every
// container whose sync failed. A failure the backend answers a ping
// through at once (a refused write) leaves the retries to their backoff.
func (b *Bridge) awaitBackend(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.failed:
		}
		since := time.Now()
		err := b.ping(ctx)
		if err == nil && time.Since(since) < ProbeInterval {
			continue
		}
		if err != nil {
			b.log.WithField("error", err).Warn("the backend does not answer: asking it every second, full reconcile as soon as it does")
			tick := time.NewTicker(ProbeInterval)
			for err != nil {
				select {
				case <-ctx.Done():
					tick.Stop()
					return
				case <-tick.C:
				}
				err = b.ping(ctx)
			}
			tick.Stop()
		}
		// Failures from before this answer are what the reconcile retries.
		select {
		case <-b.failed:
		default:
		}
		b.log.WithField("after", time.Since(since).Round(time.Millisecond)).Info("the backend answers again: full reconcile now")
		b.back.Store(true)
		b.Resync()
	}
}

// ping is Ping without waking awaitBackend.
func (b *Bridge) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	return b.backend.Ping(ctx)
}
