package dashboards

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"
)

// PushMessage is the version message of every dashboard version Push saves:
// Push recognises its own versions by it.
const PushMessage = "shoptrail dashboards push"

// Auth says how to authenticate to Grafana: a service account token (or API
// key), or a user and password (basic auth). Neither: anonymous.
type Auth struct {
	Token    string
	User     string
	Password string
}

// Client talks to one Grafana.
type Client struct {
	url  string
	auth Auth
	api  *gapi.Client
	http *http.Client
}

// NewClient returns a client for the Grafana at baseURL.
func NewClient(baseURL string, auth Auth) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("grafana URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	if auth.Token != "" && auth.User != "" {
		return nil, errors.New("grafana: give a token or a user and password, not both")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	cfg := gapi.Config{Client: hc}
	if auth.Token != "" {
		cfg.APIKey = auth.Token
	} else if auth.User != "" {
		cfg.BasicAuth = url.UserPassword(auth.User, auth.Password)
	}
	api, err := gapi.New(strings.TrimSuffix(baseURL, "/"), cfg)
	if err != nil {
		return nil, err
	}
	return &Client{url: strings.TrimSuffix(baseURL, "/"), auth: auth, api: api, http: hc}, nil
}

// APIError is a refusal by Grafana, with its HTTP status.
type APIError struct {
	Status int
	Op     string
	Body   string
}

func (e *APIError) Error() string {
	msg := e.Body
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(e.Body), &m) == nil && m.Message != "" {
		msg = m.Message
	}
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized:
		hint = ": Grafana did not accept the credentials (set SHOPTRAIL_GRAFANA_TOKEN to a service account token, or SHOPTRAIL_GRAFANA_USER and SHOPTRAIL_GRAFANA_PASSWORD)"
	case http.StatusForbidden:
		hint = ": the credentials lack the permission (the service account needs the Editor role, Admin for data sources)"
	}
	return fmt.Sprintf("%s: Grafana answered %d %s%s", e.Op, e.Status, msg, hint)
}

var statusRE = regexp.MustCompile(`^status: (\d{3}), body: (?s)(.*)$`)

// wrap turns an error of the API library into an *APIError where it carries
// an HTTP status, and says which Grafana could not be reached otherwise.
func (c *Client) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var nf gapi.ErrNotFound
	if errors.As(err, &nf) {
		return &APIError{Status: http.StatusNotFound, Op: op, Body: string(nf.BodyContents)}
	}
	if m := statusRE.FindStringSubmatch(err.Error()); m != nil {
		st, _ := strconv.Atoi(m[1])
		return &APIError{Status: st, Op: op, Body: m[2]}
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return fmt.Errorf("%s: cannot reach Grafana at %s: %w", op, c.url, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// get does a GET of the API the library lacks, with the same credentials.
func (c *Client) get(ctx context.Context, op, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
	if err != nil {
		return err
	}
	if c.auth.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.auth.Token)
	} else if c.auth.User != "" {
		req.SetBasicAuth(c.auth.User, c.auth.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: cannot reach Grafana at %s: %w", op, c.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		return &APIError{Status: resp.StatusCode, Op: op, Body: string(body)}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Check asks Grafana who the credentials belong to, so a wrong URL or
// credentials fail before anything is changed.
func (c *Client) Check(ctx context.Context) error {
	var u map[string]any
	return c.get(ctx, "grafana "+c.url, "/api/user", &u)
}

// DataSources says how Grafana reaches ClickHouse and Prometheus.
type DataSources struct {
	// ClickHouseAddr is host:port of ClickHouse's native protocol as
	// Grafana's server reaches it.
	ClickHouseAddr     string
	ClickHouseDatabase string
	ClickHouseUser     string
	ClickHousePassword string
	// PrometheusURL is Prometheus's URL as Grafana's server reaches it;
	// empty: no Prometheus data source (Pipeline health then shows errors).
	PrometheusURL string
}

// DataSourceModels returns the data sources Push creates, as the API takes
// them.
func (d DataSources) DataSourceModels() ([]*gapi.DataSource, error) {
	host, port, err := net.SplitHostPort(d.ClickHouseAddr)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse address %q: %w", d.ClickHouseAddr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse address %q: bad port", d.ClickHouseAddr)
	}
	ds := []*gapi.DataSource{{
		UID: ClickHouseUID, Name: "shoptrail ClickHouse", Type: ClickHouseType, Access: "proxy",
		JSONData: map[string]any{
			"host": host, "port": p, "protocol": "native", "username": d.ClickHouseUser,
			"defaultDatabase": d.ClickHouseDatabase, "secure": false,
		},
		SecureJSONData: map[string]any{"password": d.ClickHousePassword},
	}}
	if d.PrometheusURL != "" {
		ds = append(ds, &gapi.DataSource{
			UID: PrometheusUID, Name: "shoptrail Prometheus", Type: PrometheusType, Access: "proxy",
			URL: d.PrometheusURL, JSONData: map[string]any{"httpMethod": "POST", "timeInterval": "15s"},
		})
	}
	return ds, nil
}

// Result says what Push or Pull did with one object.
type Result struct {
	Kind    string // "datasource", "folder", "dashboard"
	UID     string
	Title   string
	Action  string // "created", "updated", "unchanged", "provisioned" (left as is), "written"
	Version int64  // the dashboard's version in Grafana afterwards
}

func (r Result) String() string {
	s := fmt.Sprintf("%-10s %-28s %-9s %s", r.Kind, r.UID, r.Action, r.Title)
	if r.Version > 0 {
		s += fmt.Sprintf(" (version %d)", r.Version)
	}
	return s
}

// PushOptions are the choices of a push.
type PushOptions struct {
	DataSources DataSources
	// SkipDataSources leaves the data sources alone (they are provisioned).
	SkipDataSources bool
	// Overwrite replaces a dashboard even when someone changed it in
	// Grafana since the last push (Grafana keeps the replaced version in
	// its history). Without it such a dashboard is refused with a version
	// conflict (Grafana's 412) and nothing of it changes.
	Overwrite bool
}

// ConflictError is a dashboard that was changed in Grafana after the last
// push: Grafana refused the save (412, version mismatch).
type ConflictError struct {
	UID, Title string
	Current    int64  // version in Grafana
	Base       int64  // version the last push saved (0: never pushed)
	By, At     string // who saved the current version, when
	Err        error
}

func (e *ConflictError) Error() string {
	who := ""
	if e.By != "" {
		who = " by " + e.By
	}
	if e.At != "" {
		who += " at " + e.At
	}
	base := "it was never pushed by shoptrail"
	if e.Base > 0 {
		base = fmt.Sprintf("the last push saved version %d", e.Base)
	}
	return fmt.Sprintf("dashboard %q (%s): version conflict: Grafana has version %d, saved%s, and %s; run `shoptrail dashboards pull` to keep the edits made in Grafana, or push with -overwrite to replace them (Grafana keeps the replaced version in its history): %v",
		e.Title, e.UID, e.Current, who, base, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// Push puts the data sources, the folder and the dashboards into Grafana.
// A dashboard equal to Grafana's copy is left alone (its version does not
// change); a changed one is saved as a new version, with Grafana's
// optimistic lock: the save names the version the last push saved, so
// edits made in Grafana since then are not overwritten unless
// opts.Overwrite. Push goes on after a refused dashboard and returns every
// error joined.
func (c *Client) Push(ctx context.Context, ds []Dashboard, opts PushOptions) ([]Result, error) {
	if err := c.Check(ctx); err != nil {
		return nil, err
	}
	var res []Result
	if !opts.SkipDataSources {
		models, err := opts.DataSources.DataSourceModels()
		if err != nil {
			return nil, err
		}
		for _, m := range models {
			r, err := c.pushDataSource(m)
			if err != nil {
				return res, err
			}
			res = append(res, r)
		}
	}
	r, err := c.pushFolder()
	if err != nil {
		return res, err
	}
	res = append(res, r)
	var errs []error
	for _, d := range ds {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		r, err := c.pushDashboard(ctx, d, opts.Overwrite)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res = append(res, r)
	}
	return res, errors.Join(errs...)
}

func (c *Client) pushDataSource(m *gapi.DataSource) (Result, error) {
	r := Result{Kind: "datasource", UID: m.UID, Title: m.Name}
	cur, err := c.api.DataSourceByUID(m.UID)
	if err = c.wrap("data source "+m.UID, err); isStatus(err, http.StatusNotFound) {
		if _, err := c.api.NewDataSource(m); err != nil {
			return r, c.wrap("create data source "+m.UID, err)
		}
		r.Action = "created"
		return r, nil
	} else if err != nil {
		return r, err
	}
	if cur.ReadOnly {
		r.Action = "provisioned"
		return r, nil
	}
	m.ID = cur.ID
	if sameDataSource(cur, m) {
		r.Action = "unchanged"
		return r, nil
	}
	if err := c.api.UpdateDataSourceByUID(m); err != nil {
		return r, c.wrap("update data source "+m.UID, err)
	}
	r.Action = "updated"
	return r, nil
}

// sameDataSource compares what Push sets. The password is write-only in
// Grafana, so a data source with a password is always updated.
func sameDataSource(cur, want *gapi.DataSource) bool {
	if pw, _ := want.SecureJSONData["password"].(string); pw != "" {
		return false
	}
	if cur.Name != want.Name || cur.Type != want.Type || cur.URL != want.URL || cur.Access != want.Access {
		return false
	}
	a, _ := json.Marshal(cur.JSONData)
	b, _ := json.Marshal(normalizeJSON(want.JSONData))
	return string(a) == string(b)
}

// normalizeJSON round-trips v through JSON (numbers become float64), the
// form the API returns.
func normalizeJSON(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func (c *Client) pushFolder() (Result, error) {
	r := Result{Kind: "folder", UID: FolderUID, Title: FolderTitle}
	f, err := c.api.FolderByUID(FolderUID)
	if err = c.wrap("folder "+FolderUID, err); isStatus(err, http.StatusNotFound) {
		if _, err := c.api.NewFolder(FolderTitle, FolderUID); err != nil {
			return r, c.wrap("create folder "+FolderUID, err)
		}
		r.Action = "created"
		return r, nil
	} else if err != nil {
		return r, err
	}
	if f.Title == FolderTitle {
		r.Action = "unchanged"
		return r, nil
	}
	if err := c.api.UpdateFolder(FolderUID, FolderTitle); err != nil {
		return r, c.wrap("update folder "+FolderUID, err)
	}
	r.Action = "updated"
	return r, nil
}

// version is one entry of a dashboard's version history.
type version struct {
	Version int64  `json:"version"`
	Message string `json:"message"`
}

// pushed reports whether Push saved a version. Grafana replaces the
// message of a dashboard's first version with "Initial save": that version
// counts as pushed (push creates every dashboard of the folder, under its
// own "shoptrail-" uids).
func pushed(v version) bool {
	return v.Message == PushMessage || (v.Version == 1 && v.Message == "Initial save")
}

func (c *Client) versions(ctx context.Context, uid string) ([]version, error) {
	var vs []version
	err := c.get(ctx, "versions of dashboard "+uid, "/api/dashboards/uid/"+url.PathEscape(uid)+"/versions?limit=1000", &vs)
	return vs, err
}

func intOf(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	}
	return 0
}

func (c *Client) pushDashboard(ctx context.Context, d Dashboard, overwrite bool) (Result, error) {
	uid := d.UID()
	r := Result{Kind: "dashboard", UID: uid, Title: d.Title()}
	model := make(map[string]any, len(d.Model))
	for k, v := range d.Model {
		model[k] = v
	}
	for _, k := range instanceKeys {
		delete(model, k)
	}
	var cur struct {
		Model map[string]any `json:"dashboard"`
		Meta  struct {
			FolderUID   string `json:"folderUid"`
			Updated     string `json:"updated"`
			UpdatedBy   string `json:"updatedBy"`
			Provisioned bool   `json:"provisioned"`
		} `json:"meta"`
	}
	err := c.get(ctx, "dashboard "+uid, "/api/dashboards/uid/"+url.PathEscape(uid), &cur)
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return r, err
	}
	if err == nil && cur.Meta.Provisioned {
		r.Action, r.Version = "provisioned", intOf(cur.Model["version"])
		return r, nil
	}
	save := gapi.Dashboard{Model: model, FolderUID: FolderUID, Message: PushMessage, Overwrite: overwrite}
	action := "created"
	if err == nil { // it exists: save on top of the version the last push saved
		r.Version = intOf(cur.Model["version"])
		vs, err := c.versions(ctx, uid)
		if err != nil {
			return r, err
		}
		var base, latest version
		for _, v := range vs {
			if v.Version > latest.Version {
				latest = v
			}
			if pushed(v) && v.Version > base.Version {
				base = v
			}
		}
		action = "updated"
		model["version"] = base.Version
		if cur.Meta.FolderUID == FolderUID && Equal(cur.Model, model) {
			if pushed(latest) {
				r.Action = "unchanged"
				return r, nil
			}
			// Someone edited it in Grafana and the files now hold that
			// edit (pulled): record Grafana's version as pushed, so later
			// pushes build on it.
			action = "adopted"
			model["version"] = r.Version
		}
		if overwrite {
			model["version"] = r.Version
		}
		resp, err := c.api.NewDashboard(save)
		if err = c.wrap("save dashboard "+uid, err); isStatus(err, http.StatusPreconditionFailed) {
			return r, &ConflictError{UID: uid, Title: d.Title(), Current: r.Version, Base: base.Version, By: cur.Meta.UpdatedBy, At: cur.Meta.Updated, Err: err}
		} else if err != nil {
			return r, err
		}
		r.Version, r.Action = resp.Version, action
		return r, nil
	}
	resp, err := c.api.NewDashboard(save)
	if err != nil {
		return r, c.wrap("create dashboard "+uid, err)
	}
	r.Version, r.Action = resp.Version, action
	return r, nil
}

// Pull writes Grafana's copy of every dashboard in the folder "shoptrail"
// (and of every dashboard of ds, wherever it is) into dir, normalised: into
// the file that holds its uid, or a new file named after the uid. A file
// already equal is not touched.
func (c *Client) Pull(ctx context.Context, dir string, ds []Dashboard) ([]Result, error) {
	if err := c.Check(ctx); err != nil {
		return nil, err
	}
	files := map[string]string{}
	var uids []string
	for _, d := range ds {
		files[d.UID()] = d.File
		uids = append(uids, d.UID())
	}
	found, err := c.folderDashboards(ctx)
	if err != nil {
		return nil, err
	}
	for _, uid := range found {
		if _, ok := files[uid]; !ok {
			uids = append(uids, uid)
			files[uid] = fileName(uid)
		}
	}
	var res []Result
	for _, uid := range uids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		cur, err := c.api.DashboardByUID(uid)
		if err = c.wrap("dashboard "+uid, err); err != nil {
			if isStatus(err, http.StatusNotFound) {
				return res, fmt.Errorf("dashboard %s (%s) is not in Grafana: push it first", uid, files[uid])
			}
			return res, err
		}
		b, err := Normalize(cur.Model)
		if err != nil {
			return res, err
		}
		r := Result{Kind: "dashboard", UID: uid, Title: fmt.Sprint(cur.Model["title"]), Version: intOf(cur.Model["version"]), Action: "unchanged"}
		p := filepath.Join(dir, files[uid])
		if old, err := os.ReadFile(p); err != nil || string(old) != string(b) {
			if err := writeFileAtomic(p, b); err != nil {
				return res, err
			}
			r.Action = "written"
		}
		res = append(res, r)
	}
	return res, nil
}

func (c *Client) folderDashboards(ctx context.Context) ([]string, error) {
	var hits []struct {
		UID string `json:"uid"`
	}
	if err := c.get(ctx, "search folder "+FolderUID, "/api/search?type=dash-db&limit=5000&folderUIDs="+FolderUID, &hits); err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hits {
		out = append(out, h.UID)
	}
	return out, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pull-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
