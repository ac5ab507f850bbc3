package consul

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// unstallEvery is how often unstall looks at the host's connections to the
// agent's servers while one of them has data TCP is sending again, and
// unstallIdle how often otherwise. A look lists every TCP connection of
// the namespace, which costs about 2 ms with 200 and 37 ms with 10000
// (BenchmarkHostConnsEstablished); a cut keeps the agent's connection
// retransmitting for 10 s and more, which the idle pace sees in time.
var (
	unstallEvery = time.Second
	unstallIdle  = 5 * time.Second
)

// stallBackoff is how many of TCP's retransmission timeouts in a row a
// connection must have let pass unanswered, its data still unacknowledged,
// before unstall asks whether its server answers: three are at least
// 1.4 s of silence (0.2 + 0.4 + 0.8 s).
const stallBackoff = 3

// unstallDial bounds the connection unstall opens to a server's RPC port
// to learn whether the path to it works.
const unstallDial = 500 * time.Millisecond

// tcpConn is one of the host's TCP connections, as the kernel reports it.
type tcpConn struct {
	Local, Remote netip.AddrPort
	Backoff       uint8  // retransmission timeouts in a row without an answer
	Unacked       uint32 // segments sent and not acknowledged
}

// connTable lists the TCP connections of the daemon's network namespace
// and resets one of them (connTable on Linux: sock_diag).
type connTable interface {
	established() ([]tcpConn, error)
	reset(tcpConn) error
}

// errNoConnTable is what a system without sock_diag answers.
var errNoConnTable = errors.New("listing and resetting TCP connections is supported on Linux only")

// stalled picks, from conns, the connections to one of servers (their RPC
// addresses) whose unacknowledged data TCP has sent again backoff times or
// more in a row without an answer: stallBackoff for a connection to reset,
// 1 for one that sets unstall's pace to unstallEvery.
func stalled(conns []tcpConn, servers map[netip.AddrPort]bool, backoff uint8) []tcpConn {
	var out []tcpConn
	for _, c := range conns {
		if servers[c.Remote] && c.Unacked > 0 && c.Backoff >= backoff {
			out = append(out, c)
		}
	}
	return out
}

// refused tells whether err says this system will not list or reset
// connections for the daemon, now or later: not Linux, or no CAP_NET_ADMIN.
func refused(err error) bool {
	return errors.Is(err, errNoConnTable) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}

// unstall resets the agent's connections to its servers that a network cut
// left waiting on TCP's retransmission schedule once the server answers
// again (part of -consul-rejoin). After a cut, the agent keeps sending
// its RPCs over the connection it had; TCP sends the lost packets again at
// intervals that double while nothing answers, so the first one after the
// link's return can come many seconds later (11 s after a 20 s cut on the
// test bed), or the agent's multiplexer gives the connection up after its
// keepalive fails (up to 40 s after the cut began). Until then every RPC of
// the agent waits, its sync of the daemon's writes with them.
//
// Every unstallIdle, and every unstallEvery while one of them has data
// TCP is sending again, unstall lists the connections to the servers'
// RPC addresses (servers gives them); for each that TCP holds stalled, it
// opens a connection of its own to the same address, and if that works
// (the path is back), it resets the stalled one. The agent sees the error
// at once and dials anew; what it had queued on the old connection is
// dropped, never delivered late, and the agent sends it again. It sees
// only connections in its own network namespace: the agent's when both
// run with the host's network. It stops for good, with a warning, when the
// system cannot list or reset connections (not Linux, no CAP_NET_ADMIN, a
// kernel without CONFIG_INET_DIAG_DESTROY).
func (b *Backend) unstall(ctx context.Context, servers func() map[netip.AddrPort]bool, table connTable) {
	wait := unstallIdle
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = unstallIdle
		srv := servers()
		if len(srv) == 0 {
			continue
		}
		conns, err := table.established()
		if err != nil {
			if refused(err) {
				b.log.WithField("error", err).Warn("consul: cannot list this host's TCP connections: the agent's connections a network cut left stalled are left to TCP and the agent")
				return
			}
			b.log.WithField("error", err).Debug("consul: listing this host's TCP connections failed")
			continue
		}
		if len(stalled(conns, srv, 1)) > 0 {
			wait = unstallEvery
		}
		answers := map[netip.AddrPort]bool{}
		for _, c := range stalled(conns, srv, stallBackoff) {
			ok, seen := answers[c.Remote]
			if !seen {
				ok = reachable(ctx, c.Remote)
				answers[c.Remote] = ok
			}
			if !ok {
				continue // still cut off: TCP's retransmissions are all there is
			}
			err := table.reset(c)
			switch {
			case errors.Is(err, syscall.ENOENT): // gone meanwhile
			case refused(err), errors.Is(err, syscall.EOPNOTSUPP):
				b.log.WithField("error", err).Warn("consul: cannot reset the agent's connection to a server that a network cut left stalled (it needs CAP_NET_ADMIN and a kernel with CONFIG_INET_DIAG_DESTROY): it is left to TCP and the agent")
				return
			case err != nil:
				b.log.WithFields(map[string]any{"server": c.Remote.String(), "error": err}).Debug("consul: resetting a stalled connection to a server failed")
			default:
				b.log.WithFields(map[string]any{"server": c.Remote.String(), "local": c.Local.String(), "unanswered": c.Backoff}).Info("consul: reset the agent's connection to a server: TCP still waited to send again after a network cut while the server answers")
			}
		}
	}
}

// reachable tells whether a connection to addr opens within unstallDial.
// The connection is closed at once: a Consul server reads its first byte,
// sees the end and drops it without a word.
func reachable(ctx context.Context, addr netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(ctx, unstallDial)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
