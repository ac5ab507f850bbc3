package zookeeper

import (
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/registrator/registrator/bridge"
)

// FuzzZnode feeds any path and body another writer may have left under
// the base path to Layout.Parse: no panic; a node it reads is
// <base>/<name>/<leaf> with neither part empty nor holding a slash; and the
// znode this daemon writes for a service reads back as the service.
func FuzzZnode(f *testing.F) {
	f.Add("/services", "/services/web/10.0.0.5:8080", []byte(`{"Name":"web","IP":"10.0.0.5","PublicPort":8080,"PrivatePort":80,"ContainerID":"c","Tags":["a"],"Attrs":{"k":"v"}}`), "web", "10.0.0.5", 8080, 80, "a", "k", "v")
	f.Add("/s", "/s/web/a/b", []byte(`{"PublicPort":1e99}`), "w/x", "fd00::1", -1, 0, "", "", "")
	f.Add("/s", "/s//x", []byte(`null`), "", "", 0, 0, "", "", "")
	f.Add("/s", "/s/n/x", []byte(`{"Tags":null,"Attrs":[]}`), "n", "host", 65535, 65536, "t", "", "")
	f.Fuzz(func(t *testing.T, base, key string, body []byte, name, addr string, port, exposed int, tag, mk, mv string) {
		l := Layout{Base: base}
		if s, ok := l.Parse(key, body); ok {
			if s.Name == "" || s.ID == "" || strings.Contains(s.Name, "/") || strings.Contains(s.ID, "/") || key != base+"/"+s.Name+"/"+s.ID {
				t.Fatalf("Parse(%q, %q) = %+v", key, body, s)
			}
		}

		if name == "" || strings.Contains(name, "/") || strings.Contains(addr, "/") || !valid(name, addr, tag, mk, mv) {
			return
		}
		s := bridge.Service{Name: name, Address: addr, Port: port, ExposedPort: exposed, Container: "c"}
		if tag != "" {
			s.Tags = []string{tag}
		}
		if mk != "" {
			s.Meta = map[string]string{mk: mv}
		}
		v, err := l.Value(s)
		if err != nil {
			t.Fatal(err)
		}
		back, ok := l.Parse(l.Key(s), v)
		if !ok || back.Name != s.Name || back.Address != s.Address || back.Port != s.Port || back.ExposedPort != s.ExposedPort ||
			!slices.Equal(back.Tags, s.Tags) || !maps.Equal(back.Meta, s.Meta) || back.ID != net.JoinHostPort(addr, strconv.Itoa(port)) {
			t.Fatalf("wrote %+v at %s as %s, read back %+v (%v)", s, l.Key(s), v, back, ok)
		}
	})
}

// valid reports whether every string is valid UTF-8, which JSON keeps.
func valid(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
