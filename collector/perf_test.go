package collector

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestWriteKeyFromBasicAuth: the write key is read from the Authorization
// header by a lookup of the exact header an SDK sends for a known key, and
// by decoding any other (a password, another spelling of the scheme, an
// unknown key), with the same outcome.
func TestWriteKeyFromBasicAuth(t *testing.T) {
	sites, err := ParseSites("shop=k1|k2,other=k3")
	if err != nil {
		t.Fatal(err)
	}
	s, rec := newTestServer(t, Config{Sites: sites})
	h := s.Handler()
	body := []byte(`{"event":"E","anonymousId":"a"}`)
	basic := func(userpass string) string { return base64.StdEncoding.EncodeToString([]byte(userpass)) }
	f := func(auth string, wantCode int, wantSite string) {
		t.Helper()
		before := len(rec.topic("shoptrail.events"))
		a := do(h, "POST", "/v1/track", body, "Authorization", auth)
		if a.code != wantCode {
			t.Errorf("Authorization %q: %d, want %d (%s)", auth, a.code, wantCode, a.body)
			return
		}
		evs := rec.topic("shoptrail.events")
		if wantSite == "" {
			if len(evs) != before {
				t.Errorf("Authorization %q: an event stored", auth)
			}
			return
		}
		if len(evs) != before+1 || !bytes.Contains(evs[len(evs)-1].Value, []byte(`"site":"`+wantSite+`"`)) {
			t.Errorf("Authorization %q: event not stored for site %q", auth, wantSite)
		}
	}
	f("Basic "+basic("k1:"), 200, "shop")        // analytics.js: the key, no password
	f("Basic "+basic("k2:"), 200, "shop")        // a rotated key
	f("Basic "+basic("k3:"), 200, "other")       // another site's
	f("Basic "+basic("k3:secret"), 200, "other") // a password is ignored
	f("basic "+basic("k1:"), 200, "shop")        // the scheme in lower case
	f("Basic "+basic("nope:"), 401, "")          // an unknown key
	f("Basic "+basic(":k1"), 401, "")            // the key as the password is no key
	f("Bearer k1", 401, "")                      // not Basic
}

// TestSingleEventAllocations: a single-event request from a browser
// allocates no more than measured: 5 with Kafka answering at once, the
// test's body reader included (CORS headers, the anonymized IP); 12 before
// the write key lookup, the reused produce deadline, the tiered free lists
// and the plain body read. The collector's cost is mostly per request, and
// each allocation is paid on every event and again by the GC.
func TestSingleEventAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	s, err := NewWithOptions(Config{IPRate: -1, KeyRate: -1}, Options{Producer: nopProducer{}})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	body := []byte(benchEvent(1))
	r := httptest.NewRequest("POST", "/v1/track", nil)
	r.SetBasicAuth("dev", "")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "https://shop.example")
	r.RemoteAddr = "192.0.2.7:1234"
	w := &discardWriter{h: http.Header{}}
	run := func() {
		r.Body = readCloser{bytes.NewReader(body)}
		r.ContentLength = int64(len(body))
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	run()
	if got := testing.AllocsPerRun(200, run); got > 5 {
		t.Errorf("%v allocations per single-event request, want at most 5", got)
	}
}

// raceEnabled is set under the race detector (race_test.go).
var raceEnabled bool
