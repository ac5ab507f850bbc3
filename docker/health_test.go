package docker

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/google/go-cmp/cmp"

	"github.com/registrator/registrator/bridge"
)

func TestDockerHealth(t *testing.T) {
	probe := func(status string, outputs ...string) *container.Health {
		h := &container.Health{Status: status}
		for _, o := range outputs {
			h.Log = append(h.Log, &container.HealthcheckResult{Output: o})
		}
		return h
	}
	long := strings.Repeat("é", 3000) // 6000 bytes
	for _, tc := range []struct {
		name   string
		health *container.Health
		env    []string
		flag   string
		want   *bridge.Health // nil: no Health on the service
		absent bool           // no service at all
		warn   []string
	}{
		{name: "no HEALTHCHECK", health: nil},
		{name: "health none", health: probe("none")},
		{name: "mirror healthy, with the last probe's output", health: probe("healthy", "old", " ok \n"), want: &bridge.Health{Status: "healthy", Output: "ok"}},
		{name: "mirror starting", health: probe("starting"), want: &bridge.Health{Status: "starting"}},
		{name: "mirror unhealthy", health: probe("unhealthy", "boom"), want: &bridge.Health{Status: "unhealthy", Output: "boom"}},
		{name: "mirror is the default of an empty flag", health: probe("unhealthy"), flag: "", want: &bridge.Health{Status: "unhealthy"}},
		{name: "output cut to 4096 bytes on a rune boundary", health: probe("healthy", long), want: &bridge.Health{Status: "healthy", Output: strings.Repeat("é", 2048)}},
		{name: "healthy-only: starting is not registered", health: probe("starting"), flag: HealthOnly, absent: true},
		{name: "healthy-only: unhealthy is not registered", health: probe("unhealthy"), flag: HealthOnly, absent: true},
		{name: "healthy-only: healthy is registered, not mirrored", health: probe("healthy"), flag: HealthOnly},
		{name: "ignore: unhealthy is registered, not mirrored", health: probe("unhealthy"), flag: HealthIgnore},
		{name: "the container's key beats the flag", health: probe("starting"), flag: HealthMirror, env: []string{"SERVICE_DOCKER_HEALTH=healthy"}, absent: true},
		{name: "the per-port key beats the generic one", health: probe("starting"), env: []string{"SERVICE_DOCKER_HEALTH=healthy", "SERVICE_80_DOCKER_HEALTH=ignore"}},
		{name: "a bad value warns and the flag applies", health: probe("starting"), flag: HealthOnly, env: []string{"SERVICE_DOCKER_HEALTH=sometimes"}, absent: true, warn: []string{"SERVICE_DOCKER_HEALTH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := web(tc.env...)
			r.health = tc.health
			got, warnings := Services(r.inspect(t), Config{Hostname: "host", HostAddr: hostAddr, DockerHealth: tc.flag})
			checkWarnings(t, warnings, tc.warn)
			if tc.absent {
				if len(got) != 0 {
					t.Fatalf("services %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("services %+v, want one", got)
			}
			if d := cmp.Diff(tc.want, got[0].Health); d != "" {
				t.Errorf("health (-want +got):\n%s", d)
			}
			if _, ok := got[0].Meta["docker_health"]; ok {
				t.Error("SERVICE_DOCKER_HEALTH leaked into Meta")
			}
		})
	}
}

// The probe's output changes at every probe; only the status may change
// what is written.
func TestHealthOutputIsNotInTheFingerprint(t *testing.T) {
	a := bridge.Service{ID: "x", Health: &bridge.Health{Status: "healthy", Output: "probe 1"}}
	b := bridge.Service{ID: "x", Health: &bridge.Health{Status: "healthy", Output: "probe 2"}}
	c := bridge.Service{ID: "x", Health: &bridge.Health{Status: "unhealthy", Output: "probe 2"}}
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("a new probe output changes the fingerprint")
	}
	if b.Fingerprint() == c.Fingerprint() {
		t.Error("a new status leaves the fingerprint unchanged")
	}
}

func TestHealthOfListStatus(t *testing.T) {
	for status, want := range map[string]string{
		"Up 3 minutes (healthy)":          "healthy",
		"Up 3 seconds (health: starting)": "health: starting",
		"Up 2 hours (unhealthy)":          "unhealthy",
		"Up 2 hours":                      "",
		"Exited (0) 3 seconds ago":        "",
	} {
		if got := healthOf(status); got != want {
			t.Errorf("healthOf(%q) = %q, want %q", status, got, want)
		}
	}
}

func TestDeregisterOf(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
		warn bool
	}{
		{nil, "", false},
		{[]string{"SERVICE_DEREGISTER=never"}, "never", false},
		{[]string{"SERVICE_DEREGISTER=On-Success"}, "on-success", false},
		{[]string{"SERVICE_DEREGISTER=always"}, "always", false},
		{[]string{"SERVICE_DEREGISTER=sometimes"}, "", true},
	} {
		got, err := deregisterOf(metadataOf(web(tc.env...).inspect(t)))
		if got != tc.want || (err != nil) != tc.warn {
			t.Errorf("%v: %q, %v; want %q, warning %v", tc.env, got, err, tc.want, tc.warn)
		}
	}
}
