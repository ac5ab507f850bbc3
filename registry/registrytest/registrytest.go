// Package registrytest is the contract every bridge.Backend keeps, run
// against the backend's real server.
package registrytest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/registrator/registrator/bridge"
)

// Harness is what the suite needs of one adapter.
type Harness struct {
	// Open returns a backend on an empty namespace; it is called once per case.
	Open func(t *testing.T) bridge.Backend
	// WriteUnmarked writes an entry with this ID the way another program
	// would: without an owner mark.
	WriteUnmarked func(t *testing.T, id string)
}

// Run runs the contract.
func Run(t *testing.T, h Harness) {
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	svc := func(id, owner string) bridge.Service {
		return bridge.Service{
			ID: id, Name: "web", Address: "10.0.0.5", Port: 8080,
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
		want := s
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
		if got.Port != 9090 || !slices.Equal(got.Tags, []string{"c"}) || got.Revision != s.Fingerprint() {
			t.Errorf("after re-register got port %d tags %v revision %q, want 9090 [c] %q", got.Port, got.Tags, got.Revision, s.Fingerprint())
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
