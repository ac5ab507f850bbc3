package consul

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/bridge"
)

// pushTries and pushEvery bound pushPending: it compares the agent's
// services with the servers' this many times, this far apart, at most.
const pushTries = 10

var pushEvery = bridge.ConstantBackoff(500 * time.Millisecond)

// pushTimeout bounds each request pushPending makes.
const pushTimeout = 5 * time.Second

// pushPending makes the servers hold this node's services as its agent
// holds them, once the agent reaches the servers again after a cut
// (-consul-rejoin). The agent took the daemon's writes while it could not
// reach the servers and failed to pass them on; it passes them on when the
// next write comes, or by itself after a random wait once it has servers
// again: up to 3 s, and longer in a larger cluster (Consul scales the
// wait with the number of nodes, up to 12 s at 1000), so that the hosts of
// a healed partition do not all write at once. One host's handful of
// changes is no such load, and the daemon's writes in flight would send
// them at once anyway.
//
// It compares the entries with this backend's owner mark in the agent and
// in the servers' catalog for node. While they differ it nudges the
// agent, every pushEvery, up to pushTries times; it stops when they are
// equal, and at once when the catalog cannot be read for good (403). At
// most one runs at a time; a call while one runs does nothing.
func (b *Backend) pushPending(ctx context.Context, node, why string) {
	if node == "" || !b.pushing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer b.pushing.Store(false)
		nudged := 0
		for try := 1; try <= pushTries; try++ {
			if try > 1 && pushEvery.Sleep(ctx, try) != nil {
				return
			}
			local, differ, err := b.unpushed(ctx, node)
			switch {
			case ctx.Err() != nil:
				return
			case answered(err, http.StatusForbidden):
				b.log.WithField("error", err).Warn("consul: the token may not read this node's services from the catalog (node:read, service:read): after a cut, the agent passes on what it holds when it chooses to")
				return
			case err != nil: // the agent has no servers yet, or no leader
				continue
			case len(differ) == 0:
				if nudged > 0 {
					b.log.WithField("nudges", nudged).Info("consul: the servers hold what the agent holds again")
				}
				return
			}
			n, err := b.nudge(ctx, local, differ)
			if err != nil {
				b.log.WithField("error", err).Debug("consul: asking the agent to pass on what it holds failed")
			}
			if n == 0 {
				continue
			}
			nudged++
			if nudged == 1 {
				b.log.WithFields(map[string]any{"why": why, "differ": len(differ), "written": n}).Info("consul: the servers' catalog differs from what the agent holds: asking the agent to pass it on now")
			}
		}
		b.log.WithField("why", why).Debug("consul: the servers still differ from the agent; its own sync will follow")
	}()
}

// unpushed reads this backend's entries from the agent (as Services
// does) and from the servers' catalog for node: the agent's, by ID with
// their revision, and the IDs whose revisions differ or that only one side
// holds.
func (b *Backend) unpushed(ctx context.Context, node string) (map[string]string, []string, error) {
	b.ownMu.Lock()
	owners := map[string]bool{}
	for _, s := range b.sent {
		owners[s.Owner] = true
	}
	b.ownMu.Unlock()
	if len(owners) == 0 {
		return nil, nil, nil // nothing of ours to compare, nor to nudge with
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	mine := func(svcs []bridge.Service) map[string]string {
		out := map[string]string{}
		for _, s := range svcs {
			if owners[s.Owner] {
				out[s.ID] = s.Revision
			}
		}
		return out
	}
	held, err := b.Services(ctx)
	if err != nil {
		return nil, nil, err
	}
	local := mine(held)
	list, _, err := b.client.Catalog().NodeServiceList(node, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	lean := map[string]listedService{}
	if list != nil {
		for _, s := range list.Services {
			lean[s.ID] = listed(s)
		}
	}
	remote := mine(servicesOf(lean))
	var differ []string
	for id, rev := range local {
		if r, ok := remote[id]; !ok || r != rev {
			differ = append(differ, id)
		}
	}
	for id := range remote {
		if _, ok := local[id]; !ok {
			differ = append(differ, id)
		}
	}
	return local, differ, nil
}

// pushFlips bounds how many entries one nudge writes twice.
const pushFlips = 16

// nudge makes the agent pass on to the servers what it holds of differ
// (IDs whose entries differ between the agent and the servers; local: the
// agent's entries by ID with their revision). Registering a service again
// makes the agent pass on every change it holds, but not that service
// when it is unchanged: Consul then takes it as synced even if its last
// sync failed (an entry the daemon wrote again while the agent was cut
// off stays out of the catalog until the agent's next full sync). So an
// entry of differ that the agent holds as this backend last sent it (the
// agent often applies a registration whose answer timed out) is
// registered twice: once with its revision marked, which the agent must
// pass on, then exactly as before. When differ holds only entries
// the agent no longer has (their removal not passed on), one service is
// registered again as it was, which passes the removals on. Checks are
// never replaced (a maintenance mode set meanwhile stays) and their states
// are kept by the agent. It does nothing while a Register or Deregister
// runs (that write passes the agent's changes on too, and a newer
// version must not be overtaken), and returns how many entries it wrote.
func (b *Backend) nudge(ctx context.Context, local map[string]string, differ []string) (int, error) {
	if !b.writes.TryLock() {
		return 0, nil
	}
	defer b.writes.Unlock()
	b.ownMu.Lock()
	var flip, same []bridge.Service
	for id, s := range b.sent {
		if rev, ok := local[id]; !ok || rev != s.Fingerprint() {
			continue
		}
		if slices.Contains(differ, id) {
			flip = append(flip, s)
		} else {
			same = append(same, s)
		}
	}
	b.ownMu.Unlock()
	byID := func(a, b bridge.Service) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(flip, byID)
	slices.SortFunc(same, byID)
	if len(flip) > pushFlips {
		flip = flip[:pushFlips]
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	write := func(s bridge.Service, mark bool) error {
		reg, _ := registration(s)
		if mark {
			reg.Meta[MetaRevision] += "+push"
		}
		return b.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx))
	}
	if len(flip) == 0 {
		if len(same) == 0 {
			return 0, nil
		}
		if err := write(same[0], false); err != nil {
			return 0, err
		}
		return 1, nil
	}
	for i, s := range flip {
		if err := write(s, true); err != nil {
			return i, err
		}
		if err := write(s, false); err != nil {
			return i, err
		}
	}
	return len(flip), nil
}
