package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// stalled at stallBackoff picks the connections to reset; at 1, those that
// set unstall's pace to every second (every five seconds otherwise).
func TestStalledPicksConnectionsWaitingOnAServer(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.2:8300")
	other := netip.MustParseAddrPort("10.0.0.2:8301")
	local := netip.MustParseAddrPort("10.0.0.9:40000")
	for _, c := range []struct {
		name        string
		conn        tcpConn
		reset, pace bool
	}{
		{"to a server, three timeouts unanswered", tcpConn{local, server, 3, 1}, true, true},
		{"to a server, seven timeouts unanswered", tcpConn{local, server, 7, 12}, true, true},
		{"two timeouts: TCP may yet get through", tcpConn{local, server, 2, 1}, false, true},
		{"one timeout unanswered", tcpConn{local, server, 1, 1}, false, true},
		{"data in flight, no timeout yet", tcpConn{local, server, 0, 4}, false, false},
		{"nothing unacknowledged", tcpConn{local, server, 5, 0}, false, false},
		{"nothing unacknowledged, no timeout", tcpConn{local, server, 0, 0}, false, false},
		{"not a server's RPC port", tcpConn{local, other, 5, 1}, false, false},
		{"another host", tcpConn{local, netip.MustParseAddrPort("10.0.0.3:8300"), 5, 1}, false, false},
	} {
		servers := map[netip.AddrPort]bool{server: true}
		if got := len(stalled([]tcpConn{c.conn}, servers, stallBackoff)) == 1; got != c.reset {
			t.Errorf("%s: to reset %v, want %v", c.name, got, c.reset)
		}
		if got := len(stalled([]tcpConn{c.conn}, servers, 1)) == 1; got != c.pace {
			t.Errorf("%s: sets the pace %v, want %v", c.name, got, c.pace)
		}
	}
}

// fakeConns is a connection table: reset takes a connection out of it.
type fakeConns struct {
	mu     sync.Mutex
	conns  []tcpConn
	resets []tcpConn
	lists  int
	err    error // what reset answers
}

func (f *fakeConns) established() ([]tcpConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	return slices.Clone(f.conns), nil
}

func (f *fakeConns) reset(c tcpConn) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.resets = append(f.resets, c)
	f.conns = slices.DeleteFunc(f.conns, func(x tcpConn) bool { return x == c })
	return nil
}

// runUnstall runs unstall on table against servers, one look every 10 ms,
// until the test ends.
func runUnstall(t *testing.T, table connTable, servers ...netip.AddrPort) *logtest.Hook {
	t.Helper()
	every, idle := unstallEvery, unstallIdle
	unstallEvery, unstallIdle = 10*time.Millisecond, 10*time.Millisecond
	logger, hook := logtest.NewNullLogger()
	b := &Backend{log: logrus.NewEntry(logger)}
	srv := map[netip.AddrPort]bool{}
	for _, s := range servers {
		srv[s] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.unstall(ctx, func() map[netip.AddrPort]bool { return srv }, table)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		unstallEvery, unstallIdle = every, idle
	})
	return hook
}

// waitLists waits until table has been listed n more times than now.
func (f *fakeConns) waitLists(t *testing.T, n int) {
	t.Helper()
	f.mu.Lock()
	want := f.lists + n
	f.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		got := f.lists
		f.mu.Unlock()
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the table was listed %d times, want %d", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listener is a server's RPC port on loopback: it answers connections.
func listener(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// closedPort is a loopback address where nothing listens: a server still
// cut off, as a dial sees it.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().(*net.TCPAddr).AddrPort()
	_ = l.Close()
	return a
}

// A stalled connection to a server that answers is reset; one to a server
// that does not answer, one not stalled, and one to another address are
// left alone, however many looks follow.
func TestUnstallResetsWhereTheServerAnswers(t *testing.T) {
	up, down := listener(t), closedPort(t)
	local := netip.MustParseAddrPort("127.0.0.1:40000")
	stuck := tcpConn{local, up, 6, 3}
	table := &fakeConns{conns: []tcpConn{
		stuck,
		{netip.MustParseAddrPort("127.0.0.1:40001"), down, 6, 3},
		{netip.MustParseAddrPort("127.0.0.1:40002"), up, 1, 3},
		{netip.MustParseAddrPort("127.0.0.1:40003"), netip.MustParseAddrPort("127.0.0.1:1"), 6, 3},
	}}
	hook := runUnstall(t, table, up, down)
	table.waitLists(t, 5)
	table.mu.Lock()
	defer table.mu.Unlock()
	if !slices.Equal(table.resets, []tcpConn{stuck}) {
		t.Errorf("reset %v, want only %v", table.resets, stuck)
	}
	if !slices.ContainsFunc(hook.AllEntries(), func(e *logrus.Entry) bool {
		return e.Level == logrus.InfoLevel && strings.Contains(e.Message, "reset the agent's connection") && e.Data["server"] == up.String()
	}) {
		t.Errorf("no info line names the reset; log: %v", hook.AllEntries())
	}
}

// A system that refuses the reset (no CAP_NET_ADMIN) gets one warning, and
// unstall stops looking.
func TestUnstallStopsWhenTheResetIsRefused(t *testing.T) {
	up := listener(t)
	table := &fakeConns{err: syscall.EPERM, conns: []tcpConn{{netip.MustParseAddrPort("127.0.0.1:40000"), up, 6, 3}}}
	hook := runUnstall(t, table, up)
	deadline := time.Now().Add(10 * time.Second)
	for len(hook.AllEntries()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no warning")
		}
		time.Sleep(5 * time.Millisecond)
	}
	table.mu.Lock()
	lists := table.lists
	table.mu.Unlock()
	time.Sleep(100 * time.Millisecond) // ten looks, had it gone on
	table.mu.Lock()
	defer table.mu.Unlock()
	if table.lists != lists {
		t.Errorf("listed %d more times after the refusal, want none", table.lists-lists)
	}
	if e := hook.AllEntries(); len(e) != 1 || e[0].Level != logrus.WarnLevel || !strings.Contains(e[0].Message, "CAP_NET_ADMIN") {
		t.Errorf("log %v, want one warning naming CAP_NET_ADMIN", e)
	}
}

// The host's own table, through the kernel: it lists a loopback
// connection, and its reset ends the connection for the process that holds
// it, as the agent would see it.
func TestHostConnsListsAndResetsAConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sock_diag is Linux's")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("resetting a connection needs CAP_NET_ADMIN: CI runs as root")
		}
		t.Skip("resetting a connection needs CAP_NET_ADMIN: run as root")
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	defer peer.Close()
	local, remote := c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()

	conns, err := hostConns{}.established()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(conns, func(x tcpConn) bool { return x.Local == local && x.Remote == remote })
	if i < 0 {
		t.Fatalf("%v -> %v not among the %d connections listed", local, remote, len(conns))
	}
	if conns[i].Backoff != 0 || conns[i].Unacked != 0 {
		t.Errorf("an idle loopback connection listed with backoff %d, unacked %d, want 0, 0", conns[i].Backoff, conns[i].Unacked)
	}
	if err := (hostConns{}).reset(conns[i]); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || err == io.EOF || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a read on the reset connection answered %v, want the connection aborted", err)
	}
}

// What one look of unstall costs the daemon: listing the namespace's TCP
// connections, with n loopback connections open (2n sockets and a
// listener) besides whatever the machine has.
func BenchmarkHostConnsEstablished(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("sock_diag is Linux's")
	}
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("%d connections", n), func(b *testing.B) {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			accepted := make(chan []net.Conn)
			go func() {
				var held []net.Conn
				for {
					c, err := l.Accept()
					if err != nil {
						accepted <- held
						return
					}
					held = append(held, c)
				}
			}()
			defer func() {
				_ = l.Close()
				for _, c := range <-accepted {
					_ = c.Close()
				}
			}()
			var mine []net.Conn
			for range n {
				c, err := net.Dial("tcp4", l.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				mine = append(mine, c)
			}
			defer func() {
				for _, c := range mine {
					_ = c.Close()
				}
			}()
			b.ResetTimer()
			for b.Loop() {
				conns, err := hostConns{}.established()
				if err != nil || len(conns) < 2*n {
					b.Fatalf("%d connections listed (%v), want at least %d", len(conns), err, 2*n)
				}
			}
		})
	}
}
