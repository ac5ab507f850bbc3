package consul

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/consul/api"

	"github.com/registrator/registrator/bridge"
)

// held is the HeldError for the agent's service with s's ID when that is
// not s.Owner's entry of s.Container; nil when the ID is free, is ours, or
// is registrator's own unmarked entry for this very service (same ID,
// name, address and port), which Register takes over in place. The
// agent's service API has no check-and-set, so the read and the write
// that follows are two requests; on one agent the other writers are few
// (an operator, another program), and the next pass reads again.
func (b *Backend) held(ctx context.Context, s bridge.Service) (*bridge.HeldError, error) {
	got, _, err := b.client.Agent().Service(s.ID, (&api.QueryOptions{}).WithContext(ctx))
	switch {
	case answered(err, http.StatusNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("consul: read %s before writing it: %w", s.ID, err)
	case got == nil:
		return nil, nil
	}
	owner, container, writer := got.Meta[MetaOwner], got.Meta[MetaContainer], got.Meta[MetaWriter]
	switch {
	case owner == "" && got.Service == s.Name && got.Address == s.Address && got.Port == s.Port:
		return nil, nil // registrator wrote it for this container
	case (owner == s.Owner || owner != "" && owner == s.Replaces) && container == s.Container && (writer == "" || s.Writer == "" || writer == s.Writer):
		return nil, nil
	}
	e := bridge.NewHeldError(s.ID, owner, container, writer, s.Owner)
	if owner == "" {
		e.Holder = "service " + got.Service + ", " + e.Holder
	}
	return e, nil
}

// mayWrite returns a *bridge.HeldError when the agent's service with s's ID
// is someone else's. A service this backend registered for the same owner
// and container, and has not deregistered since, is taken to be still
// ours without asking.
func (b *Backend) mayWrite(ctx context.Context, s bridge.Service) error {
	if b.ownedAs(s) {
		return nil
	}
	held, err := b.held(ctx, s)
	if err != nil {
		return err
	}
	if held != nil {
		return held
	}
	return nil
}
