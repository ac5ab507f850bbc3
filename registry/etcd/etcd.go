// Package etcd registers services in etcd through its v3 API.
//
// URI: etcd://[user:password@]host:port[,host:port...]/prefix[?options], or
// etcd+tls:// for TLS. Entries live at <prefix>/<name>/<ID> with the value
// ip:port (registrator's layout), or a JSON object with ?format=json.
//
// Every entry is written on one lease per daemon, kept alive while the
// daemon runs: entries of a daemon that is gone for longer than the lease's
// TTL disappear by themselves. Beside each entry, on the same lease and in
// the same transaction, the adapter writes a mark outside the prefix
// (<marks>/<namespace>/entries/<owner>/<ID>) that names the owner, the
// container and the revision of the definition, so that start-up cleanup
// removes only our entries and an unchanged entry is never rewritten. The
// lease ID is kept at <marks>/<namespace>/leases/<owner>, so that a daemon
// restarted within the TTL adopts its lease and its entries.
package etcd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/registrator/registrator/bridge"
)

// DefaultTTL is the lease TTL when -ttl is not given.
const DefaultTTL = 30 * time.Second

// DefaultMarks is where marks and lease records live unless ?marks= says.
const DefaultMarks = "/registrator"

// Options are what the command line says beyond the URI.
type Options struct {
	Owner string        // this daemon's owner mark
	TTL   time.Duration // lease TTL; 0 means DefaultTTL
	Log   *logrus.Entry
}

// Layout says where an entry lives and what it holds.
type Layout interface {
	// Prefix is the part every entry's key starts with, followed by "/".
	Prefix() string
	Key(s bridge.Service) string
	Value(s bridge.Service) ([]byte, error)
	// Parse reads an entry back. ok is false for a key or value that is not
	// an entry of this layout.
	Parse(key string, value []byte) (s bridge.Service, ok bool)
}

// Backend is an etcd key space laid out by a Layout.
type Backend struct {
	cli    *clientv3.Client
	layout Layout
	owner  string
	ttl    int64  // seconds
	marks  string // <marks root>/<namespace>
	root   string // marks root
	log    *logrus.Entry

	mu     sync.Mutex
	lease  clientv3.LeaseID  // 0 until the first write or read
	stop   func()            // ends the keep-alive of lease
	keys   map[string]string // service ID → entry key, of our entries
	listed bool              // keys holds every entry of ours (Services ran since the lease was taken)
}

var _ bridge.Backend = (*Backend)(nil)

// Open parses an etcd:// or etcd+tls:// URI with the plain or JSON layout.
func Open(u *url.URL, o Options) (*Backend, error) {
	return OpenLayout(u, o, func(path string, q url.Values) (Layout, error) {
		format := q.Get("format")
		q.Del("format")
		switch format {
		case "", "plain":
			return Plain{Path: path}, nil
		case "json":
			return JSON{Path: path}, nil
		}
		return nil, fmt.Errorf("format %q: must be plain or json", format)
	})
}

// OpenLayout parses the connection part of an etcd URI (hosts, user,
// TLS and marks options) and hands the path and the remaining query
// options to layout, which must remove the options it uses.
func OpenLayout(u *url.URL, o Options, layout func(path string, q url.Values) (Layout, error)) (*Backend, error) {
	shown := u.Redacted()
	fail := func(format string, args ...any) (*Backend, error) {
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
	for k := range q {
		return fail("unknown option %q", k)
	}

	cfg := clientv3.Config{
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
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
	cli, err := clientv3.New(cfg)
	if err != nil {
		return fail("%v", err)
	}
	ttl := o.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	ns := url.PathEscape(l.Prefix())
	if ns == "" {
		ns = "_"
	}
	log := o.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Backend{
		cli: cli, layout: l, owner: o.Owner, ttl: int64(max(ttl/time.Second, 5)),
		root: marks, marks: marks + "/" + ns, log: log.WithField("backend", u.Scheme),
	}, nil
}

// mark is what we write beside each entry of ours.
type mark struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	Container string `json:"container"`
	Revision  string `json:"rev"`
	Sum       string `json:"sum"` // digest of the value written
}

func (b *Backend) markKey(owner, id string) string {
	return b.marks + "/entries/" + owner + "/" + url.PathEscape(id)
}

func (b *Backend) leaseKey() string { return b.marks + "/leases/" + b.owner }

func sum(value []byte) string {
	s := sha256.Sum256(value)
	return hex.EncodeToString(s[:8])
}

// Ping reads one key, which checks the connection and the credentials.
// The client retries a refused connection until ctx is done, so when the
// read times out, a plain dial of each endpoint says why.
func (b *Backend) Ping(ctx context.Context) error {
	_, err := b.cli.Get(ctx, b.leaseKey(), clientv3.WithCountOnly())
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		var dialErrs []error
		for _, ep := range b.cli.Endpoints() {
			conn, derr := net.DialTimeout("tcp", hostPort(ep), time.Second)
			if derr != nil {
				dialErrs = append(dialErrs, derr)
				continue
			}
			conn.Close()
		}
		if len(dialErrs) == len(b.cli.Endpoints()) {
			err = errors.Join(dialErrs...)
		}
	}
	return fmt.Errorf("etcd: %s: %w", strings.Join(b.cli.Endpoints(), ","), err)
}

// hostPort is the host:port of an endpoint URL.
func hostPort(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Host
	}
	return endpoint
}

// Services reads every entry under the prefix and every mark, in one
// consistent snapshot.
func (b *Backend) Services(ctx context.Context) ([]bridge.Service, error) {
	lease, err := b.ensureLease(ctx)
	if err != nil {
		return nil, err
	}
	entriesPrefix := b.layout.Prefix() + "/"
	marksPrefix := b.marks + "/entries/"
	resp, err := b.cli.Txn(ctx).Then(
		clientv3.OpGet(entriesPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(marksPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: list %s: %w", entriesPrefix, err)
	}
	type owned struct {
		mark
		owner string
		found bool
	}
	byKey := map[string]*owned{}
	var all []*owned
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		owner, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), marksPrefix), "/")
		var m mark
		if !ok || json.Unmarshal(kv.Value, &m) != nil || m.Key == "" {
			continue
		}
		o := &owned{mark: m, owner: owner}
		byKey[m.Key] = o
		all = append(all, o)
	}

	keys := map[string]string{}
	var out []bridge.Service
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		key := string(kv.Key)
		if strings.HasPrefix(key, b.root+"/") {
			continue // our own marks, when the prefix is the root
		}
		s, ok := b.layout.Parse(key, kv.Value)
		o := byKey[key]
		if o == nil {
			if ok {
				out = append(out, s)
			}
			continue
		}
		o.found = true
		s.ID, s.Owner, s.Container = o.ID, o.owner, o.Container
		current := o.owner != b.owner || kv.Lease == int64(lease)
		if ok && current && o.Sum == sum(kv.Value) {
			s.Revision = o.Revision
		}
		if o.owner == b.owner {
			keys[o.ID] = key
		}
		out = append(out, s)
	}
	for _, o := range all {
		// A mark of ours whose entry is gone: listed, so that the entry is
		// written again or the mark removed.
		if !o.found && o.owner == b.owner {
			keys[o.ID] = o.Key
			out = append(out, bridge.Service{ID: o.ID, Owner: o.owner, Container: o.Container})
		}
	}
	b.mu.Lock()
	if b.lease == lease {
		b.keys, b.listed = keys, true
	}
	b.mu.Unlock()
	return out, nil
}

// Register writes the entry and its mark on the lease, removing the entry
// of the same ID at another key (a service whose name changed).
func (b *Backend) Register(ctx context.Context, s bridge.Service) error {
	key := b.layout.Key(s)
	value, err := b.layout.Value(s)
	if err != nil {
		return fmt.Errorf("etcd: register %s: %w", s.ID, err)
	}
	m, _ := json.Marshal(mark{ID: s.ID, Key: key, Container: s.Container, Revision: s.Fingerprint(), Sum: sum(value)})
	for attempt := 0; ; attempt++ {
		lease, err := b.ensureLease(ctx)
		if err != nil {
			return fmt.Errorf("etcd: register %s: %w", s.ID, err)
		}
		old, err := b.keyOf(ctx, s.Owner, s.ID)
		if err != nil {
			return fmt.Errorf("etcd: register %s: %w", s.ID, err)
		}
		var ops []clientv3.Op
		if old != "" && old != key {
			ops = append(ops, clientv3.OpDelete(old))
		}
		ops = append(ops,
			clientv3.OpPut(key, string(value), clientv3.WithLease(lease)),
			clientv3.OpPut(b.markKey(s.Owner, s.ID), string(m), clientv3.WithLease(lease)))
		_, err = b.cli.Txn(ctx).Then(ops...).Commit()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			b.dropLease(lease, "lease not found")
			continue
		}
		if err != nil {
			return fmt.Errorf("etcd: register %s at %s: %w", s.ID, key, err)
		}
		b.mu.Lock()
		if b.lease == lease && s.Owner == b.owner {
			b.keys[s.ID] = key
		}
		b.mu.Unlock()
		return nil
	}
}

// Deregister deletes the entry and, for an entry with an owner, its mark.
func (b *Backend) Deregister(ctx context.Context, s bridge.Service) error {
	key := b.layout.Key(s)
	if s.Owner == b.owner {
		b.mu.Lock()
		if k, ok := b.keys[s.ID]; ok {
			key = k
		}
		b.mu.Unlock()
	}
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	if s.Owner != "" {
		ops = append(ops, clientv3.OpDelete(b.markKey(s.Owner, s.ID)))
	}
	if _, err := b.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("etcd: deregister %s at %s: %w", s.ID, key, err)
	}
	if s.Owner == b.owner {
		b.mu.Lock()
		delete(b.keys, s.ID)
		b.mu.Unlock()
	}
	return nil
}

// keyOf returns the key of the owner's entry with this ID, "" if there is none.
func (b *Backend) keyOf(ctx context.Context, owner, id string) (string, error) {
	if owner == b.owner {
		b.mu.Lock()
		key, ok := b.keys[id]
		listed := b.listed
		b.mu.Unlock()
		if ok || listed {
			return key, nil
		}
	}
	resp, err := b.cli.Get(ctx, b.markKey(owner, id))
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	var m mark
	if json.Unmarshal(resp.Kvs[0].Value, &m) != nil {
		return "", nil
	}
	return m.Key, nil
}

// ensureLease returns the lease entries are written on: the one in use, else
// the one a previous run of this daemon recorded if it is still alive, else
// a new one.
func (b *Backend) ensureLease(ctx context.Context) (clientv3.LeaseID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lease != 0 {
		return b.lease, nil
	}
	var id clientv3.LeaseID
	resp, err := b.cli.Get(ctx, b.leaseKey())
	if err != nil {
		return 0, fmt.Errorf("etcd: read lease record: %w", err)
	}
	if len(resp.Kvs) > 0 {
		if n, err := strconv.ParseInt(string(resp.Kvs[0].Value), 16, 64); err == nil {
			if ttl, err := b.cli.TimeToLive(ctx, clientv3.LeaseID(n)); err == nil && ttl.TTL > 0 {
				id = clientv3.LeaseID(n)
				b.log.WithField("lease", fmt.Sprintf("%x", n)).Info("adopted the lease of the previous run")
			}
		}
	}
	if id == 0 {
		g, err := b.cli.Grant(ctx, b.ttl)
		if err != nil {
			return 0, fmt.Errorf("etcd: grant lease: %w", err)
		}
		id = g.ID
		if _, err := b.cli.Put(ctx, b.leaseKey(), fmt.Sprintf("%x", int64(id)), clientv3.WithLease(id)); err != nil {
			return 0, fmt.Errorf("etcd: record lease: %w", err)
		}
		b.log.WithFields(logrus.Fields{"lease": fmt.Sprintf("%x", int64(id)), "ttl": b.ttl}).Info("granted a lease")
	}
	kctx, cancel := context.WithCancel(context.Background())
	ch, err := b.cli.KeepAlive(kctx, id)
	if err != nil {
		cancel()
		return 0, fmt.Errorf("etcd: keep lease alive: %w", err)
	}
	b.lease, b.stop, b.keys, b.listed = id, cancel, map[string]string{}, false
	go func() {
		for range ch {
		}
		if kctx.Err() == nil {
			b.dropLease(id, "keep-alive ended")
		}
	}()
	return id, nil
}

// dropLease forgets a lease that expired: the next operation takes a new
// one, and the next full reconcile writes every entry again.
func (b *Backend) dropLease(id clientv3.LeaseID, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lease != id {
		return
	}
	b.stop()
	b.lease, b.stop, b.keys, b.listed = 0, nil, nil, false
	b.log.WithField("lease", fmt.Sprintf("%x", int64(id))).Warnf("lease lost (%s): its entries are gone and will be written again", why)
}

// Close stops keeping the lease alive, leaving the entries in place until
// the lease's TTL runs out; a daemon started again in time adopts them.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.stop != nil {
		b.stop()
	}
	b.mu.Unlock()
	return b.cli.Close()
}
