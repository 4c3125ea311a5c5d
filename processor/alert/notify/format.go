package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// Request builds the HTTP request of one attempt to deliver a to d at now
// (the time of the attempt: it is signed). The request has no context;
// the caller adds one.
func Request(d *rules.Destination, a *Alert, now time.Time) (*http.Request, error) {
	var (
		body any
		u    = d.URL
		hdr  = http.Header{}
	)
	switch d.Type {
	case rules.DestWebhook:
		raw, err := webhookJSON(a.Type, now.UTC().Truncate(time.Second), a)
		if err != nil {
			return nil, fmt.Errorf("cannot encode alert %s: %w", a.ID, err)
		}
		key, err := webhookKey(d.Secret)
		if err != nil {
			return nil, err
		}
		ts := strconv.FormatInt(now.Unix(), 10)
		// Canonical keys set directly: Header.Set would canonicalize
		// them on every request.
		hdr["Webhook-Id"] = []string{a.ID}
		hdr["Webhook-Timestamp"] = []string{ts}
		hdr["Webhook-Signature"] = []string{"v1," + key.sign(a.ID, ts, raw)}
		return newRequest(u, raw, hdr)
	case rules.DestSlack:
		body = slackMessage(a)
	case rules.DestWeCom:
		body = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": markdown(a, "### ")}}
	case rules.DestDingTalk:
		body = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": a.Title(), "text": markdown(a, "#### ")}}
		if d.Secret != "" {
			ts := strconv.FormatInt(now.UnixMilli(), 10)
			pu, err := url.Parse(u)
			if err != nil {
				return nil, errors.New("cannot parse the destination URL")
			}
			q := pu.Query()
			q.Set("timestamp", ts)
			q.Set("sign", SignDingTalk(d.Secret, ts))
			pu.RawQuery = q.Encode()
			u = pu.String()
		}
	case rules.DestFeishu:
		m := feishuMessage(a)
		if d.Secret != "" {
			m.Timestamp = strconv.FormatInt(now.Unix(), 10)
			m.Sign = SignFeishu(d.Secret, m.Timestamp)
		}
		body = m
	default:
		return nil, fmt.Errorf("unknown destination type %q", d.Type)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("cannot encode alert %s: %w", a.ID, err)
	}
	// Chat robots ignore it, but a receiver behind a proxy can still dedupe.
	hdr.Set("webhook-id", a.ID)
	return newRequest(u, raw, hdr)
}

func newRequest(u string, body []byte, hdr http.Header) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		// The error would quote the URL, which may hold a token.
		return nil, errors.New("cannot build a request to the destination URL")
	}
	hdr["Content-Type"] = []string{"application/json"}
	hdr["User-Agent"] = []string{"shoptrail-alerter"}
	req.Header = hdr
	return req, nil
}

// signingKey is a decoded webhook secret with a pool of HMACs keyed by it:
// hmac.New hashes the key and allocates two SHA-256 states, per request.
type signingKey struct{ pool sync.Pool }

// keys caches the signing keys by secret (a handful: one per webhook
// destination, a new one after a rules reload changes a secret).
var keys sync.Map // secret -> *signingKey

func webhookKey(secret string) (*signingKey, error) {
	if k, ok := keys.Load(secret); ok {
		return k.(*signingKey), nil
	}
	key, err := rules.WebhookKey(secret)
	if err != nil {
		return nil, err
	}
	k := &signingKey{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
	actual, _ := keys.LoadOrStore(secret, k)
	return actual.(*signingKey), nil
}

// sign is SignWebhook with a pooled HMAC.
func (k *signingKey) sign(id, ts string, body []byte) string {
	m := k.pool.Get().(hash.Hash)
	defer k.pool.Put(m)
	m.Reset()
	var pre [128]byte
	m.Write(append(append(append(append(pre[:0], id...), '.'), ts...), '.'))
	m.Write(body)
	var sum [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(m.Sum(sum[:0]))
}

// webhookBody is the Standard Webhooks payload: type, timestamp, data.
type webhookBody struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      *Alert    `json:"data"`
}

// SignWebhook is the Standard Webhooks v1 signature: base64 of
// HMAC-SHA256(key, id + "." + timestamp + "." + body).
func SignWebhook(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignDingTalk is the DingTalk custom robot signature: base64 of
// HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret); the caller
// URL-encodes it as the sign query parameter.
func SignDingTalk(secret, tsMillis string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(tsMillis + "\n" + secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignFeishu is the Feishu/Lark custom bot signature: base64 of
// HMAC-SHA256(key = timestamp + "\n" + secret, msg = empty).
func SignFeishu(secret, tsSeconds string) string {
	m := hmac.New(sha256.New, []byte(tsSeconds+"\n"+secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func markdown(a *Alert, heading string) string {
	var b strings.Builder
	b.WriteString(heading + a.Title() + "\n")
	for _, l := range a.Lines() {
		if strings.HasPrefix(l, "- ") {
			b.WriteString(l + "\n")
			continue
		}
		label, v, _ := strings.Cut(l, ": ")
		b.WriteString("**" + label + "**: " + v + "\n")
	}
	return b.String()
}

func slackMessage(a *Alert) map[string]any {
	var b strings.Builder
	for _, l := range a.Lines() {
		if strings.HasPrefix(l, "- ") {
			b.WriteString("• " + l[2:] + "\n")
			continue
		}
		label, v, _ := strings.Cut(l, ": ")
		b.WriteString("*" + label + "*: " + v + "\n")
	}
	return map[string]any{
		"text": a.Title(),
		"blocks": []any{
			map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate(a.Title(), 150)}},
			map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncate(b.String(), 3000)}},
			map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": "shoptrail · " + a.Site + " · " + a.Rule + " · " + a.ID}}},
		},
	}
}

// truncate cuts s to n runes (Slack's block limits).
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

type feishuText struct {
	Tag  string `json:"tag"`
	Text string `json:"text"`
}

type feishuMsg struct {
	Timestamp string `json:"timestamp,omitempty"`
	Sign      string `json:"sign,omitempty"`
	MsgType   string `json:"msg_type"`
	Content   struct {
		Post map[string]feishuPost `json:"post"`
	} `json:"content"`
}

type feishuPost struct {
	Title   string         `json:"title"`
	Content [][]feishuText `json:"content"`
}

func feishuMessage(a *Alert) *feishuMsg {
	m := &feishuMsg{MsgType: "post"}
	p := feishuPost{Title: a.Title()}
	for _, l := range a.Lines() {
		p.Content = append(p.Content, []feishuText{{Tag: "text", Text: l}})
	}
	m.Content.Post = map[string]feishuPost{"zh_cn": p}
	return m
}
