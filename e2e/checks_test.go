package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Checks are registered on the service's address (127.0.0.1 here) and reach
// the state the container deserves.
func TestChecksReachPassingAndCritical(t *testing.T) {
	clean(t)
	startDaemon(t, "-allow-script-checks") // the test agent has enable_script_checks
	fast := []string{"-e", "SERVICE_CHECK_INTERVAL=1s", "-e", "SERVICE_CHECK_TIMEOUT=1s"}
	cases := []struct {
		name string
		args []string
		want []string // status of each check, in order of check ID
	}{
		{"http-ok", []string{"-e", "SERVICE_CHECK_HTTP=/health"}, []string{"passing"}},
		{"http-500", []string{"-e", "SERVICE_CHECK_HTTP=/health", "-e", "HEALTH_STATUS=500"}, []string{"critical"}},
		{"tcp", []string{"-e", "SERVICE_CHECK_TCP=true"}, []string{"passing"}},
		{"ttl", []string{"-e", "SERVICE_CHECK_TTL=30s"}, []string{"critical"}},
		{"ttl-passing", []string{"-e", "SERVICE_CHECK_TTL=30s", "-e", "SERVICE_CHECK_INITIAL_STATUS=passing"}, []string{"passing"}},
		{"script-ok", []string{"-e", "SERVICE_CHECK_SCRIPT=/bin/sh -c 'test $SERVICE_PORT -gt 0'"}, []string{"passing"}},
		{"script-fails", []string{"-e", "SERVICE_CHECK_SCRIPT=/bin/sh -c 'exit 2'"}, []string{"critical"}},
		{"grpc", []string{"-e", "SERVICE_CHECK_GRPC=1"}, []string{"critical"}}, // testsvc speaks HTTP/1 only
		{"http-and-tcp", []string{"-e", "SERVICE_CHECK_HTTP=/health", "-e", "SERVICE_CHECK_TCP=1"}, []string{"passing", "passing"}},
	}
	var ids []string
	for _, c := range cases {
		args := append([]string{"--name", c.name, "-p", "127.0.0.1::80"}, fast...)
		run(t, append(append(args, c.args...), imgSvc, "80")...)
		ids = append(ids, id(c.name, "80"))
	}
	expectIDs(t, ids...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eventually(t, settle, func() error {
				got := checks(t, id(c.name, "80"))
				keys := make([]string, 0, len(got))
				for k := range got {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				var status []string
				for _, k := range keys {
					status = append(status, got[k].Status)
				}
				if !slices.Equal(status, c.want) {
					var out []string
					for _, k := range keys {
						out = append(out, k+": "+got[k].Output)
					}
					return fmt.Errorf("check status %v, want %v\n%s", status, c.want, strings.Join(out, "\n"))
				}
				return nil
			})
		})
	}
	// One check keeps the ID applications use to update a TTL check.
	if _, ok := checks(t, id("ttl", "80"))["service:"+id("ttl", "80")]; !ok {
		t.Errorf("the TTL check is not service:%s", id("ttl", "80"))
	}
}
