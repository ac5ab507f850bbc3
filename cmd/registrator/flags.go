package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/docker"
	"github.com/registrator/registrator/registry"
)

// options is the command line.
type options struct {
	hostIP         string
	ipIface        string // -ip names a network interface
	ip6Iface       string // -ip6 names a network interface
	internal       bool
	explicit       bool
	useIPFromLabel string
	scriptChecks   bool // -allow-script-checks
	maxServices    int  // -max-services
	tags           string
	resync         time.Duration
	onSuccess      bool
	cleanup        bool
	ttl            time.Duration // -ttl-refresh is checked against it, then unused: the clients refresh leases themselves
	retryAttempts  int
	retryInterval  time.Duration
	logLevel       logrus.Level
	logJSON        bool
	version        bool
	healthcheck    bool
	httpAddr       string
	pprofAddr      string // -pprof-addr
	dryRun         bool
	dockerHealth   string
	network        string
	ipv6           bool
	hostIP6        string
	drain          time.Duration
	selector       docker.Selector // -container-filter
	id             string          // -id
	swarmServices  bool            // -swarm-services
	ignored        []string        // warnings for flags accepted and ignored (-consul-rejoin)
	uris           []string        // one or more registry URIs
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// envPrefix starts the environment variable of each flag:
// REGISTRATOR_RETRY_ATTEMPTS for -retry-attempts. envRegistry holds the
// registry URIs, separated by spaces, when the command line has none.
const (
	envPrefix   = "REGISTRATOR_"
	envRegistry = envPrefix + "REGISTRY"
)

// envName is the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// errHelp asks for the usage text: -h or -help.
var errHelp = flag.ErrHelp

// defaultResync applies when -resync is 0, registrator's "never".
const defaultResync = 30 * time.Second

var hostname = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)

// parseFlags reads the command line, and for each flag not on it the
// environment variable REGISTRATOR_<FLAG> (getenv). Its errors are one
// line each.
func parseFlags(args []string, usage io.Writer, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("registrator", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.hostIP, "ip", "", "address to register for published ports (beats the bind IP and the hostname's address), or a network interface (eth0) whose first IPv4 address is registered, read again at every full pass")
	fs.BoolVar(&o.internal, "internal", false, "register the container's address and exposed port instead of the host's; unpublished ports count")
	fs.BoolVar(&o.explicit, "explicit", false, "only register services that have a name (SERVICE_NAME or SERVICE_<port>_NAME)")
	fs.StringVar(&o.useIPFromLabel, "useIpFromLabel", "", "take the address from this container `label`: an IP address of another host, a /cidr suffix dropped (loopback, link-local, multicast and anything else are refused)")
	fs.BoolVar(&o.scriptChecks, "allow-script-checks", false, "register services with SERVICE_CHECK_SCRIPT: lets whoever starts a container run commands on the Consul agent's host (with the agent's enable_script_checks); without it such a service is not registered")
	fs.IntVar(&o.maxServices, "max-services", docker.DefaultMaxServices, "at most this many services from one container or Swarm service; ports past it are left out, with a warning")
	fs.StringVar(&o.tags, "tags", "", "comma `list` of tags added to every service; a Go template over the container's inspect data")
	resync := fs.Int("resync", int(defaultResync/time.Second), "`seconds` between full reconciles (0 means the default, 30)")
	deregister := fs.String("deregister", "always", "always, or on-success: keep the services of a container that exited with a failure")
	fs.BoolVar(&o.cleanup, "cleanup", false, "also remove dangling entries without an owner mark that registrator left for this host")
	ttl := fs.Int("ttl", 0, "`seconds` of the lease etcd and skydns2 entries live on (default 30); with -ttl-refresh")
	ttlEvery := fs.Int("ttl-refresh", 0, "`seconds` between TTL refreshes, less than -ttl: accepted for compatibility, unused (the clients refresh their leases themselves, etcd at a third of the TTL)")
	fs.IntVar(&o.retryAttempts, "retry-attempts", 0, "more attempts to reach the backend at start; -1 retries forever")
	retryMS := fs.Int("retry-interval", 2000, "`milliseconds` between those attempts")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.httpAddr, "http-addr", "", "serve /metrics, /health, /ready and /v1/services on this `address` (e.g. 127.0.0.1:9333); off when empty")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go's profiler under /debug/pprof/ (CPU, heap, goroutines; not the command line) on this loopback `address` (e.g. 127.0.0.1:6060); off when empty")
	pprofOld := fs.Bool("pprof", false, "removed: use -pprof-addr 127.0.0.1:PORT")
	fs.BoolVar(&o.healthcheck, "healthcheck", false, "ask the daemon listening on -http-addr for /health and exit 0 if it answers, else 1 (the image's HEALTHCHECK)")
	fs.StringVar(&o.dockerHealth, "docker-health", "mirror", "how a container's Docker HEALTHCHECK counts: mirror (a Consul check; other backends hold the entry while healthy), healthy (registered only while healthy) or ignore")
	fs.StringVar(&o.network, "network", "", "the `network` whose address -internal registers, for containers on several (SERVICE_NETWORK beats it)")
	ipFamily := fs.String("ip-family", "4", "register services by IPv4 (4) or IPv6 (6) address (SERVICE_IP_FAMILY beats it)")
	fs.StringVar(&o.hostIP6, "ip6", "", "IPv6 address to register for published ports of IPv6 services (beats the bind IP and the hostname's IPv6 address), or a network interface whose first global IPv6 address is registered")
	fs.DurationVar(&o.drain, "drain", 0, "how long the services of a stopped container stay draining (Consul maintenance) before they are deregistered, e.g. 5s (SERVICE_DRAIN beats it)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "log the registrations and removals the plan calls for, without making them")
	fs.StringVar(&o.id, "id", "", "this host's `identity`, the owner mark of its entries, instead of <engine ID>@<host name> (for hosts that cannot be told apart otherwise); entries also name the host that wrote them, and another host's under the same identity are left alone")
	fs.Bool("consul-rejoin", false, "ignored: the daemon no longer manages its Consul agent's connections (docs/many-hosts.md)")
	fs.BoolVar(&o.swarmServices, "swarm-services", false, "on a Swarm manager, also register each Swarm service: its virtual IP on each of its networks and its target ports (the same entries from every manager), and the ports it publishes through the routing mesh at this node's address")
	var filters stringList
	fs.Var(&filters, "container-filter", "only register containers this `filter` selects, in docker ps --filter terms: label=KEY[=VALUE], name=REGEXP, ancestor=IMAGE, network=NET; may be given several times (REGISTRATOR_CONTAINER_FILTER: several, separated by spaces)")

	// The environment first, so that the command line wins.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(envName(f.Name))
		if v == "" || envErr != nil {
			return
		}
		values := []string{v}
		if _, list := f.Value.(*stringList); list {
			values = strings.Fields(v)
		}
		for _, v := range values {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, usage)
		}
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { // set on the command line or in the environment
		if f.Name == "consul-rejoin" {
			o.ignored = append(o.ignored, "-consul-rejoin has no effect: the agent's recovery after a network cut is Consul's and the operator's (docs/many-hosts.md)")
		}
	})
	if o.healthcheck && o.httpAddr == "" {
		return o, errors.New("-healthcheck needs -http-addr (or REGISTRATOR_HTTP_ADDR)")
	}
	if *pprofOld {
		return o, errors.New("-pprof is removed: Go's profiler has a listener of its own, on loopback only: -pprof-addr 127.0.0.1:PORT (or REGISTRATOR_PPROF_ADDR)")
	}
	if o.pprofAddr != "" && !loopback(o.pprofAddr) {
		return o, fmt.Errorf("-pprof-addr %q: must be a loopback address and port, e.g. 127.0.0.1:6060 (profiles show the daemon's memory and code)", o.pprofAddr)
	}
	if o.version || o.healthcheck {
		return o, nil
	}
	if o.id != "" {
		if err := bridge.ValidMark(o.id); err != nil {
			return o, fmt.Errorf("-id %q: %v", o.id, err)
		}
	}
	sel, err := docker.ParseSelector(filters)
	if err != nil {
		return o, err
	}
	o.selector = sel
	uris := fs.Args()
	if len(uris) == 0 {
		uris = strings.Fields(getenv(envRegistry))
	}
	if len(uris) == 0 {
		return o, errors.New("missing registry URI, e.g. consul://127.0.0.1:8500")
	}
	for _, a := range uris {
		if strings.HasPrefix(a, "-") {
			return o, fmt.Errorf("unexpected argument %q after the registry URI (options go before it)", a)
		}
		if slices.Contains(o.uris, a) {
			return o, fmt.Errorf("registry URI %s given twice", registry.DisplayURI(a))
		}
		o.uris = append(o.uris, a)
	}
	switch {
	case o.hostIP == "" || net.ParseIP(o.hostIP) != nil:
	case docker.IsInterface(o.hostIP):
		o.ipIface, o.hostIP = o.hostIP, ""
	case !hostname.MatchString(o.hostIP):
		return o, fmt.Errorf("-ip %q is neither an IP address, a network interface nor a host name", o.hostIP)
	case !strings.Contains(o.hostIP, ".") && !resolves(o.hostIP):
		return o, fmt.Errorf("-ip %q: no network interface of that name, and no host name that resolves", o.hostIP)
	}
	switch *deregister {
	case "always":
	case "on-success":
		o.onSuccess = true
	default:
		return o, fmt.Errorf("-deregister %q: must be always or on-success", *deregister)
	}
	if *resync < 0 {
		return o, fmt.Errorf("-resync %d: must not be negative", *resync)
	}
	o.resync = time.Duration(*resync) * time.Second
	if o.resync == 0 {
		o.resync = defaultResync
	}
	switch {
	case *ttl < 0 || *ttlEvery < 0:
		return o, errors.New("-ttl and -ttl-refresh must not be negative")
	case (*ttl == 0) != (*ttlEvery == 0):
		return o, errors.New("-ttl and -ttl-refresh must be given together or not at all")
	case *ttl > 0 && *ttl <= *ttlEvery:
		return o, errors.New("-ttl must be greater than -ttl-refresh")
	}
	o.ttl = time.Duration(*ttl) * time.Second
	if o.maxServices < 1 {
		return o, fmt.Errorf("-max-services %d: must be at least 1", o.maxServices)
	}
	if o.drain < 0 {
		return o, fmt.Errorf("-drain %s: must not be negative", o.drain)
	}
	switch *ipFamily {
	case "4":
	case "6":
		o.ipv6 = true
	default:
		return o, fmt.Errorf("-ip-family %q: must be 4 or 6", *ipFamily)
	}
	switch ip := net.ParseIP(o.hostIP6); {
	case o.hostIP6 == "" || ip != nil && ip.To4() == nil:
	case ip == nil && docker.IsInterface(o.hostIP6):
		o.ip6Iface, o.hostIP6 = o.hostIP6, ""
	case ip == nil && !strings.ContainsAny(o.hostIP6, ".:"):
		return o, fmt.Errorf("-ip6 %q: no network interface of that name, and not an IPv6 address", o.hostIP6)
	default:
		return o, fmt.Errorf("-ip6 %q is not an IPv6 address", o.hostIP6)
	}
	switch o.dockerHealth {
	case "mirror", "healthy", "ignore":
	default:
		return o, fmt.Errorf("-docker-health %q: must be mirror, healthy or ignore", o.dockerHealth)
	}
	if o.httpAddr != "" {
		if _, _, err := net.SplitHostPort(o.httpAddr); err != nil {
			return o, fmt.Errorf("-http-addr %q: must be host:port, e.g. 127.0.0.1:9333", o.httpAddr)
		}
	}
	if o.retryAttempts < -1 {
		return o, fmt.Errorf("-retry-attempts %d: must be -1 (forever) or more", o.retryAttempts)
	}
	if *retryMS <= 0 {
		return o, fmt.Errorf("-retry-interval %d: must be positive", *retryMS)
	}
	o.retryInterval = time.Duration(*retryMS) * time.Millisecond
	lvl, err := logrus.ParseLevel(*level)
	if err != nil {
		return o, fmt.Errorf("-log-level %q: must be debug, info, warn or error", *level)
	}
	o.logLevel = lvl
	switch *format {
	case "text":
	case "json":
		o.logJSON = true
	default:
		return o, fmt.Errorf("-log-format %q: must be text or json", *format)
	}
	return o, nil
}

// loopback reports whether addr is host:port with a loopback host:
// 127.0.0.0/8, ::1 or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// resolves reports whether a host name resolves, within 2 seconds.
func resolves(name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	return err == nil && len(addrs) > 0
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintln(w, "Usage: registrator [options] <registry URI> [<registry URI>...]")
	fmt.Fprintln(w, "       registrator explain [options] <container>   (what the container yields, and why)")
	fmt.Fprintln(w, "Registry URIs:")
	for _, s := range registry.Schemes() {
		fmt.Fprintln(w, "  "+s.Example)
	}
	fmt.Fprintln(w, "Options:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintln(w, strings.TrimSpace(`
Every flag can also be set as REGISTRATOR_<FLAG> (REGISTRATOR_RETRY_ATTEMPTS=3); the command line wins.
REGISTRATOR_REGISTRY holds the registry URIs, separated by spaces, when the command line has none.
Docker: DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH (default /var/run/docker.sock, else /tmp/docker.sock).
Consul: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL*, CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY.`))
}
