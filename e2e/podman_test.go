package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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

// podmanReady checks the service and moves the test images into Podman's
// store (docker save | podman load), once.
func podmanReady(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("curl", "-sf", "--unix-socket", podmanSocket, "http://podman/_ping").CombinedOutput(); err != nil {
		t.Fatalf("no Podman service on %s (run `make setup`): %v %s", podmanSocket, err, out)
	}
	podmanImages.Do(func() {
		dockerSaveInto(t, exec.Command("podman", "load", "-q"), imgSvc, imgHealth, imgExposed)
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

// A Podman pod: its infra container holds the ports the pod publishes,
// and every member shows all of them as its own. The infra container
// registers nothing; each member registers the pod's ports it claims (its
// image exposes them, or its SERVICE_<port>_* keys name them), named by
// its own metadata; a member that claims none registers none. A container
// on the host's network registers what its image exposes.
func TestPodmanPod(t *testing.T) {
	clean(t)
	podmanReady(t)
	removePod := func() { _ = exec.Command("podman", "pod", "rm", "-f", "e2e-pod").Run() }
	removePod()
	t.Cleanup(removePod)
	d := launchEnv(t, []string{"DOCKER_HOST=unix://" + podmanSocket}, []string{"consul://" + agent.Addr}, "-ip", "127.0.0.1", "-resync", "2")
	d.waitFor(t, "registrator started")

	web, api := freePort(t), freePort(t)
	podman(t, "pod", "create", "--name", "e2e-pod", "-p", pub(web, "80"), "-p", pub(api, "81"))
	podman(t, "run", "-d", "--pod", "e2e-pod", "--name", "e2e-pod-web", "--label", label+"=1", imgExposed, "80")
	podman(t, "run", "-d", "--pod", "e2e-pod", "--name", "e2e-pod-api", "--label", label+"=1", "-e", "SERVICE_81_NAME=api", imgSvc, "81")
	podman(t, "run", "-d", "--pod", "e2e-pod", "--name", "e2e-pod-side", "--label", label+"=1", imgSvc, "82")
	want := map[string]svc{
		id("e2e-pod-web", "80"): {Name: "exposed", Address: "127.0.0.1", Port: web},
		id("e2e-pod-api", "81"): {Name: "api", Address: "127.0.0.1", Port: api},
	}
	expect(t, want)
	d.waitPasses(t, 1)
	expect(t, want)

	podman(t, "pod", "rm", "-f", "e2e-pod")
	expect(t, map[string]svc{})

	// --network host: Podman shows no exposed port either; what the image
	// exposes is registered at the host's address, as under Docker.
	podman(t, "run", "-d", "--network", "host", "--name", "e2e-phost", "--label", label+"=1", imgExposed, strconv.Itoa(freePort(t)))
	expect(t, map[string]svc{id("e2e-phost", "80"): {Name: "exposed", Address: "127.0.0.1", Port: 80}})
}

// Podman runs health probes from systemd timers, and this machine has no
// systemd: a container's health check never runs, and its health stays
// starting. The daemon says so once, 10 s after the container started
// (its bound: the start period and three intervals, at least 10 s), and
// not again at later full passes.
func TestPodmanHealthCheckThatNothingRuns(t *testing.T) {
	clean(t)
	podmanReady(t)
	d := launchEnv(t, []string{"DOCKER_HOST=unix://" + podmanSocket}, []string{"consul://" + agent.Addr}, "-ip", "127.0.0.1", "-resync", "2")
	d.waitFor(t, "registrator started")
	podmanEngine.run(t, "--name", "e2e-unprobed", "-p", "127.0.0.1::80", "--health-cmd", `["/testsvc","-probe"]`,
		"--health-interval", "1s", "--health-start-period", "0s", imgHealth, "80")
	started := time.Now()
	expectIDs(t, id("e2e-unprobed", "80"))
	const said = "podman: container e2e-unprobed has a health check, but no probe ran in the 10s after it started"
	d.waitFor(t, said)
	t.Logf("said %s after the container started", time.Since(started).Round(time.Millisecond))
	if took := time.Since(started); took < 9*time.Second {
		t.Errorf("said after %s, before its 10 s bound", took)
	}
	d.waitPasses(t, 2)
	if n := strings.Count(d.out.String(), said); n != 1 {
		t.Errorf("said %d times, want once", n)
	}
}
