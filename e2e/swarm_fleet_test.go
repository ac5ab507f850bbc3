package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/registrator/registrator/internal/bed"
)

// swarmHost is a bed host in the test's swarm, with its daemon.
type swarmHost struct {
	*bed.Host
	d    *daemon
	lost bool
}

// tasks is the IDs the registry should hold for the running tasks of
// service on h: <host>:<task container>:80.
func (h *swarmHost) tasks(service string) ([]string, error) {
	out, err := h.Docker("ps", "--filter", "label=com.docker.swarm.service.name="+service, "--format", "{{.Names}}")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, name := range strings.Fields(out) {
		ids = append(ids, h.Name+":"+name+":80")
	}
	return ids, nil
}

// A swarm of three hosts on their own network (a manager, then a worker
// promoted to a second while its daemon runs, and a worker), each with its
// daemon writing to one etcd cluster with -swarm-services:
// every task is registered by the daemon of the node that runs it, at its
// overlay address; the service's virtual IP once, though both managers
// write it; its routing-mesh port at each manager's address, by that
// manager; the worker's daemon says it is no manager. The registry
// follows a node drained and a worker killed, with no entry left behind
// on the node a task left.
func TestSwarmOnThreeHosts(t *testing.T) {
	lan, cluster := bedCluster(t, false)

	var hosts []*swarmHost
	for _, name := range []string{"swarm-m", "swarm-w1", "swarm-w2"} {
		hosts = append(hosts, &swarmHost{Host: lanHost(t, lan, name, imgExposed)})
	}
	m, w1, w2 := hosts[0], hosts[1], hosts[2]
	hostDocker(t, m.Host, "swarm", "init", "--advertise-addr", m.Addr)
	token := hostDocker(t, m.Host, "swarm", "join-token", "-q", "worker")
	for _, w := range []*swarmHost{w1, w2} {
		hostDocker(t, w.Host, "swarm", "join", "--token", token, m.Addr+":2377")
	}
	hostDocker(t, m.Host, "network", "create", "--driver", "overlay", "appnet")
	subnet := hostDocker(t, m.Host, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "appnet")
	_, appnet, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatalf("appnet's subnet %q: %v", subnet, err)
	}
	for _, h := range hosts {
		h.d = startInside(t, h.Host, []string{"etcd://" + cluster.EtcdEndpoints() + "/swarm"}, "-ip", h.Addr, "-swarm-services")
	}
	// A worker promoted while its daemon runs: the daemon starts
	// registering the services; the other worker's says it is none.
	for _, w := range []*swarmHost{w1, w2} {
		w.d.waitFor(t, "-swarm-services: this node is not a Swarm manager")
	}
	hostDocker(t, m.Host, "node", "promote", w2.Name)
	for _, h := range []*swarmHost{m, w2} {
		h.d.waitFor(t, "registering the Swarm services")
	}
	// The service's own entries while it exists: its virtual IP on appnet
	// once, its routing-mesh port at each manager's address.
	vipID := "swarm:web:appnet:80"
	serviceIDs := []string{vipID, m.Name + ":swarm:web:8080", w2.Name + ":swarm:web:8080"}
	nodeAddr := map[string]string{m.Name + ":swarm:web:8080": m.Addr, w2.Name + ":swarm:web:8080": w2.Addr}

	registry := func() ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := cluster.Etcd.Get(ctx, "/swarm/web/", clientv3.WithPrefix())
		if err != nil {
			return nil, err
		}
		var ids []string
		for _, kv := range resp.Kvs {
			id := strings.TrimPrefix(string(kv.Key), "/swarm/web/")
			ids = append(ids, id)
			host, _, err := net.SplitHostPort(string(kv.Value))
			switch {
			case err != nil:
				return nil, fmt.Errorf("%s: %q: %v", kv.Key, kv.Value, err)
			case nodeAddr[id] != "":
				if host != nodeAddr[id] {
					return nil, fmt.Errorf("%s at %s, want its node's address %s", kv.Key, kv.Value, nodeAddr[id])
				}
			case !appnet.Contains(net.ParseIP(host)):
				return nil, fmt.Errorf("%s at %s, want an address on appnet (%s), not a node's or the ingress network's", kv.Key, kv.Value, appnet)
			}
		}
		slices.Sort(ids)
		return ids, nil
	}
	// follow waits until the live nodes run n tasks and settled says the
	// change took place, then until the registry holds exactly those
	// tasks, and says how long after the tasks were that the registry
	// agreed.
	follow := func(what string, n int, settled func() bool, limit time.Duration) {
		t.Helper()
		var tasksAt time.Time
		var want, got []string
		deadline := time.Now().Add(2 * time.Minute)
		for {
			want = want[:0]
			if n > 0 {
				want = append(want, serviceIDs...)
			}
			var err error
			for _, h := range hosts {
				if h.lost {
					continue
				}
				ids, terr := h.tasks("web")
				if terr != nil {
					err = terr
				}
				want = append(want, ids...)
			}
			slices.Sort(want)
			switch {
			case err != nil || len(want) != n+len(serviceIDs) && n > 0 || n == 0 && len(want) != 0 || settled != nil && !settled():
				tasksAt = time.Time{}
			case tasksAt.IsZero():
				tasksAt = time.Now()
			}
			if !tasksAt.IsZero() {
				if got, err = registry(); err == nil && slices.Equal(got, want) {
					took := time.Since(tasksAt)
					t.Logf("%s: registry equal to the %d running tasks: converged %s after the change", what, n, took.Round(time.Millisecond))
					if took > limit {
						t.Errorf("%s: the registry followed the tasks after %s, more than %s", what, took, limit)
					}
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: registry %v (err %v), tasks %v (want %d)", what, got, err, want, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	on := func(h *swarmHost) int {
		ids, err := h.tasks("web")
		if err != nil {
			return -1
		}
		return len(ids)
	}

	hostDocker(t, m.Host, "service", "create", "--quiet", "--detach", "--no-resolve-image", "--name", "web",
		"--network", "appnet", "--replicas", "3", "--publish", "published=8080,target=80", imgExposed, "80")
	follow("3 tasks over 3 nodes", 3, func() bool { return on(m) == 1 && on(w1) == 1 && on(w2) == 1 }, 2*time.Second)

	hostDocker(t, m.Host, "node", "update", "--availability", "drain", w2.Name)
	follow("a node drained", 3, func() bool { return on(w2) == 0 }, 2*time.Second)
	hostDocker(t, m.Host, "node", "update", "--availability", "active", w2.Name)

	// A worker lost with its daemon: the manager reschedules its task once
	// it declares the node down; its entry goes with its daemon's lease.
	w1.d.kill9(t)
	w1.Kill()
	w1.lost = true
	lost := time.Now()
	follow("a worker killed", 3, nil, 35*time.Second)
	t.Logf("a worker killed: its task rescheduled and its entry gone %s after", time.Since(lost).Round(time.Millisecond))

	hostDocker(t, m.Host, "service", "rm", "web")
	follow("the service removed", 0, nil, 2*time.Second)
	for _, h := range hosts {
		if !h.lost && h.d.gone() {
			t.Errorf("%s's daemon exited", h.Name)
		}
	}
}
