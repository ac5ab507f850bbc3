package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// maintenance reports whether Consul holds the service in maintenance.
func maintenance(t *testing.T, serviceID string) bool {
	_, ok := checks(t, serviceID)["_service_maintenance:"+serviceID]
	return ok
}

// Stopping a container that takes 4 s to shut down, on Docker: its service
// is in Consul maintenance and withdrawn from etcd while it stops, before
// it exits, and deregistered once it died. Podman (4.3) tells nothing
// before the exit (no kill event, no stop event at all): its entry goes
// when it exits. On both, with SERVICE_DRAIN=3s the drained entry stays
// that long after the container exited, in maintenance.
func TestDrainBeforeTheContainerExits(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		e.daemon(t, []string{"consul://" + agent.Addr, etcdURI("/services")})
		p := freePort(t)
		e.run(t, "--name", "slow", "-p", pub(p, "80"), "-e", "STOP_DELAY=4s", imgSvc, "80")
		e.run(t, "--name", "lingers", "-p", "127.0.0.1::80", "-e", "SERVICE_DRAIN=3s", imgSvc, "80")
		slow, lingers := id("slow", "80"), id("lingers", "80")
		expectIDs(t, slow, lingers)
		expectKV(t, "/services/", map[string]string{
			"/services/svc/" + slow:    "127.0.0.1:" + strconv.Itoa(p),
			"/services/svc/" + lingers: e.port(t, "lingers", "80/tcp"),
		})

		stopped := make(chan error, 1)
		go func() { stopped <- exec.Command(e.cli, "stop", "-t", "20", "slow").Run() }()
		if !e.podman {
			eventually(t, 3*time.Second, func() error {
				if !maintenance(t, slow) {
					return fmt.Errorf("%s not in maintenance while its container stops", slow)
				}
				return nil
			})
			expectKVLacks(t, "/services/svc/"+slow)
			if s := e.cmd(t, "inspect", "-f", "{{.State.Status}}", "slow"); s != "running" {
				t.Fatalf("the container is %s: drain was not seen before it exited", s)
			}
		}
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		expectIDs(t, lingers)
		expectKVLacks(t, "/services/svc/"+slow)

		e.cmd(t, "stop", "lingers")
		exited := time.Now()
		// The engine answers the inspection only once the stop is over, so
		// the daemon marks the entry a few milliseconds after stop returns.
		eventually(t, time.Second, func() error {
			if !maintenance(t, lingers) {
				return fmt.Errorf("%s not in maintenance after its container exited (SERVICE_DRAIN=3s)", lingers)
			}
			return nil
		})
		expectIDs(t)
		if took := time.Since(exited); took < 2*time.Second {
			t.Errorf("deregistered %s after the container exited, want about 3s", took)
		} else {
			t.Logf("drained entry removed %s after the container exited", took)
		}
	})
}

// expectKVLacks waits until key is not in etcd.
func expectKVLacks(t *testing.T, key string) {
	t.Helper()
	eventually(t, 3*time.Second, func() error {
		got, err := kv(key)
		if err != nil {
			return err
		}
		if _, ok := got[key]; ok {
			return fmt.Errorf("%s still in etcd", key)
		}
		return nil
	})
}
