package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// network creates a user network for the test and removes it after.
func network(t *testing.T, name string, args ...string) {
	t.Helper()
	_ = exec.Command("docker", "network", "rm", name).Run()
	docker(t, append(append([]string{"network", "create", "--label", label + "=1"}, args...), name)...)
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", name).Run() })
}

func ipOn(t *testing.T, container, net string) string {
	t.Helper()
	return docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+net+`").IPAddress}}`, container)
}

// A container on two user networks is registered with the address on the
// network -network (or SERVICE_NETWORK) names; when it leaves that
// network, the address follows the documented rule.
func TestNetworkChoiceFollowsConnectAndDisconnect(t *testing.T) {
	clean(t)
	network(t, "e2e-front")
	network(t, "e2e-back")
	startDaemon(t, "-internal", "-network", "e2e-back")
	c := run(t, "--name", "multi", "--net", "e2e-front", "--expose", "80", imgSvc, "80")
	other := run(t, "--name", "pinned", "--net", "e2e-front", "--expose", "80", "-e", "SERVICE_NETWORK=e2e-front", imgSvc, "80")
	docker(t, "network", "connect", "e2e-back", c)
	docker(t, "network", "connect", "e2e-back", other)
	want := map[string]svc{
		id("multi", "80"):  {Name: "svc", Address: ipOn(t, c, "e2e-back"), Port: 80},
		id("pinned", "80"): {Name: "svc", Address: ipOn(t, other, "e2e-front"), Port: 80},
	}
	expect(t, want)

	front := ipOn(t, c, "e2e-front")
	docker(t, "network", "disconnect", "e2e-back", c)
	want[id("multi", "80")] = svc{Name: "svc", Address: front, Port: 80}
	expect(t, want)
}

// IPv6 on a user network with an IPv6 subnet: -ip-family 6 registers the
// container's global IPv6 address.
func TestIPv6Address(t *testing.T) {
	clean(t)
	network(t, "e2e-v6", "--ipv6", "--subnet", "fd00:e2e::/64")
	startDaemon(t, "-internal", "-ip-family", "6")
	c := run(t, "--name", "six", "--net", "e2e-v6", "--expose", "80", imgSvc, "80")
	v6 := docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "e2e-v6").GlobalIPv6Address}}`, c)
	if !strings.HasPrefix(v6, "fd00:e2e::") {
		t.Fatalf("the container's IPv6 address is %q; the engine gave none on an IPv6 network", v6)
	}
	expect(t, map[string]svc{id("six", "80"): {Name: "svc", Address: v6, Port: 80}})
}

// registrator explain, run as users would against a real container.
func TestExplainCommand(t *testing.T) {
	clean(t)
	run(t, "--name", "explained", "-p", "127.0.0.1::80", "--expose", "9000", "-e", "SERVICE_80_CHECK_INTERVAL=banana",
		"-e", "SERVICE_CHECK_TCP=1", imgSvc, "80", "9000")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, daemonBin, "explain", "-ip", "127.0.0.1", "explained").CombinedOutput()
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	port := docker(t, "inspect", "-f", `{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}`, "explained")
	for _, want := range []string{
		fmt.Sprintf(`80/tcp: service "svc", ID %s, at 127.0.0.1:%s`, id("explained", "80"), port),
		"check: tcp 127.0.0.1:" + port,
		"9000/tcp: no service: exposed but not published",
		"warning: SERVICE_80_CHECK_INTERVAL (6 bytes): not a positive duration",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.CommandContext(ctx, daemonBin, "explain", "no-such-container").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No such container") {
		t.Errorf("explain of a missing container: %v\n%s", err, out)
	}
}
