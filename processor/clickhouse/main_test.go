package clickhouse_test

import (
	"testing"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
