package docker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/registrator/registrator/bridge"
	"github.com/registrator/registrator/internal/rawbody"
)

// List returns every container, running or not.
//
// The list is read every resync, and the client's own decoding of it (every
// field of every container) cost more CPU than the rest of a pass; so, where
// the client goes through a rawbody.Transport (Connect's does), List decodes
// only the fields the fingerprint needs, and only of the containers whose
// element in the list changed since the last one (most do not from one
// resync to the next; the status text, "Up 3 minutes", changes at most
// once a minute).
func (s *Engine) List(ctx context.Context) ([]bridge.Container, error) {
	out, err := s.listContainers(ctx)
	if err != nil || s.Swarm == nil {
		return out, err
	}
	ingress, err := s.Swarm.ingressList(ctx)
	if err != nil {
		s.log().WithField("error", err).Warn("docker: the Swarm services' ports published through the routing mesh are kept as last listed")
	}
	salt := s.currentSalt() // -ip from an interface: the node's address
	for _, c := range ingress {
		c.Fingerprint += salt
		out = append(out, c)
	}
	return out, nil
}

func (s *Engine) listContainers(ctx context.Context) ([]bridge.Container, error) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if s.followInterfaces() {
		s.listed = nil // every fingerprint changes
	}
	full, err := s.API.ContainerList(rawbody.Into(ctx, &s.listBuf, "[]"), container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	h := fingerprinter{salt: s.currentSalt()}
	if !s.listBuf.Got() {
		out := make([]bridge.Container, 0, len(full))
		for _, c := range full {
			l := listedOf(c)
			if in, _ := s.Selector.admits(l.candidate); in {
				out = append(out, h.container(&l))
			}
		}
		return out, nil
	}
	elems, ok := objects(s.listBuf.Bytes(), s.elems[:0])
	if !ok {
		// Not an array of objects: the decoder says what is wrong.
		var list []listed
		err := json.Unmarshal(s.listBuf.Bytes(), &list)
		return nil, fmt.Errorf("docker: list containers: %w", cmp.Or(err, errors.New("not an array of objects")))
	}
	s.elems = elems
	if s.listing == nil || s.listed == nil {
		s.listed, s.listing = map[[sha256.Size]byte]listEntry{}, map[[sha256.Size]byte]listEntry{}
	}
	clear(s.listing)
	out := make([]bridge.Container, 0, len(elems))
	for _, e := range elems {
		key := sha256.Sum256(e)
		c, seen := s.listed[key]
		if !seen {
			var l listed
			if err := json.Unmarshal(e, &l); err != nil {
				return nil, fmt.Errorf("docker: list containers: %w", err)
			}
			in, _ := s.Selector.admits(l.candidate)
			c = listEntry{h.container(&l), in}
		}
		s.listing[key] = c
		if c.selected { // one the filter leaves out is as if it did not exist
			out = append(out, c.Container)
		}
	}
	s.listed, s.listing = s.listing, s.listed
	return out, nil
}

// container is what the bridge needs of a container in the list.
func (f *fingerprinter) container(c *listed) bridge.Container {
	var name string
	if len(c.Names) > 0 {
		name = strings.TrimPrefix(c.Names[0], "/")
	}
	return bridge.Container{
		ID:          c.ID,
		Name:        name,
		Running:     c.State == container.StateRunning || c.State == container.StatePaused,
		Fingerprint: f.sum(c),
	}
}

// listEntry is a container of the last list and whether -container-filter
// selects it.
type listEntry struct {
	bridge.Container
	selected bool
}

// listed is what List reads of a container in the engine's list.
type listed struct {
	ID              string `json:"Id"`
	Names           []string
	Image           string
	ImageID         string
	State           string
	Status          string
	Ports           []container.Port
	Labels          map[string]string
	NetworkSettings struct {
		Networks map[string]listedNetwork
	}
}

// listedNetwork is what List reads of one network of a container.
type listedNetwork struct {
	NetworkID         string
	IPAddress         string
	GlobalIPv6Address string
}

// candidate is what -container-filter reads of a listed container.
func (l *listed) candidate() candidate {
	c := candidate{image: l.Image, imageID: l.ImageID, labels: l.Labels, networks: map[string]string{}}
	if len(l.Names) > 0 {
		c.name = strings.TrimPrefix(l.Names[0], "/")
	}
	for n, e := range l.NetworkSettings.Networks {
		c.networks[n] = e.NetworkID
	}
	return c
}

func listedOf(c container.Summary) listed {
	l := listed{ID: c.ID, Names: c.Names, Image: c.Image, ImageID: c.ImageID, State: string(c.State), Status: c.Status, Ports: c.Ports, Labels: c.Labels}
	if c.NetworkSettings != nil {
		for n, e := range c.NetworkSettings.Networks {
			if e == nil {
				continue
			}
			if l.NetworkSettings.Networks == nil {
				l.NetworkSettings.Networks = map[string]listedNetwork{}
			}
			l.NetworkSettings.Networks[n] = listedNetwork{e.NetworkID, e.IPAddress, e.GlobalIPv6Address}
		}
	}
	return l
}

// fingerprinter digests what the list tells of a container that could
// change its services: names, image, state, published ports, addresses,
// labels, and the health in the status text ("Up 3 minutes (healthy)"), the
// rest of which changes all the time. Ports come in no fixed order and maps
// in none, so both are sorted first. It reuses its buffers between
// containers.
type fingerprinter struct {
	salt string // what else the services depend on: -ip's interface address
	buf  []byte
	keys []string
}

func (f *fingerprinter) sum(c *listed) string {
	b := f.buf[:0]
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if f.salt != "" {
		str(f.salt)
	}
	num := func(n uint64) { b = binary.AppendUvarint(b, n) }
	num(uint64(len(c.Names)))
	for _, n := range c.Names {
		str(n)
	}
	str(c.Image)
	str(c.State)
	str(healthOf(c.Status))
	slices.SortFunc(c.Ports, func(a, b container.Port) int {
		return cmp.Or(strings.Compare(a.IP, b.IP), cmp.Compare(a.PrivatePort, b.PrivatePort),
			cmp.Compare(a.PublicPort, b.PublicPort), strings.Compare(a.Type, b.Type))
	})
	num(uint64(len(c.Ports)))
	for _, p := range c.Ports {
		str(p.IP)
		num(uint64(p.PrivatePort))
		num(uint64(p.PublicPort))
		str(p.Type)
	}
	f.keys = sortedKeys(f.keys, c.NetworkSettings.Networks)
	num(uint64(len(f.keys)))
	for _, n := range f.keys {
		e := c.NetworkSettings.Networks[n]
		str(n)
		str(e.IPAddress)
		str(e.GlobalIPv6Address)
	}
	f.keys = sortedKeys(f.keys, c.Labels)
	num(uint64(len(f.keys)))
	for _, k := range f.keys {
		str(k)
		str(c.Labels[k])
	}
	f.buf = b
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// sortedKeys is m's keys in order, in buf's memory.
func sortedKeys[V any](buf []string, m map[string]V) []string {
	buf = slices.AppendSeq(buf[:0], maps.Keys(m))
	slices.Sort(buf)
	return buf
}

// healthOf is the health in a list's status text: "Up 3 minutes (healthy)",
// "(unhealthy)", "(health: starting)"; "" without a HEALTHCHECK.
func healthOf(status string) string {
	i := strings.LastIndexByte(status, '(')
	if i < 0 || !strings.HasSuffix(status, ")") {
		return ""
	}
	return status[i+1 : len(status)-1]
}
