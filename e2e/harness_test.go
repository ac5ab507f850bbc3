package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/testproc"
)

// settle is how long the registry may take to follow a change.
const settle = 20 * time.Second

// clean starts a test from an empty registry and no test containers.
func clean(t *testing.T) {
	t.Helper()
	removeContainers()
	if err := agent.Reset(context.Background()); err != nil {
		t.Fatalf("reset consul: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := etcdSrv.Reset(ctx); err != nil {
		t.Fatalf("reset etcd: %v", err)
	}
}

// daemon is one run of the registrator binary.
type daemon struct {
	cmd    *exec.Cmd
	out    *testproc.Buffer
	exited chan struct{}
	killed bool
}

// startDaemon runs registrator with args and the test agent's URI, and stops
// it when the test ends, failing the test unless it exits 0.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startDaemonURIs(t, []string{"consul://" + agent.Addr}, args...)
}

// startDaemonURIs runs registrator with args and the registry URIs and
// waits until it has started.
func startDaemonURIs(t *testing.T, uris []string, args ...string) *daemon {
	t.Helper()
	d := launch(t, uris, args...)
	d.waitFor(t, "registrator started")
	return d
}

// launch runs registrator with args and the registry URIs, and stops it
// when the test ends, failing the test unless it exits 0.
func launch(t *testing.T, uris []string, args ...string) *daemon {
	t.Helper()
	return launchEnv(t, nil, uris, args...)
}

// launchEnv is launch with more environment variables ("K=V").
func launchEnv(t *testing.T, env []string, uris []string, args ...string) *daemon {
	t.Helper()
	return launchBin(t, daemonBin, env, uris, args...)
}

// launchBin is launchEnv with another build of the daemon.
func launchBin(t *testing.T, bin string, env []string, uris []string, args ...string) *daemon {
	t.Helper()
	return launchCmd(t, bin, nil, env, uris, args...)
}

// launchCmd is launchBin; prep, when set, adjusts the command before it
// starts (the user it runs as).
func launchCmd(t *testing.T, bin string, prep func(*exec.Cmd), env []string, uris []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{out: &testproc.Buffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, append(append([]string{"-log-level", "debug"}, args...), uris...)...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if prep != nil {
		prep(d.cmd)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		if !d.killed {
			if err := d.stop(); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.out)
		}
		if dir := os.Getenv("E2E_DAEMON_LOGS"); dir != "" { // kept for reading after a passing run too
			name := fmt.Sprintf("%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), d.cmd.Process.Pid)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(d.out.String()), 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	return d
}

// waitFor waits until the daemon has logged text.
func (d *daemon) waitFor(t *testing.T, text string) {
	t.Helper()
	eventually(t, settle, func() error {
		if d.gone() {
			return errors.New("daemon exited")
		}
		if !strings.Contains(d.out.String(), text) {
			return fmt.Errorf("daemon has not logged %q", text)
		}
		return nil
	})
}

// warned waits until the daemon has logged a warning that contains every
// one of texts.
func (d *daemon) warned(t *testing.T, texts ...string) {
	t.Helper()
	eventually(t, settle, func() error {
		if d.lines(append([]string{"level=warning"}, texts...)...) == 0 {
			return fmt.Errorf("no warning containing all of %q", texts)
		}
		return nil
	})
}

// lines is how many lines the daemon has logged that contain every one of
// texts.
func (d *daemon) lines(texts ...string) int {
	n := 0
	for _, line := range strings.Split(d.out.String(), "\n") {
		all := true
		for _, s := range texts {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// passes is how many full reconciles the daemon has logged (at debug
// level, which launchBin sets unless the test's own flags change it).
func (d *daemon) passes() int { return strings.Count(d.out.String(), `msg="full reconcile" `) }

// waitPasses waits until the daemon has logged n more full reconciles than
// it had when called: a wait for the daemon's own work, not for time.
func (d *daemon) waitPasses(t *testing.T, n int) {
	t.Helper()
	want := d.passes() + n
	eventually(t, settle, func() error {
		if got := d.passes(); got < want {
			return fmt.Errorf("%d full reconciles logged, waiting for %d", got, want)
		}
		return nil
	})
}

func (d *daemon) gone() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and expects exit status 0 within 5 seconds.
func (d *daemon) stop() error {
	if d.gone() {
		return fmt.Errorf("daemon had already exited: %v", d.cmd.ProcessState)
	}
	start := time.Now()
	if testkit.Stop(d.cmd.Process, d.exited, 5*time.Second) {
		return errors.New("daemon did not exit within 5s of SIGTERM")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("daemon exited %d after SIGTERM (%s)", code, time.Since(start))
	}
	return nil
}

// kill9 kills the daemon without a chance to clean up.
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	d.killed = true
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := testkit.Docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// run starts a container (docker run -d) and returns its ID; it is removed
// when the test ends.
func run(t *testing.T, args ...string) string {
	t.Helper()
	id := docker(t, append([]string{"run", "-d", "--label", label + "=1"}, args...)...)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	return id
}

// freePort returns a TCP port free on loopback now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func pub(port int, container string) string {
	return "127.0.0.1:" + strconv.Itoa(port) + ":" + container
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	if err := testkit.Eventually(t.Context(), timeout, 50*time.Millisecond, f); err != nil {
		t.Fatal(err)
	}
}

// svc is a registration as a test expects it.
type svc struct {
	Name    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string // without the owner mark
}

// registered returns the agent's services that carry an owner mark.
func registered() (map[string]svc, error) {
	all, err := agent.Client().Agent().Services()
	if err != nil {
		return nil, err
	}
	out := map[string]svc{}
	for id, s := range all {
		if s.Meta["registrator-owner"] == "" {
			continue
		}
		meta := map[string]string{}
		for k, v := range s.Meta {
			if !strings.HasPrefix(k, "registrator-") {
				meta[k] = v
			}
		}
		out[id] = svc{Name: s.Service, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: meta}
	}
	return out, nil
}

// expect waits until our registrations are exactly want.
func expect(t *testing.T, want map[string]svc) {
	t.Helper()
	eventually(t, settle, func() error {
		got, err := registered()
		if err != nil {
			return err
		}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
			return fmt.Errorf("registrations (-want +got):\n%s", d)
		}
		return nil
	})
}

// expectKeys waits until read returns exactly want: the keys of a
// key-value backend (what names them in a failure) and their values.
func expectKeys(t *testing.T, what string, read func() (map[string]string, error), want map[string]string) {
	t.Helper()
	eventually(t, settle, func() error {
		got, err := read()
		if err != nil {
			return err
		}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
			return fmt.Errorf("%s (-want +got):\n%s", what, d)
		}
		return nil
	})
}

// expectIDs waits until the IDs of our registrations are exactly ids.
func expectIDs(t *testing.T, ids ...string) {
	t.Helper()
	slices.Sort(ids)
	eventually(t, settle, func() error {
		got, err := registered()
		if err != nil {
			return err
		}
		have := []string{}
		for id := range got {
			have = append(have, id)
		}
		slices.Sort(have)
		if !slices.Equal(have, append([]string{}, ids...)) {
			return fmt.Errorf("registered %v, want %v", have, ids)
		}
		return nil
	})
}

// id is the default service ID of a container port on this host.
func id(container, port string) string { return host + ":" + container + ":" + port }

// checks returns the agent's checks of one service by check ID.
func checks(t *testing.T, serviceID string) map[string]*api.AgentCheck {
	t.Helper()
	all, err := agent.Client().Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*api.AgentCheck{}
	for k, c := range all {
		if c.ServiceID == serviceID {
			out[k] = c
		}
	}
	return out
}

// modifyIndex is the catalog's ModifyIndex of one service instance.
func modifyIndex(t *testing.T, name, serviceID string) uint64 {
	t.Helper()
	entries, _, err := agent.Client().Catalog().Service(name, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.ServiceID == serviceID {
			return e.ModifyIndex
		}
	}
	t.Fatalf("%s not in the catalog of %s", serviceID, name)
	return 0
}

// runningContainers is the set of running containers the suite started, by name.
func runningContainers(t *testing.T) []string {
	t.Helper()
	out := docker(t, "ps", "--filter", "label="+label, "--format", "{{.Names}}")
	names := strings.Fields(out)
	slices.Sort(names)
	return names
}

var engineMu sync.Mutex

// restartEngine stops dockerd with SIGTERM and starts it again with the same
// command line, as a host's service manager would.
func restartEngine(t *testing.T) {
	t.Helper()
	engineMu.Lock()
	defer engineMu.Unlock()
	raw, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		t.Fatalf("find dockerd: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		if err := syscall.Kill(pid, 0); err == nil {
			return errors.New("dockerd still running")
		}
		return nil
	})
	logf, err := os.OpenFile("/var/log/dockerd-registrator.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	// Reaped when it exits: a zombie would pass for a running dockerd at
	// the next restart.
	go func() { _ = cmd.Wait() }()
	eventually(t, 60*time.Second, func() error {
		return exec.Command("docker", "info").Run()
	})
}
