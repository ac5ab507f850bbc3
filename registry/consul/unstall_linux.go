package consul

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostConns is the connection table of the daemon's network namespace,
// through the kernel's sock_diag interface (what ss reads, and ss -K
// resets). Only IPv4: the netlink library resets IPv4 connections only.
type hostConns struct{}

func (hostConns) established() ([]tcpConn, error) {
	socks, err := netlink.SocketDiagTCPInfo(unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	var out []tcpConn
	for _, s := range socks {
		m, info := s.InetDiagMsg, s.TCPInfo
		if m == nil || info == nil || m.State != netlink.TCP_ESTABLISHED {
			continue
		}
		local, ok1 := netip.AddrFromSlice(m.ID.Source.To4())
		remote, ok2 := netip.AddrFromSlice(m.ID.Destination.To4())
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, tcpConn{
			Local:   netip.AddrPortFrom(local, m.ID.SourcePort),
			Remote:  netip.AddrPortFrom(remote, m.ID.DestinationPort),
			Backoff: info.Backoff,
			Unacked: info.Unacked,
		})
	}
	return out, nil
}

func (hostConns) reset(c tcpConn) error {
	return netlink.SocketDestroy(net.TCPAddrFromAddrPort(c.Local), net.TCPAddrFromAddrPort(c.Remote))
}
