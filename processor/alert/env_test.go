package alert_test

import (
	"os"
	"testing"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

func lookupEnv(k string) (string, bool) { return os.LookupEnv(k) }
func setEnv(k, v string)                { os.Setenv(k, v) }
func testenvIntegration(t *testing.T)   { testenv.Integration(t) }

func childMain() bool { return false }
