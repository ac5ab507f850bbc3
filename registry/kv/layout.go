package kv

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"

	"github.com/registrator/registrator/bridge"
)

// Plain is registrator's layout: <path>/<name>/<ID> = ip:port.
type Plain struct{ Path string }

func (l Plain) Prefix() string { return l.Path }

func (l Plain) Key(s bridge.Service) string { return l.Path + "/" + s.Name + "/" + s.ID }

func (l Plain) Value(s bridge.Service) ([]byte, error) {
	return []byte(net.JoinHostPort(s.Address, strconv.Itoa(s.Port))), nil
}

func (l Plain) Parse(key string, value []byte) (bridge.Service, bool) {
	s, ok := splitKey(l.Path, key)
	if !ok {
		return s, false
	}
	host, port, err := net.SplitHostPort(string(value))
	if err != nil {
		return s, false
	}
	s.Address = host
	s.Port, err = strconv.Atoi(port)
	return s, err == nil
}

// splitKey reads <path>/<name>/<ID>; an ID may contain slashes.
func splitKey(path, key string) (bridge.Service, bool) {
	rest, ok := strings.CutPrefix(key, path+"/")
	if !ok {
		return bridge.Service{}, false
	}
	name, id, ok := strings.Cut(rest, "/")
	if !ok || name == "" || id == "" {
		return bridge.Service{}, false
	}
	return bridge.Service{Name: name, ID: id}, true
}

// JSON is the plain layout's keys with a JSON object as the value.
type JSON struct{ Path string }

// record is the value JSON writes.
type record struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Tags    []string          `json:"tags,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

func (l JSON) Prefix() string { return l.Path }

func (l JSON) Key(s bridge.Service) string { return Plain(l).Key(s) }

func (l JSON) Value(s bridge.Service) ([]byte, error) {
	return json.Marshal(record{ID: s.ID, Name: s.Name, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: s.Meta})
}

func (l JSON) Parse(key string, value []byte) (bridge.Service, bool) {
	s, ok := splitKey(l.Path, key)
	var r record
	if !ok || json.Unmarshal(value, &r) != nil {
		return s, false
	}
	s.Address, s.Port, s.Tags, s.Meta = r.Address, r.Port, r.Tags, r.Meta
	if r.ID != "" {
		s.ID = r.ID
	}
	return s, true
}
