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
// topic, a Watermark fact with the watermark it checkpointed. A source
// restored from that checkpoint therefore replays only facts with offsets
// past the last event fact it produced before, or abandonments due after
// the watermark it broadcast; the Merger drops the replayed ones: events
// by offset (per source, offsets only rise), abandonments by id (kept
// while due after the merged watermark, so the set stays bounded).
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
	// Offset is an event fact's offset in Source.
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
	Late                    // behind the merged watermark
	Invalid                 // no source in range, no content, or no time
)

// Merger orders the facts of one repartition partition.
type Merger struct {
	st  state
	buf []Fact
}

type state struct {
	// Wm is each source's latest watermark, Offset the highest event
	// offset taken from it (-1: none).
	Wm     []time.Time `json:"wm"`
	Offset []int64     `json:"off"`
	// Seen are the abandonment ids taken, with their due time (unix ms),
	// while due after Merged.
	Seen   map[string]int64 `json:"seen"`
	Merged time.Time        `json:"merged"`
	Buf    []Fact           `json:"buf,omitempty"`
}

// New returns a Merger for a topic fed by sources source partitions.
func New(sources int) *Merger {
	m := &Merger{st: state{Wm: make([]time.Time, sources), Offset: make([]int64, sources), Seen: map[string]int64{}}}
	for i := range m.st.Offset {
		m.st.Offset[i] = -1
	}
	return m
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
	switch {
	case f.Event != nil:
		if f.Event.Time.IsZero() || f.Offset < 0 {
			return Invalid
		}
		if f.Offset <= m.st.Offset[f.Source] {
			return Replayed
		}
		m.st.Offset[f.Source] = f.Offset
	case f.Abandonment != nil:
		if f.Abandonment.AbandonedAt.IsZero() || f.Abandonment.ID == "" {
			return Invalid
		}
		if _, ok := m.st.Seen[f.Abandonment.ID]; ok {
			return Replayed
		}
		if !f.Abandonment.AbandonedAt.After(m.st.Merged) {
			return Late
		}
		m.st.Seen[f.Abandonment.ID] = f.Abandonment.AbandonedAt.UnixMilli()
	case !f.Watermark.IsZero():
		if f.Watermark.After(m.st.Wm[f.Source]) {
			m.st.Wm[f.Source] = f.Watermark
		}
		return Kept
	default:
		return Invalid
	}
	if f.Time().Before(m.st.Merged) {
		return Late
	}
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
		return cmp.Compare(a.Offset, b.Offset)
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
	if len(st.Wm) != len(m.st.Wm) || len(st.Offset) != len(m.st.Offset) {
		return errors.New("repart: restore: checkpoint of a different number of sources")
	}
	if st.Seen == nil {
		st.Seen = map[string]int64{}
	}
	m.buf, st.Buf = st.Buf, nil
	m.st = st
	return nil
}
