package notify

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// Verdict is what an answer means for the alert.
type Verdict int

const (
	// Delivered: the destination accepted it.
	Delivered Verdict = iota
	// Retry: a 5xx, a timeout, a 429 or a robot's rate-limit code; try again
	// later.
	Retry
	// Rejected: a 4xx (other than 429) or a robot's error code; retrying
	// would not help.
	Rejected
)

func (v Verdict) String() string {
	return [...]string{"delivered", "retry", "rejected"}[v]
}

// Judge reads an answer: the HTTP status, then for chat robots (which answer
// 200 with an error code in the body) their code. RetryAfter is the wait a
// 429 asked for (Retry-After in seconds or an HTTP date), zero if none.
func Judge(destType string, status int, header http.Header, body []byte, now time.Time) (v Verdict, retryAfter time.Duration) {
	switch {
	case status == http.StatusTooManyRequests:
		return Retry, parseRetryAfter(header.Get("Retry-After"), now)
	case status >= 500:
		return Retry, 0
	case status >= 400 || status < 200 || status >= 300:
		return Rejected, 0
	}
	switch destType {
	case rules.DestDingTalk, rules.DestWeCom:
		var r struct {
			ErrCode *int `json:"errcode"`
		}
		if json.Unmarshal(body, &r) != nil || r.ErrCode == nil {
			return Rejected, 0
		}
		switch *r.ErrCode {
		case 0:
			return Delivered, 0
		case 130101, 45009, -1: // DingTalk "send too fast", WeCom frequency limit, system busy
			return Retry, 0
		}
		return Rejected, 0
	case rules.DestFeishu:
		var r struct {
			Code       *int `json:"code"`
			StatusCode *int `json:"StatusCode"`
		}
		if json.Unmarshal(body, &r) != nil {
			return Rejected, 0
		}
		code := -2
		if r.Code != nil {
			code = *r.Code
		} else if r.StatusCode != nil {
			code = *r.StatusCode
		}
		switch code {
		case 0:
			return Delivered, 0
		case 11232, 9499: // frequency limit
			return Retry, 0
		}
		return Rejected, 0
	case rules.DestSlack:
		if strings.TrimSpace(string(body)) != "ok" {
			return Rejected, 0
		}
	}
	return Delivered, 0
}

func parseRetryAfter(s string, now time.Time) time.Duration {
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(s); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
