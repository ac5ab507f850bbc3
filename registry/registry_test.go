package registry

import (
	"net/url"
	"strings"
	"testing"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/registrytest"
)

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct{ uri, err string }{
		{"127.0.0.1:8500", "has no scheme, e.g. consul://127.0.0.1:8500"},
		{"", "has no scheme"},
		{"user:s3cret@h:1", "has no scheme"},
		{"nosuch://h:1", `unknown registry scheme "nosuch"`},
		{"consul://h:1/prefix", "takes no prefix"},
		{"etcd://user:s3cret@127.0.0.1:1/x?bogus=1", "xxxxx"},
		{"consulkv://127.0.0.1:1", "no key prefix"},
		{"zookeeper://127.0.0.1:1", "base path"},
		{"skydns2://127.0.0.1:1", "no domain"},
		{"consul://%zz", "registry URI"},
	} {
		_, err := Open(tc.uri, bridge.BackendOptions{Owner: "o", Log: registrytest.Quiet()})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Open(%q) = %v, want an error containing %q", tc.uri, err, tc.err)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(%q) error %q shows the password or spans lines", tc.uri, err)
		}
	}
}

// No URI makes Open panic, hang or show a password in its error; a
// backend it returns can be closed. Open does no I/O, so fuzzing sends
// nothing anywhere.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{
		"consul://127.0.0.1:8500", "consul-tls://h:8501", "consul-unix:///var/run/consul.sock", "consul-unix://",
		"etcd://a:1,b:2/p?format=json", "etcd+tls://h:1/p?ca=/x&cert=/y&key=/z", "etcd://u:secret@h:1/p",
		"skydns2://h:1/skydns.local", "consulkv://h:1/p?marks=m", "zookeeper://h:1,h:2/base?marks=/m",
		"etcd://h:1/p?marks=", "zookeeper://h:1/a//b", "skydns2://h:1/a..b", "consul://[::1]:8500", "::", "%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		b, err := Open(uri, bridge.BackendOptions{Owner: "o", Log: registrytest.Quiet()})
		if err != nil {
			if u, perr := url.Parse(uri); perr == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(err.Error(), ":"+pw+"@") {
					t.Fatalf("Open(%q) error %q shows the password", uri, err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("Open(%q) error %q spans lines", uri, err)
			}
			return
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close after Open(%q): %v", uri, err)
		}
	})
}
