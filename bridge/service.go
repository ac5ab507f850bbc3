// Package bridge keeps a service registry equal to the containers running on
// one Docker host.
//
// Docker is the truth and the registry holds a copy that we own. A Source
// says what should exist (the services derived from containers), a Backend
// says what does exist, Plan computes the difference, and the Bridge applies
// it: per container when an event arrives, for everything at start, after a
// reconnect and on a resync tick.
//
// bridge imports nothing else of this module: docker/ and every registry
// adapter import it, and only cmd/registrator imports them all.
package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/sirupsen/logrus"
)

// Service is one registration: one port of one container.
type Service struct {
	ID      string
	Name    string
	Address string
	Port    int
	// ExposedPort is the container's port the service comes from (the
	// zookeeper layout stores it as PrivatePort).
	ExposedPort int
	Tags        []string          // in the order the user gave them
	Meta        map[string]string // the container's attributes (SERVICE_<KEY> that is not a known key)
	Checks      []Check
	// Draining is set while the container is stopping: Consul puts the
	// service in maintenance, other backends no longer hold it.
	Draining bool `json:",omitempty"`
	// Health, when set, is the container's Docker health, which the
	// service mirrors: a backend with health checks (Consul) shows it, the
	// others hold the entry only while it is healthy.
	Health *Health `json:",omitempty"`

	// TagOverride lets Consul's anti-entropy keep tags that were changed in
	// its catalog (SERVICE_ENABLE_TAG_OVERRIDE).
	TagOverride bool `json:",omitempty"`
	// Weight is the service's weight (SERVICE_WEIGHT): Consul's passing
	// weight, skydns2's SRV weight; 0 for the backend's default.
	Weight int `json:",omitempty"`
	// Priority and RecordTTL (seconds) are skydns2's SRV priority and
	// record TTL (SERVICE_PRIORITY, SERVICE_TTL); 0 for the default.
	Priority  int `json:",omitempty"`
	RecordTTL int `json:",omitempty"`
	// Sidecar asks Consul to register a Connect sidecar proxy service for
	// this service (SERVICE_CONNECT_SIDECAR), for a proxy the user runs;
	// nil for none. Other backends ignore it.
	Sidecar *Sidecar `json:",omitempty"`

	// Container is the full ID of the Docker container the service comes from.
	Container string
	// Owner identifies the registrator instance that wrote the entry (the
	// Docker engine ID). Adapters store it with the entry and return it on read;
	// an entry without an owner mark reads back with Owner "".
	Owner string
	// Writer is the name of the host whose daemon writes the entry, beside
	// a mark set by hand (-id), which several hosts could be given by
	// mistake (Identity.Writer); "" with any other mark. Adapters store it
	// with the mark and return it on read.
	Writer string `json:"-"`
	// Revision is set on entries read back from a backend: the Fingerprint of
	// the definition the entry was written from, "" if the backend kept none.
	Revision string
	// Replaces is, on a Register, the mark of an earlier owner of the same
	// entry (one adopted from an earlier version), whose own record the
	// backend removes with the write; "" for none.
	Replaces string `json:"-"`
}

// Sidecar is a Consul Connect sidecar proxy registration.
type Sidecar struct {
	// Port is where the user's proxy listens; 0 lets Consul choose one
	// from its sidecar port range (21000-21255 by default).
	Port int `json:",omitempty"`
}

// Docker health states.
const (
	Starting  = "starting"
	Healthy   = "healthy"
	Unhealthy = "unhealthy"
)

// Health is a container's Docker health.
type Health struct {
	Status string // Starting, Healthy or Unhealthy
	// Output is the last probe's output. It is not part of the
	// fingerprint: a probe's output changes at every probe, its status not.
	Output string `json:"-"`
}

// Notifier is a Backend that can tell when it may have lost entries behind
// the bridge's back (an agent that restarted empty, a lease that ended), so
// that the bridge repairs them at once, not at the next resync.
type Notifier interface {
	// Notify calls lost, which does not block, whenever the backend may
	// have lost entries, until ctx is done.
	Notify(ctx context.Context, lost func())
}

// HealthMirror is a Backend that shows a service's Health itself (Consul:
// as a check); a service of any other backend is held there only while
// its container is healthy.
type HealthMirror interface {
	MirrorsHealth() bool
}

// Check is a health check attached to a service. Exactly one of HTTP, TCP,
// GRPC, TTL and Args says what kind it is.
type Check struct {
	HTTP          string `json:",omitempty"` // full URL (http or https)
	Method        string `json:",omitempty"` // HTTP method, "" for GET
	TCP           string `json:",omitempty"` // host:port
	GRPC          string `json:",omitempty"` // host:port[/service]
	GRPCUseTLS    bool   `json:",omitempty"`
	TLSSkipVerify bool   `json:",omitempty"`
	// Header is sent with HTTP checks; TLSServerName is the name HTTPS and
	// gRPC-over-TLS checks verify and send as SNI.
	Header        map[string][]string `json:",omitempty"`
	TLSServerName string              `json:",omitempty"`
	TTL           string              `json:",omitempty"` // the application reports within this period
	Args          []string            `json:",omitempty"` // a script the backend's agent runs

	Interval        string `json:",omitempty"`
	Timeout         string `json:",omitempty"`
	InitialStatus   string `json:",omitempty"` // passing, warning or critical
	DeregisterAfter string `json:",omitempty"` // remove the service once critical this long
}

// Fingerprint digests everything about s that a backend stores, so that Plan
// can tell an unchanged entry from a changed one without reading checks back.
// Owner and Revision are not part of it.
func (s Service) Fingerprint() string {
	s.Owner, s.Revision, s.Replaces = "", "", ""
	b, err := json.Marshal(s) // maps are marshalled with sorted keys
	if err != nil {
		panic("bridge: fingerprint: " + err.Error()) // cannot happen: plain data
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// BackendOptions are what the command line says to every backend.
type BackendOptions struct {
	Owner string // the owner mark of this daemon's entries
	// Writer is Identity.Writer: this host's name when the mark was set by
	// hand, "" else. Key-value backends name it in their lease record too.
	Writer string
	TTL    time.Duration // -ttl, for backends whose entries expire; 0 for the backend's default
	Log    *logrus.Entry // told what an adapter had to change to fit its registry's limits
}

// Backend is a service registry. Every method may be called concurrently and
// must return when ctx is done.
type Backend interface {
	// Services returns every entry the backend holds in the namespace this
	// registrator writes to, as stored, with Owner and Revision read back from
	// the owner mark. Entries that carry no mark read back with Owner "".
	Services(ctx context.Context) ([]Service, error)
	// Register creates or replaces s, marking it as written by s.Owner with
	// revision s.Fingerprint(). It is idempotent. It never writes over an
	// entry that is not s.Owner's entry of s.Container (nor, with a Writer,
	// another host's): it returns a *HeldError instead. The one exception
	// is an entry without any mark that is exactly s (its ID, name,
	// address and port: registrator wrote it for this container), which it
	// takes over in place.
	Register(ctx context.Context, s Service) error
	// Deregister removes s. An entry that is already gone is not an error,
	// nor is one that is no longer s.Owner's: that one is left as it is.
	Deregister(ctx context.Context, s Service) error
	// Ping checks that the backend can be reached.
	Ping(ctx context.Context) error
	Close() error
}

// HeldError is what Register returns for an entry that someone else
// holds: another container, another host, or a program that is not
// registrator. Make one with NewHeldError.
type HeldError struct {
	ID     string // the service's ID
	Holder string // who holds it, for the operator: "host 4f2a…@node-2", "container 3f2a1b4c5d6e of this host", ...
	Host   string // the other host's owner mark (or, under a shared -id, its name) when another host holds it; "" else
}

func (e *HeldError) Error() string {
	return "entry " + e.ID + " is held by " + e.Holder + ": left as it is"
}

// NewHeldError is the HeldError for the entry id whose mark says owner (""
// for none), container and writer (the host under -id, "" else); self is
// this daemon's owner mark.
func NewHeldError(id, owner, container, writer, self string) *HeldError {
	e := &HeldError{ID: id}
	switch {
	case owner == "":
		e.Holder = "an entry without registrator's mark (written by hand or by another program)"
	case owner == self && writer != "":
		e.Holder, e.Host = "container "+ShortID(container)+" of host "+writer, writer
	case owner == self:
		e.Holder = "container " + ShortID(container) + " of this host"
	default:
		e.Holder, e.Host = "host "+owner, owner
	}
	return e
}
