// Package registry opens a backend by the scheme of its URI.
package registry

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/consul"
	"github.com/registrator/registrator/registry/consulkv"
	"github.com/registrator/registrator/registry/etcd"
	"github.com/registrator/registrator/registry/kv"
	"github.com/registrator/registrator/registry/skydns2"
	"github.com/registrator/registrator/registry/zookeeper"
)

// Options are what the command line says to every backend.
type Options struct {
	Owner string        // the owner mark of this daemon's entries
	TTL   time.Duration // -ttl, for backends whose entries expire
	Log   *logrus.Entry
}

// schemes maps each URI scheme to the adapter that serves it.
var schemes = map[string]func(*url.URL, Options) (bridge.Backend, error){
	"consul":       openConsul,
	"consul-tls":   openConsul,
	"consul-unix":  openConsul,
	"consulkv":     openConsulKV,
	"consulkv-tls": openConsulKV,
	"etcd":         openEtcd,
	"etcd+tls":     openEtcd,
	"skydns2":      openSkyDNS,
	"skydns2+tls":  openSkyDNS,
	"zookeeper":    openZooKeeper,
}

func openConsul(u *url.URL, o Options) (bridge.Backend, error) { return consul.Open(u, o.Log) }

func openConsulKV(u *url.URL, o Options) (bridge.Backend, error) {
	return consulkv.Open(u, kv.Options(o))
}

func openEtcd(u *url.URL, o Options) (bridge.Backend, error) {
	return etcd.Open(u, kv.Options(o))
}

func openSkyDNS(u *url.URL, o Options) (bridge.Backend, error) {
	return skydns2.Open(u, kv.Options(o))
}

func openZooKeeper(u *url.URL, o Options) (bridge.Backend, error) {
	return zookeeper.Open(u, kv.Options(o))
}

// Schemes lists the URI schemes Open knows, sorted.
func Schemes() []string { return slices.Sorted(maps.Keys(schemes)) }

// Open returns the backend a registry URI names. It does not connect.
func Open(uri string, o Options) (bridge.Backend, error) {
	if !strings.Contains(uri, "://") {
		return nil, fmt.Errorf("registry URI %q has no scheme, e.g. consul://127.0.0.1:8500 (known: %s)", redactRaw(uri), strings.Join(Schemes(), ", "))
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("registry URI: %w", redact(err))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("registry URI %q has no scheme (known: %s)", u.Redacted(), strings.Join(Schemes(), ", "))
	}
	open, ok := schemes[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("unknown registry scheme %q in %q (known: %s)", u.Scheme, u.Redacted(), strings.Join(Schemes(), ", "))
	}
	return open(u, o)
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
