package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"
)

// keyWatch records every value a few keys held, in etcd (a watch), Consul
// KV (blocking queries) and ZooKeeper (data watches), from before the test
// acts until it ends. A key that is absent is recorded as "<absent>".
type keyWatch struct {
	mu   sync.Mutex
	seen map[string][]string // key → its values in order, repeats left out
}

const absent = "<absent>"

func (w *keyWatch) note(key, value string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v := w.seen[key]; len(v) == 0 || v[len(v)-1] != value {
		w.seen[key] = append(v, value)
	}
}

func (w *keyWatch) values(key string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string{}, w.seen[key]...)
}

func watchKeys(t *testing.T, etcdKeys, consulKeys, zkNodes []string) *keyWatch {
	t.Helper()
	w := &keyWatch{seen: map[string][]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, key := range etcdKeys {
		w.note(key, absent)
		etcdWatch(t, key, false, func(key, value string, deleted bool) {
			if deleted {
				value = absent
			}
			w.note(key, value)
		})
	}
	for _, key := range consulKeys {
		consulWatch(t, func(ctx context.Context, index uint64) (uint64, error) {
			p, meta, err := agent.Client().KV().Get(key, (&api.QueryOptions{WaitIndex: index, WaitTime: 10 * time.Second}).WithContext(ctx))
			if err != nil {
				return index, err
			}
			if p == nil {
				w.note(key, absent)
			} else {
				w.note(key, string(p.Value))
			}
			return meta.LastIndex, nil
		})
	}
	for _, node := range zkNodes {
		started := make(chan struct{})
		wg.Go(func() {
			first := true
			for ctx.Err() == nil {
				data, _, ev, err := zkSrv.Conn().GetW(node)
				if err == zk.ErrNoNode {
					w.note(node, absent)
					var ok bool
					ok, _, ev, err = zkSrv.Conn().ExistsW(node)
					if ok {
						continue // created meanwhile: read it
					}
				} else if err == nil {
					w.note(node, string(data))
				}
				if first {
					close(started)
					first = false
				}
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				select {
				case <-ctx.Done():
				case <-ev:
				}
			}
		})
		<-started
	}
	return w
}

// Host B, a host of the bed with an engine of its own, registers web
// under SERVICE_ID=shared; then a container on this host (A) claims the
// same ID and name (and, for ZooKeeper, whose layout keys entries by
// address, B's address and port: both daemons register published ports
// at -ip 192.0.2.10). In etcd, Consul KV, skydns2 and ZooKeeper, B's
// entries are never written over, not for a moment, nor removed when A's
// container goes; A's daemon logs an error naming both hosts, once per
// backend.
func TestAnotherHostsEntryIsNotClaimed(t *testing.T) {
	clean(t)
	if _, err := agent.Client().KV().DeleteTree("claim/", nil); err != nil {
		t.Fatal(err)
	}
	uris := []string{etcdURI("/claim"), "consulkv://" + agent.Addr + "/claim", "skydns2://" + etcdSrv.Addr + "/skydns.local", "zookeeper://" + zkSrv.Addr + "/claim"}
	const addr = "192.0.2.10" // TEST-NET-1: only written to the registries, never reached
	p := freePort(t)
	hostPort := net.JoinHostPort(addr, strconv.Itoa(p))
	keys := struct{ etcd, skydns, consul, zk string }{"/claim/web/shared", "/skydns/local/skydns/web/shared", "claim/web/shared", "/claim/web/" + hostPort}
	watch := watchKeys(t, []string{keys.etcd, keys.skydns}, []string{keys.consul}, []string{keys.zk})

	b := bedHost(t, "claim-b")
	db := startHostDaemon(t, b, uris, "-ip", addr, "-resync", "1")
	hostDocker(t, b, "run", "-d", "--name", "web", "-p", pub(p, "80"), "-e", "SERVICE_ID=shared", "-e", "SERVICE_NAME=web", imgSvc, "80")
	eventually(t, settle, func() error {
		for _, key := range []string{keys.etcd, keys.skydns, keys.consul, keys.zk} {
			if v := watch.values(key); len(v) < 2 {
				return fmt.Errorf("host B has not written %s yet", key)
			}
		}
		return nil
	})
	db.waitPasses(t, 2)

	da := startDaemonURIs(t, uris, "-ip", addr, "-resync", "1")
	run(t, "--name", "a-claim", "-p", pub(p, "80"), "-e", "SERVICE_ID=shared", "-e", "SERVICE_NAME=web", imgSvc, "80")
	for _, backend := range []string{"etcd://", "consulkv://", "skydns2://", "zookeeper://"} {
		eventually(t, settle, func() error {
			if da.lines("level=error", "a-claim", "is held by host ", "@claim-b", "this host is ", "@"+host, backend) == 0 {
				return fmt.Errorf("this host's daemon has logged no error naming both hosts for %s", backend)
			}
			return nil
		})
	}
	da.waitPasses(t, 3)
	if n := da.lines("held by"); n != len(uris) {
		t.Errorf("this host's daemon logged %d lines about held entries after 3 passes, want %d (one per backend)", n, len(uris))
	}
	docker(t, "rm", "-f", "a-claim")
	da.waitPasses(t, 3)

	for _, key := range []string{keys.etcd, keys.skydns, keys.consul, keys.zk} {
		if v := watch.values(key); len(v) != 2 || v[0] != absent {
			t.Errorf("%s held %q in turn; want it absent, then host B's value, and nothing else", key, v)
		}
	}
}
