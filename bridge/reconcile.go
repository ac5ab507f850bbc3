package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/sirupsen/logrus"
)

// reconcile compares everything: it reads every container and every entry,
// refreshes what the bridge believes the backend holds, and queues each
// container whose entries may differ from what should exist. It acts on
// nothing unless both reads succeeded. It counts the entries it found
// missing from the backend and the stale ones it found there.
func (b *Bridge) reconcile(ctx context.Context) (missing, stale int, err error) {
	lctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	list, err := b.src.List(lctx)
	cancel()
	if err != nil {
		return 0, 0, fmt.Errorf("list containers: %w", err)
	}
	b.mu.Lock()
	start := b.seq
	b.mu.Unlock()
	var entries []Service
	err = b.call(ctx, func(ctx context.Context) (err error) {
		entries, err = b.backend.Services(ctx)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read registry: %w", err)
	}

	local := make(map[string]bool, len(list))
	for _, c := range list {
		local[c.ID] = true
	}
	byContainer := map[string]map[string]Service{}
	var legacy []Service
	for _, e := range entries {
		switch {
		case b.cfg.Owner.otherWriter(e.Owner, e.Writer) != "":
			b.warnTwin(e.Writer, e, true)
		case e.Container != "" && b.cfg.Owner.owns(e.Owner, local[e.Container]):
			if w := b.cfg.Owner.Writer(); w != "" && e.Writer != w {
				// Written before this host's name was kept with it (or
				// without -id): written again, in place, to keep it.
				e.Revision = ""
			}
			if byContainer[e.Container] == nil {
				byContainer[e.Container] = map[string]Service{}
			}
			byContainer[e.Container][e.ID] = e
		case e.Owner == "" && b.cfg.Cleanup:
			legacy = append(legacy, e)
		default:
			if twin := b.cfg.Owner.twin(e.Owner); twin != "" {
				b.warnTwin(twin, e, false)
			}
		}
	}

	b.mu.Lock()
	// What a worker changed after the read started is newer than the read.
	for id := range b.actual {
		if _, ok := byContainer[id]; !ok && b.touched[id] <= start {
			delete(b.actual, id)
		}
	}
	for id, services := range byContainer {
		if b.touched[id] <= start {
			b.actual[id] = services
		}
	}
	for id, t := range b.touched {
		if t <= start {
			delete(b.touched, id)
		}
	}

	listed := make(map[string]Container, len(list))
	running := map[string]bool{} // by container name, for -cleanup
	todo := map[string]bool{}
	for _, c := range list {
		listed[c.ID] = c
		if c.Running {
			running[c.Name] = true
		}
		k := b.containers[c.ID]
		switch {
		case c.Running && (k == nil || k.fingerprint != c.Fingerprint):
			todo[c.ID] = true
			if k == nil {
				k = &known{}
				b.containers[c.ID] = k
			}
		case !c.Running && k != nil && k.fingerprint != c.Fingerprint:
			todo[c.ID] = true
		}
		if k != nil {
			k.fingerprint = c.Fingerprint
		}
	}
	for id, k := range b.containers {
		if _, ok := listed[id]; !ok {
			todo[id] = true // gone while we were not looking
		}
		if k.err != "" {
			// Its last sync failed and waits for a retry whose backoff
			// may have grown long while the engine or the backend was
			// away; this read just worked, so try now.
			todo[id] = true
		}
		reg, dereg := plan(b.cfg.Owner.String(), k.desired, k.desiredRevs, slices.Collect(maps.Values(b.actual[id])))
		if len(reg)+len(dereg) > 0 {
			todo[id] = true // the backend drifted
			// Unless a worker is syncing the container now: between its
			// first write and its end the entries it wrote are there but
			// not yet what it wants. It is looked at again all the same.
			if !b.q.Processing(id) {
				for _, s := range reg {
					if _, held := b.held[heldKey{id, s.ID}]; !held {
						missing++ // a held one is not missing: it was never written
					}
				}
				stale += len(dereg)
			}
		}
	}
	for id, entries := range b.actual {
		if b.containers[id] == nil {
			todo[id] = true // entries of a container we never synced: a crash left them
			stale += len(entries)
		}
	}
	b.mu.Unlock()

	b.log.WithFields(logrus.Fields{"containers": len(list), "entries": len(entries), "queued": len(todo)}).Debug("full reconcile")
	for id := range todo {
		b.q.Add(id)
	}
	return missing, stale, b.cleanup(ctx, legacy, running)
}

// legacyID matches the IDs gliderlabs/registrator gave: host:container:port[:udp].
var legacyID = regexp.MustCompile(`^(.+?):([a-zA-Z0-9][a-zA-Z0-9_.-]+):[0-9]+(?::udp)?$`)

func (b *Bridge) cleanup(ctx context.Context, legacy []Service, running map[string]bool) error {
	var errs []error
	for _, e := range legacy {
		m := legacyID.FindStringSubmatch(e.ID)
		if m == nil || m[1] != b.cfg.Hostname || running[m[2]] {
			continue
		}
		err := b.write(ctx, func(ctx context.Context) error { return b.backend.Deregister(ctx, e) })
		log := b.log.WithFields(logrus.Fields{"service": e.ID, "action": "cleanup"})
		if err != nil {
			errs = append(errs, fmt.Errorf("remove dangling %s: %w", e.ID, err))
			continue
		}
		log.Info("removed dangling entry")
	}
	return errors.Join(errs...)
}

// warnTwin says, once per host, that another host's engine has this
// engine's ID, or, sameMark, that another host was given this host's -id:
// neither daemon touches the other's entries, but the operator should tell
// the hosts apart.
func (b *Bridge) warnTwin(host string, e Service, sameMark bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.twins[host] {
		return
	}
	if b.twins == nil {
		b.twins = map[string]bool{}
	}
	b.twins[host] = true
	if sameMark {
		b.log.WithFields(logrus.Fields{"service": e.ID, "owner": e.Owner}).Errorf(
			"host %s writes with this host's identity %q (this host is %s): the two were given the same -id; neither daemon touches the other's entries, but give each host its own -id", host, e.Owner, b.cfg.Owner.host)
		return
	}
	b.log.WithFields(logrus.Fields{"service": e.ID, "owner": e.Owner}).Errorf(
		"host %s's engine has this engine's ID (this host is %s): the two share /etc/docker/key.json; neither daemon touches the other's entries, but give each engine its own key (remove key.json and restart the engine) or set -id", host, b.cfg.Owner.host)
}
