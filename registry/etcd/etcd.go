// Package etcd registers services in etcd through its v3 API.
//
// URI: etcd://[user:password@]host:port[,host:port...]/prefix[?options], or
// etcd+tls:// for TLS. Entries live at <prefix>/<name>/<ID> with the value
// ip:port (registrator's layout), or a JSON object with ?format=json, on
// the daemon's lease, with owner marks beside them (see package kv).
package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/registrator/registrator/registry/kv"
)

// DefaultMarks is where marks and lease records live unless ?marks= says.
const DefaultMarks = "/registrator"

// minTTL is the shortest lease etcd's keep-alive handles well.
const minTTL = 5 * time.Second

// Open parses an etcd:// or etcd+tls:// URI with the plain or JSON layout.
func Open(u *url.URL, o kv.Options) (*kv.Backend, error) {
	return OpenLayout(u, o, func(path string, q url.Values) (kv.Layout, error) {
		format := q.Get("format")
		q.Del("format")
		switch format {
		case "", "plain":
			return kv.Plain{Path: path}, nil
		case "json":
			return kv.JSON{Path: path}, nil
		}
		return nil, fmt.Errorf("format %q: must be plain or json", format)
	})
}

// OpenLayout parses the connection part of an etcd URI (hosts, user, TLS
// and marks options) and hands the path and the remaining query options to
// layout, which must remove the options it uses.
func OpenLayout(u *url.URL, o kv.Options, layout func(path string, q url.Values) (kv.Layout, error)) (*kv.Backend, error) {
	shown := u.Scheme + "://" + u.Host + u.Path // registry.Display's form (that package imports this one): no user information
	fail := func(format string, args ...any) (*kv.Backend, error) {
		return nil, fmt.Errorf("%s: %s: %s", u.Scheme, shown, fmt.Sprintf(format, args...))
	}
	if u.Host == "" {
		return fail("no host (e.g. %s://127.0.0.1:2379/path)", u.Scheme)
	}
	q := u.Query()
	marks := DefaultMarks
	if q.Has("marks") {
		marks = strings.TrimRight(q.Get("marks"), "/")
		if !strings.HasPrefix(marks, "/") || len(marks) < 2 {
			return fail("marks %q: must be an absolute key path such as /registrator", q.Get("marks"))
		}
		q.Del("marks")
	}
	tlsInfo := transport.TLSInfo{TrustedCAFile: q.Get("ca"), CertFile: q.Get("cert"), KeyFile: q.Get("key")}
	secure := strings.HasSuffix(u.Scheme, "+tls") || !tlsInfo.Empty() || tlsInfo.TrustedCAFile != ""
	if (tlsInfo.CertFile == "") != (tlsInfo.KeyFile == "") {
		return fail("cert and key must be given together")
	}
	q.Del("ca")
	q.Del("cert")
	q.Del("key")
	l, err := layout(strings.TrimRight(u.Path, "/"), q)
	if err != nil {
		return fail("%v", err)
	}
	if len(q) > 0 { // the first in order, so that the message does not depend on map order
		return fail("unknown option %q", slices.Sorted(maps.Keys(q))[0])
	}

	cfg := clientv3.Config{
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
		// gRPC spaces its attempts to reconnect up to 120 s apart: after
		// a long outage the client would find the cluster back that late.
		// Every 3 s at most, one connection per endpoint.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})},
	}
	scheme := "http://"
	if secure {
		scheme = "https://"
		if cfg.TLS, err = tlsInfo.ClientConfig(); err != nil {
			return fail("tls: %v", err)
		}
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return fail("empty host in the host list")
		}
		cfg.Endpoints = append(cfg.Endpoints, scheme+h)
	}
	cfg.Username, cfg.Password = os.Getenv("ETCD_USERNAME"), os.Getenv("ETCD_PASSWORD")
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	if o.TTL > 0 {
		o.TTL = max(o.TTL, minTTL)
	}
	return kv.New(u.Scheme, &Store{cfg: cfg, probe: marks}, l, marks, o), nil
}

// Store is etcd's v3 API; leases are etcd leases, written as hex IDs.
type Store struct {
	cfg   clientv3.Config
	probe string // a key Ping reads

	mu  sync.Mutex
	cli *clientv3.Client
}

var _ kv.Store = (*Store)(nil)

// Endpoints are the URLs of the etcd members.
func (s *Store) Endpoints() []string { return s.cfg.Endpoints }

// client returns the client, creating it on first use: with credentials,
// creating it authenticates, which needs the server, so that an
// unreachable server or a wrong password at start is an error of Ping,
// retried like any other.
func (s *Store) client(ctx context.Context) (*clientv3.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli != nil {
		return s.cli, nil
	}
	cfg := s.cfg
	cfg.Context = context.Background()
	if d, ok := ctx.Deadline(); ok {
		cfg.DialTimeout = min(cfg.DialTimeout, time.Until(d))
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, s.explain(err)
	}
	s.cli = cli
	return cli, nil
}

// explain replaces a timeout by the reason a plain dial of each endpoint
// gives, when none can be dialled: the client retries a refused connection
// until its deadline and then only says that it passed.
func (s *Store) explain(err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var dialErrs []error
	for _, ep := range s.cfg.Endpoints {
		conn, derr := net.DialTimeout("tcp", hostPort(ep), time.Second)
		if derr != nil {
			dialErrs = append(dialErrs, derr)
			continue
		}
		conn.Close()
	}
	if len(dialErrs) == len(s.cfg.Endpoints) {
		return errors.Join(dialErrs...)
	}
	return err
}

func parseLease(lease string) (clientv3.LeaseID, error) {
	n, err := strconv.ParseInt(lease, 16, 64)
	return clientv3.LeaseID(n), err
}

func (s *Store) List(ctx context.Context, prefixes ...string) ([][]kv.Pair, error) {
	lists, _, err := s.ListSnapshot(ctx, prefixes...)
	return lists, err
}

var _ kv.Snapshotter = (*Store)(nil)

// ListSnapshot is List; its token is the cluster's ID, the store's
// revision at the read and the number of keys under each prefix.
func (s *Store) ListSnapshot(ctx context.Context, prefixes ...string) ([][]kv.Pair, string, error) {
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		ops[i] = clientv3.OpGet(p, clientv3.WithPrefix())
	}
	cli, err := s.client(ctx)
	if err != nil {
		return nil, "", err
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, "", err
	}
	if resp.Header == nil || len(resp.Responses) != len(prefixes) {
		return nil, "", fmt.Errorf("list: an answer of %d parts to %d reads, header %v", len(resp.Responses), len(prefixes), resp.Header != nil)
	}
	out := make([][]kv.Pair, len(prefixes))
	token := fmt.Sprintf("%x,%d", resp.Header.ClusterId, resp.Header.Revision)
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		token += "," + strconv.Itoa(len(kvs))
		for _, e := range kvs {
			if e == nil {
				continue
			}
			out[i] = append(out[i], pairOf(e))
		}
	}
	return out, token, nil
}

// Unchanged asks, in one transaction that sends no values back: has every key
// under each prefix a modification revision at most the token's (nothing
// created or changed since), and is their number the token's (nothing
// removed)?
func (s *Store) Unchanged(ctx context.Context, token string, prefixes ...string) (bool, error) {
	f := strings.Split(token, ",")
	if len(f) != len(prefixes)+2 {
		return false, nil // not a token of these prefixes: list
	}
	rev, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return false, nil
	}
	cmps := make([]clientv3.Cmp, len(prefixes))
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		cmps[i] = clientv3.Compare(clientv3.ModRevision(p).WithPrefix(), "<", rev+1)
		ops[i] = clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly())
	}
	cli, err := s.client(ctx)
	if err != nil {
		return false, err
	}
	resp, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil || !resp.Succeeded || resp.Header == nil || len(resp.Responses) != len(prefixes) {
		return false, err
	}
	// Another cluster at the same address (one wiped and started again)
	// starts its revisions over.
	if fmt.Sprintf("%x", resp.Header.ClusterId) != f[0] || resp.Header.Revision < rev {
		return false, nil
	}
	for i, r := range resp.Responses {
		if strconv.FormatInt(r.GetResponseRange().GetCount(), 10) != f[i+2] {
			return false, nil
		}
	}
	return true, nil
}

// pairOf is a key as etcd holds it: its lease in hex, its mod revision.
func pairOf(e *mvccpb.KeyValue) kv.Pair {
	p := kv.Pair{Key: string(e.Key), Value: e.Value, Rev: strconv.FormatInt(e.ModRevision, 10)}
	if e.Lease != 0 {
		p.Lease = strconv.FormatInt(e.Lease, 16)
	}
	return p
}

func (s *Store) Get(ctx context.Context, key string) (kv.Pair, bool, error) {
	cli, err := s.client(ctx)
	if err != nil {
		return kv.Pair{}, false, err
	}
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0] == nil {
		return kv.Pair{}, false, err
	}
	return pairOf(resp.Kvs[0]), true, nil
}

func (s *Store) Commit(ctx context.Context, lease string, ops []kv.Op) error {
	var opts []clientv3.OpOption
	if lease != "" {
		id, err := parseLease(lease)
		if err != nil {
			return err
		}
		opts = append(opts, clientv3.WithLease(id))
	}
	txn := make([]clientv3.Op, len(ops))
	var cmps []clientv3.Cmp
	for i, op := range ops {
		if op.Delete {
			txn[i] = clientv3.OpDelete(op.Key)
		} else {
			txn[i] = clientv3.OpPut(op.Key, string(op.Value), opts...)
		}
		switch {
		case op.If == nil:
		case op.If.Absent:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(op.Key), "=", 0))
		default:
			rev, err := strconv.ParseInt(op.If.Rev, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: not a revision %q", op.Key, op.If.Rev)
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", rev))
		}
	}
	cli, err := s.client(ctx)
	if err != nil {
		return err
	}
	resp, err := cli.Txn(ctx).If(cmps...).Then(txn...).Commit()
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("%w: %v", kv.ErrLeaseLost, err)
	case err != nil:
		return err
	case !resp.Succeeded:
		return kv.ErrConflict
	}
	return nil
}

func (s *Store) Grant(ctx context.Context, ttl time.Duration) (string, error) {
	cli, err := s.client(ctx)
	if err != nil {
		return "", err
	}
	g, err := cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return "", err
	}
	if g.ID == 0 {
		return "", errors.New("grant: no lease in the answer")
	}
	return fmt.Sprintf("%x", int64(g.ID)), nil
}

func (s *Store) Alive(ctx context.Context, lease string) (bool, error) {
	id, err := parseLease(lease)
	if err != nil {
		return false, nil
	}
	cli, err := s.client(ctx)
	if err != nil {
		return false, err
	}
	ttl, err := cli.TimeToLive(ctx, id)
	if err != nil {
		return false, err
	}
	return ttl.TTL > 0, nil
}

func (s *Store) KeepAlive(ctx context.Context, lease string, lost func()) error {
	id, err := parseLease(lease)
	if err != nil {
		return err
	}
	cli, err := s.client(ctx)
	if err != nil {
		return err
	}
	ch, err := cli.KeepAlive(ctx, id)
	if err != nil {
		return err
	}
	go func() {
		for range ch {
		}
		if ctx.Err() == nil {
			lost()
		}
	}()
	return nil
}

// Ping reads one key, which checks the connection and the credentials.
func (s *Store) Ping(ctx context.Context) error {
	cli, err := s.client(ctx)
	if err == nil {
		_, err = cli.Get(ctx, s.probe, clientv3.WithCountOnly())
		err = s.explain(err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(s.cfg.Endpoints, ","), err)
	}
	return nil
}

// hostPort is the host:port of an endpoint URL.
func hostPort(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}

func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cli == nil {
		return nil
	}
	return s.cli.Close()
}
