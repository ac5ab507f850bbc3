package docker

import (
	"fmt"
	"net"
)

// InterfaceAddr is the address -ip (v6 false: the first IPv4) or -ip6 (v6
// true: the first global unicast IPv6) registers when it names a network
// interface of this host.
func InterfaceAddr(name string, v6 bool) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("no network interface %q", name)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return "", fmt.Errorf("interface %s: %w", name, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		switch ip := n.IP; {
		case !v6 && ip.To4() != nil:
			return ip.String(), nil
		case v6 && ip.To4() == nil && ip.IsGlobalUnicast():
			return ip.String(), nil
		}
	}
	family := "IPv4"
	if v6 {
		family = "global IPv6"
	}
	return "", fmt.Errorf("interface %s has no %s address", name, family)
}

// IsInterface reports whether this host has a network interface called name.
func IsInterface(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}
