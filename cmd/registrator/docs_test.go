package main

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/registrator/registrator/registry"
)

// commandLineDoc is where the reference of the command line lives.
const commandLineDoc = "../../docs/command-line.md"

// Every flag the binary accepts is in the command-line reference, as
// `-name`, and the reference names no flag the binary does not accept.
func TestEveryFlagIsDocumented(t *testing.T) {
	var usage bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &usage, func(string) string { return "" }); !errors.Is(err, errHelp) {
		t.Fatalf("-h: %v", err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-zA-Z0-9-]+)`).FindAllStringSubmatch(usage.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 20 {
		t.Fatalf("read only %d flags from the usage text:\n%s", len(flags), usage.String())
	}
	doc := read(t, commandLineDoc)
	for f := range flags {
		if !strings.Contains(doc, "`-"+f+"`") && !strings.Contains(doc, "`-"+f+" ") {
			t.Errorf("flag -%s is not documented in %s", f, commandLineDoc)
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `-([a-zA-Z0-9-]+)").FindAllStringSubmatch(doc, -1) {
		if !flags[m[1]] {
			t.Errorf("%s documents -%s, which the binary does not accept", commandLineDoc, m[1])
		}
	}
}

// Every registry scheme is in the usage text and in the backends'
// reference with an example URI.
func TestEverySchemeIsDocumented(t *testing.T) {
	var usage bytes.Buffer
	parseFlags([]string{"-h"}, &usage, func(string) string { return "" })
	doc := read(t, "../../docs/backends.md")
	for _, s := range registry.Schemes() {
		if !strings.Contains(usage.String(), s.Example) {
			t.Errorf("usage text lacks %s", s.Example)
		}
		if !strings.Contains(doc, "`"+s.Name+"://") {
			t.Errorf("docs/backends.md has no `%s://...` URI", s.Name)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
