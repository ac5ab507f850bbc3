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
