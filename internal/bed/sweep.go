package bed

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// sweep kills every process in the network namespaces named by the glob
// patterns (namespace files): what a run that was interrupted before its
// cleanups (its test binary killed) left running in a node or host of the
// same name, its engine, agents, servers and daemons, and, given the
// engine's own namespace files, its containers.
func sweep(patterns ...string) {
	inodes := map[uint64]bool{}
	for _, pattern := range patterns {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			if ino, ok := inode(p); ok {
				inodes[ino] = true
			}
		}
	}
	if len(inodes) == 0 {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ino, ok := inode(filepath.Join("/proc", e.Name(), "ns", "net")); ok && inodes[ino] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
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
