package consul

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/registrator/registrator/bridge"
)

// FuzzServices feeds the agent's answer to /v1/agent/services, any bytes,
// to the lean decode the daemon reads it with: no panic; the services come
// sorted by ID, none a Connect proxy, none with a meta key of ours; and
// what this daemon registers (registration) reads back as it was.
func FuzzServices(f *testing.F) {
	f.Add([]byte(`{"h:web:80":{"ID":"h:web:80","Service":"web","Address":"10.0.0.5","Port":8080,"Tags":["a"],"Meta":{"registrator-owner":"o","k":"v"}}}`), "h:web:80", "web", "10.0.0.5", 8080, "a", "k", "v", "o")
	f.Add([]byte(`{"a":null,"b":{"Kind":"connect-proxy"},"c":{"Port":1e99}}`), "", "", "", 0, "", "", "", "")
	f.Add([]byte(`{"a":{"ID":"x"},"b":{"ID":"x","Meta":null,"Tags":null}}`), "x", "n", "fd00::1", -1, "", "registrator-owner", "me", "")
	f.Add([]byte(`{"a":{"ID":"x","Serv`), "x", "n", "", 65536, "t", "consul-k", "v", "w")
	f.Add([]byte(`null`), "id", "name", "h", 1, "", "", "", "")
	f.Fuzz(func(t *testing.T, body []byte, id, name, addr string, port int, tag, key, value, owner string) {
		if got, err := decodeServices(body); err == nil {
			if !slices.IsSortedFunc(got, func(a, b bridge.Service) int { return strings.Compare(a.ID, b.ID) }) {
				t.Fatalf("%q: services not sorted by ID", body)
			}
			var kinds map[string]struct{ Kind string }
			if err := json.Unmarshal(body, &kinds); err != nil {
				t.Fatalf("%q: decoded, but not as a map of services: %v", body, err)
			}
			n := 0
			for _, k := range kinds {
				if k.Kind != "connect-proxy" {
					n++
				}
			}
			if len(got) != n {
				t.Fatalf("%q: %d services from %d that are not Connect proxies", body, len(got), n)
			}
			for _, s := range got {
				for k := range s.Meta {
					if strings.HasPrefix(k, metaReserved) {
						t.Fatalf("%q: meta key %q of ours in %+v", body, k, s)
					}
				}
			}
		}

		// Round trip of what this daemon registers.
		if !valid(id, name, addr, tag, key, value, owner) {
			return // JSON replaces invalid UTF-8
		}
		s := bridge.Service{ID: id, Name: name, Address: addr, Port: port, Owner: owner, Container: "c" + id, Writer: owner}
		if tag != "" {
			s.Tags = []string{tag}
		}
		if key != "" {
			s.Meta = map[string]string{key: value}
		}
		reg, _ := registration(s)
		agentSays, err := json.Marshal(map[string]any{id: map[string]any{
			"ID": reg.ID, "Service": reg.Name, "Address": reg.Address, "Port": reg.Port, "Tags": reg.Tags, "Meta": reg.Meta,
		}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeServices(agentSays)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v, %v", agentSays, got, err)
		}
		g := got[0]
		want, _ := metaWithin(s.Meta, 4)
		if g.ID != id || g.Name != name || g.Address != addr || g.Port != port || !slices.Equal(g.Tags, s.Tags) ||
			g.Owner != owner || g.Writer != owner || g.Container != s.Container || g.Revision != s.Fingerprint() || !maps.Equal(g.Meta, want) {
			t.Fatalf("registered %+v, read back %+v (meta want %v)", s, g, want)
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
