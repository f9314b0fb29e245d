package ctxsleep

import (
	"context"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	ctx := context.Background()
	if !Sleep(ctx, time.Millisecond) || !Sleep(ctx, 0) {
		t.Fatal("a live context must sleep through")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if Sleep(done, time.Hour) || Sleep(done, 0) || Sleep(done, -time.Second) {
		t.Fatal("an ended context must stop the sleep")
	}
	late, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if Sleep(late, time.Hour) {
		t.Fatal("the context ended first")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("Sleep did not return when the context ended (%v)", el)
	}
}
