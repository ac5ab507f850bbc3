// Package zktest runs a real ZooKeeper server (Debian's zookeeper package)
// on loopback for tests.
//
// The classpath comes from ZK_CLASSPATH, else Debian's
// /usr/share/java/zookeeper.jar; java from JAVA, else PATH. A missing
// server is an error, never a skipped test.
package zktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/registrator/registrator/internal/testkit"

	"github.com/registrator/registrator/internal/testproc"
)

// DefaultClasspath is where Debian's zookeeper package puts the server.
const DefaultClasspath = "/usr/share/java/zookeeper.jar"

// Server is a standalone ZooKeeper with its data in a temporary directory.
// Its tick is 500 ms, so sessions may time out between 1 s and 10 s.
type Server struct {
	Addr string // host:port of the client port

	dir  string
	proc *testproc.Process
	conn *zk.Conn
}

// Start starts a server on a free loopback port and waits until it serves.
func Start() (*Server, error) {
	java, err := testproc.Find("JAVA", "java", "run `make setup` (installs Debian's zookeeper with a JRE)")
	if err != nil {
		return nil, fmt.Errorf("zktest: %w", err)
	}
	cp := os.Getenv("ZK_CLASSPATH")
	if cp == "" {
		cp = DefaultClasspath
	}
	if _, err := os.Stat(filepath.SplitList(cp)[0]); err != nil {
		return nil, fmt.Errorf("zktest: no ZooKeeper at %s (ZK_CLASSPATH): run `make setup`", cp)
	}
	dir, err := os.MkdirTemp("", "zktest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	// A fresh port per attempt: another test may take the one FreePorts
	// gave before the server binds it.
	err = testproc.Retry(func() error {
		ports, err := testproc.FreePorts(1)
		if err != nil {
			return err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		cfg := fmt.Sprintf("tickTime=500\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n", dir, ports[0])
		if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
			return err
		}
		s.proc = &testproc.Process{Bin: java, Args: []string{"-Xmx256m", "-Dzookeeper.admin.enableServer=false",
			"-cp", cp, "org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(dir, "zoo.cfg")}}
		return s.Start()
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.connect(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// connect opens the test's own client and waits for its session.
func (s *Server) connect() error {
	conn, _, err := zk.Connect([]string{s.Addr}, 10*time.Second, zk.WithLogger(quiet{}))
	if err != nil {
		return err
	}
	if err := testkit.Eventually(context.Background(), 30*time.Second, 20*time.Millisecond, func() error {
		if st := conn.State(); st != zk.StateHasSession {
			return fmt.Errorf("state %s", st)
		}
		return nil
	}); err != nil {
		conn.Close()
		return fmt.Errorf("zktest: the test client got no session: %v; server log:\n%s", err, s.proc.Log())
	}
	s.conn = conn
	return nil
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

const zkVersion = "Zookeeper version:"

// Start starts the server again after Stop, with the data it had.
func (s *Server) Start() error {
	err := s.proc.Start(func() error {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		// "srvr" answers once the server serves; it is in the default allow list.
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("srvr")); err != nil {
			return err
		}
		// Only a serving ZooKeeper answers with its version; anything else
		// is a server still starting or another program on the port.
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(c, buf, len(zkVersion))
		if !strings.HasPrefix(string(buf[:n]), zkVersion) {
			return fmt.Errorf("srvr answered %q", buf[:n])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("zktest: %w", err)
	}
	return nil
}

// Stop stops the server, keeping its data.
func (s *Server) Stop() { s.proc.Stop() }

// Wipe stops the server, deletes its data and starts it again empty: every
// session is gone. The test's client is replaced too: the server refuses a
// client that saw a newer transaction than it holds.
func (s *Server) Wipe() error {
	s.Stop()
	if err := os.RemoveAll(filepath.Join(s.dir, "data")); err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	s.conn.Close()
	return s.connect()
}

// Conn is a client of the server.
func (s *Server) Conn() *zk.Conn { return s.conn }

// Reset deletes every node below path.
func (s *Server) Reset(path string) error {
	children, _, err := s.conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		p := filepath.Join(path, c)
		if p == "/zookeeper" {
			continue
		}
		if err := s.Reset(p); err != nil {
			return err
		}
		if err := s.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return nil
}

// Log returns what the server printed since it last started.
func (s *Server) Log() string { return s.proc.Log() }

// Close stops the server and deletes its data.
func (s *Server) Close() {
	if s.conn != nil {
		s.conn.Close()
	}
	s.Stop()
	os.RemoveAll(s.dir)
}
