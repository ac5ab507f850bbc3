// Package skydns2 registers services in etcd in the layout CoreDNS's etcd
// plugin (and SkyDNS 2 before it) serves as DNS records.
//
// URI: skydns2://host:port[,host:port...]/domain, with every connection
// option of etcd:// (TLS, user, marks). A service is the key
// /skydns/<domain labels reversed>/<name>/<label> holding
// {"host":"<ip>","port":<port>}, so that CoreDNS answers
// `<name>.<domain>` with A records and SRV records. The key's leaf must be
// a DNS label; see Label. Entries live on the daemon's etcd lease.
package skydns2

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/registry/etcd"
	"github.com/registrator/registrator/registry/kv"
)

// Root is where CoreDNS's etcd plugin looks by default.
const Root = "/skydns"

// Open parses a skydns2:// URI.
func Open(u *url.URL, o kv.Options) (*kv.Backend, error) {
	return etcd.OpenLayout(u, o, func(path string, _ url.Values) (kv.Layout, error) {
		prefix, err := Prefix(strings.TrimPrefix(path, "/"))
		if err != nil {
			return nil, err
		}
		return Layout{prefix: prefix}, nil
	})
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Prefix is the key prefix of a domain: /skydns/local/skydns for skydns.local.
func Prefix(domain string) (string, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" {
		return "", errors.New("no domain (e.g. skydns2://127.0.0.1:2379/skydns.local)")
	}
	labels := strings.Split(domain, ".")
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return "", fmt.Errorf("domain %q: %q is not a DNS label", domain, l)
		}
	}
	slices.Reverse(labels)
	return Root + "/" + strings.Join(labels, "/"), nil
}

// Label turns a service ID into the key's leaf, a valid DNS label: an ID
// that is one already (lower-case letters, digits and inner hyphens, at most
// 63) is kept; any other is lower-cased, each run of other characters
// becomes one hyphen, it is cut to 54 characters, and a hyphen and the
// first 8 hex digits of the ID's SHA-256 are appended, so that different IDs
// keep different labels. "host:web.1:80" → "host-web-1-80-" + 8 hex digits.
func Label(id string) string {
	if dnsLabel.MatchString(id) {
		return id
	}
	var b strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			hyphen = false
		} else if !hyphen && b.Len() > 0 {
			b.WriteByte('-')
			hyphen = true
		}
	}
	base := strings.TrimRight(b.String(), "-")
	if len(base) > 54 {
		base = strings.TrimRight(base[:54], "-")
	}
	sum := sha256.Sum256([]byte(id))
	if base == "" {
		return hex.EncodeToString(sum[:4])
	}
	return base + "-" + hex.EncodeToString(sum[:4])
}

// Layout writes SkyDNS records under a domain's prefix.
type Layout struct{ prefix string }

// record is the value: fields of CoreDNS's msg.Service.
type record struct {
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	Priority int      `json:"priority,omitempty"` // SRV priority
	Weight   int      `json:"weight,omitempty"`   // SRV weight
	TTL      uint32   `json:"ttl,omitempty"`      // the records' TTL, seconds
	Tags     []string `json:"tags,omitempty"`     // not read by CoreDNS; kept for other readers
}

func (l Layout) Prefix() string { return l.prefix }

func (l Layout) Key(s bridge.Service) string { return l.prefix + "/" + s.Name + "/" + Label(s.ID) }

func (l Layout) Value(s bridge.Service) ([]byte, error) {
	return json.Marshal(record{Host: s.Address, Port: s.Port, Priority: s.Priority, Weight: s.Weight, TTL: uint32(s.RecordTTL), Tags: s.Tags})
}

// Parse reads a record back; the ID of an entry without our mark is its label.
func (l Layout) Parse(key string, value []byte) (bridge.Service, bool) {
	rest, ok := strings.CutPrefix(key, l.prefix+"/")
	if !ok {
		return bridge.Service{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	var r record
	if i <= 0 || i == len(rest)-1 || json.Unmarshal(value, &r) != nil {
		return bridge.Service{}, false
	}
	return bridge.Service{Name: rest[:i], ID: rest[i+1:], Address: r.Host, Port: r.Port, Tags: r.Tags,
		Priority: r.Priority, Weight: r.Weight, RecordTTL: int(r.TTL)}, true
}
