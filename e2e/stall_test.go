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

	"golang.org/x/sys/unix"

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
	rto  time.Duration // TCP's retransmission timeout, after the first ping
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
	info, err := p.tcpInfo()
	if err != nil || info.Rto == 0 {
		t.Fatalf("%s's connection to %s: TCP_INFO %+v (%v)", n.Name, addr, info, err)
	}
	p.rto = time.Duration(info.Rto) * time.Microsecond
	return p
}

// tcpInfo is the kernel's state of the probe's connection.
func (p *rpcProbe) tcpInfo() (*unix.TCPInfo, error) {
	raw, err := p.conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, ierr
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

// lead is how long before a cut ends the probe sends the ping the cut
// leaves unanswered. TCP sends it again after rto, then after twice as
// long each time: the k-th time 2^k-1 rto after the ping, the sixth at
// 63 rto, the seventh at 127. The link comes back at 95 rto, halfway
// between the two (6.5 s from each at the 204 ms a LAN gives), whatever
// the RTT the first ping measured (a loaded server's slower answer
// lengthens rto). Not nearer the sixth: a packet sent while its next hop
// does not answer ARP waits up to 3 s for it, and one sent just before
// the link's return gets through at once (an earlier version's ping,
// sent 3.2 s after the sixth attempt, was once answered 0.3 s after the
// reconnection that way).
func (p *rpcProbe) lead() time.Duration { return 95 * p.rto }

// stallBound is how soon after a reconnection a daemon resets its host's
// stalled connection to a server: the daemon looks every second while a
// connection waits on TCP's retransmissions, and a look whose dial to the
// server began before the reconnection waits that dial's 0.5 s out.
const stallBound = 3 * time.Second

// stallProbe is a probe on a host, beside its daemon, whose ping a cut of
// the host leaves waiting on TCP.
type stallProbe struct {
	*rpcProbe
	server string
	due    time.Time // TCP's next attempt, as the kernel had it before the reconnection
	info   *unix.TCPInfo
}

// newStallProbe opens the probe to srv's RPC port, or returns nil when
// the bed caps TCP's retransmission timeout (bed.RTOMaxEnv): the cap
// leaves no connection waiting past a second, so there is nothing to see.
func newStallProbe(t *testing.T, h *bed.Host, srv *bed.Server) *stallProbe {
	t.Helper()
	if ms, _ := bed.RTOMax(); ms > 0 {
		t.Logf("no stall probe: %s caps TCP's retransmission timeout at %d ms", bed.RTOMaxEnv, ms)
		return nil
	}
	server := net.JoinHostPort(srv.Addr, "8300")
	return &stallProbe{rpcProbe: openProbe(t, h.Node, server), server: server}
}

// stall sends the ping its lead before end, while the cut is on: it waits
// on TCP until the link is back. It fails the test if the lead does not
// fit in the cut (TCP's timeout over 0.3 s).
func (s *stallProbe) stall(t *testing.T, cut, end time.Time) (stop func()) {
	t.Helper()
	if s == nil {
		return func() {}
	}
	at := end.Add(-s.lead())
	if at.Before(cut.Add(time.Second)) {
		t.Fatalf("%s's connection to %s: TCP's retransmission timeout is %s, and its ping would have to go %s before the cut ends, before the cut began", s.name, s.server, s.rto, s.lead())
	}
	tm := time.AfterFunc(time.Until(at), func() {
		if err := s.ping(); err != nil {
			t.Error(err)
		}
	})
	return func() { tm.Stop() }
}

// mending notes, just before the link comes back, when TCP would send the
// ping again: what the connection would wait without the daemon's reset.
func (s *stallProbe) mending(t *testing.T) {
	t.Helper()
	if s == nil {
		return
	}
	info, err := s.tcpInfo()
	if err != nil {
		t.Fatalf("%s's connection to %s: %v", s.name, s.server, err)
	}
	// Rto is the timeout now, backed off; the timer runs from the last send.
	s.info = info
	s.due = time.Now().Add(time.Duration(info.Rto)*time.Microsecond - time.Duration(info.Last_data_sent)*time.Millisecond)
}

// check returns the local address of the probe ("" for none) and fails
// the test unless the cut had left the probe's ping waiting on TCP past
// stallBound from the reconnection at mended, and the host's daemon reset
// the connection within stallBound of it, before any answer.
func (s *stallProbe) check(t *testing.T, h *fleetHost, mended time.Time) string {
	t.Helper()
	if s == nil {
		return ""
	}
	local := s.conn.LocalAddr().String()
	due := s.due.Sub(mended).Round(time.Millisecond)
	if s.info.Unacked == 0 || s.info.Backoff < 3 || due <= stallBound {
		t.Errorf("%s's connection to %s before the reconnection: %d segments unacknowledged, %d timeouts in a row, TCP's next attempt %s after the reconnection: the cut left nothing waiting past %s, and the reset shows nothing",
			h.Name, s.server, s.info.Unacked, s.info.Backoff, due, stallBound)
	}
	end := s.await(time.Minute)
	took := end.at.Sub(mended).Round(time.Millisecond)
	switch {
	case end.err == nil:
		t.Errorf("%s's stalled connection to %s was answered %s after the reconnection: its daemon did not reset it first", h.Name, s.server, took)
	case errors.Is(end.err, io.EOF) || errors.Is(end.err, os.ErrDeadlineExceeded) || took < 0:
		t.Errorf("%s's stalled connection to %s ended %s after the reconnection with %v, want a reset by its daemon after it", h.Name, s.server, took, end.err)
	case took > stallBound:
		t.Errorf("%s's daemon reset its stalled connection to %s %s after the reconnection, want within %s", h.Name, s.server, took, stallBound)
	}
	// The daemon logs the reset once it is done, just after the probe
	// sees it.
	logged := func() int { return h.d.lines(unstalled, `server="`+s.server+`"`, `local="`+local+`"`) }
	for deadline := time.Now().Add(5 * time.Second); logged() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := logged(); n != 1 {
		t.Errorf("%s's daemon logged %d resets of the connection %s -> %s, want 1", h.Name, n, local, s.server)
	}
	// In the form scripts/fleet-summary.sh reads.
	t.Logf("%s's connection stalled by the cut, left to TCP: due %s after the reconnection (its ping went %s before, TCP's timeout %s, %d timeouts in a row)", h.Name, due, s.lead(), s.rto, s.info.Backoff)
	if end.err != nil {
		t.Logf("%s's connection stalled by the cut: ended %s after the reconnection (%v)", h.Name, took, end.err)
	}
	return local
}
