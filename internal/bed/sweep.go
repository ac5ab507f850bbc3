package bed

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// markVar is set, to the name of the bed's namespace they belong to, in the
// environment of every process the bed starts for a host or node: its
// engine, the processes of Node.Process and the programs of Wrap and
// WrapInside. A daemon under test that Wrap runs lives in this machine's
// network namespace, so only the mark tells a later run that it was left.
// Not REGISTRATOR_*: those are the daemon's flags.
const markVar = "BED_NAMESPACE"

// mark is the environment entry of the processes that belong to ns.
func mark(ns string) string { return markVar + "=" + ns }

// live counts this process's LANs and nodes (hosts included) not yet
// closed. Whenever it is 0 and a bed makes something, nothing of a bed is
// this process's, so whatever exists is what a run that was interrupted
// before its cleanups (its test binary killed) left: sweepAll removes it.
// One bed runs on a machine at a time, as the tests run one at a time.
var live struct {
	sync.Mutex
	n int
}

// acquire counts one more live LAN or node, after removing an interrupted
// run's leftovers when it is the first.
func acquire() {
	live.Lock()
	defer live.Unlock()
	if live.n == 0 {
		sweepAll()
	}
	live.n++
}

// release counts one live LAN or node less.
func release() {
	live.Lock()
	live.n--
	live.Unlock()
}

// sweepAll removes everything a bed makes: kills every process in one of
// its namespaces (nodes, hosts, the LAN, the hosts' containers) or carrying
// its mark wherever it runs, then removes the namespaces, this machine's
// link to the LAN, the hosts' directories with whatever their engines left
// mounted there, and the clusters' data.
func sweepAll() {
	hostDirs := append(glob("/var/lib/"+prefix+"*"), glob("/run/"+prefix+"*")...)
	bedNS := glob(nsPath(prefix + "*"))
	namespaces := slices.Clone(bedNS) // and the hosts' containers'
	for _, dir := range hostDirs {
		namespaces = append(namespaces, glob(filepath.Join(dir, "exec", "netns", "*"))...)
	}
	inodes := map[uint64]bool{}
	for _, p := range namespaces {
		if ino, ok := inode(p); ok {
			inodes[ino] = true
		}
	}
	for _, pid := range pids() {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		if ino, ok := inode(filepath.Join(dir, "ns", "net")); ok && inodes[ino] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		} else if env, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil && marked(env) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, p := range bedNS {
		_ = exec.Command("ip", "netns", "del", filepath.Base(p)).Run()
	}
	removeLAN()
	unmountUnder(hostDirs...)
	for _, dir := range append(hostDirs, glob(filepath.Join(os.TempDir(), prefix+"cluster-*"))...) {
		_ = os.RemoveAll(dir)
	}
}

// marked tells whether a process's environment (/proc/PID/environ) has the
// mark of one of a bed's namespaces.
func marked(env []byte) bool {
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.HasPrefix(kv, []byte(mark(prefix))) {
			return true
		}
	}
	return false
}

// unmountUnder unmounts everything mounted under the directories, deepest
// first: a killed engine leaves its overlays and its containers' network
// namespaces mounted.
func unmountUnder(dirs ...string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, d := range dirs {
			if f[1] == d || strings.HasPrefix(f[1], d+"/") {
				points = append(points, f[1])
				break
			}
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

func pids() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

func glob(pattern string) []string {
	paths, _ := filepath.Glob(pattern)
	return paths
}

func inode(path string) (uint64, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Ino, true
}

// nsPath is the file of the bed's namespace called ns.
func nsPath(ns string) string { return "/var/run/netns/" + ns }
