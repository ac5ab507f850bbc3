package main

import (
	"strings"
	"testing"
)

// The name of a backend in logs, /ready, /v1/services and the metrics'
// backend label has no user information, in any scheme.
func TestBackendNameShowsNoUserInformation(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"etcd://bob:s3cret@127.0.0.1:2379/services", "etcd://127.0.0.1:2379/services"},
		{"etcd+tls://bob:s3cret@a:1,b:2/services?ca=/ca.pem", "etcd+tls://a:1,b:2/services"},
		{"skydns2://bob:s3cret@127.0.0.1:2379/skydns.local", "skydns2://127.0.0.1:2379/skydns.local"},
		{"consul://bob:s3cret@127.0.0.1:8500", "consul://127.0.0.1:8500"},
		{"consul-unix://bob:s3cret@/run/consul.sock", "consul-unix:///run/consul.sock"},
		{"consulkv://bob@127.0.0.1:8500/services", "consulkv://127.0.0.1:8500/services"},
		{"zookeeper://bob:s3cret@a:1,b:2/services", "zookeeper://a:1,b:2/services"},
		{"etcd://bob:s3/cret@127.0.0.1:2379/services", "etcd://..."},
		{"etcd://bob:12/s3cret@127.0.0.1:2379/services", "etcd://..."},
	} {
		if got := backendName(tc.uri); got != tc.want {
			t.Errorf("backendName(%q) = %q, want %q", tc.uri, got, tc.want)
		}
		if got := redacted([]string{tc.uri, "consul://h:1"}); strings.Contains(got, "s3") || strings.Contains(got, "bob") {
			t.Errorf("redacted(%q) = %q", tc.uri, got)
		}
	}
}

// A URI whose password did not parse is refused at start, before the
// lean build hands over to the full one, naming no part of it.
func TestCheckURIsRefusesUserInformationThatDidNotParse(t *testing.T) {
	if err := checkURIs([]string{"consul://127.0.0.1:8500", "etcd://bob:s3%2Fcret@127.0.0.1:2379/p"}); err != nil {
		t.Fatalf("encoded: %v", err)
	}
	err := checkURIs([]string{"consul://127.0.0.1:8500", "etcd://bob:s3/cret@127.0.0.1:2379/p"})
	if err == nil || !strings.Contains(err.Error(), "percent-encode") {
		t.Fatalf("error %v, want the advice to percent-encode", err)
	}
	for _, part := range []string{"bob", "s3", "cret"} {
		if strings.Contains(err.Error(), part) {
			t.Errorf("error %q shows %q", err, part)
		}
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9333": true, "127.8.9.10:1": true, "[::1]:9333": true, "localhost:9333": true, "[::ffff:127.0.0.1]:1": true,
		":9333": false, "0.0.0.0:9333": false, "[::]:9333": false, "10.0.0.5:9333": false, "192.168.1.2:1": false,
		"localhost.example:1": false, "127.0.0.1": false, "": false, "[fe80::1]:1": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
