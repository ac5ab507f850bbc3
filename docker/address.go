package docker

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

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
// task is set for the port of a Swarm task that its container does not
// publish: it is reached at the task's address, as with -internal, on a
// network that is not the routing mesh's.
func address(c container.InspectResponse, p port, m portMetadata, cfg Config, task bool) (string, int, []error) {
	var warnings []error
	v6 := false
	switch family := strings.TrimSpace(m.value(KeyIPFamily)); family {
	case "":
		v6 = cfg.IPv6
	case "4", "6":
		v6 = family == "6"
	default:
		warnings = append(warnings, fmt.Errorf("%s: not 4 or 6, ignored", described(m.key(KeyIPFamily), m.value(KeyIPFamily))))
		v6 = cfg.IPv6
	}
	var addr string
	var num int
	internal := cfg.Internal || task
	if internal && !task && !ownAddress(c) {
		// Nothing on the container's own address (host network,
		// rootless Podman's slirp4netns, none): the port is reached
		// where the host publishes it.
		internal = false
		if mode := networkMode(c); mode != "host" {
			warnings = append(warnings, fmt.Errorf("-internal: the container has no address of its own (network mode %q): registered where the host publishes it", mode))
		}
	}
	if internal {
		network := cmp.Or(strings.TrimSpace(m.value(KeyNetwork)), cfg.Network)
		skip := ""
		if task {
			skip = swarmIngress
			if network == swarmIngress {
				warnings = append(warnings, fmt.Errorf("%s: the routing mesh's network is never registered; the default rule applies", described(cmp.Or(keyIfSet(m, KeyNetwork), "-network"), network)))
				network = ""
			}
		}
		var w error
		addr, w = containerIP(c, network, v6, skip)
		if w != nil {
			warnings = append(warnings, fmt.Errorf("%s: %w", described(cmp.Or(keyIfSet(m, KeyNetwork), "-network"), network), w))
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
			if a, err := labelAddress(v); err != nil {
				warnings = append(warnings, fmt.Errorf("-useIpFromLabel: label %s: %v; the default rule applies", described(cfg.UseIPFromLabel, v), err))
			} else {
				addr = a
			}
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

// ownAddress reports whether the container has an address of its own on
// any network, in either family.
func ownAddress(c container.InspectResponse) bool {
	if c.NetworkSettings == nil {
		return false
	}
	for _, e := range c.NetworkSettings.Networks {
		if e != nil && (e.IPAddress != "" || e.GlobalIPv6Address != "") {
			return true
		}
	}
	return false
}

// networkMode is the container's network mode ("bridge", "host",
// "slirp4netns", "container:<id>", …), "" when unknown.
func networkMode(c container.InspectResponse) string {
	if c.ContainerJSONBase == nil || c.HostConfig == nil {
		return ""
	}
	return string(c.HostConfig.NetworkMode)
}

// containerIP is the container's address (IPv6 when v6) on the named
// network; without one, or when the container is not on it (an error says
// so), on the network its network mode names, else on the default bridge,
// else on the first network by name that gives it an address; never on the
// network skip names.
func containerIP(c container.InspectResponse, network string, v6 bool, skip string) (string, error) {
	if c.NetworkSettings == nil {
		return "", nil
	}
	nets := c.NetworkSettings.Networks
	ipOf := func(n string) string {
		e := nets[n]
		switch {
		case e == nil || n == skip:
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
	for _, n := range append([]string{networkMode(c), "bridge"}, slices.Sorted(maps.Keys(nets))...) {
		if ip := ipOf(n); ip != "" {
			return ip, err
		}
	}
	return "", err
}
