package docker

import (
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// unprobedBound is how long after a container started the daemon waits
// for the first run of its health probe before it says that none runs:
// the start period and three intervals, and at least 10 s.
func unprobedBound(hc *container.HealthConfig) time.Duration {
	interval := hc.Interval
	if interval <= 0 {
		interval = 30 * time.Second // the engines' default
	}
	return max(hc.StartPeriod+3*interval, 10*time.Second)
}

// unprobed looks, under Podman, for a health check that nothing runs:
// Podman runs probes from systemd timers, and on a host without systemd
// none runs, so the container's health stays "starting". Before the bound
// has passed with no probe run, it returns how long to wait before looking
// again; after, the warning to log, once per container.
func (s *Engine) unprobed(c container.InspectResponse, now time.Time) (wait time.Duration, warning string) {
	if c.Config == nil || c.State == nil || c.State.Health == nil || len(c.State.Health.Log) > 0 {
		return 0, ""
	}
	hc := c.Config.Healthcheck
	if hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		return 0, ""
	}
	started, err := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	if err != nil {
		return 0, ""
	}
	bound := unprobedBound(hc)
	if left := started.Add(bound).Sub(now); left > 0 {
		return left + 100*time.Millisecond, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unprobedSaid[c.ID] {
		return 0, ""
	}
	if s.unprobedSaid == nil {
		s.unprobedSaid = map[string]bool{}
	}
	s.unprobedSaid[c.ID] = true
	return 0, fmt.Sprintf("podman: container %s has a health check, but no probe ran in the %s after it started: Podman runs probes from systemd timers, and none runs here; its health stays %q (Consul shows warning; with SERVICE_DOCKER_HEALTH=healthy it is not registered)",
		strings.TrimPrefix(c.Name, "/"), bound, c.State.Health.Status)
}
