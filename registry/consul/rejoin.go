package consul

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// RejoinEvery is how often the agent's members are read when the backend
// keeps the agent joined (-consul-rejoin).
const RejoinEvery = 2 * time.Second

// memberFailed is serf's status of a member its gossip declared failed
// (AgentMember.Status: 1 alive, 2 leaving, 3 left, 4 failed).
const memberFailed = 4

// keepJoined asks the agent, every RejoinEvery until ctx is done, for the
// servers of its datacenter it knows; each one its gossip marks failed, it
// asks the agent to join again. After a network partition heals, Consul's
// gossip tries a failed member again only every 30 s, and then only with a
// probability; until one side does, the servers hold the node failed and
// its services out of the catalog. A join made while the server is still
// cut off fails, and is tried again at the next read; one that succeeds
// brings the node back, and the agent syncs its services at once.
func (b *Backend) keepJoined(ctx context.Context) {
	var joining, forbidden atomic.Bool
	self := ""
	lost := map[string]bool{} // failed servers, by address: logged once each time
	tick := time.NewTicker(RejoinEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if forbidden.Load() {
			return
		}
		if self == "" {
			name, err := b.client.Agent().NodeName()
			if err != nil {
				continue
			}
			self = name
		}
		members, err := b.client.Agent().MembersOpts(api.MembersOpts{})
		if err != nil {
			continue
		}
		var failed []string
		for _, m := range members {
			addr := net.JoinHostPort(m.Addr, strconv.Itoa(int(m.Port)))
			if m.Name == self || !m.IsConsulServer() {
				continue
			}
			if m.Status != memberFailed {
				if lost[addr] {
					b.log.WithField("server", m.Name).Info("consul: the agent sees the server again")
					delete(lost, addr)
				}
				continue
			}
			if !lost[addr] {
				b.log.WithField("server", m.Name).Warn("consul: the agent's gossip holds a server failed: asking the agent to join it again every 2 s")
				lost[addr] = true
			}
			failed = append(failed, addr)
		}
		if len(failed) == 0 || !joining.CompareAndSwap(false, true) {
			continue
		}
		go func() { // a join to a server still cut off takes as long as the agent's own timeout
			defer joining.Store(false)
			for _, addr := range failed {
				err := b.client.Agent().Join(addr, false)
				var se api.StatusError
				if errors.As(err, &se) && se.Code == http.StatusForbidden {
					b.log.WithField("error", err).Warn("consul: the token may not ask the agent to join: -consul-rejoin does nothing")
					forbidden.Store(true)
					return
				}
				if err == nil {
					b.log.WithField("server", addr).Info("consul: asked the agent to join the server again: it did")
				}
			}
		}()
	}
}
