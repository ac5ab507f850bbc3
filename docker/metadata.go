package docker

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// entry is one piece of metadata with the key as the user wrote it, so that
// warnings can name it.
type entry struct{ key, value string }

// metadata is every SERVICE_* key of a container, generic and per port.
type metadata struct {
	generic map[string]entry            // by lower-cased key
	ports   map[string]map[string]entry // by exposed port, then key
}

// readMetadata reads env ("K=V") and labels; a label beats an env var.
// Among env vars the last of a key wins, as in the container; among labels
// that differ only in case (SERVICE_Name, SERVICE_NAME) the first in byte
// order wins, so that the result never depends on map order.
func readMetadata(env []string, labels map[string]string) metadata {
	md := metadata{generic: map[string]entry{}, ports: map[string]map[string]entry{}}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			md.add(k, v)
		}
	}
	keys := slices.Sorted(maps.Keys(labels))
	slices.Reverse(keys)
	for _, k := range keys {
		md.add(k, labels[k])
	}
	return md
}

func (md metadata) add(full, value string) {
	rest, ok := strings.CutPrefix(full, Prefix)
	if !ok || rest == "" {
		return
	}
	rest = strings.ToLower(rest)
	if p, key, ok := strings.Cut(rest, "_"); ok && key != "" && digits(p) {
		if md.ports[p] == nil {
			md.ports[p] = map[string]entry{}
		}
		md.ports[p][key] = entry{full, value}
		return
	}
	md.generic[rest] = entry{full, value}
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// portMetadata is the metadata that applies to one exposed port.
type portMetadata struct{ generic, port map[string]entry }

func (md metadata) forPort(p string) portMetadata {
	return portMetadata{generic: md.generic, port: md.ports[p]}
}

func (m portMetadata) get(key string) (entry, bool) {
	if e, ok := m.port[key]; ok {
		return e, true
	}
	e, ok := m.generic[key]
	return e, ok
}

// value is the value of key, "" if unset.
func (m portMetadata) value(key string) string {
	e, _ := m.get(key)
	return e.value
}

// key is the key as the user wrote it.
func (m portMetadata) key(key string) string {
	if e, ok := m.get(key); ok {
		return e.key
	}
	return Prefix + strings.ToUpper(key)
}

func (m portMetadata) fromPort(key string) bool {
	_, ok := m.port[key]
	return ok
}

// attributes are the keys that are not known keys, for the backend to store.
func (m portMetadata) attributes() map[string]string {
	var attrs map[string]string
	for _, src := range []map[string]entry{m.generic, m.port} {
		for k, e := range src {
			switch {
			case k == KeyName, k == KeyID, k == KeyTags, k == KeyIgnore, k == KeyDockerHealth, k == KeyNetwork, k == KeyIPFamily, k == KeyDrain, k == KeyDeregister, strings.HasPrefix(k, KeyCheckPrefix):
				continue
			}
			if attrs == nil {
				attrs = map[string]string{}
			}
			attrs[k] = e.value
		}
	}
	return attrs
}

// misplaced reports keys that can never apply: per-port keys for a port the
// container has not got, and keys whose port part starts with a digit but
// is not a number (SERVICE_80a_NAME), which count as attributes.
func (md metadata) misplaced(has func(port string) bool) []error {
	var out []error
	for _, p := range slices.Sorted(maps.Keys(md.ports)) {
		if has(p) {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(md.ports[p])) {
			e := md.ports[p][k]
			out = append(out, fmt.Errorf("%s=%q: the container neither exposes nor publishes port %s, ignored", e.key, e.value, p))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(md.generic)) {
		p, _, ok := strings.Cut(k, "_")
		if ok && p != "" && p[0] >= '0' && p[0] <= '9' && !digits(p) {
			e := md.generic[k]
			out = append(out, fmt.Errorf("%s=%q: %q is not a port number, so this is attribute %q", e.key, e.value, p, k))
		}
	}
	return out
}

// dnsLabel is what DNS interfaces (Consul's, skydns2) can serve as a
// service name, by Consul's rule.
var dnsLabel = regexp.MustCompile(`^[A-Za-z0-9-]{1,63}$`)
