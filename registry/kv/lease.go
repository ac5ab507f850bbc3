package kv

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
)

// leaseKey records the lease this daemon's entries are on, so that a
// daemon restarted within the TTL adopts it. Where the mark was set by
// hand the record names the host too: two hosts given the same mark by
// mistake never adopt each other's lease (each host's entries go with its
// own daemon).
func (b *Backend) leaseKey() string {
	if b.writer != "" {
		return b.marks + "/leases/" + b.owner + "@" + b.writer
	}
	return b.marks + "/leases/" + b.owner
}

// ensureLease returns the lease entries are written on: the one in use, else
// the one a previous run of this daemon recorded if it is still alive, else
// a new one.
func (b *Backend) ensureLease(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lease != "" {
		return b.lease, nil
	}
	var lease string
	recorded, found, err := b.store.Get(ctx, b.leaseKey())
	if err != nil {
		return "", fmt.Errorf("%s: read lease record: %w", b.name, err)
	}
	if found {
		if alive, err := b.store.Alive(ctx, string(recorded.Value)); err == nil && alive {
			lease = string(recorded.Value)
			b.log.WithField("lease", lease).Info("adopted the lease of the previous run")
		}
	}
	if lease == "" {
		if lease, err = b.store.Grant(ctx, b.ttl); err != nil {
			return "", fmt.Errorf("%s: grant lease: %w", b.name, err)
		}
		if err := b.store.Commit(ctx, lease, []Op{{Key: b.leaseKey(), Value: []byte(lease)}}); err != nil {
			return "", fmt.Errorf("%s: record lease: %w", b.name, err)
		}
		b.log.WithFields(logrus.Fields{"lease": lease, "ttl": b.ttl}).Info("granted a lease")
	}
	kctx, cancel := context.WithCancel(context.Background())
	if err := b.store.KeepAlive(kctx, lease, func() { b.dropLease(lease, "keep-alive ended") }); err != nil {
		cancel()
		return "", fmt.Errorf("%s: keep lease alive: %w", b.name, err)
	}
	b.lease, b.stop, b.keys, b.listed = lease, cancel, map[string]string{}, false
	return lease, nil
}

// dropLease forgets a lease that expired: the next operation takes a new
// one, and the next full reconcile writes every entry again.
func (b *Backend) dropLease(lease, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lease != lease {
		return
	}
	b.stop()
	b.lease, b.stop, b.keys, b.listed = "", nil, nil, false
	b.log.WithField("lease", lease).Warnf("lease lost (%s): its entries are gone and will be written again", why)
	select {
	case b.lost <- struct{}{}:
	default:
	}
}

var _ bridge.Notifier = (*Backend)(nil)

// Notify calls lost each time the daemon's lease ended (etcd away past the
// TTL or wiped, a Consul session invalidated by an agent restart, a
// ZooKeeper session expired): its entries went with it, and the bridge
// writes them again at once rather than at the next resync.
func (b *Backend) Notify(ctx context.Context, lost func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.lost:
			lost()
		}
	}
}
