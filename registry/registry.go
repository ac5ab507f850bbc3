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
	user    bool // takes user information: etcd's user name and password
}

// table is the only place a backend is registered: adding one is its
// package and a row here. The usage text lists it from here, and a test
// checks that the README documents every scheme.
var table = []Scheme{
	{"consul", "consul://host:port", adapter(consul.Open), false, false},
	{"consul-tls", "consul-tls://host:port", adapter(consul.Open), false, false},
	{"consul-unix", "consul-unix:///path/to/consul.sock", adapter(consul.Open), false, false},
	{"consulkv", "consulkv://host:port/prefix", adapter(consulkv.Open), false, false},
	{"consulkv-tls", "consulkv-tls://host:port/prefix", adapter(consulkv.Open), false, false},
	{"etcd", "etcd://host:port[,host:port]/prefix", openEtcd, true, true},
	{"etcd+tls", "etcd+tls://host:port[,host:port]/prefix", openEtcd, true, true},
	{"skydns2", "skydns2://host:port/domain", openSkyDNS2, true, true},
	{"skydns2+tls", "skydns2+tls://host:port/domain", openSkyDNS2, true, true},
	{"zookeeper", "zookeeper://host:port[,host:port]/basepath", adapter(zookeeper.Open), false, false},
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
	u, err := Parse(uri)
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
	u, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	s, ok := lookup(u.Scheme)
	if !ok {
		return nil, fmt.Errorf("unknown registry scheme %q in %s (known: %s)", u.Scheme, Display(u), names())
	}
	// registrator ignored user information where the adapter takes none,
	// and a run line that has one must keep starting: it is dropped, and
	// once the backend is open the operator is told where credentials go,
	// without them.
	dropped := u.User != nil && !s.user
	if dropped {
		u.User = nil
	}
	b, err := s.open(u, o)
	if err == nil && dropped && o.Log != nil {
		o.Log.Warnf("%s: a %s URI takes no user name or password: the one given is ignored (%s)", Display(u), s.Name, noUser(s.Name))
	}
	return b, err
}

// Parse parses a registry URI. It refuses one whose user information did
// not parse as such: a password with an unencoded /, ?, # or @ leaves part
// of it in the host, the path or the query, where it would be printed (and
// sent) as an address. Its errors never hold the user information, nor
// anything that could be part of it.
func Parse(uri string) (*url.URL, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return nil, fmt.Errorf("registry URI %q has no scheme, e.g. consul://127.0.0.1:8500 (known: %s)", afterAt(uri), names())
	}
	u, err := url.Parse(uri)
	if err != nil && strings.Contains(rest, "@") {
		// Whether the part after the last @ parses alone tells a bad
		// user information from a bad host or path.
		if _, err2 := url.Parse(scheme + "://" + afterAt(rest)); err2 != nil {
			return nil, fmt.Errorf("registry URI: %w", redact(err2))
		}
	}
	switch {
	case strings.Contains(rest, "@") && (err != nil || strings.Contains(u.EscapedPath()+u.RawQuery+u.EscapedFragment(), "@")):
		return nil, fmt.Errorf("registry URI %s://...: its user information did not parse (or an @ follows the host): "+
			"percent-encode the user name and password (/ as %%2F, ? as %%3F, # as %%23, @ as %%40, %% as %%25, space as %%20)", safeScheme(scheme))
	case err != nil:
		return nil, fmt.Errorf("registry URI: %w", redact(err))
	case u.Scheme == "":
		return nil, fmt.Errorf("registry URI %q has no scheme (known: %s)", Display(u), names())
	}
	return u, nil
}

// Display is the printable form of a registry URI, for logs, errors and
// metric labels: its scheme, host and path, never its user information
// (neither password nor user name) and not its query. A URI from Parse
// holds no @ outside its user information, so nothing of a password that
// did not parse can be in its host or path either.
func Display(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.Path
}

// DisplayURI is Display of a URI given as text, or only its scheme when it
// does not parse (Parse says why).
func DisplayURI(uri string) string {
	if u, err := Parse(uri); err == nil {
		return Display(u)
	}
	scheme, _, _ := strings.Cut(uri, "://")
	return safeScheme(scheme) + "://..."
}

// noUser says where a scheme's credentials go instead of the URI.
func noUser(scheme string) string {
	if strings.HasPrefix(scheme, "consul") {
		return "Consul's ACL token: CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE; HTTP basic authentication to a proxy: CONSUL_HTTP_AUTH"
	}
	return "the adapter does not authenticate"
}

// afterAt is what follows the last @ of a string that is not a URL: the
// part before it could be user information.
func afterAt(s string) string {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// safeScheme is scheme when it is one (letters, digits, +, - and .), else
// "?": what precedes :// in text that is not a URI could be anything.
func safeScheme(scheme string) string {
	if scheme == "" || strings.IndexFunc(scheme, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.')
	}) >= 0 {
		return "?"
	}
	return scheme
}

// redact drops the URL from a parse error: it may hold a password.
func redact(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
