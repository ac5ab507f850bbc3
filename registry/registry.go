// Package registry opens a backend by the scheme of its URI.
package registry

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/consul"
)

// schemes maps each URI scheme to the adapter that serves it.
var schemes = map[string]func(*url.URL) (bridge.Backend, error){
	"consul":      openConsul,
	"consul-tls":  openConsul,
	"consul-unix": openConsul,
}

func openConsul(u *url.URL) (bridge.Backend, error) { return consul.Open(u) }

// Schemes lists the URI schemes Open knows, sorted.
func Schemes() []string { return slices.Sorted(maps.Keys(schemes)) }

// Open returns the backend a registry URI names. It does not connect.
func Open(uri string) (bridge.Backend, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("registry URI %q: %w", uri, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("registry URI %q has no scheme (known: %s)", uri, strings.Join(Schemes(), ", "))
	}
	open, ok := schemes[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("unknown registry scheme %q in %q (known: %s)", u.Scheme, u.Redacted(), strings.Join(Schemes(), ", "))
	}
	return open(u)
}
