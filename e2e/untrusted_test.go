package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// registryWatch records every service name Consul's catalog held and
// every etcd key written under a prefix while a test runs: blocking
// queries and a watch, so that an entry that came and went is seen too.
type registryWatch struct {
	mu    sync.Mutex
	names map[string]bool // every service name the catalog held
	keys  map[string]bool // every key put under the prefix
}

func watchRegistries(t *testing.T, prefix string) *registryWatch {
	t.Helper()
	w := &registryWatch{names: map[string]bool{}, keys: map[string]bool{}}
	consulWatch(t, func(ctx context.Context, index uint64) (uint64, error) {
		m, meta, err := agent.Client().Catalog().Services((&api.QueryOptions{WaitIndex: index, WaitTime: 10 * time.Second}).WithContext(ctx))
		if err != nil {
			return index, err
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for name := range m {
			w.names[name] = true
		}
		return meta.LastIndex, nil
	})
	etcdWatch(t, prefix, true, func(key, _ string, _ bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.keys[key] = true
	})
	return w
}

// only fails the test if the watch saw a service name or a key that is
// not among the allowed ones.
func (w *registryWatch) only(t *testing.T, names, keys []string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for n := range w.names {
		if !slices.Contains(names, n) {
			t.Errorf("Consul's catalog held service %q at some moment; allowed: %q", n, names)
		}
	}
	for k := range w.keys {
		if !slices.Contains(keys, k) {
			t.Errorf("etcd held key %q at some moment; allowed: %q", k, keys)
		}
	}
}

// Metadata that asks for what a container's creator must not get: a script
// check, an ID or a name that walks out of its place, an address label
// that aims the agent's checks at the cloud's metadata service, a method
// outside the allowlist. None of it reaches a registry; the ordinary
// containers beside them are registered as usual, and each refusal is a
// warning naming the key and never its value.
func TestUntrustedMetadata(t *testing.T) {
	clean(t)
	const prefix = "/untrusted/"
	watch := watchRegistries(t, prefix)
	d := startDaemonURIs(t, []string{"consul://" + agent.Addr, etcdURI("/untrusted")}, "-useIpFromLabel", "e2e.address", "-resync", "1")

	run(t, "--name", "scripted", "-p", "127.0.0.1::80", "-e", "SERVICE_NAME=scripted", "-e", "SERVICE_CHECK_SCRIPT=touch /tmp/owned", imgSvc, "80")
	run(t, "--name", "slash-id", "-p", "127.0.0.1::80", "-e", "SERVICE_NAME=slashid", "-e", "SERVICE_ID=../../agent/self", imgSvc, "80")
	run(t, "--name", "dots", "-p", "127.0.0.1::80", "-e", "SERVICE_NAME=..", imgSvc, "80")
	run(t, "--name", "control", "-p", "127.0.0.1::80", "-e", "SERVICE_NAME=bad\x1b[2Jname", imgSvc, "80")
	run(t, "--name", "metadata-addr", "-p", "127.0.0.1::80", "-l", "e2e.address=169.254.169.254", "-e", "SERVICE_CHECK_HTTP=/latest/meta-data", imgSvc, "80")
	run(t, "--name", "trace", "-p", "127.0.0.1::80", "-e", "SERVICE_CHECK_HTTP=/", "-e", "SERVICE_CHECK_HTTP_METHOD=TRACE",
		"-e", `SERVICE_CHECK_HEADER={"Authorization": "Bearer s3cr3t-token"}`, imgSvc, "80")
	run(t, "--name", "fine", "-p", "127.0.0.1::80", imgSvc, "80")
	ok := []string{id("metadata-addr", "80"), id("trace", "80"), id("fine", "80")}
	expectIDs(t, ok...)
	d.waitPasses(t, 2)

	got, err := registered()
	if err != nil {
		t.Fatal(err)
	}
	if a := got[id("metadata-addr", "80")].Address; a != "127.0.0.1" {
		t.Errorf("metadata-addr registered at %q, want the default rule's 127.0.0.1", a)
	}
	for cid, c := range checks(t, id("metadata-addr", "80")) {
		if c.Definition.HTTP != "" && c.Definition.HTTP[:len("http://127.0.0.1:")] != "http://127.0.0.1:" {
			t.Errorf("check %s probes %s", cid, c.Definition.HTTP)
		}
	}
	for cid, c := range checks(t, id("trace", "80")) {
		if c.Definition.Method != "" && c.Definition.Method != "GET" {
			t.Errorf("check %s uses method %s, want GET", cid, c.Definition.Method)
		}
	}

	d.warned(t, "scripted", "SERVICE_CHECK_SCRIPT", "-allow-script-checks")
	d.warned(t, "slash-id", "SERVICE_ID", "not a valid service ID")
	d.warned(t, "dots", "SERVICE_NAME", "not a valid service name")
	d.warned(t, "control", "SERVICE_NAME", "not a valid service name")
	d.warned(t, "metadata-addr", "-useIpFromLabel", "e2e.address")
	d.warned(t, "trace", "SERVICE_CHECK_HTTP_METHOD")
	for _, secret := range []string{"s3cr3t", "agent/self", "169.254", "touch /tmp", "\x1b"} {
		if n := d.lines(secret); n > 0 {
			t.Errorf("the daemon logged %d line(s) holding %q, a value of the containers' metadata", n, secret)
		}
	}

	keys := []string{}
	for _, cid := range ok {
		keys = append(keys, prefix+"svc/"+cid)
	}
	watch.only(t, []string{"consul", "svc"}, keys)
}

// A container that exposes 5000 ports on the host's network asks for 5000
// services: it gets -max-services of them (256 by default), with one
// warning, and an ordinary container started right after it is registered
// about as fast as one started alone.
func TestManyPortsBesideAnOrdinaryContainer(t *testing.T) {
	clean(t)
	d := startDaemon(t)
	registeredAfter := func(name string) time.Duration {
		t.Helper()
		began := time.Now()
		run(t, "--name", name, "-p", "127.0.0.1::80", imgSvc, "80")
		eventually(t, settle, func() error {
			got, err := registered()
			if err != nil {
				return err
			}
			if _, ok := got[id(name, "80")]; !ok {
				return fmt.Errorf("%s is not registered", name)
			}
			return nil
		})
		return time.Since(began)
	}
	alone := registeredAfter("alone")

	p := freePort(t)
	run(t, "--name", "many-ports", "--net", "host", "--expose", "1000-5999", imgSvc, strconv.Itoa(p))
	beside := registeredAfter("beside")

	eventually(t, settle, func() error {
		got, err := registered()
		if err != nil {
			return err
		}
		n := 0
		for _, s := range got {
			if s.Name != "svc" {
				n++
			}
		}
		if n != 256 {
			return fmt.Errorf("many-ports has %d services, want 256", n)
		}
		return nil
	})
	d.warned(t, "many-ports", "4744 more port(s) not registered", "-max-services (256)")
	t.Logf("an ordinary container registered %s after its docker run alone, %s beside one exposing 5000 ports", alone.Round(time.Millisecond), beside.Round(time.Millisecond))
	if limit := 3*alone + time.Second; beside > limit {
		t.Errorf("beside the container with 5000 ports an ordinary one took %s to register, alone %s: want at most %s", beside, alone, limit)
	}
}
