package docker

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// Selector is -container-filter: which containers the daemon registers,
// in `docker ps --filter` terms. The keys are label (label=KEY or
// label=KEY=VALUE), name (a regular expression matched against the name,
// with or without its leading slash), ancestor (the image as the container
// names it, with or without its tag, or the image ID or a prefix of it;
// unlike docker ps, not the images built from it) and network (a network's
// name or ID, or a 12-character short ID). Filters combine as docker ps
// combines them: every key must match; within one key, any value matches,
// except label, whose values must all match. The zero Selector selects
// every container.
type Selector struct {
	args filters.Args
}

var selectorKeys = []string{"label", "name", "ancestor", "network"}

// ParseSelector reads the -container-filter values, each KEY=VALUE.
func ParseSelector(specs []string) (Selector, error) {
	args := filters.NewArgs()
	for _, spec := range specs {
		key, value, ok := strings.Cut(spec, "=")
		switch {
		case key == "status":
			return Selector{}, fmt.Errorf("-container-filter %q: status makes no sense here: the daemon registers the running containers and follows them as they stop", spec)
		case !slices.Contains(selectorKeys, key):
			return Selector{}, fmt.Errorf("-container-filter %q: unknown key %q (known: %s)", spec, key, strings.Join(selectorKeys, ", "))
		case !ok || value == "":
			return Selector{}, fmt.Errorf("-container-filter %q: want %s=VALUE", spec, key)
		case key == "label" && strings.HasPrefix(value, "="):
			return Selector{}, fmt.Errorf("-container-filter %q: the label has no key", spec)
		case key == "name":
			if _, err := regexp.Compile(value); err != nil {
				return Selector{}, fmt.Errorf("-container-filter %q: not a regular expression: %v", spec, err)
			}
		}
		args.Add(key, value)
	}
	return Selector{args: args}, nil
}

// Empty reports whether s selects every container.
func (s Selector) Empty() bool { return s.args.Len() == 0 }

// String is the filters as given, sorted, for logs.
func (s Selector) String() string {
	var out []string
	for _, k := range s.args.Keys() {
		for _, v := range s.args.Get(k) {
			out = append(out, k+"="+v)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// candidate is what a Selector reads of a container.
type candidate struct {
	name     string            // without the leading slash
	image    string            // as the container names it (Config.Image)
	imageID  string            // sha256:...
	labels   map[string]string // the container's labels
	networks map[string]string // network name → network ID
}

// admits is selects for a candidate built only when s filters at all: the
// list and every inspection ask, and most daemons run without a filter.
func (s Selector) admits(of func() candidate) (ok bool, why string) {
	if s.Empty() {
		return true, ""
	}
	return s.selects(of())
}

// selects reports whether s selects c, and if not, which key excluded it.
func (s Selector) selects(c candidate) (ok bool, why string) {
	if s.Empty() {
		return true, ""
	}
	if !s.args.MatchKVList("label", c.labels) {
		return false, "label"
	}
	if s.args.Contains("name") && !s.args.Match("name", "/"+c.name) && !s.args.Match("name", c.name) {
		return false, "name"
	}
	if s.args.Contains("ancestor") && !slices.ContainsFunc(s.args.Get("ancestor"), func(v string) bool { return isImage(v, c.image, c.imageID) }) {
		return false, "ancestor"
	}
	if s.args.Contains("network") && !slices.ContainsFunc(s.args.Get("network"), func(v string) bool { return onNetwork(v, c.networks) }) {
		return false, "network"
	}
	return true, ""
}

// isImage reports whether the filter value v names the image the
// container runs: as the container names it, with or without the tag
// (":latest" when it has none), or by ID, in full or a prefix of at least
// 12 hex digits, with or without "sha256:".
func isImage(v, image, id string) bool {
	if v == image || withTag(v) == withTag(image) {
		return true
	}
	hex := strings.TrimPrefix(id, "sha256:")
	want := strings.TrimPrefix(v, "sha256:")
	return len(want) >= 12 && strings.HasPrefix(hex, want)
}

// withTag is an image reference with ":latest" when it names no tag or
// digest.
func withTag(ref string) string {
	if ref == "" || strings.Contains(ref, "@") {
		return ref
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref
	}
	return ref + ":latest"
}

// onNetwork reports whether the container is on the network v names: by
// name, by ID, or by the 12-character short ID.
func onNetwork(v string, networks map[string]string) bool {
	for name, id := range networks {
		if v == name || v == id || len(v) >= 12 && strings.HasPrefix(id, v) {
			return true
		}
	}
	return false
}

// inspected is what -container-filter reads of an inspected container.
func inspected(c container.InspectResponse) candidate {
	out := candidate{name: strings.TrimPrefix(c.Name, "/"), imageID: c.Image, networks: map[string]string{}}
	if c.Config != nil {
		out.image, out.labels = c.Config.Image, c.Config.Labels
	}
	if c.NetworkSettings != nil {
		for n, e := range c.NetworkSettings.Networks {
			if e != nil {
				out.networks[n] = e.NetworkID
			}
		}
	}
	return out
}

// Selects reports whether -container-filter selects the inspected
// container, and if not, which key left it out (for explain).
func (s Selector) Selects(c container.InspectResponse) (ok bool, key string) {
	return s.admits(func() candidate { return inspected(c) })
}
