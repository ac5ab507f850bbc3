// Package kv keeps services in a key-value store with leases: etcd (leases)
// and Consul's KV store (sessions). A Layout says where an entry lives and
// what it holds; a Store speaks to the server.
//
// Every entry is written on one lease per daemon, kept alive while the
// daemon runs: entries of a daemon that is gone for longer than the lease's
// TTL disappear by themselves. Beside each entry, on the same lease and in
// the same transaction, a mark outside the layout's prefix
// (<marks>/<namespace>/entries/<owner>/<ID>) names the owner, the container
// and the revision of the definition, so that start-up cleanup removes only
// our entries and an unchanged entry is never rewritten. The lease is
// recorded at <marks>/<namespace>/leases/<owner>, so that a daemon restarted
// within the TTL adopts it with its entries. Where the owner mark was set by
// hand (-id), the marks name the host that wrote them (Service.Writer, read
// back for the bridge, which leaves another host's entries alone) and the
// lease record is <owner>@<host> (Options.Writer), so that two hosts given
// the same mark by mistake never adopt each other's lease.
package kv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
)

// DefaultTTL is the lease TTL when -ttl is not given.
const DefaultTTL = 30 * time.Second

// Options are what the command line says beyond the URI.
type Options = bridge.BackendOptions

// Pair is one key as stored.
type Pair struct {
	Key   string
	Value []byte
	Lease string // "" when the key is on no lease
	// Rev names this version of the key: it changes at every write, and
	// a key removed and written again does not get an old Rev back
	// (etcd's mod revision, Consul's modify index, ZooKeeper's mzxid).
	Rev string
}

// Op is one write of a transaction: a put on the lease, or a delete.
type Op struct {
	Key    string
	Value  []byte
	Delete bool
	// If, when set, is a condition on the key's state before the
	// transaction: if it does not hold, Commit writes nothing and returns
	// ErrConflict.
	If *Cond
}

// Cond is what a key must be for an Op to apply: absent, or at a revision.
type Cond struct {
	Absent bool
	Rev    string // when not Absent
}

// ErrLeaseLost is returned by Store.Commit when the lease no longer exists.
var ErrLeaseLost = errors.New("lease lost")

// ErrConflict is returned by Store.Commit when an Op's condition did not
// hold: someone else wrote or removed the key since it was read.
var ErrConflict = errors.New("the key changed since it was read")

// Store is the server. Its methods may be called concurrently.
type Store interface {
	// List reads every key under each prefix in one consistent snapshot.
	List(ctx context.Context, prefixes ...string) ([][]Pair, error)
	// Get reads one key.
	Get(ctx context.Context, key string) (p Pair, found bool, err error)
	// Commit applies ops atomically, putting keys on lease, if every
	// Op's condition holds; else it writes nothing and returns
	// ErrConflict.
	Commit(ctx context.Context, lease string, ops []Op) error
	// Grant creates a lease.
	Grant(ctx context.Context, ttl time.Duration) (string, error)
	// Alive reports whether a lease still exists.
	Alive(ctx context.Context, lease string) (bool, error)
	// KeepAlive starts refreshing lease in the background until ctx is
	// done; if the lease expires first it calls lost, once, from another
	// goroutine.
	KeepAlive(ctx context.Context, lease string, lost func()) error
	// Ping checks the connection and the credentials.
	Ping(ctx context.Context) error
	Close() error
}

// A Snapshotter is a Store that can say cheaply that nothing under some
// prefixes changed since a List, so that Services does not read and decode
// an unchanged registry on every resync.
type Snapshotter interface {
	// ListSnapshot is List, and also returns a token for Unchanged.
	ListSnapshot(ctx context.Context, prefixes ...string) (lists [][]Pair, token string, err error)
	// Unchanged reports whether no key under the prefixes was created,
	// changed or removed since ListSnapshot returned token for them.
	Unchanged(ctx context.Context, token string, prefixes ...string) (bool, error)
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

// Backend is a Store's key space laid out by a Layout.
type Backend struct {
	store  Store
	layout Layout
	name   string // for errors: the URI scheme
	owner  string
	writer string // Options.Writer: this host's name where the mark was set by hand, "" else
	ttl    time.Duration
	marks  string // <marks root>/<namespace>
	root   string // marks root
	log    *logrus.Entry

	mu     sync.Mutex
	lease  string            // "" until the first write or read
	stop   func()            // ends the keep-alive of lease
	keys   map[string]string // service ID → entry key, of our entries
	listed bool              // keys holds every entry of ours (Services ran since the lease was taken)

	snapMu sync.Mutex
	snap   snapshot // the last list, for a Snapshotter store

	lost chan struct{} // buffer 1: a lease ended, its entries with it
}

// snapshot is what Services read from a Snapshotter at token.
type snapshot struct {
	token    string // "" for none
	lease    string
	services []bridge.Service
	keys     map[string]string
}

var _ bridge.Backend = (*Backend)(nil)

// New returns a backend; marks is the root of marks and lease records.
func New(name string, store Store, layout Layout, marks string, o Options) *Backend {
	ttl := o.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	ns := url.PathEscape(layout.Prefix())
	if ns == "" {
		ns = "_"
	}
	log := o.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Backend{
		store: store, layout: layout, name: name, owner: o.Owner, writer: o.Writer, ttl: ttl,
		root: marks, marks: marks + "/" + ns, log: log.WithField("backend", name),
		lost: make(chan struct{}, 1),
	}
}

// Store returns the store the backend writes to.
func (b *Backend) Store() Store { return b.store }

// mark is what we write beside each entry of ours.
type mark struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	Container string `json:"container"`
	Revision  string `json:"rev"`
	Sum       string `json:"sum"`            // digest of the value written
	Host      string `json:"host,omitempty"` // Service.Writer
}

func (b *Backend) markKey(owner, id string) string {
	return b.marks + "/entries/" + owner + "/" + url.PathEscape(id)
}

// parseMark reads a mark back from the key-value pair under prefix
// (<marks>/<namespace>/entries/): the owner is the key's first part, the
// rest is the value. ok is false for what is not a mark, whoever wrote it.
func parseMark(prefix, key string, value []byte) (owner string, m mark, ok bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", mark{}, false
	}
	owner, _, ok = strings.Cut(rest, "/")
	if !ok || owner == "" || json.Unmarshal(value, &m) != nil || m.Key == "" {
		return "", mark{}, false
	}
	return owner, m, true
}

func sum(value []byte) string {
	s := sha256.Sum256(value)
	return hex.EncodeToString(s[:8])
}

// Ping checks that the store answers.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.store.Ping(ctx); err != nil {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	return nil
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
	b.snapMu.Lock()
	defer b.snapMu.Unlock()
	var (
		lists [][]Pair
		token string
	)
	if sn, ok := b.store.(Snapshotter); ok {
		if b.snap.token != "" && b.snap.lease == lease {
			same, err := sn.Unchanged(ctx, b.snap.token, entriesPrefix, marksPrefix)
			if err != nil {
				return nil, fmt.Errorf("%s: list %s: %w", b.name, entriesPrefix, err)
			}
			if same {
				b.setKeys(lease, maps.Clone(b.snap.keys))
				return slices.Clone(b.snap.services), nil
			}
		}
		lists, token, err = sn.ListSnapshot(ctx, entriesPrefix, marksPrefix)
	} else {
		lists, err = b.store.List(ctx, entriesPrefix, marksPrefix)
	}
	if err != nil {
		b.snap = snapshot{}
		return nil, fmt.Errorf("%s: list %s: %w", b.name, entriesPrefix, err)
	}
	type owned struct {
		mark
		owner string
		found bool
	}
	byKey := map[string]*owned{}
	var all []*owned
	if len(lists) != 2 {
		b.snap = snapshot{}
		return nil, fmt.Errorf("%s: list %s: %d lists for 2 prefixes", b.name, entriesPrefix, len(lists))
	}
	for _, p := range lists[1] {
		owner, m, ok := parseMark(marksPrefix, p.Key, p.Value)
		if !ok {
			continue
		}
		o := &owned{mark: m, owner: owner}
		byKey[m.Key] = o
		all = append(all, o)
	}

	keys := map[string]string{}
	var out []bridge.Service
	for _, p := range lists[0] {
		if strings.HasPrefix(p.Key, b.root+"/") {
			continue // our own marks, when the prefix is the root
		}
		s, ok := b.layout.Parse(p.Key, p.Value)
		o := byKey[p.Key]
		if o == nil {
			if ok {
				out = append(out, s)
			}
			continue
		}
		o.found = true
		s.ID, s.Owner, s.Container, s.Writer = o.ID, o.owner, o.Container, o.Host
		current := o.owner != b.owner || p.Lease == lease
		if ok && current && o.Sum == sum(p.Value) {
			s.Revision = o.Revision
		}
		if o.owner == b.owner {
			keys[o.ID] = p.Key
		}
		out = append(out, s)
	}
	for _, o := range all {
		// A mark of ours whose entry is gone: listed, so that the entry is
		// written again or the mark removed.
		if !o.found && o.owner == b.owner {
			keys[o.ID] = o.Key
			out = append(out, bridge.Service{ID: o.ID, Owner: o.owner, Container: o.Container, Writer: o.Host})
		}
	}
	b.snap = snapshot{}
	if token != "" {
		b.snap = snapshot{token: token, lease: lease, services: slices.Clone(out), keys: maps.Clone(keys)}
	}
	b.setKeys(lease, keys)
	return out, nil
}

// setKeys records the keys of our entries as a list on lease found them.
func (b *Backend) setKeys(lease string, keys map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lease == lease {
		b.keys, b.listed = keys, true
	}
}

// Register writes the entry and its mark on the lease, removing the entry
// of the same ID at another key (a service whose name changed). It writes
// only over an entry that is s's (see claim), in the same transaction as
// the check: another host's, another container's or another program's
// entry at that key is left as it is, and Register returns a
// *bridge.HeldError.
func (b *Backend) Register(ctx context.Context, s bridge.Service) error {
	key := b.layout.Key(s)
	value, err := b.layout.Value(s)
	if err != nil {
		return fmt.Errorf("%s: register %s: %w", b.name, s.ID, err)
	}
	m, _ := json.Marshal(mark{ID: s.ID, Key: key, Container: s.Container, Revision: s.Fingerprint(), Sum: sum(value), Host: s.Writer})
	for attempt := 0; ; attempt++ {
		lease, err := b.ensureLease(ctx)
		if err != nil {
			return fmt.Errorf("%s: register %s: %w", b.name, s.ID, err)
		}
		old, err := b.keyOf(ctx, s.Owner, s.ID)
		if err != nil {
			return fmt.Errorf("%s: register %s: %w", b.name, s.ID, err)
		}
		cond, err := b.claim(ctx, s, key, value)
		if err != nil {
			return err
		}
		var ops []Op
		if old != "" && old != key {
			// The entry under its earlier name goes too, if it is still
			// what this daemon wrote there.
			if oc, err := b.claim(ctx, s, old, nil); err == nil {
				ops = append(ops, Op{Key: old, Delete: true, If: oc})
			}
		}
		ops = append(ops, Op{Key: key, Value: value, If: cond}, Op{Key: b.markKey(s.Owner, s.ID), Value: m})
		if s.Replaces != "" && s.Replaces != s.Owner { // an adopted entry: its earlier mark goes
			ops = append(ops, Op{Key: b.markKey(s.Replaces, s.ID), Delete: true})
		}
		err = b.store.Commit(ctx, lease, ops)
		if (errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrConflict)) && attempt == 0 {
			if errors.Is(err, ErrLeaseLost) {
				b.dropLease(lease, "lease not found")
			}
			continue // read again what the key holds now
		}
		if err != nil {
			return fmt.Errorf("%s: register %s at %s: %w", b.name, s.ID, key, err)
		}
		b.mu.Lock()
		if b.lease == lease && s.Owner == b.owner {
			b.keys[s.ID] = key
		}
		b.mu.Unlock()
		return nil
	}
}

// Deregister deletes the entry, if it is still s's (claim), and, for an
// entry with an owner, its mark.
func (b *Backend) Deregister(ctx context.Context, s bridge.Service) error {
	key := b.layout.Key(s)
	if s.Owner == b.owner {
		b.mu.Lock()
		if k, ok := b.keys[s.ID]; ok {
			key = k
		}
		b.mu.Unlock()
	}
	var ops []Op
	cond, err := b.claim(ctx, s, key, nil)
	var held *bridge.HeldError
	switch {
	case errors.As(err, &held):
		// Someone else's now: only the mark, which is ours, goes.
	case err != nil:
		return fmt.Errorf("%s: deregister %s at %s: %w", b.name, s.ID, key, err)
	case !cond.Absent:
		ops = append(ops, Op{Key: key, Delete: true, If: cond})
	}
	if s.Owner != "" {
		ops = append(ops, Op{Key: b.markKey(s.Owner, s.ID), Delete: true})
	}
	if len(ops) > 0 {
		if err := b.store.Commit(ctx, "", ops); err != nil {
			return fmt.Errorf("%s: deregister %s at %s: %w", b.name, s.ID, key, err)
		}
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
	p, found, err := b.store.Get(ctx, b.markKey(owner, id))
	if err != nil || !found {
		return "", err
	}
	var m mark
	if json.Unmarshal(p.Value, &m) != nil {
		return "", nil
	}
	return m.Key, nil
}

// Close stops keeping the lease alive, leaving the entries in place until
// the lease's TTL runs out; a daemon started again in time adopts them.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.stop != nil {
		b.stop()
	}
	b.mu.Unlock()
	return b.store.Close()
}
