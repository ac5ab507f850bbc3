package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/registrator/registrator/internal/bed"
)

// rpcProbe is a connection to a Consul server's RPC port that speaks the
// server's plain RPC protocol (a first byte 0, then msgpack net/rpc) and
// asks Status.Ping on it, the way a client agent's connection carries its
// RPCs. A cut that catches a ping unanswered leaves the connection as it
// leaves the agent's: its data waiting on TCP's retransmissions.
type rpcProbe struct {
	name string
	conn net.Conn
	seq  byte
	end  chan probeEnd
}

// probeEnd is what became of a ping: answered (err nil) or the connection
// failed, and when.
type probeEnd struct {
	at  time.Time
	err error
}

// pingReply ends every answer to Status.Ping: the reply's header is a map
// whose last key is ServiceMethod, and its body the empty struct.
var pingReply = []byte("Status.Ping\x80")

// openProbe opens a probe from inside n's namespace to addr and has one
// ping answered.
func openProbe(t *testing.T, n *bed.Node, addr string) *rpcProbe {
	t.Helper()
	// No keepalive: nothing but the ping's own data on the connection.
	c, err := n.Dial(net.Dialer{KeepAlive: -1}, addr)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &rpcProbe{name: n.Name, conn: c, end: make(chan probeEnd, 1)}
	if _, err := c.Write([]byte{0}); err != nil { // the plain RPC protocol
		t.Fatal(err)
	}
	if err := p.ping(); err != nil {
		t.Fatal(err)
	}
	if end := p.await(10 * time.Second); end.err != nil {
		t.Fatalf("%s's ping to %s: %v", n.Name, addr, end.err)
	}
	return p
}

// ping sends Status.Ping and waits for its outcome in the background
// (await gives it).
func (p *rpcProbe) ping() error {
	p.seq++
	req := []byte{0x82} // {"ServiceMethod": "Status.Ping", "Seq": seq}, then {}
	for _, s := range []string{"ServiceMethod", "Status.Ping", "Seq"} {
		req = append(append(req, 0xa0|byte(len(s))), s...)
	}
	req = append(req, p.seq&0x7f, 0x80)
	if _, err := p.conn.Write(req); err != nil {
		return fmt.Errorf("%s's ping: %w", p.name, err)
	}
	go func() {
		var got []byte
		buf := make([]byte, 256)
		for !bytes.HasSuffix(got, pingReply) {
			n, err := p.conn.Read(buf)
			if err != nil {
				p.end <- probeEnd{time.Now(), err}
				return
			}
			got = append(got, buf[:n]...)
		}
		p.end <- probeEnd{time.Now(), nil}
	}()
	return nil
}

// await gives the outcome of the last ping, limit from now at most.
func (p *rpcProbe) await(limit time.Duration) probeEnd {
	select {
	case e := <-p.end:
		return e
	case <-time.After(limit):
		return probeEnd{time.Now(), fmt.Errorf("no answer and no error in %s", limit)}
	}
}

// probeLead is how long before a cut ends the probes send the ping the
// cut leaves unanswered. TCP sends it again 0.2, 0.6, 1.4, 3.0, 6.2, 12.6
// and 25.4 s after (its retransmission timeout, 200 ms on a LAN, doubles
// at each attempt): the link comes back 3.4 s after an attempt, 9.4 s
// before the next one.
const probeLead = 16 * time.Second

// stallBound is how soon after a reconnection a daemon resets its host's
// stalled connection to a server: the daemon looks every second while a
// connection waits on TCP's retransmissions, and a look whose dial to the
// server began before the reconnection waits that dial's 0.5 s out.
const stallBound = 3 * time.Second

// stallProbes is a probe on a host, beside its daemon, and one on a
// machine of the LAN where no daemon runs, both to the same server's RPC
// port and cut off together.
type stallProbes struct {
	host, bystander *rpcProbe
	server          string
	node            *bed.Node
}

// newStallProbes opens the two probes to srv's RPC port, or returns nil
// when the bed caps TCP's retransmission timeout (bed.RTOMaxEnv): the cap
// leaves no connection stalled past a second, so there is nothing to see.
func newStallProbes(t *testing.T, lan *bed.LAN, h *bed.Host, srv *bed.Server) *stallProbes {
	t.Helper()
	if ms, _ := bed.RTOMax(); ms > 0 {
		t.Logf("no stall probes: %s caps TCP's retransmission timeout at %d ms", bed.RTOMaxEnv, ms)
		return nil
	}
	n, err := lan.Node("bystander")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	s := &stallProbes{server: net.JoinHostPort(srv.Addr, "8300"), node: n}
	s.host = openProbe(t, h.Node, s.server)
	s.bystander = openProbe(t, n, s.server)
	return s
}

// cut cuts the bystander off (the host is cut by the test).
func (s *stallProbes) cut(t *testing.T, lan *bed.LAN) {
	if s == nil {
		return
	}
	if err := lan.Cut(s.node.Name); err != nil {
		t.Fatal(err)
	}
}

// mend puts the bystander back.
func (s *stallProbes) mend(t *testing.T, lan *bed.LAN) {
	if s == nil {
		return
	}
	if err := lan.Mend(s.node.Name); err != nil {
		t.Fatal(err)
	}
}

// stall sends both pings, at end minus probeLead: the cut is on, and the
// pings wait on TCP until the link is back.
func (s *stallProbes) stall(t *testing.T, end time.Time) *time.Timer {
	if s == nil {
		return nil
	}
	return time.AfterFunc(time.Until(end.Add(-probeLead)), func() {
		for _, p := range []*rpcProbe{s.host, s.bystander} {
			if err := p.ping(); err != nil {
				t.Error(err)
			}
		}
	})
}

// check returns the local address of the host's probe ("" for none) and
// fails the test unless the host's daemon reset the host's stalled
// connection within stallBound of the reconnection at mended, while the
// bystander's ping, on a connection no daemon watched, waited for TCP's
// next retransmission past stallBound (else the cut stalled nothing and
// the reset shows nothing).
func (s *stallProbes) check(t *testing.T, h *fleetHost, mended time.Time) string {
	t.Helper()
	if s == nil {
		return ""
	}
	local := s.host.conn.LocalAddr().String()
	host, by := s.host.await(time.Minute), s.bystander.await(time.Minute)
	took, byTook := host.at.Sub(mended).Round(time.Millisecond), by.at.Sub(mended).Round(time.Millisecond)
	switch {
	case host.err == nil:
		t.Errorf("%s's stalled connection to %s was answered %s after the reconnection, by TCP's retransmission: its daemon did not reset it", h.Name, s.server, took)
	case errors.Is(host.err, io.EOF) || errors.Is(host.err, os.ErrDeadlineExceeded) || took < 0:
		t.Errorf("%s's stalled connection to %s ended %s after the reconnection with %v, want a reset by its daemon after it", h.Name, s.server, took, host.err)
	case took > stallBound:
		t.Errorf("%s's daemon reset its stalled connection to %s %s after the reconnection, want within %s", h.Name, s.server, took, stallBound)
	}
	if n := h.d.lines(unstalled, `server="`+s.server+`"`, `local="`+local+`"`); n != 1 {
		t.Errorf("%s's daemon logged %d resets of the connection %s -> %s, want 1", h.Name, n, local, s.server)
	}
	switch {
	case by.err != nil:
		t.Errorf("the bystander's connection to %s failed %s after the reconnection (%v), want its ping answered", s.server, byTook, by.err)
	case byTook <= stallBound:
		t.Errorf("the bystander's ping to %s was answered %s after the reconnection: the cut stalled no connection past %s, and %s's reset shows nothing", s.server, byTook, stallBound, h.Name)
	}
	// In the form scripts/fleet-summary.sh reads.
	if host.err != nil {
		t.Logf("%s's connection stalled by the cut: ended %s after the reconnection (%v)", h.Name, took, host.err)
	}
	if by.err == nil {
		t.Logf("the bystander's connection stalled by the cut (no daemon): answered %s after the reconnection", byTook)
	}
	return local
}
