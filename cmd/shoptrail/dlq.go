package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/shoptrail/shoptrail/processor/clickhouse"
	"github.com/shoptrail/shoptrail/processor/rejects"
)

// runDLQ runs "dlq tail" or "dlq replay".
func runDLQ(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "tail" && args[0] != "replay") {
		return errors.New("usage: shoptrail dlq tail [flags] | shoptrail dlq replay [flags] (-h for the flags)")
	}
	return dlq(ctx, args[0], args[1:], os.Stdout)
}

func dlq(ctx context.Context, sub string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	var chc clickhouse.Config
	var lc logConfig
	chc.RegisterFlags(fs)
	lc.RegisterFlags(fs, "text")
	site := fs.String("site", "", "only this site's rejected events")
	reason := fs.String("reason", "", "only rejected events whose reason or field contains this text")
	since := fs.Duration("since", 0, "only those received in this past duration, e.g. 1h (0: any)")
	n := 20 // tail: a screenful; replay: everything selected
	if sub == "replay" {
		n = 0
	}
	limit := fs.Int("n", n, "the newest n rejected events (replay: 0 is at most 10,000)")
	follow := fs.Bool("follow", false, "tail: keep printing new rejected events as they arrive")
	asJSON := fs.Bool("json", false, "tail: one JSON object per line (receivedAt, site, reason, field, message, ...), the format replay -file reads")
	url := fs.String("collector", "http://127.0.0.1:8080", "replay: the collector's URL")
	writeKey := fs.String("write-key", "", "replay: the site's write key (prefer SHOPTRAIL_WRITE_KEY)")
	file := fs.String("file", "", "replay: send the events of this file (JSON lines as tail -json writes them, fixed by hand; or bare messages) instead of those in ClickHouse")
	dry := fs.Bool("dry-run", false, "replay: list what would be sent, send nothing")
	if _, err := parse(fs, &lc, args); err != nil {
		return err
	}
	f := rejects.Filter{Site: *site, Reason: *reason, Limit: *limit}
	if *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	if sub == "replay" {
		return dlqReplay(ctx, chc, f, *file, *url, *writeKey, *dry, out)
	}
	conn, err := clickhouse.Open(ctx, chc)
	if err != nil {
		return err
	}
	defer conn.Close()
	print := func(rows []rejects.Row) {
		for _, r := range rows {
			if *asJSON {
				b, _ := json.Marshal(r)
				fmt.Fprintf(out, "%s\n", b)
			} else {
				fmt.Fprintln(out, rejects.Line(r))
			}
		}
	}
	rows, err := rejects.Tail(ctx, conn, f)
	if err != nil {
		return err
	}
	if len(rows) == 0 && !*asJSON {
		fmt.Fprintln(out, "no rejected events"+map[bool]string{true: " yet; waiting for new ones (Ctrl-C stops)", false: ""}[*follow])
	}
	print(rows)
	for *follow {
		if len(rows) > 0 {
			last := rows[len(rows)-1]
			f.After = &last
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		f.Limit = 1000
		next, err := rejects.Tail(ctx, conn, f)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		print(next)
		if len(next) > 0 {
			rows = next
		}
	}
	return nil
}

func dlqReplay(ctx context.Context, chc clickhouse.Config, f rejects.Filter, file, url, writeKey string, dry bool, out io.Writer) error {
	if writeKey == "" {
		writeKey = os.Getenv("SHOPTRAIL_WRITE_KEY")
	}
	if writeKey == "" && !dry {
		return errors.New("replay needs the site's write key: -write-key or SHOPTRAIL_WRITE_KEY")
	}
	var events []json.RawMessage
	if file != "" {
		fh, err := os.Open(file)
		if err != nil {
			return err
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 4<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Bytes()
			if len(line) == 0 {
				continue
			}
			var row struct {
				Message json.RawMessage `json:"message"`
			}
			if err := json.Unmarshal(line, &row); err != nil {
				return fmt.Errorf("%s:%d: not JSON: %w", file, n, err)
			}
			ev := row.Message
			if len(ev) == 0 { // a bare message
				ev = append(json.RawMessage(nil), line...)
			}
			events = append(events, ev)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("cannot read %s: %w", file, err)
		}
	} else {
		if f.Limit <= 0 {
			f.Limit = 10000
		}
		conn, err := clickhouse.Open(ctx, chc)
		if err != nil {
			return err
		}
		defer conn.Close()
		rows, err := rejects.Tail(ctx, conn, f)
		if err != nil {
			return err
		}
		for _, r := range rows {
			events = append(events, r.Event)
		}
	}
	if dry {
		for _, ev := range events {
			fmt.Fprintf(out, "%s\n", ev)
		}
		fmt.Fprintf(out, "%d events would be sent to %s\n", len(events), url)
		return nil
	}
	res, err := rejects.Replay(ctx, &http.Client{Timeout: 30 * time.Second}, url, writeKey, events)
	for _, e := range res.Errors {
		fmt.Fprintln(out, "rejected again: "+e)
	}
	fmt.Fprintf(out, "replayed %d events: %d accepted, %d rejected again\n", res.Sent, res.Accepted, res.Rejected)
	return err
}
