package kv

import (
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/registrator/registrator/bridge"
)

// FuzzParse feeds what another writer of the shared store may have left
// (any key, any value) to both layouts' Parse and to the marks' parser:
// none may panic, a key Plain reads back is the key it would write for
// what it read, and what this daemon writes reads back as written.
func FuzzParse(f *testing.F) {
	f.Add("/services", "/services/web/host:web.1:80", []byte("10.0.0.5:8080"), "web", "host:web.1:80", "10.0.0.5", 8080, "owner-a")
	f.Add("/services", "/services/web/a/b", []byte(`{"id":"x","address":"fd00::1","port":80,"tags":["a"],"meta":{"k":"v"}}`), "w", "a/b", "fd00::1", 1, "o")
	f.Add("", "/web/", []byte("[::1]:99999999999999999999"), "", "", "", -1, "")
	f.Add("/p", "/p//x", []byte(`{"port":1e99}`), "n", "i", "host%zone", 0, "a/b")
	f.Add("/registrator/_/entries/", "/registrator/_/entries/o/x", []byte(`{"id":"x","key":"/p/n/x","rev":"r"}`), "n", "x", "1.2.3.4", 65535, "o")
	f.Fuzz(func(t *testing.T, path, key string, value []byte, name, id, addr string, port int, owner string) {
		// Anything read back.
		if s, ok := (Plain{Path: path}).Parse(key, value); ok {
			if got := (Plain{Path: path}).Key(s); got != key {
				t.Fatalf("Plain.Parse(%q) = %+v, whose key is %q", key, s, got)
			}
			if s.Name == "" || s.ID == "" || strings.Contains(s.Name, "/") {
				t.Fatalf("Plain.Parse(%q) = %+v: no name or ID, or a name with a slash", key, s)
			}
		}
		if s, ok := (JSON{Path: path}).Parse(key, value); ok && s.Name == "" {
			t.Fatalf("JSON.Parse(%q, %q) = %+v: no name", key, value, s)
		}
		if o, m, ok := parseMark(path, key, value); ok && (o == "" || strings.Contains(o, "/") || m.Key == "" || !strings.HasPrefix(key, path+o+"/")) {
			t.Fatalf("parseMark(%q, %q, %q) = %q, %+v", path, key, value, o, m)
		}

		// What this daemon writes.
		if name == "" || id == "" || strings.Contains(name, "/") || net.ParseIP(addr) == nil {
			return
		}
		s := bridge.Service{ID: id, Name: name, Address: addr, Port: port, Tags: []string{name}, Meta: map[string]string{"id": id}}
		for _, l := range []Layout{Plain{Path: path}, JSON{Path: path}} {
			v, err := l.Value(s)
			if err != nil {
				t.Fatal(err)
			}
			back, ok := l.Parse(l.Key(s), v)
			if !ok || back.ID != s.ID || back.Name != s.Name || back.Port != s.Port || net.ParseIP(back.Address).String() != net.ParseIP(addr).String() {
				if _, isJSON := l.(JSON); isJSON && !valid(id, name) {
					continue // JSON replaces invalid UTF-8
				}
				t.Fatalf("%T: %+v read back as %+v (%v)", l, s, back, ok)
			}
			if _, isJSON := l.(JSON); isJSON && valid(id, name) && (!slices.Equal(back.Tags, s.Tags) || back.Meta["id"] != id) {
				t.Fatalf("JSON: tags and meta of %+v read back as %+v", s, back)
			}
		}
		if owner == "" || strings.Contains(owner, "/") || !valid(owner, id, key, name) {
			return
		}
		b := &Backend{marks: strings.TrimSuffix(path, "/")}
		prefix := b.marks + "/entries/"
		m := mark{ID: id, Key: key + "/", Container: name, Revision: addr, Sum: sum(value), Host: owner}
		mv, _ := json.Marshal(m)
		o, back, ok := parseMark(prefix, b.markKey(owner, id), mv)
		if !ok || o != owner || back != m {
			t.Fatalf("mark %+v of %q at %q read back as %q, %+v (%v)", m, owner, b.markKey(owner, id), o, back, ok)
		}
		if u, err := url.PathUnescape(strings.TrimPrefix(b.markKey(owner, id), prefix+owner+"/")); err != nil || u != id {
			t.Fatalf("mark key of %q ends in %q", id, u)
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
