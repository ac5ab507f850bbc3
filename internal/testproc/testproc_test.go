package testproc

import (
	"errors"
	"os"
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
