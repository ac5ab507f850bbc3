package bridge

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	exp := ExponentialBackoff(250*time.Millisecond, time.Second)
	for n, want := range map[int]time.Duration{0: 250 * time.Millisecond, 1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 4: time.Second, 60: time.Second} {
		if got := exp(n); got != want {
			t.Errorf("exponential retry %d: %s, want %s", n, got, want)
		}
	}
	if got := ConstantBackoff(2 * time.Second)(7); got != 2*time.Second {
		t.Errorf("constant retry 7: %s, want 2s", got)
	}
}

func TestBackoffSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ConstantBackoff(time.Hour).Sleep(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v, want context.Canceled", err)
	}
	if err := ConstantBackoff(0).Sleep(context.Background(), 1); err != nil {
		t.Fatalf("Sleep of 0: %v", err)
	}
}
