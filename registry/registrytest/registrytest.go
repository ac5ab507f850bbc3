// Package registrytest is the contract every bridge.Backend keeps, run
// against the backend's real server.
package registrytest

import (
	"context"
	"errors"
	"hash/crc32"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
)

// Quiet is a logger that writes nothing, for adapters under test.
func Quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// Context is a context for one test's calls, cancelled when it ends.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Harness is what the suite needs of one adapter.
type Harness struct {
	// Open returns a backend on an empty namespace; it is called once per case.
	Open func(t *testing.T) bridge.Backend
	// WriteUnmarked writes an entry with this ID the way another program
	// would: without an owner mark.
	WriteUnmarked func(t *testing.T, id string)
	// Reopen returns another backend on the namespace the last Open
	// returned, as a restarted daemon would, without emptying it.
	Reopen func(t *testing.T) bridge.Backend
	// RestartRewrites says that a reopened backend cannot take over the
	// entries of the previous one (ZooKeeper's ephemeral znodes belong to
	// a session): it reads them back as its own but with no revision, so
	// that they are written again.
	RestartRewrites bool
	// Stored returns the part of a service the backend keeps and reads back
	// (a key-value layout keeps no checks, for one). nil: all of it.
	Stored func(bridge.Service) bridge.Service
	// WriteLegacy writes s the way gliderlabs/registrator did: in the
	// backend's layout, without an owner mark.
	WriteLegacy func(t *testing.T, s bridge.Service)
	// WriteForeign writes, without an owner mark, another program's entry
	// where s would go (its ID in Consul, its key in a key-value layout)
	// that holds something else than s, under s's name.
	WriteForeign func(t *testing.T, s bridge.Service)
}

// Run runs the contract.
func Run(t *testing.T, h Harness) {
	if h.Stored == nil {
		h.Stored = func(s bridge.Service) bridge.Service { return s }
	}
	ctx := Context
	// Each service has its own port, as on a real host: ZooKeeper's layout
	// keys entries by address and port.
	svc := func(id, owner string) bridge.Service {
		return bridge.Service{
			ID: id, Name: "web", Address: "10.0.0.5", Port: 8000 + int(crc32.ChecksumIEEE([]byte(id))%1000),
			Tags:      []string{"b", "a"},
			Meta:      map[string]string{"region": "eu"},
			Container: "c0ffee" + id, Owner: owner,
		}
	}
	find := func(t *testing.T, b bridge.Backend, id string) (bridge.Service, bool) {
		t.Helper()
		all, err := b.Services(ctx(t))
		if err != nil {
			t.Fatalf("Services: %v", err)
		}
		i := slices.IndexFunc(all, func(s bridge.Service) bool { return s.ID == id })
		if i < 0 {
			return bridge.Service{}, false
		}
		return all[i], true
	}
	register := func(t *testing.T, b bridge.Backend, s bridge.Service) {
		t.Helper()
		if err := b.Register(ctx(t), s); err != nil {
			t.Fatalf("Register %s: %v", s.ID, err)
		}
	}

	t.Run("ping", func(t *testing.T) {
		if err := h.Open(t).Ping(ctx(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("round trip keeps what was written and marks it", func(t *testing.T) {
		b := h.Open(t)
		s := svc("rt", "owner-a")
		register(t, b, s)
		got, ok := find(t, b, s.ID)
		if !ok {
			t.Fatal("registered entry not listed")
		}
		want := h.Stored(s)
		want.Revision = s.Fingerprint()
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("read back (-want +got):\n%s", d)
		}
	})

	t.Run("register twice leaves one entry", func(t *testing.T) {
		b := h.Open(t)
		s := svc("twice", "owner-a")
		register(t, b, s)
		register(t, b, s)
		all, err := b.Services(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range all {
			if e.ID == s.ID {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d entries with ID %s, want 1", n, s.ID)
		}
	})

	t.Run("register replaces a changed entry", func(t *testing.T) {
		b := h.Open(t)
		s := svc("change", "owner-a")
		register(t, b, s)
		s.Port, s.Tags = 9090, []string{"c"}
		s.Checks = []bridge.Check{{TTL: "30s"}}
		register(t, b, s)
		got, _ := find(t, b, s.ID)
		want := h.Stored(s)
		want.Revision = s.Fingerprint()
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("after re-register (-want +got):\n%s", d)
		}
	})

	t.Run("a new name for the same ID replaces the entry", func(t *testing.T) {
		b := h.Open(t)
		s := svc("renamed", "owner-a")
		register(t, b, s)
		s.Name = "api"
		register(t, b, s)
		all, err := b.Services(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range all {
			if e.ID == s.ID {
				names = append(names, e.Name)
			}
		}
		if !slices.Equal(names, []string{"api"}) {
			t.Errorf("entries with ID %s have names %v, want [api]", s.ID, names)
		}
	})

	t.Run("a restarted daemon reads its entries back unchanged", func(t *testing.T) {
		b := h.Open(t)
		s := svc("restart", "owner-a")
		register(t, b, s)
		again := h.Reopen(t)
		got, ok := find(t, again, s.ID)
		rev := s.Fingerprint()
		if h.RestartRewrites {
			rev = ""
		}
		if !ok || got.Owner != "owner-a" || got.Revision != rev {
			t.Fatalf("after reopening: listed %v, owner %q, revision %q; want owner-a, %q", ok, got.Owner, got.Revision, rev)
		}
		if err := again.Deregister(ctx(t), got); err != nil {
			t.Fatal(err)
		}
		if _, ok := find(t, again, s.ID); ok {
			t.Error("entry still listed after the reopened backend deregistered it")
		}
	})

	t.Run("deregister is idempotent", func(t *testing.T) {
		b := h.Open(t)
		s := svc("gone", "owner-a")
		register(t, b, s)
		for i := range 2 {
			if err := b.Deregister(ctx(t), s); err != nil {
				t.Fatalf("Deregister #%d: %v", i+1, err)
			}
		}
		if _, ok := find(t, b, s.ID); ok {
			t.Error("entry still listed after Deregister")
		}
		if err := b.Deregister(ctx(t), svc("never-registered", "owner-a")); err != nil {
			t.Errorf("Deregister of an unknown entry: %v", err)
		}
	})

	t.Run("owners are read back and others' entries untouched", func(t *testing.T) {
		b := h.Open(t)
		h.WriteUnmarked(t, "foreign")
		theirs := svc("theirs", "owner-b")
		register(t, b, theirs)
		ours := svc("ours", "owner-a")
		register(t, b, ours)
		if err := b.Deregister(ctx(t), ours); err != nil {
			t.Fatal(err)
		}
		if got, ok := find(t, b, "foreign"); !ok || got.Owner != "" {
			t.Errorf("unmarked entry: listed %v, owner %q; want listed with owner \"\"", ok, got.Owner)
		}
		if got, ok := find(t, b, theirs.ID); !ok || got.Owner != "owner-b" {
			t.Errorf("other owner's entry: listed %v, owner %q; want listed with owner-b", ok, got.Owner)
		}
	})

	t.Run("an entry adopted from an earlier owner mark is rewritten in place", func(t *testing.T) {
		b := h.Open(t)
		old := svc("adopted", "owner-old") // as an earlier version marked it
		register(t, b, old)
		s := old
		s.Owner, s.Replaces = "owner-a", "owner-old"
		register(t, b, s)
		all, err := b.Services(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		var owners []string
		for _, e := range all {
			if e.ID == s.ID {
				owners = append(owners, e.Owner)
			}
		}
		if len(owners) != 1 || owners[0] != "owner-a" {
			t.Errorf("entries with ID %s owned by %v, want one, by owner-a", s.ID, owners)
		}
	})

	// Ownership at write time: what the bridge asks to write or remove is
	// checked against what the entry holds now, not against what the last
	// full read said.
	held := func(t *testing.T, err error, id string) {
		t.Helper()
		var he *bridge.HeldError
		if !errors.As(err, &he) || he.ID != id {
			t.Errorf("Register over an entry that is not ours: %v, want a *bridge.HeldError for %s", err, id)
		}
	}
	untouched := func(t *testing.T, b bridge.Backend, id, owner string, port int) {
		t.Helper()
		if got, ok := find(t, b, id); !ok || got.Owner != owner || got.Port != port {
			t.Errorf("entry %s: listed %v, owner %q, port %d; want it as it was: owner %q, port %d", id, ok, got.Owner, got.Port, owner, port)
		}
	}
	foreignStays := func(t *testing.T, b bridge.Backend, s bridge.Service) {
		t.Helper()
		all, err := b.Services(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		unmarked := 0
		for _, e := range all {
			switch {
			case e.Owner != "" && e.ID == s.ID:
				t.Errorf("an entry of ours with ID %s: %+v", s.ID, e)
			case e.Owner == "" && e.Name == s.Name:
				unmarked++
			}
		}
		if unmarked != 1 {
			t.Errorf("%d unmarked entries named %s, want the other program's one: %+v", unmarked, s.Name, all)
		}
	}

	t.Run("another program's entry where the service goes is neither written over nor removed", func(t *testing.T) {
		b := h.Open(t)
		s := svc("vault", "owner-a")
		h.WriteForeign(t, s)
		held(t, b.Register(ctx(t), s), s.ID)
		foreignStays(t, b, s)
		if err := b.Deregister(ctx(t), s); err != nil {
			t.Errorf("Deregister of an entry that is not ours: %v, want nil (nothing of ours to remove)", err)
		}
		foreignStays(t, b, s)
	})

	t.Run("another owner's entry is neither written over nor removed", func(t *testing.T) {
		b := h.Open(t)
		theirs := svc("theirs", "owner-b")
		register(t, b, theirs)
		s := theirs
		s.Owner, s.Container = "owner-a", "c0ffee-mine"
		held(t, b.Register(ctx(t), s), s.ID)
		if err := b.Deregister(ctx(t), s); err != nil {
			t.Errorf("Deregister of another owner's entry: %v, want nil", err)
		}
		untouched(t, b, s.ID, "owner-b", theirs.Port)
	})

	t.Run("another container's entry of the same owner is not taken", func(t *testing.T) {
		b := h.Open(t)
		first := svc("shared", "owner-a")
		register(t, b, first)
		second := first
		second.Container = "c0ffee-second"
		b2 := h.Reopen(t) // a backend that has not written it: it must ask the registry
		held(t, b2.Register(ctx(t), second), second.ID)
		untouched(t, b2, first.ID, "owner-a", first.Port)
	})

	t.Run("registrator's own unmarked entry of the same service is taken over in place", func(t *testing.T) {
		b := h.Open(t)
		s := svc("legacy", "owner-a")
		h.WriteLegacy(t, s)
		register(t, b, s)
		if got, ok := find(t, b, s.ID); !ok || got.Owner != "owner-a" || got.Revision != s.Fingerprint() {
			t.Errorf("after taking it over: listed %v, owner %q, revision %q; want owner-a, %q", ok, got.Owner, got.Revision, s.Fingerprint())
		}
	})

	t.Run("checks are accepted", func(t *testing.T) {
		b := h.Open(t)
		s := svc("checked", "owner-a")
		s.Checks = []bridge.Check{
			{HTTP: "http://127.0.0.1:1/health", Interval: "10s", Timeout: "1s"},
			{TCP: "127.0.0.1:1", Interval: "10s"},
			{TTL: "30s", InitialStatus: "passing"},
		}
		register(t, b, s)
		if got, ok := find(t, b, s.ID); !ok || got.Revision != s.Fingerprint() {
			t.Errorf("entry with checks: listed %v, revision %q, want %q", ok, got.Revision, s.Fingerprint())
		}
	})
}
