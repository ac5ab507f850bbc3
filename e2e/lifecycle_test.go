package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Stop, kill and remove, on Docker and on Podman: each container's entry
// goes; the one left running keeps its own.
func TestDeregisterOnStopKillAndRemove(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		e.daemon(t, []string{"consul://" + agent.Addr})
		for _, n := range []string{"stopped", "killed", "removed", "kept"} {
			e.run(t, "--name", n, "-p", "127.0.0.1::80", imgSvc, "80")
		}
		expectIDs(t, id("stopped", "80"), id("killed", "80"), id("removed", "80"), id("kept", "80"))
		e.cmd(t, "stop", "stopped")
		e.cmd(t, "kill", "killed")
		e.cmd(t, "rm", "-f", "removed")
		expectIDs(t, id("kept", "80"))
	})
}

func TestStartupSync(t *testing.T) {
	clean(t)
	p1, p2 := freePort(t), freePort(t)
	run(t, "--name", "early1", "-p", pub(p1, "80"), imgSvc, "80")
	run(t, "--name", "early2", "-p", pub(p2, "80"), "-e", "SERVICE_NAME=second", imgSvc, "80")
	startDaemon(t)
	expect(t, map[string]svc{
		id("early1", "80"): {Name: "svc", Address: "127.0.0.1", Port: p1},
		id("early2", "80"): {Name: "second", Address: "127.0.0.1", Port: p2},
	})
}

// Registrator lost events that arrived while it was busy: a burst of
// `docker rm -f` left stale entries behind.
func TestBurstOfTwenty(t *testing.T) {
	clean(t)
	startDaemon(t)
	const n = 20
	names := make([]string, n)
	want := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("burst-%02d", i)
		want[i] = id(names[i], "80")
	}
	parallel := func(args func(name string) []string) {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if out, err := exec.Command("docker", args(name)...).CombinedOutput(); err != nil {
					errs <- fmt.Errorf("%s: %v: %s", name, err, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	t.Cleanup(removeContainers)
	start := time.Now()
	parallel(func(name string) []string {
		return []string{"run", "-d", "--label", label + "=1", "--name", name, "-p", "127.0.0.1::80", imgSvc, "80"}
	})
	started := time.Since(start)
	expectIDs(t, want...)
	t.Logf("20 containers started in %s, all registered %s after the first docker run", started, time.Since(start))

	start = time.Now()
	parallel(func(name string) []string { return []string{"rm", "-f", name} })
	removed := time.Since(start)
	expectIDs(t)
	t.Logf("20 containers removed in %s, all deregistered %s after the first docker rm", removed, time.Since(start))
	if left := runningContainers(t); len(left) != 0 {
		t.Fatalf("containers still running: %v", left)
	}
}

func TestRenameReregistersUnderTheNewID(t *testing.T) {
	clean(t)
	startDaemon(t)
	p := freePort(t)
	run(t, "--name", "before", "-p", pub(p, "80"), imgSvc, "80")
	expectIDs(t, id("before", "80"))
	docker(t, "rename", "before", "after")
	expect(t, map[string]svc{id("after", "80"): {Name: "svc", Address: "127.0.0.1", Port: p}})
}

func TestDeregisterOnSuccess(t *testing.T) {
	clean(t)
	startDaemon(t, "-deregister", "on-success")
	run(t, "--name", "fails", "-p", "127.0.0.1::80", "-e", "EXIT_AFTER=3s", "-e", "EXIT_CODE=3", imgSvc, "80")
	run(t, "--name", "succeeds", "-p", "127.0.0.1::80", "-e", "EXIT_AFTER=3s", "-e", "EXIT_CODE=0", imgSvc, "80")
	run(t, "--name", "killed", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("fails", "80"), id("succeeds", "80"), id("killed", "80"))
	docker(t, "kill", "killed") // 137: a signal, not a failure
	eventually(t, settle, func() error {
		if s := docker(t, "inspect", "-f", "{{.State.Status}}", "fails"); s != "exited" {
			return fmt.Errorf("fails is %s", s)
		}
		return nil
	})
	expectIDs(t, id("fails", "80"))
	docker(t, "rm", "fails") // removed containers always deregister
	expectIDs(t)
}

// SERVICE_DEREGISTER beats -deregister for its container.
func TestPerContainerDeregisterPolicy(t *testing.T) {
	clean(t)
	startDaemon(t, "-deregister", "on-success")
	run(t, "--name", "never", "-p", "127.0.0.1::80", "-e", "SERVICE_DEREGISTER=never", "-e", "EXIT_AFTER=2s", "-e", "EXIT_CODE=0", imgSvc, "80")
	run(t, "--name", "always", "-p", "127.0.0.1::80", "-e", "SERVICE_DEREGISTER=always", "-e", "EXIT_AFTER=2s", "-e", "EXIT_CODE=3", imgSvc, "80")
	run(t, "--name", "default", "-p", "127.0.0.1::80", "-e", "EXIT_AFTER=2s", "-e", "EXIT_CODE=3", imgSvc, "80")
	expectIDs(t, id("never", "80"), id("always", "80"), id("default", "80"))
	eventually(t, settle, func() error {
		for _, n := range []string{"never", "always", "default"} {
			if s := docker(t, "inspect", "-f", "{{.State.Status}}", n); s != "exited" {
				return fmt.Errorf("%s is %s", n, s)
			}
		}
		return nil
	})
	expectIDs(t, id("never", "80"), id("default", "80"))
	docker(t, "rm", "never", "default") // removal always deregisters
	expectIDs(t)
}

// Entries without our owner mark, or with another owner, are never touched;
// -cleanup also removes entries registrator left for this host.
func TestForeignEntriesAndCleanup(t *testing.T) {
	for _, cleanup := range []bool{false, true} {
		t.Run("cleanup="+strconv.FormatBool(cleanup), func(t *testing.T) {
			clean(t)
			a := agent.Client().Agent()
			for _, reg := range []*api.AgentServiceRegistration{
				{ID: "someone-else", Name: "foreign", Port: 1},
				{ID: id("ghost", "80"), Name: "svc", Port: 2},                                           // registrator's, container gone
				{ID: "other-host:gone:80", Name: "svc", Port: 3},                                        // another host's
				{ID: "theirs", Name: "svc", Port: 4, Meta: map[string]string{"registrator-owner": "x"}}, // another registrator's
			} {
				if err := a.ServiceRegister(reg); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{}
			if cleanup {
				args = append(args, "-cleanup")
			}
			startDaemon(t, args...)
			p := freePort(t)
			run(t, "--name", "live", "-p", pub(p, "80"), imgSvc, "80")
			expectIDs(t, id("live", "80"), "theirs")
			eventually(t, settle, func() error {
				all, err := a.Services()
				if err != nil {
					return err
				}
				_, ghost := all[id("ghost", "80")]
				for _, keep := range []string{"someone-else", "other-host:gone:80", "theirs"} {
					if _, ok := all[keep]; !ok {
						return fmt.Errorf("%s was removed", keep)
					}
				}
				if ghost == cleanup {
					return fmt.Errorf("with cleanup=%v the dangling entry is present=%v", cleanup, ghost)
				}
				return nil
			})
		})
	}
}

func TestSIGTERMExitsZeroAndLeavesRegistrations(t *testing.T) {
	clean(t)
	d := startDaemon(t)
	run(t, "--name", "stays", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("stays", "80"))
	d.killed = true // stopped here, not by the cleanup
	start := time.Now()
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("exited 0 %s after SIGTERM", time.Since(start))
	expectIDs(t, id("stays", "80"))
}

func TestMisconfigurationExitsTwoWithOneLine(t *testing.T) {
	closed := freePort(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-bogus", "consul://127.0.0.1:1"}, "flag provided but not defined: -bogus"},
		{"bad deregister", []string{"-deregister", "sometimes", "consul://127.0.0.1:1"}, "-deregister"},
		{"no URI", nil, "missing registry URI"},
		{"unknown scheme", []string{"nosuch://127.0.0.1:1"}, `unknown registry scheme "nosuch"`},
		{"ttl not above refresh", []string{"-ttl", "10", "-ttl-refresh", "20", "consul://127.0.0.1:1"}, "-ttl must be greater than -ttl-refresh"},
		{"unreachable registry", []string{"-retry-attempts", "2", "-retry-interval", "100", "consul://127.0.0.1:" + strconv.Itoa(closed)}, "cannot reach the registry after 3 attempt(s)"},
		{"unreachable etcd", []string{"-retry-attempts", "1", "-retry-interval", "100", "etcd://127.0.0.1:" + strconv.Itoa(closed) + "/x"}, "cannot reach the registry after 2 attempt(s): etcd: http://127.0.0.1:" + strconv.Itoa(closed) + ": dial tcp"},
		{"one of two registries unreachable", []string{"consul://" + agent.Addr, "etcd://127.0.0.1:" + strconv.Itoa(closed) + "/x"}, "etcd://127.0.0.1:" + strconv.Itoa(closed) + "/x: cannot reach the registry"},
		{"etcd password not shown", []string{"etcd://user:s3cret@127.0.0.1:1/x?nope=1"}, `etcd: etcd://127.0.0.1:1/x: unknown option "nope"`},
		{"skydns2 without a domain", []string{"skydns2://127.0.0.1:1"}, "no domain"},
		{"-ip names no interface", []string{"-ip", "nosuch0", "consul://127.0.0.1:1"}, `-ip "nosuch0": no network interface of that name`},
		{"-container-filter status", []string{"-container-filter", "status=running", "consul://127.0.0.1:1"}, "status makes no sense"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, daemonBin, tc.args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit %d (%v), want 2; stderr:\n%s", code, err, stderr.String())
			}
			lines := slices.DeleteFunc(strings.Split(stderr.String(), "\n"), func(s string) bool { return s == "" || strings.Contains(s, "level=warn") })
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("stderr %q, want one error line containing %q", stderr.String(), tc.want)
			}
		})
	}
}

func TestBadMetadataWarnsAndRegistersTheRest(t *testing.T) {
	clean(t)
	d := startDaemon(t)
	run(t, "--name", "odd", "-p", "127.0.0.1::80", "-e", "SERVICE_80_CHECK_INTERVAL=banana", "-e", "SERVICE_CHECK_HTTP=/health", imgSvc, "80")
	run(t, "--name", "fine", "-p", "127.0.0.1::80", imgSvc, "80")
	expectIDs(t, id("odd", "80"), id("fine", "80"))
	d.warned(t, "odd", "SERVICE_80_CHECK_INTERVAL")
	if c := checks(t, id("odd", "80")); len(c) != 1 {
		t.Errorf("checks %v, want the HTTP check with the default interval", c)
	}
}

// An unchanged service is never written again: the catalog index of the
// entry stays put through many resyncs and a daemon restart.
func TestNoRewritesInSteadyState(t *testing.T) {
	clean(t)
	d := startDaemon(t, "-resync", "1")
	run(t, "--name", "steady", "-p", "127.0.0.1::80", "-e", "SERVICE_CHECK_TTL=1h", imgSvc, "80")
	expectIDs(t, id("steady", "80"))
	var before uint64
	eventually(t, settle, func() error {
		before = modifyIndex(t, "svc", id("steady", "80"))
		return nil
	})
	d.waitPasses(t, 3)
	d.killed = true
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d2 := startDaemon(t, "-resync", "1")
	d2.waitPasses(t, 2)
	if after := modifyIndex(t, "svc", id("steady", "80")); after != before {
		t.Fatalf("catalog ModifyIndex went from %d to %d: the entry was rewritten", before, after)
	}
	if n := strings.Count(d2.out.String(), "action=register"); n != 0 {
		t.Fatalf("restarted daemon registered %d services, want 0", n)
	}
}
