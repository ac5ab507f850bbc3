package docker

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// The socket looked for: the first that exists as a socket; one that
// refuses (an engine still starting) is taken, not passed over. (A socket
// this user is denied is passed over: root is never denied, so
// e2e/podman_test.go's rootless test checks that, as a user.)
func TestSocketIsTheFirstThatExists(t *testing.T) {
	dir := t.TempDir()
	listening := filepath.Join(dir, "up.sock")
	l, err := net.Listen("unix", listening)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stale := filepath.Join(dir, "stale.sock")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.sock")
	for _, tc := range []struct {
		sockets []string
		want    string
	}{
		{[]string{missing, file, listening}, "unix://" + listening},
		{[]string{stale, listening}, "unix://" + stale},
		{[]string{missing, file}, ""},
	} {
		if got := Socket(tc.sockets); got != tc.want {
			t.Errorf("Socket(%v) = %q, want %q", tc.sockets, got, tc.want)
		}
	}
}
