package bridge

import "time"

// observation is everything the desired-state rule reads of one container.
type observation struct {
	// Container is the container as inspected just now; Gone when the
	// engine no longer has it (removed).
	Container Container
	Gone      bool
	// Known is whether the bridge synced this container before, and Last
	// what that sync's success decided should exist.
	Known bool
	Last  []Service
	// Actual is what the backend holds of this container, as the bridge
	// last saw it.
	Actual []Service
	Now    time.Time
}

// policy is what the desired-state rule reads of the configuration.
type policy struct {
	// OnSuccess is -deregister on-success: a container that exited with a
	// failure keeps its services unless its own policy says otherwise.
	OnSuccess bool
	// MirrorsHealth is whether the backend shows a service's Docker health
	// and its draining itself (Consul); any other holds a service only while
	// its container is healthy and not stopping.
	MirrorsHealth bool
}

// desiredServices is the rule for what should exist for one container now:
//
//   - removed: nothing;
//   - running: its services (as the backend shows health: see forBackend);
//   - stopped within its drain period, after a sync that saw it: the
//     services it last had, draining, until the period ends; recheck is
//     then the time left, after which the rule answers differently;
//   - stopped otherwise: what the backend holds, if the container's own
//     deregister policy (else -deregister) keeps it; else nothing.
//
// It is pure: no I/O, no clock but o.Now.
func desiredServices(o observation, p policy) (services []Service, recheck time.Duration) {
	c := o.Container
	switch {
	case o.Gone:
		return nil, 0
	case c.Running:
		return forBackend(c.Services, p.MirrorsHealth), 0
	case !c.Stopping.IsZero() && o.Now.Sub(c.Stopping) < c.Drain && o.Known:
		var draining []Service
		for _, s := range o.Last {
			s.Draining = true
			draining = append(draining, s)
		}
		return forBackend(draining, p.MirrorsHealth), c.Drain - o.Now.Sub(c.Stopping)
	case keeps(c, p.OnSuccess):
		return o.Actual, 0
	}
	return nil, 0
}

// forBackend adapts services to what the backend shows: one that mirrors
// Docker health gets them as they are, draining ones included; any other
// holds a service only while its container is healthy and not stopping.
func forBackend(services []Service, mirrorsHealth bool) []Service {
	if mirrorsHealth {
		return services
	}
	var out []Service
	for _, s := range services {
		if s.Draining {
			continue
		}
		if s.Health != nil {
			if s.Health.Status != Healthy {
				continue
			}
			s.Health = nil
		}
		out = append(out, s)
	}
	return out
}

// keeps reports whether the services of a container that stopped stay
// registered, by its own policy or else -deregister (onSuccess).
func keeps(c Container, onSuccess bool) bool {
	switch c.Deregister {
	case DeregisterNever:
		return true
	case DeregisterOnSuccess:
		return failed(c.ExitCode)
	case DeregisterAlways:
		return false
	}
	return onSuccess && failed(c.ExitCode)
}

// failed reports whether an exit code is a failure of the program rather
// than a clean exit or the result of a signal (stop, kill: 128+n).
func failed(code int) bool { return code != 0 && code&128 == 0 }
