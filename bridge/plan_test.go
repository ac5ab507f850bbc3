package bridge

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func stored(s Service, owner string) Service {
	s.Owner, s.Revision = owner, s.Fingerprint()
	return s
}

func TestPlan(t *testing.T) {
	a := Service{ID: "a", Name: "web", Address: "10.0.0.1", Port: 80, Container: "c1"}
	b := Service{ID: "b", Name: "db", Address: "10.0.0.1", Port: 5432, Container: "c1"}
	aMoved := a
	aMoved.Port = 81
	aTagged := a
	aTagged.Tags = []string{"x"}
	aChecked := a
	aChecked.Checks = []Check{{TTL: "30s"}}

	ids := func(ss []Service) []string {
		out := []string{}
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name                   string
		desired, actual        []Service
		register, deregistered []string
	}{
		{"nothing to do", nil, nil, []string{}, []string{}},
		{"new service is registered", []Service{a}, nil, []string{"a"}, []string{}},
		{"unchanged service is not written again", []Service{a, b}, []Service{stored(a, "me"), stored(b, "me")}, []string{}, []string{}},
		{"changed port is written", []Service{aMoved}, []Service{stored(a, "me")}, []string{"a"}, []string{}},
		{"changed tags are written", []Service{aTagged}, []Service{stored(a, "me")}, []string{"a"}, []string{}},
		{"changed checks are written", []Service{aChecked}, []Service{stored(a, "me")}, []string{"a"}, []string{}},
		{"entry without revision is written", []Service{a}, []Service{a}, []string{"a"}, []string{}},
		{"entry of another owner with our ID is taken over", []Service{a}, []Service{stored(a, "other")}, []string{"a"}, []string{}},
		{"service no longer wanted is removed", []Service{a}, []Service{stored(a, "me"), stored(b, "me")}, []string{}, []string{"b"}},
		{"everything removed when nothing is wanted", nil, []Service{stored(b, "me"), stored(a, "me")}, []string{}, []string{"a", "b"}},
		{"results in ID order", []Service{b, a}, nil, []string{"a", "b"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, dereg := Plan("me", tc.desired, tc.actual)
			if d := cmp.Diff(tc.register, ids(reg)); d != "" {
				t.Errorf("register (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.deregistered, ids(dereg)); d != "" {
				t.Errorf("deregister (-want +got):\n%s", d)
			}
		})
	}
	reg, _ := Plan("me", []Service{a}, []Service{stored(a, "other")})
	if len(reg) != 1 || reg[0].Replaces != "other" {
		t.Errorf("taking over another owner's entry: %+v, want it to name the mark it replaces", reg)
	}
	if reg, _ := Plan("me", []Service{aMoved}, []Service{stored(a, "me")}); len(reg) != 1 || reg[0].Replaces != "" {
		t.Errorf("rewriting our own entry: %+v, want no mark replaced", reg)
	}
}

func TestFingerprint(t *testing.T) {
	s := Service{ID: "a", Name: "web", Port: 80, Meta: map[string]string{"x": "1", "y": "2"}}
	same := s
	same.Meta = map[string]string{"y": "2", "x": "1"}
	same.Owner, same.Revision = "someone", "whatever"
	if s.Fingerprint() != same.Fingerprint() {
		t.Error("fingerprint depends on map order, Owner or Revision")
	}
	reordered := s
	reordered.Tags = []string{"b", "a"}
	tagged := s
	tagged.Tags = []string{"a", "b"}
	if reordered.Fingerprint() == tagged.Fingerprint() {
		t.Error("tag order does not change the fingerprint; it must, since order is kept")
	}
}

func TestShortID(t *testing.T) {
	if got := ShortID("0123456789abcdef"); got != "0123456789ab" {
		t.Errorf("ShortID of a long ID = %q", got)
	}
	if got := ShortID("short"); got != "short" {
		t.Errorf("ShortID of a short ID = %q", got)
	}
}
