package beacon

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestDemoPages(t *testing.T) {
	h := DemoHandler("http://127.0.0.1:8080/", "wk_demo")
	snippet, err := os.ReadFile("dist/snippet.min.js")
	if err != nil {
		t.Fatal(err)
	}
	head := string(snippet[:bytes.Index(snippet, []byte("(window,document,"))])
	pages := []string{"/", "/index.html", "/products.html", "/product.html", "/cart.html", "/checkout.html", "/thanks.html", "/account.html"}
	for _, p := range pages {
		resp := get(t, h, "GET", p)
		b := string(body(t, resp))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("%s: status %d, %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(b, head) {
			t.Errorf("%s: no current snippet", p)
		}
		if want := `(window,document,"s.js",{writeKey:"wk_demo",endpoint:"http://127.0.0.1:8080/v1/batch"})`; !strings.Contains(b, want) {
			t.Errorf("%s: snippet options not filled in: want %s", p, want)
		}
		if strings.Contains(b, "%SHOPTRAIL") || strings.Contains(b, "<!--shop.css-->") {
			t.Errorf("%s: a placeholder is left", p)
		}
		if !strings.Contains(b, "<style>") || !strings.Contains(b, ".banner{") {
			t.Errorf("%s: style sheet not inline", p)
		}
		// Every link to a page of the shop leads to one it serves.
		for _, m := range regexp.MustCompile(`href="([a-z]+\.html)`).FindAllStringSubmatch(b, -1) {
			if get(t, h, "GET", "/"+m[1]).StatusCode != 200 {
				t.Errorf("%s links to %s, which is not served", p, m[1])
			}
		}
	}
	home := string(body(t, get(t, h, "GET", "/")))
	for _, attr := range []string{`data-promotion-id="spring-opamps"`, `data-promotion-name=`, `data-creative=`, `data-position="home_hero"`, `data-promotion-id="free-shipping"`} {
		if !strings.Contains(home, attr) {
			t.Errorf("home page: no banner with %s", attr)
		}
	}
}

func TestDemoServesBeaconAndShopScript(t *testing.T) {
	h := DemoHandler("", "wk")
	for _, p := range []string{"/s.js", "/beacon.js"} {
		resp := get(t, h, "GET", p, "Accept-Encoding", "gzip")
		if resp.StatusCode != 200 || !bytes.Equal(gunzip(t, body(t, resp)), Script()) {
			t.Errorf("%s: not the beacon", p)
		}
	}
	resp := get(t, h, "GET", "/shop.js")
	if resp.StatusCode != 200 || !strings.Contains(string(body(t, resp)), "shoptrail.productViewed") {
		t.Error("/shop.js: not the shop's page code")
	}
	for _, p := range []string{"/shop.css", "/missing.html", "/demo/index.html", "/../beacon.go"} {
		if code := get(t, h, "GET", p).StatusCode; code != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, code)
		}
	}
}

func TestDemoSameOriginAndPrefix(t *testing.T) {
	// Mounted on the collector's own mux under /demo/: the pages post to
	// /v1/batch of their own origin.
	mux := http.NewServeMux()
	mux.Handle("/demo/", http.StripPrefix("/demo", DemoHandler("", "wk")))
	resp := get(t, mux, "GET", "/demo/cart.html")
	b := string(body(t, resp))
	if resp.StatusCode != 200 || !strings.Contains(b, `{writeKey:"wk",endpoint:"/v1/batch"}`) {
		t.Fatalf("status %d; options not same-origin", resp.StatusCode)
	}
	if get(t, mux, "GET", "/demo/s.js").StatusCode != 200 {
		t.Fatal("the beacon is not served under the prefix")
	}
}

func TestDemoEscapesOptions(t *testing.T) {
	h := DemoHandler(`http://x"</script><script>alert(1)//`, `k"</script>`)
	b := string(body(t, get(t, h, "GET", "/")))
	if strings.Count(b, "</script>") != strings.Count(string(body(t, get(t, DemoHandler("", "k"), "GET", "/"))), "</script>") {
		t.Fatal("an option closed the <script> element")
	}
	if !strings.Contains(b, `writeKey:"k\"\u003c/script\u003e"`) {
		t.Fatal("write key not escaped as a JavaScript string")
	}
}

func TestDemoHTTPCaching(t *testing.T) {
	h := DemoHandler("", "wk")
	first := get(t, h, "GET", "/product.html")
	if first.Header.Get("Cache-Control") != "no-cache" || first.Header.Get("ETag") == "" {
		t.Fatalf("headers: %v", first.Header)
	}
	again := get(t, h, "GET", "/product.html", "If-None-Match", first.Header.Get("ETag"))
	if again.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: status %d", again.StatusCode)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body(t, resp)), "PartsHub") {
		t.Fatal("home page over HTTP")
	}
}
