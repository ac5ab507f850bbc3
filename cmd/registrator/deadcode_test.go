package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/registrator/registrator/internal/testkit"
)

// A reachable reflect.Value.Method or MethodByName with a name known only
// at run time makes the linker keep every exported method of every type
// in the binary: 4.4 MB of the 21.6 MB binary, 3 MB of its resident
// memory, when text/template's Execute was reachable. The shipped build
// (the Makefile's GOTAGS, testkit.BuildTags) must have no such call; the
// linker marks the functions that make one <ReflectMethod> in -dumpdep.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(testkit.RepoRoot(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GOTAGS := (.*)$`).FindSubmatch(mk)
	if m == nil || string(m[1]) != testkit.BuildTags {
		t.Fatalf("the Makefile's GOTAGS is %q, testkit.BuildTags %q: the two must agree", m, testkit.BuildTags)
	}
	out, err := testkit.Command(testkit.RepoRoot(), []string{"CGO_ENABLED=0"}, "go", "build", "-tags", testkit.BuildTags,
		"-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "registrator"), "./cmd/registrator")
	if err != nil {
		t.Fatalf("go build: %v\n%.2000s", err, out)
	}
	var culprits []string
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "<ReflectMethod>") {
			culprits = append(culprits, strings.TrimSpace(line))
		}
	}
	if len(culprits) > 0 {
		t.Errorf("the linker keeps every exported method: these reach reflect.Value.Method(ByName) with a name known only at run time (text/template's Execute, html/template: use github.com/DataDog/datadog-agent/pkg/template/text):\n%s", strings.Join(culprits[:min(len(culprits), 20)], "\n"))
	}
}
