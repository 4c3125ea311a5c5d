package main

// The deploy files (deploy/compose, deploy/k8s, deploy/prometheus,
// deploy/grafana, deploy/Dockerfile) checked as files, since no container
// engine runs here: they parse (compose-go, kustomize's Go module, strict
// decoding into k8s.io/api types), and every command, flag, environment
// variable, port, probe and scrape target they use is one this binary
// defines and serves. The checks are driven by what the files reference,
// so a service or flag added to them later is checked the same way.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/shoptrail/shoptrail/collector"
	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/envflag"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

const (
	deployDir = "../../deploy"
	// imageBinary is where deploy/Dockerfile puts the binary.
	imageBinary = "/usr/local/bin/shoptrail"
)

// otherEnv are the variables besides SHOPTRAIL_* the services read.
var otherEnv = []string{"GOMEMLIMIT", "GOGC", "GOMAXPROCS"}

// flagsOf returns a fresh flag set of a command as the binary defines it.
func flagsOf(t *testing.T, name string) *flag.FlagSet {
	t.Helper()
	cmd, ok := commands[name]
	if !ok {
		t.Fatalf("command %q does not exist in the binary", name)
	}
	var got *flag.FlagSet
	inspectFlags = func(fs *flag.FlagSet) { got = fs }
	defer func() { inspectFlags = nil }()
	if err := cmd.run(context.Background(), nil); !errors.Is(err, flag.ErrHelp) || got == nil {
		t.Fatalf("command %q did not hand its flags to parse (err %v)", name, err)
	}
	got.SetOutput(io.Discard)
	return got
}

// invocation is one service's use of the binary: command, arguments and
// environment, as a deploy file states them.
type invocation struct {
	where string
	args  []string // args[0] is the command
	env   map[string]string
	// files maps a path inside the container to the host file mounted
	// there, for flags that read a file when set.
	files map[string]string
}

// value is what the invocation gives flag name: its argument, else its
// environment variable, else "" (Func flags show no value of their own).
func (inv invocation) value(name string) string {
	for i, a := range inv.args {
		a = strings.TrimLeft(a, "-")
		if a == name && i+1 < len(inv.args) {
			return inv.args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return inv.env[envflag.Name(name)]
}

func (inv invocation) hostPath(v string) string {
	if h, ok := inv.files[v]; ok {
		return h
	}
	return v
}

// check verifies the command, every flag and its value, and every
// variable, and returns the parsed flag set.
func (inv invocation) check(t *testing.T) *flag.FlagSet {
	t.Helper()
	if len(inv.args) == 0 {
		t.Fatalf("%s: no command", inv.where)
	}
	fs := flagsOf(t, inv.args[0])
	// Variables a rules file names (url_env, secret_env) are read too.
	named := map[string]bool{}
	if f := inv.value("alerts.file"); f != "" {
		env := func(k string) (string, bool) { v, ok := inv.env[k]; return v, ok }
		if _, err := rules.Load(inv.hostPath(f), env); err != nil {
			t.Errorf("%s: %v", inv.where, err)
		}
		var doc any
		if err := yaml.Unmarshal([]byte(readFile(t, inv.hostPath(f))), &doc); err == nil {
			envNames(doc, named)
		}
	}
	for k, v := range inv.env {
		if !strings.HasPrefix(k, envflag.Prefix) {
			if !slices.Contains(otherEnv, k) && !named[k] {
				t.Errorf("%s: environment variable %s is read by nothing", inv.where, k)
			}
			continue
		}
		var f *flag.Flag
		fs.VisitAll(func(x *flag.Flag) {
			if envflag.Name(x.Name) == k {
				f = x
			}
		})
		if f == nil {
			t.Errorf("%s: %s is no flag of %q", inv.where, k, inv.args[0])
			continue
		}
		if err := fs.Set(f.Name, inv.hostPath(v)); err != nil {
			t.Errorf("%s: %s=%q: %v", inv.where, k, v, err)
		}
	}
	args := make([]string, len(inv.args)-1)
	for i, a := range inv.args[1:] {
		args[i] = inv.hostPath(a)
	}
	if err := fs.Parse(args); err != nil {
		t.Errorf("%s: %q: %v", inv.where, inv.args, err)
	}
	if fs.NArg() > 0 {
		t.Errorf("%s: unexpected arguments %q", inv.where, fs.Args())
	}
	return fs
}

// envNames collects the values of keys ending in _env.
func envNames(doc any, into map[string]bool) {
	switch d := doc.(type) {
	case map[string]any:
		for k, v := range d {
			if s, ok := v.(string); ok && strings.HasSuffix(k, "_env") {
				into[s] = true
			}
			envNames(v, into)
		}
	case []any:
		for _, v := range d {
			envNames(v, into)
		}
	}
}

// listenPort is the port of the service's -http.addr.
func listenPort(t *testing.T, where string, fs *flag.FlagSet) int {
	t.Helper()
	f := fs.Lookup("http.addr")
	if f == nil {
		t.Fatalf("%s: the command has no -http.addr", where)
	}
	_, p, err := net.SplitHostPort(f.Value.String())
	if err != nil {
		t.Fatalf("%s: -http.addr %q: %v", where, f.Value, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// served collects, per command, the paths the files expect it to serve;
// TestDeployEndpointsServed then asks a running instance of each.
type served map[string]*service // by command

type service struct {
	inv   invocation        // one deploy file's invocation of it
	paths map[string]string // path -> where it is asked
}

func (s served) add(inv invocation, path, where string) {
	cmd := inv.args[0]
	if s[cmd] == nil {
		s[cmd] = &service{inv: inv, paths: map[string]string{}}
	}
	s[cmd].paths[path] = where
}

// TestComposeFile loads deploy/compose with compose-go (the env file from
// .env.example) and checks every shoptrail service against the binary,
// every published port is on 127.0.0.1, every bind mount exists, and
// Prometheus scrapes every shoptrail service on its port.
func TestComposeFile(t *testing.T) {
	checkCompose(t, served{})
}

func checkCompose(t *testing.T, paths served) {
	dir := filepath.Join(deployDir, "compose")
	env := readEnvFile(t, filepath.Join(dir, ".env.example"))
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("shoptrail", true); o.ResolvePaths = true })
	if err != nil {
		t.Fatalf("compose file: %v", err)
	}
	if _, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: map[string]string{},
	}, func(o *loader.Options) { o.SetProjectName("shoptrail", true) }); err == nil {
		t.Error("the compose file loads without an env file: secrets must be required")
	}
	if !strings.Contains(readFile(t, filepath.Join(deployDir, "..", ".gitignore")), "/deploy/compose/.env") {
		t.Error(".gitignore does not keep deploy/compose/.env out of git")
	}
	dockerfile := readFile(t, filepath.Join(deployDir, "Dockerfile"))
	if !strings.Contains(dockerfile, `ENTRYPOINT ["`+imageBinary+`"]`) {
		t.Fatalf("deploy/Dockerfile's entrypoint is not %s", imageBinary)
	}
	checkDockerfile(t, dockerfile)

	ports := map[string]int{} // service -> listen port
	commandOf := map[string]string{}
	invs := map[string]invocation{}
	for name, svc := range project.Services {
		where := "compose service " + name
		for _, p := range svc.Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes port %d on %q, not 127.0.0.1", where, p.Target, p.HostIP)
			}
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which does not exist: %v", where, v.Source, err)
				}
			}
		}
		if !strings.HasPrefix(svc.Image, "shoptrail:") {
			continue
		}
		inv := invocation{where: where, args: svc.Command, env: map[string]string{}, files: map[string]string{}}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				inv.files[v.Target] = v.Source
			}
		}
		for k, v := range svc.Environment {
			if v != nil {
				inv.env[k] = *v
			}
		}
		// Mounted files the flags name must be mounted.
		for k, v := range inv.env {
			if strings.HasSuffix(k, "_FILE") && !mountedIn(svc, v) {
				t.Errorf("%s: %s=%s is not a mounted file", where, k, v)
			}
		}
		fs := inv.check(t)
		commandOf[name] = inv.args[0]
		invs[name] = inv
		if inv.args[0] == "migrate" || inv.args[0] == "dev" {
			if inv.args[0] == "dev" {
				checkDemo(t, where, svc, inv, fs)
			}
			continue
		}
		port := listenPort(t, where, fs)
		ports[name] = port
		if host, _, _ := net.SplitHostPort(fs.Lookup("http.addr").Value.String()); host != "0.0.0.0" {
			t.Errorf("%s listens on %s: unreachable from other containers", where, fs.Lookup("http.addr").Value)
		}
		for _, p := range svc.Ports {
			if int(p.Target) != port {
				t.Errorf("%s publishes container port %d, but listens on %d", where, p.Target, port)
			}
		}
		if svc.HealthCheck == nil || len(svc.HealthCheck.Test) < 2 {
			t.Errorf("%s has no health check", where)
		} else {
			test := svc.HealthCheck.Test
			if test[0] != "CMD" || test[1] != imageBinary {
				t.Errorf("%s: health check %q does not run %s (the image has no shell)", where, test, imageBinary)
			} else {
				pfs := invocation{where: where + " health check", args: test[2:]}.check(t)
				u, err := url.Parse(pfs.Lookup("url").Value.String())
				if err != nil {
					t.Fatal(err)
				}
				if u.Port() != strconv.Itoa(port) {
					t.Errorf("%s: health check asks port %s, the service listens on %d", where, u.Port(), port)
				}
				paths.add(inv, u.Path, where+" health check")
			}
		}
		if sf := inv.value("sites.file"); sf != "" {
			checkSitesMount(t, where, svc, sf)
		}
		for dep, d := range svc.DependsOn {
			if commandOf[dep] == "migrate" && d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s does not wait for %s to complete", where, dep)
			}
		}
	}
	for name, svc := range project.Services {
		if commandOf[name] == "migrate" {
			for _, dep := range []string{"processor", "grafana"} {
				if s, ok := project.Services[dep]; ok {
					if d, ok := s.DependsOn[name]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
						t.Errorf("compose service %s does not wait for %s", dep, name)
					}
				}
			}
			_ = svc
		}
	}

	// Prometheus scrapes every shoptrail service on its port.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `json:"names"`
				Type  string   `json:"type"`
				Port  int      `json:"port"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(deployDir, "prometheus", "prometheus.yml"))), &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		path := sc.MetricsPath
		if path == "" {
			path = "/metrics"
		}
		var targets []string
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				targets = append(targets, net.JoinHostPort(n, strconv.Itoa(d.Port)))
			}
		}
		for _, tg := range targets {
			host, port, err := net.SplitHostPort(tg)
			if err != nil {
				t.Errorf("prometheus job %s: target %q: %v", sc.JobName, tg, err)
				continue
			}
			if host == "127.0.0.1" || host == "localhost" {
				continue // Prometheus itself
			}
			want, ok := ports[host]
			if !ok {
				if _, other := project.Services[host]; !other {
					t.Errorf("prometheus job %s scrapes %s, which is no service of the compose file", sc.JobName, host)
				}
				continue // another image's own endpoint
			}
			if port != strconv.Itoa(want) {
				t.Errorf("prometheus job %s scrapes %s on %s, it listens on %d", sc.JobName, host, port, want)
			}
			scraped[host] = true
			paths.add(invs[host], path, "prometheus job "+sc.JobName)
		}
	}
	for name := range ports {
		if !scraped[name] {
			t.Errorf("compose service %s is not scraped by Prometheus", name)
		}
	}
	checkGrafana(t, project)
}

// checkDockerfile: multi-stage, static build, the last stage distroless
// with a numeric non-root user (runAsNonRoot in the manifests needs one).
func checkDockerfile(t *testing.T, df string) {
	var froms, users []string
	for line := range strings.SplitSeq(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			users = append(users, f[1])
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[len(froms)-1], "gcr.io/distroless/static") {
		t.Errorf("deploy/Dockerfile: want a build stage and a distroless static final stage, have %v", froms)
	}
	if len(users) == 0 {
		t.Fatal("deploy/Dockerfile sets no USER")
	}
	uid, _, _ := strings.Cut(users[len(users)-1], ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("deploy/Dockerfile: USER %s is not a numeric non-root user", users[len(users)-1])
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("deploy/Dockerfile does not build a static binary (CGO_ENABLED=0)")
	}
	// The image's Go is the module's.
	gomod := readFile(t, filepath.Join(deployDir, "..", "go.mod"))
	for line := range strings.SplitSeq(gomod, "\n") {
		if v, ok := strings.CutPrefix(line, "go "); ok && !strings.Contains(froms[0], "golang:"+strings.TrimSpace(v)) {
			t.Errorf("deploy/Dockerfile builds with %s, go.mod says go %s", froms[0], v)
		}
	}
	if ignore := readFile(t, filepath.Join(deployDir, "..", ".dockerignore")); !strings.Contains(ignore, ".cache") {
		t.Error(".dockerignore does not keep .cache (chDB's 170 MB library) out of the build context")
	}
}

// checkDemo: the demo's write key is one of the mounted sites'.
func checkDemo(t *testing.T, where string, svc types.ServiceConfig, inv invocation, fs *flag.FlagSet) {
	sf := inv.value("sites.file")
	if sf == "" {
		t.Errorf("%s: the demo has no sites file", where)
		return
	}
	sites := checkSitesMount(t, where, svc, sf)
	if sites == nil {
		return
	}
	key := fs.Lookup("demo.write-key").Value.String()
	if _, ok := sites.ByKey(key); !ok {
		t.Errorf("%s: demo write key %q is no key of the sites file", where, key)
	}
	for _, p := range svc.Ports {
		if !strings.HasSuffix(fs.Lookup("demo.addr").Value.String(), ":"+strconv.Itoa(int(p.Target))) {
			t.Errorf("%s publishes %d, the demo listens on %s", where, p.Target, fs.Lookup("demo.addr").Value)
		}
	}
}

// checkSitesMount loads the host file mounted at path.
func checkSitesMount(t *testing.T, where string, svc types.ServiceConfig, path string) *collector.Sites {
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == path {
			sites, err := collector.LoadSitesFile(v.Source)
			if err != nil {
				t.Errorf("%s: %v", where, err)
			}
			return sites
		}
	}
	t.Errorf("%s: sites file %s is not mounted", where, path)
	return nil
}

func mountedIn(svc types.ServiceConfig, path string) bool {
	for _, v := range svc.Volumes {
		if path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/") {
			return true
		}
	}
	return false
}

// checkGrafana: the provisioned data sources are the uids the dashboards
// use, and the dashboards folder is mounted where the provider reads.
func checkGrafana(t *testing.T, project *types.Project) {
	svc, ok := project.Services["grafana"]
	if !ok {
		t.Fatal("the compose file has no grafana service")
	}
	if v := svc.Environment["GF_INSTALL_PLUGINS"]; v == nil || !strings.Contains(*v, dashboards.ClickHouseType) {
		t.Errorf("grafana does not install %s", dashboards.ClickHouseType)
	}
	prov := ""
	for _, v := range svc.Volumes {
		if v.Target == "/etc/grafana/provisioning" {
			prov = v.Source
		}
	}
	if prov == "" {
		t.Fatal("grafana: nothing mounted at /etc/grafana/provisioning")
	}
	uids := map[string]string{}
	dashPaths := []string{}
	err := filepath.WalkDir(prov, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		var doc struct {
			Datasources []struct {
				UID, Type string
			} `json:"datasources"`
			Providers []struct {
				Options struct {
					Path string `json:"path"`
				} `json:"options"`
			} `json:"providers"`
		}
		content := readFile(t, p)
		if err := yaml.Unmarshal([]byte(content), &doc); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		// Grafana fills ${VAR} from its environment: each must be set.
		for line := range strings.SplitSeq(content, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			os.Expand(line, func(k string) string {
				if svc.Environment[k] == nil {
					t.Errorf("%s reads ${%s}, the grafana service does not set it", p, k)
				}
				return ""
			})
		}
		for _, ds := range doc.Datasources {
			uids[ds.UID] = ds.Type
		}
		for _, pr := range doc.Providers {
			dashPaths = append(dashPaths, pr.Options.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for uid, typ := range map[string]string{dashboards.ClickHouseUID: dashboards.ClickHouseType, dashboards.PrometheusUID: dashboards.PrometheusType} {
		if uids[uid] != typ {
			t.Errorf("grafana provisioning: data source %s is %q, want type %s", uid, uids[uid], typ)
		}
	}
	ds, err := dashboards.Load(dashboards.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range dashPaths {
		p = os.Expand(p, func(k string) string {
			if v := svc.Environment[k]; v != nil {
				return *v
			}
			t.Errorf("grafana provisioning reads ${%s}, the grafana service does not set it", k)
			return ""
		})
		found := false
		for _, v := range svc.Volumes {
			if v.Target == p {
				found = true
				for _, d := range ds {
					if _, err := os.Stat(filepath.Join(v.Source, d.File)); err != nil {
						t.Errorf("dashboard %s is not in the mounted %s", d.File, v.Source)
					}
				}
			}
		}
		if !found {
			t.Errorf("grafana: dashboards provider reads %s, nothing is mounted there", p)
		}
	}
	if len(dashPaths) == 0 {
		t.Error("grafana provisioning has no dashboards provider")
	}
}

// rendered is the production overlay built by kustomize's Go module.
type rendered struct {
	objects []any // typed k8s.io/api objects
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
	raw     []map[string]any
}

// renderOverlay builds deploy/k8s/overlays/production from an in-memory
// copy of deploy/k8s, with secrets.env made from its example, and decodes
// every object strictly into its k8s.io/api type.
func renderOverlay(t *testing.T) *rendered {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	root := filepath.Join(deployDir, "k8s")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		dst := filepath.Join("/k8s", rel)
		if d.IsDir() {
			return mem.MkdirAll(dst)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, "secrets.env.example") {
			if err := mem.WriteFile(strings.TrimSuffix(dst, ".example"), b); err != nil {
				return err
			}
		}
		return mem.WriteFile(dst, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/k8s/overlays/production")
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s/overlays/production: %v", err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{cms: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for doc := range strings.SplitSeq(string(out), "\n---\n") {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		var meta struct{ APIVersion, Kind string }
		if err := json.Unmarshal(j, &meta); err != nil {
			t.Fatal(err)
		}
		var obj any
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "batch/v1 Job":
			obj = &batchv1.Job{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1 Secret":
			obj = &corev1.Secret{}
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		case "autoscaling/v2 HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "networking.k8s.io/v1 Ingress":
			obj = &networkingv1.Ingress{}
		default:
			t.Fatalf("rendered %s %s: no k8s.io/api type checked for it", meta.APIVersion, meta.Kind)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			t.Fatalf("rendered %s does not decode strictly into %T: %v\n%s", meta.Kind, obj, err, doc)
		}
		r.objects = append(r.objects, obj)
		var raw map[string]any
		_ = json.Unmarshal(j, &raw)
		r.raw = append(r.raw, raw)
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			r.cms[o.Name] = o
		case *corev1.Secret:
			r.secrets[o.Name] = o
		}
	}
	return r
}

// TestKubernetesManifests renders the production overlay and checks every
// workload against the binary: command, flags, environment (config maps
// and secrets included), mounted files, probe and metrics ports, the
// Service, Ingress, HPA and PDB targets, the PodMonitor, and termination
// grace against the collector's shutdown bound.
func TestKubernetesManifests(t *testing.T) {
	checkManifests(t, served{})
}

func checkManifests(t *testing.T, paths served) {
	r := renderOverlay(t)
	type workload struct {
		kind, name string
		labels     map[string]string
		spec       corev1.PodSpec
	}
	var workloads []workload
	deployments := map[string]*appsv1.Deployment{}
	for _, o := range r.objects {
		switch o := o.(type) {
		case *appsv1.Deployment:
			workloads = append(workloads, workload{"Deployment", o.Name, o.Spec.Template.Labels, o.Spec.Template.Spec})
			deployments[o.Name] = o
			if sel := o.Spec.Selector.MatchLabels; !subset(sel, o.Spec.Template.Labels) {
				t.Errorf("Deployment %s: selector %v does not select its pods %v", o.Name, sel, o.Spec.Template.Labels)
			}
		case *batchv1.Job:
			workloads = append(workloads, workload{"Job", o.Name, o.Spec.Template.Labels, o.Spec.Template.Spec})
		}
	}
	if len(workloads) == 0 {
		t.Fatal("the overlay renders no workload")
	}
	podPorts := map[string]map[string]int32{} // workload -> port name -> number
	commandOf := map[string]string{}
	invOf := map[string]invocation{}
	for _, w := range workloads {
		for _, c := range w.spec.Containers {
			where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
			if !strings.Contains(c.Image, "shoptrail") {
				continue
			}
			if len(c.Command) > 0 {
				t.Errorf("%s overrides the image's entrypoint", where)
			}
			inv := invocation{where: where, args: c.Args, env: map[string]string{}, files: podFiles(t, r, w.spec, c)}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					t.Errorf("%s: envFrom other than a ConfigMap", where)
					continue
				}
				cm, ok := r.cms[ef.ConfigMapRef.Name]
				if !ok {
					t.Errorf("%s: ConfigMap %s is not rendered", where, ef.ConfigMapRef.Name)
					continue
				}
				maps_copy(inv.env, cm.Data)
			}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					inv.env[e.Name] = e.Value
				case e.ValueFrom.FieldRef != nil:
					inv.env[e.Name] = "pod-" + e.ValueFrom.FieldRef.FieldPath
				case e.ValueFrom.SecretKeyRef != nil:
					ref := e.ValueFrom.SecretKeyRef
					s, ok := r.secrets[ref.Name]
					if !ok {
						t.Errorf("%s: %s from Secret %s, which is not rendered", where, e.Name, ref.Name)
						continue
					}
					v, ok := s.Data[ref.Key]
					if !ok {
						t.Errorf("%s: Secret %s has no key %s", where, ref.Name, ref.Key)
					}
					inv.env[e.Name] = string(v)
				default:
					t.Errorf("%s: %s from an unchecked source", where, e.Name)
				}
			}
			for k, v := range inv.env {
				if strings.HasSuffix(k, "_FILE") {
					checkPodFile(t, where, r, w.spec, c, v)
				}
			}
			fs := inv.check(t)
			cmd := inv.args[0]
			commandOf[w.name] = cmd
			invOf[w.name] = inv
			if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
				t.Errorf("%s: root filesystem not read-only", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: no cpu/memory requests or memory limit", where)
			}
			if w.kind == "Job" {
				continue
			}
			port := listenPort(t, where, fs)
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
				if int(p.ContainerPort) != port {
					t.Errorf("%s: port %s is %d, the service listens on %d", where, p.Name, p.ContainerPort, port)
				}
			}
			podPorts[w.name] = ports
			for what, pr := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if pr == nil || pr.HTTPGet == nil {
					t.Errorf("%s: no HTTP %s probe", where, what)
					continue
				}
				if n := portNumber(pr.HTTPGet.Port, ports); int(n) != port {
					t.Errorf("%s: %s probe on port %v (%d), the service listens on %d", where, what, pr.HTTPGet.Port.String(), n, port)
				}
				paths.add(inv, pr.HTTPGet.Path, where+" "+what+" probe")
			}
			grace := int64(30)
			if w.spec.TerminationGracePeriodSeconds != nil {
				grace = *w.spec.TerminationGracePeriodSeconds
			}
			if cmd == "collector" {
				// Serve's shutdown bound: read + produce timeouts + 5 s,
				// after the preStop pause.
				rt, _ := time.ParseDuration(fs.Lookup("http.read-timeout").Value.String())
				pt, _ := time.ParseDuration(fs.Lookup("kafka.produce-timeout").Value.String())
				need := rt + pt + 5*time.Second
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
					need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
				}
				if time.Duration(grace)*time.Second < need {
					t.Errorf("%s: termination grace %ds is shorter than the collector's shutdown bound %v", where, grace, need)
				}
				if inv.value("http.trusted-proxies") == "" {
					t.Errorf("%s: behind an Ingress but no trusted proxies", where)
				}
			}
		}
	}
	// Services, Ingress, HPA, PDB point at what exists.
	services := map[string]*corev1.Service{}
	for _, o := range r.objects {
		if s, ok := o.(*corev1.Service); ok {
			services[s.Name] = s
			matched := false
			for _, w := range workloads {
				if w.kind == "Deployment" && subset(s.Spec.Selector, w.labels) {
					matched = true
					for _, p := range s.Spec.Ports {
						if portNumber(p.TargetPort, podPorts[w.name]) == 0 {
							t.Errorf("Service %s: target port %s is no port of %s", s.Name, p.TargetPort.String(), w.name)
						}
					}
				}
			}
			if !matched {
				t.Errorf("Service %s selects no Deployment", s.Name)
			}
		}
	}
	hpaMin := map[string]int32{}
	for _, o := range r.objects {
		if h, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			hpaMin[h.Spec.ScaleTargetRef.Name] = 1
			if h.Spec.MinReplicas != nil {
				hpaMin[h.Spec.ScaleTargetRef.Name] = *h.Spec.MinReplicas
			}
			if d := deployments[h.Spec.ScaleTargetRef.Name]; d != nil && d.Spec.Replicas != nil {
				t.Errorf("Deployment %s sets replicas although HPA %s owns them", d.Name, h.Name)
			}
		}
	}
	for _, o := range r.objects {
		switch o := o.(type) {
		case *networkingv1.Ingress:
			for _, rule := range o.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					for _, internal := range []string{"/metrics", "/healthz", "/readyz", "/debug/pprof/"} {
						if p.Path == internal || p.PathType != nil && *p.PathType == networkingv1.PathTypePrefix && strings.HasPrefix(internal, strings.TrimSuffix(p.Path, "/")+"/") {
							t.Errorf("Ingress %s: path %s exposes the collector's internal %s", o.Name, p.Path, internal)
						}
					}
					if s, ok := services[p.Backend.Service.Name]; ok {
						for _, w := range workloads {
							if w.kind == "Deployment" && subset(s.Spec.Selector, w.labels) {
								// A public path must be one the service serves.
								path := p.Path
								if p.PathType != nil && *p.PathType == networkingv1.PathTypePrefix {
									path = strings.TrimSuffix(p.Path, "/") + "/"
								}
								paths.add(invOf[w.name], "public "+path, "Ingress "+o.Name)
							}
						}
					}
					s, ok := services[p.Backend.Service.Name]
					if !ok {
						t.Errorf("Ingress %s: no Service %s", o.Name, p.Backend.Service.Name)
						continue
					}
					if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool {
						return sp.Name == p.Backend.Service.Port.Name && sp.Name != "" || sp.Port == p.Backend.Service.Port.Number && sp.Port != 0
					}) {
						t.Errorf("Ingress %s: Service %s has no port %v", o.Name, s.Name, p.Backend.Service.Port)
					}
				}
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			if _, ok := deployments[o.Spec.ScaleTargetRef.Name]; !ok || o.Spec.ScaleTargetRef.Kind != "Deployment" {
				t.Errorf("HPA %s scales %s %s, which is not rendered", o.Name, o.Spec.ScaleTargetRef.Kind, o.Spec.ScaleTargetRef.Name)
			}
			if d := deployments[o.Spec.ScaleTargetRef.Name]; d != nil {
				if d.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().IsZero() {
					t.Errorf("HPA %s scales on CPU, %s requests none", o.Name, d.Name)
				}
			}
		case *policyv1.PodDisruptionBudget:
			n := 0
			for _, d := range deployments {
				if subset(o.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
					n++
					replicas := int32(1)
					if d.Spec.Replicas != nil {
						replicas = *d.Spec.Replicas
					}
					if m, ok := hpaMin[d.Name]; ok {
						replicas = m
					}
					if o.Spec.MinAvailable != nil && int32(o.Spec.MinAvailable.IntValue()) >= replicas {
						t.Errorf("PDB %s: minAvailable %v leaves no disruption of %s's %d replicas", o.Name, o.Spec.MinAvailable, d.Name, replicas)
					}
				}
			}
			if n == 0 {
				t.Errorf("PDB %s selects no Deployment", o.Name)
			}
		}
	}
	// The Prometheus Operator's PodMonitor scrapes named ports that exist.
	var pm struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			PodMetricsEndpoints []struct {
				Port, Path string
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(deployDir, "k8s", "prometheus-operator", "podmonitor.yaml"))), &pm); err != nil {
		t.Fatalf("podmonitor.yaml: %v", err)
	}
	for _, w := range workloads {
		if w.kind != "Deployment" {
			continue
		}
		if !subset(pm.Spec.Selector.MatchLabels, w.labels) {
			t.Errorf("the PodMonitor does not select Deployment %s's pods", w.name)
			continue
		}
		hit := false
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if _, ok := podPorts[w.name][ep.Port]; ok {
				hit = true
				paths.add(invOf[w.name], ep.Path, "PodMonitor port "+ep.Port)
			}
		}
		if !hit {
			t.Errorf("the PodMonitor scrapes no port of Deployment %s", w.name)
		}
	}
}

// podFiles writes the ConfigMap files a container mounts to a temporary
// directory and maps their paths in the container to them.
func podFiles(t *testing.T, r *rendered, spec corev1.PodSpec, c corev1.Container) map[string]string {
	files := map[string]string{}
	dir := t.TempDir()
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil || r.cms[v.ConfigMap.Name] == nil {
				continue
			}
			for k, data := range r.cms[v.ConfigMap.Name].Data {
				host := filepath.Join(dir, m.Name+"-"+k)
				if err := os.WriteFile(host, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
				files[strings.TrimSuffix(m.MountPath, "/")+"/"+k] = host
			}
		}
	}
	return files
}

// checkPodFile: a file the flags name is mounted from a rendered
// ConfigMap that has it (and a sites file loads).
func checkPodFile(t *testing.T, where string, r *rendered, spec corev1.PodSpec, c corev1.Container, path string) {
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		key := strings.TrimPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm, ok := r.cms[v.ConfigMap.Name]
			if !ok {
				t.Errorf("%s: ConfigMap %s is not rendered", where, v.ConfigMap.Name)
				return
			}
			data, ok := cm.Data[key]
			if !ok {
				t.Errorf("%s: ConfigMap %s has no %s", where, cm.Name, key)
				return
			}
			if strings.HasSuffix(key, "sites.json") {
				f := filepath.Join(t.TempDir(), key)
				if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := collector.LoadSitesFile(f); err != nil {
					t.Errorf("%s: %v", where, err)
				}
			}
			return
		}
	}
	t.Errorf("%s: %s is not mounted from a ConfigMap", where, path)
}

// TestDeployEndpointsServed starts each service the deploy files run
// (against a real broker and ClickHouse) and asks it every path that a
// probe, health check or scrape of those files asks.
func TestDeployEndpointsServed(t *testing.T) {
	paths := served{}
	checkCompose(t, paths)
	checkManifests(t, paths)
	if t.Failed() {
		t.FailNow()
	}
	if len(paths) == 0 {
		t.Fatal("the deploy files probe nothing")
	}
	b := testenv.Broker(t, devstack.BrokerConfig{})
	chc, _ := testenv.Database(t)
	sitesFile := filepath.Join(deployDir, "compose", "sites.json")
	for cmd, svc := range paths {
		t.Run(cmd, func(t *testing.T) {
			port, err := devstack.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			fs := flagsOf(t, cmd)
			// Only the addresses change: everything else at its default.
			args := []string{"-http.addr", addr}
			set := func(name, v string) {
				if fs.Lookup(name) != nil {
					args = append(args, "-"+name, v)
				}
			}
			set("kafka.brokers", strings.Join(b.Addrs, ","))
			set("clickhouse.addr", chc.Addr)
			set("clickhouse.database", chc.Database)
			set("sites.file", sitesFile)
			set("log.level", "error")
			// Files the deploy file mounts, from the host; the variables
			// they name (a rules file's url_env) as the deploy file sets them.
			for k, v := range svc.inv.env {
				if !strings.HasPrefix(k, envflag.Prefix) {
					t.Setenv(k, v)
				}
			}
			fs.VisitAll(func(f *flag.Flag) {
				if v := svc.inv.value(f.Name); v != "" && svc.inv.files[v] != "" && f.Name != "sites.file" {
					set(f.Name, svc.inv.files[v])
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- commands[cmd].run(ctx, args) }()
			defer func() {
				cancel()
				select {
				case err := <-done:
					if err != nil && !errors.Is(err, context.Canceled) {
						t.Errorf("%s: %v", cmd, err)
					}
				case <-time.After(time.Minute):
					t.Errorf("%s did not stop within a minute", cmd)
				}
			}()
			client := &http.Client{Timeout: 5 * time.Second}
			for path, where := range svc.paths {
				deadline := time.Now().Add(90 * time.Second)
				for {
					select {
					case err := <-done:
						t.Fatalf("%s exited: %v", cmd, err)
					default:
					}
					// "public /path" (an Ingress's path): an answer other
					// than 404 to GET, OPTIONS or POST shows a route (a POST
					// without a write key is refused, not unknown); a probed
					// or scraped path must answer GET with 200.
					p, public := strings.CutPrefix(path, "public ")
					methods := []string{http.MethodGet}
					if public {
						methods = append(methods, http.MethodOptions, http.MethodPost)
					}
					code := 0
					for _, m := range methods {
						req, _ := http.NewRequest(m, "http://"+addr+p, nil)
						req.Header.Set("Origin", "https://deploy-test.invalid")
						resp, err := client.Do(req)
						if err != nil {
							code = 0
							break
						}
						resp.Body.Close()
						if code = resp.StatusCode; code != http.StatusNotFound {
							break
						}
					}
					if code == http.StatusOK || public && code != 0 && code != http.StatusNotFound {
						break
					}
					if code == http.StatusNotFound || time.Now().After(deadline) {
						t.Errorf("%s asks %s %s: answer %d (%v)", where, cmd, path, code, err)
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		})
	}
}

func portNumber(p intstr.IntOrString, named map[string]int32) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	return named[p.StrVal]
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func maps_copy(dst, src map[string]string) {
	for k, v := range src {
		dst[k] = v
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readEnvFile reads KEY=VALUE lines (# comments) as docker compose does.
func readEnvFile(t *testing.T, p string) map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("env file: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", p, line)
		}
		env[k] = v
	}
	return env
}

// TestReplicasFitPartitions: the processor and alerter Deployments are
// sized to their topics' partitions as the compose topics job creates
// them (more consumers than partitions would idle; an uneven share leaves
// one replica with more partitions than the others).
func TestReplicasFitPartitions(t *testing.T) {
	compose := readFile(t, filepath.Join(deployDir, "compose", "docker-compose.yml"))
	partitions := map[string]int{}
	for _, m := range regexp.MustCompile(`--topic (\S+) --partitions (\d+)`).FindAllStringSubmatch(compose, -1) {
		partitions[m[1]], _ = strconv.Atoi(m[2])
	}
	if len(partitions) == 0 {
		t.Fatal("the compose topics job creates no topic")
	}
	r := renderOverlay(t)
	checked := 0
	for _, o := range r.objects {
		d, ok := o.(*appsv1.Deployment)
		if !ok || d.Spec.Replicas == nil {
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if len(c.Args) == 0 {
			continue
		}
		fs := flagsOf(t, c.Args[0])
		topic := fs.Lookup("kafka.topic")
		group := fs.Lookup("kafka.group")
		if topic == nil || group == nil {
			continue // not a consumer group member
		}
		for _, e := range c.Env {
			if e.Name == envflag.Name("kafka.topic") && e.Value != "" {
				topic.Value.Set(e.Value)
			}
		}
		n, ok := partitions[topic.Value.String()]
		if !ok {
			t.Errorf("Deployment %s consumes %s, which the compose topics job does not create", d.Name, topic.Value)
			continue
		}
		checked++
		if int(*d.Spec.Replicas) > n || n%int(*d.Spec.Replicas) != 0 {
			t.Errorf("Deployment %s: %d replicas for the %d partitions of %s", d.Name, *d.Spec.Replicas, n, topic.Value)
		}
	}
	if checked == 0 {
		t.Error("no Deployment of a consumer group was checked")
	}
}
