package kv

import (
	"testing"

	"github.com/registrator/registrator/bridge"
)

// The layouts registrator's users read: the exact keys and values.
func TestLayout(t *testing.T) {
	s := bridge.Service{ID: "host:web.1:80", Name: "web", Address: "10.0.0.5", Port: 8080, Tags: []string{"a"}, Meta: map[string]string{"k": "v"}}
	for _, tc := range []struct {
		layout     Layout
		key, value string
	}{
		{Plain{Path: "/services"}, "/services/web/host:web.1:80", "10.0.0.5:8080"},
		{Plain{Path: ""}, "/web/host:web.1:80", "10.0.0.5:8080"},
		{JSON{Path: "/services"}, "/services/web/host:web.1:80", `{"id":"host:web.1:80","name":"web","address":"10.0.0.5","port":8080,"tags":["a"],"meta":{"k":"v"}}`},
	} {
		if got := tc.layout.Key(s); got != tc.key {
			t.Errorf("%T key %q, want %q", tc.layout, got, tc.key)
		}
		v, err := tc.layout.Value(s)
		if err != nil || string(v) != tc.value {
			t.Errorf("%T value %s (%v), want %s", tc.layout, v, err, tc.value)
		}
		back, ok := tc.layout.Parse(tc.key, v)
		if !ok || back.ID != s.ID || back.Name != s.Name || back.Address != s.Address || back.Port != s.Port {
			t.Errorf("%T parse back: %+v, %v", tc.layout, back, ok)
		}
	}
	v6, _ := Plain{Path: "/p"}.Value(bridge.Service{Address: "fd00::1", Port: 80})
	if string(v6) != "[fd00::1]:80" {
		t.Errorf("IPv6 value %s, want [fd00::1]:80", v6)
	}
}
