package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"github.com/valyala/fastjson"

	"github.com/shoptrail/shoptrail"
)

// request is the state of one ingest request, pooled: its buffers are
// reused by later requests once Kafka has answered for its events.
type request struct {
	s           *Server
	site        *Site
	cleaner     *cleaner
	typ         string // the endpoint's type; "" for /v1/batch and the pixel
	pixel       bool
	browser     bool // sent by a browser (Origin header, or the pixel)
	deep        bool // the body nests deeper than events may
	badUTF8     bool // the body has invalid UTF-8 somewhere
	headerUA    string
	headerUACut bool // headerUA was cut to maxTextLen
	ip          string
	sentAt      time.Time // the batch's sentAt

	receivedAt         time.Time
	adoptFrom, adoptTo string // id cookie: rewrite this anonymousId

	// Per message.
	dup                 *fieldError // the first repeated key
	renames             []keyRename
	textClean           bool // no string in the body may hold PII (scanJSON): sanitize skips redacting texts
	edits               []propEdit
	pageInfo, propsInfo urlInfo // what cleaning the page URL (context, properties) learned
	truncated           bool
	ctxTraits, props    *fastjson.Value
	flags               [4]string

	// ps holds the body and its parse: given back as soon as the events
	// are encoded, so a request waiting for Kafka holds only out.
	ps       *parseState
	scratch  []byte
	out      []byte
	msgs     []kafka.Message
	rejected []rejection
	event    shoptrail.Event
	// produceCtx bounds the wait for Kafka; kept for the next request
	// while it has not expired.
	produceCtx *deadlineCtx
}

type parseState struct {
	body   []byte
	parser fastjson.Parser
	arena  fastjson.Arena
	values int // in the body
	most   int // the most values its parser held: it keeps room for as many
}

// valueCost is the most memory one parsed JSON value holds: fastjson's
// Value is 80 bytes, in a slice that grows by 1.25 at this size while the
// arrays it outgrew stay referenced by the values in them (up to 5 x 80
// bytes in all), plus its object entry or array slot.
const valueCost = 448

// maxPooledValues: a parse state that held more values is left to the GC
// rather than pooled with its parser's room (~0.7 MiB).
const maxPooledValues = 4096

// parseCost is the memory a body and its parse hold at most.
func parseCost(bodyLen, values int) int64 {
	return int64(bodyLen) + int64(values)*valueCost + 8<<10
}

// eventOverhead is what enrichment adds to an encoded event at most (a
// user agent from the header, times, device, IP, flags, the message).
const eventOverhead = 1024

// encodeCost is the memory of a request's encoded events at most: its
// body and each event's enrichment, twice (the buffer grows by doubling,
// and messages keep the arrays it outgrew).
func encodeCost(bodyLen, events int) int64 {
	return 2 * (int64(bodyLen) + int64(events)*eventOverhead)
}

// reserveUpTo raises a request's reservation to need bytes of the
// in-flight budget; false (counted as shed) when the budget cannot give
// them.
func (s *Server) reserveUpTo(reserved *int64, need int64) bool {
	more := need - *reserved
	if more <= 0 {
		return true
	}
	if !s.budget.acquire(more) {
		s.m.events.WithLabelValues(resultShed, reasonInflight).Inc()
		return false
	}
	*reserved = need
	s.m.inflightBytes.Add(float64(more))
	return true
}

// Free lists of parse states and requests, bounded in bytes (sync.Pool is
// not: it keeps whatever a burst left until two GCs pass), so what they
// hold beside the in-flight budget is bounded too: 5 MiB each, counted by
// the capacity of what they keep, at most 128 KiB bodies and buffers and
// parsers that held at most 4,096 values. (Counts of 8 and 16 held about
// as much at most, but missed with 64 requests in flight, each miss
// growing new buffers.)
var (
	parseStates = newFreeList[parseState](5 << 20)
	requests    = newFreeList[request](5 << 20)
)

// freeList keeps T for reuse, up to limit bytes in all (each counted as
// put says) and 1,024 of them; the last put is the first got.
type freeList[T any] struct {
	mu    sync.Mutex
	items []pooled[T]
	bytes int
	limit int
}

type pooled[T any] struct {
	x    *T
	size int
}

func newFreeList[T any](limit int) *freeList[T] { return &freeList[T]{limit: limit} }

func (f *freeList[T]) get() *T {
	f.mu.Lock()
	if n := len(f.items); n > 0 {
		it := f.items[n-1]
		f.items[n-1] = pooled[T]{}
		f.items = f.items[:n-1]
		f.bytes -= it.size
		f.mu.Unlock()
		return it.x
	}
	f.mu.Unlock()
	return new(T)
}

// put keeps x, of size bytes, when there is room.
func (f *freeList[T]) put(x *T, size int) {
	f.mu.Lock()
	if f.bytes+size <= f.limit && len(f.items) < 1024 {
		f.items = append(f.items, pooled[T]{x, size})
		f.bytes += size
	}
	f.mu.Unlock()
}

// Sizes of what the free lists keep: a parsed value (fastjson.Value) and a
// message.
const (
	valueSize   = int(unsafe.Sizeof(fastjson.Value{}))
	messageSize = int(unsafe.Sizeof(kafka.Message{}))
)

// releaseParse gives rq's body and parse back to the pool; what was viewed
// in them must be encoded by now.
func (rq *request) releaseParse() {
	ps := rq.ps
	if ps == nil {
		return
	}
	rq.ps = nil
	if cap(ps.body) > maxPooledBuffer || ps.most > maxPooledValues {
		return
	}
	ps.body, ps.values = ps.body[:0], 0
	ps.arena.Reset()
	parseStates.put(ps, int(unsafe.Sizeof(*ps))+cap(ps.body)+ps.most*valueSize)
}

type rejection struct {
	index int
	err   *fieldError
}

const maxPooledBuffer = 128 << 10 // larger buffers are left to the GC

func (s *Server) getRequest() *request {
	rq := requests.get()
	rq.s = s
	return rq
}

func (s *Server) putRequest(rq *request) {
	rq.releaseParse()
	if cap(rq.out) > maxPooledBuffer || cap(rq.scratch) > maxPooledBuffer {
		return
	}
	clear(rq.msgs)
	clear(rq.renames)
	*rq = request{scratch: rq.scratch[:0], out: rq.out[:0], msgs: rq.msgs[:0], rejected: rq.rejected[:0], renames: rq.renames[:0], edits: rq.edits[:0], produceCtx: rq.produceCtx}
	requests.put(rq, int(unsafe.Sizeof(*rq))+cap(rq.out)+cap(rq.scratch)+cap(rq.msgs)*messageSize)
}

// status is an answer that is not 200: the HTTP status, the message, the
// events it concerns and their result label.
type status struct {
	code       int
	msg        string
	retryAfter time.Duration
	reason     string // refusedReason's label; "" derives it from code
}

func (st *status) Error() string { return st.msg }

func fail(code int, msg string) *status { return &status{code: code, msg: msg} }

// failR is fail with the reason it is counted under.
func failR(code int, reason, msg string) *status {
	return &status{code: code, msg: msg, reason: reason}
}

// refusedReason is the label under which a whole request's refusal is
// counted (shoptrail_collector_requests_refused_total).
func (st *status) refusedReason() string {
	if st.reason != "" {
		return st.reason
	}
	switch st.code {
	case http.StatusForbidden:
		return refusedOrigin
	case http.StatusRequestEntityTooLarge:
		return refusedTooLarge
	case http.StatusTooManyRequests:
		return refusedRateLimit
	case http.StatusServiceUnavailable:
		return refusedUnavailable
	}
	return refusedBadRequest
}

var (
	okBody   = []byte(`{"success":true}` + "\n")
	gifBytes = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
)

func (s *Server) ingestHandler(typ, route string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := s.ingest(w, r, typ, false)
		s.observe(route, code, start)
	}
}

func (s *Server) observe(route string, code int, start time.Time) {
	s.m.observer(route, code).Observe(time.Since(start).Seconds())
}

// Header values set on every answer, shared (net/http does not modify them).
var (
	jsonType    = []string{"application/json"}
	gifType     = []string{"image/gif"}
	noStore     = []string{"no-store, max-age=0"}
	retryOneSec = []string{"1"}
)

// pixelHandler serves GET /v1/p.gif?data=<base64url JSON message>: one
// message, answered with a 1x1 GIF whatever happens (the status tells the
// outcome; X-Shoptrail-Error the reason).
func (s *Server) pixelHandler(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := s.ingest(w, r, "", true)
	s.observe("pixel", code, start)
}

// idHandler answers the collector's anonymous id cookie, for pages that
// want it before sending anything: {"anonymousId": "..."} ("" without one).
func (s *Server) idHandler(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r, nil)
	id := s.cookieID(r)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(shoptrail.AppendJSONString([]byte(`{"anonymousId":`), id))
	w.Write([]byte("}\n"))
}

// preflight answers CORS preflight requests for the union of the sites'
// allowed origins (preflights carry no write key). It allows whatever
// request headers the browser asks for: SDKs add their own (RudderStack's
// AnonymousId and retry headers, analytics.js's X-Retry-Count on retries,
// Jitsu's X-Write-Key), and a header the preflight refuses loses the event
// silently. The tracking paths only take writes, authenticated by the write
// key and checked against the site's origins on the request itself, so a
// list of headers would protect nothing (README: CORS).
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !s.cfg.Sites.AnyAllows(origin) {
		s.m.refusal(refusedOrigin)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && len(req) <= 2048 && headerList(req) {
		h.Set("Access-Control-Allow-Headers", req)
	} else {
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Content-Encoding")
	}
	h.Set("Access-Control-Max-Age", "86400")
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}

// headerList tells whether s is a comma-separated list of header names
// (RFC 9110 tokens), so that it can be reflected as it is.
func headerList(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ',' || c == ' ' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// exposed are the response headers browser code may read: Retry-After
// tells an SDK when to retry a 429 or 503.
var exposed = []string{"Retry-After, X-Shoptrail-Error"}

// cors sets the CORS headers of a response to a browser whose origin the
// site (or, before the site is known, any site) allows.
func (s *Server) cors(w http.ResponseWriter, r *http.Request, site *Site) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	if (site != nil && site.AllowsOrigin(origin)) || (site == nil && s.cfg.Sites.AnyAllows(origin)) {
		h := w.Header()
		if h.Get("Access-Control-Allow-Origin") == origin {
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h["Access-Control-Expose-Headers"] = exposed
		h.Add("Vary", "Origin")
	}
}

// sdkMetrics takes analytics.js's telemetry posts (/v1/m), and
// RudderStack's (/rsaMetrics), and drops them:
// they count the SDK's own calls, nothing about the shop's visitors.
func (s *Server) sdkMetrics(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r, nil)
	io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	s.m.sdkMetrics.Inc()
	w.Header()["Content-Type"] = jsonType
	w.Write(okBody)
}

// endpointList is what a request to an unknown path is told.
const endpointList = "POST /v1/batch (or /v1/b), POST /v1/track, /v1/page, /v1/screen, /v1/identify, /v1/group, /v1/alias " +
	"(or /v1/t, /v1/p, /v1/s, /v1/i, /v1/g, /v1/a), POST /beacon/v1/batch, POST /api/s/<type>, GET /v1/p.gif?data=..., " +
	"GET /s.js, GET /healthz, GET /readyz, GET /metrics"

// notFound answers a path the collector does not serve, or an ingest path
// with the wrong method, with the list of endpoints.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r, nil)
	s.m.refusal(refusedNotFound)
	s.rejects.refusedRequest(refusedNotFound)
	msg := "no endpoint " + r.Method + " " + truncate(strings.ToValidUTF8(r.URL.Path, "?"), 200)
	if r.Method != http.MethodPost && ingestPath(r.URL.Path) {
		msg = r.Method + " " + r.URL.Path + ": events are sent with POST (a browser without JavaScript uses GET /v1/p.gif?data=...)"
	}
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(http.StatusNotFound)
	b := shoptrail.AppendJSONString([]byte(`{"success":false,"error":`), msg+"; the collector serves "+endpointList)
	w.Write(append(b, "}\n"...))
}

// ingestPath tells whether path is one of the POST ingest endpoints.
func ingestPath(path string) bool {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return false
	}
	switch path[i+1:] {
	case "batch", "b", "track", "t", "page", "p", "screen", "s", "identify", "i", "group", "g", "alias", "a":
		return true
	}
	return false
}

// ingest handles one ingest request and returns the status it answered.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, typ string, pixel bool) int {
	s.m.inflightRequests.Inc()
	defer s.m.inflightRequests.Dec()
	rq := s.getRequest()
	rq.typ, rq.pixel = typ, pixel
	rq.receivedAt = s.now().UTC()
	// CORS first, so that a browser can read every answer, a 429's
	// Retry-After included; a site that refuses the origin answers 403.
	s.cors(w, r, nil)
	n, reserved, ok, st := s.process(w, r, rq)
	if st != nil && len(rq.rejected) == 0 {
		reason := st.refusedReason()
		s.m.refusal(reason)
		s.m.refusedRequest(reason, n)
		s.rejects.refusedRequest(reason)
	}
	if reserved > 0 {
		s.budget.release(reserved)
		s.m.inflightBytes.Sub(float64(reserved))
	}
	code := http.StatusOK
	if st != nil {
		code = st.code
	}
	s.respond(w, rq, n, st)
	if ok {
		s.putRequest(rq)
	} else {
		rq.releaseParse()
	}
	return code
}

// process does the work of ingest; n is the number of events, reserved the
// bytes taken from the budget, reusable whether rq's buffers may be reused.
func (s *Server) process(w http.ResponseWriter, r *http.Request, rq *request) (n int, reserved int64, reusable bool, st *status) {
	select {
	case <-s.shuttingDown:
		s.m.events.WithLabelValues(resultShed, reasonShuttingDown).Inc()
		return 0, 0, true, &status{code: http.StatusServiceUnavailable, msg: "collector is shutting down, retry later", retryAfter: time.Second}
	default:
	}
	addr := s.clientAddr(r)
	if ok, wait := s.ipLimit.allow(ipBlock(addr), 1); !ok {
		s.m.events.WithLabelValues(resultShed, reasonRateIP).Inc()
		return 0, 0, true, &status{code: http.StatusTooManyRequests, msg: "too many requests from this network, retry later", retryAfter: wait}
	}

	// Reserve memory before reading: the body, its parse and its encoding.
	size := r.ContentLength
	var gz bool
	switch ce := r.Header.Get("Content-Encoding"); {
	case ce == "" || strings.EqualFold(ce, "identity") || rq.pixel:
	case strings.EqualFold(ce, "gzip") || strings.EqualFold(ce, "x-gzip"):
		gz = true
	default:
		return 0, 0, true, failR(http.StatusUnsupportedMediaType, refusedEncoding,
			"Content-Encoding "+strconv.Quote(truncate(ce, 40))+" is not supported: send the body as it is or gzip-compressed with Content-Encoding: gzip")
	}
	if rq.pixel {
		size = int64(len(r.URL.RawQuery))
	} else if size > s.cfg.MaxBodyBytes && !gz {
		return 0, 0, true, fail(http.StatusRequestEntityTooLarge, "body is larger than "+strconv.FormatInt(s.cfg.MaxBodyBytes, 10)+" bytes")
	} else if size < 0 || gz {
		size = s.cfg.MaxBodyBytes
	}
	// The first share: for a known size, what a body of ordinary density
	// costs in all (so that a request rarely fails to get the rest after
	// reading); for gzip, 4 x the largest body until it is read.
	reserved = 4*size + 8<<10
	if !gz && !rq.pixel {
		reserved = max(reserved, parseCost(int(size), int(size)/16)+encodeCost(int(size), int(size)/300+1))
	}
	if !s.budget.acquire(reserved) {
		s.m.events.WithLabelValues(resultShed, reasonInflight).Inc()
		return 0, 0, true, &status{code: http.StatusServiceUnavailable, msg: "collector is overloaded, retry later", retryAfter: time.Second}
	}
	s.m.inflightBytes.Add(float64(reserved))

	origin := r.Header.Get("Origin")
	rq.browser = origin != "" || rq.pixel
	// Cut before classifying; the classifier scrubs what it keeps (once
	// per distinct user agent), as sanitize does context.userAgent.
	ua := r.Header.Get("User-Agent")
	rq.headerUACut = len(ua) > maxTextLen
	rq.headerUA = truncate(ua, maxTextLen)
	rq.ip = s.anonymize(addr)

	// Read and parse.
	rq.ps = parseStates.get()
	ps := rq.ps
	if rq.pixel {
		ps.body, st = pixelBody(r, ps.body[:0], s.cfg.MaxBodyBytes)
	} else {
		ps.body, st = s.readBody(r, ps.body[:0], gz)
	}
	if st != nil {
		return 0, reserved, true, st
	}
	// One read of the body checks that it is JSON (fastjson's parser
	// accepts more: NaN, +1, 01), so that only JSON reaches Kafka, and
	// learns what the rest needs to know of it.
	shape, isJSON := scanJSON(ps.body)
	if !isJSON {
		return 0, reserved, true, failR(http.StatusBadRequest, refusedNotJSON, jsonProblem(ps.body, rq.typ != "" || rq.pixel, notJSONError(ps.body)))
	}
	values := shape.values
	rq.badUTF8 = shape.badUTF8
	rq.textClean = !shape.mayPII
	rq.deep = shape.deepest > maxDepth+3
	// A parse costs per value, not per byte ([0,0,0,...] is a value every
	// two bytes): reserve what this body's parse will hold, beyond the
	// first guess, before parsing it.
	ps.values, ps.most = values, max(ps.most, values)
	if most := s.cfg.MaxInflightBytes / 2; parseCost(len(ps.body), values) > most {
		return 0, reserved, true, fail(http.StatusRequestEntityTooLarge, "body holds too many JSON values ("+strconv.Itoa(values)+"; at most "+strconv.FormatInt((most-int64(len(ps.body)))/valueCost, 10)+" in a body this size)")
	}
	if !s.reserveUpTo(&reserved, parseCost(len(ps.body), values)+encodeCost(len(ps.body), 1)) {
		return 0, reserved, true, &status{code: http.StatusServiceUnavailable, msg: "collector is overloaded, retry later", retryAfter: time.Second}
	}
	root, err := ps.parser.ParseBytes(ps.body)
	if err != nil {
		return 0, reserved, true, failR(http.StatusBadRequest, refusedNotJSON, jsonProblem(ps.body, rq.typ != "" || rq.pixel, err))
	}
	var batch []*fastjson.Value
	var bodyKey string
	if rq.typ == "" && !rq.pixel {
		if root.Type() != fastjson.TypeObject {
			return 0, reserved, true, fail(http.StatusBadRequest, "body is not a JSON batch: want {\"batch\":[...]}")
		}
		bv := root.Get("batch")
		if bv == nil || bv.Type() != fastjson.TypeArray {
			return 0, reserved, true, fail(http.StatusBadRequest, "body is not a JSON batch: \"batch\" must be an array of messages")
		}
		batch, _ = bv.Array()
		if v := root.Get("sentAt"); !isNull(v) {
			var fe *fieldError
			if rq.sentAt, fe = parseTime(v, "sentAt"); fe != nil {
				return 0, reserved, true, fail(http.StatusBadRequest, fe.Error())
			}
		}
		bodyKey = stringField(root, "writeKey")
		if bodyKey == "" && len(batch) > 0 && batch[0].Type() == fastjson.TypeObject {
			// analytics.js in batching mode puts the key in every message.
			bodyKey = stringField(batch[0], "writeKey")
		}
	} else {
		batch = []*fastjson.Value{root}
		if root.Type() == fastjson.TypeObject {
			bodyKey = stringField(root, "writeKey")
		}
		if rq.pixel && bodyKey == "" {
			bodyKey = r.URL.Query().Get("writeKey")
		}
	}

	// Authenticate the site, then check its origin. The write key is the
	// Basic auth username (analytics.js, RudderStack), X-Write-Key
	// (Jitsu), writeKey in the body (analytics-node, sendBeacon) or in the
	// query string (RudderStack's beacon mode, sendBeacon).
	key, hasBasic := s.basicKeys[r.Header.Get("Authorization")]
	if !hasBasic {
		key, _, hasBasic = r.BasicAuth()
	}
	if !hasBasic || key == "" {
		key = r.Header.Get("X-Write-Key")
	}
	if key == "" {
		key = bodyKey
	}
	if key == "" && !rq.pixel && r.URL.RawQuery != "" {
		key = r.URL.Query().Get("writeKey")
	}
	if key == "" {
		return len(batch), reserved, true, failR(http.StatusUnauthorized, refusedNoKey, "missing write key: send it as the HTTP Basic auth username, as writeKey in the body or as ?writeKey= in the URL")
	}
	site, ok := s.cfg.Sites.ByKey(key)
	if !ok {
		return len(batch), reserved, true, failR(http.StatusUnauthorized, refusedBadKey, "unknown write key")
	}
	rq.site, rq.cleaner = site, s.cleaners[site]
	if origin != "" && !site.AllowsOrigin(origin) {
		// Set before the site was known: this site does not allow it.
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
			w.Header().Del(k)
		}
		return len(batch), reserved, true, fail(http.StatusForbidden, "origin "+strconv.Quote(truncate(origin, 100))+" is not allowed to send events for this write key")
	}
	switch {
	case len(batch) == 0:
		return 0, reserved, true, failR(http.StatusBadRequest, refusedEmpty, "batch is empty")
	case len(batch) > s.cfg.MaxBatchEvents:
		return len(batch), reserved, true, fail(http.StatusRequestEntityTooLarge, "batch has "+strconv.Itoa(len(batch))+" events, the limit is "+strconv.Itoa(s.cfg.MaxBatchEvents))
	}
	// The encoded events cost per event too: enrichment adds up to a user
	// agent and some times to each, however small it came.
	if !s.reserveUpTo(&reserved, parseCost(len(ps.body), values)+encodeCost(len(ps.body), len(batch))) {
		return len(batch), reserved, true, &status{code: http.StatusServiceUnavailable, msg: "collector is overloaded, retry later", retryAfter: time.Second}
	}
	if ok, wait := s.keyLimit.allow(key, float64(len(batch))); !ok {
		s.m.events.WithLabelValues(resultShed, reasonRateKey).Add(float64(len(batch)))
		return len(batch), reserved, true, &status{code: http.StatusTooManyRequests, msg: "too many events for this write key, retry later", retryAfter: wait}
	}
	s.idCookie(w, r, rq, root, batch)

	// Build, check and encode every event; rejected ones go to the
	// dead-letter topic with the reason.
	accepted := 0
	// The encoded events take about twice the body (it reserved as much):
	// one allocation rather than the buffer doubling its way there.
	if need := 2*len(ps.body) + 256*len(batch); len(rq.out) == 0 && cap(rq.out) < need {
		rq.out = make([]byte, 0, need)
	}
	for i, v := range batch {
		rq.scratch = rq.scratch[:0]
		e := &rq.event
		// Scrub first, whatever becomes of the message: the event and a
		// dead letter are both made of what sanitize leaves.
		dup := rq.sanitize(v)
		fe := rq.precheck(v)
		if fe == nil {
			fe = dup
		}
		if fe == nil {
			fe = rq.build(v, e)
		}
		if fe != nil {
			rq.reject(i, v, fe)
			continue
		}
		topic := s.cfg.Topic
		if e.Context.Bot.IsBot {
			s.m.bots.Inc()
			if s.cfg.BotTopic != "" {
				topic = s.cfg.BotTopic
			}
		}
		k := len(rq.out)
		rq.out = append(rq.out, e.Key()...)
		vstart := len(rq.out)
		rq.out = e.AppendJSON(rq.out)
		// -http.max-event-bytes bounds the whole event as stored.
		if len(rq.out)-vstart > s.cfg.MaxEventBytes {
			rq.out = rq.out[:k] // no message refers to these bytes yet
			rq.reject(i, v, &fieldError{msg: "event is larger than " + strconv.Itoa(s.cfg.MaxEventBytes) + " bytes", label: reasonTooLarge})
			continue
		}
		rq.msgs = append(rq.msgs, kafka.Message{Topic: topic, Key: rq.out[k:vstart:vstart], Value: rq.out[vstart:]})
		accepted++
	}
	// Messages keep slices of rq.out taken as it grew: append never
	// changes bytes already written, and a moved array stays alive. The
	// parse is no longer needed. (The request keeps its whole reservation
	// until answered: giving the parse's share back here let more requests
	// wait for Kafka at once, and the collector's resident memory under
	// 400-event batches doubled, to 393 MiB, through what the producer
	// holds beside them.)
	rq.releaseParse()
	// Not r.Context(): a client that goes away does not cancel the
	// produce of events already taken (and a background deadline is cheaper).
	rq.produceCtx = startDeadline(rq.produceCtx, s.cfg.ProduceTimeout)
	err = s.producer.Produce(rq.produceCtx, rq.msgs)
	rq.produceCtx = rq.produceCtx.stop()
	if err != nil {
		reusable = !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
		s.m.events.WithLabelValues(resultShed, reasonKafka).Add(float64(len(batch)))
		s.log.Warn("cannot store events", "site", site.ID, "events", len(batch), "err", err)
		return len(batch), reserved, reusable, &status{code: http.StatusServiceUnavailable, msg: "events could not be stored, retry later", retryAfter: time.Second}
	}
	s.m.accepted.Add(float64(accepted))
	for _, rj := range rq.rejected {
		s.m.events.WithLabelValues(resultRejected, rj.err.label).Inc()
		s.rejects.rejected(site.ID, rj.err.msg)
	}
	if len(rq.rejected) > 0 {
		return len(batch), reserved, true, fail(http.StatusBadRequest, rejectedMessage(rq, len(batch)))
	}
	return len(batch), reserved, true, nil
}

// precheck rejects, before building, what the whole body's checks found
// somewhere: invalid UTF-8 or too deep nesting in this event.
func (rq *request) precheck(v *fastjson.Value) *fieldError {
	if rq.badUTF8 {
		start := len(rq.scratch)
		rq.scratch = v.MarshalTo(rq.scratch)
		ok := utf8.Valid(rq.scratch[start:])
		rq.scratch = rq.scratch[:start]
		if !ok {
			return &fieldError{msg: "contains invalid UTF-8", label: reasonInvalid}
		}
	}
	if rq.deep && depth(v) > maxDepth+2 {
		return &fieldError{msg: "nests objects or arrays deeper than 16 levels", label: reasonInvalid}
	}
	return nil
}

// reject records a rejected event and queues it for the dead-letter topic:
// the message as sent, with the reason, site and receive time in headers.
func (rq *request) reject(i int, v *fastjson.Value, fe *fieldError) {
	rq.rejected = append(rq.rejected, rejection{index: i, err: fe})
	start := len(rq.out)
	rq.out = v.MarshalTo(rq.out)
	rq.msgs = append(rq.msgs, kafka.Message{
		Topic: rq.s.cfg.DeadLetterTopic,
		Value: rq.out[start:],
		Headers: []kafka.Header{
			// The reason may quote what was sent.
			{Key: "reason", Value: []byte(redactText(fe.Error(), textRules))},
			{Key: "field", Value: []byte(redactText(fe.field, textRules))},
			{Key: "site", Value: []byte(rq.site.ID)},
			{Key: "received_at", Value: rq.receivedAt.AppendFormat(nil, time.RFC3339Nano)},
		},
	})
}

func rejectedMessage(rq *request, total int) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(rq.rejected)))
	b.WriteString(" of ")
	b.WriteString(strconv.Itoa(total))
	b.WriteString(" events rejected: ")
	for i, rj := range rq.rejected {
		if i == 10 {
			b.WriteString("; ...")
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("event ")
		b.WriteString(strconv.Itoa(rj.index))
		b.WriteString(": ")
		b.WriteString(rj.err.Error())
	}
	return b.String()
}

func stringField(o *fastjson.Value, k string) string {
	v := o.Get(k)
	if v == nil || v.Type() != fastjson.TypeString {
		return ""
	}
	b, _ := v.StringBytes()
	return string(b)
}

// respond writes the answer: Segment's {"success":true}, or a JSON error
// with, for rejected events, which ones and why.
func (s *Server) respond(w http.ResponseWriter, rq *request, n int, st *status) {
	h := w.Header()
	if st != nil && st.retryAfter > 0 {
		if secs := max(1, int((st.retryAfter+time.Second-1)/time.Second)); secs == 1 {
			h["Retry-After"] = retryOneSec
		} else {
			h.Set("Retry-After", strconv.Itoa(secs))
		}
	}
	if rq.pixel {
		h["Content-Type"] = gifType
		h["Cache-Control"] = noStore
		code := http.StatusOK
		if st != nil {
			code = st.code
			h.Set("X-Shoptrail-Error", truncate(strings.ToValidUTF8(st.msg, "?"), 300))
		}
		w.WriteHeader(code)
		w.Write(gifBytes)
		return
	}
	h["Content-Type"] = jsonType
	if st == nil {
		if rq.adoptTo != "" {
			w.WriteHeader(http.StatusOK)
			b := shoptrail.AppendJSONString([]byte(`{"success":true,"anonymousId":`), rq.adoptTo)
			w.Write(append(b, "}\n"...))
			return
		}
		w.WriteHeader(http.StatusOK)
		w.Write(okBody)
		return
	}
	b := append(rq.scratch[:0], `{"success":false,"error":`...)
	b = shoptrail.AppendJSONString(b, st.msg)
	if len(rq.rejected) > 0 && st.code == http.StatusBadRequest {
		b = append(b, `,"accepted":`...)
		b = strconv.AppendInt(b, int64(n-len(rq.rejected)), 10)
		b = append(b, `,"rejected":[`...)
		for i, rj := range rq.rejected {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"index":`...)
			b = strconv.AppendInt(b, int64(rj.index), 10)
			b = append(b, `,"field":`...)
			b = shoptrail.AppendJSONString(b, rj.err.field)
			b = append(b, `,"error":`...)
			b = shoptrail.AppendJSONString(b, rj.err.msg)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, "}\n"...)
	rq.scratch = b
	w.WriteHeader(st.code)
	w.Write(b)
}

var gzipReaders sync.Pool

// readBody reads the request body into buf, decoding gzip, within
// MaxBodyBytes (after decoding: a gzip bomb stops at the limit).
func (s *Server) readBody(r *http.Request, buf []byte, gz bool) ([]byte, *status) {
	limit := s.cfg.MaxBodyBytes
	// A body of a known length within the limit is read as it is (net/http
	// stops it at its length); others through MaxBytesReader, which stops
	// them at the limit and closes the connection after the answer.
	var rd io.Reader = r.Body
	if r.ContentLength < 0 || r.ContentLength > limit || gz {
		rd = http.MaxBytesReader(nil, r.Body, limit)
	}
	if gz {
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(rd)
		} else {
			err = zr.Reset(rd)
		}
		if err != nil {
			return buf, fail(http.StatusBadRequest, "body is not valid gzip")
		}
		defer gzipReaders.Put(zr)
		rd = io.LimitReader(zr, limit+1)
	}
	if r.ContentLength > 0 && r.ContentLength <= limit && !gz && int64(cap(buf)) < r.ContentLength {
		buf = make([]byte, 0, r.ContentLength)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if int64(len(buf)) > limit {
			return buf, fail(http.StatusRequestEntityTooLarge, "body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return buf, fail(http.StatusRequestEntityTooLarge, "body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
			}
			if gz {
				return buf, fail(http.StatusBadRequest, "body is not valid gzip")
			}
			return buf, fail(http.StatusBadRequest, "cannot read body")
		}
	}
	if len(bytes.TrimSpace(buf)) == 0 {
		return buf, failR(http.StatusBadRequest, refusedEmpty, "body is empty")
	}
	if !gz && len(buf) >= 2 && buf[0] == 0x1f && buf[1] == 0x8b {
		return buf, failR(http.StatusBadRequest, refusedNotJSON, "body is gzip-compressed but the request has no Content-Encoding: gzip header: add the header, or send the JSON uncompressed")
	}
	return buf, nil
}

// pixelBody decodes the pixel's data parameter: base64url (padding
// optional; standard base64 accepted too).
func pixelBody(r *http.Request, buf []byte, limit int64) ([]byte, *status) {
	data := r.URL.Query().Get("data")
	if data == "" {
		return buf, fail(http.StatusBadRequest, "missing data parameter: want /v1/p.gif?data=<base64url JSON message>")
	}
	data = strings.TrimRight(data, "=")
	enc := base64.RawURLEncoding
	if strings.ContainsAny(data, "+/") {
		enc = base64.RawStdEncoding
	}
	if int64(enc.DecodedLen(len(data))) > limit {
		return buf, fail(http.StatusRequestEntityTooLarge, "data is larger than "+strconv.FormatInt(limit, 10)+" bytes")
	}
	out, err := enc.AppendDecode(buf, []byte(data))
	if err != nil {
		return buf, fail(http.StatusBadRequest, "data is not base64url")
	}
	return out, nil
}

// idCookie runs the collector's first-party anonymous id cookie for
// browsers: a batch from a new visitor (the beacon's "anonymousIdNew":
// true) whose browser already has the cookie takes the cookie's id, and the
// response tells the beacon to adopt it ({"anonymousId": ...}); a browser
// without the cookie gets one holding the batch's anonymousId. The cookie
// is HttpOnly, so it survives where script-set cookies are cut short (Safari
// ITP), when the collector runs on a subdomain of the shop.
func (s *Server) idCookie(w http.ResponseWriter, r *http.Request, rq *request, root *fastjson.Value, batch []*fastjson.Value) {
	if s.cfg.IDCookie == "" || !rq.browser || batch[0].Type() != fastjson.TypeObject {
		return
	}
	cid := s.cookieID(r)
	first := stringField(batch[0], "anonymousId")
	if cid != "" {
		if root.GetBool("anonymousIdNew") && first != "" && first != cid {
			rq.adoptFrom, rq.adoptTo = first, cid
		}
		return
	}
	if !validCookieID(first) {
		return
	}
	secure := r.TLS != nil || (len(s.cfg.TrustedProxies) > 0 && r.Header.Get("X-Forwarded-Proto") == "https")
	http.SetCookie(w, &http.Cookie{
		Name: s.cfg.IDCookie, Value: first, Path: "/", Domain: s.cfg.IDCookieDomain,
		MaxAge: 400 * 24 * 3600, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	})
}

// cookieID returns the id in the request's id cookie, "" without a valid one.
func (s *Server) cookieID(r *http.Request) string {
	if s.cfg.IDCookie == "" || r.Header.Get("Cookie") == "" {
		return ""
	}
	c, err := r.Cookie(s.cfg.IDCookie)
	if err != nil || !validCookieID(c.Value) {
		return ""
	}
	return c.Value
}

func validCookieID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
