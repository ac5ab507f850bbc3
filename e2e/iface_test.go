package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/registrator/registrator/internal/consultest"
)

// -ip eth0 registers that interface's IPv4 address and follows it: after
// the address changes (a DHCP renewal), the next full pass registers the
// new one. The daemon runs in a network namespace the test makes, with an
// interface of its own; it reaches the engine and its own Consul agent through
// Unix sockets. The addresses (TEST-NET-2) are only registered, never
// sent to.
func TestIPFollowsAnInterface(t *testing.T) {
	clean(t)
	ns := "reg-e2e-ip"
	ipcmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run()
	ipcmd("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	// A veth pair inside the namespace: this kernel has no dummy interfaces.
	ipcmd("-n", ns, "link", "add", "reg0", "type", "veth", "peer", "name", "reg1")
	ipcmd("-n", ns, "link", "set", "reg0", "up")
	ipcmd("-n", ns, "addr", "add", "198.51.100.7/32", "dev", "reg0")

	dir := t.TempDir()
	sock := filepath.Join(dir, "consul.sock")
	own, err := consultest.Start(fmt.Sprintf(`addresses { http = "127.0.0.1 unix://%s" }`, sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Stop)
	wrapper := filepath.Join(dir, "in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec nsenter --net=/var/run/netns/%s %s \"$@\"\n", ns, daemonBin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := launchBin(t, wrapper, nil, []string{"consul-unix://" + sock}, "-ip", "reg0", "-resync", "1")
	d.waitFor(t, "registrator started")

	run(t, "--name", "on-iface", "-p", "127.0.0.1::80", imgSvc, "80")
	sid := id("on-iface", "80")
	address := func(want string) {
		t.Helper()
		eventually(t, settle, func() error {
			s, _, err := own.Client().Agent().Service(sid, nil)
			if err != nil {
				return err
			}
			if s.Address != want {
				return fmt.Errorf("%s at %s, want %s", sid, s.Address, want)
			}
			return nil
		})
	}
	address("198.51.100.7")

	ipcmd("-n", ns, "addr", "del", "198.51.100.7/32", "dev", "reg0")
	ipcmd("-n", ns, "addr", "add", "198.51.100.8/32", "dev", "reg0")
	changed := time.Now()
	address("198.51.100.8")
	t.Logf("new address registered %s after the change (-resync 1)", time.Since(changed).Round(time.Millisecond))
	d.waitFor(t, "the interface's address changed")
}
