package bed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/registrator/registrator/internal/testproc"
)

// Node is one simulated machine without an engine (a Host has one): a
// network namespace the bed made, on the LAN when there is one, and the
// processes a test started in it under the node's host name.
type Node struct {
	Name string
	Addr string // its address on the LAN; "" when on none
	ns   string

	mu     sync.Mutex
	procs  []*testproc.Process
	closed bool
}

// Node makes a machine called name on the LAN.
func (l *LAN) Node(name string) (*Node, error) {
	n, err := newNode(name, l)
	if err == nil {
		l.nodes = append(l.nodes, n)
	}
	return n, err
}

func newNode(name string, lan *LAN) (*Node, error) {
	n := &Node{Name: name, ns: prefix + name}
	acquire()
	_ = ip([]string{"netns", "del", n.ns}) // left by a run of this process that did not close it
	if err := ip([]string{"netns", "add", n.ns}, []string{"-n", n.ns, "link", "set", "lo", "up"}); err != nil {
		n.Close()
		return nil, err
	}
	if err := tuneTCP(n.ns); err != nil {
		n.Close()
		return nil, err
	}
	if lan != nil {
		a, err := lan.attach(n.ns, name)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.Addr = a
	}
	return n, nil
}

// Process returns bin with args as a process that runs in the node's
// network namespace under its host name; Close stops it if the test has
// not. Start it with its Start.
func (n *Node) Process(bin string, args ...string) *testproc.Process {
	p := &testproc.Process{Bin: "nsenter", Args: append(n.prefixArgs(bin), args...)}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p
}

// prefixArgs enter the namespace, mark the environment and set the host
// name, then exec bin; every step execs the next, so the process is bin
// itself.
func (n *Node) prefixArgs(bin string) []string {
	return []string{"--net=" + nsPath(n.ns), "env", mark(n.ns), "unshare", "--uts", "sh", "-c",
		fmt.Sprintf(`hostname %s && exec "$0" "$@"`, n.Name), bin}
}

// WrapInside writes, in dir, a program that runs bin with its arguments in
// the node's network namespace under its host name, and returns its path.
func (n *Node) WrapInside(dir, bin string) (string, error) {
	path := filepath.Join(dir, "in-"+n.Name)
	words := []string{"exec", "nsenter"}
	for _, a := range n.prefixArgs(bin) {
		words = append(words, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	script := "#!/bin/sh\n" + strings.Join(words, " ") + ` "$@"` + "\n"
	return path, os.WriteFile(path, []byte(script), 0o755)
}

// Close stops the node's processes and removes its namespace (and so its
// link to the LAN). It is safe to call twice.
func (n *Node) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	procs := n.procs
	n.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	_ = ip([]string{"netns", "del", n.ns})
	release()
}
