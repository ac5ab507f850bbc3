// Package docker reads containers from the Docker engine and derives the
// services they should have.
package docker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/rawbody"
)

// Sockets are where an engine's API is looked for without DOCKER_HOST, in
// order: Docker's, the one registrator's image documented mounting it at,
// rootful Podman's, then the invoking user's rootless Podman's (under
// XDG_RUNTIME_DIR, else /run/user/<uid>).
func Sockets() []string {
	rootless := os.Getenv("XDG_RUNTIME_DIR")
	if rootless == "" {
		rootless = fmt.Sprintf("/run/user/%d", os.Getuid())
	}
	return []string{"/var/run/docker.sock", "/tmp/docker.sock", "/run/podman/podman.sock", rootless + "/podman/podman.sock"}
}

// Socket is the first of the sockets that exists and that this user may
// connect to, "unix://" + its path; "" if none does. A socket this user is
// denied (Docker's, or rootful Podman's, to a rootless Podman's user) is
// passed over; one that exists but refuses (an engine still starting) is
// taken.
func Socket(sockets []string) string {
	for _, s := range sockets {
		fi, err := os.Stat(s)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			continue
		}
		if c, err := net.DialTimeout("unix", s, time.Second); err == nil {
			c.Close()
		} else if errors.Is(err, os.ErrPermission) {
			continue
		}
		return "unix://" + s
	}
	return ""
}

// Connect returns a client for the engine named by DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH; without DOCKER_HOST, for the
// first of Sockets that exists (Docker's default when none does). The API
// version is negotiated with the engine.
func Connect() (*client.Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if os.Getenv("DOCKER_HOST") == "" {
		if host := Socket(Sockets()); host != "" {
			opts = append(opts, client.WithHost(host))
		}
	}
	opts = append(opts, rawBodies) // last: it wraps the transport the others set up
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return c, nil
}

// rawBodies puts a rawbody.Transport under the client, so that List can
// decode the container list itself, and lets it keep bridge.IdleConns idle
// connections. The client tells HTTPS from HTTP by its
// transport's TLS configuration, which the wrapper hides, so the scheme is
// set here from the same configuration.
func rawBodies(c *client.Client) error {
	hc := c.HTTPClient() // a copy
	tr, ok := hc.Transport.(*http.Transport)
	if !ok {
		return nil // not the client's own transport: List decodes in full
	}
	tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, bridge.IdleConns)
	tr.MaxIdleConns = max(tr.MaxIdleConns, bridge.IdleConns)
	scheme := "http"
	if tr.TLSClientConfig != nil {
		scheme = "https"
	}
	hc.Transport = &rawbody.Transport{Base: tr}
	if err := client.WithScheme(scheme)(c); err != nil {
		return err
	}
	return client.WithHTTPClient(hc)(c)
}

// Engine is the bridge.Engine of a Docker engine (or of an engine that
// speaks Docker's API).
type Engine struct {
	API    client.APIClient
	Config Config
	// Selector is -container-filter: a container it leaves out is as if
	// it did not exist (its entries go).
	Selector Selector
	// ExplicitID is -id: this host's identity, given; "" to derive it.
	ExplicitID string
	// Log is told of retries and of the event stream; nil for none.
	Log *logrus.Entry
	// Retry spaces the attempts to reach the engine at start and to
	// re-establish its event stream; DefaultRetry if nil.
	Retry bridge.Backoff
	// Swarm, set on a Swarm manager with -swarm-services, adds the ports
	// the swarm's services publish through the routing mesh, at this
	// node's address, to this host's entries, and the services' events
	// to the stream (Changed with the IDs of both its sources).
	Swarm *SwarmServices

	mu       sync.Mutex
	stopping map[string]time.Time // container ID → when a kill event was seen
	// unprobedSaid holds the containers whose unrun health probe was
	// logged (Podman without systemd), so that it is said once.
	unprobedSaid map[string]bool
	podman       bool   // the API is Podman's (from ID)
	hostName     string // the host name the engine reports (from ID)
	adopt        string // an earlier version's mark for this engine's entries (from ID)
	kind         string // "Docker Engine 20.10.24", "Podman Engine 4.3.1" (from ID)
	// The engine's answer to ID's /info and when it came: the first event
	// subscription starts at its clock instead of asking again (/info
	// takes an idle Docker 20.10 about 15 ms).
	idInfo   *system.Info
	idInfoAt time.Time

	// The addresses of -ip and -ip6 when they name interfaces, read at
	// every full pass (under mu); salt puts them in every fingerprint, so
	// that a change makes the full pass inspect every container again.
	hostIP, hostIP6, salt, ifaceErr string

	listMu  sync.Mutex
	listBuf rawbody.Buffer // the engine's last container list, reused
	// The last list's containers by the digest of their element in it,
	// and the map for the next list (swapped each list, both reused);
	// and the elements of the last list.
	listed, listing map[[sha256.Size]byte]listEntry
	elems           [][]byte
}

// DefaultRetry is the Engine's retry policy unless it has its own.
var DefaultRetry = bridge.ExponentialBackoff(250*time.Millisecond, 5*time.Second)

var _ bridge.Engine = (*Engine)(nil)

func (s *Engine) retry() bridge.Backoff {
	if s.Retry == nil {
		return DefaultRetry
	}
	return s.Retry
}

func (s *Engine) log() *logrus.Entry {
	if s.Log == nil {
		return discard
	}
	return s.Log
}

var discard = func() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}()

// ID returns the engine's ID, the owner mark of every entry this host
// writes. It waits, retrying, until the engine answers or ctx is done.
//
// Podman's Docker-compatible API answers a new random ID at every call, so
// under Podman the identity is "podman@<host name>" (for a rootless
// Podman, "podman-rootless-<uid>@<host name>", uid the user's that runs
// it): the same across restarts of the daemon, crashes and reboots, as an
// owner mark must be.
func (s *Engine) ID(ctx context.Context) (string, error) {
	for attempt := 1; ; attempt++ {
		id, err := s.id(ctx)
		if err == nil {
			return id, nil
		}
		s.log().WithField("error", err).Warn("waiting for the Docker engine")
		if err := s.retry().Sleep(ctx, attempt); err != nil {
			return "", err
		}
	}
}

// CallTimeout bounds each call to the engine that the bridge does not
// bound itself (with its -timeout): those of the identity at start, the
// clock before each subscription to the event stream, and whether the
// node is a Swarm manager. An engine that accepts the connection and
// never answers makes them fail, and be retried, instead of hanging.
const CallTimeout = 10 * time.Second

// id is one attempt of ID, bounded by CallTimeout.
func (s *Engine) id(ctx context.Context) (string, error) {
	type version struct {
		v   types.Version
		err error
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	// The version, which tells Podman from Docker, is asked for beside
	// the ID: the daemon's start waits for both, and each takes the
	// engine tens of milliseconds (Docker's /version runs runc and
	// docker-init to read theirs). Unused when /info fails.
	ver := make(chan version, 1)
	go func() {
		v, err := s.API.ServerVersion(ctx)
		ver <- version{v, err}
	}()
	info, err := s.API.Info(ctx)
	if err == nil && info.ID != "" {
		s.mu.Lock()
		s.hostName = info.Name
		s.idInfo, s.idInfoAt = &info, time.Now()
		s.mu.Unlock()
		v := <-ver
		if s.describe(v.v, v.err) {
			kind := "podman"
			if uid, rootless := s.rootless(ctx); rootless {
				// One host may run rootful Podman and a rootless
				// Podman per user: each needs a mark of its own.
				// Versions before this one marked a rootless
				// Podman's entries "podman@<host>": adopted.
				kind = fmt.Sprintf("podman-rootless-%d", uid)
				s.mu.Lock()
				s.adopt = "podman@" + info.Name
				s.mu.Unlock()
			}
			return kind + "@" + info.Name, nil
		}
		return info.ID, nil
	}
	if err == nil {
		err = errors.New("engine reported no ID")
	}
	return "", err
}

// idInfoFresh is how old ID's /info may be for the first event
// subscription to start at its clock.
const idInfoFresh = 5 * time.Second

// startInfo is ID's /info, once, if it came less than idInfoFresh ago;
// else nil.
func (s *Engine) startInfo() *system.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.idInfo
	s.idInfo = nil
	if info == nil || time.Since(s.idInfoAt) > idInfoFresh {
		return nil
	}
	return info
}

// Identity is this host's identity (bridge.Identity says the rule): from
// the engine's ID and the host name the engine reports, or ExplicitID.
func (s *Engine) Identity(ctx context.Context) (bridge.Identity, error) {
	id, err := s.ID(ctx)
	if err != nil {
		return bridge.Identity{}, err
	}
	s.mu.Lock()
	host, adopt := s.hostName, s.adopt
	s.mu.Unlock()
	ident := bridge.NewIdentity(id, host, s.ExplicitID)
	if adopt != "" {
		ident = ident.Adopting(adopt)
	}
	return ident, nil
}

// rootless reports whether the Podman behind the API runs rootless, and
// as which user: Podman's compatible /info does not say (4.3), its own
// does (the host user its containers' root maps to).
func (s *Engine) rootless(ctx context.Context) (uid int, ok bool) {
	type idMap struct {
		ContainerID int `json:"container_id"`
		HostID      int `json:"host_id"`
	}
	var info struct {
		Host struct {
			Security struct {
				Rootless bool `json:"rootless"`
			} `json:"security"`
			IDMappings struct {
				UIDMap []idMap `json:"uidmap"`
			} `json:"idMappings"`
		} `json:"host"`
	}
	if err := libpod(ctx, s.API, "info", &info); err != nil {
		s.log().WithField("error", err).Warn("podman: cannot read whether it runs rootless; taking it for rootful")
		return 0, false
	}
	if !info.Host.Security.Rootless {
		return 0, false
	}
	for _, m := range info.Host.IDMappings.UIDMap {
		if m.ContainerID == 0 {
			return m.HostID, true
		}
	}
	s.log().Warn("podman: rootless, but its user is not in its uid map; marked as user 0")
	return 0, true
}

// describe takes the engine's answer to /version for which engine the API
// belongs to, logs it, and reports whether it is Podman.
func (s *Engine) describe(v types.Version, err error) (podman bool) {
	if err != nil {
		s.log().WithField("error", err).Warn("cannot read the engine's version; taking it for Docker")
		return false
	}
	name, version := "Docker Engine", v.Version
	for _, c := range v.Components {
		if c.Name == "Podman Engine" {
			name, version, podman = c.Name, c.Version, true
		}
	}
	s.mu.Lock()
	s.podman, s.kind = podman, name+" "+version
	s.mu.Unlock()
	s.log().WithFields(logrus.Fields{"engine": name, "version": version, "api": v.APIVersion, "socket": s.API.DaemonHost()}).Debug("connected to the container engine")
	return podman
}

// Kind is the engine's name and version, known after ID.
func (s *Engine) Kind() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kind
}

func (s *Engine) isPodman() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.podman
}

// stopped notes that the engine is stopping a container (a kill event),
// so that its services drain. It never blocks.
func (s *Engine) stopped(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping == nil {
		s.stopping = map[string]time.Time{}
	}
	if _, ok := s.stopping[id]; !ok {
		s.stopping[id] = time.Now()
	}
}

// stoppedAt is when this run of the container was seen stopping, zero if
// it was not; the mark of an earlier run is dropped.
func (s *Engine) stoppedAt(id string, c container.InspectResponse) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.stopping[id]
	if !ok {
		return time.Time{}
	}
	if started, err := time.Parse(time.RFC3339Nano, c.State.StartedAt); err == nil && started.After(at) {
		delete(s.stopping, id) // it started again since
		return time.Time{}
	}
	return at
}

// forget drops the stopping mark of a container that is as good as gone.
func (s *Engine) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.stopping, id)
	delete(s.unprobedSaid, id)
}

// Inspect reads one container and derives its services.
func (s *Engine) Inspect(ctx context.Context, id string) (bridge.Container, error) {
	if strings.HasPrefix(id, swarmIngressPrefix) {
		if s.Swarm == nil {
			return bridge.Container{ID: id}, fmt.Errorf("docker: %s: %w", id, bridge.ErrNotFound)
		}
		return s.Swarm.inspectIngress(ctx, id, s.config())
	}
	c, err := s.API.ContainerInspect(ctx, id)
	if errdefs.IsNotFound(err) {
		s.forget(id) // removed: its mark goes too
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: %w", id, bridge.ErrNotFound)
	}
	if err != nil {
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: %w", id, err)
	}
	if c.ContainerJSONBase == nil || c.State == nil {
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: incomplete answer", id)
	}
	if ok, key := s.Selector.Selects(c); !ok {
		s.forget(id)
		return bridge.Container{ID: id}, fmt.Errorf("docker: %.12s: left out by -container-filter %s: %w", id, key, bridge.ErrNotFound)
	}
	out := bridge.Container{
		ID:       c.ID,
		Name:     strings.TrimPrefix(c.Name, "/"),
		Running:  c.State.Running && !c.State.Restarting,
		ExitCode: c.State.ExitCode,
		Stopping: s.stoppedAt(id, c),
	}
	md := metadataOf(c) // read once for the services, the drain and the policy
	var pod Pod
	if out.Running && s.isPodman() {
		if c, pod, err = PodmanView(ctx, s.API, c); err != nil {
			return bridge.Container{ID: id}, fmt.Errorf("podman: %.12s: %w", id, err)
		}
		var note string
		if c, note = claimed(c, md, pod); note != "" {
			// Not a warning: that each member of a pod claims only its
			// ports is the normal case (explain shows it).
			s.log().WithField("container", bridge.ShortID(c.ID)).Debug(note)
		}
		var warning string
		if out.LookAgain, warning = s.unprobed(c, time.Now()); warning != "" {
			s.log().WithField("container", bridge.ShortID(c.ID)).Warn(warning)
		}
	}
	if out.Running && !pod.Infra {
		var warnings []error
		out.Services, warnings = servicesOf(c, md, s.config())
		out.Warnings = append(out.Warnings, warnings...)
		for i := range out.Services {
			out.Services[i].Draining = !out.Stopping.IsZero()
		}
	}
	if !out.Stopping.IsZero() {
		var w error
		out.Drain, w = drainOf(md, s.Config.Drain)
		if w != nil {
			out.Warnings = append(out.Warnings, w)
		}
	}
	var w error
	if out.Deregister, w = deregisterOf(md); w != nil {
		out.Warnings = append(out.Warnings, w)
	}
	return out, nil
}
