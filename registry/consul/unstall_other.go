//go:build !linux

package consul

// hostConns answers errNoConnTable: only Linux lists and resets another
// process's TCP connections.
type hostConns struct{}

func (hostConns) established() ([]tcpConn, error) { return nil, errNoConnTable }

func (hostConns) reset(tcpConn) error { return errNoConnTable }
