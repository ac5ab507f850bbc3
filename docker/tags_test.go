package docker

import (
	"strings"
	"testing"
	"text/template"

	"github.com/docker/docker/api/types/container"
)

// tagged is the container the -tags templates below are executed over.
func tagged() container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: containerID, Name: "/Web-1"},
		Config: &container.Config{
			Image:  "reg:5000/team/app:1.2",
			Env:    []string{"PATH=/bin", "ENV=prod", "X_A=1", "X_B=2"},
			Labels: map[string]string{"tier": "front", "team": "Core"},
		},
	}
}

func TestTagsFor(t *testing.T) {
	for _, tc := range []struct {
		name, tags, want string
	}{
		{"no template is kept as written", `a,b\,c, d`, `a,b\,c, d`},
		{"inspect data", "{{.Config.Image}}", "reg:5000/team/app:1.2"},
		{"missing label is empty, not <no value>", "x{{.Config.Labels.nope}}y", "xy"},
		{"toUpper", `{{toUpper (mIndex "team" .Config.Labels)}}`, "CORE"},
		{"toLower", `{{toLower .Name}}`, "/web-1"},
		{"replace all with n -1", `{{replace -1 "=" "" "=a="}}`, "a"},
		{"replace the first n", `{{replace 1 "/" "" .Name}}`, "Web-1"},
		{"join", `{{join ";" .Config.Env}}`, "PATH=/bin;ENV=prod;X_A=1;X_B=2"},
		{"split then sIndex", `{{sIndex 1 (split "/" .Config.Image)}}`, "team"},
		{"sIndex negative counts from the end", `{{sIndex -1 (split "/" .Config.Image)}}`, "app:1.2"},
		{"sIndex past the end is clamped", `{{sIndex 9 (split "/" .Config.Image)}}`, "app:1.2"},
		{"sIndex before the start is clamped", `{{sIndex -9 (split "/" .Config.Image)}}`, "reg:5000"},
		{"sIndex of an empty list is empty", `{{sIndex 0 (matchAllElements "^NOPE" .Config.Env)}}`, ""},
		{"splitIndex", `{{splitIndex -1 "/" .Config.Image}}`, "app:1.2"},
		{"splitIndex then splitIndex", `{{splitIndex 0 ":" (splitIndex -1 "/" .Config.Image)}}`, "app"},
		{"mIndex", `{{mIndex "tier" .Config.Labels}}`, "front"},
		{"mIndex of a missing key is empty", `{{mIndex "nope" .Config.Labels}}`, ""},
		{"strSlice start and end", `{{strSlice .ID 0 12}}`, containerID[:12]},
		{"strSlice start only", `{{strSlice "abcdef" 2}}`, "cdef"},
		{"strSlice end past the end is clamped", `{{strSlice "abc" 1 99}}`, "bc"},
		{"strSlice start past the end is empty", `{{strSlice "abc" 5}}`, ""},
		{"strSlice negative start is clamped", `{{strSlice "abc" -3 2}}`, "ab"},
		{"matchFirstElement", `{{matchFirstElement "^ENV=" .Config.Env}}`, "ENV=prod"},
		{"matchFirstElement without a match is empty", `{{matchFirstElement "^NOPE=" .Config.Env}}`, ""},
		{"matchAllElements", `{{join "," (matchAllElements "^X_" .Config.Env)}}`, "X_A=1,X_B=2"},
		{"several tags", `{{mIndex "tier" .Config.Labels}},v-{{splitIndex -1 ":" .Config.Image}}`, "front,v-1.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tags, err := ParseTags(tc.tags)
			if err != nil {
				t.Fatalf("ParseTags(%q): %v", tc.tags, err)
			}
			got, err := tags.For(tagged())
			if err != nil {
				t.Fatalf("For: %v", err)
			}
			if got != tc.want {
				t.Errorf("%s\n got %q\nwant %q", tc.tags, got, tc.want)
			}
		})
	}
}

func TestTagsForError(t *testing.T) {
	for _, tc := range []struct {
		name, tags string
		c          container.InspectResponse
	}{
		{"bad regexp in matchFirstElement", `{{matchFirstElement "(" .Config.Env}}`, tagged()},
		{"bad regexp in matchAllElements", `{{matchAllElements "[" .Config.Env}}`, tagged()},
		{"unknown field", `{{.Config.Nope}}`, tagged()},
		{"wrong argument type", `{{sIndex 0 .Config.Labels}}`, tagged()},
		{"wrong argument count", `{{replace "a" "b" .Name}}`, tagged()},
		{"jsonParse of a missing key", `{{jsonParse .Config.Image "a"}}`, tagged()},
		{"nil Config", `{{.Config.Image}}`, container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: containerID}}},
		{"nil base", `{{.ID}}`, container.InspectResponse{Config: &container.Config{}}},
		// A deviation (docs/compatibility.md): the data's methods are not
		// callable, so that the linker can drop unused methods.
		{"a method", `{{.HostConfig.NetworkMode.IsHost}}`, container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: containerID, HostConfig: &container.HostConfig{NetworkMode: "host"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tags, err := ParseTags(tc.tags)
			if err != nil {
				t.Fatalf("ParseTags(%q): %v", tc.tags, err)
			}
			got, err := tags.For(tc.c)
			if err == nil {
				t.Fatalf("For = %q, want an error", got)
			}
			if !strings.Contains(err.Error(), "-tags") {
				t.Errorf("error %q does not say it comes from -tags", err)
			}
			if got != "" {
				t.Errorf("For = %q with an error, want no tags", got)
			}
		})
	}
}

func TestParseTagsError(t *testing.T) {
	for _, s := range []string{"{{", "{{.ID", "{{nosuchfunc .ID}}", "{{end}}"} {
		if _, err := ParseTags(s); err == nil {
			t.Errorf("ParseTags(%q) succeeded, want an error", s)
		}
	}
}

// jsonParse takes the bytes httpGet returns; templates have no []byte
// literal, so it is tested directly and through the same FuncMap.
func TestJSONParse(t *testing.T) {
	const doc = `{"zone": "eu-1a", "n": 3, "ok": true, "a": {"b": ["x", {"c": "deep"}]}, "obj": {"k": 1}}`
	for _, tc := range []struct {
		path, want string
		fails      bool
	}{
		{path: "zone", want: "eu-1a"},
		{path: "n", want: "3"},
		{path: "ok", want: "true"},
		{path: "a::b::0", want: "x"},
		{path: "a::b::1::c", want: "deep"},
		{path: "obj", want: `{"k": 1}`},
		{path: "nope", fails: true},
		{path: "a::b::2", fails: true},
		{path: "a::b::-1", fails: true},
		{path: "a::b::x", fails: true},
		{path: "zone::deeper", fails: true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			got, err := jsonParse([]byte(doc), tc.path)
			switch {
			case tc.fails && err == nil:
				t.Errorf("jsonParse(%q) = %q, want an error", tc.path, got)
			case !tc.fails && err != nil:
				t.Errorf("jsonParse(%q): %v", tc.path, err)
			case got != tc.want:
				t.Errorf("jsonParse(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		if got, err := jsonParse([]byte("<html>"), "a"); err == nil {
			t.Errorf("jsonParse of HTML = %q, want an error", got)
		}
	})
	t.Run("through the template helpers", func(t *testing.T) {
		tmpl := template.Must(template.New("t").Funcs(tagFuncs).Parse(`{{jsonParse .Body "a::b::0"}},{{toUpper (jsonParse .Body "zone")}}`))
		var b strings.Builder
		if err := tmpl.Execute(&b, struct{ Body []byte }{[]byte(doc)}); err != nil {
			t.Fatal(err)
		}
		if got, want := b.String(), "x,EU-1A"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
