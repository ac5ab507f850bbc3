package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
)

// sync makes the entries of one container equal to what should exist now:
// it inspects the container, asks desiredServices what should exist, and
// writes the plan's difference. The rule itself does no I/O.
func (b *Bridge) sync(ctx context.Context, id string) error {
	began := time.Now()
	c, err := b.inspect(ctx, id)
	if b.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		b.log.WithFields(logrus.Fields{"container": ShortID(id), "took": time.Since(began).String()}).Debug("inspected")
	}
	gone := errors.Is(err, ErrNotFound)
	if err != nil && !gone {
		err = fmt.Errorf("inspect: %w", err)
		b.mu.Lock()
		if k := b.containers[id]; k != nil {
			k.err = err.Error() // the next full reconcile retries it
		}
		b.mu.Unlock()
		return err
	}
	log := b.log.WithField("container", ShortID(id))
	for _, w := range c.Warnings {
		log.WithField("error", w).Warnf("container %s: metadata warning", c.Name)
	}

	b.mu.Lock()
	o := observation{Container: c, Gone: gone, Actual: slices.Collect(maps.Values(b.actual[id])), Now: time.Now()}
	if k := b.containers[id]; k != nil {
		o.Known, o.Last = true, k.desired
	}
	desired, recheck := desiredServices(o, b.policy)
	if c.LookAgain > 0 && !gone && (recheck == 0 || c.LookAgain < recheck) {
		recheck = c.LookAgain
	}
	if recheck > 0 {
		b.q.AddAfter(id, recheck) // its drain period ends, or the engine asked: look again then
	}
	revs := fingerprints(desired)
	register, deregister := plan(b.cfg.Owner.String(), desired, revs, o.Actual)
	b.mu.Unlock()

	if b.cfg.DryRun {
		for _, s := range register {
			log.WithFields(logrus.Fields{"service": s.ID, "action": "register"}).Infof("dry run: would register %s at %s:%d", s.Name, s.Address, s.Port)
		}
		for _, s := range deregister {
			log.WithFields(logrus.Fields{"service": s.ID, "action": "deregister"}).Infof("dry run: would deregister %s", s.Name)
		}
		register, deregister = nil, nil
	}
	var errs []error
	for _, s := range register {
		s.Owner, s.Writer = b.cfg.Owner.String(), b.cfg.Owner.Writer()
		began := time.Now()
		err := b.write(ctx, func(ctx context.Context) error { return b.backend.Register(ctx, s) })
		b.cfg.Observer.Wrote("register", time.Since(began), err)
		var held *HeldError
		if errors.As(err, &held) {
			// Not a failure to retry with backoff: the entry is someone
			// else's. Each full pass looks again, and registers the
			// service once the holder is gone.
			b.hold(log, id, c.Name, s, held)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("register %s: %w", s.ID, err))
			continue
		}
		b.hold(log, id, c.Name, s, nil)
		s.Revision = s.Fingerprint()
		b.record(id, s.ID, &s)
		log.WithFields(logrus.Fields{"service": s.ID, "action": "register"}).Infof("registered %s at %s:%d", s.Name, s.Address, s.Port)
	}
	for _, s := range deregister {
		began := time.Now()
		err := b.write(ctx, func(ctx context.Context) error { return b.backend.Deregister(ctx, s) })
		b.cfg.Observer.Wrote("deregister", time.Since(began), err)
		if err != nil {
			errs = append(errs, fmt.Errorf("deregister %s: %w", s.ID, err))
			continue
		}
		b.record(id, s.ID, nil)
		log.WithFields(logrus.Fields{"service": s.ID, "action": "deregister"}).Infof("deregistered %s", s.Name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if gone && len(errs) == 0 {
		delete(b.containers, id)
		b.forgetHeld(id, nil)
		return nil
	}
	k := b.containers[id]
	if k == nil {
		k = &known{}
		b.containers[id] = k
	}
	k.name, k.services, k.serviceRevs = c.Name, desired, revs
	b.forgetHeld(id, desired)
	if len(errs) > 0 {
		err := errors.Join(errs...)
		k.err = err.Error()
		return err
	}
	k.err = ""
	k.desired, k.desiredRevs = desired, revs
	if len(register)+len(deregister) == 0 {
		log.Debug("in sync")
	}
	return nil
}

// record notes a change the backend accepted: s written, or removed if nil.
func (b *Bridge) record(container, serviceID string, s *Service) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.touched[container] = b.seq
	if s == nil {
		delete(b.actual[container], serviceID)
		if len(b.actual[container]) == 0 {
			delete(b.actual, container)
		}
		return
	}
	if b.actual[container] == nil {
		b.actual[container] = map[string]Service{}
	}
	b.actual[container][serviceID] = *s
}

// hold notes that the entry of container id's service s is held by someone
// else (err), or no longer (nil). The first time it is held, a warning
// names the container and the holder; Status shows it as Held.
func (b *Bridge) hold(log *logrus.Entry, id, name string, s Service, err *HeldError) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := heldKey{id, s.ID}
	if err == nil {
		delete(b.held, key)
		return
	}
	if _, was := b.held[key]; !was {
		log := log.WithFields(logrus.Fields{"service": s.ID, "action": "register"})
		if err.Host != "" {
			// Two hosts claim one service ID: the first keeps it, and a
			// person must tell them apart.
			log.Errorf("container %s: not registered: %v; this host is %s: two hosts claim service ID %s, give their services distinct IDs", name, err, b.cfg.Owner.String(), s.ID)
		} else {
			log.Warnf("container %s: not registered: %v; the container's other entries are unaffected, and this one is registered once the entry is gone", name, err)
		}
	}
	if b.held == nil {
		b.held = map[heldKey]string{}
	}
	b.held[key] = err.Holder
}

// forgetHeld forgets the held services of container id that are not
// among desired: a service it no longer has is held no more (all of them
// for a container that is gone). The caller holds b.mu.
func (b *Bridge) forgetHeld(id string, desired []Service) {
	for key := range b.held {
		if key.container == id && !slices.ContainsFunc(desired, func(s Service) bool { return s.ID == key.service }) {
			delete(b.held, key)
		}
	}
}

// heldKey names a service of a container whose entry someone else holds.
type heldKey struct{ container, service string }
