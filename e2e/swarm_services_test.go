package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// serviceVIP is a Swarm service's virtual IP on a network, without its
// prefix length; "" while it has none.
func serviceVIP(t *testing.T, service, network string) string {
	t.Helper()
	netID := docker(t, "network", "inspect", "-f", "{{.Id}}", network)
	out := docker(t, "service", "inspect", "-f", `{{range .Endpoint.VirtualIPs}}{{.NetworkID}} {{.Addr}}{{"\n"}}{{end}}`, service)
	for _, line := range strings.Split(out, "\n") {
		if id, addr, ok := strings.Cut(line, " "); ok && id == netID {
			ip, _, _ := strings.Cut(addr, "/")
			return ip
		}
	}
	return ""
}

// -swarm-services on a one-node swarm: a service is registered once as
// the swarm's (its virtual IP on its overlay network and its target port,
// an ID that names no host, the swarm's owner mark), and at this node's
// address with the port it publishes through the routing mesh, both named
// and tagged by the service's own labels; its tasks as without the flag.
// Two daemons with the flag (as two managers' would be) write each entry
// once. The entries follow a scale, a label update and the removal within
// 2 s; a dnsrr service has no virtual IP: its tasks alone are registered.
func TestSwarmServices(t *testing.T) {
	clean(t)
	swarm(t)
	network(t, "e2e-sv", "--driver", "overlay")
	t.Cleanup(func() { _ = exec.Command("docker", "service", "rm", "e2e-sv", "e2e-rr").Run() })
	cluster := docker(t, "info", "-f", "{{.Swarm.Cluster.ID}}")
	d := startDaemonURIs(t, []string{"consul://" + agent.Addr, etcdURI("/services")}, "-ip", "127.0.0.1", "-swarm-services")
	d.waitFor(t, `registering the Swarm services" owner=swarm@`+cluster)

	published := freePort(t)
	docker(t, "service", "create", "--quiet", "--detach", "--no-resolve-image", "--name", "e2e-sv", "--network", "e2e-sv",
		"--publish", "published="+strconv.Itoa(published)+",target=80", "--label", "SERVICE_TAGS=from-service",
		"--container-label", label+"=1", "--replicas", "2", imgExposed, "80")
	vipID, nodeID := "swarm:e2e-sv:e2e-sv:80", host+":swarm:e2e-sv:"+strconv.Itoa(published)

	// want is what Consul and etcd should hold: the running tasks, and
	// the service's two entries with tags.
	want := func(tags ...string) (map[string]svc, map[string]string, error) {
		vip := serviceVIP(t, "e2e-sv", "e2e-sv")
		if vip == "" {
			return nil, nil, fmt.Errorf("e2e-sv has no virtual IP on e2e-sv yet")
		}
		consul := swarmTasks(t, "e2e-sv", "e2e-sv")
		keys := map[string]string{}
		for id, s := range consul {
			keys["/services/e2e-sv/"+id] = s.Address + ":80"
		}
		consul[vipID] = svc{Name: "e2e-sv", Address: vip, Port: 80, Tags: tags}
		consul[nodeID] = svc{Name: "e2e-sv", Address: "127.0.0.1", Port: published, Tags: tags}
		keys["/services/e2e-sv/"+vipID] = vip + ":80"
		keys["/services/e2e-sv/"+nodeID] = "127.0.0.1:" + strconv.Itoa(published)
		return consul, keys, nil
	}
	// follow waits until both registries hold what want says with n tasks
	// running, and says how long after the swarm was so they agreed.
	follow := func(what string, n int, tags ...string) {
		t.Helper()
		var since time.Time
		eventually(t, time.Minute, func() error {
			consul, keys, err := want(tags...)
			if err != nil {
				since = time.Time{}
				return err
			}
			if len(keys) != n+2 {
				since = time.Time{}
				return fmt.Errorf("%d tasks running, waiting for %d", len(keys)-2, n)
			}
			if since.IsZero() {
				since = time.Now()
			}
			got, err := registered()
			if err != nil {
				return err
			}
			for _, s := range got {
				s.Meta = nil
			}
			if diff := cmp.Diff(consul, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(svc{}, "Meta")); diff != "" {
				return fmt.Errorf("Consul (-want +got):\n%s", diff)
			}
			gotKeys, err := kv("/services/")
			if err != nil {
				return err
			}
			if diff := cmp.Diff(keys, gotKeys); diff != "" {
				return fmt.Errorf("etcd (-want +got):\n%s", diff)
			}
			return nil
		})
		took := time.Since(since)
		t.Logf("%s: both registries equal %s after the swarm was", what, took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("%s: the registries followed after %s, more than 2 s", what, took)
		}
	}
	follow("created", 2, "from-service")

	all, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if owner := all[vipID].Meta["registrator-owner"]; owner != "swarm@"+cluster {
		t.Errorf("the virtual IP's entry is marked %q, want the swarm's, swarm@%s", owner, cluster)
	}
	if owner := all[nodeID].Meta["registrator-owner"]; owner != identity(t) {
		t.Errorf("the node's entry is marked %q, want this host's, %s", owner, identity(t))
	}

	// A second manager's daemon writes the same entries: each is still
	// there once, and its full passes change nothing.
	d2 := startDaemonURIs(t, []string{etcdURI("/services")}, "-ip", "127.0.0.1", "-swarm-services", "-resync", "1")
	d2.waitPasses(t, 2)
	follow("a second daemon with -swarm-services", 2, "from-service")

	docker(t, "service", "scale", "--detach", "e2e-sv=3")
	follow("scaled to 3", 3, "from-service")
	docker(t, "service", "update", "--detach", "--label-add", "SERVICE_TAGS=v2", "e2e-sv")
	follow("the service's label updated", 3, "v2")

	docker(t, "service", "create", "--quiet", "--detach", "--no-resolve-image", "--name", "e2e-rr", "--network", "e2e-sv",
		"--endpoint-mode", "dnsrr", "--container-label", label+"=1", imgExposed, "80")
	eventually(t, time.Minute, func() error {
		tasks := swarmTasks(t, "e2e-rr", "e2e-sv")
		if len(tasks) != 1 {
			return fmt.Errorf("%d e2e-rr tasks", len(tasks))
		}
		got, err := registered()
		if err != nil {
			return err
		}
		for id, s := range got {
			if s.Name == "e2e-rr" && tasks[id].Address == "" {
				return fmt.Errorf("e2e-rr has %s at %s:%d, want only its task %v", id, s.Address, s.Port, tasks)
			}
		}
		for id := range tasks {
			if _, ok := got[id]; !ok {
				return fmt.Errorf("e2e-rr's task %s not registered", id)
			}
		}
		return nil
	})

	docker(t, "service", "rm", "e2e-sv", "e2e-rr")
	expect(t, map[string]svc{})
	expectKV(t, "/services/", map[string]string{})
}
