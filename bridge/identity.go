package bridge

import (
	"errors"
	"strings"
)

// Identity is the owner mark of this host's entries. The rule:
//
//   - the mark is "<engine ID>@<host name>": the engine's ID alone is not
//     unique, since engines started from one machine image share
//     /etc/docker/key.json and with it their ID; the host name is what
//     tells such hosts apart (service IDs start with it too, so two hosts
//     that share a name collide in every backend anyway). An explicit
//     identity (-id) replaces it.
//   - an entry is this host's when it carries the mark; or when an earlier
//     version wrote it, marked with the bare engine ID, for a container
//     that runs on this engine: it is adopted, and rewritten in place with
//     the mark at its next sync (nothing is deregistered).
//   - an entry marked with this engine's ID and another host's name
//     belongs to a host whose engine shares the key: it is never touched.
//   - a mark set by hand can be given to several hosts by mistake: the
//     key-value backends, which all hosts share, keep the writer's host
//     name beside it (Writer), and an entry with this mark that another
//     host wrote is never touched either.
//
// Create it with NewIdentity; nothing else compares owner marks.
type Identity struct {
	mark, engine, host string
	explicit           bool // the mark was set by hand (-id)
}

// NewIdentity is the identity of a host whose engine reports engineID and
// whose name is host; a non-empty explicit identity (-id) replaces the
// mark. An engine without a stable ID (Podman's) passes an engineID of the
// form "<kind>@<host>" and no legacy marks are adopted for it.
func NewIdentity(engineID, host, explicit string) Identity {
	if explicit != "" {
		return Identity{mark: explicit, engine: engineID, host: host, explicit: true}
	}
	if strings.Contains(engineID, "@") {
		return Identity{mark: engineID, host: host}
	}
	return Identity{mark: engineID + "@" + host, engine: engineID, host: host}
}

// Adopting is i, taking for its own, as it does an earlier version's bare
// engine ID, the entries marked legacy whose containers run on this
// engine: the mark an earlier version wrote where the rule has changed
// since (a rootless Podman's, once "podman@<host>").
func (i Identity) Adopting(legacy string) Identity {
	i.engine = legacy
	return i
}

// ValidMark reports why s cannot be an identity given with -id, nil if it
// can: marks are stored in key paths and Consul Meta values.
func ValidMark(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case strings.ContainsAny(s, "/ \t\r\n"):
		return errors.New("contains a slash or white space")
	case len(s) > 256:
		return errors.New("longer than 256 bytes")
	}
	return nil
}

// String is the mark written with every entry.
func (i Identity) String() string { return i.mark }

// owns reports whether an entry marked owner is this host's; local says
// whether the entry's container is on this engine.
func (i Identity) owns(owner string, local bool) bool {
	return owner == i.mark || local && i.engine != "" && owner == i.engine
}

// Writer is what backends keep beside the mark to tell apart the hosts
// that carry it: this host's name when the mark was set by hand, "" when
// the mark has it already (or is shared on purpose, as the swarm's).
func (i Identity) Writer() string {
	if i.explicit {
		return i.host
	}
	return ""
}

// otherWriter is the host that wrote an entry marked with this host's own
// mark: another host given the same -id. "" for any other entry.
func (i Identity) otherWriter(owner, writer string) string {
	if !i.explicit || owner != i.mark || writer == "" || writer == i.host {
		return ""
	}
	return writer
}

// twin is the host name in the mark of an entry that another host wrote
// with this engine's ID (a shared key.json), "" for any other mark.
func (i Identity) twin(owner string) string {
	engine, host, ok := strings.Cut(owner, "@")
	if !ok || i.engine == "" || engine != i.engine || host == i.host || owner == i.mark {
		return ""
	}
	return host
}
