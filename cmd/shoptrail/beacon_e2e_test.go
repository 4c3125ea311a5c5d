package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/collector/beacon"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// journeyResult is what collector/beacon/e2e/journey.js prints.
type journeyResult struct {
	AnonymousID string   `json:"anonymousId"`
	UserID      string   `json:"userId"`
	MessageIDs  []string `json:"messageIds"`
	Events      []struct {
		MessageID string `json:"messageId"`
		Type      string `json:"type"`
		Event     string `json:"event"`
		Transport string `json:"transport"`
		Seq       int64  `json:"seq"`
		// Transports of every copy the browser sent (a retry is another
		// copy; ClickHouse keeps one of them).
		Transports []string `json:"transports"`
	} `json:"events"`
	Expected []string `json:"expected"`
}

// TestBeaconJourney clicks through the demo shop in headless Chromium with
// the real beacon, against the real collector, broker, processor and
// ClickHouse, and finds every event the browser sent in ClickHouse with the
// visitor's anonymous id, the landing campaign and the properties —
// including the event sent as the tab closed. Nothing depends on timing:
// the journey's proxy holds the order's fetch until the tab has closed, so
// the last event can only leave by sendBeacon, and a stored event's
// transport is checked against every copy the browser sent (a fetch
// answered 503 on a busy machine is retried).
func TestBeaconJourney(t *testing.T) {
	testenv.Integration(t)
	beaconDir, err := filepath.Abs("../../collector/beacon")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(beaconDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("the beacon's npm packages are missing (make deps runs npm ci in collector/beacon): %v", err)
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil && os.Getenv("SHOPTRAIL_CHROMIUM") == "" {
		t.Fatalf("Chromium is missing (make deps installs Debian's chromium): %v", err)
	}
	collectorURL, query := startStack(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demo := &http.Server{Handler: beacon.DemoHandler(collectorURL, "key1"), ReadHeaderTimeout: 5 * time.Second}
	go demo.Serve(ln)
	t.Cleanup(func() { demo.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(beaconDir, "e2e", "journey.js"))
	cmd.Env = append(os.Environ(),
		"SHOPTRAIL_E2E_BASE_URL=http://"+ln.Addr().String(),
		"SHOPTRAIL_E2E_LANDING_QUERY=?utm_source=newsletter&utm_medium=email&utm_campaign=winter-sale&utm_content=hero&gclid=test-click-1&secret=drop-me")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("journey: %v\n%s", err, stderr.String())
	}
	var j journeyResult
	if err := json.Unmarshal(stdout.Bytes(), &j); err != nil {
		t.Fatalf("journey output is not JSON: %v\n%s", err, stdout.String())
	}
	if j.AnonymousID == "" || len(j.Events) != len(j.Expected) {
		t.Fatalf("journey sent %d events (want %d: %v), anonymous id %q", len(j.Events), len(j.Expected), j.Expected, j.AnonymousID)
	}

	quoted := make([]string, len(j.MessageIDs))
	for i, id := range j.MessageIDs {
		quoted[i] = "'" + strings.ReplaceAll(id, "'", "") + "'"
	}
	in := "(" + strings.Join(quoted, ",") + ")"
	waitFor(t, 2*time.Minute, "every journey event in ClickHouse", func() bool {
		var n uint64
		return query("SELECT uniqExact(message_id) FROM events WHERE message_id IN "+in, &n) == nil && int(n) == len(j.MessageIDs)
	})

	type row struct {
		typ, event, anon, user, path, source, medium, campaign, content, clickKind, transport, props string
		seq                                                                                          int64
	}
	rows := map[string]row{}
	for _, e := range j.Events {
		var r row
		err := query(`SELECT type, event, anonymous_id, user_id, page_path, utm_source, utm_medium, utm_campaign, utm_content,
		  click_id_kind, transport, properties, seq FROM events FINAL WHERE message_id = '`+e.MessageID+`'`,
			&r.typ, &r.event, &r.anon, &r.user, &r.path, &r.source, &r.medium, &r.campaign, &r.content, &r.clickKind, &r.transport, &r.props, &r.seq)
		if err != nil {
			t.Fatalf("event %s (%s): %v", e.MessageID, e.Event, err)
		}
		rows[e.MessageID] = r
		name := r.typ
		if r.typ == "track" {
			name = r.event
		}
		if name != j.Expected[e.Seq-1] {
			t.Errorf("event seq %d is %q, want %q", e.Seq, name, j.Expected[e.Seq-1])
		}
		if r.anon != j.AnonymousID {
			t.Errorf("%s: anonymous id %q, want the visitor's %q", name, r.anon, j.AnonymousID)
		}
		if r.seq != e.Seq || !slices.Contains(e.Transports, r.transport) {
			t.Errorf("%s: seq/transport %d/%q, want what the browser sent: %d/one of %q", name, r.seq, r.transport, e.Seq, e.Transports)
		}
	}
	first := rows[j.Events[0].MessageID]
	if first.typ != "page" || first.path != "/" || first.source != "newsletter" || first.medium != "email" ||
		first.campaign != "winter-sale" || first.content != "hero" || first.clickKind != "gclid" {
		t.Errorf("landing page view = %+v, want the landing campaign and click id", first)
	}
	var added, order, last row
	for _, e := range j.Events {
		switch e.Event {
		case "Product Added":
			added = rows[e.MessageID]
		case "Order Completed":
			order = rows[e.MessageID]
		}
	}
	last = rows[j.Events[len(j.Events)-1].MessageID]
	var props struct {
		Quantity float64 `json:"quantity"`
		Price    float64 `json:"price"`
		OrderID  string  `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(added.props), &props); err != nil || props.Quantity != 25 || props.Price <= 0 {
		t.Errorf("Product Added properties = %s (%v), want the quantity 25 typed in and a price", added.props, err)
	}
	if err := json.Unmarshal([]byte(order.props), &props); err != nil || props.OrderID == "" {
		t.Errorf("Order Completed properties = %s (%v), want an order_id", order.props, err)
	}
	if order.user == "" || order.user != j.UserID {
		t.Errorf("Order Completed user id = %q, want the identified customer %q", order.user, j.UserID)
	}
	if last.event != "Inquiry Started" || last.transport != "beacon" {
		t.Errorf("last event = %+v, want Inquiry Started sent by sendBeacon as the tab closed", last)
	}
	var leaked uint64
	if err := query("SELECT count() FROM events WHERE page_url LIKE '%secret=%' OR page_url LIKE '%drop-me%'", &leaked); err != nil || leaked != 0 {
		t.Errorf("%d events keep the non-allowlisted query parameter (%v)", leaked, err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("journey timed out")
	}
	fmt.Fprintf(os.Stderr, "journey: %d events of visitor %s found in ClickHouse\n", len(j.Events), j.AnonymousID)
}
