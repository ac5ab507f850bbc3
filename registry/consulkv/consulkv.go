// Package consulkv registers services in Consul's key-value store.
//
// URI: consulkv://host:port/prefix[?marks=path] (consulkv-tls:// for HTTPS).
// Entries live at <prefix>/<name>/<ID> = ip:port, registrator's layout.
// The daemon's lease is a Consul session with the delete behaviour, renewed
// while the daemon runs: entries are locked by it, so they disappear when
// the session ends (the daemon gone longer than the TTL, the node failing
// its health). Owner marks sit beside them as in package kv. Consul's
// environment (CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...) configures the client.
package consulkv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/consul"
	"github.com/registrator/registrator/registry/kv"
)

// DefaultMarks is where marks and session records live unless ?marks= says.
const DefaultMarks = "registrator"

// Consul's bounds on a session TTL.
const (
	minTTL = 10 * time.Second
	maxTTL = 24 * time.Hour
)

// Open parses a consulkv:// URI.
func Open(u *url.URL, o kv.Options) (*kv.Backend, error) {
	fail := func(format string, args ...any) (*kv.Backend, error) {
		return nil, fmt.Errorf("%s: %s: %s", u.Scheme, u.Redacted(), fmt.Sprintf(format, args...))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix == "" {
		return fail("no key prefix (e.g. %s://127.0.0.1:8500/services)", u.Scheme)
	}
	q := u.Query()
	marks := DefaultMarks
	if q.Has("marks") {
		marks = strings.Trim(q.Get("marks"), "/")
		if marks == "" {
			return fail("marks %q: must be a key path such as registrator", q.Get("marks"))
		}
		q.Del("marks")
	}
	for k := range q {
		return fail("unknown option %q", k)
	}
	if marks == prefix || strings.HasPrefix(marks, prefix+"/") {
		return fail("marks %q must not be inside the prefix %q", marks, prefix)
	}
	cfg, err := consul.ClientConfig(u)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return fail("%v", err)
	}
	consul.KeepConnections(cfg)
	if o.TTL > 0 {
		o.TTL = min(max(o.TTL, minTTL), maxTTL)
	}
	return kv.New(u.Scheme, &Store{client: c, addr: cfg.Address, probe: marks}, kv.Plain{Path: prefix}, marks, o), nil
}

// Store is Consul's KV API; leases are sessions.
type Store struct {
	client *api.Client
	addr   string
	probe  string // a key Ping reads
}

var _ kv.Store = (*Store)(nil)

// Client returns the Consul client.
func (s *Store) Client() *api.Client { return s.client }

func (s *Store) List(ctx context.Context, prefixes ...string) ([][]kv.Pair, error) {
	ops := make(api.TxnOps, len(prefixes))
	for i, p := range prefixes {
		ops[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: p}}
	}
	ok, resp, _, err := s.client.Txn().Txn(ops, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, txnError(resp)
	}
	out := make([][]kv.Pair, len(prefixes))
	for _, r := range resp.Results {
		if r.KV == nil {
			continue
		}
		// Results come in operation order; a tree's keys all start with its prefix.
		for i, p := range prefixes {
			if strings.HasPrefix(r.KV.Key, p) {
				out[i] = append(out[i], kv.Pair{Key: r.KV.Key, Value: r.KV.Value, Lease: r.KV.Session})
				break
			}
		}
	}
	return out, nil
}

func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	pair, _, err := s.client.KV().Get(key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || pair == nil {
		return nil, false, err
	}
	return pair.Value, true, nil
}

// Commit writes puts with the lock verb, so that the session holds them.
func (s *Store) Commit(ctx context.Context, lease string, ops []kv.Op) error {
	txn := make(api.TxnOps, len(ops))
	for i, op := range ops {
		switch {
		case op.Delete:
			txn[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: op.Key}}
		case lease != "":
			txn[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVLock, Key: op.Key, Value: op.Value, Session: lease}}
		default:
			txn[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: op.Key, Value: op.Value}}
		}
	}
	ok, resp, _, err := s.client.Txn().Txn(txn, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	if !ok {
		err := txnError(resp)
		if strings.Contains(err.Error(), "invalid session") {
			return fmt.Errorf("%w: %v", kv.ErrLeaseLost, err)
		}
		return err
	}
	return nil
}

func txnError(resp *api.TxnResponse) error {
	if resp == nil || len(resp.Errors) == 0 {
		return errors.New("transaction rolled back")
	}
	var errs []error
	for _, e := range resp.Errors {
		errs = append(errs, fmt.Errorf("operation %d: %s", e.OpIndex, e.What))
	}
	return errors.Join(errs...)
}

func (s *Store) Grant(ctx context.Context, ttl time.Duration) (string, error) {
	id, _, err := s.client.Session().Create(&api.SessionEntry{
		Name:      "registrator",
		TTL:       ttl.String(),
		Behavior:  api.SessionBehaviorDelete,
		LockDelay: time.Millisecond, // a new session may take the keys at once
	}, (&api.WriteOptions{}).WithContext(ctx))
	return id, err
}

func (s *Store) Alive(ctx context.Context, lease string) (bool, error) {
	e, _, err := s.client.Session().Info(lease, (&api.QueryOptions{}).WithContext(ctx))
	return e != nil, err
}

func (s *Store) KeepAlive(ctx context.Context, lease string, lost func()) error {
	e, _, err := s.client.Session().Info(lease, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	if e == nil {
		return fmt.Errorf("session %s: %w", lease, kv.ErrLeaseLost)
	}
	var once sync.Once
	end := func() { once.Do(lost) }
	go func() {
		err := s.client.Session().RenewPeriodic(e.TTL, lease, nil, ctx.Done())
		if ctx.Err() == nil && err != nil {
			end()
		}
	}()
	// The renewal notices a session that is gone only at its next renewal
	// (half the TTL); a blocking query on the session notices at once,
	// also when an agent that restarted empty answers again.
	go func() {
		var index uint64
		retry := bridge.ExponentialBackoff(100*time.Millisecond, 2*time.Second)
		for failures := 0; ctx.Err() == nil; {
			e, meta, err := s.client.Session().Info(lease, (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute}).WithContext(ctx))
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				failures++
				index = 0
				if retry.Sleep(ctx, failures) != nil {
					return
				}
			case e == nil:
				end()
				return
			default:
				failures, index = 0, meta.LastIndex
			}
		}
	}()
	return nil
}

// Ping reads a key through the agent, which checks the connection, the ACL
// token and that the cluster has a leader, and checks that the agent's node
// can take a session: Consul grants none while the node's serfHealth check
// is critical, as it is for seconds to half a minute after the node comes
// back from a partition, nor before the servers have registered the node
// and that check, seconds after an agent starts with no state; no entry
// can be written until then. The daemon probes a backend that stopped
// answering with Ping every second, and reconciles as soon as it succeeds
// (instead of after its backoff, 8 s and more by then).
func (s *Store) Ping(ctx context.Context) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if _, _, err := s.client.KV().Get(s.probe, q); err != nil {
		return fmt.Errorf("agent at %s: %w", s.addr, err)
	}
	node, err := s.client.Agent().NodeName()
	if err != nil {
		return fmt.Errorf("agent at %s: %w", s.addr, err)
	}
	checks, meta, err := s.client.Health().Node(node, q)
	if err != nil {
		return fmt.Errorf("agent at %s: health of node %s: %w", s.addr, node, err)
	}
	for _, c := range checks {
		if c.CheckID != "serfHealth" {
			continue
		}
		if c.Status == api.HealthCritical {
			return fmt.Errorf("agent at %s: node %s fails its serfHealth check: Consul grants no session until it passes", s.addr, node)
		}
		return nil
	}
	if meta.ResultsFilteredByACLs {
		return nil // a token without node:read cannot tell; the write will
	}
	return fmt.Errorf("agent at %s: the servers hold no serfHealth check for node %s yet (an agent started anew): Consul grants no session until they do", s.addr, node)
}

func (s *Store) Close() error { return nil }
