package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// podmanSocket is where `make setup` runs Podman's Docker-compatible
// service.
const podmanSocket = "/run/podman/podman.sock"

var podmanImages sync.Once

// podman runs the podman CLI and returns its trimmed output.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// podmanReady checks the service and moves the test image into Podman's
// store (docker save | podman load), once.
func podmanReady(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("curl", "-sf", "--unix-socket", podmanSocket, "http://podman/_ping").CombinedOutput(); err != nil {
		t.Fatalf("no Podman service on %s (run `make setup`): %v %s", podmanSocket, err, out)
	}
	podmanImages.Do(func() {
		if out, err := exec.Command("sh", "-c", "docker save "+imgSvc+" | podman load -q").CombinedOutput(); err != nil {
			t.Fatalf("docker save | podman load: %v\n%s", err, out)
		}
	})
	removePodmanContainers()
	t.Cleanup(removePodmanContainers)
}

func removePodmanContainers() {
	out, _ := exec.Command("podman", "ps", "-aq", "--filter", "label="+label).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("podman", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// The daemon against a real Podman (4.3, Debian's) through its
// Docker-compatible API: it says which engine it talks to; a container is
// registered on start (its port published with an empty HostIp), removed
// on stop, registered again on start; and, Podman's API answering a new
// random engine ID at every call, the identity is the host's: a daemon
// killed with -9 and started again removes the entry of a container
// removed meanwhile.
func TestPodmanLifecycleAndCrashRestart(t *testing.T) {
	clean(t)
	podmanReady(t)
	env := []string{"DOCKER_HOST=unix://" + podmanSocket}
	uris := []string{"consul://" + agent.Addr}
	d := launchEnv(t, env, uris, "-ip", "127.0.0.1")
	d.waitFor(t, "registrator started")
	d.waitFor(t, `engine="Podman Engine 4.`)

	podman(t, "run", "-d", "--name", "pm-web", "--label", label+"=1", "-p", "127.0.0.1::80", imgSvc, "80")
	_, port, _ := strings.Cut(podman(t, "port", "pm-web", "80/tcp"), ":")
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("podman port: %q", port)
	}
	sid := id("pm-web", "80")
	expect(t, map[string]svc{sid: {Name: "svc", Address: "127.0.0.1", Port: p}})
	all, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if owner := all[sid].Meta["registrator-owner"]; owner != "podman@"+host {
		t.Errorf("owner mark %q, want podman@%s", owner, host)
	}

	podman(t, "stop", "-t", "2", "pm-web")
	expectIDs(t)
	podman(t, "start", "pm-web")
	expectIDs(t, sid)

	d.kill9(t)
	podman(t, "rm", "-f", "pm-web")
	d2 := launchEnv(t, env, uris, "-ip", "127.0.0.1")
	d2.waitFor(t, "registrator started")
	expectIDs(t)
	if d2.gone() {
		t.Fatal(fmt.Sprint("the daemon exited:\n", d2.out))
	}
}
