package docker

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/go-connections/nat"
)

// entry is one piece of metadata with the key as the user wrote it, so that
// warnings can name it.
type entry struct{ key, value string }

// metadata is every SERVICE_* key of a container: generic, per port range
// (SERVICE_10000-10100_IGNORE), per port (SERVICE_80_NAME) and per port and
// protocol (SERVICE_53_udp_NAME). For one port the most specific wins: port
// and protocol, port, range, container.
type metadata struct {
	generic map[string]entry            // by lower-cased key
	ports   map[string]map[string]entry // by exposed port, then key
	protos  map[string]map[string]entry // by "port/proto", then key
	ranges  map[portRange]map[string]entry
}

// portRange is the port part of a SERVICE_<start>-<end>_<KEY>.
type portRange struct{ lo, hi int }

func (r portRange) String() string { return strconv.Itoa(r.lo) + "-" + strconv.Itoa(r.hi) }

func (r portRange) has(port int) bool { return r.lo <= port && port <= r.hi }

// protocols a SERVICE_<port>_<proto>_<KEY> may name.
var protocols = []string{"tcp", "udp", "sctp"}

// readMetadata reads env ("K=V") and labels; a label beats an env var.
// Among env vars the last of a key wins, as in the container; among labels
// that differ only in case (SERVICE_Name, SERVICE_NAME) the first in byte
// order wins, so that the result never depends on map order.
func readMetadata(env []string, labels map[string]string) metadata {
	md := metadata{generic: map[string]entry{}, ports: map[string]map[string]entry{}, protos: map[string]map[string]entry{}, ranges: map[portRange]map[string]entry{}}
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
	p, key, ok := strings.Cut(rest, "_")
	switch {
	case ok && key != "" && digits(p):
		if proto, k, ok := strings.Cut(key, "_"); ok && k != "" && slices.Contains(protocols, proto) {
			put(md.protos, p+"/"+proto, k, entry{full, value})
			return
		}
		put(md.ports, p, key, entry{full, value})
		return
	case ok && key != "":
		lo, hi, isRange := strings.Cut(p, "-")
		if isRange && digits(lo) && digits(hi) {
			r := portRange{atoi(lo), atoi(hi)}
			put(md.ranges, r, key, entry{full, value}) // an empty range is reported by misplaced
			return
		}
	}
	md.generic[rest] = entry{full, value}
}

func put[K comparable](m map[K]map[string]entry, k K, key string, e entry) {
	if m[k] == nil {
		m[k] = map[string]entry{}
	}
	m[k][key] = e
}

// atoi reads a run of digits, saturating past the largest port.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s) && n <= 65535; i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// portMetadata is the metadata that applies to one exposed port: each
// level's keys, the most specific first.
type portMetadata struct {
	levels [4]map[string]entry // port and protocol, port, range, container
}

// forPort is the metadata of port p ("53") and protocol proto ("udp").
// Where several ranges hold the port, the narrowest wins, then the one
// that starts lower, so that the answer never depends on map order.
func (md metadata) forPort(p, proto string) portMetadata {
	var rng map[string]entry
	var best portRange
	n := atoi(p)
	for r, keys := range md.ranges {
		if !r.has(n) {
			continue
		}
		if rng == nil || r.hi-r.lo < best.hi-best.lo || r.hi-r.lo == best.hi-best.lo && r.lo < best.lo {
			rng, best = keys, r
		}
	}
	return portMetadata{levels: [4]map[string]entry{md.protos[p+"/"+proto], md.ports[p], rng, md.generic}}
}

func (m portMetadata) get(key string) (entry, bool) {
	for _, l := range m.levels {
		if e, ok := l[key]; ok {
			return e, true
		}
	}
	return entry{}, false
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

// applied is every key that applies, as KEY=value with the key as written,
// each the most specific one, sorted.
func (m portMetadata) applied() []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range m.levels {
		for k, e := range l {
			if !seen[k] {
				seen[k] = true
				out = append(out, e.key+"="+e.value)
			}
		}
	}
	slices.Sort(out)
	return out
}

// fromPort reports whether key is set for the port itself (with or
// without its protocol, or by a range), not for the whole container.
func (m portMetadata) fromPort(key string) bool {
	for _, l := range m.levels[:3] {
		if _, ok := l[key]; ok {
			return true
		}
	}
	return false
}

// named reports whether any key is set for the port itself (with or
// without its protocol, or by a range).
func (m portMetadata) named() bool {
	for _, l := range m.levels[:3] {
		if len(l) > 0 {
			return true
		}
	}
	return false
}

// attributes are the keys that are not known keys, for the backend to
// store: at most maxAttributes of them, in key order, each value at most
// maxValueBytes; warnings say what was left out.
func (m portMetadata) attributes() (map[string]string, []error) {
	var attrs map[string]string
	from := map[string]entry{}
	for _, src := range []map[string]entry{m.levels[3], m.levels[2], m.levels[1], m.levels[0]} { // the more specific last: it wins
		for k, e := range src {
			switch {
			case k == KeyName, k == KeyID, k == KeyTags, k == KeyIgnore, k == KeyDockerHealth, k == KeyNetwork, k == KeyIPFamily, k == KeyDrain, k == KeyDeregister, k == KeyTagOverride, k == KeyConnectSidecar, strings.HasPrefix(k, KeyCheckPrefix):
				continue
			}
			if attrs == nil {
				attrs = map[string]string{}
			}
			attrs[k], from[k] = e.value, e
		}
	}
	var warnings []error
	keys := slices.Sorted(maps.Keys(attrs))
	kept := 0
	for i, k := range keys {
		e := from[k]
		switch {
		case kept == maxAttributes:
			warnings = append(warnings, fmt.Errorf("%s and %d more: a service takes at most %d attributes, left out", e.key, len(keys)-i-1, maxAttributes))
			for _, k := range keys[i:] {
				delete(attrs, k)
			}
			return attrs, warnings
		case len(e.value) > maxValueBytes:
			warnings = append(warnings, fmt.Errorf("%s: an attribute's value is at most %d bytes, left out", described(e.key, e.value), maxValueBytes))
			delete(attrs, k)
		default:
			kept++
		}
	}
	return attrs, warnings
}

// namedPorts are the ports that per-port keys name, with their protocol
// (SERVICE_53_udp_NAME) or as TCP (SERVICE_80_NAME), sorted; a number past
// the last port is left out.
func (md metadata) namedPorts() []nat.Port {
	var out []nat.Port
	for p := range md.ports {
		if n := atoi(p); n > 0 && n <= 65535 {
			out = append(out, nat.Port(strconv.Itoa(n)+"/tcp"))
		}
	}
	for pp := range md.protos {
		p, proto, _ := strings.Cut(pp, "/")
		if n := atoi(p); n > 0 && n <= 65535 {
			out = append(out, nat.Port(strconv.Itoa(n)+"/"+proto))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// misplaced reports keys that can never apply: per-port keys for a port the
// container has not got (with the protocol, for that protocol), range keys
// for a range that holds none of its ports or is empty, and keys whose port
// part starts with a digit but is not a number (SERVICE_80a_NAME), which
// count as attributes. exposed is every port the container exposes or
// publishes.
func (md metadata) misplaced(exposed []nat.Port) []error {
	has := func(p int, proto string) bool {
		return slices.ContainsFunc(exposed, func(e nat.Port) bool { return e.Int() == p && (proto == "" || e.Proto() == proto) })
	}
	var out []error
	for _, p := range slices.Sorted(maps.Keys(md.ports)) {
		if has(atoi(p), "") {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(md.ports[p])) {
			e := md.ports[p][k]
			out = append(out, fmt.Errorf("%s: the container neither exposes nor publishes port %s, ignored", described(e.key, e.value), p))
		}
	}
	for _, pp := range slices.Sorted(maps.Keys(md.protos)) {
		p, proto, _ := strings.Cut(pp, "/")
		if has(atoi(p), proto) {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(md.protos[pp])) {
			e := md.protos[pp][k]
			out = append(out, fmt.Errorf("%s: the container neither exposes nor publishes port %s, ignored", described(e.key, e.value), pp))
		}
	}
	ranges := slices.SortedFunc(maps.Keys(md.ranges), func(a, b portRange) int { return cmp.Or(a.lo-b.lo, a.hi-b.hi) })
	for _, r := range ranges {
		why := ""
		switch {
		case r.lo > r.hi || r.hi > 65535:
			why = fmt.Sprintf("%s is not a port range (start-end, start at most end, at most 65535), ignored", r)
		case slices.ContainsFunc(exposed, func(e nat.Port) bool { return r.has(e.Int()) }):
			continue
		default:
			why = fmt.Sprintf("the container neither exposes nor publishes a port in %s, ignored", r)
		}
		for _, k := range slices.Sorted(maps.Keys(md.ranges[r])) {
			e := md.ranges[r][k]
			out = append(out, fmt.Errorf("%s: %s", described(e.key, e.value), why))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(md.generic)) {
		p, _, ok := strings.Cut(k, "_")
		if ok && p != "" && p[0] >= '0' && p[0] <= '9' && !digits(p) {
			e := md.generic[k]
			out = append(out, fmt.Errorf("%s: %q is not a port number, so this is attribute %q", described(e.key, e.value), p, k))
		}
	}
	return out
}

// dnsLabel is what DNS interfaces (Consul's, skydns2) can serve as a
// service name, by Consul's rule.
var dnsLabel = regexp.MustCompile(`^[A-Za-z0-9-]{1,63}$`)
