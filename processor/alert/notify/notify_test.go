package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
	"github.com/shoptrail/shoptrail/processor/alert/safehttp"
)

var update = flag.Bool("update", false, "rewrite the golden payloads in testdata")

const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func sampleAlert() *Alert {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	return &Alert{
		ID: rules.AlertID("sig-1", "valuable-carts", "sales"), Type: TypeCartAbandoned, Rule: "valuable-carts",
		Site: "shop-1", At: at, Subject: "c-42", FollowUp: rules.FollowUpPersonalEmail,
		Customer: &shoptrail.SignalCustomer{ID: "c-42", Name: "Li Wei", Company: "Wei Components", Email: "li@wei.example",
			Phone: "+86 10 5555 0100", Stage: shoptrail.StageSecondBuyer, Tier: "B", OrderCount: 2, NetRevenue: 3120.5,
			Currency: "CNY", LastOrderAt: at.AddDate(0, -2, 0)},
		Cart: &shoptrail.SignalCart{CartID: "cart-9", Value: 1280, Currency: "CNY", ItemCount: 3, Step: "checkout",
			Items: []shoptrail.SignalCartItem{
				{ProductID: "p-1", Name: "STM32F407 board", Price: 400, Quantity: 2},
				{ProductID: "p-2", Name: "OLED 1.3in", Price: 480, Quantity: 1}},
			Channel: "Organic Search", Source: "baidu", AbandonmentID: "ab-9", LastActivityAt: at.Add(-time.Hour), AbandonedAt: at},
	}
}

// captured is one request a receiver got.
type captured struct {
	header http.Header
	query  url.Values
	body   []byte
}

// receive starts a real HTTP listener answering with answer and returns
// its URL and the requests it got.
func receive(t *testing.T, answer string) (string, chan captured) {
	t.Helper()
	ch := make(chan captured, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- captured{r.Header.Clone(), r.URL.Query(), b}
		w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

func send(t *testing.T, d *rules.Destination, a *Alert, now time.Time) (captured, Verdict) {
	t.Helper()
	req, err := Request(d, a, now)
	if err != nil {
		t.Fatal(err)
	}
	c := safehttp.New(safehttp.Options{AllowLoopback: true})
	ans, err := c.Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := Judge(d.Type, ans.Status, ans.Header, ans.Body, now)
	return captured{}, v
}

// golden compares a payload with testdata/name (rewritten by -update),
// after indenting it so a diff is readable.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: body is not JSON: %v", name, err)
	}
	got, _ := json.MarshalIndent(v, "", "  ")
	p := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(p, append(got, '\n'), 0o644)
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(append(got, '\n')) != string(want) {
		t.Errorf("%s: payload differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestWebhookStandardWebhooks(t *testing.T) {
	u, ch := receive(t, "")
	now := time.Now()
	d := &rules.Destination{Name: "sales", Type: rules.DestWebhook, URL: u + "/hooks/shoptrail", Secret: webhookSecret}
	a := sampleAlert()
	if _, v := send(t, d, a, now); v != Delivered {
		t.Fatalf("verdict %v", v)
	}
	got := <-ch
	// Verified by the Standard Webhooks reference library, as a receiver would.
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Fatalf("Standard Webhooks verification failed: %v", err)
	}
	if got.header.Get("webhook-id") != a.ID || got.header.Get("webhook-timestamp") != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("headers %v", got.header)
	}
	// A changed body fails verification.
	tampered := append([]byte{}, got.body...)
	tampered[len(tampered)-2] = ' '
	if wh.Verify(tampered, got.header) == nil {
		t.Error("tampered body verified")
	}
	// The exact payload, at a fixed time.
	req, _ := Request(d, a, time.Date(2026, 3, 2, 9, 31, 0, 0, time.UTC))
	b, _ := io.ReadAll(req.Body)
	golden(t, "webhook.json", b)
}

func TestSlack(t *testing.T) {
	u, ch := receive(t, "ok")
	d := &rules.Destination{Name: "team", Type: rules.DestSlack, URL: u + "/services/T0/B0/XYZ"}
	if _, v := send(t, d, sampleAlert(), time.Now()); v != Delivered {
		t.Fatalf("verdict %v", v)
	}
	got := <-ch
	golden(t, "slack.json", got.body)
	// Slack's text errors are rejections.
	if v, _ := Judge(rules.DestSlack, 400, nil, []byte("invalid_payload"), time.Now()); v != Rejected {
		t.Errorf("invalid_payload: %v", v)
	}
}

func TestDingTalkSigned(t *testing.T) {
	u, ch := receive(t, `{"errcode":0,"errmsg":"ok"}`)
	const secret = "SEC0123456789abcdef"
	now := time.Now()
	d := &rules.Destination{Name: "key", Type: rules.DestDingTalk, URL: u + "/robot/send?access_token=TOKEN", Secret: secret}
	if _, v := send(t, d, sampleAlert(), now); v != Delivered {
		t.Fatalf("verdict %v", v)
	}
	got := <-ch
	// As DingTalk documents it: timestamp in ms within an hour; sign =
	// base64(HMAC-SHA256(secret, timestamp+"\n"+secret)), URL-encoded.
	ts := got.query.Get("timestamp")
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Hour {
		t.Fatalf("timestamp %q", ts)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "\n" + secret))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); got.query.Get("sign") != want {
		t.Errorf("sign %q, want %q", got.query.Get("sign"), want)
	}
	if got.query.Get("access_token") != "TOKEN" {
		t.Errorf("access_token lost: %v", got.query)
	}
	golden(t, "dingtalk.json", got.body)
	// Robot error codes in a 200 answer.
	f := func(body string, want Verdict) {
		t.Helper()
		if v, _ := Judge(rules.DestDingTalk, 200, nil, []byte(body), now); v != want {
			t.Errorf("%s: %v, want %v", body, v, want)
		}
	}
	f(`{"errcode":310000,"errmsg":"sign not match"}`, Rejected)
	f(`{"errcode":130101,"errmsg":"send too fast"}`, Retry)
}

func TestWeCom(t *testing.T) {
	u, ch := receive(t, `{"errcode":0,"errmsg":"ok"}`)
	d := &rules.Destination{Name: "wc", Type: rules.DestWeCom, URL: u + "/cgi-bin/webhook/send?key=KEY"}
	if _, v := send(t, d, sampleAlert(), time.Now()); v != Delivered {
		t.Fatalf("verdict %v", v)
	}
	got := <-ch
	if got.query.Get("key") != "KEY" {
		t.Errorf("key lost")
	}
	golden(t, "wecom.json", got.body)
	if v, _ := Judge(rules.DestWeCom, 200, nil, []byte(`{"errcode":45009,"errmsg":"api freq out of limit"}`), time.Now()); v != Retry {
		t.Errorf("45009: %v", v)
	}
}

func TestFeishuSigned(t *testing.T) {
	u, ch := receive(t, `{"code":0,"msg":"success","data":{}}`)
	const secret = "feishu-secret-xyz"
	now := time.Now()
	d := &rules.Destination{Name: "fs", Type: rules.DestFeishu, URL: u + "/open-apis/bot/v2/hook/abc", Secret: secret}
	if _, v := send(t, d, sampleAlert(), now); v != Delivered {
		t.Fatalf("verdict %v", v)
	}
	got := <-ch
	var body struct {
		Timestamp string `json:"timestamp"`
		Sign      string `json:"sign"`
	}
	json.Unmarshal(got.body, &body)
	// As Feishu documents it: the key is timestamp+"\n"+secret, the message
	// empty; timestamp in seconds within an hour.
	sec, err := strconv.ParseInt(body.Timestamp, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Hour {
		t.Fatalf("timestamp %q", body.Timestamp)
	}
	m := hmac.New(sha256.New, []byte(body.Timestamp+"\n"+secret))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); body.Sign != want {
		t.Errorf("sign %q, want %q", body.Sign, want)
	}
	req, _ := Request(d, sampleAlert(), time.Date(2026, 3, 2, 9, 31, 0, 0, time.UTC))
	b, _ := io.ReadAll(req.Body)
	golden(t, "feishu.json", b)
	if v, _ := Judge(rules.DestFeishu, 200, nil, []byte(`{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`), now); v != Rejected {
		t.Errorf("19021: %v", v)
	}
}

func TestJudgeHTTP(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f := func(status int, retryAfter string, want Verdict, wantWait time.Duration) {
		t.Helper()
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		v, wait := Judge(rules.DestWebhook, status, h, nil, now)
		if v != want || wait != wantWait {
			t.Errorf("%d %q: %v %v, want %v %v", status, retryAfter, v, wait, want, wantWait)
		}
	}
	f(200, "", Delivered, 0)
	f(204, "", Delivered, 0)
	f(500, "", Retry, 0)
	f(503, "", Retry, 0)
	f(400, "", Rejected, 0)
	f(404, "", Rejected, 0)
	f(301, "", Rejected, 0)
	f(429, "7", Retry, 7*time.Second)
	f(429, now.Add(90*time.Second).Format(http.TimeFormat), Retry, 90*time.Second)
	f(429, "", Retry, 0)
}
