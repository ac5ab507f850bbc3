// Package docker reads containers from the Docker engine and derives the
// services they should have.
package docker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
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

// Socket is the first of the sockets that exists, "unix://" + its path;
// "" if none does.
func Socket(sockets []string) string {
	for _, s := range sockets {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix://" + s
		}
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
// decode the container list itself. The client tells HTTPS from HTTP by its
// transport's TLS configuration, which the wrapper hides, so the scheme is
// set here from the same configuration.
func rawBodies(c *client.Client) error {
	hc := c.HTTPClient() // a copy
	tr, ok := hc.Transport.(*http.Transport)
	if !ok {
		return nil // not the client's own transport: List decodes in full
	}
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

	mu       sync.Mutex
	stopping map[string]time.Time // container ID → when a kill event was seen
	podman   bool                 // the API is Podman's (from ID)
	hostName string               // the host name the engine reports (from ID)
	kind     string               // "Docker Engine 20.10.24", "Podman Engine 4.3.1" (from ID)

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
// under Podman the identity is "podman@<host name>" ("podman-rootless@…"
// for a rootless Podman): the same across restarts of the daemon, crashes
// and reboots, as an owner mark must be.
func (s *Engine) ID(ctx context.Context) (string, error) {
	for attempt := 1; ; attempt++ {
		info, err := s.API.Info(ctx)
		if err == nil && info.ID != "" {
			s.mu.Lock()
			s.hostName = info.Name
			s.mu.Unlock()
			if s.describe(ctx) {
				kind := "podman"
				if slices.Contains(info.SecurityOptions, "name=rootless") {
					kind = "podman-rootless"
				}
				return kind + "@" + info.Name, nil
			}
			return info.ID, nil
		}
		if err == nil {
			err = errors.New("engine reported no ID")
		}
		s.log().WithField("error", err).Warn("waiting for the Docker engine")
		if err := s.retry().Sleep(ctx, attempt); err != nil {
			return "", err
		}
	}
}

// Identity is this host's identity (bridge.Identity says the rule): from
// the engine's ID and the host name the engine reports, or ExplicitID.
func (s *Engine) Identity(ctx context.Context) (bridge.Identity, error) {
	id, err := s.ID(ctx)
	if err != nil {
		return bridge.Identity{}, err
	}
	s.mu.Lock()
	host := s.hostName
	s.mu.Unlock()
	return bridge.NewIdentity(id, host, s.ExplicitID), nil
}

// describe reads which engine the API belongs to, logs it, and reports
// whether it is Podman.
func (s *Engine) describe(ctx context.Context) (podman bool) {
	v, err := s.API.ServerVersion(ctx)
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

// List returns every container, running or not.
//
// The list is read every resync, and the client's own decoding of it (every
// field of every container) cost more CPU than the rest of a pass; so, where
// the client goes through a rawbody.Transport (Connect's does), List decodes
// only the fields the fingerprint needs, and only of the containers whose
// element in the list changed since the last one (most do not from one
// resync to the next; the status text, "Up 3 minutes", changes at most
// once a minute).
func (s *Engine) List(ctx context.Context) ([]bridge.Container, error) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if s.followInterfaces() {
		s.listed = nil // every fingerprint changes
	}
	full, err := s.API.ContainerList(rawbody.Into(ctx, &s.listBuf, "[]"), container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	h := fingerprinter{salt: s.currentSalt()}
	if !s.listBuf.Got() {
		out := make([]bridge.Container, 0, len(full))
		for _, c := range full {
			l := listedOf(c)
			if in, _ := s.Selector.selects(l.candidate()); in {
				out = append(out, h.container(&l))
			}
		}
		return out, nil
	}
	elems, ok := objects(s.listBuf.Bytes(), s.elems[:0])
	if !ok {
		// Not an array of objects: the decoder says what is wrong.
		var list []listed
		err := json.Unmarshal(s.listBuf.Bytes(), &list)
		return nil, fmt.Errorf("docker: list containers: %w", cmp.Or(err, errors.New("not an array of objects")))
	}
	s.elems = elems
	if s.listing == nil || s.listed == nil {
		s.listed, s.listing = map[[sha256.Size]byte]listEntry{}, map[[sha256.Size]byte]listEntry{}
	}
	clear(s.listing)
	out := make([]bridge.Container, 0, len(elems))
	for _, e := range elems {
		key := sha256.Sum256(e)
		c, seen := s.listed[key]
		if !seen {
			var l listed
			if err := json.Unmarshal(e, &l); err != nil {
				return nil, fmt.Errorf("docker: list containers: %w", err)
			}
			in, _ := s.Selector.selects(l.candidate())
			c = listEntry{h.container(&l), in}
		}
		s.listing[key] = c
		if c.selected { // one the filter leaves out is as if it did not exist
			out = append(out, c.Container)
		}
	}
	s.listed, s.listing = s.listing, s.listed
	return out, nil
}

// container is what the bridge needs of a container in the list.
func (f *fingerprinter) container(c *listed) bridge.Container {
	var name string
	if len(c.Names) > 0 {
		name = strings.TrimPrefix(c.Names[0], "/")
	}
	return bridge.Container{
		ID:          c.ID,
		Name:        name,
		Running:     c.State == container.StateRunning || c.State == container.StatePaused,
		Fingerprint: f.sum(c),
	}
}

// listEntry is a container of the last list and whether -container-filter
// selects it.
type listEntry struct {
	bridge.Container
	selected bool
}

// listed is what List reads of a container in the engine's list.
type listed struct {
	ID              string `json:"Id"`
	Names           []string
	Image           string
	ImageID         string
	State           string
	Status          string
	Ports           []container.Port
	Labels          map[string]string
	NetworkSettings struct {
		Networks map[string]listedNetwork
	}
}

// listedNetwork is what List reads of one network of a container.
type listedNetwork struct {
	NetworkID         string
	IPAddress         string
	GlobalIPv6Address string
}

// candidate is what -container-filter reads of a listed container.
func (l *listed) candidate() candidate {
	c := candidate{image: l.Image, imageID: l.ImageID, labels: l.Labels, networks: map[string]string{}}
	if len(l.Names) > 0 {
		c.name = strings.TrimPrefix(l.Names[0], "/")
	}
	for n, e := range l.NetworkSettings.Networks {
		c.networks[n] = e.NetworkID
	}
	return c
}

func listedOf(c container.Summary) listed {
	l := listed{ID: c.ID, Names: c.Names, Image: c.Image, ImageID: c.ImageID, State: string(c.State), Status: c.Status, Ports: c.Ports, Labels: c.Labels}
	if c.NetworkSettings != nil {
		for n, e := range c.NetworkSettings.Networks {
			if e == nil {
				continue
			}
			if l.NetworkSettings.Networks == nil {
				l.NetworkSettings.Networks = map[string]listedNetwork{}
			}
			l.NetworkSettings.Networks[n] = listedNetwork{e.NetworkID, e.IPAddress, e.GlobalIPv6Address}
		}
	}
	return l
}

// fingerprinter digests what the list tells of a container that could
// change its services: names, image, state, published ports, addresses,
// labels, and the health in the status text ("Up 3 minutes (healthy)"), the
// rest of which changes all the time. Ports come in no fixed order and maps
// in none, so both are sorted first. It reuses its buffers between
// containers.
type fingerprinter struct {
	salt string // what else the services depend on: -ip's interface address
	buf  []byte
	keys []string
}

func (f *fingerprinter) sum(c *listed) string {
	b := f.buf[:0]
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if f.salt != "" {
		str(f.salt)
	}
	num := func(n uint64) { b = binary.AppendUvarint(b, n) }
	num(uint64(len(c.Names)))
	for _, n := range c.Names {
		str(n)
	}
	str(c.Image)
	str(c.State)
	str(healthOf(c.Status))
	slices.SortFunc(c.Ports, func(a, b container.Port) int {
		return cmp.Or(strings.Compare(a.IP, b.IP), cmp.Compare(a.PrivatePort, b.PrivatePort),
			cmp.Compare(a.PublicPort, b.PublicPort), strings.Compare(a.Type, b.Type))
	})
	num(uint64(len(c.Ports)))
	for _, p := range c.Ports {
		str(p.IP)
		num(uint64(p.PrivatePort))
		num(uint64(p.PublicPort))
		str(p.Type)
	}
	f.keys = sortedKeys(f.keys, c.NetworkSettings.Networks)
	num(uint64(len(f.keys)))
	for _, n := range f.keys {
		e := c.NetworkSettings.Networks[n]
		str(n)
		str(e.IPAddress)
		str(e.GlobalIPv6Address)
	}
	f.keys = sortedKeys(f.keys, c.Labels)
	num(uint64(len(f.keys)))
	for _, k := range f.keys {
		str(k)
		str(c.Labels[k])
	}
	f.buf = b
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// sortedKeys is m's keys in order, in buf's memory.
func sortedKeys[V any](buf []string, m map[string]V) []string {
	buf = slices.AppendSeq(buf[:0], maps.Keys(m))
	slices.Sort(buf)
	return buf
}

// healthOf is the health in a list's status text: "Up 3 minutes (healthy)",
// "(unhealthy)", "(health: starting)"; "" without a HEALTHCHECK.
func healthOf(status string) string {
	i := strings.LastIndexByte(status, '(')
	if i < 0 || !strings.HasSuffix(status, ")") {
		return ""
	}
	return status[i+1 : len(status)-1]
}

// Inspect reads one container and derives its services.
func (s *Engine) Inspect(ctx context.Context, id string) (bridge.Container, error) {
	c, err := s.API.ContainerInspect(ctx, id)
	if errdefs.IsNotFound(err) {
		s.mu.Lock()
		delete(s.stopping, id) // removed: its mark goes too
		s.mu.Unlock()
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: %w", id, bridge.ErrNotFound)
	}
	if err != nil {
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: %w", id, err)
	}
	if c.ContainerJSONBase == nil || c.State == nil {
		return bridge.Container{ID: id}, fmt.Errorf("docker: inspect %.12s: incomplete answer", id)
	}
	if ok, key := s.Selector.selects(inspected(c)); !ok {
		s.mu.Lock()
		delete(s.stopping, id)
		s.mu.Unlock()
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
	if out.Running {
		out.Services, out.Warnings = servicesOf(c, md, s.config())
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

// inspected is what -container-filter reads of an inspected container.
func inspected(c container.InspectResponse) candidate {
	out := candidate{name: strings.TrimPrefix(c.Name, "/"), imageID: c.Image, networks: map[string]string{}}
	if c.Config != nil {
		out.image, out.labels = c.Config.Image, c.Config.Labels
	}
	if c.NetworkSettings != nil {
		for n, e := range c.NetworkSettings.Networks {
			if e != nil {
				out.networks[n] = e.NetworkID
			}
		}
	}
	return out
}

// Selects reports whether -container-filter selects the inspected
// container, and if not, which key left it out (for explain).
func (s Selector) Selects(c container.InspectResponse) (ok bool, key string) {
	return s.selects(inspected(c))
}

// config is the derivation's Config, with the current addresses of the
// interfaces -ip and -ip6 name.
func (s *Engine) config() Config {
	cfg := s.Config
	if cfg.IPInterface == "" && cfg.IP6Interface == "" {
		return cfg
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.IPInterface != "" {
		cfg.HostIP = s.hostIP
	}
	if cfg.IP6Interface != "" {
		cfg.HostIP6 = s.hostIP6
	}
	return cfg
}

func (s *Engine) currentSalt() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.salt
}

// FollowInterfaces reads the addresses of the interfaces -ip and -ip6
// name, as every full pass does; the daemon calls it at start, where an
// error is a misconfiguration.
func (s *Engine) FollowInterfaces() error {
	s.followInterfaces()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ifaceErr != "" {
		return errors.New(s.ifaceErr)
	}
	return nil
}

// followInterfaces reads the interfaces' addresses again and reports
// whether they changed. An interface that lost its address keeps the last
// one, with a warning.
func (s *Engine) followInterfaces() (changed bool) {
	if s.Config.IPInterface == "" && s.Config.IP6Interface == "" {
		return false
	}
	var v4, v6 string
	var errs []string
	if n := s.Config.IPInterface; n != "" {
		var err error
		if v4, err = InterfaceAddr(n, false); err != nil {
			errs = append(errs, "-ip: "+err.Error())
		}
	}
	if n := s.Config.IP6Interface; n != "" {
		var err error
		if v6, err = InterfaceAddr(n, true); err != nil {
			errs = append(errs, "-ip6: "+err.Error())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	why := strings.Join(errs, "; ")
	if why != s.ifaceErr && why != "" {
		s.log().WithField("error", why).Warn("cannot read the address to register; keeping the last one")
	}
	s.ifaceErr = why
	if v4 == "" {
		v4 = s.hostIP
	}
	if v6 == "" {
		v6 = s.hostIP6
	}
	if v4 == s.hostIP && v6 == s.hostIP6 {
		return false
	}
	if s.salt != "" {
		s.log().WithFields(logrus.Fields{"ip": v4, "ip6": v6}).Info("the interface's address changed: registering the new one")
	}
	s.hostIP, s.hostIP6, s.salt = v4, v6, v4+"|"+v6
	return true
}
