package docker

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/sirupsen/logrus"
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
