package bed

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// RTOMaxEnv names the variable that, when set, makes every machine of the
// bed cap TCP's retransmission timeout at that many milliseconds
// (net.ipv4.tcp_rto_max_ms, Linux 6.15 and later, at least 1000), as
// docs/many-hosts.md advises for hosts that run a Consul agent: after a
// cut, a connection whose packets were lost is retried within that time
// of the link's return instead of up to two minutes later. Unset, every
// machine keeps the kernel's default (120000), as most hosts do.
const RTOMaxEnv = "BED_TCP_RTO_MAX_MS"

// RTOMax is the cap RTOMaxEnv sets, in milliseconds; 0 when unset.
func RTOMax() (int, error) {
	v := os.Getenv(RTOMaxEnv)
	if v == "" {
		return 0, nil
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms < 1000 || ms > 120000 {
		return 0, fmt.Errorf("bed: %s=%q: want milliseconds from 1000 to 120000", RTOMaxEnv, v)
	}
	return ms, nil
}

// tuneTCP applies RTOMax in namespace ns. The setting is the namespace's
// own: this machine's stays as it is.
func tuneTCP(ns string) error {
	ms, err := RTOMax()
	if err != nil || ms == 0 {
		return err
	}
	cmd := exec.Command("nsenter", "--net="+nsPath(ns), "sysctl", "-q", "-w", fmt.Sprintf("net.ipv4.tcp_rto_max_ms=%d", ms))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bed: set net.ipv4.tcp_rto_max_ms in %s (Linux 6.15 or later): %v: %s", ns, err, out)
	}
	return nil
}

// RPCClientTimeoutEnv names the variable that, when set, makes every
// host's Consul client agent give up a (non-blocking) RPC to a server
// after that long (limits.rpc_client_timeout, a Go duration from 1s to
// 60s): the agent then moves to the next server, and a connection that a
// cut left dead no longer holds its sync until its keepalive fails. It is
// there to measure that; docs/many-hosts.md says why it is not advised
// (what the agent sent on the connection it left can reach the server
// after newer writes). Unset, the agents keep Consul's default (60s).
const RPCClientTimeoutEnv = "BED_CONSUL_RPC_CLIENT_TIMEOUT"

// RPCClientTimeout is the limit RPCClientTimeoutEnv sets; 0 when unset.
func RPCClientTimeout() (time.Duration, error) {
	v := os.Getenv(RPCClientTimeoutEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d > time.Minute {
		return 0, fmt.Errorf("bed: %s=%q: want a duration from 1s to 60s", RPCClientTimeoutEnv, v)
	}
	return d, nil
}
