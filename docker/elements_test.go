package docker

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestObjects(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string // nil: not ok
	}{
		{`[]`, []string{}},
		{" [ ] \n", []string{}},
		{`[{}]`, []string{`{}`}},
		{`[{"a":1},{"b":[1,{"c":"}"}]}]`, []string{`{"a":1}`, `{"b":[1,{"c":"}"}]}`}},
		{"[\n  {\"a\": \"x\\\"}\"} ,\t{\"b\":\"\\\\\"}\n]\n", []string{`{"a": "x\"}"}`, `{"b":"\\"}`}},
		{`[{"Names":["/a"],"Labels":{"k":"{["}}]`, []string{`{"Names":["/a"],"Labels":{"k":"{["}}`}},
		{``, nil},
		{`{}`, nil},
		{`[`, nil},
		{`[{}`, nil},
		{`[{},]`, nil},
		{`[{}{}]`, nil},
		{`[,{}]`, nil},
		{`[1]`, nil},
		{`["{}"]`, nil},
		{`[{"a":"}]`, nil},
		{`[{}] x`, nil},
		{`[{}]]`, nil},
	} {
		got, ok := objects([]byte(tc.body), nil)
		if ok != (tc.want != nil) {
			t.Errorf("objects(%q): ok %v, want %v", tc.body, ok, tc.want != nil)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("objects(%q) = %q, want %q", tc.body, got, tc.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("objects(%q)[%d] = %q, want %q", tc.body, i, got[i], tc.want[i])
			}
		}
	}
}

// FuzzObjects holds objects to the JSON decoder: an array of objects that
// decodes is cut into exactly the decoder's elements, and what objects
// accepts, with every element valid, the decoder accepts.
func FuzzObjects(f *testing.F) {
	for _, s := range []string{
		`[]`, `[{}]`, `[{"a":1},{"b":[1,{"c":"}"}]}]`, "[\n{\"a\":\"\\\"\"}\n]", `[{},]`, `[1]`, `{}`, `[{"a":"}]`,
		`[{"Id":"x","Names":["/web"],"Labels":{"a":"b"},"Ports":[{"PrivatePort":80,"Type":"tcp"}]}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := objects(body, nil)
		var raws []json.RawMessage
		err := json.Unmarshal(body, &raws)
		allObjects := err == nil && raws != nil
		for _, r := range raws {
			allObjects = allObjects && r[0] == '{'
		}
		if allObjects {
			if !ok || len(got) != len(raws) {
				t.Fatalf("objects(%q) = %q, %v; the decoder has %q", body, got, ok, raws)
			}
			for i := range raws {
				if !bytes.Equal(got[i], raws[i]) {
					t.Fatalf("objects(%q)[%d] = %q; the decoder has %q", body, i, got[i], raws[i])
				}
			}
		}
		if ok {
			valid := true
			for _, e := range got {
				valid = valid && json.Valid(e) && e[0] == '{'
			}
			if valid && err != nil {
				t.Fatalf("objects(%q) = %q, each valid, but the decoder refuses the whole: %v", body, got, err)
			}
		}
	})
}
