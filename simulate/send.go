package simulate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// Sender posts messages to a collector's /v1/batch with a write key, in
// the order given: one request at a time, or up to Parallel at once while
// the batches in flight span at most MaxSkew of event time, so that no
// event reaches Kafka further behind the newest than that (keep it well
// under the processor's allowed lateness, 5 minutes by default).
type Sender struct {
	// URL is the collector's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// WriteKey authenticates the site.
	WriteKey string
	// Batch is the number of messages per request (at most 500, the
	// collector's default limit).
	Batch int
	// Parallel is the most requests in flight; 0 or 1 means one at a
	// time.
	Parallel int
	// MaxSkew bounds the event time spanned by the batches in flight: a
	// batch is posted before the earlier ones are answered only when its
	// last message is at most MaxSkew after the first message of the
	// oldest batch in flight. 0 means 2 minutes.
	MaxSkew time.Duration
	// Client is the HTTP client; nil means one with a 30 s timeout.
	Client *http.Client
	// Now stamps each request's sentAt; nil means time.Now.
	Now func() time.Time

	// Sent counts the messages the collector accepted.
	Sent int64
}

// Send posts msgs in batches. A request answered 429 or 5xx is retried
// (after Retry-After when given) until ctx ends; any other refusal is an
// error naming the collector's answer (the requests in flight are then
// cancelled).
func (s *Sender) Send(ctx context.Context, msgs []Message) error {
	batch := s.Batch
	if batch <= 0 || batch > 500 {
		batch = 500
	}
	par := max(s.Parallel, 1)
	skew := s.MaxSkew
	if skew <= 0 {
		skew = 2 * time.Minute
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type flight struct {
		first time.Time
		n     int
		done  chan error
	}
	var queue []*flight
	var failed error
	// land waits for the oldest request in flight.
	land := func() {
		f := queue[0]
		queue = queue[1:]
		if err := <-f.done; err != nil {
			if failed == nil {
				failed = err
				cancel()
			}
			return
		}
		s.Sent += int64(f.n)
	}
	for i := 0; i < len(msgs) && failed == nil; i += batch {
		part := msgs[i:min(i+batch, len(msgs))]
		for len(queue) > 0 && failed == nil && (len(queue) >= par || part[len(part)-1].Timestamp.Sub(queue[0].first) > skew) {
			land()
		}
		if failed != nil {
			break
		}
		f := &flight{first: part[0].Timestamp, n: len(part), done: make(chan error, 1)}
		queue = append(queue, f)
		go func() { f.done <- s.post(ctx, part) }()
	}
	for len(queue) > 0 {
		land()
	}
	return failed
}

type batchBody struct {
	Batch  []Message `json:"batch"`
	SentAt time.Time `json:"sentAt"`
}

func (s *Sender) post(ctx context.Context, msgs []Message) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(s.WriteKey+":"))
	backoff := 100 * time.Millisecond
	for {
		body, err := json.Marshal(batchBody{Batch: msgs, SentAt: now().UTC()})
		if err != nil {
			return fmt.Errorf("cannot encode a batch: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/batch", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		req.Header.Set("User-Agent", "shoptrail-simulate")
		resp, err := client.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait = backoff
		default:
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode/100 != 5 {
				return fmt.Errorf("collector refused a batch: %s: %s", resp.Status, bytes.TrimSpace(answer))
			}
			wait = backoff
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
				wait = time.Duration(ra) * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// CarryOver merges carry into msgs (both in time order) and cuts the result
// at t: send holds the messages before t, next those at or after t, to be
// merged into the following day's. A visit that starts before midnight
// ends after it, so a day's messages run into the next day's: sent day by
// day, they would reach the collector behind the next day's first ones
// and the processor would count them late.
func CarryOver(carry, msgs []Message, t time.Time) (send, next []Message) {
	all := make([]Message, 0, len(carry)+len(msgs))
	i, j := 0, 0
	for i < len(carry) || j < len(msgs) {
		if j == len(msgs) || i < len(carry) && !msgs[j].Timestamp.Before(carry[i].Timestamp) {
			all = append(all, carry[i])
			i++
		} else {
			all = append(all, msgs[j])
			j++
		}
	}
	k := sort.Search(len(all), func(k int) bool { return !all[k].Timestamp.Before(t) })
	return all[:k], all[k:]
}
