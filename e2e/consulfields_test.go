package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// Consul's registration fields from metadata: tag override, weights, HTTP
// check headers and the TLS server name of HTTPS checks (both seen by the
// container: its /health refuses a probe without them), and a Connect
// sidecar registration, which goes with its service.
func TestConsulRegistrationFields(t *testing.T) {
	clean(t)
	d := startDaemon(t, "-resync", "1")
	run(t, "--name", "fields", "-p", "127.0.0.1::80",
		"-e", "SERVICE_ENABLE_TAG_OVERRIDE=true", "-e", "SERVICE_TAGS=a",
		"-e", "SERVICE_WEIGHT=7", "-e", "SERVICE_PRIORITY=3", "-e", "SERVICE_TTL=42",
		"-e", "SERVICE_CHECK_HTTP=/health", "-e", "SERVICE_CHECK_INTERVAL=1s",
		"-e", `SERVICE_CHECK_HEADER={"X-Probe": ["e2e"], "X-Other": "1"}`, "-e", "HEALTH_HEADER=X-Probe: e2e",
		"-e", "SERVICE_CONNECT_SIDECAR=21555", imgSvc, "80")
	run(t, "--name", "tls", "-p", "127.0.0.1::443", "-e", "SERVICE_CHECK_HTTPS=/health", "-e", "SERVICE_CHECK_INTERVAL=1s",
		"-e", "SERVICE_CHECK_TLS_SERVER_NAME=web.internal", "-e", "SERVICE_CHECK_TLS_SKIP_VERIFY=true",
		"-e", "TLS=1", "-e", "HEALTH_SNI=web.internal", imgSvc, "443")
	sid, tid := id("fields", "80"), id("tls", "443")
	sidecar := sid + "-sidecar-proxy"

	eventually(t, settle, func() error {
		all, err := agent.Client().Agent().Services()
		if err != nil {
			return err
		}
		s, p := all[sid], all[sidecar]
		switch {
		case s == nil || all[tid] == nil:
			return fmt.Errorf("services %v, want %s and %s", keys(all), sid, tid)
		case !s.EnableTagOverride:
			return fmt.Errorf("%s: EnableTagOverride false", sid)
		case s.Weights.Passing != 7 || s.Weights.Warning != 1:
			return fmt.Errorf("%s: weights %+v, want passing 7, warning 1", sid, s.Weights)
		case s.Meta["weight"] != "7" || s.Meta["priority"] != "3" || s.Meta["ttl"] != "42":
			return fmt.Errorf("%s: meta %v, want weight, priority and ttl kept as attributes", sid, s.Meta)
		case p == nil:
			return fmt.Errorf("no sidecar %s in %v", sidecar, keys(all))
		case p.Kind != api.ServiceKindConnectProxy || p.Port != 21555 || p.Proxy == nil || p.Proxy.DestinationServiceID != sid:
			return fmt.Errorf("sidecar %+v, want a connect-proxy on 21555 for %s", p, sid)
		}
		return nil
	})
	eventually(t, settle, func() error {
		c := checks(t, sid)["service:"+sid]
		if c == nil || c.Status != api.HealthPassing {
			return fmt.Errorf("HTTP check of %s: %+v, want passing (the container refuses a probe without X-Probe)", sid, c)
		}
		tc := checks(t, tid)["service:"+tid]
		if tc == nil || tc.Status != api.HealthPassing {
			return fmt.Errorf("HTTPS check of %s: %+v, want passing (the container refuses a TLS server name other than web.internal)", tid, tc)
		}
		return nil
	})

	// The daemon leaves the sidecar to Consul: several passes later it is
	// still there and nothing was written again.
	writes := strings.Count(d.out.String(), "action=register")
	d.waitPasses(t, 3)
	if n := strings.Count(d.out.String(), "action=register"); n != writes {
		t.Errorf("%d registrations during three quiet passes", n-writes)
	}
	if strings.Contains(d.out.String(), "deregistered") {
		t.Errorf("the daemon deregistered something:\n%s", d.out)
	}

	docker(t, "rm", "-f", "fields")
	eventually(t, settle, func() error {
		all, err := agent.Client().Agent().Services()
		if err != nil {
			return err
		}
		if all[sid] != nil || all[sidecar] != nil {
			return fmt.Errorf("after removal: %v", keys(all))
		}
		return nil
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
