package docker

import (
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		err   string
	}{
		{nil, ""},
		{[]string{"label=a", "label=b=c", "name=^web", "ancestor=nginx", "network=front"}, ""},
		{[]string{"status=running"}, "status makes no sense"},
		{[]string{"id=abc"}, `unknown key "id"`},
		{[]string{"label"}, "want label=VALUE"},
		{[]string{"label="}, "want label=VALUE"},
		{[]string{"label==x"}, "the label has no key"},
		{[]string{"name=[a"}, "not a regular expression"},
		{[]string{"=x"}, `unknown key ""`},
	} {
		_, err := ParseSelector(tc.specs)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.specs, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one containing %q", tc.specs, err, tc.err)
		}
	}
}

func TestSelectorSelects(t *testing.T) {
	web := candidate{
		name: "web-1", image: "registry.local:5000/team/nginx", imageID: "sha256:0123456789abcdef0123",
		labels:   map[string]string{"tier": "front", "team": "a"},
		networks: map[string]string{"bridge": "b0b0b0b0b0b0b0b0", "front": "f1f1f1f1f1f1f1f1f1"},
	}
	for _, tc := range []struct {
		name  string
		specs []string
		ok    bool
		why   string
	}{
		{"no filter", nil, true, ""},
		{"label key", []string{"label=tier"}, true, ""},
		{"label key and value", []string{"label=tier=front"}, true, ""},
		{"label value differs", []string{"label=tier=back"}, false, "label"},
		{"label missing", []string{"label=zone"}, false, "label"},
		{"every label must match (as docker ps)", []string{"label=tier", "label=zone"}, false, "label"},
		{"two labels both there", []string{"label=tier=front", "label=team=a"}, true, ""},
		{"name part", []string{"name=web"}, true, ""},
		{"name anchored without slash", []string{"name=^web-1$"}, true, ""},
		{"name anchored with slash", []string{"name=^/web"}, true, ""},
		{"name no match", []string{"name=^api"}, false, "name"},
		{"any name matches", []string{"name=^api", "name=^web"}, true, ""},
		{"ancestor as named", []string{"ancestor=registry.local:5000/team/nginx"}, true, ""},
		{"ancestor with :latest", []string{"ancestor=registry.local:5000/team/nginx:latest"}, true, ""},
		{"ancestor other tag", []string{"ancestor=registry.local:5000/team/nginx:1.2"}, false, "ancestor"},
		{"ancestor by ID prefix", []string{"ancestor=0123456789ab"}, true, ""},
		{"ancestor by sha256 ID", []string{"ancestor=sha256:0123456789abcdef0123"}, true, ""},
		{"ancestor ID prefix too short", []string{"ancestor=0123"}, false, "ancestor"},
		{"ancestor other image", []string{"ancestor=nginx"}, false, "ancestor"},
		{"network by name", []string{"network=front"}, true, ""},
		{"network by short ID", []string{"network=f1f1f1f1f1f1"}, true, ""},
		{"network not joined", []string{"network=back"}, false, "network"},
		{"any network matches", []string{"network=back", "network=bridge"}, true, ""},
		{"keys combine with AND", []string{"label=tier", "network=back"}, false, "network"},
		{"all keys match", []string{"label=tier=front", "name=web", "ancestor=registry.local:5000/team/nginx", "network=front"}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSelector(tc.specs)
			if err != nil {
				t.Fatal(err)
			}
			ok, why := s.selects(web)
			if ok != tc.ok || why != tc.why {
				t.Errorf("selects = %v, %q; want %v, %q", ok, why, tc.ok, tc.why)
			}
		})
	}
	if ok, _ := (Selector{}).selects(candidate{}); !ok {
		t.Error("the zero Selector left a container out")
	}
}
