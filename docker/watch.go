package docker

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
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

// Handler is what Watch calls. None of its functions may block.
type Handler struct {
	// Changed is called with the container's ID for every event that
	// concerns a container.
	Changed func(id string)
	// Connected is called each time the stream is (re)established, after
	// the subscription, so that the full list the caller then makes misses
	// nothing.
	Connected func()
	// Event, if set, is called for every event, with its type and action.
	Event func(typ, action string)
	// Lost, if set, is called when the stream breaks.
	Lost func(err error)
	// Stopping, if set, is called with the container's ID when the engine
	// signals a container to end (a kill event: docker stop, docker kill),
	// before Changed.
	Stopping func(id string)
}

// reloadSignals are signals programs take as "reload" or "report", not
// "end": a kill event with one of them does not drain.
var reloadSignals = map[string]bool{"1": true, "10": true, "12": true, "28": true,
	"SIGHUP": true, "SIGUSR1": true, "SIGUSR2": true, "SIGWINCH": true, "HUP": true, "USR1": true, "USR2": true, "WINCH": true}

// Watch follows the engine's events until ctx is done and never returns
// earlier. The subscription starts at the engine's clock as read before
// subscribing. A broken stream (engine restart, socket gone) is
// re-established with capped backoff.
func Watch(ctx context.Context, api client.APIClient, log *logrus.Entry, h Handler) {
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("type", string(events.NetworkEventType)))
	for _, a := range append(containerActions, networkActions...) {
		f.Add("event", string(a))
	}
	const minWait, maxWait = 250 * time.Millisecond, 5 * time.Second
	wait := minWait
	for ctx.Err() == nil {
		err := watchOnce(ctx, api, log, f, h, func() { wait = minWait })
		if ctx.Err() != nil {
			return
		}
		if h.Lost != nil {
			h.Lost(err)
		}
		log.WithField("error", err).Warnf("docker: event stream lost, reconnecting in %s", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxWait)
	}
}

// watchOnce subscribes and reads the stream until it breaks.
func watchOnce(ctx context.Context, api client.APIClient, log *logrus.Entry, f filters.Args, h Handler, healthy func()) error {
	info, err := api.Info(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := api.Events(ctx, events.ListOptions{Since: info.SystemTime, Filters: f})
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
			id := containerOf(m)
			if id == "" {
				continue
			}
			log.WithFields(logrus.Fields{"container": bridge.ShortID(id), "event": string(m.Type) + " " + string(m.Action)}).Debug("docker event")
			if h.Stopping != nil && m.Type == events.ContainerEventType && m.Action == events.ActionKill && !reloadSignals[m.Actor.Attributes["signal"]] {
				h.Stopping(id)
			}
			h.Changed(id)
		case err := <-errs:
			return err
		case <-stable.C:
			healthy()
		}
	}
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
