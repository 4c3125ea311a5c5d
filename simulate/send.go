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
	"strconv"
	"time"
)

// Sender posts messages to a collector's /v1/batch with a write key, in
// the order given, one request at a time (so that events reach Kafka in
// time order and none falls behind the processor's allowed lateness).
type Sender struct {
	// URL is the collector's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// WriteKey authenticates the site.
	WriteKey string
	// Batch is the number of messages per request (at most 500, the
	// collector's default limit).
	Batch int
	// Client is the HTTP client; nil means one with a 30 s timeout.
	Client *http.Client
	// Now stamps each request's sentAt; nil means time.Now.
	Now func() time.Time

	// Sent counts the messages the collector accepted.
	Sent int64
}

// Send posts msgs in batches. A request answered 429 or 5xx is retried
// (after Retry-After when given) until ctx ends; any other refusal is an
// error naming the collector's answer.
func (s *Sender) Send(ctx context.Context, msgs []Message) error {
	batch := s.Batch
	if batch <= 0 || batch > 500 {
		batch = 500
	}
	for i := 0; i < len(msgs); i += batch {
		j := min(i+batch, len(msgs))
		if err := s.post(ctx, msgs[i:j]); err != nil {
			return err
		}
		s.Sent += int64(j - i)
	}
	return nil
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
