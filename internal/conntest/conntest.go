// Package conntest is an HTTP server for tests of how many connections a
// client opens: it counts them, and it can hold requests until several are
// in flight together, so that a client's parallel calls surely hold that
// many connections at the same moment.
package conntest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server counts the connections opened to it.
type Server struct {
	*httptest.Server
	opened atomic.Int64

	mu      sync.Mutex
	waiting int
	all     chan struct{} // closed when together requests are in flight
}

// Together is how long a held request waits for the others of its group
// at most: a client that never sends them all at once is then answered
// anyway, and shows as many connections as it opened.
const Together = 5 * time.Second

// Start serves h on a unix socket in a temporary directory when unix is
// true, else on loopback TCP. Requests for which hold says yes are answered
// only once n of them are in flight (or after Together).
func Start(t *testing.T, unix bool, n int, hold func(*http.Request) bool, h http.Handler) *Server {
	t.Helper()
	s := &Server{all: make(chan struct{})}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold(r) {
			s.wait(n)
		}
		h.ServeHTTP(w, r)
	}))
	if unix {
		l, err := net.Listen("unix", t.TempDir()+"/conntest.sock")
		if err != nil {
			t.Fatal(err)
		}
		s.Listener.Close()
		s.Listener = l
	}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.opened.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// wait returns once n requests (this one among them) are waiting.
func (s *Server) wait(n int) {
	s.mu.Lock()
	s.waiting++
	all := s.all
	if s.waiting == n {
		close(s.all)
		s.waiting, s.all = 0, make(chan struct{})
	}
	s.mu.Unlock()
	select {
	case <-all:
	case <-time.After(Together):
	}
}

// Opened is how many connections clients have opened so far.
func (s *Server) Opened() int { return int(s.opened.Load()) }

// Path is the socket's path (unix) or the host:port (TCP).
func (s *Server) Path() string { return s.Listener.Addr().String() }
