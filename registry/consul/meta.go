package consul

import (
	"fmt"
	"slices"
	"strings"

	"github.com/registrator/registrator/internal/shorten"
)

// Limits Consul puts on service Meta.
const (
	maxMetaPairs     = 64
	maxMetaKeyLen    = 128
	maxMetaValueLen  = 512
	reservedByConsul = "consul-"
)

// Meta turns a container's attributes into service Meta that Consul
// accepts: characters other than letters, digits, '_' and '-' become '_',
// keys and values are cut to Consul's limits (values on a rune boundary),
// Consul's reserved "consul-" prefix and our own "registrator-" prefix get a
// leading '_', and past Consul's limit of pairs (less the 3 of our mark) the
// rest are left out, in key order. Where two keys become one, the first in
// key order wins. notes say what was cut or left out; renamed keys are
// documented behaviour and not noted.
func Meta(attrs map[string]string) (meta map[string]string, notes []string) {
	return metaWithin(attrs, 3)
}

// metaWithin is Meta leaving room for reserved pairs of ours: 3 for the
// mark, 4 with the writer's host (MetaWriter).
func metaWithin(attrs map[string]string, reserved int) (meta map[string]string, notes []string) {
	out := make(map[string]string, len(attrs)+reserved)
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if len(out) >= maxMetaPairs-reserved {
			notes = append(notes, fmt.Sprintf("%d attribute(s) from %q on left out: Consul takes %d meta pairs, %d of them registrator's", len(keys)-i, k, maxMetaPairs, reserved))
			break
		}
		nk, cut := metaKey(k)
		if nk == "" {
			continue
		}
		if _, dup := out[nk]; dup {
			notes = append(notes, fmt.Sprintf("attribute %q left out: it is meta key %q, as an attribute before it", k, nk))
			continue
		}
		if cut {
			notes = append(notes, fmt.Sprintf("attribute %q: key cut to Consul's %d bytes", shorten.To(k, 40)+"…", maxMetaKeyLen))
		}
		v := shorten.To(attrs[k], maxMetaValueLen)
		if len(v) < len(attrs[k]) {
			notes = append(notes, fmt.Sprintf("attribute %q: value of %d bytes cut to Consul's %d", k, len(attrs[k]), maxMetaValueLen))
		}
		out[nk] = v
	}
	return out, notes
}

// metaKey is the meta key of attribute k, and whether it had to be cut to
// Consul's length (once sanitised, not as given).
func metaKey(k string) (key string, cut bool) {
	var b strings.Builder
	for _, r := range k {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	nk := b.String()
	if strings.HasPrefix(nk, reservedByConsul) || strings.HasPrefix(nk, metaReserved) {
		nk = "_" + nk
	}
	return shorten.To(nk, maxMetaKeyLen), len(nk) > maxMetaKeyLen
}
