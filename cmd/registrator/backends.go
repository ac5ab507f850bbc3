package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/docker"
	"github.com/registrator/registrator/registry"
)

// backend is an open registry with the name logs use for it.
type backend struct {
	bridge.Backend
	name string
}

// openBackends opens every registry URI and reaches each with the
// -retry-attempts policy. On an error it closes those it opened; else the
// caller closes them (closeBackends).
func openBackends(ctx context.Context, o options, owner bridge.Identity, log *logrus.Entry) (out []backend, err error) {
	defer func() {
		if err != nil {
			closeBackends(out)
			out = nil
		}
	}()
	for _, uri := range o.uris {
		b, err := registry.Open(uri, bridge.BackendOptions{Owner: owner.String(), Writer: owner.Writer(), TTL: o.ttl, Log: log})
		if err != nil {
			return out, err
		}
		out = append(out, backend{Backend: b, name: backendName(uri)})
	}
	for _, b := range out {
		if err := reach(ctx, b, o, log.WithField("backend", b.name)); err != nil {
			return out, fmt.Errorf("%s: %w", b.name, err)
		}
	}
	return out, nil
}

func closeBackends(bs []backend) {
	for _, b := range bs {
		b.Close()
	}
}

// backendName is a URI's scheme, host and path, for logs and metric
// labels: never its user information (registry.Display).
func backendName(uri string) string { return registry.DisplayURI(uri) }

// checkURIs refuses, before anything starts, a registry URI whose user
// information did not parse (registry.Parse), so that no part of a
// password is ever printed, or sent, as an address.
func checkURIs(uris []string) error {
	for _, uri := range uris {
		if _, err := registry.Parse(uri); err != nil {
			return err
		}
	}
	return nil
}

func redacted(uris []string) string {
	var out []string
	for _, uri := range uris {
		out = append(out, backendName(uri))
	}
	return strings.Join(out, " ")
}

// reach pings the backend, with the -retry-attempts policy.
func reach(ctx context.Context, backend bridge.Backend, o options, log *logrus.Entry) error {
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := backend.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if o.retryAttempts != -1 && attempt >= o.retryAttempts {
			return fmt.Errorf("cannot reach the registry after %d attempt(s): %w", attempt+1, err)
		}
		log.WithField("error", err).Warnf("registry not reachable, retrying in %s", o.retryInterval)
		if err := bridge.ConstantBackoff(o.retryInterval).Sleep(ctx, attempt+1); err != nil {
			return err
		}
	}
}

// deriveConfig is how services are derived, from the command line: the
// daemon and explain share it.
func deriveConfig(o options, log *logrus.Entry) docker.Config {
	tags, err := docker.ParseTags(o.tags)
	if err != nil {
		log.WithField("error", err).Error("-tags is not a valid template; no tags are added from it")
	}
	host, _ := os.Hostname()
	cfg := docker.Config{Hostname: host, HostIP: o.hostIP, HostIP6: o.hostIP6, IPInterface: o.ipIface, IP6Interface: o.ip6Iface, IPv6: o.ipv6, Network: o.network,
		Internal: o.internal, Explicit: o.explicit, UseIPFromLabel: o.useIPFromLabel, Tags: tags, DockerHealth: o.dockerHealth, Drain: o.drain,
		AllowScriptChecks: o.scriptChecks, MaxServices: o.maxServices}
	if o.ipIface != "" { // the daemon's engine reads it again at every full pass
		cfg.HostIP, _ = docker.InterfaceAddr(o.ipIface, false)
	}
	if o.ip6Iface != "" {
		cfg.HostIP6, _ = docker.InterfaceAddr(o.ip6Iface, true)
	}
	if o.hostIP == "" && o.ipIface == "" || o.hostIP6 == "" && o.ip6Iface == "" { // -internal too: a container may have no address of its own
		cfg.HostAddr, cfg.HostAddr6 = hostAddresses(host, log)
	}
	return cfg
}

// hostAddresses are the IPv4 and IPv6 addresses the host name resolves
// to, as registrator did for ports published on every interface.
func hostAddresses(host string, log *logrus.Entry) (v4, v6 string) {
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		log.WithField("error", err).Warnf("cannot resolve host name %q: ports published on all interfaces are registered without an address; set -ip", host)
		return "", ""
	}
	for _, ip := range ips {
		switch {
		case ip.To4() != nil && v4 == "":
			v4 = ip.String()
		case ip.To4() == nil && v6 == "":
			v6 = ip.String()
		}
	}
	return v4, v6
}

// logTime is RFC 3339 with milliseconds: how long a change took shows.
const logTime = "2006-01-02T15:04:05.000Z07:00"

func newLogger(o options) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	l.SetLevel(o.logLevel)
	if o.logJSON {
		l.SetFormatter(&logrus.JSONFormatter{TimestampFormat: logTime})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true, TimestampFormat: logTime})
	}
	return logrus.NewEntry(l)
}

// healthcheck asks a running daemon for /health: 0 if it answers 200.
func healthcheck(addr string) int {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + "/health")
	if err != nil {
		fmt.Fprintf(os.Stderr, "registrator: healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "registrator: healthcheck: %s\n", resp.Status)
		return 1
	}
	return 0
}
