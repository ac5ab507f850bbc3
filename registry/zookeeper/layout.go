package zookeeper

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"

	"github.com/registrator/registrator/bridge"
)

// Layout is registrator's: <base>/<name>/<ip>:<port> with a JSON body.
type Layout struct{ Base string }

// body is registrator's znode body.
type body struct {
	Name        string
	IP          string
	PublicPort  int
	PrivatePort int
	ContainerID string
	Tags        []string
	Attrs       map[string]string
}

func (l Layout) Prefix() string { return l.Base }

func (l Layout) Key(s bridge.Service) string {
	return l.Base + "/" + s.Name + "/" + net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
}

func (l Layout) Value(s bridge.Service) ([]byte, error) {
	return json.Marshal(body{Name: s.Name, IP: s.Address, PublicPort: s.Port, PrivatePort: s.ExposedPort,
		ContainerID: s.Container, Tags: s.Tags, Attrs: s.Meta})
}

// Parse reads a znode back; the ID of a znode without our mark is its leaf.
func (l Layout) Parse(key string, value []byte) (bridge.Service, bool) {
	rest, ok := strings.CutPrefix(key, l.Base+"/")
	name, leaf, ok2 := strings.Cut(rest, "/")
	var b body
	if !ok || !ok2 || name == "" || leaf == "" || strings.Contains(leaf, "/") || json.Unmarshal(value, &b) != nil {
		return bridge.Service{}, false
	}
	return bridge.Service{ID: leaf, Name: name, Address: b.IP, Port: b.PublicPort, ExposedPort: b.PrivatePort,
		Tags: b.Tags, Meta: b.Attrs}, true
}
