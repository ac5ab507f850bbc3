package docker

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string][]string
		bad  bool
	}{
		{in: `{"Authorization": ["Basic x"], "X-Env": "prod"}`, want: map[string][]string{"Authorization": {"Basic x"}, "X-Env": {"prod"}}},
		{in: `{"X-Two": ["a", "b"]}`, want: map[string][]string{"X-Two": {"a", "b"}}},
		{in: `{}`, want: map[string][]string{}},
		{in: `Authorization: Basic x`, bad: true},
		{in: `["a"]`, bad: true},
		{in: `{"X": 5}`, bad: true},
		{in: `{"": "x"}`, bad: true},
		{in: `{"Bad Name": "x"}`, bad: true},
		{in: `{"X": "a\r\nInjected: 1"}`, bad: true},
	} {
		got, err := parseHeader(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%s: error %v, want bad %v", tc.in, err, tc.bad)
			continue
		}
		if d := cmp.Diff(tc.want, got); !tc.bad && d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.in, d)
		}
	}
}
