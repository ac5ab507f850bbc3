package docker

import (
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

func TestUnprobedHealthCheckIsSaidOnceAfterItsBound(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ctr := func(test []string, interval, start time.Duration, startedAgo time.Duration, probes int) container.InspectResponse {
		c := container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{ID: "c1", Name: "/web", State: &container.State{
				Running: true, StartedAt: now.Add(-startedAgo).Format(time.RFC3339Nano),
				Health: &container.Health{Status: "starting"},
			}},
			Config: &container.Config{Healthcheck: &container.HealthConfig{Test: test, Interval: interval, StartPeriod: start}},
		}
		for range probes {
			c.State.Health.Log = append(c.State.Health.Log, &container.HealthcheckResult{})
		}
		return c
	}
	probe := []string{"CMD", "/probe"}
	for _, tc := range []struct {
		name    string
		c       container.InspectResponse
		wait    time.Duration
		warning bool
	}{
		{"a probe ran", ctr(probe, time.Second, 0, time.Hour, 1), 0, false},
		{"no health check", ctr(nil, 0, 0, time.Hour, 0), 0, false},
		{"health check disabled", ctr([]string{"NONE"}, 0, 0, time.Hour, 0), 0, false},
		{"within the bound (at least 10 s)", ctr(probe, time.Second, 0, 2*time.Second, 0), 8*time.Second + 100*time.Millisecond, false},
		{"within the bound (start period and three intervals)", ctr(probe, 10*time.Second, time.Minute, time.Minute, 0), 30*time.Second + 100*time.Millisecond, false},
		{"past the bound", ctr(probe, time.Second, 0, 11*time.Second, 0), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Engine{}
			wait, warning := e.unprobed(tc.c, now)
			if wait != tc.wait || (warning != "") != tc.warning {
				t.Fatalf("wait %s, warning %q; want %s, a warning: %v", wait, warning, tc.wait, tc.warning)
			}
			if tc.warning {
				if !strings.Contains(warning, "container web has a health check, but no probe ran in the 10s after it started") {
					t.Errorf("warning %q", warning)
				}
				if _, again := e.unprobed(tc.c, now); again != "" {
					t.Errorf("said twice: %q", again)
				}
			}
		})
	}
}
