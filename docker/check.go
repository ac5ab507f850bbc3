package docker

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/mattn/go-shellwords"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/shorten"
)

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
		warnings = append(warnings, fmt.Errorf("%s: not mirror, healthy or ignore; %s used", described(m.key(KeyDockerHealth), m.value(KeyDockerHealth)), cmp.Or(def, HealthMirror)))
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

// checks builds the checks the metadata asks for, on the registered address.
func checks(m portMetadata, addr string, num int) ([]bridge.Check, []error) {
	var warnings []error
	warn := func(key, format string, args ...any) {
		warnings = append(warnings, fmt.Errorf("%s: %s", described(m.key(key), m.value(key)), fmt.Sprintf(format, args...)))
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
	if method != "" && !validMethod(method) {
		warn(KeyCheckHTTPMethod, "not one of %s, GET used", strings.Join(httpMethods, ", "))
		method = ""
	}
	hostport := net.JoinHostPort(addr, strconv.Itoa(num))
	var header map[string][]string
	if v := strings.TrimSpace(m.value(KeyCheckHeader)); len(v) > maxValueBytes {
		warn(KeyCheckHeader, "longer than %d bytes; no headers sent", maxValueBytes)
	} else if v != "" {
		var err error
		if header, err = parseHeader(v); err != nil {
			warn(KeyCheckHeader, "%v; no headers sent", err)
		}
	}
	serverName := strings.TrimSpace(m.value(KeyCheckTLSServerName))

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
		ch := bridge.Check{HTTP: u, Method: method, Header: header, TLSSkipVerify: isSet(m.value(KeyCheckTLSSkipVerify))}
		if k.scheme == "https" {
			ch.TLSServerName = serverName
		}
		add(ch)
	}
	if isSet(m.value(KeyCheckTCP)) {
		add(bridge.Check{TCP: hostport})
	}
	if v := strings.TrimSpace(m.value(KeyCheckGRPC)); isSet(v) {
		target := hostport
		if _, err := strconv.ParseBool(v); err != nil {
			target += "/" + v // a gRPC service name
		}
		ch := bridge.Check{GRPC: target, GRPCUseTLS: isSet(m.value(KeyCheckGRPCUseTLS)), TLSSkipVerify: isSet(m.value(KeyCheckTLSSkipVerify))}
		if ch.GRPCUseTLS {
			ch.TLSServerName = serverName
		}
		add(ch)
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

// parseHeader reads SERVICE_CHECK_HEADER: a JSON object of header names to
// a value or a list of values, as Consul's Header takes it:
// {"Authorization": ["Basic x"], "X-Env": "prod"}.
func parseHeader(v string) (map[string][]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return nil, errors.New(`not a JSON object such as {"Authorization": ["Basic x"]}`)
	}
	out := make(map[string][]string, len(raw))
	for name, r := range raw {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return nil, errors.New("a header name is empty or holds a space, a colon or a line break")
		}
		var one string
		var many []string
		switch {
		case json.Unmarshal(r, &one) == nil:
			many = []string{one}
		case json.Unmarshal(r, &many) == nil:
		default:
			return nil, fmt.Errorf("header %s: not a string or a list of strings", name)
		}
		for _, v := range many {
			if strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("header %s: a value spans lines", name)
			}
		}
		out[name] = many
	}
	return out, nil
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
