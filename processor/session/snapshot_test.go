package session

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

// restoreWorkload is genWorkload with customers identifying themselves.
func restoreWorkload(rng *rand.Rand) []*shoptrail.Event {
	events := genWorkload(rng, 200, DefaultAllowedLateness)
	for i, e := range events {
		if rng.IntN(15) == 0 {
			c := *e
			c.UserID = fmt.Sprintf("cust-%d", len(e.AnonymousID)+rng.IntN(3))
			events[i] = &c
		}
	}
	return events
}

// driver plays a processor: batches of events, a Drain per batch, an idle
// Advance now and then, a Checkpoint into a compacted changelog.
type driver struct {
	events    []*shoptrail.Event
	batch     int
	out       Output
	changelog map[string][]byte
}

// step feeds the batch starting at offset from, then drains; it returns
// the next offset.
func (d *driver) step(s *Sessionizer, from int) int {
	to := min(from+d.batch, len(d.events))
	for i := from; i < to; i++ {
		s.Add(int64(i), d.events[i])
	}
	if (from/d.batch)%5 == 4 { // "caught up": the wall clock moves on
		s.Advance(s.Watermark().Add(s.cfg.AllowedLateness + 30*time.Second))
	}
	s.Drain(&d.out)
	return to
}

func (d *driver) checkpoint(s *Sessionizer, keep func(StateRecord) bool) {
	for _, r := range s.Checkpoint(nil) {
		if keep != nil && !keep(r) {
			continue
		}
		if r.Value == nil {
			delete(d.changelog, r.Key)
		} else {
			d.changelog[r.Key] = r.Value
		}
	}
}

// records returns the changelog's contents in a random order, as a consumer
// of a compacted topic could see them.
func (d *driver) records(rng *rand.Rand) []StateRecord {
	var rs []StateRecord
	for _, k := range slices.Sorted(maps.Keys(d.changelog)) {
		rs = append(rs, StateRecord{Key: k, Value: d.changelog[k]})
	}
	rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	return rs
}

func (d *driver) finish(s *Sessionizer) {
	s.Advance(s.Watermark().Add(72 * time.Hour))
	s.Drain(&d.out)
}

// restoreConfigs are the configurations the restore tests run with: the
// defaults, and a retention so short that visitors are purged, and their
// tombstones written, all along.
var restoreConfigs = []struct {
	name string
	cfg  Config
}{
	{"defaults", Config{}},
	{"short retention", Config{VisitorRetention: 40 * time.Minute}},
	{"visitor cap", Config{MaxVisitors: 48}},
}

// TestRestoreEquivalence: checkpoint, crash, restore, continue == never
// stopped: the same sessions, assignments, links and loss counts.
func TestRestoreEquivalence(t *testing.T) {
	seed := testSeed(t)
	for _, rc := range restoreConfigs {
		t.Run(rc.name, func(t *testing.T) { testRestoreEquivalence(t, seed, rc.cfg) })
	}
}

func testRestoreEquivalence(t *testing.T, seed uint64, cfg Config) {
	rng := rand.New(rand.NewPCG(seed, 2))
	events := restoreWorkload(rng)

	ref := &driver{events: events, batch: 37}
	s, _ := New(cfg)
	for i := 0; i < len(events); {
		i = ref.step(s, i)
	}
	ref.finish(s)

	got := &driver{events: events, batch: 37, changelog: map[string][]byte{}}
	s, _ = New(cfg)
	restarts := 0
	for i := 0; i < len(events); {
		i = got.step(s, i)
		got.checkpoint(s, nil)
		if rng.IntN(4) == 0 { // crash after the checkpoint
			restarts++
			s, _ = New(cfg)
			if err := s.Restore(got.records(rng)); err != nil {
				t.Fatal(err)
			}
			if s.Offset() != int64(i-1) {
				t.Fatalf("restored offset %d, want %d", s.Offset(), i-1)
			}
		}
	}
	got.finish(s)
	t.Logf("%d events, %d restarts, %d sessions, changelog %d keys", len(events), restarts, len(ref.out.Sessions), len(got.changelog))
	if restarts == 0 {
		t.Fatal("no restart")
	}
	if cfg.MaxVisitors > 0 {
		equalRows(t, got.out, ref.out)
		return
	}
	equalOutputs(t, got.out, ref.out, true)
}

// TestRestoreAfterTornCheckpoint: the process dies while writing a
// checkpoint: only some visitor records reach the changelog and the meta
// record does not. The replay from the older meta offset must not double or
// change anything: visitors already ahead skip what they applied, the
// others redo it identically (outputs are idempotent by key downstream).
//
// Besides the random seed, it runs seeds that once failed: with a short
// retention, a visitor purged and back before the next checkpoint, then
// purged again, had its first purge's tombstone go out after its live
// record, so a torn checkpoint could leave the replay without it.
func TestRestoreAfterTornCheckpoint(t *testing.T) {
	for _, seed := range []uint64{testSeed(t), 1796619229542866884, 1796619377479568703, 1796619385130292844} {
		for _, rc := range restoreConfigs {
			if rc.cfg.MaxVisitors > 0 {
				// Not with evictions: after a torn checkpoint the replay
				// runs with some visitors ahead of the others, so the cap
				// is reached at other points (documented in the README).
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", rc.name, seed), func(t *testing.T) { testRestoreAfterTornCheckpoint(t, seed, rc.cfg) })
		}
	}
}

func testRestoreAfterTornCheckpoint(t *testing.T, seed uint64, cfg Config) {
	rng := rand.New(rand.NewPCG(seed, 3))
	events := restoreWorkload(rng)

	ref := &driver{events: events, batch: 50}
	s, _ := New(cfg)
	for i := 0; i < len(events); {
		i = ref.step(s, i)
	}
	ref.finish(s)

	got := &driver{events: events, batch: 50, changelog: map[string][]byte{}}
	s, _ = New(cfg)
	replayed, purged := int64(0), int64(0)
	for i := 0; i < len(events); {
		i = got.step(s, i)
		if rng.IntN(3) != 0 {
			got.checkpoint(s, nil)
			continue
		}
		// Torn: a random half of the visitor records, no meta record.
		got.checkpoint(s, func(r StateRecord) bool { return r.Key != MetaKey && rng.IntN(2) == 0 })
		replayed += s.Stats().Replayed
		purged += s.Stats().VisitorsPurged
		s, _ = New(cfg)
		if err := s.Restore(got.records(rng)); err != nil {
			t.Fatal(err)
		}
		i = int(s.Offset() + 1)
	}
	got.finish(s)
	replayed += s.Stats().Replayed
	purged += s.Stats().VisitorsPurged
	t.Logf("%d events skipped as already applied, %d visitor records purged", replayed, purged)
	if replayed == 0 {
		t.Error("no replayed event was skipped: the test did not tear a checkpoint")
	}
	equalOutputs(t, got.out, ref.out, false)
}

// equalOutputs compares outputs; with exact, also how often each item was
// emitted (and the loss sums), else only the distinct items, each of which
// must be identical to the reference's (same key, same row).
func equalOutputs(t *testing.T, got, want Output, exact bool) {
	t.Helper()
	if exact {
		if g, w := len(got.Sessions), len(want.Sessions); g != w {
			t.Errorf("%d sessions, want %d", g, w)
		}
		if g, w := len(got.Assignments), len(want.Assignments); g != w {
			t.Errorf("%d assignments, want %d", g, w)
		}
		if g, w := sumLoss(got.Loss), sumLoss(want.Loss); !maps.Equal(g, w) {
			t.Errorf("loss %v, want %v", g, w)
		}
	}
	// Per-event loss is exact under any replay: the Assigned rows, one per
	// message id, sum to the reference's aggregated loss.
	assignedLoss := func(as []Assignment) (map[string]string, int64) {
		m, sum := map[string]string{}, int64(0)
		for _, a := range as {
			if a.Status == Assigned {
				m[a.MessageID] = fmt.Sprintf("%d@%s", a.Lost, a.LostPath)
			}
		}
		for _, x := range m {
			var n int64
			fmt.Sscanf(x, "%d@", &n)
			sum += n
		}
		return m, sum
	}
	gl, gsum := assignedLoss(got.Assignments)
	wl, wsum := assignedLoss(want.Assignments)
	if !maps.Equal(gl, wl) {
		t.Errorf("per-event loss differs")
	}
	lostTotal := int64(0)
	for _, r := range want.Loss {
		lostTotal += r.Lost
	}
	if gsum != wsum || wsum != lostTotal {
		t.Errorf("per-event loss sums to %d (reference %d), aggregated records %d", gsum, wsum, lostTotal)
	}
	ws := map[string]Session{}
	for _, x := range want.Sessions {
		ws[x.SessionID] = x
	}
	gs := map[string]Session{}
	for _, x := range got.Sessions {
		if prev, ok := gs[x.SessionID]; ok && prev != x {
			t.Errorf("session %s emitted twice, differently:%s", x.SessionID, sessionDiff(x, prev))
		}
		gs[x.SessionID] = x
	}
	bad := 0
	for id, w := range ws {
		if d := sessionDiff(gs[id], w); d != "" {
			t.Errorf("session %s:%s", id, d)
			if bad++; bad > 5 {
				t.FailNow()
			}
		}
	}
	if len(gs) != len(ws) {
		t.Errorf("%d distinct sessions, want %d", len(gs), len(ws))
	}
	setOf := func(as []Assignment) map[Assignment]bool {
		m := map[Assignment]bool{}
		for _, a := range as {
			m[a] = true
		}
		return m
	}
	if g, w := setOf(got.Assignments), setOf(want.Assignments); !maps.Equal(g, w) {
		t.Errorf("assignments differ: %d distinct, want %d", len(g), len(w))
		for a := range w {
			if !g[a] {
				t.Errorf("missing %+v", a)
				if bad++; bad > 10 {
					t.FailNow()
				}
			}
		}
	}
	linkSet := func(ls []IdentityLink) []string {
		var out []string
		for _, l := range ls {
			out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%s", l.Site, l.AnonymousID, l.UserID, l.FirstSeen.Format(time.RFC3339Nano),
				l.FirstTouchAt.Format(time.RFC3339Nano), l.FirstChannel, l.FirstSource, l.Arrived.Format(time.RFC3339Nano)))
		}
		slices.Sort(out)
		if !exact {
			out = slices.Compact(out)
		}
		return out
	}
	if g, w := linkSet(got.Links), linkSet(want.Links); !slices.Equal(g, w) {
		t.Errorf("links\n got  %v\n want %v", g, w)
	}
}

// equalRows compares the distinct rows of two outputs, for runs that evict
// visitors: there a copy of an event that arrives after its visitor was
// evicted starts the visitor afresh, and may open a session of the same id
// again (downstream the later row wins), so rows are compared whole, not
// by key. The restored run must evict the same visitors at the same points
// and so produce the same rows.
func equalRows(t *testing.T, got, want Output) {
	t.Helper()
	setOf := func(o Output) map[string]bool {
		m := map[string]bool{}
		for _, x := range o.Sessions {
			m[fmt.Sprintf("session %+v", x)] = true
		}
		for _, a := range o.Assignments {
			m[fmt.Sprintf("assignment %+v", a)] = true
		}
		for _, l := range o.Links {
			m[fmt.Sprintf("link %+v", l)] = true
		}
		return m
	}
	g, w := setOf(got), setOf(want)
	bad := 0
	for k := range w {
		if !g[k] {
			t.Errorf("missing %s", k)
			bad++
		}
	}
	for k := range g {
		if !w[k] {
			t.Errorf("extra %s", k)
			bad++
		}
		if bad > 10 {
			t.FailNow()
		}
	}
	t.Logf("%d distinct rows", len(w))
}

func sumLoss(rs []LossRecord) map[string][2]int64 {
	m := map[string][2]int64{}
	for _, r := range rs {
		k := strings.Join([]string{r.Site, r.Browser, r.Path}, "|")
		v := m[k]
		v[0] += r.Received
		v[1] += r.Lost
		m[k] = v
	}
	return m
}

func TestSnapshotRoundTrip(t *testing.T) {
	s, _ := New(Config{})
	evs := []*shoptrail.Event{
		page("0b7e7d1c-8e2f-4c1a-9c39-1f2e3d4c5b6a", "m1", at(0), "/", withRef("https://www.baidu.com/s?wd=x"),
			withUTM("baidu", "cpc", "品牌词"), withDevice("mobile", "WeChat", "iOS"), withTab("tab-1", 1)),
		track("0b7e7d1c-8e2f-4c1a-9c39-1f2e3d4c5b6a", "m2", at(1), "Product Added", "/p/1",
			withProps(`{"price":19.9,"quantity":2}`), withTab("tab-1", 2), withUser("u-1")),
		page("Some-Visitor", "m3", at(2), "/x", asBot()),
		page("Some-Visitor", "m3", at(2), "/x", asBot()), // duplicate while pending
	}
	for i, e := range evs {
		s.Add(int64(i), e)
	}
	s.Advance(at(1.5 + 5)) // m1 and m2 settle, m3 stays pending
	var out Output
	s.Drain(&out)
	recs := s.Checkpoint(nil)
	if len(recs) != 3 || recs[len(recs)-1].Key != MetaKey {
		t.Fatalf("records %d: %+v", len(recs), recs)
	}
	for _, r := range recs {
		t.Logf("%q: %d bytes", r.Key, len(r.Value))
	}
	if got := s.Checkpoint(nil); len(got) != 1 {
		t.Errorf("second checkpoint without changes: %d records", len(got))
	}
	r, _ := New(Config{})
	if err := r.Restore(recs); err != nil {
		t.Fatal(err)
	}
	// Re-encoding the restored state gives the same bytes.
	for _, vi := range []int32{0, 1} {
		r.markDirty(vi, r.visitors.at(vi))
	}
	again := r.Checkpoint(nil)
	byKey := func(rs []StateRecord) map[string]string {
		m := map[string]string{}
		for _, x := range rs {
			m[x.Key] = string(x.Value)
		}
		return m
	}
	if !maps.Equal(byKey(recs), byKey(again)) {
		t.Error("restored state encodes differently")
	}
	// Both continue alike.
	for _, x := range []*Sessionizer{s, r} {
		x.Add(4, page("Some-Visitor", "m4", at(3), "/y"))
		x.Flush()
	}
	var o1, o2 Output
	s.Drain(&o1)
	r.Drain(&o2)
	slices.SortFunc(o1.Sessions, func(a, b Session) int { return cmp.Compare(a.SessionID, b.SessionID) })
	slices.SortFunc(o2.Sessions, func(a, b Session) int { return cmp.Compare(a.SessionID, b.SessionID) })
	if !slices.Equal(o1.Sessions, o2.Sessions) {
		t.Errorf("sessions\n %+v\n %+v", o1.Sessions, o2.Sessions)
	}
	if len(o1.Sessions) != 2 || o1.Sessions[0].UserID == "" && o1.Sessions[1].UserID == "" {
		t.Errorf("sessions %+v", o1.Sessions)
	}
}

func TestRestoreRejects(t *testing.T) {
	s, _ := New(Config{})
	s.Add(0, page("a", "1", at(0), "/"))
	recs := s.Checkpoint(nil)
	used, _ := New(Config{})
	used.Add(0, page("b", "1", at(0), "/"))
	if err := used.Restore(recs); err == nil {
		t.Error("restore into a used sessionizer")
	}
	for _, bad := range []StateRecord{
		{Key: "shop1\x00a:a", Value: []byte{snapshotVersion}},
		{Key: "shop1\x00a:a", Value: []byte{99}},
		{Key: "nokind", Value: recs[0].Value},
		{Key: "shop1\x00a:a", Value: append(slices.Clone(recs[0].Value), 0)},
		{Key: MetaKey, Value: []byte{snapshotVersion}},
	} {
		fresh, _ := New(Config{})
		if err := fresh.Restore([]StateRecord{bad}); err == nil {
			t.Errorf("restore of %q %x: no error", bad.Key, bad.Value)
		}
	}
	// Tombstones and superseded records are skipped.
	fresh, _ := New(Config{})
	if err := fresh.Restore([]StateRecord{{Key: "x", Value: []byte{1, 2}}, {Key: "x"}, recs[0], recs[1]}); err != nil {
		t.Fatal(err)
	}
	if fresh.Stats().Visitors != 1 {
		t.Errorf("visitors %d", fresh.Stats().Visitors)
	}
}

func FuzzRestore(f *testing.F) {
	s, _ := New(Config{})
	s.Add(0, page("a", "1", at(0), "/", withTab("t", 1), withUTM("x", "y", "z")))
	s.Add(1, page("a", "2", at(10), "/", withDevice("d", "b", "o")))
	for _, r := range s.Checkpoint(nil) {
		f.Add(r.Key, r.Value)
	}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		fresh, _ := New(Config{})
		if fresh.Restore([]StateRecord{{Key: key, Value: value}}) != nil {
			return
		}
		fresh.Add(5, page("a", "3", at(11), "/"))
		fresh.Flush()
		fresh.Checkpoint(nil)
	})
}
