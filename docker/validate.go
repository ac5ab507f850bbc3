package docker

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/registrator/registrator/bridge"
)

// Whoever starts a container writes its metadata: every value taken from
// it is checked here before it names, addresses or configures an entry.

// Limits on what one container's metadata can ask for.
const (
	// DefaultMaxServices is -max-services: how many services one
	// container (or Swarm service) may yield.
	DefaultMaxServices = 256
	maxIDBytes         = 255  // a service ID or name
	maxTags            = 64   // tags a container's metadata adds to one service
	maxTagBytes        = 255  // one tag
	maxAttributes      = 64   // attributes of one service: Consul's limit of meta pairs
	maxValueBytes      = 4096 // one attribute's value, and SERVICE_CHECK_HEADER
)

// httpMethods are the methods an HTTP check may use. CONNECT and TRACE,
// and any made-up method, are left out.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// validName checks a service ID or name: it names an entry in every
// backend, as a path element (etcd, Consul KV, ZooKeeper, skydns2) or in the
// agent's URL (Consul). So: at most maxIDBytes of printable UTF-8 (a plain
// space is printable), no '/' or backslash, no "..", and not ".".
func validName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxIDBytes:
		return fmt.Errorf("longer than %d bytes", maxIDBytes)
	case !utf8.ValidString(s):
		return errors.New("not UTF-8")
	case strings.ContainsAny(s, `/\`):
		return errors.New(`holds a '/' or '\'`)
	case s == "." || strings.Contains(s, ".."):
		return errors.New(`is "." or holds ".."`)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return errors.New("holds a control or other unprintable character")
		}
	}
	return nil
}

// labelAddress reads the address of a -useIpFromLabel label: an IP address,
// with or without a /cidr suffix (198.51.100.7/24, as registrator took it).
// An address that names no other host is refused: the unspecified,
// loopback, link-local (the cloud metadata address 169.254.169.254 among
// them) and multicast ones. The agent would probe them with the service's
// checks, on its own host or its cloud's.
func labelAddress(v string) (string, error) {
	v = strings.TrimSpace(v)
	a, _, _ := strings.Cut(v, "/")
	ip, err := netip.ParseAddr(a)
	switch {
	case err != nil || ip.Zone() != "":
		return "", errors.New("not an IP address")
	case ip.IsUnspecified(), ip.IsLoopback(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(), ip.IsMulticast():
		return "", errors.New("an unspecified, loopback, link-local or multicast address")
	}
	return ip.Unmap().String(), nil
}

// validMethod reports whether an HTTP check may use method (upper case).
func validMethod(method string) bool { return slices.Contains(httpMethods, method) }

// described names a piece of metadata by its key and the size of its
// value, never the value: a value may be a secret (a bearer token in
// SERVICE_CHECK_HEADER), and warnings are logged at every pass.
func described(key, value string) string {
	return fmt.Sprintf("%s (%d bytes)", key, len(value))
}

// ownTags are the tags of the port's metadata: at most maxTags of at most
// maxTagBytes each; a warning says what was left out.
func ownTags(m portMetadata) ([]string, []error) {
	v := m.value(KeyTags)
	tags := splitTags(v)
	long := 0
	tags = slices.DeleteFunc(tags, func(t string) bool {
		if len(t) > maxTagBytes {
			long++
			return true
		}
		return false
	})
	var why []string
	if long > 0 {
		why = append(why, fmt.Sprintf("%d tag(s) over %d bytes left out", long, maxTagBytes))
	}
	if len(tags) > maxTags {
		why = append(why, fmt.Sprintf("%d tag(s) past the first %d left out", len(tags)-maxTags, maxTags))
		tags = tags[:maxTags]
	}
	if why == nil {
		return tags, nil
	}
	return tags, []error{fmt.Errorf("%s: %s", described(m.key(KeyTags), v), strings.Join(why, "; "))}
}

// refusal is why the service s of a port may not be registered at all, ""
// when it may: its name or ID is not valid, or it asks for a script check
// that the operator did not allow.
func refusal(s bridge.Service, m portMetadata, cfg Config) string {
	nameKey, idKey := "the service name", "the service ID"
	if m.value(KeyName) != "" {
		nameKey = m.key(KeyName)
	}
	if m.value(KeyID) != "" {
		idKey = m.key(KeyID)
	}
	if err := validName(s.Name); err != nil {
		return fmt.Sprintf("%s is not a valid service name: %v", described(nameKey, s.Name), err)
	}
	if err := validName(s.ID); err != nil {
		return fmt.Sprintf("%s is not a valid service ID: %v", described(idKey, s.ID), err)
	}
	if !cfg.AllowScriptChecks && strings.TrimSpace(m.value(KeyCheckScript)) != "" {
		return m.key(KeyCheckScript) + " asks for a script check, which runs a command on the Consul agent's host: such a service is registered only when the daemon runs with -allow-script-checks"
	}
	return ""
}
