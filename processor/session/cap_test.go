package session

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

// TestEvictionOrder: at the cap, retained records go first, least recently
// seen first; then open sessions, closed early with a final row; every
// event still gets its assignment and every session its row, once.
func TestEvictionOrder(t *testing.T) {
	s, err := New(Config{MaxVisitors: 16})
	if err != nil {
		t.Fatal(err)
	}
	var out Output
	off := int64(0)
	add := func(e *shoptrail.Event) {
		s.Add(off, e)
		off++
		s.Drain(&out)
	}
	// Eight visitors whose sessions close (retained records), seen at
	// minutes 0..7; then eight with sessions still open at minute 60.
	for i := range 8 {
		add(page(fmt.Sprintf("old%d", i), fmt.Sprintf("o%d", i), at(float64(i)), "/"))
	}
	for i := range 8 {
		add(page(fmt.Sprintf("new%d", i), fmt.Sprintf("n%d", i), at(60+float64(i)/10), "/"))
	}
	if st := s.Stats(); st.Visitors != 16 || st.VisitorsEvicted != 0 {
		t.Fatalf("before the cap: %+v", st)
	}
	// The 17th visitor: evict below 14 (7/8 of 16) first, so three go:
	// the retained records of old0..old2.
	add(page("x", "x1", at(61), "/"))
	st := s.Stats()
	if st.Visitors != 14 || st.VisitorsEvicted != 3 || st.SessionsEvicted != 0 {
		t.Fatalf("after the cap: %+v", st)
	}
	for i := range 8 {
		known := s.find(packKeyParts(nil, 0, fmt.Sprintf("old%d", i), true)) >= 0
		if known != (i >= 3) {
			t.Errorf("old%d known %v", i, known)
		}
	}
	// A flood of fresh ids: the rest of the retained records go, then
	// open sessions, closed early, with their rows final.
	for i := range 40 {
		add(page(fmt.Sprintf("flood%d", i), fmt.Sprintf("f%d", i), at(62+float64(i)/100), "/"))
		if n := s.Stats().Visitors; n > 16 {
			t.Fatalf("%d visitors past the cap of 16", n)
		}
	}
	st = s.Stats()
	if st.SessionsEvicted == 0 || st.VisitorsEvicted < 40 {
		t.Fatalf("after the flood: %+v", st)
	}
	s.Flush()
	s.Drain(&out)
	assigned := map[string]int{}
	for _, a := range out.Assignments {
		if a.Status != Assigned {
			t.Errorf("assignment %+v", a)
		}
		assigned[a.MessageID]++
	}
	sessions := map[string]int{}
	for _, ss := range out.Sessions {
		if !ss.Final || ss.Events != 1 {
			t.Errorf("session %+v", ss)
		}
		sessions[ss.SessionID]++
	}
	if len(assigned) != int(off) || len(sessions) != int(off) {
		t.Errorf("%d events assigned, %d sessions, want %d each", len(assigned), len(sessions), off)
	}
	for id, n := range sessions {
		if n != 1 {
			t.Errorf("session %s emitted %d times", id, n)
		}
	}
}

// TestVisitorCapHostileFlood sends what a public write key lets anyone
// send: 100,000 fresh anonymous ids of the longest length the collector
// takes, each with a page of its own under the longest path and referrer,
// utm fields, browser, tab id and customer id of its own, 60 a second over
// 28 minutes. With the caps at 20,000 visitors and 16 MiB of estimated
// state, the live heap must stay under 32 MiB however long the flood goes
// on (uncapped, the state would hold every one of them, some 9 KB each,
// for the 30 days of the visitor retention: about 900 MB).
func TestVisitorCapHostileFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100,000 visitors")
	}
	if raceEnabled {
		t.Skip("the race detector changes memory use")
	}
	const (
		visitors  = 100_000
		maxVis    = 20_000
		maxBytes  = 16 << 20
		heapLimit = 32 << 20
	)
	s, err := New(Config{MaxVisitors: maxVis, MaxStateBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	long := func(prefix string, i, n int) string {
		id := fmt.Sprintf("%s%d-", prefix, i)
		return id + strings.Repeat("x", n-len(id))
	}
	var out Output
	peak := uint64(0)
	var peakEst int64
	for i := range visitors {
		at := t0.Add(time.Duration(i) * time.Second / 60)
		anon := long("a", i, 256)
		path := "/" + long("p", i, 2000)
		e := page(anon, long("m", i, 256), at, path,
			withRef("https://"+long("r", i, 60)+".example/"+long("q", i, 1900)),
			withUTM(long("s", i, 128), long("m", i, 128), long("c", i, 128)),
			withTab(long("t", i, 128), 1), withUser(long("u", i, 256)),
			withDevice("desktop", long("b", i, 128), "Linux"))
		e.Context.Campaign.Term, e.Context.Campaign.Content = long("k", i, 128), long("n", i, 128)
		s.Add(int64(i), e)
		if n := s.Stats().Visitors; n > maxVis {
			t.Fatalf("%d visitors past the cap of %d", n, maxVis)
		}
		// Checked as a new visitor arrives: the state may pass the cap
		// by what that visitor's event adds.
		if est := s.StateBytes(); est > maxBytes+64<<10 {
			t.Fatalf("estimated state %d bytes past the cap of %d", est, maxBytes)
		}
		if i%2000 == 1999 { // as the processor does: drain, store, checkpoint
			s.Drain(&out)
			out.Reset()
			s.Checkpoint(nil)
		}
		if i%25_000 == 24_999 {
			out = Output{}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap := ms.HeapAlloc - min(ms.HeapAlloc, base.HeapAlloc)
			peak = max(peak, heap)
			peakEst = max(peakEst, s.StateBytes())
			t.Logf("%d visitors sent: heap %.1f MiB, estimated state %.1f MiB, %+v", i+1, float64(heap)/(1<<20),
				float64(s.StateBytes())/(1<<20), s.Stats())
		}
	}
	runtime.KeepAlive(s)
	st := s.Stats()
	if st.VisitorsEvicted == 0 || st.SessionsEvicted == 0 {
		t.Errorf("no eviction: %+v", st)
	}
	if peak > heapLimit {
		t.Errorf("live heap reached %.1f MiB, limit %d MiB", float64(peak)/(1<<20), heapLimit>>20)
	}
	t.Logf("peak live heap %.1f MiB, peak estimate %.1f MiB", float64(peak)/(1<<20), float64(peakEst)/(1<<20))
}
