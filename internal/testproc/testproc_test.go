package testproc

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStartReportsAnEarlyExit(t *testing.T) {
	p := &Process{Bin: "/bin/sh", Args: []string{"-c", "echo bind: address already in use; exit 3"}}
	begin := time.Now()
	err := p.Start(func() error { return errors.New("not yet") })
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Start = %v, want ErrExited", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("Start took %v to notice the exit", d)
	}
	p.Stop() // stopping an exited process does nothing
}

func TestRetryStopsOnOtherErrors(t *testing.T) {
	calls := 0
	err := Retry(func() error { calls++; return ErrExited })
	if !errors.Is(err, ErrExited) || calls != 3 {
		t.Errorf("Retry = %v after %d calls, want ErrExited after 3", err, calls)
	}
	calls = 0
	other := errors.New("bad flag")
	if err := Retry(func() error { calls++; return other }); err != other || calls != 1 {
		t.Errorf("Retry = %v after %d calls, want the error after 1", err, calls)
	}
}

func TestStatusKiB(t *testing.T) {
	if kb := StatusKiB(os.Getpid(), "VmRSS"); kb <= 0 {
		t.Errorf("VmRSS of this process = %d kB", kb)
	}
	if kb := StatusKiB(os.Getpid(), "NoSuchField"); kb != 0 {
		t.Errorf("an unknown field = %d, want 0", kb)
	}
}

// Start on a running process refuses, keeping track of the one that runs,
// so that Stop still stops it (a test's cleanup that started a server
// again left the first one running, and the next test's Stop stopped
// nothing).
func TestStartWhileRunningKeepsTheRunningOne(t *testing.T) {
	p := &Process{Bin: "sleep", Args: []string{"60"}}
	if err := p.Start(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	first := p.cmd.Process.Pid
	if err := p.Start(func() error { return nil }); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start = %v, want ErrRunning", err)
	}
	if p.cmd.Process.Pid != first {
		t.Fatal("the second Start replaced the running process")
	}
	p.Stop()
	if err := p.Start(func() error { return nil }); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	p.Stop()
}

func TestBufferKeepsHeadAndTail(t *testing.T) {
	head := strings.Repeat("h", headKeep)
	for _, tc := range []struct {
		name   string
		keep   int
		writes []string
		want   string
	}{
		{"unbounded", 0, []string{head, "abc", "def"}, head + "abcdef"},
		{"under the bound", 4, []string{head, "ab", "c"}, head + "abc"},
		{"exactly the bound", 4, []string{head + "ab", "cd"}, head + "abcd"},
		{"older tail bytes go first", 4, []string{head, "abc", "def"}, head + "\n[... 2 bytes left out ...]\ncdef"},
		{"a write longer than the tail", 3, []string{head, "ab", "cdefg"}, head + "\n[... 4 bytes left out ...]\nefg"},
		{"one write over head and tail", 2, []string{head + "xyz"}, head + "\n[... 1 bytes left out ...]\nyz"},
		{"a short log is all head", 2, []string{"ab", "cd"}, "abcd"},
	} {
		b := &Buffer{Keep: tc.keep}
		for _, w := range tc.writes {
			if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v; want %d, nil", tc.name, n, err, len(w))
			}
		}
		if got := b.String(); got != tc.want {
			t.Errorf("%s: String() = %q, want %q", tc.name, strings.TrimPrefix(got, head), strings.TrimPrefix(tc.want, head))
		}
	}
}

// TestBufferStaysBounded writes 64 MB through a buffer that keeps 1 MB:
// its capacity must stay near the bound.
func TestBufferStaysBounded(t *testing.T) {
	b := &Buffer{Keep: 1 << 20}
	line := []byte(strings.Repeat("x", 99) + "\n")
	for range (64 << 20) / len(line) {
		_, _ = b.Write(line)
	}
	if c := b.b.Cap(); c > 4<<20 {
		t.Errorf("capacity %d bytes after 64 MB through a 1 MB tail", c)
	}
	if got := len(b.String()); got > headKeep+(1<<20)+100 {
		t.Errorf("String() is %d bytes", got)
	}
}
