// Package repart orders the customer facts that one partition of the
// customer repartition topic receives from every source partition (events
// partitions), so that a customer.Tracker sees them in event-time order
// under a watermark every source has passed, each exactly once. It is pure:
// no I/O, no clock.
//
// The contract with the sources (not wired yet; see README, "Cross-device
// customers"): a source partition worker produces, before each of its
// checkpoints, the facts of its known customers (an Event fact per assigned
// event, with the event's offset in the source partition; an Abandonment
// fact per hand-off), keyed by site and customer id; right after the
// checkpoint is written it produces, to every partition of the repartition
// topic, a Watermark fact: the watermark it checkpointed less one second.
// (The sessionizer assigns an event once the watermark passes the whole
// second after it, so every event assigned after the checkpoint is later
// than that, and so is every abandonment fired after it.) A source
// restored from that checkpoint replays only facts after the watermark it
// broadcast; the Merger drops the ones it has seen by id (events by site
// and message id, abandonments by abandonment id), keeping an id while its
// fact is after the merged watermark, so the set stays bounded. Offsets
// cannot serve: a source assigns events in each visitor's event-time
// order, not in offset order.
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
	// Abandonment and New, for hand-offs (customer.Tracker.AddAbandonment).
	Abandonment *cart.Abandonment `json:"a,omitempty"`
	New         bool              `json:"n,omitempty"`
}

// Time is the event time a fact is ordered by.
func (f *Fact) Time() time.Time {
	switch {
	case f.Event != nil:
		return f.Event.Time
	case f.Abandonment != nil:
		return f.Abandonment.AbandonedAt
	}
	return f.Watermark
}

// Outcome of Merger.Add.
type Outcome int

const (
	Kept     Outcome = iota // buffered (or a watermark taken)
	Replayed                // seen before: a source's replay
	Late                    // at or behind the merged watermark
	Invalid                 // no source in range, no content, no time or id
)

// Merger orders the facts of one repartition partition.
type Merger struct {
	st  state
	buf []Fact
}

type state struct {
	// Wm is each source's latest watermark.
	Wm []time.Time `json:"wm"`
	// Seen are the ids of the facts taken ("e" NUL site NUL message id,
	// "a" NUL abandonment id), with their time (unix ms), while after
	// Merged.
	Seen   map[string]int64 `json:"seen"`
	Merged time.Time        `json:"merged"`
	Buf    []Fact           `json:"buf,omitempty"`
}

// New returns a Merger for a topic fed by sources source partitions.
func New(sources int) *Merger {
	return &Merger{st: state{Wm: make([]time.Time, sources), Seen: map[string]int64{}}}
}

// Watermark is the merged watermark: the least of the sources'.
func (m *Merger) Watermark() time.Time { return m.st.Merged }

// Len is the number of facts waiting for the watermark.
func (m *Merger) Len() int { return len(m.buf) }

// Add takes a fact read from the partition, in the partition's order.
func (m *Merger) Add(f Fact) Outcome {
	if f.Source < 0 || f.Source >= len(m.st.Wm) {
		return Invalid
	}
	var id string
	switch {
	case f.Event != nil:
		if f.Event.Time.IsZero() || f.Event.MessageID == "" {
			return Invalid
		}
		id = "e\x00" + f.Event.Site + "\x00" + f.Event.MessageID
	case f.Abandonment != nil:
		if f.Abandonment.AbandonedAt.IsZero() || f.Abandonment.ID == "" {
			return Invalid
		}
		id = "a\x00" + f.Abandonment.ID
	case !f.Watermark.IsZero():
		if f.Watermark.After(m.st.Wm[f.Source]) {
			m.st.Wm[f.Source] = f.Watermark
		}
		return Kept
	default:
		return Invalid
	}
	if _, ok := m.st.Seen[id]; ok {
		return Replayed
	}
	at := f.Time()
	if !at.After(m.st.Merged) {
		return Late
	}
	m.st.Seen[id] = at.UnixMilli()
	m.buf = append(m.buf, f)
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
	slices.SortStableFunc(m.buf, compare)
	n := 0
	for n < len(m.buf) && !m.buf[n].Time().After(wm) {
		n++
	}
	dst = append(dst, m.buf[:n]...)
	clear(m.buf[:n])
	m.buf = append(m.buf[:0], m.buf[n:]...)
	ms := wm.UnixMilli()
	for id, due := range m.st.Seen {
		if due <= ms {
			delete(m.st.Seen, id)
		}
	}
	return dst, wm
}

func compare(a, b Fact) int {
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
		return cmp.Compare(a.Event.MessageID, b.Event.MessageID)
	}
	return cmp.Compare(a.Abandonment.ID, b.Abandonment.ID)
}

// Checkpoint returns the merger's state (watermarks, offsets, seen ids and
// the waiting facts) as one record for the customer stage's changelog.
func (m *Merger) Checkpoint() ([]byte, error) {
	m.st.Buf = m.buf
	b, err := json.Marshal(&m.st)
	m.st.Buf = nil
	return b, err
}

// Restore replaces the merger's state with a Checkpoint's.
func (m *Merger) Restore(b []byte) error {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("repart: restore: %w", err)
	}
	if len(st.Wm) != len(m.st.Wm) {
		return errors.New("repart: restore: checkpoint of a different number of sources")
	}
	if st.Seen == nil {
		st.Seen = map[string]int64{}
	}
	m.buf, st.Buf = st.Buf, nil
	m.st = st
	return nil
}
