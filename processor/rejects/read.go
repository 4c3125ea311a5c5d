package rejects

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Filter selects rejected events.
type Filter struct {
	Site   string    // "" any
	Since  time.Time // zero: any
	Reason string    // a part of the reason or the field, "" any
	// After skips rows up to this place (received_at, then partition and
	// offset): what a follower has already shown.
	After *Row
	Limit int // the newest Limit rows; 0: 100
}

// Tail returns the newest rejected events matching f, oldest first.
func Tail(ctx context.Context, conn driver.Conn, f Filter) ([]Row, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	if f.Site != "" {
		where = append(where, "site = ?")
		args = append(args, f.Site)
	}
	if !f.Since.IsZero() {
		where = append(where, "received_at >= ?")
		args = append(args, f.Since.UTC())
	}
	if f.Reason != "" {
		where = append(where, "(positionCaseInsensitive(reason, ?) > 0 OR positionCaseInsensitive(field, ?) > 0)")
		args = append(args, f.Reason, f.Reason)
	}
	if f.After != nil {
		where = append(where, "(received_at > ? OR (received_at = ? AND (kafka_partition > ? OR (kafka_partition = ? AND kafka_offset > ?))))")
		at := f.After.ReceivedAt.UTC().Truncate(time.Second)
		args = append(args, at, at, f.After.Partition, f.After.Partition, f.After.Offset)
	}
	q := `SELECT received_at, site, reason, field, type, event_name, message_id, anonymous_id, event, kafka_partition, kafka_offset
		FROM rejected_events FINAL`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY received_at DESC, kafka_partition DESC, kafka_offset DESC LIMIT %d", f.Limit)
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read rejected_events: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var ev string
		if err := rows.Scan(&r.ReceivedAt, &r.Site, &r.Reason, &r.Field, &r.Type, &r.EventName, &r.MessageID, &r.AnonymousID, &ev, &r.Partition, &r.Offset); err != nil {
			return nil, fmt.Errorf("cannot read rejected_events: %w", err)
		}
		r.Event = json.RawMessage(ev)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read rejected_events: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Line formats a row for the terminal: time, site, field, reason and the
// beginning of the event.
func Line(r Row) string {
	ev := string(r.Event)
	if len(ev) > 160 {
		ev = ev[:160] + "…"
	}
	field := r.Field
	if field == "" {
		field = "-"
	}
	return fmt.Sprintf("%s  %-10s %-24s %s\n    %s", r.ReceivedAt.UTC().Format("2006-01-02 15:04:05"), r.Site, field, r.Reason, ev)
}

// Result is what a replay did.
type Result struct {
	Sent, Accepted, Rejected int
	// Errors are the collector's answers for what it did not take.
	Errors []string
}

// Replay sends events (Segment messages, JSON) to the collector at url
// (e.g. http://127.0.0.1:8080) with writeKey, in batches of 100 to
// /v1/batch. Events keep their messageId, so one already stored collapses
// with it; those the collector rejects again go to the dead-letter topic
// again, with today's reason.
func Replay(ctx context.Context, client *http.Client, url, writeKey string, events []json.RawMessage) (Result, error) {
	var res Result
	url = strings.TrimRight(url, "/") + "/v1/batch"
	for start := 0; start < len(events); start += 100 {
		part := events[start:min(start+100, len(events))]
		body, err := json.Marshal(struct {
			Batch []json.RawMessage `json:"batch"`
		}{part})
		if err != nil {
			return res, fmt.Errorf("cannot encode a replay batch: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return res, err
		}
		req.SetBasicAuth(writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return res, fmt.Errorf("cannot send to %s: %w", url, err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		res.Sent += len(part)
		var ans struct {
			Error    string `json:"error"`
			Accepted *int   `json:"accepted"`
			Rejected []struct {
				Index int    `json:"index"`
				Error string `json:"error"`
			} `json:"rejected"`
		}
		json.Unmarshal(b, &ans)
		switch {
		case resp.StatusCode == http.StatusOK:
			res.Accepted += len(part)
		case resp.StatusCode == http.StatusBadRequest && ans.Accepted != nil:
			res.Accepted += *ans.Accepted
			res.Rejected += len(ans.Rejected)
			for _, rj := range ans.Rejected {
				res.Errors = append(res.Errors, fmt.Sprintf("event %d: %s", start+rj.Index, rj.Error))
			}
		default:
			return res, fmt.Errorf("the collector answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
	}
	return res, nil
}
