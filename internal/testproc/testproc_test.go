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
