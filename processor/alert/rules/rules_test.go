package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

func testEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"TEST_SALES_URL":       "https://hooks.example.com/sales",
		"TEST_SALES_SECRET":    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"TEST_DINGTALK_URL":    "https://oapi.dingtalk.com/robot/send?access_token=abc",
		"TEST_DINGTALK_SECRET": "SEC123",
		"TEST_SLACK_URL":       "https://hooks.slack.com/services/T/B/X",
	}[name]
	return v, ok
}

func load(t *testing.T) *Set {
	t.Helper()
	s, err := Load("testdata/rules.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cartSignal(id string, value float64, tier string) *shoptrail.Signal {
	s := &shoptrail.Signal{V: 1, ID: id, Type: shoptrail.SignalCartAbandoned, Site: "shop-1", CustomerID: "c-" + id,
		Cart: &shoptrail.SignalCart{CartID: "cart-" + id, Value: value, AbandonmentID: "ab-" + id}}
	if tier != "" {
		s.Customer = &shoptrail.SignalCustomer{ID: "c-" + id, Tier: tier, Stage: shoptrail.StageFirstBuyer}
	}
	return s
}

func TestEvaluateCarts(t *testing.T) {
	s := load(t)
	f := func(sig *shoptrail.Signal, wantDests []string, wantFollowUp string) {
		t.Helper()
		ds := s.Evaluate(sig)
		var got []string
		for _, d := range ds {
			got = append(got, d.Destination.Name)
			if d.FollowUp != wantFollowUp {
				t.Errorf("signal %s: follow-up %q, want %q", sig.ID, d.FollowUp, wantFollowUp)
			}
			if d.AlertID != AlertID(sig.ID, d.Rule.Name, d.Destination.Name) || !strings.HasPrefix(d.AlertID, "msg_") {
				t.Errorf("signal %s: alert id %q not derived from signal, rule, destination", sig.ID, d.AlertID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(wantDests) {
			t.Errorf("signal %s: destinations %v, want %v", sig.ID, got, wantDests)
		}
	}
	// Below min_value, no tier: nothing.
	f(cartSignal("1", 499.99, ""), nil, "")
	// At min_value: to sales, automatic email below 1000.
	f(cartSignal("2", 500, ""), []string{"sales"}, FollowUpAutoEmail)
	// Middle value: a personal email.
	f(cartSignal("3", 1200, "C"), []string{"sales"}, FollowUpPersonalEmail)
	// Top value: a phone call.
	f(cartSignal("4", 6000, "D"), []string{"sales"}, FollowUpPhoneCall)
	// Tier B with a small cart matches by tier.
	f(cartSignal("5", 10, "B"), []string{"sales"}, FollowUpAutoEmail)
	// Tier A goes to the key accounts robot and always gets a call.
	f(cartSignal("6", 10, "A"), []string{"key-accounts"}, FollowUpPhoneCall)
	// Another site: nothing.
	other := cartSignal("7", 9999, "A")
	other.Site = "shop-2"
	f(other, nil, "")
	// A recovered cart is not an abandonment.
	rec := cartSignal("8", 9999, "A")
	rec.Type = shoptrail.SignalCartRecovered
	f(rec, nil, "")
}

func TestEvaluateStages(t *testing.T) {
	s := load(t)
	sig := func(to, tier string) *shoptrail.Signal {
		return &shoptrail.Signal{V: 1, ID: to + tier, Type: shoptrail.SignalStageChanged, Site: "shop-1", CustomerID: "c1",
			Customer:   &shoptrail.SignalCustomer{ID: "c1", Tier: tier, Stage: to},
			Transition: &shoptrail.SignalTransition{Kind: "stage", From: shoptrail.StageLoyal, To: to}}
	}
	if ds := s.Evaluate(sig(shoptrail.StageDormant, "B")); len(ds) != 1 || ds[0].Rule.Digest == nil || ds[0].Destination.Name != "team" {
		t.Errorf("dormant tier B: %+v", ds)
	}
	if ds := s.Evaluate(sig(shoptrail.StageDormant, "E")); len(ds) != 0 {
		t.Errorf("dormant tier E matched: %+v", ds)
	}
	if ds := s.Evaluate(sig(shoptrail.StageLoyal, "A")); len(ds) != 0 {
		t.Errorf("loyal matched: %+v", ds)
	}
}

// Tier changes: tiers names the tier moved into, from_tiers the one moved
// out of; stage rules do not see tier changes, nor tier rules stage changes.
func TestEvaluateTiers(t *testing.T) {
	s := load(t)
	f := func(from, to string, withCustomer bool, want ...string) {
		t.Helper()
		sig := &shoptrail.Signal{V: 1, ID: "t" + from + to, Type: shoptrail.SignalTierChanged, Site: "shop-1", CustomerID: "c1",
			Transition: &shoptrail.SignalTransition{Kind: "tier", From: from, To: to}}
		if withCustomer {
			sig.Customer = &shoptrail.SignalCustomer{ID: "c1", Tier: to, Stage: shoptrail.StageLoyal}
		}
		var got []string
		for _, d := range s.Evaluate(sig) {
			got = append(got, d.Rule.Name+">"+d.Destination.Name)
			if d.FollowUp != "" || d.Subject != "c1" {
				t.Errorf("%s -> %s: decision %+v", from, to, d)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s -> %s: decisions %v, want %v", from, to, got, want)
		}
	}
	// Up into A: the new key account goes to the key-accounts robot.
	f("B", "A", true, "new-key-accounts>key-accounts")
	// A first tier (none before) of A alerts too; without a customer view
	// the tier moved into routes.
	f("", "A", false, "new-key-accounts>key-accounts")
	// Down from A or B to C..E: the slipping rule (a digest).
	f("A", "C", true, "key-accounts-slipping>sales")
	f("B", "E", true, "key-accounts-slipping>sales")
	// Neither: C -> D, or a first tier of C.
	f("C", "D", true)
	f("", "C", true)
	// A tier change is not a stage change, nor the reverse.
	st := &shoptrail.Signal{V: 1, ID: "st", Type: shoptrail.SignalStageChanged, Site: "shop-1", CustomerID: "c1",
		Customer:   &shoptrail.SignalCustomer{ID: "c1", Tier: "A", Stage: shoptrail.StageDormant},
		Transition: &shoptrail.SignalTransition{Kind: "stage", From: shoptrail.StageLoyal, To: shoptrail.StageDormant}}
	for _, d := range s.Evaluate(st) {
		if d.Rule.Type != TypeCustomerStage {
			t.Errorf("stage change matched %s", d.Rule.Name)
		}
	}
	if r := s.Sites["shop-1"].Rules[3]; r.Digest == nil || r.Digest.GroupBy != GroupByChannel {
		t.Errorf("slipping rule's digest: %+v", r.Digest)
	}
}

func TestHoldOutShareAndDeterminism(t *testing.T) {
	n, held := 20000, 0
	for i := range n {
		subj := fmt.Sprintf("c%d", i) // short, similar ids: the hash must still spread them
		h := HeldOut("shop-1", "valuable-carts", subj, 0.1)
		if h != HeldOut("shop-1", "valuable-carts", subj, 0.1) {
			t.Fatal("hold-out not deterministic")
		}
		if h {
			held++
		}
	}
	if share := float64(held) / float64(n); share < 0.09 || share > 0.11 {
		t.Errorf("held-out share %.4f, want about 0.10", share)
	}
	if HeldOut("s", "r", "x", 0) {
		t.Error("share 0 held a subject out")
	}
}

func TestQuietHours(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	q := &QuietHours{From: 22 * 60, To: 8 * 60}
	f := func(local string, want string) {
		t.Helper()
		in, _ := time.ParseInLocation("2006-01-02 15:04", local, sh)
		got := q.Next(in.UTC(), sh).In(sh).Format("2006-01-02 15:04")
		if got != want {
			t.Errorf("%s: next %s, want %s", local, got, want)
		}
	}
	f("2026-03-01 21:59", "2026-03-01 21:59") // before: now
	f("2026-03-01 22:00", "2026-03-02 08:00") // evening: next morning
	f("2026-03-02 03:30", "2026-03-02 08:00") // night: this morning
	f("2026-03-02 08:00", "2026-03-02 08:00") // over
	day := &QuietHours{From: 12 * 60, To: 13 * 60}
	in, _ := time.ParseInLocation("2006-01-02 15:04", "2026-03-02 12:30", sh)
	if got := day.Next(in, sh).In(sh).Format("15:04"); got != "13:00" {
		t.Errorf("lunch quiet: %s", got)
	}
}

func TestInvalidFiles(t *testing.T) {
	f := func(yaml, wantErr string) {
		t.Helper()
		_, err := Parse([]byte(yaml), testEnv)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("error %v, want one containing %q", err, wantErr)
		}
	}
	good := "destinations:\n  s:\n    type: slack\n    url_env: TEST_SLACK_URL\n"
	// Not YAML.
	f("sites: [", "cannot parse rules")
	// A typo in a key.
	f(good+"sites:\n  x:\n    rules:\n      - name: a\n        type: cart_abandoned\n        min_valeu: 3\n        route: {to: [s]}\n", "min_valeu")
	// Unknown destination.
	f(good+"sites:\n  x:\n    rules:\n      - {name: a, type: cart_abandoned, route: {to: [nope]}}\n", `unknown destination "nope"`)
	// Unknown stage.
	f(good+"sites:\n  x:\n    rules:\n      - {name: a, type: customer_stage, stages: [sleepy], route: {to: [s]}}\n", `unknown stage "sleepy"`)
	// A tier rule with neither tiers nor from_tiers would alert on every
	// first tier of every new buyer.
	f(good+"sites:\n  x:\n    rules:\n      - {name: a, type: customer_tier, route: {to: [s]}}\n", "customer_tier needs tiers")
	// from_tiers on another type.
	f(good+"sites:\n  x:\n    rules:\n      - {name: a, type: customer_stage, stages: [lost], from_tiers: [A], route: {to: [s]}}\n", "from_tiers belongs to customer_tier")
	// Bad hold-out.
	f(good+"sites:\n  x:\n    rules:\n      - {name: a, type: cart_abandoned, hold_out: 1.5, route: {to: [s]}}\n", "hold_out")
	// Unknown time zone.
	f(good+"sites:\n  x:\n    timezone: Mars/Base\n    rules:\n      - {name: a, type: cart_abandoned, route: {to: [s]}}\n", "unknown timezone")
	// Missing environment variable.
	f("destinations:\n  s: {type: slack, url_env: NOT_SET}\nsites:\n  x:\n    rules:\n      - {name: a, type: cart_abandoned, route: {to: [s]}}\n", "NOT_SET is not set")
	// A webhook without a proper secret.
	f("destinations:\n  w: {type: webhook, url: 'https://x.example/h', secret_env: TEST_DINGTALK_SECRET}\nsites:\n  x:\n    rules:\n      - {name: a, type: cart_abandoned, route: {to: [w]}}\n", "whsec_")
	// A non-http URL; the URL itself is not in the message.
	_, err := Parse([]byte("destinations:\n  s: {type: slack, url: 'file:///etc/passwd'}\nsites:\n  x:\n    rules:\n      - {name: a, type: cart_abandoned, route: {to: [s]}}\n"), testEnv)
	if err == nil || strings.Contains(err.Error(), "passwd") || !strings.Contains(err.Error(), "not an http(s) URL") {
		t.Errorf("file URL: %v", err)
	}
	// Secrets never appear in errors.
	_, err = Parse([]byte("destinations:\n  s: {type: slack, url_env: TEST_SLACK_URL, rate_limit: 'lots'}\nsites:\n  x:\n    rules:\n      - {name: a, type: cart_abandoned, route: {to: [s]}}\n"), testEnv)
	if err == nil || strings.Contains(err.Error(), "hooks.slack.com") {
		t.Errorf("rate limit error: %v", err)
	}
}

func TestSecretFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "url")
	os.WriteFile(p, []byte("https://hooks.slack.com/services/A/B/C\n"), 0o600)
	s, err := Parse([]byte("destinations:\n  s: {type: slack, url_file: "+p+"}\nsites:\n  x:\n    rules:\n      - {name: a, type: cart_abandoned, route: {to: [s]}}\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Destinations["s"].URL; got != "https://hooks.slack.com/services/A/B/C" {
		t.Errorf("url %q", got)
	}
	if str := s.Destinations["s"].String(); strings.Contains(str, "hooks") {
		t.Errorf("String() shows the URL: %s", str)
	}
}
