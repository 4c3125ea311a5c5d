package simulate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
	s, err := NewShop(Config{Seed: 3, DailyVisitors: 200}, "h", start)
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
