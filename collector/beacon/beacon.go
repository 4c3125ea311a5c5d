// Package beacon serves shoptrail's website tracker, dist/beacon.min.js:
// a Segment-compatible beacon built from src/ by build.mjs (README.md
// documents the snippet, the API and the options) and embedded here, so the
// collector binary serves exactly the committed build.
//
// The collector mounts Handler at ScriptPath and at NeutralScriptPath (a
// name no ad-blocking list matches); DemoHandler serves the demo shop.
package beacon

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// Paths the collector serves the beacon at.
const (
	ScriptPath        = "/beacon.js"
	NeutralScriptPath = "/s.js"
)

// CacheControl is sent with the script. Its URL carries no version, so
// browsers and CDNs keep a copy for five minutes only and then revalidate
// it with If-None-Match (a 304 without a body); a stale copy may serve one
// more page while that happens. A release thus reaches every visitor within
// minutes, at the cost of one small request per visitor every five.
const CacheControl = "public, max-age=300, stale-while-revalidate=86400"

//go:embed dist/beacon.min.js
var script []byte

// Script returns the beacon's JavaScript as served (uncompressed).
func Script() []byte { return bytes.Clone(script) }

// asset is one precomputed response body with its validators.
type asset struct {
	body        []byte
	gzipped     []byte
	etag        string // of body
	gzipETag    string // of gzipped: another representation, another tag
	contentType string
	cache       string // Cache-Control
}

func newAsset(body []byte, contentType, cache string) *asset {
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:16])
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	zw.Write(body)                                           // a bytes.Buffer does not fail
	zw.Close()
	return &asset{
		body:        body,
		gzipped:     buf.Bytes(),
		etag:        `"` + tag + `"`,
		gzipETag:    `"` + tag + `-gzip"`,
		contentType: contentType,
		cache:       cache,
	}
}

var beaconAsset = newAsset(script, "text/javascript; charset=utf-8", CacheControl)

// Handler serves the beacon: GET and HEAD, with a strong ETag, 304 Not
// Modified for a matching If-None-Match, and the gzip-encoded body (made
// once, at start-up) to clients that accept it. It is safe for concurrent
// use and may be mounted at any path.
func Handler() http.Handler { return beaconAsset }

func (a *asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, etag := a.body, a.etag
	h := w.Header()
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body, etag = a.gzipped, a.gzipETag
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Vary", "Accept-Encoding")
	h.Set("ETag", etag)
	h.Set("Cache-Control", a.cache)
	// A public script: any page may load it, also under COEP, and also
	// with <script crossorigin>.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: named
// (or matched by "*") with a q-value above zero.
func acceptsGzip(header string) bool {
	star := false
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "x-gzip" && coding != "*" {
			continue
		}
		ok := true
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				ok = err == nil && q > 0
			}
		}
		if coding == "*" {
			star = ok
			continue
		}
		return ok // an explicit gzip entry decides
	}
	return star
}

// etagMatch reports whether an If-None-Match header lists etag (compared
// weakly, as RFC 9110 asks for If-None-Match) or is "*".
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
