package bridge

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDesiredServices(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	web := Service{ID: "c1:80", Name: "web", Port: 80, Container: "c1"}
	healthy := web
	healthy.Health = &Health{Status: Healthy, Output: "ok"}
	noHealth := healthy
	noHealth.Health = nil
	unhealthy := web
	unhealthy.ID, unhealthy.Health = "c1:81", &Health{Status: Unhealthy}
	starting := web
	starting.ID, starting.Health = "c1:82", &Health{Status: Starting}
	draining := web
	draining.Draining = true
	stored := web
	stored.Owner, stored.Revision = "engine-1", "r1"

	stopped := func(exit int, policy string) Container {
		return Container{ID: "c1", ExitCode: exit, Deregister: policy}
	}
	stopping := func(ago, drain time.Duration) Container {
		return Container{ID: "c1", ExitCode: 143, Stopping: now.Add(-ago), Drain: drain}
	}

	for _, tc := range []struct {
		name    string
		o       observation
		p       policy
		want    []Service
		recheck time.Duration
	}{
		{name: "a removed container has nothing",
			o: observation{Gone: true, Known: true, Last: []Service{web}, Actual: []Service{stored}}},
		{name: "a removed container has nothing even with the never policy",
			o: observation{Container: stopped(0, DeregisterNever), Gone: true, Actual: []Service{stored}}},
		{name: "a running container has its services",
			o: observation{Container: Container{ID: "c1", Running: true, Services: []Service{web}}}, want: []Service{web}},
		{name: "health mirrored: every state stays, with its health",
			o:    observation{Container: Container{Running: true, Services: []Service{healthy, unhealthy, starting}}},
			p:    policy{MirrorsHealth: true},
			want: []Service{healthy, unhealthy, starting}},
		{name: "health not mirrored: only healthy services, without their health",
			o:    observation{Container: Container{Running: true, Services: []Service{healthy, unhealthy, starting}}},
			want: []Service{noHealth}},
		{name: "health not mirrored: a draining service of a running container is not held",
			o: observation{Container: Container{Running: true, Services: []Service{draining}}}},
		{name: "stopping within its drain period: the last services, draining, looked at again when it ends",
			o:    observation{Container: stopping(2*time.Second, 5*time.Second), Known: true, Last: []Service{web}, Actual: []Service{stored}, Now: now},
			p:    policy{MirrorsHealth: true},
			want: []Service{draining}, recheck: 3 * time.Second},
		{name: "stopping within its drain period, health not mirrored: nothing held, still looked at again",
			o:       observation{Container: stopping(2*time.Second, 5*time.Second), Known: true, Last: []Service{web}, Now: now},
			recheck: 3 * time.Second},
		{name: "drain period over: deregistered",
			o: observation{Container: stopping(5*time.Second, 5*time.Second), Known: true, Last: []Service{web}, Actual: []Service{stored}, Now: now},
			p: policy{MirrorsHealth: true}},
		{name: "drain period over, kept by its policy",
			o: observation{Container: func() Container {
				c := stopping(9*time.Second, 5*time.Second)
				c.Deregister = DeregisterNever
				return c
			}(), Known: true, Last: []Service{web}, Actual: []Service{stored}, Now: now},
			p:    policy{MirrorsHealth: true},
			want: []Service{stored}},
		{name: "stopping but never synced (the daemon started after the stop): no drain, policy applies",
			o: observation{Container: stopping(time.Second, 5*time.Second), Actual: []Service{stored}, Now: now},
			p: policy{MirrorsHealth: true}},
		{name: "-deregister always: an exit 0 goes",
			o: observation{Container: stopped(0, ""), Known: true, Actual: []Service{stored}}},
		{name: "-deregister always: a failure goes",
			o: observation{Container: stopped(3, ""), Known: true, Actual: []Service{stored}}},
		{name: "-deregister on-success: a failure keeps what the backend holds",
			o: observation{Container: stopped(3, ""), Known: true, Last: []Service{web}, Actual: []Service{stored}},
			p: policy{OnSuccess: true}, want: []Service{stored}},
		{name: "-deregister on-success: an exit 0 goes",
			o: observation{Container: stopped(0, ""), Actual: []Service{stored}}, p: policy{OnSuccess: true}},
		{name: "-deregister on-success: SIGKILL (137) goes",
			o: observation{Container: stopped(137, ""), Actual: []Service{stored}}, p: policy{OnSuccess: true}},
		{name: "SERVICE_DEREGISTER=always beats -deregister on-success",
			o: observation{Container: stopped(3, DeregisterAlways), Actual: []Service{stored}}, p: policy{OnSuccess: true}},
		{name: "SERVICE_DEREGISTER=on-success keeps a failure",
			o: observation{Container: stopped(3, DeregisterOnSuccess), Actual: []Service{stored}}, want: []Service{stored}},
		{name: "SERVICE_DEREGISTER=on-success: an exit 0 goes",
			o: observation{Container: stopped(0, DeregisterOnSuccess), Actual: []Service{stored}}},
		{name: "SERVICE_DEREGISTER=never keeps an exit 0",
			o: observation{Container: stopped(0, DeregisterNever), Actual: []Service{stored}}, want: []Service{stored}},
		{name: "SERVICE_DEREGISTER=never keeps a SIGTERM (143)",
			o: observation{Container: stopped(143, DeregisterNever), Actual: []Service{stored}}, want: []Service{stored}},
		{name: "kept, with nothing in the backend: nothing",
			o: observation{Container: stopped(0, DeregisterNever)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, recheck := desiredServices(tc.o, tc.p)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			if recheck != tc.recheck {
				t.Errorf("recheck %s, want %s", recheck, tc.recheck)
			}
		})
	}
}

// desiredServices only reads its input: the services it was given are not
// changed by marking them draining or stripping their health.
func TestDesiredServicesLeavesItsInputAlone(t *testing.T) {
	h := &Health{Status: Healthy}
	last := []Service{{ID: "a", Health: h}}
	running := []Service{{ID: "b", Health: h}}
	desiredServices(observation{Container: Container{Stopping: time.Unix(1, 0), Drain: time.Minute}, Known: true, Last: last, Now: time.Unix(2, 0)}, policy{MirrorsHealth: true})
	desiredServices(observation{Container: Container{Running: true, Services: running}}, policy{})
	if last[0].Draining || running[0].Health == nil {
		t.Fatalf("input changed: last %+v, running %+v", last, running)
	}
}
