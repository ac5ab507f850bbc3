package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/registrator/registrator/internal/testkit"
	"github.com/registrator/registrator/internal/testproc"
)

// part is a set of packages whose cost in the binary is measured alone.
type part struct {
	name     string
	packages []string
	tags     string // build tags beyond testkit.BuildTags
}

// parts are the daemon's large dependencies, each alone, all of them
// together, and every package of the daemon: each is built into a program
// that imports it and does nothing else (its packages' init runs, as in
// the daemon), built as the daemon is.
var parts = []part{
	{"Go runtime alone", nil, ""},
	{"logrus", []string{"github.com/sirupsen/logrus"}, ""},
	{"Docker client", []string{"github.com/docker/docker/client"}, ""},
	{"Consul API client", []string{"github.com/hashicorp/consul/api"}, ""},
	{"etcd client and gRPC", []string{"go.etcd.io/etcd/client/v3"}, ""},
	{"ZooKeeper client", []string{"github.com/go-zookeeper/zk"}, ""},
	{"metrics (VictoriaMetrics)", []string{"github.com/VictoriaMetrics/metrics"}, ""},
	{"those together", []string{"github.com/sirupsen/logrus", "github.com/docker/docker/client", "github.com/hashicorp/consul/api", "go.etcd.io/etcd/client/v3", "github.com/go-zookeeper/zk", "github.com/VictoriaMetrics/metrics"}, ""},
	{"every package of the daemon", []string{"github.com/registrator/registrator/bridge", "github.com/registrator/registrator/docker", "github.com/registrator/registrator/monitor",
		"github.com/registrator/registrator/registry", "github.com/registrator/registrator/registry/consul", "github.com/registrator/registrator/registry/consulkv",
		"github.com/registrator/registrator/registry/etcd", "github.com/registrator/registrator/registry/skydns2", "github.com/registrator/registrator/registry/zookeeper"}, ""},
	{"every package of the lean build (the image's /bin/registrator)", []string{"github.com/registrator/registrator/bridge", "github.com/registrator/registrator/docker", "github.com/registrator/registrator/monitor",
		"github.com/registrator/registrator/registry", "github.com/registrator/registrator/registry/consul", "github.com/registrator/registrator/registry/consulkv",
		"github.com/registrator/registrator/registry/zookeeper"}, "lean"},
}

// measureParts builds each part's program, runs it, and prints its size
// and memory once its init is done: the resident pages of the binary
// (RssFile: what init touched of it) and its own (RssAnon).
func measureParts() error {
	root := testkit.RepoRoot()
	dir := filepath.Join(root, "build", "parts") // inside the module: its go.mod chooses the versions
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("| part | binary MB | RSS MB | of it the binary's pages (RssFile) | of it its own (RssAnon) |\n|---|---|---|---|---|\n")
	for i, p := range parts {
		src := filepath.Join(dir, fmt.Sprintf("p%d", i))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		var imports strings.Builder
		for _, pkg := range p.packages {
			fmt.Fprintf(&imports, "\t_ %q\n", pkg)
		}
		prog := "package main\n\nimport (\n\t\"fmt\"\n\t\"time\"\n" + imports.String() + ")\n\nfunc main() {\n\tfmt.Println(\"ready\")\n\ttime.Sleep(time.Hour)\n}\n"
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(prog), 0o644); err != nil {
			return err
		}
		bin := filepath.Join(src, "probe")
		if out, err := testkit.Command(root, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-tags", strings.TrimSuffix(testkit.BuildTags+","+p.tags, ","), "-ldflags", "-s -w", "-o", bin, "./build/parts/"+filepath.Base(src)); err != nil {
			return fmt.Errorf("build %s: %v\n%s", p.name, err, out)
		}
		fi, err := os.Stat(bin)
		if err != nil {
			return err
		}
		rss, file, anon, err := idleMemory(bin)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", p.name, float64(fi.Size())/1e6, rss, file, anon)
	}
	return nil
}

// idleMemory runs bin until it says it is ready, lets it sit for a
// second, and reads its VmRSS, RssFile and RssAnon in MB.
func idleMemory(bin string) (rss, file, anon float64, err error) {
	cmd := exec.Command(bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if !bufio.NewScanner(out).Scan() {
		return 0, 0, 0, fmt.Errorf("it never said ready")
	}
	time.Sleep(time.Second) // the runtime's background work after init
	mb := func(field string) float64 { return float64(testproc.StatusKiB(cmd.Process.Pid, field)) / 1024 }
	return mb("VmRSS"), mb("RssFile"), mb("RssAnon"), nil
}
