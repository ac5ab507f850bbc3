package e2e

import (
	"debug/elf"
	"path/filepath"
	"testing"

	"github.com/registrator/registrator/internal/testkit"
)

// `make release` builds static binaries for linux/amd64 and linux/arm64
// with a SHA256SUMS that checks; `make image PLATFORM=linux/arm64` builds an
// arm64 image (FROM scratch: nothing runs during the build).
func TestReleaseAndArm64Image(t *testing.T) {
	dir := t.TempDir()
	if out, err := command(repoRoot(), nil, "make", "release", "RELEASE_DIR="+dir); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		f, err := elf.Open(filepath.Join(dir, "registrator-linux-"+arch))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine || f.Class != elf.ELFCLASS64 {
			t.Errorf("registrator-linux-%s: ELF %s %s, want %s 64-bit", arch, f.Class, f.Machine, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("registrator-linux-%s is not static: it has %s", arch, p.Type)
			}
		}
		f.Close()
	}
	if out, err := command(dir, nil, "sha256sum", "-c", "SHA256SUMS"); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}

	const image = "registrator-e2e-arm64"
	t.Cleanup(func() { _, _ = command(dir, nil, "docker", "rmi", "-f", image+":test", image+":latest") })
	if out, err := command(repoRoot(), nil, "make", "image", "PLATFORM=linux/arm64", "IMAGE="+image, "VERSION=test"); err != nil {
		t.Fatalf("make image PLATFORM=linux/arm64: %v\n%s", err, out)
	}
	if got := docker(t, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", image+":test"); got != "linux/arm64" {
		t.Errorf("image platform %s, want linux/arm64", got)
	}
	for _, name := range []string{"registrator", testkit.FullBuild} { // the image's two builds
		bin := filepath.Join(repoRoot(), "build", "image", "linux", "arm64", name)
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("%s: %s, want %s", bin, f.Machine, elf.EM_AARCH64)
		}
		f.Close()
	}
}
