// Package e2e drives the built registrator binary against the real Docker
// engine, a real Consul agent, a real etcd server and a real ZooKeeper, all
// on this machine. Test images are built
// FROM scratch from e2e/testsvc. Containers publish ports on 127.0.0.1 only.
//
// The suite needs a running engine (`make setup`), a Consul binary
// (CONSUL_BIN, which `make test` sets), an etcd binary (ETCD_BIN or PATH),
// CoreDNS (COREDNS_BIN) and ZooKeeper (Debian's package); without them it
// fails, it never skips.
// Tests share the engine and the agent, so they run one at a time.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"testing"

	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/etcdtest"
	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/zktest"
)

// label marks every container the suite starts, so that leftovers of an
// interrupted run can be removed.
const label = "registrator-e2e"

// Images, all the same program under names that exercise the naming rules.
const (
	imgRedis = "e2e.local/progrium/redis:latest" // default name "redis"
	imgNginx = "e2e.local/progrium/nginx:latest" // "nginx"
	imgApp   = "reg.e2e.local:5000/team/app:1.2" // "app"
	imgSvc   = "e2e.local/svc:latest"            // "svc"
	// imgHealth has a HEALTHCHECK (testsvc -probe, every second); the
	// state starts "starting" and follows `docker exec <c> /testsvc -set`.
	imgHealth = "e2e.local/health:latest" // "health"
	// imgQuiet is imgHealth with a probe that prints nothing (testsvc
	// -probe-quiet), as most probes do.
	imgQuiet = "e2e.local/quiet:latest" // "quiet"
	// imgExposed EXPOSEs 80, as most images do: a Swarm task's container
	// shows no other port.
	imgExposed = "e2e.local/exposed:latest" // "exposed"
)

var (
	agent     *consultest.Agent
	etcdSrv   *etcdtest.Server
	zkSrv     *zktest.Server
	daemonBin string
	host      string // this machine's host name: the first part of service IDs
)

func TestMain(m *testing.M) {
	if os.Getenv(leaveBedEnv) != "" {
		err := leaveBed() // returns only on failure
		fmt.Fprintln(os.Stderr, "e2e: leave a bed:", err)
		os.Exit(1)
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("no Docker engine (run `make setup`): %v: %s", err, out)
	}
	var err error
	if host, err = os.Hostname(); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "registrator-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)

	// The daemon runs with the race detector: a race it hits ends it with
	// status 66, which fails the test that stops it. It is the pair the
	// image ships: the lean build, which hands etcd and skydns2 URIs to the
	// full build beside it.
	daemonBin = filepath.Join(dir, "registrator")
	if err := testkit.BuildPair(daemonBin, nil, "-race"); err != nil {
		return 0, err
	}
	ctxDir := filepath.Join(dir, "image")
	if err := os.Mkdir(ctxDir, 0o755); err != nil {
		return 0, err
	}
	if err := testkit.BuildImages(ctxDir,
		testkit.Image{Tags: []string{imgRedis, imgNginx, imgApp, imgSvc}},
		testkit.Image{Tags: []string{imgHealth}, Extra: "HEALTHCHECK --interval=1s --timeout=2s --start-period=120s --retries=1 CMD [\"/testsvc\", \"-probe\"]\n"},
		testkit.Image{Tags: []string{imgExposed}, Extra: "EXPOSE 80\n"},
		testkit.Image{Tags: []string{imgQuiet}, Extra: "HEALTHCHECK --interval=1s --timeout=2s --start-period=120s --retries=1 CMD [\"/testsvc\", \"-probe-quiet\"]\n"},
	); err != nil {
		return 0, err
	}

	removeContainers()
	if agent, err = consultest.Start(); err != nil {
		return 0, err
	}
	defer agent.Stop()
	if etcdSrv, err = etcdtest.Start(); err != nil {
		return 0, err
	}
	defer etcdSrv.Close()
	if zkSrv, err = zktest.Start(); err != nil {
		return 0, err
	}
	defer zkSrv.Close()

	code := m.Run()
	removeContainers()
	return code, nil
}

// repoRoot is the repository's top directory.
func repoRoot() string { return testkit.RepoRoot() }

func command(dir string, env []string, name string, args ...string) ([]byte, error) {
	return testkit.Command(dir, env, name, args...)
}

// removeContainers removes every container the suite ever started.
func removeContainers() { testkit.RemoveContainers(label) }
