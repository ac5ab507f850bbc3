package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secondEngine is a second dockerd on this machine, as on a second host
// cloned from this one: its own network namespace, data, exec root and
// socket, its own host name (a UTS namespace), and this engine's
// /etc/docker/key.json, hence this engine's ID.
type secondEngine struct {
	name, sock string
	cmd        *exec.Cmd
}

func startSecondEngine(t *testing.T, name string) *secondEngine {
	t.Helper()
	ns := "reg-e2e-" + name
	root := "/var/lib/registrator-e2e-" + name // beside /var/lib/docker: overlay2 needs a real filesystem
	run := "/run/registrator-e2e-" + name
	cleanup := func() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = exec.Command("umount", "-R", root).Run()
		_ = os.RemoveAll(root)
		_ = os.RemoveAll(run)
	}
	cleanup()
	for _, args := range [][]string{{"netns", "add", ns}, {"-n", ns, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &secondEngine{name: name, sock: filepath.Join(run, "docker.sock")}
	logf, err := os.Create(filepath.Join(t.TempDir(), "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("hostname %s && exec dockerd --data-root %s --exec-root %s/exec --pidfile %s/docker.pid -H unix://%s",
		name, root, run, run, e.sock)
	e.cmd = exec.Command("nsenter", "--net=/var/run/netns/"+ns, "unshare", "--uts", "sh", "-c", script)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "-H", "unix://"+e.sock, "ps", "-aq").Output(); err == nil {
			if ids := strings.Fields(string(out)); len(ids) > 0 {
				_ = exec.Command("docker", append([]string{"-H", "unix://" + e.sock, "rm", "-f"}, ids...)...).Run()
			}
		}
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("second dockerd's log:\n%s", b)
		}
		cleanup()
	})
	eventually(t, time.Minute, func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("the second dockerd exited:\n%s", b)
		default:
		}
		return exec.Command("docker", "-H", "unix://"+e.sock, "info").Run()
	})
	if out, err := exec.Command("sh", "-c", "docker save "+imgSvc+" | docker -H unix://"+e.sock+" load -q").CombinedOutput(); err != nil {
		t.Fatalf("docker save | load: %v\n%s", err, out)
	}
	return e
}

func (e *secondEngine) docker(t *testing.T, args ...string) string {
	t.Helper()
	return docker(t, append([]string{"-H", "unix://" + e.sock}, args...)...)
}

// Two hosts cloned from one image, their engines sharing key.json and so
// their ID, with the same container names and ports, both registering into
// one Consul agent and one etcd: every host's services are there, with
// distinct IDs, and stay there through many full passes; neither daemon
// removes or rewrites the other's; each says once which host shares its
// engine's ID.
func TestTwoEnginesWithOneEngineID(t *testing.T) {
	clean(t)
	b := startSecondEngine(t, "twin-b")
	if a, bID := docker(t, "info", "-f", "{{.ID}}"), b.docker(t, "info", "-f", "{{.ID}}"); a != bID {
		t.Fatalf("engine IDs %s and %s: the test needs the shared key.json to give both one ID", a, bID)
	}
	if n := b.docker(t, "info", "-f", "{{.Name}}"); n != "twin-b" {
		t.Fatalf("the second engine is named %q, want twin-b", n)
	}
	uris := []string{"consul://" + agent.Addr, etcdURI("/services")}
	da := startDaemonURIs(t, uris, "-resync", "1", "-ip", "127.0.0.1")
	wrapper := filepath.Join(t.TempDir(), "as-twin-b")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec unshare --uts sh -c 'hostname twin-b && exec \"$0\" \"$@\"' "+daemonBin+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dbProc := launchBin(t, wrapper, []string{"DOCKER_HOST=unix://" + b.sock}, uris, "-resync", "1", "-ip", "127.0.0.1")
	dbProc.waitFor(t, "registrator started")

	run(t, "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	b.docker(t, "run", "-d", "--name", "web", "--label", label+"=1", "-p", "127.0.0.1::80", imgSvc, "80")
	ids := []string{id("web", "80"), "twin-b:web:80"}
	expectIDs(t, ids...)
	eventually(t, settle, func() error {
		got, err := kv("/services/svc/")
		if err != nil {
			return err
		}
		for _, i := range ids {
			if _, ok := got["/services/svc/"+i]; !ok {
				return fmt.Errorf("etcd has %v, want both hosts' web", got)
			}
		}
		return nil
	})

	da.waitPasses(t, 3)
	dbProc.waitPasses(t, 3)
	expectIDs(t, ids...)
	for name, d := range map[string]*daemon{"this host's": da, "twin-b's": dbProc} {
		if strings.Contains(d.out.String(), "deregistered") || strings.Count(d.out.String(), "action=register") != 2 {
			t.Errorf("%s daemon deregistered or registered again (want one registration per backend):\n%s", name, d.out)
		}
	}
	da.waitFor(t, "host twin-b's engine has this engine's ID (this host is "+host+")")
	dbProc.waitFor(t, "host "+host+"'s engine has this engine's ID (this host is twin-b)")
}
