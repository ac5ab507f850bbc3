// Package docker reads containers from the Docker engine and derives the
// services they should have.
package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/registrator/registrator/bridge"
)

// Connect returns a client for the engine named by DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH; without DOCKER_HOST it uses
// /var/run/docker.sock, or /tmp/docker.sock where only that exists. The API
// version is negotiated with the engine.
func Connect() (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			if _, err := os.Stat("/tmp/docker.sock"); err == nil {
				opts = append(opts, client.WithHost("unix:///tmp/docker.sock"))
			}
		}
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return c, nil
}

// EngineID returns the engine's ID, the owner mark of every entry this host
// writes. It waits, retrying, until the engine answers or ctx is done.
func EngineID(ctx context.Context, api client.APIClient, retry func(attempt int, err error) time.Duration) (string, error) {
	for attempt := 1; ; attempt++ {
		info, err := api.Info(ctx)
		if err == nil && info.ID != "" {
			return info.ID, nil
		}
		if err == nil {
			err = errors.New("engine reported no ID")
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(retry(attempt, err)):
		}
	}
}

// Source is a bridge.Source reading the Docker engine.
type Source struct {
	API    client.APIClient
	Config Config

	mu       sync.Mutex
	stopping map[string]time.Time // container ID → when a kill event was seen
}

// Stopping notes that the engine is stopping a container (a kill event),
// so that its services drain. It never blocks.
func (s *Source) Stopping(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping == nil {
		s.stopping = map[string]time.Time{}
	}
	if _, ok := s.stopping[id]; !ok {
		s.stopping[id] = time.Now()
	}
}

// stoppedAt is when this run of the container was seen stopping, zero if
// it was not; the mark of an earlier run is dropped.
func (s *Source) stoppedAt(id string, c container.InspectResponse) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.stopping[id]
	if !ok {
		return time.Time{}
	}
	if started, err := time.Parse(time.RFC3339Nano, c.State.StartedAt); err == nil && started.After(at) {
		delete(s.stopping, id) // it started again since
		return time.Time{}
	}
	return at
}

var _ bridge.Source = (*Source)(nil)

// List returns every container, running or not.
func (s *Source) List(ctx context.Context) ([]bridge.Container, error) {
	list, err := s.API.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	out := make([]bridge.Container, 0, len(list))
	for _, c := range list {
		var name string
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, bridge.Container{
			ID:          c.ID,
			Name:        name,
			Running:     c.State == container.StateRunning || c.State == container.StatePaused,
			Fingerprint: fingerprint(c),
		})
	}
	return out, nil
}

// fingerprint digests what the list tells of a container that could change
// its services. The status text ("Up 3 minutes (healthy)") is left out but
// for its health, which changes what is registered: the rest changes all
// the time.
func fingerprint(c container.Summary) string {
	ports := slices.Clone(c.Ports)
	slices.SortFunc(ports, func(a, b container.Port) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	nets := map[string]string{}
	if c.NetworkSettings != nil {
		for n, e := range c.NetworkSettings.Networks {
			if e != nil {
				nets[n] = e.IPAddress + " " + e.GlobalIPv6Address
			}
		}
	}
	b, _ := json.Marshal(struct {
		Names  []string
		Image  string
		State  string
		Ports  []container.Port
		Nets   map[string]string
		Labels map[string]string
		Health string
	}{c.Names, c.Image, string(c.State), ports, nets, c.Labels, healthOf(c.Status)})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// healthOf is the health in a list's status text: "Up 3 minutes (healthy)",
// "(unhealthy)", "(health: starting)"; "" without a HEALTHCHECK.
func healthOf(status string) string {
	i := strings.LastIndexByte(status, '(')
	if i < 0 || !strings.HasSuffix(status, ")") {
		return ""
	}
	return status[i+1 : len(status)-1]
}

// Inspect reads one container and derives its services.
func (s *Source) Inspect(ctx context.Context, id string) (bridge.Container, error) {
	c, err := s.API.ContainerInspect(ctx, id)
	if errdefs.IsNotFound(err) {
		s.mu.Lock()
		delete(s.stopping, id) // removed: its mark goes too
		s.mu.Unlock()
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: %w", id, bridge.ErrNotFound)
	}
	if err != nil {
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: %w", id, err)
	}
	if c.ContainerJSONBase == nil || c.State == nil {
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: incomplete answer", id)
	}
	out := bridge.Container{
		ID:       c.ID,
		Name:     strings.TrimPrefix(c.Name, "/"),
		Running:  c.State.Running && !c.State.Restarting,
		ExitCode: c.State.ExitCode,
		Stopping: s.stoppedAt(id, c),
	}
	if out.Running {
		out.Services, out.Warnings = Services(c, s.Config)
		for i := range out.Services {
			out.Services[i].Draining = !out.Stopping.IsZero()
		}
	}
	if !out.Stopping.IsZero() {
		var w error
		out.Drain, w = drainOf(c, s.Config.Drain)
		if w != nil {
			out.Warnings = append(out.Warnings, w)
		}
	}
	var w error
	if out.Deregister, w = deregisterOf(c); w != nil {
		out.Warnings = append(out.Warnings, w)
	}
	return out, nil
}
