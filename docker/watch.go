package docker

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
)

// containerActions are the container events that can change what a
// container should have registered. health_status matches
// "health_status: healthy" and the others. exec_* events (one per health
// probe) are left out.
var containerActions = []events.Action{
	events.ActionStart, events.ActionRestart, events.ActionDie, events.ActionStop,
	events.ActionKill, events.ActionDestroy, events.ActionRename, events.ActionPause,
	events.ActionUnPause, events.ActionUpdate, events.ActionHealthStatus,
}

// networkActions are the network events that name a container.
var networkActions = []events.Action{events.ActionConnect, events.ActionDisconnect}

// serviceActions are a Swarm service's events (-swarm-services).
var serviceActions = []events.Action{events.ActionCreate, events.ActionUpdate, events.ActionRemove}

// actionRemove is Podman's event for a removed container, where Docker
// says destroy.
const actionRemove events.Action = "remove"

// podmanHealthLag is how long after a health_status event from Podman the
// daemon reads the container again.
const podmanHealthLag = time.Second

// reloadSignals are signals programs take as "reload" or "report", not
// "end": a kill event with one of them does not drain.
var reloadSignals = map[string]bool{"1": true, "10": true, "12": true, "28": true,
	"SIGHUP": true, "SIGUSR1": true, "SIGUSR2": true, "SIGWINCH": true, "HUP": true, "USR1": true, "USR2": true, "WINCH": true}

// Watch follows the engine's events until ctx is done and never returns
// earlier. The subscription starts at the engine's clock as read before
// subscribing. A broken stream (engine restart, socket gone) is
// re-established after the Engine's Retry, which starts over once a
// stream has lasted 30 s. A kill event marks its container as stopping, so
// that its services drain, before h.Changed is told.
//
// Podman before 4.4 delivers no die, stop or kill event to a subscription
// that filters by event, so under Podman the stream is filtered by type
// only and the actions here, Podman's remove among them.
func (s *Engine) Watch(ctx context.Context, h bridge.Handler) {
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("type", string(events.NetworkEventType)))
	if !s.isPodman() {
		for _, a := range append(containerActions, networkActions...) {
			f.Add("event", string(a))
		}
	}
	if s.Swarm != nil {
		f.Add("type", string(events.ServiceEventType))
		for _, a := range serviceActions {
			f.Add("event", string(a))
		}
	}
	log := s.log()
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := s.watchOnce(ctx, log, f, h, func() { attempt = 1 })
		if ctx.Err() != nil {
			return
		}
		if h.Lost != nil {
			h.Lost(err)
		}
		log.WithField("error", err).Warnf("docker: event stream lost, reconnecting in %s", s.retry()(attempt))
		if s.retry().Sleep(ctx, attempt) != nil {
			return
		}
	}
}

// watchOnce subscribes and reads the stream until it breaks.
func (s *Engine) watchOnce(ctx context.Context, log *logrus.Entry, f filters.Args, h bridge.Handler, healthy func()) error {
	// The engine's clock before subscribing: events from then on are
	// replayed, so none falls between the subscription and the list that
	// follows it. At start, ID's /info of a moment ago serves (events from
	// then are replayed too: their syncs find nothing to do).
	info := s.startInfo()
	if info == nil {
		ictx, cancel := context.WithTimeout(ctx, CallTimeout)
		i, err := s.API.Info(ictx)
		cancel()
		if err != nil {
			return err
		}
		info = &i
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := s.API.Events(ctx, events.ListOptions{Since: info.SystemTime, Filters: f})
	log.WithField("engine", info.ServerVersion).Info("docker: watching events")
	h.Connected()
	stable := time.NewTimer(30 * time.Second) // a stream that lasted resets the backoff
	defer stable.Stop()
	for {
		select {
		case m := <-msgs:
			if h.Event != nil {
				h.Event(string(m.Type), string(m.Action))
			}
			if m.Type == events.ServiceEventType {
				if s.Swarm != nil && slices.Contains(serviceActions, m.Action) && m.Actor.ID != "" {
					log.WithFields(logrus.Fields{"service": m.Actor.Attributes["name"], "event": string(m.Type) + " " + string(m.Action)}).Debug("docker event")
					h.Changed(swarmServicePrefix + m.Actor.ID)
					h.Changed(swarmIngressPrefix + m.Actor.ID)
				}
				continue
			}
			id := containerOf(m)
			if id == "" || !wanted(m) {
				continue
			}
			log.WithFields(logrus.Fields{"container": bridge.ShortID(id), "event": string(m.Type) + " " + string(m.Action)}).Debug("docker event")
			// Podman's kill event names no signal: without one, a kill
			// is not taken for a stop (it may be a SIGHUP). Podman 4.3
			// sends nothing before a container exits, and no stop event
			// at all: under Podman a drain starts at the exit (die), or
			// at a stop event where a later Podman sends one.
			sig, named := m.Actor.Attributes["signal"]
			podman := s.isPodman()
			podmanEnd := (m.Action == events.ActionStop || m.Action == events.ActionDie) && podman
			if m.Type == events.ContainerEventType && (m.Action == events.ActionKill && named && !reloadSignals[sig] || podmanEnd) {
				s.stopped(id)
			}
			h.Changed(id)
			if podman && strings.HasPrefix(string(m.Action), string(events.ActionHealthStatus)) {
				// Podman may send the event before it has stored the
				// probe's result: an inspection right away can still
				// read the status before. Look again a moment later.
				time.AfterFunc(podmanHealthLag, func() {
					if ctx.Err() == nil {
						h.Changed(id)
					}
				})
			}
		case err := <-errs:
			return err
		case <-stable.C:
			healthy()
		}
	}
}

// wanted reports whether an event can change what a container should have
// registered: Docker's stream is filtered already; Podman's is not.
func wanted(m events.Message) bool {
	switch m.Type {
	case events.ContainerEventType:
		return m.Action == actionRemove || slices.Contains(containerActions, m.Action) || strings.HasPrefix(string(m.Action), string(events.ActionHealthStatus))
	case events.NetworkEventType:
		return slices.Contains(networkActions, m.Action)
	}
	return false
}

func containerOf(m events.Message) string {
	switch m.Type {
	case events.ContainerEventType:
		return m.Actor.ID
	case events.NetworkEventType:
		return m.Actor.Attributes["container"]
	}
	return ""
}
