package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/registrator/registrator/internal/testkit"
)

// The image built from the repository's Dockerfile, run as registrator's
// users run theirs: host network, the Docker socket at /tmp/docker.sock.
func TestImageAsUsersDeployIt(t *testing.T) {
	clean(t)
	image := buildImage(t)
	// The image's HEALTHCHECK, probed every second here instead of 30.
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	reg := run(t, "--name", "registrator-under-test", "--net", "host", "--health-interval", "1s",
		"-e", "REGISTRATOR_HTTP_ADDR="+httpAddr,
		"-v", "/var/run/docker.sock:/tmp/docker.sock", image,
		"-ip", "127.0.0.1", "consul://"+agent.Addr)
	eventually(t, settle, func() error {
		if h := docker(t, "inspect", "-f", "{{.State.Health.Status}}", reg); h != "healthy" {
			return fmt.Errorf("container health %q, want healthy", h)
		}
		return nil
	})

	p := freePort(t)
	web := run(t, "--name", "web.0", "-p", pub(p, "80"), "-e", "SERVICE_TAGS=www", imgNginx, "80")
	expect(t, map[string]svc{id("web.0", "80"): {Name: "nginx", Address: "127.0.0.1", Port: p, Tags: []string{"www"}}})
	docker(t, "rm", "-f", web)
	expect(t, map[string]svc{})

	docker(t, "stop", "-t", "10", reg)
	if code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", reg); code != "0" {
		t.Errorf("the registrator container exited %s after docker stop, want 0\n%s", code, docker(t, "logs", reg))
	}
	if t.Failed() {
		t.Logf("registrator container log:\n%s", docker(t, "logs", reg))
	}
}

// buildImage builds the Dockerfile at the repository root the way `make
// image` does, in a scratch context, without the legacy builder's cache
// (which can hold the same layer built for another platform).
func buildImage(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	ctx := t.TempDir()
	if err := testkit.BuildDaemon(filepath.Join(ctx, "registrator")); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{
		filepath.Join(root, "Dockerfile"):    filepath.Join(ctx, "Dockerfile"),
		"/etc/ssl/certs/ca-certificates.crt": filepath.Join(ctx, "ca-certificates.crt"),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const image = "registrator-e2e:test"
	if out, err := command(ctx, []string{"DOCKER_BUILDKIT=0"}, "docker", "build", "--no-cache", "-q", "-t", image, "."); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = command(ctx, nil, "docker", "rmi", "-f", image) })
	if size := docker(t, "image", "inspect", "-f", "{{.Size}}", image); strings.TrimSpace(size) == "" {
		t.Fatal("image not built")
	}
	return image
}
