// Package zookeeper registers services as ephemeral znodes in ZooKeeper.
//
// URI: zookeeper://host:port[,host:port...]/basepath[?marks=/path].
// Layout (registrator's): <basepath>/<name>/<ip>:<port>, an ephemeral znode
// whose body is {"Name","IP","PublicPort","PrivatePort","ContainerID","Tags",
// "Attrs"}; parents are persistent. The daemon's ZooKeeper session is its
// lease: when the session expires, ZooKeeper deletes the znodes, the client
// opens a new session and the next full reconcile creates them again. Owner
// marks sit beside them as in package kv.
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/registry/kv"
)

// DefaultMarks is where marks and session records live unless ?marks= says.
const DefaultMarks = "/registrator"

// Open parses a zookeeper:// URI and starts connecting.
func Open(u *url.URL, o kv.Options) (*kv.Backend, error) {
	fail := func(format string, args ...any) (*kv.Backend, error) {
		return nil, fmt.Errorf("%s: %s: %s", u.Scheme, u.Scheme+"://"+u.Host+u.Path, fmt.Sprintf(format, args...)) // without user information
	}
	if u.Host == "" {
		return fail("no host (e.g. zookeeper://127.0.0.1:2181/services)")
	}
	base := strings.TrimRight(u.Path, "/")
	if base == "" || path.Clean(base) != base {
		return fail("base path %q: must be a clean absolute path such as /services", u.Path)
	}
	q := u.Query()
	marks := DefaultMarks
	if q.Has("marks") {
		marks = strings.TrimRight(q.Get("marks"), "/")
		if marks == "" || path.Clean(marks) != marks || !strings.HasPrefix(marks, "/") {
			return fail("marks %q: must be a clean absolute path such as /registrator", q.Get("marks"))
		}
		q.Del("marks")
	}
	if len(q) > 0 { // the first in order, so that the message does not depend on map order
		return fail("unknown option %q", slices.Sorted(maps.Keys(q))[0])
	}
	if marks == base || strings.HasPrefix(marks, base+"/") {
		return fail("marks %q must not be inside the base path %q", marks, base)
	}
	servers := strings.Split(u.Host, ",")
	for _, h := range servers {
		if h == "" {
			return fail("empty host in the host list")
		}
	}
	if o.TTL <= 0 {
		o.TTL = kv.DefaultTTL
	}
	log := o.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	s := &Store{servers: servers, ttl: o.TTL, log: log.WithField("backend", u.Scheme), lost: map[string][]func(){}, done: make(chan struct{}), inflight: make(chan struct{}, maxInflight)}
	return kv.New(u.Scheme, s, Layout{Base: base}, marks, o), nil
}

// debugLogger sends the client's chatter (every reconnect) to debug level.
type debugLogger struct{ log *logrus.Entry }

func (l debugLogger) Printf(format string, args ...any) { l.log.Debugf("zookeeper: "+format, args...) }

// Store is ZooKeeper; the lease is the client's session, written as its
// hex ID, and writes on it are ephemeral znodes.
type Store struct {
	servers []string
	ttl     time.Duration // the session timeout
	log     *logrus.Entry
	done    chan struct{}

	mu   sync.Mutex
	conn *zk.Conn
	lost map[string][]func() // by session: called when it ends

	inflight chan struct{} // one per request under way (see bound)
}

var _ kv.Store = (*Store)(nil)

func (s *Store) connect() (*zk.Conn, error) {
	conn, _, err := zk.Connect(s.servers, s.ttl, zk.WithLogger(debugLogger{s.log}), zk.WithEventCallback(s.event))
	return conn, err
}

// Conn returns the current ZooKeeper connection, opening it on first use
// (which resolves the server names), so that Open does no I/O.
func (s *Store) Conn() (*zk.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		conn, err := s.connect()
		if err != nil {
			return nil, fmt.Errorf("zookeeper: %w", err)
		}
		s.conn = conn
		go s.watch()
	}
	return s.conn, nil
}

func (s *Store) event(e zk.Event) {
	if e.Type == zk.EventSession && e.State == zk.StateExpired {
		s.ended()
	}
}

// ended calls the lost callbacks of every session.
func (s *Store) ended() {
	s.mu.Lock()
	var fns []func()
	for lease, f := range s.lost {
		fns = append(fns, f...)
		delete(s.lost, lease)
	}
	s.mu.Unlock()
	for _, f := range fns {
		go f()
	}
}

// watch replaces a connection that has had no session for longer than the
// session timeout: its session has expired on the server whatever the
// client believes, and a client that saw a newer transaction than a
// restored or rebuilt server holds is refused by it for ever.
func (s *Store) watch() {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		conn := s.conn
		s.mu.Unlock()
		if conn.State() == zk.StateHasSession {
			last = time.Now()
			continue
		}
		if time.Since(last) < s.ttl {
			continue
		}
		s.log.Warnf("zookeeper: no session for %s, longer than the session timeout: reconnecting with a new session", time.Since(last).Round(time.Second))
		fresh, err := s.connect()
		if err != nil {
			s.log.WithField("error", err).Warn("zookeeper: reconnect failed, will retry")
			continue
		}
		s.mu.Lock()
		s.conn = fresh
		s.mu.Unlock()
		conn.Close()
		s.ended()
		last = time.Now()
	}
}

// session is the current session, "" while there is none.
func (s *Store) session() string {
	c, err := s.Conn()
	if err != nil || c.State() != zk.StateHasSession {
		return ""
	}
	return strconv.FormatInt(c.SessionID(), 16)
}

func (s *Store) List(ctx context.Context, prefixes ...string) ([][]kv.Pair, error) {
	c, err := s.bound(ctx)
	if err != nil {
		return nil, err
	}
	out := make([][]kv.Pair, len(prefixes))
	for i, p := range prefixes {
		if err := c.walk(strings.TrimSuffix(p, "/"), &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// walk appends every node below dir that holds data.
func (conn bounded) walk(dir string, out *[]kv.Pair) error {
	children, _, err := conn.Children(dir)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, c := range children {
		p := dir + "/" + c
		data, stat, err := conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone meanwhile
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if len(data) > 0 {
			*out = append(*out, pairOf(p, data, stat))
		}
		if stat.NumChildren > 0 {
			if err := conn.walk(p, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// pairOf is a znode as the key-value backend reads it: the session that
// owns an ephemeral node is its lease, its mzxid its revision.
func pairOf(p string, data []byte, stat *zk.Stat) kv.Pair {
	pair := kv.Pair{Key: p, Value: data}
	if stat != nil {
		pair.Rev = strconv.FormatInt(stat.Mzxid, 16)
		if stat.EphemeralOwner != 0 {
			pair.Lease = strconv.FormatInt(stat.EphemeralOwner, 16)
		}
	}
	return pair
}

func (s *Store) Get(ctx context.Context, key string) (kv.Pair, bool, error) {
	conn, err := s.bound(ctx)
	if err != nil {
		return kv.Pair{}, false, err
	}
	data, stat, err := conn.Get(key)
	if errors.Is(err, zk.ErrNoNode) {
		return kv.Pair{}, false, nil
	}
	if err != nil {
		return kv.Pair{}, false, err
	}
	return pairOf(key, data, stat), true, nil
}

// Commit applies ops in order (ZooKeeper's multi cannot create-or-replace);
// puts on a lease are ephemeral znodes of the current session. An op's
// condition is checked against the node's mzxid, and the write that
// follows is bound to the version read with it: a node changed in between
// is left alone (ErrConflict). An op that fails stops the ones after it;
// those before it stay applied.
func (s *Store) Commit(ctx context.Context, lease string, ops []kv.Op) error {
	conn, err := s.bound(ctx)
	if err != nil {
		return err
	}
	var flags int32
	if lease != "" {
		if s.session() != lease {
			return fmt.Errorf("session %s: %w", lease, kv.ErrLeaseLost)
		}
		flags = zk.FlagEphemeral
	}
	for _, op := range ops {
		var err error
		switch {
		case op.Delete && op.If != nil && op.If.Absent:
		case op.Delete:
			version := int32(-1)
			if op.If != nil {
				var stat *zk.Stat
				if stat, err = at(conn, op.Key, op.If.Rev); err == nil {
					version = stat.Version
				}
			}
			if err == nil {
				err = conn.Delete(op.Key, version)
			}
			if errors.Is(err, zk.ErrNoNode) && op.If == nil {
				err = nil
			}
		case op.If != nil:
			err = putIf(conn, op.Key, op.Value, flags, *op.If)
		default:
			err = put(conn, op.Key, op.Value, flags)
		}
		if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || op.If != nil && errors.Is(err, zk.ErrNoNode) {
			return kv.ErrConflict
		}
		if errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved) {
			return fmt.Errorf("%w: %v", kv.ErrLeaseLost, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// put creates the node, or replaces one that is not of the right kind (an
// ephemeral node of another session, or a persistent one where an ephemeral
// one is wanted).
func put(conn bounded, p string, data []byte, flags int32) error {
	if err := parents(conn, p); err != nil {
		return err
	}
	acl := zk.WorldACL(zk.PermAll)
	for attempt := 0; attempt < 3; attempt++ {
		_, err := conn.Create(p, data, flags, acl)
		if !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		_, stat, err := conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return err
		}
		ours := stat.EphemeralOwner == 0 && flags == 0 || stat.EphemeralOwner == conn.SessionID() && flags != 0
		if ours {
			_, err = conn.Set(p, data, stat.Version)
		} else {
			err = conn.Delete(p, stat.Version)
		}
		if ours && err == nil {
			return nil
		}
		if err != nil && !errors.Is(err, zk.ErrBadVersion) && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return fmt.Errorf("put %s: it kept changing", p)
}

// at reads p's stat and checks that it is at revision rev (its mzxid).
func at(conn bounded, p, rev string) (*zk.Stat, error) {
	_, stat, err := conn.Get(p)
	if err != nil {
		return nil, err
	}
	if strconv.FormatInt(stat.Mzxid, 16) != rev {
		return nil, kv.ErrConflict
	}
	return stat, nil
}

// putIf writes p only if it is as cond says: absent (created), or at
// cond.Rev (set in place when it is of the right kind, else removed and
// created again, each bound to the version read).
func putIf(conn bounded, p string, data []byte, flags int32, cond kv.Cond) error {
	if err := parents(conn, p); err != nil {
		return err
	}
	acl := zk.WorldACL(zk.PermAll)
	if cond.Absent {
		_, err := conn.Create(p, data, flags, acl)
		return err
	}
	stat, err := at(conn, p, cond.Rev)
	if err != nil {
		return err
	}
	if stat.EphemeralOwner == 0 && flags == 0 || stat.EphemeralOwner == conn.SessionID() && flags != 0 {
		_, err = conn.Set(p, data, stat.Version)
		return err
	}
	if err := conn.Delete(p, stat.Version); err != nil {
		return err
	}
	_, err = conn.Create(p, data, flags, acl)
	return err
}

// parents creates the persistent parents of p.
func parents(conn bounded, p string) error {
	dir := path.Dir(p)
	if dir == "/" {
		return nil
	}
	if ok, _, err := conn.Exists(dir); err != nil || ok {
		return err
	}
	if err := parents(conn, dir); err != nil {
		return err
	}
	_, err := conn.Create(dir, nil, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

// Grant waits for a session and returns it: the session is the lease, its
// timeout (-ttl) was set when connecting.
func (s *Store) Grant(ctx context.Context, _ time.Duration) (string, error) {
	for {
		if lease := s.session(); lease != "" {
			return lease, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no session with %s: %w", strings.Join(s.servers, ","), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Alive reports whether lease is this client's session: a session of a
// previous run cannot be taken over, its znodes expire with it.
func (s *Store) Alive(_ context.Context, lease string) (bool, error) {
	return lease != "" && s.session() == lease, nil
}

// KeepAlive needs nothing beyond the client's own pings; it arranges for
// lost to be called when the session expires.
func (s *Store) KeepAlive(ctx context.Context, lease string, lost func()) error {
	if s.session() != lease {
		return fmt.Errorf("session %s: %w", lease, kv.ErrLeaseLost)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost[lease] = append(s.lost[lease], lost)
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.lost, lease)
		s.mu.Unlock()
	}()
	return nil
}

// Ping waits for a session.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.Conn(); err != nil {
		return err
	}
	_, err := s.Grant(ctx, 0)
	return err
}

func (s *Store) Close() error {
	close(s.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
	}
	return nil
}
