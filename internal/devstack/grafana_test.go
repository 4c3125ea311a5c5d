package devstack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeGrafanaEnv, set in a fake Grafana's environment, makes this test
// binary act as one: "race" exits on Grafana's race creating the main
// organization on its first start(s), as many as the number after it, then
// serves /api/health; "other" exits on another error.
const fakeGrafanaEnv = "SHOPTRAIL_FAKE_GRAFANA"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeGrafanaEnv); mode != "" {
		os.Exit(fakeGrafana(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeGrafana is `grafana server --homepath H --config INI`: it counts its
// starts in a file beside INI and, by mode, exits or serves the port INI
// names.
func fakeGrafana(mode string, args []string) int {
	ini := ""
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			ini = args[i+1]
		}
	}
	conf, err := os.ReadFile(ini)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	counter := filepath.Join(filepath.Dir(ini), "fake-starts")
	prev, _ := os.ReadFile(counter)
	starts := len(prev) + 1
	os.WriteFile(counter, append(prev, '.'), 0o644)
	kind, n, _ := strings.Cut(mode, ":")
	failures, _ := strconv.Atoi(n)
	switch {
	case kind == "other":
		fmt.Println("Error: ✗ listen tcp: address already in use")
		return 1
	case starts <= failures:
		fmt.Println(`logger=sqlstore level=error msg="failed to insert organization with provided id" org_id=1 err="UNIQUE constraint failed: org.id"`)
		fmt.Println("Error: ✗ failed to create default organization: UNIQUE constraint failed: org.id")
		return 1
	}
	port := regexp.MustCompile(`(?m)^http_port = (\d+)$`).FindSubmatch(conf)
	if port == nil {
		fmt.Println("no http_port in", ini)
		return 2
	}
	http.HandleFunc("/api/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"database":"ok"}`) })
	fmt.Println(http.ListenAndServe("127.0.0.1:"+string(port[1]), nil))
	return 1
}

// fakeGrafanaHome returns a Grafana home whose bin/grafana runs this test
// binary as a fake Grafana.
func fakeGrafanaHome(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\"\n", self)
	if err := os.WriteFile(filepath.Join(home, "bin", "grafana"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return home
}

// Grafana exiting on its race creating the main organization (a first
// start on a new database, grafana/grafana pull request 68644) is started
// again, at most maxGrafanaStarts times; any other exit is an error at once.
func TestStartGrafanaRetriesOrgRace(t *testing.T) {
	home := fakeGrafanaHome(t)
	for _, c := range []struct {
		mode   string
		ok     bool
		starts int
	}{
		{"race:1", true, 2},
		{"race:2", true, 3},
		{"race:9", false, maxGrafanaStarts},
		{"other", false, 1},
	} {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		g, err := StartGrafana(ctx, GrafanaConfig{Home: home, Dir: dir, Env: []string{fakeGrafanaEnv + "=" + c.mode}, StartTimeout: 30 * time.Second})
		cancel()
		if g != nil {
			g.Stop()
		}
		counted, _ := os.ReadFile(filepath.Join(dir, "fake-starts"))
		if (err == nil) != c.ok || len(counted) != c.starts {
			t.Errorf("%s: error %v after %d starts; want ok %v after %d", c.mode, err, len(counted), c.ok, c.starts)
		}
	}
}
