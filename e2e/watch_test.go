package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The tests that assert that something never happened, not even for a
// moment, watch the registries instead of sampling them: every change is
// seen, from before the test acts until it ends.

// consulWatch runs query, a blocking query of Consul's, again and again
// with the index of its last answer until the test ends; it returns once
// query has answered once. query returns the index of its answer.
func consulWatch(t *testing.T, query func(ctx context.Context, index uint64) (uint64, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	answered := make(chan struct{})
	wg.Go(func() {
		var index uint64
		first := true
		for ctx.Err() == nil {
			next, err := query(ctx, index)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			index = next
			if first {
				close(answered)
				first = false
			}
		}
	})
	<-answered
}

// etcdWatch calls seen with the key (with prefix, each key under it) as
// read now, then with every change until the test ends (deleted for a
// delete); it returns once the read is done.
func etcdWatch(t *testing.T, key string, prefix bool, seen func(key, value string, deleted bool)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var opts []clientv3.OpOption
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	resp, err := etcdSrv.Client().Get(ctx, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		seen(string(kv.Key), string(kv.Value), false)
	}
	ch := etcdSrv.Client().Watch(ctx, key, append(opts, clientv3.WithRev(resp.Header.Revision+1))...)
	wg.Go(func() {
		for r := range ch {
			for _, e := range r.Events {
				seen(string(e.Kv.Key), string(e.Kv.Value), e.Type == clientv3.EventTypeDelete)
			}
		}
	})
}
