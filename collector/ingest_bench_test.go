package collector

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// nopProducer acknowledges at once: the benchmarks measure the request
// path without Kafka.
type nopProducer struct{}

func (nopProducer) Produce(context.Context, []kafka.Message) error { return nil }
func (nopProducer) Close() error                                   { return nil }

// benchEvent is the load generator's event shape (~400 bytes).
func benchEvent(i int) string {
	return `{"type":"track","event":"Product Viewed","messageId":"lg-bench-` + strconv.Itoa(i) +
		`","anonymousId":"v-` + strconv.Itoa(i%5000) + `","timestamp":"2026-11-22T10:00:00.123Z",` +
		`"properties":{"product_id":"p-17","price":19.9,"currency":"CNY"},"context":{"page":{"url":"https://shop.example/products/p-17?utm_source=baidu&utm_medium=cpc",` +
		`"path":"/products","referrer":"https://www.baidu.com/s","title":"Resistor 10k"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",` +
		`"locale":"zh-CN","library":{"name":"loadgen","version":"1"}}}`
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func benchIngest(b *testing.B, batch int) {
	s, err := NewWithOptions(Config{IPRate: -1, KeyRate: -1}, Options{Producer: nopProducer{}})
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	path := "/v1/track"
	if batch == 1 {
		body = []byte(benchEvent(1))
	} else {
		path = "/v1/batch"
		body = append(body, `{"batch":[`...)
		for i := 0; i < batch; i++ {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, benchEvent(i)...)
		}
		body = append(body, `],"sentAt":"2026-11-22T10:00:01Z"}`...)
	}
	h := s.Handler()
	r := httptest.NewRequest("POST", path, nil)
	r.SetBasicAuth("dev", "")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "https://shop.example")
	r.RemoteAddr = "192.0.2.7:1234"
	w := &discardWriter{h: http.Header{}}
	s.now = func() time.Time { return time.Date(2026, 11, 22, 10, 0, 2, 0, time.UTC) }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Body = readCloser{bytes.NewReader(body)}
		r.ContentLength = int64(len(body))
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch)/1000, "µs/event")
	b.ReportMetric(float64(testing.AllocsPerRun(10, func() {
		r.Body = readCloser{bytes.NewReader(body)}
		h.ServeHTTP(w, r)
	}))/float64(batch), "allocs/event")
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// BenchmarkIngestSingle: one event per request, through the handler, Kafka
// replaced by an instant acknowledgement.
func BenchmarkIngestSingle(b *testing.B) { benchIngest(b, 1) }

// BenchmarkIngestBatch20: 20 events per request.
func BenchmarkIngestBatch20(b *testing.B) { benchIngest(b, 20) }

// BenchmarkScanJSON: the pre-parse pass (strict JSON check, nesting, value
// count, PII pre-filter, UTF-8) over a 20-event batch of the load
// generator's events.
func BenchmarkScanJSON(b *testing.B) {
	body := benchBatchBody(20)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if sh, ok := scanJSON(body); !ok || sh.mayPII {
			b.Fatal("the load generator's events are JSON and hold no PII")
		}
	}
}

// benchBatchBody is a batch of n of the load generator's events.
func benchBatchBody(n int) []byte {
	body := []byte(`{"batch":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, benchEvent(i)...)
	}
	return append(body, `]}`...)
}
