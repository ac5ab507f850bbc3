package bed

import (
	"fmt"
	"os/exec"
	"strings"
)

// Subnet is the LAN's: addresses that exist only inside the namespaces a
// bed makes (and on the one link that joins this machine to it).
const Subnet = "10.77.0.0/24"

// lanNS is the namespace that holds the LAN's bridge.
const lanNS = prefix + "lan"

// LAN is a network that joins a bed's hosts and servers, as a data
// centre's network joins machines: a bridge in a namespace of its own,
// one veth from each member's namespace into it. This machine is on it
// too, at .1, so that a test reaches every member's address; members get
// .10 and up in the order they join.
type LAN struct {
	next   int
	closed bool
	hosts  []*Host
	nodes  []*Node // the hosts' too
}

// NewLAN makes the network, after removing what an interrupted run left.
func NewLAN() (*LAN, error) {
	acquire()
	removeLAN()
	steps := [][]string{
		{"netns", "add", lanNS},
		{"-n", lanNS, "link", "set", "lo", "up"},
		{"-n", lanNS, "link", "add", "br0", "type", "bridge"},
		{"-n", lanNS, "link", "set", "br0", "up"},
		// This machine's end: deleting the namespace deletes the pair.
		{"-n", lanNS, "link", "add", "v-self", "type", "veth", "peer", "name", "regbed0", "netns", "1"},
		{"-n", lanNS, "link", "set", "v-self", "master", "br0", "up"},
		{"addr", "add", addr(1) + "/24", "dev", "regbed0"},
		{"link", "set", "regbed0", "up"},
	}
	if err := ip(steps...); err != nil {
		removeLAN()
		release()
		return nil, err
	}
	return &LAN{next: 10}, nil
}

func addr(n int) string { return fmt.Sprintf("10.77.0.%d", n) }

// Close removes every member the LAN made and then the LAN itself. It is
// safe to call twice.
func (l *LAN) Close() {
	if l.closed {
		return
	}
	l.closed = true
	for _, h := range l.hosts {
		h.Close()
	}
	for _, n := range l.nodes {
		n.Close()
	}
	removeLAN()
	release()
}

func removeLAN() {
	_ = exec.Command("ip", "netns", "del", lanNS).Run()
	// The namespace goes, and its links with it, only once nothing
	// refers to it; this machine's end may outlive the delete a while.
	_ = exec.Command("ip", "link", "del", "regbed0").Run()
}

// attach joins namespace ns to the LAN and returns its address.
func (l *LAN) attach(ns, name string) (string, error) {
	if l.next > 250 {
		return "", fmt.Errorf("bed: the LAN is full")
	}
	a := addr(l.next)
	l.next++
	port := vethName(name)
	err := ip(
		[]string{"-n", lanNS, "link", "add", port, "type", "veth", "peer", "name", "lan0", "netns", ns},
		[]string{"-n", lanNS, "link", "set", port, "master", "br0", "up"},
		[]string{"-n", ns, "addr", "add", a + "/24", "dev", "lan0"},
		[]string{"-n", ns, "link", "set", "lan0", "up"},
	)
	return a, err
}

// vethName is the bridge side of a member's link (15 bytes at most).
func vethName(name string) string {
	v := "v-" + name
	if len(v) > 15 {
		v = v[:15]
	}
	return v
}

// Cut takes a member off the LAN: its link stays up but leads nowhere, as
// behind a failed switch port; packets sent either way are lost.
func (l *LAN) Cut(name string) error {
	return ip([]string{"-n", lanNS, "link", "set", vethName(name), "nomaster"})
}

// Mend puts a member that was Cut back on the LAN.
func (l *LAN) Mend(name string) error {
	return ip([]string{"-n", lanNS, "link", "set", vethName(name), "master", "br0"})
}

func ip(steps ...[]string) error {
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("bed: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
