package bridge

import (
	"testing"
	"time"
)

func TestIdentity(t *testing.T) {
	docker := NewIdentity("ABCD:EFGH", "host-a", "")
	rootless := NewIdentity("podman-rootless-1001@host-a", "host-a", "").Adopting("podman@host-a")
	for _, tc := range []struct {
		name  string
		id    Identity
		mark  string
		owner string
		local bool
		owns  bool
		twin  string
	}{
		{"the mark is engine ID @ host name", docker, "ABCD:EFGH@host-a", "ABCD:EFGH@host-a", false, true, ""},
		{"an earlier version's mark, container here: adopted", docker, "ABCD:EFGH@host-a", "ABCD:EFGH", true, true, ""},
		{"an earlier version's mark, container not here: not ours", docker, "ABCD:EFGH@host-a", "ABCD:EFGH", false, false, ""},
		{"the same engine ID on another host: a twin, never ours", docker, "ABCD:EFGH@host-a", "ABCD:EFGH@host-b", true, false, "host-b"},
		{"another engine", docker, "ABCD:EFGH@host-a", "WXYZ@host-b", true, false, ""},
		{"no mark", docker, "ABCD:EFGH@host-a", "", true, false, ""},
		{"-id replaces the mark and still adopts the engine's old entries", NewIdentity("ABCD:EFGH", "host-a", "rack-7"), "rack-7", "ABCD:EFGH", true, true, ""},
		{"-id: the engine-and-host mark is not ours", NewIdentity("ABCD:EFGH", "host-a", "rack-7"), "rack-7", "ABCD:EFGH@host-a", true, false, ""},
		{"podman: its own mark", NewIdentity("podman@host-a", "host-a", ""), "podman@host-a", "podman@host-a", false, true, ""},
		{"podman: no earlier mark is adopted", NewIdentity("podman@host-a", "host-a", ""), "podman@host-a", "podman", true, false, ""},
		{"rootless podman: its own mark", rootless, "podman-rootless-1001@host-a", "podman-rootless-1001@host-a", false, true, ""},
		{"rootless podman: the earlier podman@ mark, container here: adopted", rootless, "podman-rootless-1001@host-a", "podman@host-a", true, true, ""},
		{"rootless podman: the rootful podman's mark, container not here: not ours", rootless, "podman-rootless-1001@host-a", "podman@host-a", false, false, ""},
		{"rootless podman: another user's", rootless, "podman-rootless-1001@host-a", "podman-rootless-1002@host-a", true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.id.String(); got != tc.mark {
				t.Errorf("mark %q, want %q", got, tc.mark)
			}
			if got := tc.id.owns(tc.owner, tc.local); got != tc.owns {
				t.Errorf("owns(%q, local %v) = %v, want %v", tc.owner, tc.local, got, tc.owns)
			}
			if got := tc.id.twin(tc.owner); got != tc.twin {
				t.Errorf("twin(%q) = %q, want %q", tc.owner, got, tc.twin)
			}
		})
	}
	for _, bad := range []string{"", "a/b", "a b", string(make([]byte, 300))} {
		if ValidMark(bad) == nil {
			t.Errorf("ValidMark(%q) accepted", bad)
		}
	}
	if err := ValidMark("rack-7.host_a@x"); err != nil {
		t.Errorf("ValidMark: %v", err)
	}
}

// On upgrade, entries an earlier version marked with the bare engine ID are
// adopted for the containers that run here: rewritten in place with the
// new mark (the old mark named for removal), never deregistered; those of
// containers not here, and those of a twin host (same engine ID, another
// host name), are not touched.
func TestUpgradeAdoptsEarlierMarksAndLeavesTwinsAlone(t *testing.T) {
	id := NewIdentity("E", "host-a", "")
	mine := running("c1", 80).Services[0]
	e := start(t, Config{Owner: id}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80))
		be.put(stored(mine, "E"))                                                   // written by the earlier version, c1 runs here
		be.put(stored(Service{ID: "gone:80", Name: "web", Container: "gone"}, "E")) // earlier version, container not here
		be.put(stored(Service{ID: "twin:80", Name: "web", Container: "t1"}, "E@host-b"))
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.be.mu.Lock()
		got := e.be.entries["c1:80"]
		deregs := e.be.deregs
		e.be.mu.Unlock()
		if deregs != 0 {
			t.Fatalf("%d deregistrations during the upgrade", deregs)
		}
		if got.Owner == "E@host-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c1:80 still marked %q", got.Owner)
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.resync(t)
	e.settle(t, "c1:80", "gone:80", "twin:80")
	e.be.mu.Lock()
	defer e.be.mu.Unlock()
	if r := e.be.replaced["c1:80"]; r != "E" {
		t.Errorf("the rewrite named %q as the mark it replaces, want E", r)
	}
	if e.be.deregs != 0 || e.be.registers != 1 {
		t.Errorf("%d registrations and %d deregistrations, want the one rewrite", e.be.registers, e.be.deregs)
	}
}

func TestWriter(t *testing.T) {
	byHand := NewIdentity("E", "host-a", "rack-7")
	for _, tc := range []struct {
		name          string
		id            Identity
		owner, writer string
		other         string
	}{
		{"-id: another host wrote with it", byHand, "rack-7", "host-b", "host-b"},
		{"-id: this host wrote it", byHand, "rack-7", "host-a", ""},
		{"-id: a mark without a writer (written before): this host's", byHand, "rack-7", "", ""},
		{"-id: another mark", byHand, "rack-8", "host-b", ""},
		{"the default mark names the host already", NewIdentity("E", "host-a", ""), "E@host-a", "host-b", ""},
		{"the swarm's mark is shared on purpose", NewIdentity("swarm@C", "host-a", ""), "swarm@C", "host-b", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.id.otherWriter(tc.owner, tc.writer); got != tc.other {
				t.Errorf("otherWriter(%q, %q) = %q, want %q", tc.owner, tc.writer, got, tc.other)
			}
		})
	}
	if w := byHand.Writer(); w != "host-a" {
		t.Errorf("Writer with -id = %q, want host-a", w)
	}
	if w := NewIdentity("E", "host-a", "").Writer(); w != "" {
		t.Errorf("Writer without -id = %q, want none", w)
	}
}

// Two hosts given the same -id: an entry with this host's mark that the
// other host wrote is not this host's, even with -cleanup: neither removed
// (its container is not here) nor rewritten; the other host is named.
// This host's own entry of a container gone is removed as ever, and one
// written before the writer was kept is written again once, in place, to
// keep it.
func TestSameIDOnAnotherHostIsLeftAlone(t *testing.T) {
	id := NewIdentity("E", "host-a", "rack-7")
	e := start(t, Config{Owner: id, Cleanup: true}, func(src *fakeSource, be *fakeBackend) {
		src.set(running("c1", 80))
		src.set(running("c2", 80))
		be.put(stored(running("c2", 80).Services[0], "rack-7")) // no writer
		theirs := stored(Service{ID: "host-b:web:80", Name: "web", Container: "b1"}, "rack-7")
		theirs.Writer = "host-b"
		be.put(theirs)
		gone := stored(Service{ID: "gone:80", Name: "web", Container: "gone"}, "rack-7")
		gone.Writer = "host-a"
		be.put(gone)
	})
	e.resync(t)
	e.settle(t, "c1:80", "c2:80", "host-b:web:80")
	e.resync(t)
	e.settle(t, "c1:80", "c2:80", "host-b:web:80")
	e.b.mu.Lock()
	named := e.b.twins["host-b"]
	e.b.mu.Unlock()
	if !named {
		t.Error("host-b, which wrote with this host's -id, was not named")
	}
	e.be.mu.Lock()
	defer e.be.mu.Unlock()
	if got := e.be.entries["host-b:web:80"]; got.Writer != "host-b" || got.Owner != "rack-7" {
		t.Errorf("host-b's entry was rewritten: %+v", got)
	}
	for _, id := range []string{"c1:80", "c2:80"} {
		if got := e.be.entries[id]; got.Writer != "host-a" || got.Owner != "rack-7" {
			t.Errorf("%s is held as %+v, want written by host-a with rack-7", id, got)
		}
	}
	if e.be.deregs != 1 || e.be.registers != 2 {
		t.Errorf("%d registrations and %d deregistrations, want c1's, c2's rewrite, and gone's removal", e.be.registers, e.be.deregs)
	}
}
