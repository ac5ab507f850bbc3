package zookeeper

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-zookeeper/zk"
)

// maxInflight is how many requests may be under way at once. The client
// holds a request while it has no connection, until it has one again, and
// its calls take no context: a call whose context ends is left to finish
// in the background (see bounded), and past this many, while a server
// accepts connections and never answers, new ones fail at once instead of
// piling up.
const maxInflight = 64

// bounded is the connection with every call bounded by a context.
type bounded struct {
	ctx  context.Context
	conn *zk.Conn
	s    *Store
}

// bound returns the connection, its calls bounded by ctx.
func (s *Store) bound(ctx context.Context) (bounded, error) {
	conn, err := s.Conn()
	if err != nil {
		return bounded{}, err
	}
	return bounded{ctx: ctx, conn: conn, s: s}, nil
}

// call runs f, a call of the client, and returns its results, or the
// context's error as soon as it ends.
func call[T any](c bounded, f func() (T, error)) (T, error) {
	var zero T
	if err := c.ctx.Err(); err != nil {
		return zero, err
	}
	select {
	case c.s.inflight <- struct{}{}:
	default:
		return zero, fmt.Errorf("%d requests to %s unanswered", maxInflight, strings.Join(c.s.servers, ","))
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-c.s.inflight }()
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-c.ctx.Done():
		return zero, c.ctx.Err()
	}
}

// node is a node's data or children and its stat.
type node struct {
	data     []byte
	children []string
	stat     *zk.Stat
	exists   bool
}

func (c bounded) Children(p string) ([]string, *zk.Stat, error) {
	n, err := call(c, func() (n node, err error) { n.children, n.stat, err = c.conn.Children(p); return })
	return n.children, n.stat, err
}

func (c bounded) Get(p string) ([]byte, *zk.Stat, error) {
	n, err := call(c, func() (n node, err error) { n.data, n.stat, err = c.conn.Get(p); return })
	return n.data, n.stat, err
}

func (c bounded) Exists(p string) (bool, *zk.Stat, error) {
	n, err := call(c, func() (n node, err error) { n.exists, n.stat, err = c.conn.Exists(p); return })
	return n.exists, n.stat, err
}

func (c bounded) Create(p string, data []byte, flags int32, acl []zk.ACL) (string, error) {
	return call(c, func() (string, error) { return c.conn.Create(p, data, flags, acl) })
}

func (c bounded) Set(p string, data []byte, version int32) (*zk.Stat, error) {
	return call(c, func() (*zk.Stat, error) { return c.conn.Set(p, data, version) })
}

func (c bounded) Delete(p string, version int32) error {
	_, err := call(c, func() (struct{}, error) { return struct{}{}, c.conn.Delete(p, version) })
	return err
}

func (c bounded) SessionID() int64 { return c.conn.SessionID() }
