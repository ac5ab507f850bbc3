package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Three hosts (this one and two simulated ones, internal/bed) with the same
// container names and ports, each with its daemon, one Consul agent and one
// etcd: every host's services are there with distinct IDs; -cleanup on
// this host removes what registrator left for this host only, never
// another host's entries, marked or not.
func TestFleetSameNamesEveryHost(t *testing.T) {
	clean(t)
	hosts := []string{"fleet-b", "fleet-c"}
	uris := []string{"consul://" + agent.Addr, etcdURI("/services")}
	// What gliderlabs/registrator left, unmarked: this host's is removed by
	// -cleanup here, fleet-b's is not.
	for _, left := range []string{id("old", "80"), "fleet-b:old:80"} {
		if err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{ID: left, Name: "svc", Port: 80}); err != nil {
			t.Fatal(err)
		}
	}
	da := startDaemonURIs(t, uris, "-cleanup", "-resync", "2", "-ip", "127.0.0.1")
	run(t, "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	want := []string{id("web", "80"), "fleet-b:old:80"}
	for _, name := range hosts {
		h := bedHost(t, name)
		startHostDaemon(t, h, uris, "-resync", "2", "-ip", "127.0.0.1")
		hostDocker(t, h, "run", "-d", "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
		want = append(want, name+":web:80")
	}
	started := time.Now()
	expectAll := func() {
		t.Helper()
		eventually(t, settle, func() error {
			all, err := agent.Client().Agent().Services()
			if err != nil {
				return err
			}
			var got []string
			for id := range all {
				if id != "consul" {
					got = append(got, id)
				}
			}
			slices.Sort(got)
			w := slices.Sorted(slices.Values(want))
			if !slices.Equal(got, w) {
				return fmt.Errorf("Consul has %v, want %v", got, w)
			}
			keys, err := kv("/services/svc/")
			if err != nil {
				return err
			}
			if len(keys) != len(hosts)+1 {
				return fmt.Errorf("etcd has %v, want every host's web", keys)
			}
			return nil
		})
	}
	expectAll()
	t.Logf("the same names and ports on three hosts, -cleanup on one (Consul and etcd): converged %s after the change",
		time.Since(started).Round(time.Millisecond))
	da.waitPasses(t, 3) // each with its cleanup
	expectAll()
	if strings.Contains(da.out.String(), "fleet-b:old:80") {
		t.Errorf("this host's daemon touched fleet-b's leftover:\n%s", da.out)
	}
}

// A host lost (its daemon and engine killed at once) with the default
// flags: its etcd entries leave with its lease, within the TTL (30 s) and
// 5 s; every other host's entries stay untouched.
func TestFleetHostLost(t *testing.T) {
	clean(t)
	uris := []string{etcdURI("/services")}
	da := startDaemonURIs(t, uris, "-ip", "127.0.0.1")
	run(t, "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	h := bedHost(t, "lost-b")
	db := startHostDaemon(t, h, uris, "-ip", "127.0.0.1")
	hostDocker(t, h, "run", "-d", "--name", "web", "-p", "127.0.0.1::80", imgSvc, "80")
	mine, theirs := "/services/svc/"+id("web", "80"), "/services/svc/lost-b:web:80"
	eventually(t, settle, func() error {
		keys, err := kv("/services/svc/")
		if err != nil {
			return err
		}
		if _, ok := keys[theirs]; !ok || keys[mine] == "" {
			return fmt.Errorf("etcd has %v, want both hosts' web", keys)
		}
		return nil
	})

	db.kill9(t)
	h.Kill()
	lost := time.Now()
	took := waitLeft(t, 40*time.Second, lost, mine, theirs)
	t.Logf("lost host's entries gone %s after it was lost (TTL 30 s)", took.Round(time.Millisecond))
	if took > 35*time.Second {
		t.Errorf("the lost host's entries left after %s, more than the TTL and 5 s", took)
	}
	if strings.Contains(da.out.String(), "deregistered") {
		t.Errorf("this host's daemon deregistered something:\n%s", da.out)
	}
}

// waitLeft waits until etcd no longer holds the key theirs, the entry of a
// host lost at lost, and returns how long after that it went; it fails at
// once if this host's key mine goes too.
func waitLeft(t *testing.T, limit time.Duration, lost time.Time, mine, theirs string) time.Duration {
	t.Helper()
	eventually(t, limit, func() error {
		keys, err := kv("/services/svc/")
		if err != nil {
			return err
		}
		if keys[mine] == "" {
			t.Fatalf("this host's entry went with the other host: %v", keys)
		}
		if _, ok := keys[theirs]; ok {
			return fmt.Errorf("%s still there %s after the host was lost", theirs, time.Since(lost).Round(time.Second))
		}
		return nil
	})
	return time.Since(lost)
}
