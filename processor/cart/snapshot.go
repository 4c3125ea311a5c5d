package cart

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Record is one changelog record of a Tracker's state: a visitor's state
// (Key: "cart" NUL site NUL anonymous id), a tombstone of a forgotten
// visitor (nil Value), or the meta record (MetaKey) with the watermark.
type Record struct {
	Key   string
	Value []byte
}

// MetaKey is the key of the meta record.
const MetaKey = "cart\x00meta"

const keyPrefix = "cart\x00"

// visitorState is a visitor's state as the changelog keeps it (JSON).
type visitorState struct {
	Items      []Item         `json:"items,omitempty"`
	Currency   string         `json:"currency,omitempty"`
	Mixed      bool           `json:"mixed,omitempty"`
	CartID     string         `json:"cartId,omitempty"`
	CustomerID string         `json:"customerId,omitempty"`
	Channel    string         `json:"channel,omitempty"`
	Source     string         `json:"source,omitempty"`
	AbandonID  string         `json:"abandonId,omitempty"`
	SessionID  string         `json:"sessionId,omitempty"`
	Last       int64          `json:"last,omitempty"`
	Step       uint8          `json:"step,omitempty"`
	Applied    int64          `json:"applied,omitempty"`
	AppliedH   uint64         `json:"appliedHash,omitempty"`
	Waiting    []*Abandonment `json:"waiting,omitempty"`
}

type metaState struct {
	Watermark time.Time `json:"watermark"`
}

// Checkpoint appends to dst the records of what changed since the last
// Checkpoint (visitors, tombstones), then the meta record, and returns it.
// Written to a compacted topic and read back with Restore, they rebuild
// the Tracker.
func (t *Tracker) Checkpoint(dst []Record) []Record {
	for _, key := range t.gone {
		if v := t.visitors[key]; v == nil {
			dst = append(dst, Record{Key: keyPrefix + key})
		}
	}
	clear(t.gone)
	t.gone = t.gone[:0]
	for _, v := range t.dirty {
		if !v.dirty {
			continue
		}
		v.dirty = false
		if t.visitors[v.key] != v {
			continue // forgotten since (its tombstone is above)
		}
		st := visitorState{Items: v.items, Currency: v.currency, Mixed: v.mixed, Last: v.last, Step: v.step, Applied: v.applied, AppliedH: v.appliedHash,
			CartID: v.cartID(), CustomerID: v.customerID(), Waiting: v.waiting()}
		if v.attr != nil {
			st.Channel, st.Source = v.attr.channel, v.attr.source
		}
		if v.abandonID != [16]byte{} {
			st.AbandonID = hex.EncodeToString(v.abandonID[:])
		}
		if v.sessionID != [16]byte{} {
			st.SessionID = hex.EncodeToString(v.sessionID[:])
		}
		b, _ := json.Marshal(&st) // plain data: cannot fail
		dst = append(dst, Record{Key: keyPrefix + v.key, Value: b})
	}
	clear(t.dirty)
	t.dirty = t.dirty[:0]
	b, _ := json.Marshal(metaState{Watermark: t.wm})
	return append(dst, Record{Key: MetaKey, Value: b})
}

// Restore loads the records of a compacted changelog (the latest record
// per key, in any order) into a new Tracker.
func (t *Tracker) Restore(recs []Record) error {
	if len(t.visitors) > 0 {
		return fmt.Errorf("restore into a tracker in use")
	}
	for _, r := range recs {
		if r.Key == MetaKey {
			var m metaState
			if err := json.Unmarshal(r.Value, &m); err != nil {
				return fmt.Errorf("cart meta record: %w", err)
			}
			t.wm = m.Watermark
			continue
		}
		key, ok := strings.CutPrefix(r.Key, keyPrefix)
		if !ok || !strings.Contains(key, "\x00") {
			return fmt.Errorf("cart record key %q is not a cart visitor's", r.Key)
		}
		if r.Value == nil {
			delete(t.visitors, key)
			continue
		}
		var st visitorState
		if err := json.Unmarshal(r.Value, &st); err != nil {
			return fmt.Errorf("cart record %q: %w", r.Key, err)
		}
		v := &visitor{key: key, idx: -1, items: st.Items, currency: st.Currency, mixed: st.Mixed, last: st.Last, step: min(st.Step, 2),
			applied: st.Applied, appliedHash: st.AppliedH}
		if st.Channel != "" || st.Source != "" {
			v.attr = t.attribution(st.Channel, st.Source)
		}
		if _, err := hex.Decode(v.abandonID[:], []byte(st.AbandonID)); st.AbandonID != "" && err != nil {
			return fmt.Errorf("cart record %q: abandonment id: %w", r.Key, err)
		}
		if _, err := hex.Decode(v.sessionID[:], []byte(st.SessionID)); st.SessionID != "" && err != nil {
			return fmt.Errorf("cart record %q: session id: %w", r.Key, err)
		}
		if st.CartID != "" || st.CustomerID != "" || len(st.Waiting) > 0 {
			v.x = &extra{cartID: st.CartID, customerID: st.CustomerID, waiting: st.Waiting}
		}
		t.visitors[key] = v
	}
	t.open = 0
	for _, v := range t.visitors {
		if len(v.items) > 0 {
			t.open++
		}
		t.schedule(v)
		v.dirty = false
	}
	t.dirty = t.dirty[:0]
	return nil
}
