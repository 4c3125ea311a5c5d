// Package repart orders the customer facts that one partition of the
// customer repartition topic receives from every source partition (events
// partitions), so that a customer.Tracker sees them in event-time order
// under a watermark every source has passed, each exactly once. It is pure:
// no I/O, no clock.
//
// The contract with the sources (see the README, "Cross-device customers"):
// a source partition worker produces, before each of its checkpoints, the
// facts of its known customers (an Event fact per assigned event, with the
// event's offset in the source partition; an Abandonment fact per hand-off,
// at the hand-off's time), keyed by site and customer id; right after the
// checkpoint is written it produces, to every partition of the repartition
// topic, a Watermark fact: the watermark it checkpointed less one second.
// (The sessionizer assigns an event once the watermark passes the whole
// second after it, so every event assigned after the checkpoint is later
// than that, and so is every hand-off made after it.) A source restored
// from that checkpoint replays only facts after the watermark it
// broadcast; the Merger drops the ones it has seen by id (events by site
// and message id, abandonments by abandonment id), keeping an id while its
// fact is after the merged watermark, so the set stays bounded. Source
// offsets cannot serve: a source assigns events in each visitor's
// event-time order, not in offset order.
//
// The Merger's own checkpoint is small: the sources' watermarks, the
// merged watermark and the offset of the repartition partition to resume
// reading at, that of the oldest fact still waiting. A restored Merger
// reads again from there: facts at or behind the merged watermark were
// released before the checkpoint and are dropped, the others wait again.
package repart

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/customer"
)

// Fact is one record of the repartition topic.
type Fact struct {
	// Source is the events partition the fact comes from.
	Source int `json:"s"`
	// Offset is an event fact's offset in Source (ties of equal times).
	Offset int64 `json:"o,omitempty"`
	// Watermark, set on watermark facts: Source's checkpointed watermark.
	Watermark time.Time `json:"w,omitzero"`
	// Event, for event facts.
	Event *customer.Event `json:"e,omitempty"`
	// Abandonment and New, for hand-offs (customer.Tracker.AddAbandonment);
	// At is the hand-off's time (cart.Handoff.At), the abandonment's when
	// zero.
	Abandonment *cart.Abandonment `json:"a,omitempty"`
	New         bool              `json:"n,omitempty"`
	At          time.Time         `json:"t,omitzero"`
}

// Time is the event time a fact is ordered by.
func (f *Fact) Time() time.Time {
	switch {
	case f.Event != nil:
		if f.Event.Arrived.After(f.Event.Time) {
			return f.Event.Arrived // a late event counts when it arrived
		}
		return f.Event.Time
	case f.Abandonment != nil:
		if !f.At.IsZero() {
			return f.At
		}
		return f.Abandonment.AbandonedAt
	}
	return f.Watermark
}

// Outcome of Merger.Add.
type Outcome int

const (
	Kept     Outcome = iota // buffered (or a watermark taken)
	Replayed                // seen before: a source's replay, or read again after a Restore
	Late                    // at or behind the merged watermark
	Invalid                 // no source in range, no content, no time or id
)

// Merger orders the facts of one repartition partition.
type Merger struct {
	st state
	// buf are the facts waiting for the watermark, in arrival order.
	buf []*waitingFact
	// seen are the ids of the facts taken while after the merged
	// watermark: the ids of buf's facts.
	seen map[factID]struct{}
	// next is the offset after the last fact added.
	next int64
	// reread: offsets below it are read again after a Restore.
	reread int64
	// ready is Release's room for the facts it releases.
	ready []*waitingFact
}

// factID identifies a fact for dropping replays: an event's site and
// message id, an abandonment's id.
type factID struct {
	abandonment bool
	site, id    string
}

type waitingFact struct {
	f      Fact
	offset int64  // in the repartition partition
	id     factID // its key in Merger.seen
	ms     int64  // f.Time() in unix ms: release order compares it first
}

type state struct {
	// Wm is each source's latest watermark.
	Wm     []time.Time `json:"wm"`
	Merged time.Time   `json:"merged"`
	// Resume is the offset of the repartition partition to read from;
	// Next the offset after the last fact taken before the checkpoint.
	Resume int64 `json:"resume"`
	Next   int64 `json:"next"`
}

// New returns a Merger for a topic fed by sources source partitions.
func New(sources int) *Merger {
	return &Merger{st: state{Wm: make([]time.Time, sources)}, seen: map[factID]struct{}{}}
}

// Watermark is the merged watermark: the least of the sources'.
func (m *Merger) Watermark() time.Time { return m.st.Merged }

// Len is the number of facts waiting for the watermark.
func (m *Merger) Len() int { return len(m.buf) }

// Add takes a fact read from the partition at offset, in the partition's
// order.
func (m *Merger) Add(f Fact, offset int64) Outcome {
	m.next = max(m.next, offset+1)
	if f.Source < 0 || f.Source >= len(m.st.Wm) {
		return Invalid
	}
	var id factID
	switch {
	case f.Event != nil:
		if f.Event.Time.IsZero() || f.Event.MessageID == "" {
			return Invalid
		}
		id = factID{site: f.Event.Site, id: f.Event.MessageID}
	case f.Abandonment != nil:
		if f.Abandonment.AbandonedAt.IsZero() || f.Abandonment.ID == "" {
			return Invalid
		}
		id = factID{abandonment: true, id: f.Abandonment.ID}
	case !f.Watermark.IsZero():
		if f.Watermark.After(m.st.Wm[f.Source]) {
			m.st.Wm[f.Source] = f.Watermark
		}
		return Kept
	default:
		return Invalid
	}
	if _, ok := m.seen[id]; ok {
		return Replayed
	}
	at := f.Time()
	if !at.After(m.st.Merged) {
		if offset < m.reread {
			return Replayed
		}
		return Late
	}
	m.seen[id] = struct{}{}
	m.buf = append(m.buf, &waitingFact{f, offset, id, at.UnixMilli()})
	return Kept
}

// Release moves the merged watermark to the least of the sources' and
// appends to dst, in event-time order, the facts at or before it (ties:
// abandonments first, then by source and offset or id). Feed them to the
// tracker in that order, then Advance it to the returned watermark.
func (m *Merger) Release(dst []Fact) ([]Fact, time.Time) {
	wm := m.st.Wm[0]
	for _, w := range m.st.Wm[1:] {
		if w.Before(wm) {
			wm = w
		}
	}
	if !wm.After(m.st.Merged) {
		return dst, m.st.Merged
	}
	m.st.Merged = wm
	// The watermark moves at the sources' checkpoints, and then most of
	// what waits is released: sorting those at once is as fast as keeping
	// every fact in a heap was, or a little faster (BenchmarkMerger).
	ready := m.ready[:0]
	kept := m.buf[:0]
	for _, w := range m.buf {
		if w.f.Time().After(wm) {
			kept = append(kept, w)
		} else {
			ready = append(ready, w)
		}
	}
	clear(m.buf[len(kept):])
	m.buf = kept
	slices.SortFunc(ready, func(a, b *waitingFact) int {
		if c := cmp.Compare(a.ms, b.ms); c != 0 {
			return c
		}
		return compare(&a.f, &b.f)
	})
	for _, w := range ready {
		delete(m.seen, w.id) // a replay of it now is Late
		dst = append(dst, w.f)
	}
	clear(ready)
	m.ready = ready[:0]
	return dst, wm
}

// compare orders facts for release: by time, abandonments before events,
// then by source, offset, message id and site (events) or id
// (abandonments). Facts that compare equal are the same fact (replays are
// dropped before they wait).
func compare(a, b *Fact) int {
	if c := a.Time().Compare(b.Time()); c != 0 {
		return c
	}
	ka, kb := a.Event != nil, b.Event != nil
	if ka != kb {
		if ka {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	if ka {
		if c := cmp.Compare(a.Offset, b.Offset); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Event.MessageID, b.Event.MessageID); c != 0 {
			return c
		}
		return cmp.Compare(a.Event.Site, b.Event.Site)
	}
	return cmp.Compare(a.Abandonment.ID, b.Abandonment.ID)
}

// Checkpoint returns the merger's state (watermarks and the offset to
// resume reading at) as one record for the customer stage's changelog.
func (m *Merger) Checkpoint() ([]byte, error) {
	m.st.Resume, m.st.Next = m.next, m.next
	for _, w := range m.buf {
		m.st.Resume = min(m.st.Resume, w.offset)
	}
	return json.Marshal(&m.st)
}

// Restore replaces the merger's state with a Checkpoint's. Read the
// partition again from Resume.
func (m *Merger) Restore(b []byte) error {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("repart: restore: %w", err)
	}
	if len(st.Wm) != len(m.st.Wm) {
		return errors.New("repart: restore: checkpoint of a different number of sources")
	}
	clear(m.buf)
	m.buf = m.buf[:0]
	clear(m.seen)
	m.st = st
	m.next, m.reread = st.Resume, st.Next
	return nil
}

// Resume is the offset of the repartition partition to read from: after a
// Restore, the checkpoint's; else the offset after the last fact added.
func (m *Merger) Resume() int64 { return m.next }
