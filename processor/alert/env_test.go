package alert_test

import (
	"os"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

func lookupEnv(k string) (string, bool) { return os.LookupEnv(k) }
func setEnv(k, v string)                { os.Setenv(k, v) }
func testenvIntegration(t *testing.T)   { testenv.Integration(t) }

// recoveryQuery expands the named query alert_recovery_rate for a range.
func recoveryQuery(t *testing.T, from, to time.Time) string {
	t.Helper()
	q, err := analytics.Get("alert_recovery_rate")
	if err != nil {
		t.Fatal(err)
	}
	s, err := q.Expand(analytics.Params{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
