package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// swarm makes the engine a one-node swarm manager, advertised on loopback,
// and leaves the swarm again when the test ends (removing the
// docker_gwbridge network that joining made).
func swarm(t *testing.T) {
	t.Helper()
	if state := docker(t, "info", "-f", "{{.Swarm.LocalNodeState}}"); state != "inactive" {
		t.Fatalf("the engine is already in a swarm (%s); the test makes its own", state)
	}
	hadGateway := exec.Command("docker", "network", "inspect", "docker_gwbridge").Run() == nil
	docker(t, "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	t.Cleanup(func() {
		_ = exec.Command("docker", "swarm", "leave", "--force").Run()
		if !hadGateway {
			_ = exec.Command("docker", "network", "rm", "docker_gwbridge").Run()
		}
	})
}

// swarmTasks is what the registry should hold for the running tasks of a
// service: each task's container at its address on the overlay, port 80.
func swarmTasks(t *testing.T, service, overlay string) map[string]svc {
	t.Helper()
	want := map[string]svc{}
	out := docker(t, "ps", "--filter", "label=com.docker.swarm.service.name="+service, "--format", "{{.Names}}")
	for _, name := range strings.Fields(out) {
		ip, err := exec.Command("docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "`+overlay+`").IPAddress}}`, name).Output()
		if err != nil {
			continue // gone meanwhile
		}
		want[id(name, "80")] = svc{Name: service, Address: strings.TrimSpace(string(ip)), Port: 80}
	}
	return want
}

// Swarm tasks, on a one-node swarm: each running task is registered from
// the engine's own events with the service's name, its address on the
// overlay (not the routing mesh's) and the port its container exposes;
// the registry follows scaling up and down, a rolling update and the
// service's removal, and a task that fails and is replaced, each within
// 2 s of the tasks' change; a port
// published with mode=host is an ordinary binding.
func TestSwarmTasks(t *testing.T) {
	clean(t)
	swarm(t)
	network(t, "e2e-ov", "--driver", "overlay")
	startDaemon(t, "-ip", "127.0.0.1")
	service := func(args ...string) { docker(t, append([]string{"service"}, args...)...) }
	t.Cleanup(func() { _ = exec.Command("docker", "service", "rm", "e2e-web", "e2e-host").Run() })

	// follow waits until the registry holds exactly the running tasks
	// (of count n) and says how long after the tasks were that the
	// registry agreed.
	follow := func(what string, n int) {
		t.Helper()
		var tasksAt time.Time
		var want map[string]svc
		eventually(t, time.Minute, func() error {
			want = swarmTasks(t, "e2e-web", "e2e-ov")
			if len(want) != n {
				tasksAt = time.Time{}
				return fmt.Errorf("%d tasks running, waiting for %d", len(want), n)
			}
			if tasksAt.IsZero() {
				tasksAt = time.Now()
			}
			got, err := registered()
			if err != nil {
				return err
			}
			for id, s := range got {
				if !strings.Contains(id, "e2e-web") {
					delete(got, id)
				} else {
					s.Meta = nil
					got[id] = s
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("registered %v, want the tasks %v", got, want)
			}
			return nil
		})
		took := time.Since(tasksAt)
		t.Logf("%s: registry equal to the %d running tasks %s after they were", what, n, took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("%s: the registry followed the tasks after %s, more than 2 s", what, took)
		}
	}

	service("create", "--quiet", "--detach", "--no-resolve-image", "--name", "e2e-web", "--network", "e2e-ov",
		"--publish", "published="+strconv.Itoa(freePort(t))+",target=80", "--container-label", label+"=1", imgExposed, "80")
	follow("created", 1)
	for _, ip := range swarmTasks(t, "e2e-web", "e2e-ov") {
		if !strings.HasPrefix(ip.Address, "10.") || slices.Contains([]string{"", "127.0.0.1"}, ip.Address) {
			t.Errorf("task registered at %q, want its overlay address", ip.Address)
		}
	}
	service("scale", "--detach", "e2e-web=3")
	follow("scaled to 3", 3)

	// A task that fails: its container killed, the swarm starts a new
	// task in its place; the failed one's entry goes, the new one's comes.
	failed := strings.Fields(docker(t, "ps", "--filter", "label=com.docker.swarm.service.name=e2e-web", "--format", "{{.Names}}"))[0]
	docker(t, "kill", failed)
	eventually(t, time.Minute, func() error {
		names := strings.Fields(docker(t, "ps", "--filter", "label=com.docker.swarm.service.name=e2e-web", "--format", "{{.Names}}"))
		if slices.Contains(names, failed) || len(names) != 3 {
			return fmt.Errorf("tasks %v: waiting for %s's replacement", names, failed)
		}
		return nil
	})
	follow("a failed task rescheduled", 3)
	service("update", "--detach", "--env-add", "ROLLED=1", "--update-parallelism", "1", "e2e-web")
	eventually(t, time.Minute, func() error { // every task replaced
		for _, name := range strings.Fields(docker(t, "ps", "--filter", "label=com.docker.swarm.service.name=e2e-web", "--format", "{{.Names}}")) {
			if !strings.Contains(docker(t, "inspect", "-f", "{{.Config.Env}}", name), "ROLLED=1") {
				return fmt.Errorf("task %s not updated yet", name)
			}
		}
		return nil
	})
	follow("rolling update", 3)
	service("scale", "--detach", "e2e-web=0")
	follow("scaled to 0", 0)

	hostPort := freePort(t)
	service("create", "--quiet", "--detach", "--no-resolve-image", "--name", "e2e-host",
		"--publish", "mode=host,published="+strconv.Itoa(hostPort)+",target=80", "--container-label", label+"=1", imgExposed, "80")
	eventually(t, time.Minute, func() error {
		got, err := registered()
		if err != nil {
			return err
		}
		for _, s := range got {
			if s.Name == "e2e-host" && s.Address == "127.0.0.1" && s.Port == hostPort {
				return nil
			}
		}
		return fmt.Errorf("no e2e-host at 127.0.0.1:%d in %v", hostPort, got)
	})
	service("rm", "e2e-web", "e2e-host")
	eventually(t, time.Minute, func() error {
		got, err := registered()
		if err != nil {
			return err
		}
		if len(got) != 0 {
			return fmt.Errorf("after the services were removed: %v", got)
		}
		return nil
	})
}
