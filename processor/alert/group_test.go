package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// Two alerters in one group share the signals: each alert is delivered,
// none twice, and both did some of the work. A signal that is not JSON or
// comes from a newer schema is kept as invalid_signal and does not stop
// the partition.
func TestTwoAlertersOneGroupAndBadSignals(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	file := e.rules(basicRules(rc.srv.URL, ""))
	ra := e.start(e.config(file, "a1"), nil, nil)
	rb := e.start(e.config(file, "a2"), nil, nil)
	// Both in the group with partitions before the signals come.
	client := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
	waitFor(t, "two members with partitions", 60*time.Second, func() bool {
		res, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{e.group}})
		if err != nil || len(res.Groups) != 1 || res.Groups[0].GroupState != "Stable" || len(res.Groups[0].Members) != 2 {
			return false
		}
		for _, m := range res.Groups[0].Members {
			if len(m.MemberAssignments.Topics) == 0 {
				return false
			}
		}
		return true
	})
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var sigs []*shoptrail.Signal
	for i := range 200 {
		sigs = append(sigs, cart(fmt.Sprintf("g%03d", i), fmt.Sprintf("c%03d", i), 1000, "C", at))
	}
	e.produce(sigs...)
	w := &kafka.Writer{Addr: kafka.TCP(e.brokers...), Topic: e.topic, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	newer, _ := json.Marshal(map[string]any{"v": shoptrail.SignalVersion + 1, "id": "future", "site": "shop-1", "type": "cart.abandoned"})
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("x"), Value: []byte("{not json")},
		kafka.Message{Key: []byte("y"), Value: newer}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	e.produce(cart("after", "c999", 1000, "C", at))
	waitFor(t, "201 alerts and 2 invalid signals recorded", 60*time.Second, func() bool {
		f := finals(e.deliveries())
		return f["sent"] == 201 && f["invalid_signal"] == 2
	})
	ids, repeats := rc.ids()
	if len(ids) != 201 || repeats != 0 {
		t.Errorf("%d distinct alerts, %d repeats; want 201, 0", len(ids), repeats)
	}
	by := map[string]int{}
	for _, d := range e.deliveries() {
		if d.Status == "sent" {
			by[d.Alerter]++
		}
	}
	if by["a1"] == 0 || by["a2"] == 0 {
		t.Errorf("sends by alerter %v: want both to have worked", by)
	}
	if v := metricValue(t, ra.reg, "shoptrail_alerter_signals_total", map[string]string{"result": "invalid"}) +
		metricValue(t, rb.reg, "shoptrail_alerter_signals_total", map[string]string{"result": "invalid"}); v != 2 {
		t.Errorf("invalid signals counted %v, want 2", v)
	}
}
