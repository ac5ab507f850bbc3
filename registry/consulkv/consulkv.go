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
	"maps"
	"net/url"
	"slices"
	"strconv"
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
		return nil, fmt.Errorf("%s: %s: %s", u.Scheme, u.Scheme+"://"+u.Host+u.Path, fmt.Sprintf(format, args...)) // without user information
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
	if len(q) > 0 { // the first in order, so that the message does not depend on map order
		return fail("unknown option %q", slices.Sorted(maps.Keys(q))[0])
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
		if r == nil || r.KV == nil {
			continue
		}
		// Results come in operation order; a tree's keys all start with its prefix.
		for i, p := range prefixes {
			if strings.HasPrefix(r.KV.Key, p) {
				out[i] = append(out[i], pairOf(r.KV))
				break
			}
		}
	}
	return out, nil
}

// pairOf is a key as Consul holds it: the session that holds it is its
// lease, its modify index its revision.
func pairOf(p *api.KVPair) kv.Pair {
	return kv.Pair{Key: p.Key, Value: p.Value, Lease: p.Session, Rev: strconv.FormatUint(p.ModifyIndex, 10)}
}

func (s *Store) Get(ctx context.Context, key string) (kv.Pair, bool, error) {
	pair, _, err := s.client.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil || pair == nil {
		return kv.Pair{}, false, err
	}
	return pairOf(pair), true, nil
}

// Commit writes puts with the lock verb, so that the session holds them;
// the ops' conditions go first, as checks of the same transaction.
func (s *Store) Commit(ctx context.Context, lease string, ops []kv.Op) error {
	var txn api.TxnOps
	for _, op := range ops {
		switch {
		case op.If == nil:
		case op.If.Absent:
			txn = append(txn, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: op.Key}})
		default:
			index, err := strconv.ParseUint(op.If.Rev, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: not a modify index %q", op.Key, op.If.Rev)
			}
			txn = append(txn, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: op.Key, Index: index}})
		}
	}
	checks := len(txn)
	for _, op := range ops {
		switch {
		case op.Delete:
			txn = append(txn, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: op.Key}})
		case lease != "":
			txn = append(txn, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVLock, Key: op.Key, Value: op.Value, Session: lease}})
		default:
			txn = append(txn, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: op.Key, Value: op.Value}})
		}
	}
	ok, resp, _, err := s.client.Txn().Txn(txn, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	if !ok {
		if resp != nil && slices.ContainsFunc(resp.Errors, func(e *api.TxnError) bool { return e != nil && e.OpIndex < checks }) {
			return kv.ErrConflict
		}
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
		if e != nil {
			errs = append(errs, fmt.Errorf("operation %d: %s", e.OpIndex, e.What))
		}
	}
	if len(errs) == 0 {
		return errors.New("transaction rolled back")
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
	ttl, err := time.ParseDuration(e.TTL)
	if err != nil || ttl < minTTL {
		ttl = minTTL // renewed too often rather than too late
	}
	var once sync.Once
	end := func() { once.Do(lost) }
	go func() {
		if s.renew(ctx, lease, ttl) != nil {
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
			qctx, cancel := context.WithTimeout(ctx, consul.BlockingTimeout(consul.BlockingWait))
			e, meta, err := s.client.Session().Info(lease, (&api.QueryOptions{WaitIndex: index, WaitTime: consul.BlockingWait}).WithContext(qctx))
			cancel()
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

// renewTimeout bounds one renewal of the session.
const renewTimeout = 5 * time.Second

// renew keeps the session alive until ctx is done, as the client
// library's RenewPeriodic does, but with every request bounded (the
// library's wait for an answer without a deadline, and an agent that
// accepts the connection and never answers held it for ever, the session
// expiring unnoticed). It renews every half TTL, every second after a
// failure; it returns ErrLeaseLost when the agent no longer knows the
// session, the last error when no renewal succeeded for a whole TTL, and
// nil once ctx is done, after asking the agent, briefly, to destroy the
// session (as RenewPeriodic did).
func (s *Store) renew(ctx context.Context, lease string, ttl time.Duration) error {
	wait := ttl / 2
	last := time.Now()
	lastErr := errors.New("no renewal answered")
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
			_, _ = s.client.Session().Destroy(lease, (&api.WriteOptions{}).WithContext(dctx))
			cancel()
			return nil
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, min(renewTimeout, ttl/2))
		e, _, err := s.client.Session().Renew(lease, (&api.WriteOptions{}).WithContext(rctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			continue // destroyed above
		case err != nil:
			lastErr, wait = err, time.Second
			if time.Since(last) > ttl {
				return lastErr
			}
		case e == nil:
			return fmt.Errorf("session %s: %w", lease, kv.ErrLeaseLost)
		default:
			if t, err := time.ParseDuration(e.TTL); err == nil && t >= minTTL {
				ttl = t // the agent may change it
			}
			wait, last = ttl/2, time.Now()
		}
	}
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
	node, err := s.nodeName(q)
	if err != nil {
		return fmt.Errorf("agent at %s: %w", s.addr, err)
	}
	checks, meta, err := s.client.Health().Node(node, q)
	if err != nil {
		return fmt.Errorf("agent at %s: health of node %s: %w", s.addr, node, err)
	}
	for _, c := range checks {
		if c == nil || c.CheckID != "serfHealth" {
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

// agentSelf is what Ping reads of the agent's /v1/agent/self.
type agentSelf struct {
	Config struct {
		NodeName string
	}
}

// nodeName is the name of the agent's node. It reads /v1/agent/self
// itself: the client library's Agent().NodeName() takes no context, and
// panics on an answer without Config.NodeName (`{"Config":{}}`).
func (s *Store) nodeName(q *api.QueryOptions) (string, error) {
	var self agentSelf
	if _, err := s.client.Raw().Query("/v1/agent/self", &self, q); err != nil {
		return "", fmt.Errorf("read /v1/agent/self: %w", err)
	}
	return self.node()
}

// node checks that the answer names the node.
func (a agentSelf) node() (string, error) {
	if a.Config.NodeName == "" {
		return "", errors.New("/v1/agent/self names no node (Config.NodeName)")
	}
	return a.Config.NodeName, nil
}

func (s *Store) Close() error { return nil }
