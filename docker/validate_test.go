package docker

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"web", true},
		{"host:web.1:80", true},
		{"https.12345", true},
		{"a b", true},
		{"ünïcode-✓", true},
		{strings.Repeat("x", 255), true},
		{"", false},
		{strings.Repeat("x", 256), false},
		{"a/b", false},
		{"/", false},
		{`a\b`, false},
		{".", false},
		{"..", false},
		{"a..b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\tb", false},
		{"a\u200bb", false}, // zero-width space: not printable
		{"\xff", false},
	} {
		if err := validName(tc.in); (err == nil) != tc.ok {
			t.Errorf("validName(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestLabelAddress(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"198.51.100.7/24", "198.51.100.7"},
		{" 10.1.2.3 ", "10.1.2.3"},
		{"2001:db8::7", "2001:db8::7"},
		{"2001:db8::7/64", "2001:db8::7"},
		{"::ffff:10.1.2.3", "10.1.2.3"},
		{"", ""},
		{"example.com", ""},
		{"10.1.2.3:80", ""},
		{"http://10.1.2.3/", ""},
		{"0.0.0.0", ""},
		{"::", ""},
		{"127.0.0.1", ""},
		{"127.8.9.10/8", ""},
		{"::1", ""},
		{"169.254.169.254", ""},
		{"fe80::1", ""},
		{"fe80::1%eth0", ""},
		{"224.0.0.1", ""},
		{"ff02::1", ""},
	} {
		got, err := labelAddress(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("labelAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestValidMethod(t *testing.T) {
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if !validMethod(m) {
			t.Errorf("validMethod(%q) = false", m)
		}
	}
	for _, m := range []string{"", "CONNECT", "TRACE", "get", "GE T", "FOO"} {
		if validMethod(m) {
			t.Errorf("validMethod(%q) = true", m)
		}
	}
}

// No warning about metadata holds a value: a value can be a secret, and
// warnings are logged at every pass.
func TestWarningsNeverHoldValues(t *testing.T) {
	const secret = "Bearer-s3cr3t-t0ken"
	for _, env := range [][]string{
		{`SERVICE_CHECK_HTTP=/h`, `SERVICE_CHECK_HEADER={"Authorization": "` + secret + `"`},
		{`SERVICE_CHECK_HTTP=/h`, `SERVICE_CHECK_HEADER={"` + secret + ` x": "v"}`},
		{`SERVICE_CHECK_HTTP=/h`, `SERVICE_CHECK_HEADER={"X": "` + secret + strings.Repeat("v", 4096) + `"}`},
		{"SERVICE_9999_TOKEN=" + secret},
		{"SERVICE_1-2_TOKEN=" + secret},
		{"SERVICE_80x_TOKEN=" + secret},
		{"SERVICE_CHECK_INTERVAL=" + secret},
		{"SERVICE_CHECK_HTTP_METHOD=" + secret},
		{"SERVICE_CHECK_INITIAL_STATUS=" + secret},
		{"SERVICE_CHECK_SCRIPT=" + secret},
		{"SERVICE_ID=" + secret + "/x"},
		{"SERVICE_NAME=" + secret + "\x01"},
		{"SERVICE_NAME=" + secret + "."},
		{"SERVICE_TAGS=" + secret + strings.Repeat("x", 300)},
		{"SERVICE_WEIGHT=" + secret},
		{"SERVICE_DOCKER_HEALTH=" + secret},
		{"SERVICE_IP_FAMILY=" + secret},
		{"SERVICE_NETWORK=" + secret},
		{"SERVICE_TOKEN=" + secret + strings.Repeat("x", 4096)},
		{"SERVICE_DRAIN=" + secret, "SERVICE_DEREGISTER=" + secret},
	} {
		r := web(env...)
		r.ips = map[string]string{"bridge": "172.17.0.5"}
		c := r.inspect(t)
		c.Config.Labels = map[string]string{"net.ip": secret}
		md := metadataOf(c)
		_, warnings := servicesOf(c, md, Config{Hostname: "host", HostAddr: hostAddr, Internal: true, UseIPFromLabel: "net.ip"})
		if _, err := drainOf(md, 0); err != nil {
			warnings = append(warnings, err)
		}
		if _, err := deregisterOf(md); err != nil {
			warnings = append(warnings, err)
		}
		if len(warnings) == 0 {
			t.Errorf("%q: no warning", env)
		}
		for _, w := range warnings {
			if strings.Contains(w.Error(), "s3cr3t") {
				t.Errorf("%q: warning %q holds the value", env, w)
			}
		}
	}
}
