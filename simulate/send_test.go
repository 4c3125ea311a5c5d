package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSenderRetriesAndBatches sends 1,200 messages in batches of 500 to an
// HTTP server that refuses the first request with 503: every message
// arrives once, in order, with the write key and a sentAt.
func TestSenderRetriesAndBatches(t *testing.T) {
	var calls atomic.Int32
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if u, _, ok := r.BasicAuth(); !ok || u != "key1" || r.URL.Path != "/v1/batch" {
			http.Error(w, "bad auth or path", http.StatusUnauthorized)
			return
		}
		var b struct {
			Batch  []Message `json:"batch"`
			SentAt time.Time `json:"sentAt"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.SentAt.IsZero() || len(b.Batch) > 500 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		for _, m := range b.Batch {
			got = append(got, m.MessageID)
		}
		w.Write([]byte(`{"success":true}`))
	}))
	defer srv.Close()
	s, err := NewShop(Config{Seed: 3, DailyVisitors: 400}, "h", start)
	if err != nil {
		t.Fatal(err)
	}
	msgs := s.NextDay()[:1200]
	snd := Sender{URL: srv.URL, WriteKey: "key1", Batch: 500}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := snd.Send(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if snd.Sent != 1200 || len(got) != 1200 || calls.Load() != 4 {
		t.Fatalf("sent %d, server got %d in %d calls; want 1200 in 1 refused + 3", snd.Sent, len(got), calls.Load())
	}
	for i := range msgs {
		if got[i] != msgs[i].MessageID {
			t.Fatalf("message %d arrived as %s, want %s", i, got[i], msgs[i].MessageID)
		}
	}
	// A refusal that is not temporary is an error.
	bad := Sender{URL: srv.URL, WriteKey: "wrong"}
	if err := bad.Send(ctx, msgs[:1]); err == nil {
		t.Fatal("a 401 was not an error")
	}
}

// TestSenderParallel: with Parallel 3 a second request is posted before the
// first is answered (the server holds the first until the second comes),
// never more than 3 at once nor spanning more than MaxSkew of event time,
// and every message arrives once.
func TestSenderParallel(t *testing.T) {
	s, err := NewShop(Config{Seed: 3, DailyVisitors: 2000}, "h", start)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []Message // the busy hours: a batch of 100 spans a few minutes
	for _, m := range s.NextDay() {
		if h := m.Timestamp.Hour(); h >= 10 && h < 12 {
			msgs = append(msgs, m)
		}
	}
	const skew = 30 * time.Minute
	var mu sync.Mutex
	type span struct{ first, last time.Time }
	active := map[*span]bool{}
	seen := map[string]int{}
	maxActive := 0
	second := make(chan struct{})
	var calls atomic.Int32
	var problems []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Batch []Message `json:"batch"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || len(b.Batch) == 0 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		sp := &span{b.Batch[0].Timestamp, b.Batch[len(b.Batch)-1].Timestamp}
		mu.Lock()
		for o := range active {
			lo, hi := o.first, sp.last
			if sp.first.Before(lo) {
				lo = sp.first
			}
			if o.last.After(hi) {
				hi = o.last
			}
			if hi.Sub(lo) > skew {
				problems = append(problems, fmt.Sprintf("in flight together: %v..%v and %v..%v", o.first, o.last, sp.first, sp.last))
			}
		}
		active[sp] = true
		maxActive = max(maxActive, len(active))
		for _, m := range b.Batch {
			seen[m.MessageID]++
		}
		mu.Unlock()
		switch calls.Add(1) {
		case 1:
			select {
			case <-second:
			case <-time.After(30 * time.Second):
				mu.Lock()
				problems = append(problems, "no second request while the first was in flight")
				mu.Unlock()
			}
		case 2:
			close(second)
		}
		mu.Lock()
		delete(active, sp)
		mu.Unlock()
		w.Write([]byte(`{"success":true}`))
	}))
	defer srv.Close()
	snd := Sender{URL: srv.URL, WriteKey: "k", Batch: 100, Parallel: 3, MaxSkew: skew}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := snd.Send(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if snd.Sent != int64(len(msgs)) || len(seen) != len(msgs) {
		t.Fatalf("sent %d, server saw %d distinct, want %d", snd.Sent, len(seen), len(msgs))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s arrived %d times", id, n)
		}
	}
	if maxActive < 2 || maxActive > 3 {
		t.Fatalf("at most %d requests in flight, want 2 or 3", maxActive)
	}
}

// TestCarryOver: the messages of a day that run past midnight go with the
// next day's, in time order, and none is lost.
func TestCarryOver(t *testing.T) {
	s, err := NewShop(Config{Seed: 4, DailyVisitors: 500}, "h", start)
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := s.NextDay(), s.NextDay()
	midnight := start.AddDate(0, 0, 1)
	send1, carry := CarryOver(nil, d1, midnight)
	if len(carry) == 0 {
		t.Fatal("no visit of the first day ran past midnight: the test needs one")
	}
	send2, rest := CarryOver(carry, d2, midnight.AddDate(0, 0, 1))
	all := append(append(append([]Message{}, send1...), send2...), rest...)
	if len(all) != len(d1)+len(d2) {
		t.Fatalf("%d messages after carrying, want %d", len(all), len(d1)+len(d2))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Timestamp.Before(all[i-1].Timestamp) {
			t.Fatalf("message %d at %v comes after one at %v", i, all[i].Timestamp, all[i-1].Timestamp)
		}
	}
	if send1[len(send1)-1].Timestamp.After(midnight) || !carry[0].Timestamp.Before(midnight.AddDate(0, 0, 1)) {
		t.Fatalf("cut in the wrong place")
	}
}
