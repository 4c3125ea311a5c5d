package beacon

import (
	"embed"
	"encoding/json"
	"net/http"
	"path"
	"strings"
)

// The demo shop: static pages (home with banners, product list, product
// detail, cart, checkout, thank-you, account) that load the beacon through
// the snippet, as a real shop does. Their snippet's options hold the
// placeholders "%SHOPTRAIL_WRITE_KEY%" and "%SHOPTRAIL_ENDPOINT%" (with the
// quotes), and their <head> the comment "<!--shop.css-->" where the style
// sheet goes inline; e2e/shop.js (the browser test's server) fills them
// the same way.
//
//go:embed demo/*.html demo/shop.js demo/shop.css
var demoFiles embed.FS

// DemoHandler serves the demo shop. Its pages send their events to
// collectorURL + "/v1/batch" with writeKey; an empty collectorURL means the
// origin the pages are served from (mount the handler on the collector's
// own mux). The handler also serves the beacon at /s.js and /beacon.js, the
// way a shop serves it from its own domain, and works under a path prefix
// (http.StripPrefix): its links are relative.
//
// Paths: / (the home page), /NAME.html, /shop.js (the shop's page code),
// /s.js and /beacon.js. The pages are rendered once, here.
func DemoHandler(collectorURL, writeKey string) http.Handler {
	css, err := demoFiles.ReadFile("demo/shop.css")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	fill := strings.NewReplacer(
		`"%SHOPTRAIL_WRITE_KEY%"`, jsString(writeKey),
		`"%SHOPTRAIL_ENDPOINT%"`, jsString(strings.TrimSuffix(collectorURL, "/")+"/v1/batch"),
		"<!--shop.css-->", "<style>\n"+string(css)+"</style>",
	)
	d := &demo{files: map[string]http.Handler{
		"/s.js":      beaconAsset,
		"/beacon.js": beaconAsset,
	}}
	entries, err := demoFiles.ReadDir("demo")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := demoFiles.ReadFile("demo/" + e.Name())
		if err != nil {
			panic(err)
		}
		switch path.Ext(e.Name()) {
		case ".html":
			d.files["/"+e.Name()] = newAsset([]byte(fill.Replace(string(b))), "text/html; charset=utf-8", "no-cache")
		case ".js":
			d.files["/"+e.Name()] = newAsset(b, "text/javascript; charset=utf-8", "no-cache")
		}
	}
	d.files["/"] = d.files["/index.html"]
	return d
}

type demo struct{ files map[string]http.Handler }

func (d *demo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "" {
		p = "/"
	}
	h, ok := d.files[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.ServeHTTP(w, r)
}

// jsString returns s as a JavaScript string literal that is safe inside a
// <script> element: encoding/json escapes <, > and &, and U+2028/U+2029.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}
