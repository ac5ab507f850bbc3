package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/registrator/registrator/internal/consultest"
	"github.com/registrator/registrator/internal/etcdtest"
)

// target is one backend under measurement.
type target struct {
	name string
	uri  string
	// seen returns when the service with this ID first shows in the
	// backend; it is called before the container is started.
	seen  func(ctx context.Context, id string) (<-chan time.Time, error)
	count func(ctx context.Context) (int, error)
	// held is how many entries the backend holds in all, asked for at
	// little cost to it; nil when count is that already.
	held  func(ctx context.Context) (int, error)
	reset func(ctx context.Context) error
	// register writes service i the way the daemon would, by a plain
	// client.
	register func(ctx context.Context, i int) error
	stop     func()

	// Over the daemons of one run (guarded by bench.mu), in MB: the peak
	// VmHWM, and the peak of the sampled RssAnon.
	peak, anon float64
}

// startTarget starts a backend's server on loopback (consul, etcd).
func startTarget(name string) (*target, error) {
	switch name {
	case "consul":
		a, err := consultest.Start()
		if err != nil {
			return nil, err
		}
		return &target{
			name: name, uri: "consul://" + a.Addr,
			// A blocking query of the catalog, which the agent's
			// anti-entropy writes right after the registration: what DNS
			// and the health API read. Polling the agent every
			// millisecond instead loaded both cores so that the bench
			// itself stalled for up to 3 s (its heartbeat), and slowed the
			// agent's answers to the daemon.
			seen: func(ctx context.Context, id string) (<-chan time.Time, error) {
				return catalogSeen(ctx, a.Client().Catalog(), "svc", id)
			},
			count: func(ctx context.Context) (int, error) {
				all, err := a.Client().Agent().Services()
				n := 0
				for _, s := range all {
					if s.Meta["registrator-owner"] != "" {
						n++
					}
				}
				return n, err
			},
			held:  func(context.Context) (int, error) { return a.Held() },
			reset: a.Empty,
			register: func(ctx context.Context, i int) error {
				return a.Client().Agent().ServiceRegisterOpts(&api.AgentServiceRegistration{
					ID: fmt.Sprintf("alone:%d:80", i), Name: "svc", Port: 80, Address: "172.17.0.2",
					Meta: map[string]string{"registrator-owner": "bench", "registrator-container": strconv.Itoa(i), "registrator-revision": "0123456789abcdef01234567"},
				}, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
			},
			stop: a.Stop,
		}, nil
	case "etcd":
		s, err := etcdtest.Start()
		if err != nil {
			return nil, err
		}
		return &target{
			name: name, uri: "etcd://" + s.Addr + "/services",
			// A watch: told of the write as etcd applies it, and no load
			// of polling on the server while it is measured.
			seen: func(ctx context.Context, id string) (<-chan time.Time, error) {
				w := s.Client().Watch(ctx, "/services/svc/"+id, clientv3.WithCreatedNotify())
				if r, ok := <-w; !ok || !r.Created {
					return nil, fmt.Errorf("watch %s: %v", id, r.Err())
				}
				seen := make(chan time.Time, 1)
				go func() {
					defer close(seen)
					for r := range w {
						for _, e := range r.Events {
							if e.Type == clientv3.EventTypePut {
								seen <- time.Now()
								return
							}
						}
					}
				}()
				return seen, nil
			},
			count: func(ctx context.Context) (int, error) {
				resp, err := s.Client().Get(ctx, "/services/", clientv3.WithPrefix(), clientv3.WithCountOnly())
				if err != nil {
					return 0, err
				}
				return int(resp.Count), nil
			},
			reset: s.Reset,
			register: func(ctx context.Context, i int) error {
				_, err := s.Client().Put(ctx, fmt.Sprintf("/services/svc/alone:%d:80", i),
					`{"id":"alone:`+strconv.Itoa(i)+`:80","name":"svc","address":"172.17.0.2","port":80,"owner":"bench","container":"`+strconv.Itoa(i)+`","revision":"0123456789abcdef01234567"}`)
				return err
			},
			stop: s.Close,
		}, nil
	}
	return nil, fmt.Errorf("unknown backend %q (consul, etcd)", name)
}

// waitWritten waits until the backend has accepted n writes of action
// from the daemon, polling the daemon's counters every 20 ms, and not the
// backend: listing 500 services of a Consul agent every few milliseconds
// kept the agent encoding lists instead of taking registrations, and
// slowed what was measured (a scrape of the daemon is cheaper, but not
// free either, hence 20 ms). waitCount checks the backend afterwards.
func (d *daemon) waitWritten(ctx context.Context, action string, n int) error {
	return pollUntil(ctx, 20*time.Millisecond, 5*time.Minute, func() (bool, error) {
		w, err := d.written(action)
		return w >= n, err
	})
}

// waitHeld waits until the backend holds at least n entries, asking it
// every 20 ms how many it holds, which costs it next to nothing, and the
// daemon nothing (a scrape of the daemon every 20 ms was an eighth of its
// CPU in a sync of 1000). waitCount checks the entries afterwards.
func (t *target) waitHeld(ctx context.Context, n int) error {
	held := t.held
	if held == nil {
		held = t.count
	}
	return pollUntil(ctx, 20*time.Millisecond, 5*time.Minute, func() (bool, error) {
		c, err := held(ctx)
		return c >= n, err
	})
}

// waitCount waits until the backend holds n entries of ours.
func (t *target) waitCount(ctx context.Context, n int) error {
	return pollUntil(ctx, 50*time.Millisecond, 5*time.Minute, func() (bool, error) {
		c, err := t.count(ctx)
		return c == n, err
	})
}

// catalogSeen returns when Consul's catalog first lists service name with
// ID id: a blocking query of the catalog, which the agent's anti-entropy
// writes right after the registration (what DNS and the health API read).
func catalogSeen(ctx context.Context, cat *api.Catalog, name, id string) (<-chan time.Time, error) {
	_, meta, err := cat.Service(name, "", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	seen := make(chan time.Time, 1)
	go func() {
		defer close(seen)
		idx := meta.LastIndex
		for ctx.Err() == nil {
			list, meta, err := cat.Service(name, "", (&api.QueryOptions{WaitIndex: idx, WaitTime: 30 * time.Second}).WithContext(ctx))
			if err != nil {
				time.Sleep(time.Millisecond)
				continue
			}
			now := time.Now()
			for _, e := range list {
				if e.ServiceID == id {
					seen <- now
					return
				}
			}
			idx = meta.LastIndex
		}
	}()
	return seen, nil
}
