package processor

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryReadiness runs two failing retries of one partition at once, as
// its batch writers and its checkpoint do: the processor must report not
// ready until both succeed, not when the first one does. (Run with -race:
// the retries share the processor's failing count.)
func TestRetryReadiness(t *testing.T) {
	p := &Processor{m: newMetrics(nil), log: slog.New(slog.DiscardHandler)}
	p.ready.Store(true)
	w := &worker{p: p, log: p.log}
	h := p.Handler(nil)
	status := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	var okA, okB atomic.Bool
	var triesA, triesB atomic.Int32
	fn := func(ok *atomic.Bool, tries *atomic.Int32) func() error {
		return func() error {
			tries.Add(1)
			if ok.Load() {
				return nil
			}
			return errors.New("ClickHouse is down")
		}
	}
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- w.retry(context.Background(), nil, "write batch", fn(&okA, &triesA)) }()
	go func() { doneB <- w.retry(context.Background(), nil, "write batch", fn(&okB, &triesB)) }()
	waitUntil(t, "both retries failing", func() bool { return triesA.Load() >= 2 && triesB.Load() >= 2 })
	if c := status(); c != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d while both fail", c)
	}
	okA.Store(true)
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if c := status(); c != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d while one retry still fails", c)
	}
	okB.Store(true)
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	if c := status(); c != http.StatusOK {
		t.Fatalf("readyz %d after both succeeded", c)
	}

	// A retry that gives up (the partition is revoked) counts no more.
	leaving := make(chan struct{})
	var triesC atomic.Int32
	doneC := make(chan error, 1)
	go func() { doneC <- w.retry(context.Background(), leaving, "write batch", fn(new(atomic.Bool), &triesC)) }()
	waitUntil(t, "a failing retry", func() bool { return triesC.Load() >= 2 })
	close(leaving)
	if err := <-doneC; err == nil {
		t.Fatal("a retry told to leave succeeded")
	}
	if c := status(); c != http.StatusOK {
		t.Fatalf("readyz %d after the failing retry gave up", c)
	}
}

// waitUntil polls cond until it holds, failing the test after a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
