package collector

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxSummaryKeys bounds the distinct reasons a summary keeps: reasons
// name fields the client chose, so they are not a bounded set.
const maxSummaryKeys = 64

// rejectSummary counts rejected events by reason and refused requests by
// reason between two log lines. Refusals, which come by the thousand when
// the collector sheds load, are counted without a lock or an allocation.
type rejectSummary struct {
	mu      sync.Mutex
	events  map[string]int
	sites   map[string]int
	refused [len(refusedReasons)]atomic.Int64
}

// refusedReasons are the refusal labels, in refusedIndex order.
var refusedReasons = [...]string{refusedNotJSON, refusedEmpty, refusedBadRequest, refusedEncoding, refusedNoKey,
	refusedBadKey, refusedOrigin, refusedTooLarge, refusedRateLimit, refusedUnavailable, refusedNotFound}

var refusedIndex = func() map[string]int {
	m := map[string]int{}
	for i, r := range refusedReasons {
		m[r] = i
	}
	return m
}()

func (r *rejectSummary) add(m map[string]int, k string, n int) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	if _, ok := m[k]; !ok && len(m) >= maxSummaryKeys {
		k = "other"
	}
	m[k] += n
	return m
}

func (r *rejectSummary) rejected(site, reason string) {
	r.mu.Lock()
	r.events = r.add(r.events, reason, 1)
	r.sites = r.add(r.sites, site, 1)
	r.mu.Unlock()
}

func (r *rejectSummary) refusedRequest(reason string) {
	if i, ok := refusedIndex[reason]; ok {
		r.refused[i].Add(1)
	}
}

// take returns the counts so far and starts again.
func (r *rejectSummary) take() (events, refused, sites map[string]int) {
	for i := range r.refused {
		if n := r.refused[i].Swap(0); n > 0 {
			if refused == nil {
				refused = map[string]int{}
			}
			refused[refusedReasons[i]] = int(n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	events, sites = r.events, r.sites
	r.events, r.sites = nil, nil
	return
}

// top formats the three largest counts of m: `"a" x3, "b" x1 (+2 more)`.
func top(m map[string]int) (total int, s string) {
	keys := make([]string, 0, len(m))
	for k, n := range m {
		keys = append(keys, k)
		total += n
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for i, k := range keys {
		if i == 3 {
			b.WriteString(" (+" + strconv.Itoa(len(keys)-3) + " more)")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(truncate(k, 120)) + " x" + strconv.Itoa(m[k]))
	}
	return total, b.String()
}

// summarizeRejects logs, every interval, one line with what was rejected
// and refused since the last line; shoptrail dlq tail shows the events.
func (s *Server) summarizeRejects(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.logRejects(every)
			return
		case <-t.C:
			s.logRejects(every)
		}
	}
}

func (s *Server) logRejects(every time.Duration) {
	events, refused, sites := s.rejects.take()
	if len(events) == 0 && len(refused) == 0 {
		return
	}
	nev, topEvents := top(events)
	nref, topRefused := top(refused)
	_, topSites := top(sites)
	attrs := []any{"rejected_events", nev, "refused_requests", nref, "last", every.String()}
	if nev > 0 {
		attrs = append(attrs, "reasons", topEvents, "sites", topSites, "see", "shoptrail dlq tail")
	}
	if nref > 0 {
		attrs = append(attrs, "refused", topRefused)
	}
	s.log.Log(context.Background(), slog.LevelWarn, "rejects summary", attrs...)
}
