package analytics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/internal/chdb"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backend runs SQL on one ClickHouse version and returns rows as strings
// (numbers as ClickHouse prints them, NULL as "NULL").
type backend struct {
	name  string
	exec  func(sql string) error
	query func(sql string) (string, error) // JSONEachRow
}

func (b backend) mustExec(t *testing.T, sql string) {
	t.Helper()
	if err := b.exec(sql); err != nil {
		t.Fatalf("%s: %v\n%s", b.name, err, sql)
	}
}

// migrate applies the migrations of ms older than version (before) or the
// others (!before): a test writes rows under the old schema in between, as
// a database that lived before the migration.
func (b backend) migrate(t *testing.T, ms []clickhouse.Migration, version int, before bool) {
	t.Helper()
	for _, m := range ms {
		if (m.Version < version) != before {
			continue
		}
		for _, s := range m.Statements {
			b.mustExec(t, s)
		}
	}
}

// rows runs a named query with p and returns its rows.
func (b backend) rows(t *testing.T, name string, p analytics.Params) []map[string]string {
	t.Helper()
	q, err := analytics.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	sql, err := q.Expand(p)
	if err != nil {
		t.Fatal(err)
	}
	return b.rowsSQL(t, sql)
}

// rowsSQL runs sql and returns its rows.
func (b backend) rowsSQL(t *testing.T, sql string) []map[string]string {
	t.Helper()
	out, err := b.query(sql)
	if err != nil {
		t.Fatalf("%s: %v\n%s", b.name, err, sql)
	}
	var rows []map[string]string
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s: %v in %q", b.name, err, out)
		}
		r := map[string]string{}
		for k, v := range m {
			switch v := v.(type) {
			case nil:
				r[k] = "NULL"
			case json.Number:
				r[k] = v.String()
			case string:
				r[k] = v
			default:
				r[k] = fmt.Sprint(v)
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// server18 is a fresh database on Debian's ClickHouse 18.16 with every
// migration applied, queried over HTTP.
func server18(t *testing.T) backend {
	cfg, _ := testenv.Database(t)
	return http18(t, cfg.Database)
}

// server18Raw is an empty database on ClickHouse 18.16, no migrations.
func server18Raw(t *testing.T) backend {
	db := "test_" + testenv.RandomSuffix()
	b := http18(t, "default")
	b.mustExec(t, "CREATE DATABASE "+db)
	t.Cleanup(func() { b.exec("DROP DATABASE IF EXISTS " + db) })
	return http18(t, db)
}

func http18(t *testing.T, database string) backend {
	srv := testenv.ClickHouse(t)
	post := func(sql, format string) (string, error) {
		u := "http://" + srv.HTTPAddr + "/?" + url.Values{"database": {database}}.Encode()
		if format != "" {
			sql += "\nFORMAT " + format
		}
		resp, err := http.Post(u, "text/plain", bytes.NewBufferString(sql))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		return string(body), nil
	}
	return backend{
		name:  "ClickHouse 18.16",
		exec:  func(sql string) error { _, err := post(sql, ""); return err },
		query: func(sql string) (string, error) { return post(sql, "JSONEachRow") },
	}
}

// chdb26 is chDB (current ClickHouse) with every migration applied.
func chdb26(t *testing.T) backend {
	s := testenv.ChDB(t)
	return chdbBackend(s)
}

// chdb26Raw is chDB with an empty database, no migrations.
func chdb26Raw(t *testing.T) backend {
	testenv.Integration(t)
	s, err := chdb.Open(t.TempDir())
	if err != nil {
		t.Fatalf("cannot open chDB: %v", err)
	}
	t.Cleanup(s.Close)
	b := chdbBackend(s)
	b.mustExec(t, "CREATE DATABASE shoptrail")
	b.mustExec(t, "USE shoptrail")
	return b
}

func chdbBackend(s *chdb.Session) backend {
	return backend{
		name: "chDB 26",
		exec: func(sql string) error { _, err := s.Query(sql, "TSV"); return err },
		query: func(sql string) (string, error) {
			return s.Query(sql, "JSONEachRow")
		},
	}
}

// eachBackend runs f on ClickHouse 18.16 and on chDB 26.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Run("18.16", func(t *testing.T) { f(t, server18(t)) })
	t.Run("26", func(t *testing.T) { f(t, chdb26(t)) })
}

// eachBackendRaw runs f on empty databases of ClickHouse 18.16 and chDB 26.
func eachBackendRaw(t *testing.T, f func(t *testing.T, b backend)) {
	t.Run("18.16", func(t *testing.T) { f(t, server18Raw(t)) })
	t.Run("26", func(t *testing.T) { f(t, chdb26Raw(t)) })
}
