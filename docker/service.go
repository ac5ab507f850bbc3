package docker

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/mattn/go-shellwords"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/shorten"
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
	HostAddr6      string
	HostIP6        string // -ip6: the address registered for IPv6 services of published ports
	IPv6           bool   // -ip-family 6: services are registered by IPv6 address
	Network        string // -network: the network whose address -internal registers
	Internal       bool   // -internal
	Explicit       bool   // -explicit
	UseIPFromLabel string // -useIpFromLabel
	Tags           *Tags  // -tags
	// DockerHealth (-docker-health) is how Docker's health counts unless a
	// container says otherwise: HealthMirror ("" too), HealthOnly or
	// HealthIgnore.
	DockerHealth string
	// Drain (-drain) is how long the services of a stopped container stay
	// draining before they go, unless SERVICE_DRAIN says otherwise.
	Drain time.Duration
}

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
	warnings = md.misplaced(func(n string) bool {
		return slices.ContainsFunc(ports, func(p port) bool { return p.exposed.Port() == n })
	})
	registrable := 0
	for _, p := range ports {
		if p.hostPort != "" || cfg.Internal {
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
	for _, p := range ports {
		d := Decision{Port: string(p.exposed)}
		m := md.forPort(p.exposed.Port())
		s := bridge.Service{Container: c.ID, Name: m.value(KeyName), ExposedPort: p.exposed.Int()}
		switch {
		case p.hostPort == "" && !cfg.Internal:
			d.Skipped = "exposed but not published (publish it with -p, or run the daemon with -internal)"
		case isSet(m.value(KeyIgnore)):
			d.Skipped = m.key(KeyIgnore) + " is set"
		case s.Name == "" && cfg.Explicit:
			d.Skipped = "-explicit and no " + Prefix + "NAME or " + Prefix + p.exposed.Port() + "_NAME"
		}
		if d.Skipped != "" {
			decisions = append(decisions, d)
			continue
		}
		if s.Name == "" {
			s.Name = defaultName(c)
		} else if !dnsLabel.MatchString(s.Name) {
			warnings = append(warnings, fmt.Errorf("%s=%q: not a DNS label (letters, digits and '-', at most 63): registered as given, but DNS interfaces (Consul DNS, skydns2) cannot serve it", m.key(KeyName), s.Name))
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
		var w []error
		s.Address, s.Port, w = address(c, p, m, cfg)
		warnings = append(warnings, w...)
		s.Tags = joinTags(joinTags(nil, splitTags(m.value(KeyTags))), splitTags(forced))
		if p.exposed.Proto() == "udp" {
			s.Tags = joinTags(s.Tags, []string{"udp"})
		}
		s.Meta = m.attributes()
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
		decisions = append(decisions, d)
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
	return "", fmt.Errorf("%s=%q: not always, on-success or never; -deregister applies", e.key, e.value)
}

// drainOf is the SERVICE_DRAIN in a container's metadata, else def.
func drainOf(md metadata, def time.Duration) (time.Duration, error) {
	e, ok := md.generic[KeyDrain]
	if !ok || strings.TrimSpace(e.value) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(e.value))
	if err != nil || d < 0 {
		return def, fmt.Errorf("%s=%q: not a duration such as 5s; %s used", e.key, e.value, def)
	}
	return d, nil
}

// healthChoice is what a container's Docker health does to one service.
type healthChoice struct {
	skip   bool           // not registered now (HealthOnly, not healthy)
	mirror *bridge.Health // mirrored (HealthMirror)
}

// dockerHealth applies the container's Docker health, if it has a
// HEALTHCHECK, by the mode the metadata or the flag chooses.
func dockerHealth(c container.InspectResponse, m portMetadata, def string) (healthChoice, []error) {
	var warnings []error
	mode := strings.ToLower(strings.TrimSpace(m.value(KeyDockerHealth)))
	switch mode {
	case HealthMirror, HealthOnly, HealthIgnore:
	case "":
		mode = def
	default:
		warnings = append(warnings, fmt.Errorf("%s=%q: not mirror, healthy or ignore; %s used", m.key(KeyDockerHealth), m.value(KeyDockerHealth), cmp.Or(def, HealthMirror)))
		mode = def
	}
	if c.State == nil || c.State.Health == nil || mode == HealthIgnore {
		return healthChoice{}, warnings
	}
	h := c.State.Health
	switch h.Status {
	case bridge.Starting, bridge.Healthy, bridge.Unhealthy:
	default: // "none": no HEALTHCHECK
		return healthChoice{}, warnings
	}
	if mode == HealthOnly {
		return healthChoice{skip: h.Status != bridge.Healthy}, warnings
	}
	out := &bridge.Health{Status: h.Status}
	if n := len(h.Log); n > 0 && h.Log[n-1] != nil {
		out.Output = shorten.To(strings.TrimSpace(h.Log[n-1].Output), maxProbeBytes)
	}
	return healthChoice{mirror: out}, warnings
}

// port is one exposed port and where the host publishes it.
type port struct {
	exposed  nat.Port
	bindings []nat.PortBinding // from the runtime port map; nil with --net=host
	hostPort string            // "" when not published
}

// containerPorts lists every exposed or published port, ordered by number
// and protocol. An exposed port counts as published on the same port
// unless the runtime port map says otherwise (--net=host has no runtime
// port map).
func containerPorts(c container.InspectResponse) []port {
	all := map[nat.Port]port{}
	for p := range c.Config.ExposedPorts {
		all[p] = port{exposed: p, hostPort: p.Port()}
	}
	if c.NetworkSettings != nil {
		for p, bindings := range c.NetworkSettings.Ports {
			all[p] = port{exposed: p, bindings: bindings, hostPort: pickBinding(bindings, false).HostPort}
		}
	}
	out := slices.Collect(maps.Values(all))
	slices.SortFunc(out, func(a, b port) int {
		return cmp.Or(cmp.Compare(a.exposed.Int(), b.exposed.Int()), cmp.Compare(a.exposed.Proto(), b.exposed.Proto()))
	})
	return out
}

// pickBinding prefers the first binding of the family (IPv4, or IPv6 when
// v6): the engine lists a port published on every interface once for
// 0.0.0.0 and once for ::. A binding on no address counts for both.
func pickBinding(bs []nat.PortBinding, v6 bool) nat.PortBinding {
	for _, b := range bs {
		ip := net.ParseIP(b.HostIP)
		if b.HostIP == "" || ip != nil && (ip.To4() == nil) == v6 {
			return b
		}
	}
	if len(bs) > 0 {
		return bs[0]
	}
	return nat.PortBinding{}
}

// address is where a service of the port is reached, following -internal,
// the network and family choice, the bind IP, -ip/-ip6 and -useIpFromLabel.
func address(c container.InspectResponse, p port, m portMetadata, cfg Config) (string, int, []error) {
	var warnings []error
	v6 := false
	switch family := strings.TrimSpace(m.value(KeyIPFamily)); family {
	case "":
		v6 = cfg.IPv6
	case "4", "6":
		v6 = family == "6"
	default:
		warnings = append(warnings, fmt.Errorf("%s=%q: not 4 or 6, ignored", m.key(KeyIPFamily), m.value(KeyIPFamily)))
		v6 = cfg.IPv6
	}
	var addr string
	var num int
	if cfg.Internal {
		network := cmp.Or(strings.TrimSpace(m.value(KeyNetwork)), cfg.Network)
		var w error
		addr, w = containerIP(c, network, v6)
		if w != nil {
			warnings = append(warnings, fmt.Errorf("%s=%q: %w", cmp.Or(keyIfSet(m, KeyNetwork), "-network"), network, w))
		}
		num = p.exposed.Int()
	} else {
		b := nat.PortBinding{HostPort: p.hostPort}
		if p.bindings != nil {
			b = pickBinding(p.bindings, v6)
		}
		addr = b.HostIP
		if ip := net.ParseIP(addr); addr == "" || ip.IsUnspecified() {
			addr = cfg.HostAddr
			if v6 {
				addr = cfg.HostAddr6
			}
		}
		if cfg.HostIP != "" && !v6 {
			addr = cfg.HostIP
		}
		if cfg.HostIP6 != "" && v6 {
			addr = cfg.HostIP6
		}
		num, _ = strconv.Atoi(b.HostPort)
	}
	if cfg.UseIPFromLabel != "" {
		if v := c.Config.Labels[cfg.UseIPFromLabel]; v != "" {
			addr, _, _ = strings.Cut(v, "/")
		}
	}
	return addr, num, warnings
}

// keyIfSet is the key as the user wrote it, "" when it is not set.
func keyIfSet(m portMetadata, key string) string {
	if _, ok := m.get(key); ok {
		return m.key(key)
	}
	return ""
}

// containerIP is the container's address (IPv6 when v6) on the named
// network; without one, or when the container is not on it (an error says
// so), on the network its network mode names, else on the default bridge,
// else on the first network by name that gives it an address.
func containerIP(c container.InspectResponse, network string, v6 bool) (string, error) {
	if c.NetworkSettings == nil {
		return "", nil
	}
	nets := c.NetworkSettings.Networks
	ipOf := func(n string) string {
		e := nets[n]
		switch {
		case e == nil:
			return ""
		case v6:
			return e.GlobalIPv6Address
		default:
			return e.IPAddress
		}
	}
	var err error
	if network != "" {
		if ip := ipOf(network); ip != "" {
			return ip, nil
		}
		err = errors.New("the container has no address on that network; the default rule applies")
	}
	var mode string
	if c.HostConfig != nil {
		mode = string(c.HostConfig.NetworkMode)
	}
	for _, n := range append([]string{mode, "bridge"}, slices.Sorted(maps.Keys(nets))...) {
		if ip := ipOf(n); ip != "" {
			return ip, err
		}
	}
	return "", err
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

var httpMethod = regexp.MustCompile(`^[A-Z]+$`)

// checks builds the checks the metadata asks for, on the registered address.
func checks(m portMetadata, addr string, num int) ([]bridge.Check, []error) {
	var warnings []error
	warn := func(key, format string, args ...any) {
		warnings = append(warnings, fmt.Errorf("%s=%q: %s", m.key(key), m.value(key), fmt.Sprintf(format, args...)))
	}
	duration := func(key string) string {
		v := strings.TrimSpace(m.value(key))
		if v == "" {
			return ""
		}
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			warn(key, "not a positive duration such as 10s, ignored")
			return ""
		}
		return v
	}
	interval := cmp.Or(duration(KeyCheckInterval), DefaultCheckInterval)
	timeout := duration(KeyCheckTimeout)
	deregister := duration(KeyCheckDeregister)
	status := strings.ToLower(strings.TrimSpace(m.value(KeyCheckInitialStatus)))
	switch status {
	case "", "passing", "warning", "critical":
	default:
		warn(KeyCheckInitialStatus, "not passing, warning or critical, ignored")
		status = ""
	}
	method := strings.ToUpper(strings.TrimSpace(m.value(KeyCheckHTTPMethod)))
	if method != "" && !httpMethod.MatchString(method) {
		warn(KeyCheckHTTPMethod, "not an HTTP method, GET used")
		method = ""
	}
	hostport := net.JoinHostPort(addr, strconv.Itoa(num))

	var out []bridge.Check
	add := func(c bridge.Check) {
		if c.TTL == "" {
			c.Interval, c.Timeout = interval, timeout
		}
		c.InitialStatus, c.DeregisterAfter = status, deregister
		out = append(out, c)
	}
	for _, k := range []struct{ key, scheme string }{{KeyCheckHTTP, "http"}, {KeyCheckHTTPS, "https"}} {
		p := strings.TrimSpace(m.value(k.key))
		if p == "" {
			continue
		}
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		u := k.scheme + "://" + hostport + p
		if _, err := url.ParseRequestURI(u); err != nil {
			warn(k.key, "not a URL path, check left out")
			continue
		}
		add(bridge.Check{HTTP: u, Method: method, TLSSkipVerify: isSet(m.value(KeyCheckTLSSkipVerify))})
	}
	if isSet(m.value(KeyCheckTCP)) {
		add(bridge.Check{TCP: hostport})
	}
	if v := strings.TrimSpace(m.value(KeyCheckGRPC)); isSet(v) {
		target := hostport
		if _, err := strconv.ParseBool(v); err != nil {
			target += "/" + v // a gRPC service name
		}
		add(bridge.Check{GRPC: target, GRPCUseTLS: isSet(m.value(KeyCheckGRPCUseTLS)), TLSSkipVerify: isSet(m.value(KeyCheckTLSSkipVerify))})
	}
	if ttl := duration(KeyCheckTTL); ttl != "" {
		add(bridge.Check{TTL: ttl})
	}
	if script := strings.TrimSpace(m.value(KeyCheckScript)); script != "" {
		script = strings.ReplaceAll(script, ScriptIP, addr)
		script = strings.ReplaceAll(script, ScriptPort, strconv.Itoa(num))
		args, err := scriptArgs(script)
		switch {
		case err != nil:
			warn(KeyCheckScript, "cannot split into arguments (%v), check left out", err)
		case len(args) == 0:
			warn(KeyCheckScript, "empty command, check left out")
		default:
			add(bridge.Check{Args: args})
		}
	}
	return out, warnings
}

// scriptArgs splits a check script into arguments as a shell would (quotes,
// escapes). A script that uses the shell itself — a pipe, a list, a
// redirection — runs as ["/bin/sh", "-c", script], which is what Consul did
// with registrator's Script field before Consul removed it.
func scriptArgs(script string) ([]string, error) {
	p := shellwords.NewParser()
	args, err := p.Parse(script)
	if err != nil {
		return nil, err
	}
	if p.Position != -1 {
		return []string{"/bin/sh", "-c", script}, nil
	}
	return args, nil
}
