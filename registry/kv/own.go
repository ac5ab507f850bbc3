package kv

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/registrator/registrator/bridge"
)

// claim reads what key holds now and returns the condition under which
// this daemon may write value there as s's entry (value nil: remove it),
// or a *bridge.HeldError naming who holds it. The condition goes into the
// transaction that writes, so that nothing written in between is
// overwritten. The key is s's when
//   - it is absent;
//   - s's mark (s.Owner's, else that of s.Replaces, the mark it is adopted
//     from) names this key, s.Container, the digest of what the key holds
//     and, where both name one, s's host: this daemon wrote it for this
//     container and nobody wrote it since;
//   - it is on no lease and holds exactly value: gliderlabs/registrator
//     wrote this very entry, which is taken over in place; or, to remove
//     an unmarked entry (s.Owner "", -cleanup), it is on no lease and
//     reads back as s.
func (b *Backend) claim(ctx context.Context, s bridge.Service, key string, value []byte) (*Cond, error) {
	p, found, err := b.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", b.name, key, err)
	}
	if !found {
		return &Cond{Absent: true}, nil
	}
	ours := &Cond{Rev: p.Rev}
	owner, m, err := b.markOf(ctx, s)
	if err != nil {
		return nil, err
	}
	if owner != "" && m.Key == key && m.Sum == sum(p.Value) {
		if m.Container == s.Container && (m.Host == "" || s.Writer == "" || m.Host == s.Writer) {
			return ours, nil
		}
		return nil, bridge.NewHeldError(s.ID, owner, m.Container, m.Host, s.Owner)
	}
	if p.Lease == "" {
		if value != nil && bytes.Equal(p.Value, value) {
			return ours, nil
		}
		if value == nil && s.Owner == "" {
			if got, ok := b.layout.Parse(key, p.Value); ok && got.Name == s.Name && got.Address == s.Address && got.Port == s.Port {
				return ours, nil
			}
		}
	}
	return nil, b.heldBy(ctx, s.ID, p)
}

// markOf reads s's mark: s.Owner's, else the one of s.Replaces. owner is
// "" when there is none.
func (b *Backend) markOf(ctx context.Context, s bridge.Service) (owner string, m mark, err error) {
	for _, o := range []string{s.Owner, s.Replaces} {
		if o == "" {
			continue
		}
		key := b.markKey(o, s.ID)
		p, found, err := b.store.Get(ctx, key)
		if err != nil {
			return "", mark{}, fmt.Errorf("%s: read %s: %w", b.name, key, err)
		}
		if !found {
			continue
		}
		if owner, m, ok := parseMark(b.marks+"/entries/", key, p.Value); ok {
			return owner, m, nil
		}
	}
	return "", mark{}, nil
}

// heldBy is the HeldError for the entry p of service id that is not this
// daemon's: the daemon whose lease it is on is found by its lease record.
func (b *Backend) heldBy(ctx context.Context, id string, p Pair) *bridge.HeldError {
	if p.Lease == "" {
		return bridge.NewHeldError(id, "", "", "", b.owner)
	}
	prefix := b.marks + "/leases/"
	if lists, err := b.store.List(ctx, prefix); err == nil && len(lists) == 1 {
		for _, r := range lists[0] {
			host, under := strings.CutPrefix(r.Key, prefix) // a store may answer any key
			if under && string(r.Value) == p.Lease {
				return &bridge.HeldError{ID: id, Holder: "host " + host, Host: host}
			}
		}
	}
	return &bridge.HeldError{ID: id, Holder: "the entry on lease " + p.Lease + " of another daemon"}
}
