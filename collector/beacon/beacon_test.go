package beacon

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// get requests path from h with the given request headers.
func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScriptIsTheCommittedBuild(t *testing.T) {
	onDisk, err := os.ReadFile("dist/beacon.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Script(), onDisk) {
		t.Fatal("Script() differs from dist/beacon.min.js")
	}
	if !bytes.Contains(onDisk, []byte("shoptrail-beacon")) {
		t.Fatal("dist/beacon.min.js does not look like the beacon")
	}
}

func TestHandlerServesTheScript(t *testing.T) {
	resp := get(t, Handler(), "GET", "/beacon.js")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want := map[string]string{
		"Content-Type":           "text/javascript; charset=utf-8",
		"Cache-Control":          CacheControl,
		"Vary":                   "Accept-Encoding",
		"X-Content-Type-Options": "nosniff",
		"Content-Encoding":       "",
		"Content-Length":         strconv.Itoa(len(Script())),
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if etag := resp.Header.Get("ETag"); !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
		t.Errorf("ETag %q: want a strong, quoted hash", etag)
	}
	if !bytes.Equal(body(t, resp), Script()) {
		t.Error("body is not the script")
	}
}

func TestHandlerGzip(t *testing.T) {
	plain := get(t, Handler(), "GET", "/s.js")
	f := func(acceptEncoding string, wantGzip bool) {
		t.Helper()
		resp := get(t, Handler(), "GET", "/s.js", "Accept-Encoding", acceptEncoding)
		b := body(t, resp)
		gotGzip := resp.Header.Get("Content-Encoding") == "gzip"
		if gotGzip != wantGzip {
			t.Fatalf("Accept-Encoding %q: gzip %v, want %v", acceptEncoding, gotGzip, wantGzip)
		}
		if gotGzip {
			if !bytes.Equal(gunzip(t, b), Script()) {
				t.Fatalf("Accept-Encoding %q: gzip body is not the script", acceptEncoding)
			}
			if resp.Header.Get("ETag") == plain.Header.Get("ETag") {
				t.Fatalf("the gzip representation has the plain one's ETag")
			}
			if resp.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
				t.Fatalf("Content-Length %s for %d bytes", resp.Header.Get("Content-Length"), len(b))
			}
		} else if !bytes.Equal(b, Script()) {
			t.Fatalf("Accept-Encoding %q: body is not the script", acceptEncoding)
		}
	}
	f("gzip", true)
	f("gzip, deflate, br, zstd", true)       // what browsers send
	f("br;q=1.0, gzip;q=0.8, *;q=0.1", true) // q-values
	f("x-gzip", true)                        // the old alias
	f("*", true)                             // anything goes
	f("", false)                             // nothing said: identity
	f("br", false)                           // gzip not accepted
	f("gzip;q=0", false)                     // gzip refused
	f("gzip;q=0, *", false)                  // an explicit refusal beats the wildcard
	f("*;q=0", false)                        // everything refused but identity
	f("identity", false)
}

func TestHandlerGzippedWithinBudget(t *testing.T) {
	resp := get(t, Handler(), "GET", "/s.js", "Accept-Encoding", "gzip")
	n := len(body(t, resp))
	t.Logf("beacon: %d bytes, %d gzipped", len(Script()), n)
	if n > 2000 {
		t.Fatalf("the gzipped beacon is %d bytes, over its 2,000-byte budget", n)
	}
}

func TestHandlerNotModified(t *testing.T) {
	first := get(t, Handler(), "GET", "/s.js")
	etag := first.Header.Get("ETag")
	gzipped := get(t, Handler(), "GET", "/s.js", "Accept-Encoding", "gzip")
	gzETag := gzipped.Header.Get("ETag")

	f := func(ifNoneMatch, acceptEncoding string, want int) {
		t.Helper()
		resp := get(t, Handler(), "GET", "/s.js", "If-None-Match", ifNoneMatch, "Accept-Encoding", acceptEncoding)
		if resp.StatusCode != want {
			t.Fatalf("If-None-Match %q, Accept-Encoding %q: status %d, want %d", ifNoneMatch, acceptEncoding, resp.StatusCode, want)
		}
		b := body(t, resp)
		if want == http.StatusNotModified {
			if len(b) != 0 {
				t.Fatalf("304 with a body of %d bytes", len(b))
			}
			for _, k := range []string{"ETag", "Cache-Control", "Vary"} {
				if resp.Header.Get(k) == "" {
					t.Fatalf("304 without %s", k)
				}
			}
			if resp.Header.Get("Content-Encoding") != "" {
				t.Fatal("304 with a Content-Encoding")
			}
		}
	}
	f(etag, "", 304)                   // revalidation of the plain copy
	f(gzETag, "gzip", 304)             // of the gzip copy
	f("W/"+etag, "", 304)              // weak comparison for If-None-Match
	f(`"other", `+gzETag, "gzip", 304) // a list
	f("*", "", 304)                    // any representation
	f(`"other"`, "", 200)              // a changed script
	f(etag, "gzip", 200)               // the plain tag does not validate the gzip copy
	f(gzETag, "", 200)                 // nor the other way round
	f(etag[:len(etag)-2]+`"`, "", 200) // a prefix is no match
}

func TestHandlerHeadAndMethods(t *testing.T) {
	resp := get(t, Handler(), "HEAD", "/s.js")
	if resp.StatusCode != 200 || len(body(t, resp)) != 0 {
		t.Fatalf("HEAD: status %d", resp.StatusCode)
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(Script())) || resp.Header.Get("ETag") == "" {
		t.Fatalf("HEAD headers: %v", resp.Header)
	}
	resp = get(t, Handler(), "POST", "/s.js")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestHandlerOverHTTP(t *testing.T) {
	// Through a real client, which asks for gzip and decodes it itself.
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/beacon.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !resp.Uncompressed {
		t.Error("the client did not get a gzip-encoded response")
	}
	if !bytes.Equal(body(t, resp), Script()) {
		t.Error("decoded body is not the script")
	}
}
