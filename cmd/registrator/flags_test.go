package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(options) bool
		err   string
	}{
		{name: "defaults", args: []string{"consul://h:1"}, check: func(o options) bool {
			return slices.Equal(o.uris, []string{"consul://h:1"}) && o.resync == 30*time.Second && !o.onSuccess && o.retryAttempts == 0 &&
				o.retryInterval == 2*time.Second && o.logLevel == logrus.InfoLevel && !o.logJSON
		}},
		{name: "every registrator flag", args: []string{"-ip", "10.0.0.5", "-internal", "-explicit", "-useIpFromLabel", "ip",
			"-tags", "a,b", "-resync", "5", "-deregister", "on-success", "-cleanup", "-ttl", "30", "-ttl-refresh", "10",
			"-retry-attempts", "-1", "-retry-interval", "500", "consul://h:1"}, check: func(o options) bool {
			return o.hostIP == "10.0.0.5" && o.internal && o.explicit && o.useIPFromLabel == "ip" && o.tags == "a,b" &&
				o.resync == 5*time.Second && o.onSuccess && o.cleanup && o.ttl == 30*time.Second &&
				o.retryAttempts == -1 && o.retryInterval == 500*time.Millisecond
		}},
		{name: "-resync 0 means the default", args: []string{"-resync", "0", "consul://h:1"}, check: func(o options) bool { return o.resync == 30*time.Second }},
		{name: "-ip takes a host name", args: []string{"-ip", "node-1.example", "consul://h:1"}, check: func(o options) bool { return o.hostIP == "node-1.example" }},
		{name: "script checks are refused by default", args: []string{"consul://h:1"}, check: func(o options) bool { return !o.scriptChecks && o.maxServices == 256 }},
		{name: "-allow-script-checks", args: []string{"-allow-script-checks", "consul://h:1"}, check: func(o options) bool { return o.scriptChecks }},
		{name: "-max-services", args: []string{"-max-services", "10", "consul://h:1"}, check: func(o options) bool { return o.maxServices == 10 }},
		{name: "-max-services 0", args: []string{"-max-services", "0", "consul://h:1"}, err: "-max-services 0: must be at least 1"},
		{name: "json logs", args: []string{"-log-level", "debug", "-log-format", "json", "consul://h:1"}, check: func(o options) bool { return o.logJSON && o.logLevel == logrus.DebugLevel }},
		{name: "-consul-rejoin is accepted, with a warning that it has no effect", args: []string{"-consul-rejoin=false", "consul://h:1"}, check: func(o options) bool {
			return len(o.ignored) == 1 && strings.Contains(o.ignored[0], "-consul-rejoin has no effect")
		}},
		{name: "REGISTRATOR_CONSUL_REJOIN too", args: []string{"consul://h:1"}, env: map[string]string{"REGISTRATOR_CONSUL_REJOIN": "true"},
			check: func(o options) bool { return len(o.ignored) == 1 }},
		{name: "no warning without -consul-rejoin", args: []string{"consul://h:1"}, check: func(o options) bool { return len(o.ignored) == 0 }},
		{name: "-version needs no URI", args: []string{"-version"}, check: func(o options) bool { return o.version }},
		{name: "no URI", args: nil, err: "missing registry URI"},
		{name: "flag after the URI", args: []string{"consul://h:1", "-ip", "1.2.3.4"}, err: `unexpected argument "-ip" after the registry URI`},
		{name: "several URIs", args: []string{"consul://h:1", "etcd://h:2/p"}, check: func(o options) bool {
			return slices.Equal(o.uris, []string{"consul://h:1", "etcd://h:2/p"})
		}},
		{name: "a URI twice", args: []string{"consul://h:1", "consul://h:1"}, err: "given twice"},
		{name: "unknown flag", args: []string{"-nope", "consul://h:1"}, err: "flag provided but not defined: -nope"},
		{name: "bad -ip", args: []string{"-ip", "not an ip", "consul://h:1"}, err: "-ip"},
		{name: "bad -deregister", args: []string{"-deregister", "never", "consul://h:1"}, err: "-deregister"},
		{name: "negative -resync", args: []string{"-resync", "-1", "consul://h:1"}, err: "-resync"},
		{name: "-ttl alone", args: []string{"-ttl", "30", "consul://h:1"}, err: "together"},
		{name: "-ttl not above -ttl-refresh", args: []string{"-ttl", "10", "-ttl-refresh", "10", "consul://h:1"}, err: "greater"},
		{name: "-retry-attempts below -1", args: []string{"-retry-attempts", "-2", "consul://h:1"}, err: "-retry-attempts"},
		{name: "zero -retry-interval", args: []string{"-retry-interval", "0", "consul://h:1"}, err: "-retry-interval"},
		{name: "bad -log-level", args: []string{"-log-level", "loud", "consul://h:1"}, err: "-log-level"},
		{name: "bad -log-format", args: []string{"-log-format", "xml", "consul://h:1"}, err: "-log-format"},
		{name: "non-numeric -resync", args: []string{"-resync", "soon", "consul://h:1"}, err: "-resync"},
		{name: "-http-addr and -dry-run", args: []string{"-http-addr", "127.0.0.1:9333", "-dry-run", "consul://h:1"}, check: func(o options) bool {
			return o.httpAddr == "127.0.0.1:9333" && o.dryRun
		}},
		{name: "-docker-health", args: []string{"-docker-health", "healthy", "consul://h:1"}, check: func(o options) bool { return o.dockerHealth == "healthy" }},
		{name: "bad -docker-health", args: []string{"-docker-health", "sometimes", "consul://h:1"}, err: "-docker-health"},
		{name: "-network, -ip-family 6, -ip6", args: []string{"-network", "back", "-ip-family", "6", "-ip6", "fd00::5", "consul://h:1"}, check: func(o options) bool {
			return o.network == "back" && o.ipv6 && o.hostIP6 == "fd00::5"
		}},
		{name: "-container-filter, twice", args: []string{"-container-filter", "label=tier=front", "-container-filter", "network=back", "consul://h:1"},
			check: func(o options) bool { return o.selector.String() == "label=tier=front network=back" }},
		{name: "-container-filter from the environment, several", args: []string{"consul://h:1"},
			env:   map[string]string{"REGISTRATOR_CONTAINER_FILTER": "label=a  name=^web"},
			check: func(o options) bool { return o.selector.String() == "label=a name=^web" }},
		{name: "-container-filter status", args: []string{"-container-filter", "status=running", "consul://h:1"}, err: "status makes no sense"},
		{name: "-container-filter unknown key", args: []string{"-container-filter", "volume=x", "consul://h:1"}, err: `unknown key "volume"`},
		{name: "-ip names an interface", args: []string{"-ip", "lo", "-ip6", "lo", "consul://h:1"},
			check: func(o options) bool {
				return o.ipIface == "lo" && o.hostIP == "" && o.ip6Iface == "lo" && o.hostIP6 == ""
			}},
		{name: "-ip names no interface and no host", args: []string{"-ip", "nosuch0", "consul://h:1"}, err: `-ip "nosuch0": no network interface of that name`},
		{name: "-ip6 names no interface", args: []string{"-ip6", "nosuch0", "consul://h:1"}, err: `-ip6 "nosuch0": no network interface of that name`},
		{name: "bad -ip-family", args: []string{"-ip-family", "5", "consul://h:1"}, err: "-ip-family"},
		{name: "-ip6 with an IPv4 address", args: []string{"-ip6", "10.0.0.5", "consul://h:1"}, err: "-ip6"},
		{name: "bad -http-addr", args: []string{"-http-addr", "9333", "consul://h:1"}, err: "-http-addr"},
		{name: "-healthcheck needs no URI", args: []string{"-healthcheck", "-http-addr", "127.0.0.1:1"}, check: func(o options) bool { return o.healthcheck }},
		{name: "-healthcheck without -http-addr", args: []string{"-healthcheck"}, err: "needs -http-addr"},
		{name: "-pprof is refused, naming -pprof-addr", args: []string{"-pprof", "-http-addr", "127.0.0.1:1", "consul://h:1"}, err: "-pprof-addr 127.0.0.1:PORT"},
		{name: "REGISTRATOR_PPROF too", args: []string{"consul://h:1"}, env: map[string]string{"REGISTRATOR_PPROF": "true"}, err: "-pprof is removed"},
		{name: "-pprof-addr on loopback, without -http-addr", args: []string{"-pprof-addr", "127.0.0.1:6060", "consul://h:1"}, check: func(o options) bool { return o.pprofAddr == "127.0.0.1:6060" }},
		{name: "-pprof-addr on 127.0.0.0/8, ::1 and localhost", args: []string{"-pprof-addr", "127.1.2.3:1", "consul://h:1"}, check: func(o options) bool { return o.pprofAddr == "127.1.2.3:1" }},
		{name: "-pprof-addr [::1]", args: []string{"-pprof-addr", "[::1]:6060", "consul://h:1"}, check: func(o options) bool { return o.pprofAddr == "[::1]:6060" }},
		{name: "-pprof-addr localhost", env: map[string]string{"REGISTRATOR_PPROF_ADDR": "localhost:6060", "REGISTRATOR_REGISTRY": "consul://h:1"}, check: func(o options) bool { return o.pprofAddr == "localhost:6060" }},
		{name: "-pprof-addr on every interface", args: []string{"-pprof-addr", ":6060", "consul://h:1"}, err: `-pprof-addr ":6060": must be a loopback address`},
		{name: "-pprof-addr 0.0.0.0", args: []string{"-pprof-addr", "0.0.0.0:6060", "consul://h:1"}, err: "must be a loopback address"},
		{name: "-pprof-addr routable", args: []string{"-pprof-addr", "10.0.0.5:6060", "consul://h:1"}, err: "must be a loopback address"},
		{name: "-pprof-addr a host name", args: []string{"-pprof-addr", "localhost.example:6060", "consul://h:1"}, err: "must be a loopback address"},
		{name: "-pprof-addr without a port", args: []string{"-pprof-addr", "127.0.0.1", "consul://h:1"}, err: "must be a loopback address and port"},
		{name: "a URI twice names it without its user information", args: []string{"etcd://bob:s3cret@h:1/p", "etcd://bob:s3cret@h:1/p"}, err: "registry URI etcd://h:1/p given twice"},
		{name: "every flag from the environment", env: map[string]string{
			"REGISTRATOR_IP": "10.0.0.5", "REGISTRATOR_INTERNAL": "true", "REGISTRATOR_USEIPFROMLABEL": "ip",
			"REGISTRATOR_RETRY_ATTEMPTS": "-1", "REGISTRATOR_HTTP_ADDR": "127.0.0.1:1", "REGISTRATOR_DRY_RUN": "1",
			"REGISTRATOR_REGISTRY": "consul://h:1  etcd://h:2/p",
		}, check: func(o options) bool {
			return o.hostIP == "10.0.0.5" && o.internal && o.useIPFromLabel == "ip" && o.retryAttempts == -1 &&
				o.httpAddr == "127.0.0.1:1" && o.dryRun && slices.Equal(o.uris, []string{"consul://h:1", "etcd://h:2/p"})
		}},
		{name: "the command line beats the environment", args: []string{"-ip", "10.0.0.6", "consul://h:3"},
			env: map[string]string{"REGISTRATOR_IP": "10.0.0.5", "REGISTRATOR_REGISTRY": "consul://h:1"}, check: func(o options) bool {
				return o.hostIP == "10.0.0.6" && slices.Equal(o.uris, []string{"consul://h:3"})
			}},
		{name: "a bad value in the environment names the variable", args: []string{"consul://h:1"},
			env: map[string]string{"REGISTRATOR_RESYNC": "soon"}, err: `REGISTRATOR_RESYNC="soon"`},
		{name: "a bad value in the environment is checked like a flag", args: []string{"consul://h:1"},
			env: map[string]string{"REGISTRATOR_DEREGISTER": "never"}, err: "-deregister"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard, func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q is more than one line", err)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "bob") {
					t.Fatalf("error %q shows user information", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Fatalf("options %+v", o)
			}
		})
	}
}

func TestHelpPrintsUsage(t *testing.T) {
	var b strings.Builder
	_, err := parseFlags([]string{"-h"}, &b, func(string) string { return "" })
	if !errors.Is(err, errHelp) {
		t.Fatalf("error %v, want errHelp", err)
	}
	for _, want := range []string{"Usage: registrator [options] <registry URI>", "-retry-attempts", "-useIpFromLabel", "DOCKER_HOST", "REGISTRATOR_<FLAG>", "-http-addr"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}
