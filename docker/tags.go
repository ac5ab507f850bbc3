package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	template "github.com/DataDog/datadog-agent/pkg/template/text"
	"github.com/docker/docker/api/types/container"
)

// Tags is the -tags option: a comma list added to every service, written as
// a Go text/template over the container's inspect data.
type Tags struct {
	raw  string
	tmpl *template.Template // nil when raw has no template action
}

// ParseTags parses the -tags option.
func ParseTags(s string) (*Tags, error) {
	t := &Tags{raw: s}
	if !strings.Contains(s, "{{") {
		return t, nil
	}
	tmpl, err := template.New("tags").Funcs(tagFuncs).Option("missingkey=zero").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-tags %q: %w", s, err)
	}
	t.tmpl = tmpl
	return t, nil
}

// For renders the tags for one container.
func (t *Tags) For(c container.InspectResponse) (string, error) {
	if t.tmpl == nil {
		return t.raw, nil
	}
	var b bytes.Buffer
	if err := t.tmpl.Execute(&b, c); err != nil {
		return "", fmt.Errorf("-tags %q: %w", t.raw, err)
	}
	return b.String(), nil
}

// httpTimeout bounds httpGet: templates run while a container is synced.
const httpTimeout = 2 * time.Second

var httpClient = &http.Client{Timeout: httpTimeout}

// tagFuncs are registrator's template helpers, with the same names and
// argument order. None of them panics on out-of-range input.
var tagFuncs = template.FuncMap{
	"toUpper": strings.ToUpper,
	"toLower": strings.ToLower,
	// replace n old new s: the first n occurrences, or all for n < 0.
	"replace": func(n int, old, new, s string) string { return strings.Replace(s, old, new, n) },
	"join":    func(sep string, s []string) string { return strings.Join(s, sep) },
	"split":   func(sep, s string) []string { return strings.Split(s, sep) },
	// strSlice s start [end]: s[start:end], clamped to s.
	"strSlice": func(s string, bounds ...int) string {
		start, end := 0, len(s)
		if len(bounds) > 0 {
			start = max(0, min(bounds[0], len(s)))
		}
		if len(bounds) > 1 && bounds[1] >= start {
			end = min(bounds[1], len(s))
		}
		return s[start:end]
	},
	// sIndex i s: s[i]; a negative i counts from the end; clamped to s.
	"sIndex": index,
	// mIndex k m: m[k].
	"mIndex": func(k string, m map[string]string) string { return m[k] },
	// splitIndex i sep s: sIndex i (split sep s).
	"splitIndex": func(i int, sep, s string) string { return index(i, strings.Split(s, sep)) },
	// matchFirstElement re s: the first element of s that re matches.
	"matchFirstElement": func(re string, s []string) (string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return "", err
		}
		for _, e := range s {
			if r.MatchString(e) {
				return e, nil
			}
		}
		return "", nil
	},
	// matchAllElements re s: every element of s that re matches.
	"matchAllElements": func(re string, s []string) ([]string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, e := range s {
			if r.MatchString(e) {
				out = append(out, e)
			}
		}
		return out, nil
	},
	// httpGet url: the body of a GET, with a short timeout.
	"httpGet": func(url string) ([]byte, error) {
		resp, err := httpClient.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	},
	// jsonParse b "a::b::0": the value at that path; strings unquoted.
	"jsonParse": jsonParse,
}

func index(i int, s []string) string {
	if len(s) == 0 {
		return ""
	}
	if i < 0 {
		i = max(0, len(s)+i)
	}
	return s[min(i, len(s)-1)]
}

func jsonParse(b []byte, path string) (string, error) {
	raw := json.RawMessage(b)
	for _, k := range strings.Split(path, "::") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err == nil {
			v, ok := obj[k]
			if !ok {
				return "", fmt.Errorf("jsonParse: no key %q", k)
			}
			raw = v
			continue
		}
		var arr []json.RawMessage
		n, err := strconv.Atoi(k)
		if json.Unmarshal(raw, &arr) != nil || err != nil || n < 0 || n >= len(arr) {
			return "", fmt.Errorf("jsonParse: cannot follow %q", k)
		}
		raw = arr[n]
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	return string(bytes.TrimSpace(raw)), nil
}
