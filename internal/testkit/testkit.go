// Package testkit is what the end-to-end suite and the benchmark share: the
// Docker CLI, the test image built FROM scratch, stopping a process,
// reading the daemon's metrics, and one way to wait for something
// observable.
package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Eventually calls f every interval until it returns nil, and returns nil
// then; or, once timeout has passed or ctx is done, f's last error.
func Eventually(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		t.Reset(interval)
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Docker runs the docker CLI and returns its trimmed output; the error
// holds the command and what it printed.
func Docker(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Command runs name in dir with more environment variables ("K=V"), for at
// most 10 minutes, and returns what it printed.
func Command(dir string, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// BuildTags are the build tags of every shipped binary (the Makefile's
// GOTAGS): grpcnotrace leaves out gRPC's golang.org/x/net/trace, whose
// html/template would keep every exported method in the binary (see
// docs/performance.md, "What the memory is").
const BuildTags = "grpcnotrace"

// LeanTags are the lean build's (the image's /bin/registrator): BuildTags
// and lean, which leaves out the etcd and skydns2 adapters and hands their
// URIs to the full build beside it.
const LeanTags = BuildTags + ",lean"

// FullBuild is the full build's file name beside the lean one.
const FullBuild = "registrator-full"

// BuildDaemon builds cmd/registrator as `make build` does, static and
// stripped: the lean build at out and the full build (BuildTags) beside it,
// named FullBuild.
func BuildDaemon(out string) error {
	return BuildPair(out, []string{"CGO_ENABLED=0"}, "-trimpath", "-ldflags", "-s -w")
}

// BuildPair builds the lean build at out and the full build beside it,
// with env added to go's environment and the extra go build flags (-race,
// say).
func BuildPair(out string, env []string, flags ...string) error {
	for _, b := range []struct{ tags, out string }{{LeanTags, out}, {BuildTags, filepath.Join(filepath.Dir(out), FullBuild)}} {
		args := append(append([]string{"build"}, flags...), "-tags", b.tags, "-o", b.out, "./cmd/registrator")
		if out, err := Command(RepoRoot(), env, "go", args...); err != nil {
			return fmt.Errorf("build registrator (-tags %s): %v\n%s", b.tags, err, out)
		}
	}
	return nil
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Image describes a test image: e2e/testsvc as its entry point, FROM
// scratch, under every one of Tags; Extra is appended to its Dockerfile (a
// HEALTHCHECK line, say).
type Image struct {
	Tags  []string
	Extra string
}

// BuildImages builds e2e/testsvc (static) once and each image from it, in
// dir, which must exist. Nothing is pulled.
func BuildImages(dir string, images ...Image) error {
	if out, err := Command(RepoRoot(), []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(dir, "testsvc"), "./e2e/testsvc"); err != nil {
		return fmt.Errorf("build testsvc: %v\n%s", err, out)
	}
	for i, img := range images {
		df := fmt.Sprintf("Dockerfile.%d", i)
		text := "FROM scratch\nCOPY testsvc /testsvc\nENTRYPOINT [\"/testsvc\"]\n" + img.Extra
		if err := os.WriteFile(filepath.Join(dir, df), []byte(text), 0o644); err != nil {
			return err
		}
		args := []string{"build", "-q", "-f", df}
		for _, t := range img.Tags {
			args = append(args, "-t", t)
		}
		if out, err := Command(dir, []string{"DOCKER_BUILDKIT=0"}, "docker", append(args, ".")...); err != nil {
			return fmt.Errorf("build image %s: %v\n%s", img.Tags[0], err, out)
		}
	}
	return nil
}

// RemoveContainers removes every container that carries label, ten at a
// time: the CLI removes the containers it is given at once, and the engine
// (20.10.24) once hung for good removing a hundred running ones at once
// (its goroutine dump: removals waiting on each other in its network
// code's sandbox deletion).
func RemoveContainers(label string) {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
	ids := strings.Fields(string(out))
	for len(ids) > 0 {
		n := min(len(ids), 10)
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids[:n]...)...).Run()
		ids = ids[n:]
	}
}

// Stop sends p SIGTERM and waits for exited to close, killing p after
// grace; it reports whether it had to.
func Stop(p *os.Process, exited <-chan struct{}, grace time.Duration) (killed bool) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return false
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
		return true
	}
}
