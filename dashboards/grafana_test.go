package dashboards_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// copyDashboards copies the committed dashboards into a temporary folder,
// the way a user's checkout holds them.
func copyDashboards(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := dashboards.WriteDir(dir, embedded(t)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func admin(t *testing.T, url string) *dashboards.Client {
	t.Helper()
	c, err := dashboards.NewClient(url, dashboards.Auth{User: "admin", Password: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testDataSources() dashboards.DataSources {
	return dashboards.DataSources{ClickHouseAddr: "127.0.0.1:9000", ClickHouseDatabase: "shoptrail", ClickHouseUser: "default", PrometheusURL: "http://127.0.0.1:9090"}
}

func actions(res []dashboards.Result) map[string]dashboards.Result {
	m := map[string]dashboards.Result{}
	for _, r := range res {
		m[r.Kind+"/"+r.UID] = r
	}
	return m
}

// grafanaJSON does a request to Grafana's HTTP API as the admin.
func grafanaJSON(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func TestPushCreateUpdateIdempotentAndPull(t *testing.T) {
	g := testenv.Grafana(t, "")
	ctx := context.Background()
	dir := copyDashboards(t)
	ds, err := dashboards.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := admin(t, g.URL)

	res, err := c.Push(ctx, ds, dashboards.PushOptions{DataSources: testDataSources()})
	if err != nil {
		t.Fatalf("first push: %v", err)
	}
	got := actions(res)
	for _, k := range []string{"datasource/" + dashboards.ClickHouseUID, "datasource/" + dashboards.PrometheusUID, "folder/" + dashboards.FolderUID} {
		if got[k].Action != "created" {
			t.Errorf("%s: %q, want created", k, got[k].Action)
		}
	}
	for _, d := range ds {
		r := got["dashboard/"+d.UID()]
		if r.Action != "created" || r.Version != 1 {
			t.Errorf("dashboard %s: %s version %d, want created version 1", d.UID(), r.Action, r.Version)
		}
		var out struct {
			Meta struct {
				FolderUID string `json:"folderUid"`
			} `json:"meta"`
		}
		if st := grafanaJSON(t, "GET", g.URL+"/api/dashboards/uid/"+d.UID(), nil, &out); st != 200 || out.Meta.FolderUID != dashboards.FolderUID {
			t.Errorf("dashboard %s: status %d, folder %q, want 200 in %q", d.UID(), st, out.Meta.FolderUID, dashboards.FolderUID)
		}
	}

	// A second push changes nothing, not even a version.
	res, err = c.Push(ctx, ds, dashboards.PushOptions{DataSources: testDataSources()})
	if err != nil {
		t.Fatalf("second push: %v", err)
	}
	for _, r := range res {
		if r.Action != "unchanged" || (r.Kind == "dashboard" && r.Version != 1) {
			t.Errorf("re-push: %s", r)
		}
	}

	// A pull right after a push is a no-op: the files stay byte for byte.
	before := readAll(t, dir)
	res, err = c.Pull(ctx, dir, ds)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	for _, r := range res {
		if r.Action != "unchanged" {
			t.Errorf("pull after push: %s", r)
		}
	}
	if after := readAll(t, dir); !equalFiles(before, after) {
		t.Errorf("pull after push changed the files")
	}

	// Changing a file and pushing saves a new version of that dashboard only.
	first := ds[0]
	first.Model["description"] = "changed by the test"
	res, err = c.Push(ctx, ds, dashboards.PushOptions{SkipDataSources: true})
	if err != nil {
		t.Fatalf("push after a change: %v", err)
	}
	got = actions(res)
	if r := got["dashboard/"+first.UID()]; r.Action != "updated" || r.Version != 2 {
		t.Errorf("changed dashboard: %s, want updated version 2", r)
	}
	for _, d := range ds[1:] {
		if r := got["dashboard/"+d.UID()]; r.Action != "unchanged" || r.Version != 1 {
			t.Errorf("other dashboard: %s, want unchanged version 1", r)
		}
	}
	if _, ok := got["datasource/"+dashboards.ClickHouseUID]; ok {
		t.Errorf("SkipDataSources pushed the data sources")
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func equalFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// editInUI saves a dashboard the way Grafana's UI does: the whole model
// with its current version, as the admin, with the user's message.
func editInUI(t *testing.T, url, uid string, edit func(m map[string]any)) {
	t.Helper()
	var cur struct {
		Dashboard map[string]any `json:"dashboard"`
	}
	if st := grafanaJSON(t, "GET", url+"/api/dashboards/uid/"+uid, nil, &cur); st != 200 {
		t.Fatalf("get %s: %d", uid, st)
	}
	edit(cur.Dashboard)
	var out map[string]any
	if st := grafanaJSON(t, "POST", url+"/api/dashboards/db", map[string]any{"dashboard": cur.Dashboard, "folderUid": dashboards.FolderUID, "message": "moved a panel"}, &out); st != 200 {
		t.Fatalf("UI save of %s: %d %v", uid, st, out)
	}
}

func TestPushVersionConflictPullAndOverwrite(t *testing.T) {
	g := testenv.Grafana(t, "")
	ctx := context.Background()
	dir := copyDashboards(t)
	ds, err := dashboards.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := admin(t, g.URL)
	if _, err := c.Push(ctx, ds, dashboards.PushOptions{DataSources: testDataSources()}); err != nil {
		t.Fatalf("push: %v", err)
	}
	uid := ds[0].UID()
	editInUI(t, g.URL, uid, func(m map[string]any) { m["title"] = "Edited in the UI" })

	// The file changed too: the push must not silently drop the UI edit.
	ds[0].Model["description"] = "changed in the file"
	_, err = c.Push(ctx, ds, dashboards.PushOptions{SkipDataSources: true})
	var ce *dashboards.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("push over a UI edit: %v, want a ConflictError", err)
	}
	var ae *dashboards.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusPreconditionFailed {
		t.Errorf("conflict carries %v, want Grafana's 412", ae)
	}
	if ce.Current != 2 || ce.Base != 1 || ce.By != "admin" {
		t.Errorf("conflict: current %d base %d by %q, want 2, 1, admin", ce.Current, ce.Base, ce.By)
	}
	for _, want := range []string{"version conflict", "shoptrail dashboards pull", "-overwrite", "412"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict message %q lacks %q", err, want)
		}
	}
	var cur struct {
		Dashboard map[string]any `json:"dashboard"`
	}
	grafanaJSON(t, "GET", g.URL+"/api/dashboards/uid/"+uid, nil, &cur)
	if cur.Dashboard["title"] != "Edited in the UI" {
		t.Errorf("the refused push changed the dashboard: title %v", cur.Dashboard["title"])
	}

	// Pull brings the UI edit into the file; pushing it then changes nothing.
	if _, err := c.Pull(ctx, dir, ds); err != nil {
		t.Fatalf("pull: %v", err)
	}
	pulled, err := dashboards.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pulled[0].Title() != "Edited in the UI" {
		t.Fatalf("pulled title %q", pulled[0].Title())
	}
	res, err := c.Push(ctx, pulled, dashboards.PushOptions{SkipDataSources: true})
	if err != nil {
		t.Fatalf("push after pull: %v", err)
	}
	if r := actions(res)["dashboard/"+uid]; r.Action != "adopted" || r.Version != 3 {
		t.Errorf("push after pull: %s, want adopted version 3", r)
	}
	// Having adopted the UI's version, the next push is unchanged and a
	// change in the file saves cleanly on top.
	res, err = c.Push(ctx, pulled, dashboards.PushOptions{SkipDataSources: true})
	if r := actions(res)["dashboard/"+uid]; err != nil || r.Action != "unchanged" || r.Version != 3 {
		t.Errorf("second push after pull: %s, %v, want unchanged version 3", r, err)
	}
	pulled[0].Model["description"] = "changed after the pull"
	res, err = c.Push(ctx, pulled, dashboards.PushOptions{SkipDataSources: true})
	if r := actions(res)["dashboard/"+uid]; err != nil || r.Action != "updated" || r.Version != 4 {
		t.Errorf("push of a change after pull: %s, %v, want updated version 4", r, err)
	}

	// -overwrite replaces a UI edit.
	editInUI(t, g.URL, uid, func(m map[string]any) { m["title"] = "Edited again" })
	pulled[0].Model["description"] = "file wins"
	if _, err := c.Push(ctx, pulled, dashboards.PushOptions{SkipDataSources: true}); !errors.As(err, &ce) {
		t.Fatalf("push over a second UI edit: %v, want a conflict", err)
	}
	res, err = c.Push(ctx, pulled, dashboards.PushOptions{SkipDataSources: true, Overwrite: true})
	if r := actions(res)["dashboard/"+uid]; err != nil || r.Action != "updated" || r.Version != 6 {
		t.Errorf("push -overwrite: %s, %v, want updated version 6", r, err)
	}
	grafanaJSON(t, "GET", g.URL+"/api/dashboards/uid/"+uid, nil, &cur)
	if cur.Dashboard["title"] != pulled[0].Title() || cur.Dashboard["description"] != "file wins" {
		t.Errorf("after -overwrite Grafana has %v / %v", cur.Dashboard["title"], cur.Dashboard["description"])
	}
}

func TestPushUnauthorized(t *testing.T) {
	g := testenv.Grafana(t, "")
	ctx := context.Background()
	ds, err := dashboards.Load(dashboards.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	for name, auth := range map[string]dashboards.Auth{
		"password": {User: "admin", Password: "wrong"},
		"token":    {Token: "glsa_not_a_real_token_0123456789abcdef_01234567"},
	} {
		c, err := dashboards.NewClient(g.URL, auth)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Push(ctx, ds, dashboards.PushOptions{DataSources: testDataSources()})
		var ae *dashboards.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Fatalf("%s: push with bad credentials: %v, want a 401", name, err)
		}
		if !strings.Contains(err.Error(), "SHOPTRAIL_GRAFANA_TOKEN") {
			t.Errorf("%s: message %q does not say how to give credentials", name, err)
		}
		if _, err := c.Pull(ctx, t.TempDir(), ds); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Errorf("%s: pull with bad credentials: %v, want a 401", name, err)
		}
	}
	// Nothing was created.
	var hits []any
	grafanaJSON(t, "GET", g.URL+"/api/search?type=dash-db", nil, &hits)
	if len(hits) != 0 {
		t.Errorf("refused pushes left %d dashboards", len(hits))
	}
}
