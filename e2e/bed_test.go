package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/registrator/registrator/internal/bed"
	"github.com/registrator/registrator/internal/etcdtest"
	"github.com/registrator/registrator/internal/testkit"
)

// leaveBedEnv makes the test binary, instead of running tests, build a bed
// and wait to be killed (leaveBed): a run interrupted with a bed up.
const leaveBedEnv = "E2E_LEAVE_BED"

// leftBed is what leaveBed reports, once everything is up.
type leftBed struct {
	Pids       map[string]int // what runs: the engine, a container, an etcd member, a daemon's stand-in
	Paths      []string       // the namespaces and directories it made
	ClusterDir string
}

// leaveBed builds a LAN with an etcd cluster and a host on it running a
// container, and, in this machine's namespace under the host's name, a
// program as the host's daemon would be; prints what it made; then waits
// for the end its parent test gives it, SIGKILL, with no cleanup run.
func leaveBed() error {
	etcdBin, err := etcdtest.Binary()
	if err != nil {
		return err
	}
	lan, err := bed.NewLAN()
	if err != nil {
		return err
	}
	cluster, err := lan.Cluster("", etcdBin)
	if err != nil {
		return err
	}
	h, err := lan.Host("left-a")
	if err != nil {
		return err
	}
	if err := h.Load(imgSvc); err != nil {
		return err
	}
	if _, err := h.Docker("run", "-d", "--name", "web", imgSvc, "80"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "registrator-e2e-leave-")
	if err != nil {
		return err
	}
	wrapper, err := h.Wrap(dir, "sleep")
	if err != nil {
		return err
	}
	standIn := exec.Command(wrapper, "3600")
	if err := standIn.Start(); err != nil {
		return err
	}
	left := leftBed{Pids: map[string]int{"daemon's stand-in": standIn.Process.Pid}}
	b, err := os.ReadFile("/run/registrator-bed-left-a/docker.pid")
	if err != nil {
		return err
	}
	if left.Pids["engine"], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return err
	}
	out, err := h.Docker("inspect", "-f", "{{.State.Pid}}", "web")
	if err != nil {
		return err
	}
	if left.Pids["container"], err = strconv.Atoi(out); err != nil {
		return err
	}
	member, err := pidIn("/var/run/netns/registrator-bed-server-1")
	if err != nil {
		return err
	}
	left.Pids["etcd member"] = member
	left.ClusterDir = cluster.Dir()
	left.Paths = []string{"/var/run/netns/registrator-bed-lan", "/var/run/netns/registrator-bed-left-a",
		"/var/run/netns/registrator-bed-server-1", "/var/lib/registrator-bed-left-a", "/run/registrator-bed-left-a", left.ClusterDir}
	j, err := json.Marshal(left)
	if err != nil {
		return err
	}
	fmt.Printf("left %s\n", j)
	select {}
}

// pidIn is a process in the network namespace whose file is ns.
func pidIn(ns string) (int, error) {
	want, err := os.Stat(ns)
	if err != nil {
		return 0, err
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && os.SameFile(fi, want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process in %s", ns)
}

// alive tells whether pid runs: it exists and is no zombie (a killed
// process whose parent is gone waits for PID 1 to reap it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// bedRemains lists what of any bed is on this machine: namespaces, host
// directories, cluster data, mounts under the host directories, the
// machine's link to a LAN.
func bedRemains() []string {
	var found []string
	for _, pattern := range []string{"/var/run/netns/registrator-bed-*", "/var/lib/registrator-bed-*", "/run/registrator-bed-*",
		filepath.Join(os.TempDir(), "registrator-bed-cluster-*")} {
		paths, _ := filepath.Glob(pattern)
		found = append(found, paths...)
	}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.Contains(f[1], "/registrator-bed-") {
				found = append(found, "mount "+f[1])
			}
		}
	}
	if err := exec.Command("ip", "link", "show", "regbed0").Run(); err == nil {
		found = append(found, "link regbed0")
	}
	return found
}

// A test binary killed with a bed up (go test's -timeout, ^C twice, a CI
// job cancelled) runs none of its cleanups: the hosts' engines and
// containers, the cluster's servers and the daemons under test keep
// running. The next bed the suite makes, whatever its hosts are called,
// first ends all of that and removes the namespaces, directories and
// mounts; and a bed closed leaves nothing.
func TestBedAfterAKilledRun(t *testing.T) {
	if remains := bedRemains(); len(remains) > 0 {
		t.Logf("before the test, what an earlier run left: %v", remains)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leaveBedEnv+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "left ") {
				lines <- strings.TrimPrefix(sc.Text(), "left ")
			}
		}
		close(lines)
	}()
	var left leftBed
	select {
	case line, ok := <-lines:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("the run to be killed ended before its bed was up (%s)", cmd.ProcessState)
		}
		if err := json.Unmarshal([]byte(line), &left); err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the run to be killed did not have its bed up within 3 minutes")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()

	// What the killed run left, as the test sees it: it must be there, or
	// this test shows nothing.
	for what, pid := range left.Pids {
		if !alive(pid) {
			t.Fatalf("the killed run's %s (pid %d) is not running: nothing was left to remove", what, pid)
		}
	}
	for _, p := range left.Paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the killed run left no %s: %v", p, err)
		}
	}
	t.Logf("the killed run left running: %v; and %s", left.Pids, strings.Join(left.Paths, ", "))

	// A new bed, with other host names.
	lan, cluster := bedCluster(t, false)
	h := lanHost(t, lan, "fresh-a", imgSvc)
	hostDocker(t, h, "run", "-d", "--name", "web", imgSvc, "80")
	if len(cluster.Servers) != 3 {
		t.Fatalf("%d servers", len(cluster.Servers))
	}
	err = testkit.Eventually(t.Context(), 10*time.Second, 50*time.Millisecond, func() error {
		for what, pid := range left.Pids {
			if alive(pid) {
				return fmt.Errorf("the killed run's %s (pid %d) still runs", what, pid)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	for _, p := range left.Paths {
		if strings.Contains(p, "/registrator-bed-lan") || strings.Contains(p, "/registrator-bed-server-") {
			continue // the new bed has its own of these names
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the new bed kept the killed run's %s", p)
		}
	}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil && strings.Contains(string(b), "/registrator-bed-left-a") {
		t.Error("the killed run's host still has mounts")
	}

	// Closed, the new bed leaves nothing.
	h.Close()
	cluster.Close()
	lan.Close()
	if remains := bedRemains(); len(remains) > 0 {
		t.Errorf("a closed bed left %v", remains)
	}
}
