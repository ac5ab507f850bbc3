package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// engine is a container engine the suite runs its engine-facing tests
// against: Docker, and Podman through its Docker-compatible API. Where
// Podman behaves differently, the test says so next to Docker's
// expectation.
type engine struct {
	name   string
	cli    string   // its command line tool
	env    []string // what the daemon needs to reach it
	podman bool
}

var (
	dockerEngine = engine{name: "Docker", cli: "docker"}
	podmanEngine = engine{name: "Podman", cli: "podman", env: []string{"DOCKER_HOST=unix://" + podmanSocket}, podman: true}
)

// eachEngine runs f as a subtest against Docker and against Podman.
func eachEngine(t *testing.T, f func(t *testing.T, e engine)) {
	for _, e := range []engine{dockerEngine, podmanEngine} {
		t.Run(e.name, func(t *testing.T) {
			clean(t)
			if e.podman {
				podmanReady(t)
			}
			f(t, e)
		})
	}
}

// cmd runs the engine's CLI and returns its trimmed output.
func (e engine) cmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(e.cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", e.cli, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// run starts a container (run -d) and returns its ID; it is removed when
// the test ends.
func (e engine) run(t *testing.T, args ...string) string {
	t.Helper()
	id := e.cmd(t, append([]string{"run", "-d", "--label", label + "=1"}, args...)...)
	t.Cleanup(func() { _ = exec.Command(e.cli, "rm", "-f", id).Run() })
	return id
}

// port is where the engine published a container's port: host:port.
func (e engine) port(t *testing.T, name, port string) string {
	t.Helper()
	return strings.Fields(e.cmd(t, "port", name, port))[0]
}

// daemon runs registrator against the engine and waits until it started.
func (e engine) daemon(t *testing.T, uris []string, args ...string) *daemon {
	t.Helper()
	d := launchEnv(t, e.env, uris, args...)
	d.waitFor(t, "registrator started")
	return d
}

// probe has the engine run a container's health probe now. Docker runs
// the test image's probe every second by itself. Podman runs probes from
// systemd timers, and this machine has no systemd: the test runs the
// probe as the timer would (its exit status says the probe's verdict).
func (e engine) probe(t *testing.T, name string) {
	t.Helper()
	if e.podman {
		_ = exec.Command("podman", "healthcheck", "run", name).Run()
	}
}
