// Package registry opens a backend by the scheme of its URI.
package registry

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/consul"
	"github.com/registrator/registrator/registry/consulkv"
	"github.com/registrator/registrator/registry/zookeeper"
)

// Scheme is one registry URI scheme and the adapter that serves it.
type Scheme struct {
	Name    string // the URI scheme
	Example string // a URI of this form, for the usage text
	open    func(*url.URL, bridge.BackendOptions) (bridge.Backend, error)
	grpc    bool // built on the etcd v3 client: left out of a lean build
}

// table is the only place a backend is registered: adding one is its
// package and a row here. The usage text lists it from here, and a test
// checks that the README documents every scheme.
var table = []Scheme{
	{"consul", "consul://host:port", adapter(consul.Open), false},
	{"consul-tls", "consul-tls://host:port", adapter(consul.Open), false},
	{"consul-unix", "consul-unix:///path/to/consul.sock", adapter(consul.Open), false},
	{"consulkv", "consulkv://host:port/prefix", adapter(consulkv.Open), false},
	{"consulkv-tls", "consulkv-tls://host:port/prefix", adapter(consulkv.Open), false},
	{"etcd", "etcd://host:port[,host:port]/prefix", openEtcd, true},
	{"etcd+tls", "etcd+tls://host:port[,host:port]/prefix", openEtcd, true},
	{"skydns2", "skydns2://host:port/domain", openSkyDNS2, true},
	{"skydns2+tls", "skydns2+tls://host:port/domain", openSkyDNS2, true},
	{"zookeeper", "zookeeper://host:port[,host:port]/basepath", adapter(zookeeper.Open), false},
}

// adapter gives an adapter's Open, which returns its concrete type, the
// table's one constructor type.
func adapter[B bridge.Backend](open func(*url.URL, bridge.BackendOptions) (B, error)) func(*url.URL, bridge.BackendOptions) (bridge.Backend, error) {
	return func(u *url.URL, o bridge.BackendOptions) (bridge.Backend, error) {
		b, err := open(u, o)
		if err != nil {
			return nil, err // not a nil B in a non-nil interface
		}
		return b, nil
	}
}

// Schemes lists the URI schemes Open knows, in the table's order.
func Schemes() []Scheme { return slices.Clone(table) }

func names() string {
	var out []string
	for _, s := range table {
		out = append(out, s.Name)
	}
	return strings.Join(out, ", ")
}

// HeldByFull reports whether uri names an adapter that this build, a lean
// one, leaves out: the daemon then hands itself over to the full build. A
// URI that does not parse, or names no known scheme, is not (Open says
// what is wrong with it).
func HeldByFull(uri string) bool {
	if !Lean {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	s, ok := lookup(u.Scheme)
	return ok && s.grpc
}

// lookup is the table's row for a URI scheme.
func lookup(scheme string) (Scheme, bool) {
	i := slices.IndexFunc(table, func(s Scheme) bool { return s.Name == scheme })
	if i < 0 {
		return Scheme{}, false
	}
	return table[i], true
}

// Open returns the backend a registry URI names. It does not connect.
func Open(uri string, o bridge.BackendOptions) (bridge.Backend, error) {
	if !strings.Contains(uri, "://") {
		return nil, fmt.Errorf("registry URI %q has no scheme, e.g. consul://127.0.0.1:8500 (known: %s)", redactRaw(uri), names())
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("registry URI: %w", redact(err))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("registry URI %q has no scheme (known: %s)", u.Redacted(), names())
	}
	s, ok := lookup(u.Scheme)
	if !ok {
		return nil, fmt.Errorf("unknown registry scheme %q in %q (known: %s)", u.Scheme, u.Redacted(), names())
	}
	return s.open(u, o)
}

// redactRaw hides what could be a password in a string that is not a URL:
// anything before an @.
func redactRaw(s string) string {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return "xxxxx" + s[i:]
	}
	return s
}

// redact drops the URL from a parse error: it may hold a password.
func redact(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
