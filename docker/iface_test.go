package docker

import (
	"strings"
	"testing"
)

func TestInterfaceAddr(t *testing.T) {
	if got, err := InterfaceAddr("lo", false); err != nil || got != "127.0.0.1" {
		t.Errorf("lo's IPv4: %q, %v; want 127.0.0.1", got, err)
	}
	if got, err := InterfaceAddr("lo", true); err == nil || !strings.Contains(err.Error(), "no global IPv6") {
		t.Errorf("lo's global IPv6: %q, %v; want an error (::1 is not global)", got, err)
	}
	if _, err := InterfaceAddr("nosuch0", false); err == nil || !strings.Contains(err.Error(), `no network interface "nosuch0"`) {
		t.Errorf("an unknown interface: %v", err)
	}
	if !IsInterface("lo") || IsInterface("nosuch0") {
		t.Error("IsInterface")
	}
}
