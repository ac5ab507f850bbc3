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
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"testing"

	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/etcdtest"
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
)

var (
	agent     *consultest.Agent
	etcdSrv   *etcdtest.Server
	zkSrv     *zktest.Server
	daemonBin string
	host      string // this machine's host name: the first part of service IDs
)

func TestMain(m *testing.M) {
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

	root := repoRoot()
	// The daemon runs with the race detector: a race it hits ends it with
	// status 66, which fails the test that stops it.
	daemonBin = filepath.Join(dir, "registrator")
	if out, err := command(root, nil, "go", "build", "-race", "-o", daemonBin, "./cmd/registrator"); err != nil {
		return 0, fmt.Errorf("build registrator: %v\n%s", err, out)
	}
	ctxDir := filepath.Join(dir, "image")
	if err := os.Mkdir(ctxDir, 0o755); err != nil {
		return 0, err
	}
	if out, err := command(root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(ctxDir, "testsvc"), "./e2e/testsvc"); err != nil {
		return 0, fmt.Errorf("build testsvc: %v\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY testsvc /testsvc\nENTRYPOINT [\"/testsvc\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return 0, err
	}
	args := []string{"build", "-q"}
	for _, img := range []string{imgRedis, imgNginx, imgApp, imgSvc} {
		args = append(args, "-t", img)
	}
	if out, err := command(ctxDir, []string{"DOCKER_BUILDKIT=0"}, "docker", append(args, ".")...); err != nil {
		return 0, fmt.Errorf("build test image: %v\n%s", err, out)
	}
	healthfile := dockerfile + "HEALTHCHECK --interval=1s --timeout=2s --start-period=120s --retries=1 CMD [\"/testsvc\", \"-probe\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile.health"), []byte(healthfile), 0o644); err != nil {
		return 0, err
	}
	if out, err := command(ctxDir, []string{"DOCKER_BUILDKIT=0"}, "docker", "build", "-q", "-f", "Dockerfile.health", "-t", imgHealth, "."); err != nil {
		return 0, fmt.Errorf("build health test image: %v\n%s", err, out)
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
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func command(dir string, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// removeContainers removes every container the suite ever started.
func removeContainers() {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}
