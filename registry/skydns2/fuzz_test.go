package skydns2

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/registrator/registrator/bridge"
)

// FuzzRecord feeds any key and value another writer (another daemon,
// CoreDNS's operator, a script) may have left under the domain's prefix
// to Layout.Parse: no panic; a record it reads is <prefix>/<name>/<label>
// with neither part empty; and the record this daemon writes for a
// service reads back as the service, under its ID's label.
func FuzzRecord(f *testing.F) {
	f.Add("/skydns/local/skydns/web/host-web-1-80-0a1b2c3d", []byte(`{"host":"10.0.0.5","port":8080,"priority":1,"weight":2,"ttl":30,"tags":["a"]}`), "host:web.1:80", "web", "10.0.0.5", 8080, 1, 2, 30, "a")
	f.Add("/skydns/local/skydns/a/b/c", []byte(`{"port":1e99}`), "x", "a/b", "fd00::1", -1, 0, 0, -5, "")
	f.Add("/skydns/local/skydns//", []byte(`null`), "", "", "", 0, 0, 0, 0, "")
	f.Add("/skydns/local/skydns/x/", []byte(`{"ttl":-1,"host":5}`), "é", "n", "h", 65536, -1, 70000, 1<<40, "t")
	f.Fuzz(func(t *testing.T, key string, value []byte, id, name, host string, port, priority, weight, ttl int, tag string) {
		l := Layout{prefix: "/skydns/local/skydns"}
		if s, ok := l.Parse(key, value); ok {
			if s.Name == "" || s.ID == "" || strings.Contains(s.ID, "/") || key != l.prefix+"/"+s.Name+"/"+s.ID {
				t.Fatalf("Parse(%q, %q) = %+v", key, value, s)
			}
		}

		if name == "" || !utf8.ValidString(host) || !utf8.ValidString(tag) || ttl < 0 || ttl > 1<<31 {
			return
		}
		s := bridge.Service{ID: id, Name: name, Address: host, Port: port, Priority: priority, Weight: weight, RecordTTL: ttl}
		if tag != "" {
			s.Tags = []string{tag}
		}
		v, err := l.Value(s)
		if err != nil {
			t.Fatal(err)
		}
		back, ok := l.Parse(l.Key(s), v)
		if !ok || back.ID != Label(id) || back.Name != name || back.Address != host || back.Port != port ||
			back.Priority != priority || back.Weight != weight || back.RecordTTL != ttl || !slices.Equal(back.Tags, s.Tags) {
			t.Fatalf("wrote %+v at %s as %s, read back %+v (%v)", s, l.Key(s), v, back, ok)
		}
	})
}
