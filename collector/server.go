package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
)

// Server is the collector's HTTP service.
type Server struct {
	cfg      Config
	log      *slog.Logger
	producer Producer
	ready    atomic.Bool
	now      func() time.Time
}

// New returns a collector that produces to the brokers of cfg.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return NewWithProducer(cfg, log, newKafkaProducer(cfg.Brokers)), nil
}

// NewWithProducer returns a collector that produces through p.
func NewWithProducer(cfg Config, log *slog.Logger, p Producer) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log.With("component", "collector"), producer: p, now: time.Now}
}

// Handler returns the collector's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/batch", s.ingest(""))
	for _, t := range []string{shoptrail.TypeTrack, shoptrail.TypePage, shoptrail.TypeScreen,
		shoptrail.TypeIdentify, shoptrail.TypeGroup, shoptrail.TypeAlias} {
		mux.HandleFunc("POST /v1/"+t, s.ingest(t))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	return mux
}

// Run serves HTTP on cfg.Addr until ctx is done, then shuts down: stop
// accepting, drain in-flight requests, close the Kafka writer (which flushes).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests use port 0).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      s.cfg.ProduceTimeout + 15*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go s.probe(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("collector listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		s.producer.Close()
		return fmt.Errorf("collector HTTP server: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ProduceTimeout+5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx) // stop accepting, wait for in-flight requests
	if cerr := s.producer.Close(); cerr != nil && err == nil {
		err = cerr
	}
	s.log.Info("collector stopped")
	return err
}

// probe checks that the broker answers until it does once, so /readyz turns
// ready before the first event arrives.
func (s *Server) probe(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for !s.ready.Load() {
		for _, b := range s.cfg.Brokers {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			conn, err := kafka.DialContext(dctx, "tcp", b)
			cancel()
			if err != nil {
				continue
			}
			_, err = conn.ReadPartitions(s.cfg.Topic)
			conn.Close()
			if err == nil {
				s.ready.Store(true)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "error": "Kafka not reached yet"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

// httpError is an error with the status it is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) ingest(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := s.handle(r, typ)
		if err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"success": true})
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			s.log.Error("cannot ingest", "err", err)
			he = &httpError{status: http.StatusServiceUnavailable, msg: "events could not be stored, retry later"}
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(w, he.status, map[string]any{"success": false, "error": he.msg})
	}
}

func (s *Server) handle(r *http.Request, typ string) error {
	receivedAt := s.now().UTC()
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	var raws []json.RawMessage
	var sentAt, bodyKey string
	if typ == "" {
		var b batchBody
		if err := json.Unmarshal(body, &b); err != nil {
			return errorf(http.StatusBadRequest, "body is not a JSON batch: %v", err)
		}
		raws, sentAt, bodyKey = b.Batch, b.SentAt, b.WriteKey
		if len(raws) == 0 {
			return errorf(http.StatusBadRequest, "batch is empty")
		}
		if len(raws) > s.cfg.MaxBatchEvents {
			return errorf(http.StatusRequestEntityTooLarge, "batch has %d events, the limit is %d", len(raws), s.cfg.MaxBatchEvents)
		}
	} else {
		if !json.Valid(body) {
			return errorf(http.StatusBadRequest, "body is not JSON")
		}
		raws = []json.RawMessage{body}
	}
	site, err := s.site(r, bodyKey, raws)
	if err != nil {
		return err
	}
	msgs := make([]kafka.Message, 0, len(raws))
	var rejected []string
	reject := func(i int, raw []byte, err error) {
		reason := fmt.Sprintf("event %d: %v", i, err)
		rejected = append(rejected, reason)
		// Rejected events are kept, with the reason, in the dead-letter topic.
		msgs = append(msgs, kafka.Message{Topic: s.cfg.DeadLetterTopic, Value: raw, Headers: []kafka.Header{
			{Key: "reason", Value: []byte(err.Error())},
			{Key: "site", Value: []byte(site)},
			{Key: "received_at", Value: []byte(receivedAt.Format(time.RFC3339Nano))},
		}})
	}
	for i, raw := range raws {
		var m message
		if err := json.Unmarshal(raw, &m); err != nil {
			reject(i, raw, fmt.Errorf("not a JSON object: %w", err))
			continue
		}
		e, err := normalize(&m, typ, site, sentAt, receivedAt)
		if err != nil {
			reject(i, raw, err)
			continue
		}
		v, err := json.Marshal(&e)
		if err != nil {
			reject(i, raw, err)
			continue
		}
		msgs = append(msgs, kafka.Message{Topic: s.cfg.Topic, Key: []byte(e.Key()), Value: v})
	}
	if len(msgs) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ProduceTimeout)
		defer cancel()
		if err := s.producer.Produce(ctx, msgs...); err != nil {
			return err
		}
		s.ready.Store(true)
	}
	if len(rejected) > 0 {
		return errorf(http.StatusBadRequest, "%d of %d events rejected: %s", len(rejected), len(raws), strings.Join(rejected, "; "))
	}
	return nil
}

// site finds the site of the request's write key: HTTP Basic auth username,
// or the body's writeKey (Segment's own clients and sendBeacon put it there).
func (s *Server) site(r *http.Request, bodyKey string, raws []json.RawMessage) (string, error) {
	key, _, ok := r.BasicAuth()
	if !ok || key == "" {
		key = bodyKey
	}
	if key == "" && len(raws) == 1 {
		var m struct {
			WriteKey string `json:"writeKey"`
		}
		json.Unmarshal(raws[0], &m)
		key = m.WriteKey
	}
	if key == "" {
		return "", errorf(http.StatusUnauthorized, "missing write key: send it as the HTTP Basic auth username or as writeKey in the body")
	}
	site, ok := s.cfg.Sites[key]
	if !ok {
		return "", errorf(http.StatusUnauthorized, "unknown write key")
	}
	return site, nil
}

func (s *Server) readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "body is not valid gzip: %v", err)
		}
		defer zr.Close()
		rd = io.LimitReader(zr, s.cfg.MaxBodyBytes+1)
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(rd)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), n > s.cfg.MaxBodyBytes:
		return nil, errorf(http.StatusRequestEntityTooLarge, "body is larger than %d bytes", s.cfg.MaxBodyBytes)
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "cannot read body: %v", err)
	case n == 0:
		return nil, errorf(http.StatusBadRequest, "body is empty")
	}
	return buf.Bytes(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
