package consul

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/bridge"
)

// RejoinEvery is how often the agent's members are read when the backend
// keeps the agent joined (-consul-rejoin), and how often a join is asked
// for again while it is needed.
const RejoinEvery = 2 * time.Second

// memberFailed and memberLeft are serf's statuses of a member its gossip
// declared failed, and of one that left (AgentMember.Status: 1 alive,
// 2 leaving, 3 left, 4 failed).
const (
	memberLeft   = 3
	memberFailed = 4
)

// serfHealth is the check Consul's servers keep on every node: critical
// while they hold the node failed.
const serfHealth = "serfHealth"

// joiner asks the agent to join servers, one request at a time, and gives
// up for good once the token is refused.
type joiner struct {
	b         *Backend
	busy      atomic.Bool
	forbidden atomic.Bool
}

// join asks the agent to join each of addrs, in the background (a join to
// a server still cut off takes as long as the agent's own timeout); it
// does nothing while an earlier call's joins run.
func (j *joiner) join(addrs []string, why string) {
	if len(addrs) == 0 || j.forbidden.Load() || !j.busy.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer j.busy.Store(false)
		for _, addr := range addrs {
			err := j.b.client.Agent().Join(addr, false)
			if answered(err, http.StatusForbidden) {
				j.b.log.WithField("error", err).Warn("consul: the token may not ask the agent to join (agent:write): -consul-rejoin does nothing")
				j.forbidden.Store(true)
				return
			}
			if err == nil {
				j.b.log.WithFields(map[string]any{"server": addr, "why": why}).Info("consul: asked the agent to join the server again: it did")
			}
		}
	}()
}

// keepJoined keeps the agent joined to its servers until ctx is done
// (-consul-rejoin, on by default). A network partition leaves a node out of
// Consul's healthy answers until gossip on both sides agrees it is alive,
// which Consul's own timers take up to a minute to bring about:
//
//   - the agent's gossip holds every server failed (a cut longer than its
//     suspicion timeout): it tries a failed member again only every 30 s,
//     and then with a probability. Every RejoinEvery the members are read,
//     and while the agent holds every server failed, it is asked to join
//     them;
//   - the servers hold this node failed (its serfHealth is critical) while
//     the agent, cut off more briefly, never took them for failed: nothing
//     tells the node, until a periodic state exchange, that it must say it
//     is alive. heldFailed follows serfHealth and asks the agent to join
//     the servers, an exchange that makes it refute at once.
//
// A join made while the server is still cut off fails and is asked for
// again; one that succeeds brings the node back. Whenever the agent has
// its servers again (it sees one again, its read of the node's health
// works again after failing, the servers hold the node alive again),
// pushPending has it pass on at once what it took while cut off.
func (b *Backend) keepJoined(ctx context.Context) {
	j := &joiner{b: b}
	var (
		mu      sync.Mutex
		servers []string // every server of the agent's gossip that did not leave
		self    string
	)
	known := func() (string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return self, servers
	}
	var rpc map[netip.AddrPort]bool // the RPC addresses of those servers
	rpcKnown := func() map[netip.AddrPort]bool {
		mu.Lock()
		defer mu.Unlock()
		return rpc
	}
	go b.heldFailed(ctx, j, known)
	go b.unstall(ctx, rpcKnown, hostConns{})
	lost := map[string]bool{} // failed servers, by address: logged once each time
	tick := time.NewTicker(RejoinEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if j.forbidden.Load() {
			return
		}
		name, _ := known()
		if name == "" {
			n, err := b.client.Agent().NodeName()
			if err != nil {
				continue
			}
			name = n
		}
		members, err := b.client.Agent().MembersOpts(api.MembersOpts{})
		if err != nil {
			continue
		}
		var failed, all []string
		rpcAddrs := map[netip.AddrPort]bool{}
		for _, m := range members {
			addr := net.JoinHostPort(m.Addr, strconv.Itoa(int(m.Port)))
			if m.Name == name || !m.IsConsulServer() || m.Status == memberLeft {
				continue
			}
			all = append(all, addr)
			if a, ok := serverRPC(m); ok {
				rpcAddrs[a] = true
			}
			if m.Status != memberFailed {
				if lost[addr] {
					b.log.WithField("server", m.Name).Info("consul: the agent sees the server again")
					delete(lost, addr)
					b.pushPending(ctx, name, "the agent sees a server again")
				}
				continue
			}
			if !lost[addr] {
				b.log.WithField("server", m.Name).Warn("consul: the agent's gossip holds a server failed (the agent is asked to join the servers again while it holds them all failed)")
				lost[addr] = true
			}
			failed = append(failed, addr)
		}
		mu.Lock()
		self, servers, rpc = name, all, rpcAddrs
		mu.Unlock()
		// Cut off from every server: join them. With one server left alive
		// the agent syncs through it, and the others are for the cluster's
		// gossip to take back (asking for a server that died for good, at
		// every read, would cost each host a connection attempt for as
		// long as Consul keeps the dead member, 72 h).
		if len(failed) == len(all) {
			j.join(failed, "the agent held every server failed")
		}
	}
}

// serverRPC is the address a server member takes RPCs on: its gossip
// address with the port of its "port" tag (8300 by default).
func serverRPC(m *api.AgentMember) (netip.AddrPort, bool) {
	ip, err := netip.ParseAddr(m.Addr)
	if err != nil {
		return netip.AddrPort{}, false
	}
	port := 8300
	if p, ok := m.Tags["port"]; ok {
		if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}

// heldFailed holds a blocking query on this node's health checks, and while
// the servers answer that they hold it failed (serfHealth critical), asks
// the agent every RejoinEvery to join the servers. The query costs the
// servers nothing while nothing changes; it is stale-allowed (any server
// answers) and renewed every minute. An answer the link held up during a
// cut arrives when the agent's connection to the server recovers. known
// gives the node's name and the servers, once the members have been read.
func (b *Backend) heldFailed(ctx context.Context, j *joiner, known func() (string, []string)) {
	every := bridge.ConstantBackoff(RejoinEvery)
	var index uint64
	said, tries, failing := false, 0, false
	for ctx.Err() == nil && !j.forbidden.Load() {
		self, servers := known()
		if self == "" {
			if every.Sleep(ctx, 1) != nil {
				return
			}
			continue
		}
		checks, meta, err := b.client.Health().Node(self, (&api.QueryOptions{AllowStale: true, WaitIndex: index, WaitTime: time.Minute}).WithContext(ctx))
		switch {
		case ctx.Err() != nil:
			return
		case answered(err, http.StatusForbidden):
			b.log.WithField("error", err).Warn("consul: the token may not read this node's health (node:read): -consul-rejoin does not see the servers hold the node failed")
			return
		case err != nil: // cut off, or no leader yet: ask again soon, as the link may be back
			index, failing = 0, true
			if heldFailedProbe.Sleep(ctx, 1) != nil {
				return
			}
			continue
		}
		if failing {
			failing = false
			b.pushPending(ctx, self, "the agent reads from its servers again")
		}
		critical := false
		for _, c := range checks {
			if c.CheckID == serfHealth && c.Status == api.HealthCritical {
				critical = true
			}
		}
		if !critical {
			if said {
				b.log.Info("consul: the servers hold this node alive again")
				b.pushPending(ctx, self, "the servers hold this node alive again")
			}
			said, index = false, meta.LastIndex
			continue
		}
		if !said {
			b.log.Warn("consul: the servers hold this node failed while its agent runs: asking the agent to join them")
			said, tries = true, 0
		}
		j.join(servers, "the servers held this node failed")
		// Ask again, and join again, until the answer changes: every
		// RejoinEvery at first (a join made before the link came back
		// fails), then less often, up to every 30 s (a node whose gossip
		// the network blocks for good stays failed whatever it does).
		tries++
		index = 0
		if heldFailedRetry.Sleep(ctx, tries) != nil {
			return
		}
	}
}

// heldFailedProbe is the wait before asking again after a failed read of
// the node's health (the agent cut off from its servers, or no leader):
// the first read that works after a reconnection is what finds the node
// held failed, and a join follows it at once. Each read is one request to
// the local agent, which fails at once or waits for its servers (its RPC
// hold timeout, 7 s by default); on the test bed a 2 s wait here left the
// servers holding a reconnected node failed for up to 2 s more than its
// agent took to answer (docs/reliability.md, "Many hosts").
var heldFailedProbe = bridge.ConstantBackoff(500 * time.Millisecond)

// heldFailedRetry is the wait before asking again after the n-th answer
// in a row that held this node failed: RejoinEvery for the first five,
// then doubling up to 30 s.
var heldFailedRetry bridge.Backoff = func(n int) time.Duration {
	if n <= 5 {
		return RejoinEvery
	}
	return min(RejoinEvery<<(n-5), 30*time.Second)
}
