// Package bed builds simulated hosts on this machine for tests, and tears
// them down again, also what an interrupted run left (sweepAll). A Host is
// a network namespace the test makes, with a dockerd of its own (own
// socket, data root, exec root and pidfile) under a host name of its own
// (a UTS namespace); its containers live in its namespace. It shares this
// machine's /etc/docker/key.json, hence this engine's ID, as hosts cloned
// from one image do.
//
// The daemons under test run in this machine's network namespace, under
// the host's name (Host.Wrap), so that they reach the test's registries on
// loopback; each talks to its host's engine over the host's socket.
package bed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/registrator/registrator/internal/testkit"
)

// prefix starts the names of everything a bed makes: network namespaces,
// directories.
const prefix = "registrator-bed-"

// Host is one simulated host: a Node with an engine.
type Host struct {
	*Node
	root   string // data root, beside /var/lib/docker (overlay2 needs a real filesystem)
	run    string // exec root, pidfile, socket
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start makes a host called name, on no network, and waits until its
// engine answers.
func Start(name string) (*Host, error) { return startHost(name, nil) }

// Host makes a host called name on the LAN and waits until its engine
// answers.
func (l *LAN) Host(name string) (*Host, error) {
	h, err := startHost(name, l)
	if err == nil {
		l.nodes = append(l.nodes, h.Node)
		l.hosts = append(l.hosts, h)
	}
	return h, err
}

func startHost(name string, lan *LAN) (*Host, error) {
	h := &Host{root: "/var/lib/" + prefix + name, run: "/run/" + prefix + name}
	n, err := newNode(name, lan)
	if err != nil {
		return nil, err
	}
	h.Node = n
	h.remove()
	if err := os.MkdirAll(h.run, 0o755); err != nil {
		h.Close()
		return nil, err
	}
	h.log = filepath.Join(h.run, "dockerd.log")
	logf, err := os.Create(h.log)
	if err != nil {
		h.Close()
		return nil, err
	}
	defer logf.Close()
	// nsenter, not ip netns exec: that remounts /sys, and dockerd then
	// finds no cgroups.
	h.cmd = exec.Command("nsenter", append(h.prefixArgs("dockerd"), "--data-root", h.root, "--exec-root", h.run+"/exec",
		"--pidfile", h.run+"/docker.pid", "-H", h.DockerHost())...)
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		h.cmd = nil
		h.Close()
		return nil, err
	}
	h.exited = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
	err = testkit.Eventually(context.Background(), time.Minute, 100*time.Millisecond, func() error {
		select {
		case <-h.exited:
			return errors.New("dockerd exited")
		default:
		}
		_, err := h.Docker("info")
		return err
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("bed: host %s: %v; dockerd's log:\n%s", name, err, h.Log())
	}
	return h, nil
}

// DockerHost is the host's engine, for DOCKER_HOST.
func (h *Host) DockerHost() string { return "unix://" + filepath.Join(h.run, "docker.sock") }

// Docker runs the docker CLI against the host's engine.
func (h *Host) Docker(args ...string) (string, error) {
	return testkit.Docker(append([]string{"-H", h.DockerHost()}, args...)...)
}

// Load copies images from this machine's engine to the host's.
func (h *Host) Load(images ...string) error {
	cmd := fmt.Sprintf("docker save %s | docker -H %s load -q", strings.Join(images, " "), h.DockerHost())
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		return fmt.Errorf("bed: load into %s: %v: %s", h.Name, err, out)
	}
	return nil
}

// Wrap writes, in dir, a program that runs bin with its arguments under
// the host's name (in this machine's network namespace), and returns its
// path.
func (h *Host) Wrap(dir, bin string) (string, error) {
	path := filepath.Join(dir, "as-"+h.Name)
	script := fmt.Sprintf("#!/bin/sh\nexec env %s unshare --uts sh -c 'hostname %s && exec \"$0\" \"$@\"' %s \"$@\"\n", mark(h.ns), h.Name, bin)
	return path, os.WriteFile(path, []byte(script), 0o755)
}

// Log is what the host's dockerd printed.
func (h *Host) Log() string {
	b, _ := os.ReadFile(h.log)
	return string(b)
}

// Kill ends the host's engine at once, as a host that is lost: dockerd and
// everything it started get SIGKILL.
func (h *Host) Kill() {
	if h.cmd == nil {
		return
	}
	var pids []int
	if ids, err := h.Docker("ps", "-q"); err == nil && ids != "" {
		if out, err := h.Docker(append([]string{"inspect", "-f", "{{.State.Pid}}"}, strings.Fields(ids)...)...); err == nil {
			for _, f := range strings.Fields(out) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
					pids = append(pids, pid)
				}
			}
		}
	}
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	<-h.exited
	// containerd, its shims and the containers are in other process groups.
	_ = exec.Command("pkill", "-KILL", "-f", "containerd.*"+h.run).Run()
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Close removes the host's containers, stops its engine and removes
// everything the host made. It is safe to call twice and after Kill.
func (h *Host) Close() {
	if h.cmd != nil {
		select {
		case <-h.exited:
		default:
			if out, err := h.Docker("ps", "-aq"); err == nil && out != "" {
				_, _ = h.Docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
			}
			_ = h.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-h.exited:
			case <-time.After(30 * time.Second):
				h.Kill()
			}
		}
	}
	h.remove()
	if h.Node != nil {
		h.Node.Close()
	}
}

func (h *Host) remove() {
	unmountUnder(h.root, h.run)
	_ = os.RemoveAll(h.root)
	_ = os.RemoveAll(h.run)
}
