package consul

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/bridge"
)

// owned notes that this backend registered s (yes) or deregistered it.
func (b *Backend) owned(s bridge.Service, yes bool) {
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	if !yes {
		delete(b.own, s.ID)
		return
	}
	b.own[s.ID] = writtenFor(s)
	select {
	case b.ownWake <- struct{}{}:
	default:
	}
}

// writtenFor is whose entry a registration of s is: own's values.
func writtenFor(s bridge.Service) string { return s.Owner + "\x00" + s.Container + "\x00" + s.Writer }

// canary is one service this backend registered, "" if none; and a channel
// that is signalled when one is registered.
func (b *Backend) canary() (string, <-chan struct{}) {
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	if len(b.own) == 0 {
		return "", b.ownWake
	}
	return slices.Min(slices.Collect(maps.Keys(b.own))), b.ownWake
}

// stillOwned reports whether this backend registered id, for anyone, and
// has not deregistered it since.
func (b *Backend) stillOwned(id string) bool {
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	return b.own[id] != ""
}

// ownedAs reports whether this backend registered s's ID as s's, and has
// not deregistered it since.
func (b *Backend) ownedAs(s bridge.Service) bool {
	b.ownMu.Lock()
	defer b.ownMu.Unlock()
	return b.own[s.ID] == writtenFor(s)
}

// Notify calls lost when the local agent may have lost our services: an
// agent that restarts without its state (a dev agent, a new data dir, a
// replaced container) comes back empty. It holds a blocking query on one
// service this backend registered (the canary): the query breaks when the
// agent goes away, and answers 404 when the service is gone. lost is
// called once the agent answers again after a break, and when the canary
// vanished without this backend deregistering it. An agent that does not
// let the token read the service (403) is left to the resync.
func (b *Backend) Notify(ctx context.Context, lost func()) {
	retry := bridge.ExponentialBackoff(100*time.Millisecond, 2*time.Second)
	var hash string
	broken, failures := false, 0
	for ctx.Err() == nil {
		id, wake := b.canary()
		if id == "" {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, BlockingTimeout(BlockingWait))
		_, meta, err := b.client.Agent().Service(id, (&api.QueryOptions{WaitHash: hash, WaitTime: BlockingWait}).WithContext(qctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case answered(err, http.StatusNotFound):
			hash = ""
			if broken || b.stillOwned(id) {
				broken = false
				b.owned(bridge.Service{ID: id}, false) // pick another; the reconcile registers it again
				lost()
			}
		case answered(err, http.StatusForbidden):
			b.log.WithField("error", err).Warn("consul: the token cannot read its own service; an agent restart is repaired at the next resync")
			<-ctx.Done()
			return
		case err != nil:
			broken, hash = true, ""
			failures++
			if retry.Sleep(ctx, failures) != nil {
				return
			}
			continue
		default:
			hash = meta.LastContentHash
			if broken {
				lost() // the agent came back: it may have come back empty
			}
			broken = false
		}
		failures = 0
	}
}
