package docker

import (
	"cmp"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/registrator/registrator/bridge"
)

// Config is what the command line says about deriving services.
type Config struct {
	Hostname string // first part of the default service ID
	// HostIP (-ip) is the address registered for published ports; it beats
	// the bind IP of the port and HostAddr.
	HostIP string
	// HostAddr is this host's own address, used for ports published on every
	// interface when HostIP is empty ("" lets the backend choose).
	HostAddr string
	// HostAddr6 is the host's own IPv6 address, for IPv6 services of ports
	// published on every interface when HostIP6 is empty.
	HostAddr6 string
	HostIP6   string // -ip6: the address registered for IPv6 services of published ports
	// IPInterface and IP6Interface name the network interfaces whose
	// addresses HostIP and HostIP6 follow (-ip eth0, -ip6 eth0): the
	// Engine reads them again at every full pass.
	IPInterface, IP6Interface string
	IPv6                      bool   // -ip-family 6: services are registered by IPv6 address
	Network                   string // -network: the network whose address -internal registers
	Internal                  bool   // -internal
	Explicit                  bool   // -explicit
	UseIPFromLabel            string // -useIpFromLabel
	Tags                      *Tags  // -tags
	// DockerHealth (-docker-health) is how Docker's health counts unless a
	// container says otherwise: HealthMirror ("" too), HealthOnly or
	// HealthIgnore.
	DockerHealth string
	// Drain (-drain) is how long the services of a stopped container stay
	// draining before they go, unless SERVICE_DRAIN says otherwise.
	Drain time.Duration
	// AllowScriptChecks (-allow-script-checks) lets SERVICE_CHECK_SCRIPT
	// through; without it a service that asks for one is not registered.
	AllowScriptChecks bool
	// MaxServices (-max-services) is how many services one container may
	// yield; 0 is DefaultMaxServices.
	MaxServices int
}

// maxServices is -max-services, DefaultMaxServices when unset.
func (c Config) maxServices() int { return cmp.Or(c.MaxServices, DefaultMaxServices) }

// Services derives the services of a running container, following the
// compatibility contract. It never fails: each piece of metadata it cannot use
// is skipped and reported in warnings, naming the key.
func Services(c container.InspectResponse, cfg Config) (services []bridge.Service, warnings []error) {
	return servicesOf(c, metadataOf(c), cfg)
}

// servicesOf is Services with the container's metadata already read.
func servicesOf(c container.InspectResponse, md metadata, cfg Config) (services []bridge.Service, warnings []error) {
	decisions, warnings := explain(c, md, cfg)
	for _, d := range decisions {
		if d.Service != nil {
			services = append(services, *d.Service)
		}
	}
	return services, warnings
}

// Decision is what one exposed port of a container yields: a service, or
// the reason it yields none.
type Decision struct {
	Port    string          // "80/tcp"
	Service *bridge.Service // nil when Skipped says why not
	Skipped string
	// Keys are the SERVICE_* keys that apply to the port, as written with
	// their values, each the one that won (port and protocol, port,
	// range, container), sorted.
	Keys []string
}

// Explain decides, for every exposed or published port of a running
// container in port order, whether it yields a service and why not.
func Explain(c container.InspectResponse, cfg Config) (decisions []Decision, warnings []error) {
	return explain(c, metadataOf(c), cfg)
}

// metadataOf reads the SERVICE_* metadata of an inspected container.
func metadataOf(c container.InspectResponse) metadata {
	if c.Config == nil {
		return readMetadata(nil, nil)
	}
	return readMetadata(c.Config.Env, c.Config.Labels)
}

func explain(c container.InspectResponse, md metadata, cfg Config) (decisions []Decision, warnings []error) {
	if c.ContainerJSONBase == nil || c.Config == nil {
		return nil, nil
	}
	ports := containerPorts(c)
	task := swarmTask(c)
	if task != "" && (c.HostConfig == nil || !c.HostConfig.NetworkMode.IsHost()) {
		// A task's ports are published by the routing mesh, not by its
		// container: only a binding in the runtime port map (mode=host)
		// publishes one.
		for i, p := range ports {
			if p.bindings == nil || pickBinding(p.bindings, false).HostPort == "" {
				ports[i].hostPort = ""
			}
		}
	}
	exposed := make([]nat.Port, len(ports))
	for i, p := range ports {
		exposed[i] = p.exposed
	}
	warnings = md.misplaced(exposed)
	registrable := 0
	for _, p := range ports {
		if p.hostPort != "" || cfg.Internal && ownAddress(c) || task != "" {
			registrable++
		}
	}
	group := registrable > 1

	var forced string
	if cfg.Tags != nil {
		var err error
		if forced, err = cfg.Tags.For(c); err != nil {
			warnings = append(warnings, err)
		}
	}

	name := strings.TrimPrefix(c.Name, "/")
	limit := cfg.maxServices()
	yielded, cut := 0, 0
	for _, p := range ports {
		d := Decision{Port: string(p.exposed)}
		if yielded >= limit {
			// Past the limit nothing more is read: a container that
			// exposes every port costs no more than one with limit ports.
			d.Skipped = fmt.Sprintf("the container has yielded -max-services (%d) services already", limit)
			decisions = append(decisions, d)
			cut++
			continue
		}
		m := md.forPort(p.exposed.Port(), p.exposed.Proto())
		d.Keys = m.applied()
		s := bridge.Service{Container: c.ID, Name: m.value(KeyName), ExposedPort: p.exposed.Int()}
		switch {
		case p.hostPort == "" && !cfg.Internal && task == "":
			d.Skipped = "exposed but not published (publish it with -p, or run the daemon with -internal)"
		case p.hostPort == "" && task == "" && !ownAddress(c):
			d.Skipped = fmt.Sprintf("exposed but not published, and the container has no address of its own (network mode %q) for -internal: publish it with -p", networkMode(c))
		case isSet(m.value(KeyIgnore)):
			d.Skipped = m.key(KeyIgnore) + " is set"
		case s.Name == "" && cfg.Explicit:
			d.Skipped = "-explicit and no " + Prefix + "NAME or " + Prefix + p.exposed.Port() + "_NAME"
		}
		if d.Skipped != "" {
			decisions = append(decisions, d)
			continue
		}
		if s.Name == "" && task != "" {
			s.Name = task // the Swarm service's name
		} else if s.Name == "" {
			s.Name = defaultName(c)
		}
		if group && !m.fromPort(KeyName) {
			s.Name += "-" + p.exposed.Port()
		}
		s.ID = cfg.Hostname + ":" + name + ":" + p.exposed.Port()
		if proto := p.exposed.Proto(); proto != "tcp" {
			s.ID += ":" + proto // udp as in registrator; sctp too, so that IDs stay distinct
		}
		if id := m.value(KeyID); id != "" {
			s.ID = id
		}
		d.Skipped = refusal(s, m, cfg)
		if d.Skipped != "" {
			warnings = append(warnings, fmt.Errorf("port %s not registered: %s", p.exposed, d.Skipped))
			decisions = append(decisions, d)
			continue
		}
		if given := m.value(KeyName); given != "" && !dnsLabel.MatchString(given) {
			warnings = append(warnings, fmt.Errorf("%s: not a DNS label (letters, digits and '-', at most 63): registered as given, but DNS interfaces (Consul DNS, skydns2) cannot serve it", described(m.key(KeyName), given)))
		}
		var w []error
		s.Address, s.Port, w = address(c, p, m, cfg, task != "" && p.hostPort == "")
		warnings = append(warnings, w...)
		own, w := ownTags(m)
		warnings = append(warnings, w...)
		s.Tags = joinTags(joinTags(nil, own), splitTags(forced))
		if p.exposed.Proto() == "udp" {
			s.Tags = joinTags(s.Tags, []string{"udp"})
		}
		s.Meta, w = m.attributes()
		warnings = append(warnings, w...)
		w = consulFields(&s, m)
		warnings = append(warnings, w...)
		s.Checks, w = checks(m, s.Address, s.Port)
		warnings = append(warnings, w...)
		health, w := dockerHealth(c, m, cfg.DockerHealth)
		warnings = append(warnings, w...)
		if health.skip {
			d.Skipped = "Docker health is " + c.State.Health.Status + " and " + m.key(KeyDockerHealth) + "/-docker-health is healthy"
			decisions = append(decisions, d)
			continue
		}
		s.Health = health.mirror
		d.Service = &s
		yielded++
		decisions = append(decisions, d)
	}
	if cut > 0 {
		warnings = append(warnings, fmt.Errorf("%d more port(s) not registered: a container yields at most -max-services (%d) services", cut, limit))
	}
	return decisions, dedupe(warnings)
}

// dedupe drops repeated warnings: a generic key is read once per port.
func dedupe(warnings []error) []error {
	seen := map[string]bool{}
	return slices.DeleteFunc(warnings, func(w error) bool {
		dup := seen[w.Error()]
		seen[w.Error()] = true
		return dup
	})
}

// deregisterOf is the SERVICE_DEREGISTER policy in a container's metadata,
// "" for the daemon's.
func deregisterOf(md metadata) (string, error) {
	e, ok := md.generic[KeyDeregister]
	v := strings.ToLower(strings.TrimSpace(e.value))
	switch {
	case !ok || v == "":
		return "", nil
	case v == bridge.DeregisterAlways, v == bridge.DeregisterOnSuccess, v == bridge.DeregisterNever:
		return v, nil
	}
	return "", fmt.Errorf("%s: not always, on-success or never; -deregister applies", described(e.key, e.value))
}

// drainOf is the SERVICE_DRAIN in a container's metadata, else def.
func drainOf(md metadata, def time.Duration) (time.Duration, error) {
	e, ok := md.generic[KeyDrain]
	if !ok || strings.TrimSpace(e.value) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(e.value))
	if err != nil || d < 0 {
		return def, fmt.Errorf("%s: not a duration such as 5s; %s used", described(e.key, e.value), def)
	}
	return d, nil
}

var hexID = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// defaultName is the image's base name without registry, path, tag or digest.
// A container whose image was given by ID is named after its compose service,
// else after the container.
func defaultName(c container.InspectResponse) string {
	image := c.Config.Image
	image, _, _ = strings.Cut(image, "@")
	if strings.HasPrefix(image, "sha256:") || (hexID.MatchString(image) && strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), image)) {
		if s := c.Config.Labels[LabelComposeService]; s != "" {
			return s
		}
		return strings.TrimPrefix(c.Name, "/")
	}
	base := path.Base(image)
	base, _, _ = strings.Cut(base, ":")
	return base
}

// splitTags splits a comma list; "\," is a comma inside a tag. Tags are
// trimmed and empty ones dropped.
func splitTags(s string) []string {
	var tags []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			tags = append(tags, t)
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == ',':
			flush()
		default:
			cur.WriteByte(s[i])
		}
	}
	flush()
	return tags
}

// joinTags appends extra to tags, in order, leaving out repeats.
func joinTags(tags, extra []string) []string {
	for _, t := range extra {
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}

// isSet reads a flag-like value: empty, "false", "0", "no" and "off" are off;
// anything else is on (registrator ignored a container for any value).
func isSet(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "false", "0", "no", "off", "f":
		return false
	}
	return true
}

// consulFields reads the keys of Consul's (and skydns2's) registration
// fields: tag override, weight, SRV priority and record TTL, and a Connect
// sidecar.
func consulFields(s *bridge.Service, m portMetadata) []error {
	var warnings []error
	number := func(key string, min, max int) int {
		v := strings.TrimSpace(m.value(key))
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			warnings = append(warnings, fmt.Errorf("%s: not a whole number from %d to %d, ignored", described(m.key(key), m.value(key)), min, max))
			return 0
		}
		return n
	}
	s.TagOverride = isSet(m.value(KeyTagOverride))
	s.Weight = number(KeyWeight, 1, 65535)
	s.Priority = number(KeyPriority, 0, 65535)
	s.RecordTTL = number(KeyTTL, 1, 1<<31-1)
	if v := strings.TrimSpace(m.value(KeyConnectSidecar)); isSet(v) {
		s.Sidecar = &bridge.Sidecar{}
		if _, err := strconv.ParseBool(v); err != nil {
			s.Sidecar.Port = number(KeyConnectSidecar, 1, 65535)
		}
	}
	return warnings
}
