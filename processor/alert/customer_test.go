package alert_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// customerRules: abandoned carts of key accounts or of high value with a
// follow-up by value, at-risk key accounts one by one, dormant and lost
// customers in a daily digest per first channel, tier moves up into A and
// down out of A/B.
func customerRules(sales, keys, team string) string {
	return fmt.Sprintf(`destinations:
  sales: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
  keys: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
  team: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    timezone: UTC
    rules:
      - name: carts
        type: cart_abandoned
        min_value: 2000
        tiers: [A, B]
        follow_up: {personal_email: 500, phone_call: 3000, phone_call_tiers: [A]}
        cooldown: 24h
        route: {to: [sales], tiers: {A: [keys]}}
      - name: at-risk
        type: customer_stage
        stages: [at_risk]
        tiers: [A, B]
        route: {to: [sales], tiers: {A: [keys]}}
      - name: gone
        type: customer_stage
        stages: [dormant, lost]
        digest: {at: "09:00", group_by: channel}
        route: {to: [team]}
      - name: new-key-account
        type: customer_tier
        tiers: [A]
        route: {to: [keys]}
      - name: slipping
        type: customer_tier
        from_tiers: [A, B]
        tiers: [C, D, E]
        route: {to: [sales]}
`, sales, keys, team)
}

// view is a customer as the processor's customer stage describes it in a
// signal: traits from identify, stage, tier, orders, first channel.
func view(id, tier, stage string, orders int, revenue float64, lastOrder time.Time, channel string) *shoptrail.SignalCustomer {
	return &shoptrail.SignalCustomer{ID: id, Email: id + "@example.com", Name: "Name " + id, Phone: "+86 138 0000 " + id[len(id)-1:],
		Company: "Company " + id, Industry: "machinery", Type: "enterprise", Role: "purchaser", Stage: stage, Tier: tier,
		OrderCount: orders, NetRevenue: revenue, Currency: "CNY", FirstSeenAt: lastOrder.AddDate(-1, 0, 0).UTC(),
		LastOrderAt: lastOrder.UTC(), LastVisitAt: lastOrder.AddDate(0, 0, 3).UTC(), FirstChannel: channel, FirstSource: "baidu"}
}

// abandoned is a known customer's cart.abandoned signal as the customer
// stage writes it (anonymous when c is nil).
func abandoned(id string, c *shoptrail.SignalCustomer, value float64, at time.Time) *shoptrail.Signal {
	s := &shoptrail.Signal{V: shoptrail.SignalVersion, ID: id, Type: shoptrail.SignalCartAbandoned, Site: "shop-1", At: at.UTC(),
		AnonymousID: "anon-" + id, Customer: c,
		Cart: &shoptrail.SignalCart{CartID: "cart-" + id, Value: value, Currency: "CNY", ItemCount: 3, Step: "checkout",
			Items: []shoptrail.SignalCartItem{
				{ProductID: "p-pump", SKU: "PMP-40", Name: "Pump 40", Category: "pumps", Price: value - 100, Quantity: 1},
				{ProductID: "p-seal", Name: "Seal kit", Price: 50, Quantity: 2}},
			LastActivityAt: at.Add(-time.Hour).UTC(), AbandonedAt: at.UTC(), SessionID: "sess-" + id,
			Channel: "Paid Search", Source: "baidu", Medium: "cpc", Campaign: "spring", AbandonmentID: "ab-" + id}}
	if c != nil {
		s.CustomerID = c.ID
	}
	return s
}

// change is a customer.stage_changed or customer.tier_changed signal.
func change(id string, c *shoptrail.SignalCustomer, kind, from, to string, at time.Time) *shoptrail.Signal {
	typ := shoptrail.SignalStageChanged
	if kind == "tier" {
		typ = shoptrail.SignalTierChanged
	}
	return &shoptrail.Signal{V: shoptrail.SignalVersion, ID: id, Type: typ, Site: "shop-1", At: at.UTC(), CustomerID: c.ID,
		Customer: c, Transition: &shoptrail.SignalTransition{Kind: kind, From: from, To: to, Cause: "timer:" + to}}
}

// Customer signals as the processor's customer stage will write them, end
// to end: carts with the customer's view (tier in {A, B} or value, the
// follow-up by value, key accounts routed apart, cooldown), stage changes
// (at-risk per tier one by one; dormant and lost in a daily digest per
// first channel), tier changes (up into A, down out of A/B). Each alert is
// checked at the receiver it was routed to (payload, signature) and in
// alert_deliveries.
func TestCustomerSignalsEndToEnd(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	sales, keys, team := newReceiver(t), newReceiver(t), newReceiver(t)
	clock := newFakeClock(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	file := e.rules(customerRules(sales.srv.URL, keys.srv.URL, team.srv.URL))
	now := clock.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	lastOrder := now.AddDate(0, 0, -40)

	cA := view("c1", "A", shoptrail.StageLoyal, 9, 20450, lastOrder, "Paid Search")
	cB := view("c2", "B", shoptrail.StageSecondBuyer, 2, 3100, lastOrder, "Paid Search")
	cC := view("c3", "C", shoptrail.StageFirstBuyer, 1, 900, lastOrder, "Organic Search")
	cC2 := view("c4", "C", shoptrail.StageFirstBuyer, 1, 700, lastOrder, "Organic Search")
	sigs := []*shoptrail.Signal{
		// Carts.
		abandoned("k-a", cA, 800, ago(50*time.Minute)),      // tier A: phone call whatever the value, to keys
		abandoned("k-b", cB, 600, ago(49*time.Minute)),      // tier B: personal email (>= 500), to sales
		abandoned("k-c", cC, 3500, ago(48*time.Minute)),     // tier C but >= 2000: phone call by value
		abandoned("k-c2", cC2, 1200, ago(47*time.Minute)),   // tier C, < 2000: no alert
		abandoned("k-anon", nil, 2500, ago(46*time.Minute)), // anonymous, >= 2000: personal email
		abandoned("k-a2", cA, 5000, ago(45*time.Minute)),    // c1 again within 24h: cooldown
		// Stage changes.
		change("s-a", view("c1", "A", shoptrail.StageAtRisk, 9, 20450, lastOrder, "Paid Search"), "stage", shoptrail.StageLoyal, shoptrail.StageAtRisk, ago(40*time.Minute)),
		change("s-c", view("c6", "C", shoptrail.StageAtRisk, 2, 400, lastOrder, "Paid Search"), "stage", shoptrail.StageSecondBuyer, shoptrail.StageAtRisk, ago(39*time.Minute)), // tier C: not alerted
		change("s-b", view("c2", "B", shoptrail.StageDormant, 2, 3100, lastOrder, "Paid Search"), "stage", shoptrail.StageAtRisk, shoptrail.StageDormant, ago(38*time.Minute)),
		change("s-d", view("c7", "D", shoptrail.StageLost, 1, 150, lastOrder, "Organic Search"), "stage", shoptrail.StageDormant, shoptrail.StageLost, ago(37*time.Minute)),
		change("s-a8", view("c8", "A", shoptrail.StageDormant, 12, 50000, lastOrder, "Paid Search"), "stage", shoptrail.StageAtRisk, shoptrail.StageDormant, ago(36*time.Minute)),
		change("s-loyal", view("c9", "B", shoptrail.StageLoyal, 4, 2000, lastOrder, "Paid Search"), "stage", shoptrail.StageThirdBuyer, shoptrail.StageLoyal, ago(35*time.Minute)), // not a rule's stage
		// Tier changes.
		change("t-up", view("c10", "A", shoptrail.StageLoyal, 6, 30000, lastOrder, "Direct"), "tier", "B", "A", ago(30*time.Minute)),
		change("t-down", view("c11", "C", shoptrail.StageAtRisk, 5, 8000, lastOrder, "Direct"), "tier", "A", "C", ago(29*time.Minute)),
		change("t-side", view("c12", "C", shoptrail.StageFirstBuyer, 1, 300, lastOrder, "Direct"), "tier", "D", "C", ago(28*time.Minute)), // no rule
	}
	bySig := map[string]*shoptrail.Signal{}
	for _, s := range sigs {
		bySig[s.ID] = s
	}
	e.produce(sigs...)
	e.start(e.config(file, "a1"), clock, nil)

	type want struct {
		sig, rule, dest, typ, followUp string
	}
	wants := []want{
		{"k-a", "carts", "keys", notify.TypeCartAbandoned, rules.FollowUpPhoneCall},
		{"k-b", "carts", "sales", notify.TypeCartAbandoned, rules.FollowUpPersonalEmail},
		{"k-c", "carts", "sales", notify.TypeCartAbandoned, rules.FollowUpPhoneCall},
		{"k-anon", "carts", "sales", notify.TypeCartAbandoned, rules.FollowUpPersonalEmail},
		{"s-a", "at-risk", "keys", notify.TypeCustomerStage, ""},
		{"t-up", "new-key-account", "keys", notify.TypeCustomerTier, ""},
		{"t-down", "slipping", "sales", notify.TypeCustomerTier, ""},
	}
	waitFor(t, "7 alerts sent, 3 digest entries and 1 cooldown recorded", 60*time.Second, func() bool {
		f := finals(e.deliveries())
		return f["sent"] == 7 && f["digest_pending"] == 3 && f["suppressed_cooldown"] == 1
	})
	requestsStay(t, team, 0, "the digest before 09:00")
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	recvs := map[string]*receiver{"sales": sales, "keys": keys, "team": team}
	got := map[string]notify.Alert{} // by alert id
	for name, rc := range recvs {
		for _, req := range rc.requests() {
			// The clock is injected (in the past): the signature is
			// checked, the timestamp against that clock.
			if err := wh.VerifyIgnoringTimestamp(req.Body, req.Header); err != nil {
				t.Errorf("%s: alert %s: signature: %v", name, req.ID, err)
			}
			if ts := req.Header.Get("webhook-timestamp"); ts != fmt.Sprint(now.Unix()) {
				t.Errorf("%s: alert %s: webhook-timestamp %s, want %d", name, req.ID, ts, now.Unix())
			}
			var body struct {
				Type string       `json:"type"`
				Data notify.Alert `json:"data"`
			}
			if err := json.Unmarshal(req.Body, &body); err != nil {
				t.Fatalf("%s: %v: %s", name, err, req.Body)
			}
			if body.Type != body.Data.Type || body.Data.ID != req.ID {
				t.Errorf("%s: envelope type %q / data type %q, id %q / webhook-id %q", name, body.Type, body.Data.Type, body.Data.ID, req.ID)
			}
			got[req.ID+" "+name] = body.Data
		}
	}
	if len(got) != len(wants) {
		t.Errorf("receivers got %d alerts, want %d: %v", len(got), len(wants), keysOf(got))
	}
	followUps := e.followUps()
	for _, w := range wants {
		id := rules.AlertID(w.sig, w.rule, w.dest)
		a, ok := got[id+" "+w.dest]
		if !ok {
			t.Errorf("%s (%s) did not reach %s", w.sig, w.rule, w.dest)
			continue
		}
		sig := bySig[w.sig]
		if a.Type != w.typ || a.Rule != w.rule || a.FollowUp != w.followUp || a.Subject != sig.Key() || !a.At.Equal(sig.At) {
			t.Errorf("%s at %s: type %q rule %q follow-up %q subject %q at %v; want %q %q %q %q %v",
				w.sig, w.dest, a.Type, a.Rule, a.FollowUp, a.Subject, a.At, w.typ, w.rule, w.followUp, sig.Key(), sig.At)
		}
		// The customer view, the cart and the change arrive whole.
		if !reflect.DeepEqual(a.Customer, sig.Customer) {
			t.Errorf("%s: customer\n got %+v\nwant %+v", w.sig, a.Customer, sig.Customer)
		}
		if !reflect.DeepEqual(a.Cart, sig.Cart) || !reflect.DeepEqual(a.Transition, sig.Transition) {
			t.Errorf("%s: cart %+v transition %+v; want %+v %+v", w.sig, a.Cart, a.Transition, sig.Cart, sig.Transition)
		}
		if followUps[id] != w.followUp {
			t.Errorf("%s: alert_deliveries.follow_up %q, want %q", w.sig, followUps[id], w.followUp)
		}
	}
	rows := map[string]delivery{}
	for _, d := range e.deliveries() {
		if d.Final == 1 {
			rows[d.AlertID] = d
		}
	}
	for _, w := range wants {
		d := rows[rules.AlertID(w.sig, w.rule, w.dest)]
		if d.Status != "sent" || d.Rule != w.rule || d.Destination != w.dest || d.Subject != bySig[w.sig].Key() || d.HTTPStatus != 200 {
			t.Errorf("%s: alert_deliveries row %+v", w.sig, d)
		}
	}
	if d := rows[rules.AlertID("k-a2", "carts", "keys")]; d.Status != "suppressed_cooldown" || d.Subject != "c1" {
		t.Errorf("c1's second cart within the cooldown: row %+v", d)
	}
	for _, s := range []string{"s-b", "s-d", "s-a8"} {
		if d := rows[rules.AlertID(s, "gone", "team")]; d.Status != "digest_pending" {
			t.Errorf("%s: digest entry %+v", s, d)
		}
	}

	// 09:00: one digest per first channel, to the team, customers by net
	// revenue.
	clock.Advance(61 * time.Minute)
	waitFor(t, "two digests", 30*time.Second, func() bool { return len(team.requests()) == 2 })
	digests := map[string][]string{}
	for _, req := range team.requests() {
		if err := wh.VerifyIgnoringTimestamp(req.Body, req.Header); err != nil {
			t.Errorf("digest %s: signature: %v", req.ID, err)
		}
		if ts := req.Header.Get("webhook-timestamp"); ts != fmt.Sprint(now.Add(61*time.Minute).Unix()) {
			t.Errorf("digest %s: webhook-timestamp %s", req.ID, ts)
		}
		var body struct {
			Data notify.Alert `json:"data"`
		}
		json.Unmarshal(req.Body, &body)
		if body.Data.Type != notify.TypeDigest || body.Data.Rule != "gone" {
			t.Errorf("digest: %s", req.Body)
		}
		if want := rules.DigestID("gone", body.Data.Group, "2026-03-02", "team"); req.ID != want {
			t.Errorf("digest of %q: id %s, want %s", body.Data.Group, req.ID, want)
		}
		for _, it := range body.Data.Digest {
			digests[body.Data.Group] = append(digests[body.Data.Group], fmt.Sprintf("%s %s->%s %s %s", it.Subject, it.From, it.To, it.Tier, it.Company))
		}
	}
	wantDigests := map[string][]string{
		"Paid Search":    {"c8 at_risk->dormant A Company c8", "c2 at_risk->dormant B Company c2"},
		"Organic Search": {"c7 dormant->lost D Company c7"},
	}
	if !reflect.DeepEqual(digests, wantDigests) {
		t.Errorf("digests %v, want %v", digests, wantDigests)
	}
	waitFor(t, "the digests recorded", 30*time.Second, func() bool { return finals(e.deliveries())["sent"] == 9 })
	if n := len(sales.requests()) + len(keys.requests()); n != 7 {
		t.Errorf("sales and keys got %d requests after the digest, want 7", n)
	}
}

// followUps reads alert_deliveries.follow_up of the final rows by alert id.
func (e *env) followUps() map[string]string {
	e.t.Helper()
	rows, err := e.conn.Query(e.t.Context(), `SELECT alert_id, follow_up FROM alert_deliveries WHERE final = 1`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, f string
		if err := rows.Scan(&id, &f); err != nil {
			e.t.Fatal(err)
		}
		out[id] = f
	}
	return out
}

func keysOf[V any](m map[string]V) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
