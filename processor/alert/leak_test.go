package alert_test

import (
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// An alerter that ran (delivered, retried, claimed rate-limit slots, read
// and wrote ClickHouse) leaves no goroutine behind when it stops.
func TestNoGoroutinesLeftBehind(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	fail := true
	rc.setAnswer(func(*http.Request, int) (int, http.Header) {
		if fail {
			fail = false
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	file := e.rules(rateRules(rc.srv.URL))
	before := goleak.IgnoreCurrent()
	r := e.start(e.config(file, "a"), nil, nil)
	e.produce(cart("l1", "c1", 100, "C", time.Now()), cart("l2", "c2", 100, "C", time.Now()))
	waitFor(t, "both sent", 60*time.Second, func() bool { return finals(e.deliveries())["sent"] == 2 })
	r.stop(t)
	rc.srv.CloseClientConnections()
	goleak.VerifyNone(t, before)
}
