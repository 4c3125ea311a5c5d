package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestPoisonRows makes ClickHouse refuse some rows for their data, the way
// a parse or type error does (a materialized column that fails to parse
// for them: exception code 6), next to a message that is not JSON. The
// good rows are stored, the bad ones are in dead_letters with the error,
// and the offsets move on.
func TestPoisonRows(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, q := range []string{
		"ALTER TABLE events ADD COLUMN poison UInt32 MATERIALIZED toUInt32(if(page_path = '/poison', 'x', '0'))",
		"ALTER TABLE sessions ADD COLUMN poison UInt32 MATERIALIZED toUInt32(if(landing_page = '/poison-landing', 'x', '0'))",
	} {
		if err := e.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var stream []*shoptrail.Event
	for i := range 300 {
		path := "/ok"
		switch i {
		case 17, 230:
			path = "/poison"
		case 100:
			path = "/poison-landing"
		}
		stream = append(stream, page(fmt.Sprintf("p%d", i), fmt.Sprintf("m-p%d-1", i), at(float64(i)/10), path))
	}
	stream = append(stream, nil)
	stream = append(stream, tailEvents(site, at(48*60))...)
	e.produce(stream)
	cfg := e.config("g-" + testenv.RandomSuffix())
	e.start(cfg, e.ch)
	e.waitDone(cfg.GroupID, 60*time.Second)
	db := e.ch.Database
	check := func(what, q, want string) {
		t.Helper()
		if got := e.query(db, q+" FORMAT TSV"); got != want {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	check("events stored", "SELECT count() FROM events FINAL", "302\n") // 300 + 4 tail events - 2 refused
	check("dead letters", "SELECT table_name, row_key, error_code, error LIKE '%Cannot parse string%', payload LIKE '%\"path\":\"/poison%' "+
		"FROM dead_letters FINAL WHERE table_name != '' ORDER BY table_name, row_key",
		fmt.Sprintf("events\tm-p17-1\t6\t1\t1\nevents\tm-p230-1\t6\t1\t1\nsessions\t%s\t6\t1\t0\n", sid("m-p100-1")))
	check("undecodable message", "SELECT count() FROM dead_letters FINAL WHERE table_name = '' AND error LIKE 'cannot decode event:%'", "1\n")
	check("sessions stored", "SELECT count() FROM sessions FINAL", "299\n")
}
