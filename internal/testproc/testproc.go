// Package testproc runs the real servers that tests use (Consul, etcd) as
// child processes on loopback.
package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/registrator/registrator/internal/testkit"
)

// Process is a server started by a test. Its output is kept in Log.
type Process struct {
	Bin  string
	Args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	log    *Buffer
}

// ErrExited is wrapped by Start's error when the process ended before it
// was ready, most often because another process took its port between
// FreePorts and the bind: a caller may retry on fresh ports.
var ErrExited = errors.New("exited before it was ready")

// Start runs the process and waits up to a minute until ready returns nil.
// A ready that succeeds while the process has already exited does not
// count: something else answered on its port.
func (p *Process) Start(ready func() error) error {
	p.mu.Lock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			// Starting a second one would lose track of the first, which
			// keeps running (and a later Stop would stop nothing).
			p.mu.Unlock()
			return fmt.Errorf("%s: %w", p.Bin, ErrRunning)
		}
	}
	p.log = &Buffer{Keep: logKeep}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.Bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	err := testkit.Eventually(context.Background(), 60*time.Second, 100*time.Millisecond, func() error {
		err := ready()
		select {
		case <-exited:
			return nil // said below
		default:
		}
		return err
	})
	select {
	case <-exited:
		p.Stop()
		return fmt.Errorf("%s %w (%s); log:\n%s", p.Bin, ErrExited, cmd.ProcessState, p.Log())
	default:
	}
	if err == nil {
		return nil
	}
	p.Stop()
	return fmt.Errorf("%s not ready: %v; log:\n%s", p.Bin, err, p.Log())
}

// ErrRunning is returned by Start while the process runs already.
var ErrRunning = errors.New("already running")

// Retry calls start up to three times while it fails with ErrExited.
func Retry(start func() error) error {
	var err error
	for range 3 {
		if err = start(); !errors.Is(err, ErrExited) {
			return err
		}
	}
	return err
}

// Stop stops the process (SIGTERM, then SIGKILL after 10s). It does nothing
// when the process is not running.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	testkit.Stop(p.cmd.Process, p.exited, 10*time.Second)
	p.cmd = nil
}

// Kill ends the process at once (SIGKILL), as a crash or a lost machine
// would. It does nothing when the process is not running.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Log returns what the process printed so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log == nil {
		return ""
	}
	return p.log.String()
}

// Find returns the program named by the environment variable env, else
// the one called name on PATH; hint says how to get it.
func Find(env, name, hint string) (string, error) {
	if b := os.Getenv(env); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, b, err)
		}
		return b, nil
	}
	if b, err := exec.LookPath(name); err == nil {
		return b, nil
	}
	return "", fmt.Errorf("no %s: set %s or %s", name, env, hint)
}

// FreePorts returns n TCP ports that are free on loopback now.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// logKeep is how much of the end of a server's log a Process keeps.
const logKeep = 4 << 20

// Buffer collects a process's output; it may be read while written.
//
// With Keep set it keeps only the first headKeep bytes and the last Keep:
// a server's log is there to explain a failure, and kept whole it grows
// without bound. That is not only memory: a Consul dev agent (at its
// default, debug level) logs hundreds of lines for each registration it
// syncs, and writes them while it holds its state lock. Once such a log reached a
// few hundred MB over a long bench, each doubling of the buffer took
// seconds on a VM whose page faults are slow (256 to 512 MB: 7.7 s),
// the pipe filled meanwhile, and the agent stalled every registration
// until it could write again.
type Buffer struct {
	Keep int // if > 0, the tail kept; what lies between the head and it is left out

	mu      sync.Mutex
	head    []byte
	b       bytes.Buffer
	dropped int64
}

// headKeep is how much of its start a Buffer with Keep set keeps.
const headKeep = 64 << 10

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Keep <= 0 {
		return b.b.Write(p)
	}
	n := len(p)
	if k := min(headKeep-len(b.head), len(p)); k > 0 {
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	if over := b.b.Len() + len(p) - b.Keep; over > 0 {
		old := min(over, b.b.Len())
		b.b.Next(old) // bytes.Buffer slides its content down: its capacity stays bounded
		b.dropped += int64(over)
		p = p[over-old:]
	}
	b.b.Write(p)
	return n, nil
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped == 0 {
		return string(b.head) + b.b.String()
	}
	return fmt.Sprintf("%s\n[... %d bytes left out ...]\n%s", b.head, b.dropped, b.b.String())
}

// StatusKiB is one kB field of /proc/<pid>/status, such as "VmRSS" or
// "VmHWM" (the peak RSS); 0 when it cannot be read.
func StatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
