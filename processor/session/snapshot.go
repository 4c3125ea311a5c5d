package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// StateRecord is one record of the sessionizer's changelog: a compacted
// Kafka topic with the input topic's partitioning, where a partition's
// records are written to the partition of the same number.
type StateRecord struct {
	// Key is MetaKey or a visitor key: site NUL "a:" anonymous id, or site
	// NUL "u:" user id.
	Key string
	// Value is the encoded state; nil deletes the key (a tombstone).
	Value []byte
}

// MetaKey is the key of the partition's own record: its watermark and the
// last offset applied. Visitor keys never start with a NUL byte.
const MetaKey = "\x00meta"

// snapshotVersion is the version of the records Checkpoint writes.
// Version 2 added the pending events' customer id; Restore reads 1 too (its
// pending events had linked their visitor on arrival already). Version 3
// added the visitor's first touch (flag recFirstTouch); Restore reads 2
// too (the visitor's first touch is then unknown).
const snapshotVersion = 3

func knownVersion(v byte) bool { return v >= 1 && v <= snapshotVersion }

func changelogKey(site, id string, anonymous bool) string {
	kind := "u:"
	if anonymous {
		kind = "a:"
	}
	return site + "\x00" + kind + id
}

// Checkpoint appends to dst the changelog records of every visitor changed
// or purged since the last Checkpoint (a purged visitor's last record,
// marked so; its tombstone comes with the next Checkpoint), then the meta
// record, and returns the extended slice. Write them in this order.
//
// Call it after the outputs drained so far are safely stored, write the
// records to the changelog (meta last, as returned), and only then commit
// the input offset. After a crash, Restore from the changelog and resume at
// Offset()+1: visitors whose records were written after the meta record
// skip the events they already applied, so the state and the outputs come
// out as if the process had never stopped.
func (s *Sessionizer) Checkpoint(dst []StateRecord) []StateRecord {
	// Tombstones go out one checkpoint late: should this checkpoint be torn,
	// a visitor purged since the last one must still be there for the
	// replay, which purges it again at the same point. A key that came back
	// meanwhile keeps its record.
	for _, k := range s.deletedPrev {
		if site, id, anonymous, ok := parseChangelogKey(k); ok {
			if si, ok := s.siteIndex(site); ok && s.find(packKeyParts(s.keyBuf[:0], si, id, anonymous)) >= 0 {
				continue
			}
		}
		dst = append(dst, StateRecord{Key: k})
	}
	clear(s.deletedPrev)
	s.deletedPrev, s.deleted = s.deleted, s.deletedPrev[:0]
	dst = append(dst, s.purged...)
	clear(s.purged)
	s.purged = s.purged[:0]
	// A key purged since the last Checkpoint whose visitor came back gets
	// its live record below, after the purged one: its tombstone is no
	// longer due. (Left due, it would go out with the next Checkpoint and
	// delete the live record; should the visitor be purged again before
	// then and that Checkpoint be torn, a replay would find no record.)
	var purged map[string]bool
	if len(s.deletedPrev) > 0 {
		purged = make(map[string]bool, len(s.deletedPrev))
		for _, k := range s.deletedPrev {
			purged[k] = true
		}
	}
	revived := false
	var enc encoder
	for _, vi := range s.dirty {
		if !s.visitors.valid(vi) {
			continue
		}
		v := s.visitors.at(vi)
		if v.flags&visDirty == 0 {
			continue
		}
		v.flags &^= visDirty
		site, id, anonymous := s.splitKey(s.keyOf(vi, v))
		enc.reset()
		s.encodeVisitor(&enc, v, 0)
		k := changelogKey(site, id, anonymous)
		if purged[k] {
			purged[k], revived = false, true
		}
		dst = append(dst, StateRecord{Key: k, Value: enc.bytes()})
	}
	s.dirty = s.dirty[:0]
	if revived {
		s.deletedPrev = slices.DeleteFunc(s.deletedPrev, func(k string) bool { return !purged[k] })
	}
	enc.reset()
	enc.byte(snapshotVersion)
	enc.uvarint(uint64(s.offset + 1))
	enc.varint(s.maxSeen)
	enc.varint(s.wm)
	return append(dst, StateRecord{Key: MetaKey, Value: enc.bytes()})
}

// Flags of a visitor record.
const (
	recReturning  = 1 << iota // the visitor had a session
	recPurged                 // the visitor was purged at the record's offset
	recFirstTouch             // the visitor's first touch follows its customer id
)

func (s *Sessionizer) encodeVisitor(e *encoder, v *visitor, flags byte) {
	e.byte(snapshotVersion)
	e.uvarint(uint64(s.offset + 1))
	e.uvarint(uint64(v.lastSeen))
	if v.flags&visReturning != 0 {
		flags |= recReturning
	}
	if v.firstSec != 0 {
		flags |= recFirstTouch
	}
	e.byte(flags)
	e.str(s.strs.str(v.user))
	if v.firstSec != 0 {
		e.uvarint(uint64(v.firstSec)*1000 + uint64(v.firstMs))
		s.encodeTouch(e, v.firstTouch)
	}
	e.uvarint(uint64(v.ntabs))
	for i := 0; i < int(v.ntabs); i++ {
		w := v.extra[3*i : 3*i+3]
		e.u64(w[0])
		e.varint(int64(w[1]))
		e.str(s.strs.str(uint32(w[2] >> 32)))
		e.uvarint(uint64(uint32(w[2])))
	}
	if v.sess == 0 {
		e.byte(0)
	} else {
		ss := s.sessions.at(v.sess - 1)
		e.byte(1)
		e.varint(ss.start)
		e.uvarint(uint64(ss.endOff))
		e.raw(ss.sid[:])
		e.uvarint(uint64(ss.events))
		e.uvarint(uint64(ss.pages))
		e.uvarint(uint64(ss.orders))
		e.byte(byte(ss.funnel))
		e.byte(ss.flags)
		e.f64(ss.cartRun)
		e.f64(ss.cartPeak)
		e.f64(ss.revenue)
		s.encodeTouch(e, ss.touch)
		e.str(s.strs.str(ss.referrer))
		e.str(s.strs.str(ss.landing))
		e.str(s.strs.str(ss.exit))
		s.encodeDevice(e, ss.device)
	}
	ids := v.extra[3*int(v.ntabs):]
	e.uvarint(uint64(len(ids)))
	for _, h := range ids {
		e.u64(h)
	}
	n := 0
	for p := v.pendHead; p != 0; p = s.pend.at(p - 1).next {
		n++
	}
	e.uvarint(uint64(n))
	prev := int64(0)
	for p := v.pendHead; p != 0; {
		r := s.pend.at(p - 1)
		e.varint(r.t - prev)
		prev = r.t
		e.str(r.msgID)
		e.uvarint(uint64(r.dups))
		e.byte(byte(r.kind))
		e.byte(r.flags)
		e.str(s.strs.str(r.path))
		s.encodeTouch(e, r.touch)
		e.str(s.strs.str(r.referrer))
		s.encodeDevice(e, r.device)
		e.u64(r.tab)
		e.varint(r.seq)
		e.f64(r.value)
		e.u64(r.orderKey)
		e.str(s.strs.str(r.user))
		p = r.next
	}
}

func (s *Sessionizer) encodeTouch(e *encoder, id uint32) {
	if id == 0 {
		e.byte(0)
		return
	}
	t := &s.touches.val(id).src
	e.byte(1)
	e.str(t.Source)
	e.str(t.Medium)
	e.str(t.Campaign)
	e.str(t.Term)
	e.str(t.Content)
	e.str(t.ClickIDKind)
}

func (s *Sessionizer) encodeDevice(e *encoder, id uint32) {
	if id == 0 {
		e.byte(0)
		return
	}
	d := s.devices.val(id)
	e.byte(1)
	e.str(d.class)
	e.str(d.browser)
	e.str(d.os)
}

// Restore loads a partition's changelog into a new Sessionizer: the records
// as read from the compacted topic (when a key occurs more than once the
// last record wins; a nil value deletes it). Resume consuming the input at
// Offset()+1.
func (s *Sessionizer) Restore(records []StateRecord) error {
	if s.visitors.live != 0 || s.offset != -1 {
		return fmt.Errorf("cannot restore: %w", errNotFresh)
	}
	last := make(map[string]int, len(records))
	for i, r := range records {
		last[r.Key] = i
	}
	if i, ok := last[MetaKey]; ok && records[i].Value != nil {
		d := decoder{b: records[i].Value}
		if v := d.byte(); !knownVersion(v) {
			return fmt.Errorf("cannot restore meta record: version %d", v)
		}
		s.offset = int64(d.uvarint()) - 1
		s.maxSeen = d.varint()
		s.wm = d.varint()
		if d.err != nil {
			return fmt.Errorf("cannot restore meta record: %w", d.err)
		}
		if s.wm != math.MinInt64 {
			s.wheel.cursor = s.wm / 1000
			if s.wm < 0 && s.wm%1000 != 0 {
				s.wheel.cursor--
			}
		}
	}
	for i, r := range records {
		if r.Key == MetaKey || r.Value == nil || last[r.Key] != i {
			continue
		}
		if err := s.restoreVisitor(r); err != nil {
			return fmt.Errorf("cannot restore visitor %q: %w", r.Key, err)
		}
	}
	return nil
}

// parseChangelogKey splits a visitor's changelog key.
func parseChangelogKey(k string) (site, id string, anonymous, ok bool) {
	i := strings.IndexByte(k, 0)
	if i <= 0 || len(k) < i+4 || k[i+2] != ':' || (k[i+1] != 'a' && k[i+1] != 'u') {
		return "", "", false, false
	}
	return k[:i], k[i+3:], k[i+1] == 'a', true
}

func (s *Sessionizer) restoreVisitor(r StateRecord) error {
	site, id, anonymous, ok := parseChangelogKey(r.Key)
	if !ok {
		return errors.New("malformed key")
	}
	si, ok := s.siteIndex(site)
	if !ok {
		return errors.New("too many sites")
	}
	s.keyBuf = packKeyParts(s.keyBuf[:0], si, id, anonymous)
	if s.find(s.keyBuf) >= 0 {
		return errors.New("duplicate visitor")
	}
	d := decoder{b: r.Value}
	version := d.byte()
	if !knownVersion(version) {
		return fmt.Errorf("version %d", version)
	}
	through := int64(d.uvarint()) - 1
	vi := s.newVisitor(s.keyBuf)
	v := s.visitors.at(vi)
	v.lastSeen = uint32(d.uvarint())
	flags := d.byte()
	if flags&recReturning != 0 {
		v.flags |= visReturning
	}
	v.user = s.strs.ref(d.str())
	if flags&recFirstTouch != 0 {
		if version < 3 {
			return errors.New("first touch in a version 2 record")
		}
		ms := d.uvarint()
		if ms < 1000 || ms/1000 > math.MaxUint32 {
			return fmt.Errorf("first touch at %d ms", ms)
		}
		v.firstSec, v.firstMs = uint32(ms/1000), uint16(ms%1000)
		v.firstTouch = s.decodeTouch(&d)
	}
	ntabs := d.uvarint()
	if ntabs > maxTabs {
		return fmt.Errorf("%d tabs", ntabs)
	}
	for range ntabs {
		tab := d.u64()
		seq := d.varint()
		path := s.strs.ref(d.str())
		seen := uint32(d.uvarint())
		s.setExtra(v, append(v.extra, tab, uint64(seq), uint64(path)<<32|uint64(seen)))
		v.ntabs++
	}
	if d.byte() == 1 {
		si := s.sessions.alloc()
		ss := s.sessions.at(si)
		v.sess = si + 1
		ss.start = d.varint()
		ss.endOff = uint32(d.uvarint())
		copy(ss.sid[:], d.raw(16))
		ss.events = uint32(d.uvarint())
		ss.pages = uint32(d.uvarint())
		ss.orders = uint32(d.uvarint())
		ss.funnel = FunnelStep(d.byte())
		ss.flags = d.byte()
		ss.cartRun = d.f64()
		ss.cartPeak = d.f64()
		ss.revenue = d.f64()
		ss.touch = s.decodeTouch(&d)
		ss.referrer = s.strs.ref(d.str())
		ss.landing = s.strs.ref(d.str())
		ss.exit = s.strs.ref(d.str())
		ss.device = s.decodeDevice(&d)
	}
	nids := d.uvarint()
	if nids > uint64(len(d.b))/8 {
		return fmt.Errorf("%d message ids", nids)
	}
	for range nids {
		s.setExtra(v, append(v.extra, d.u64()))
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return fmt.Errorf("%d pending events", n)
	}
	prev := int64(0)
	for range n {
		pi := s.pend.alloc()
		p := s.pend.at(pi)
		p.t = prev + d.varint()
		prev = p.t
		p.msgID = d.str()
		s.pendBytes += int64(len(p.msgID))
		p.msgHash = xxh64(p.msgID)
		p.dups = uint16(d.uvarint())
		p.kind = evKind(d.byte())
		p.flags = d.byte()
		p.path = s.strs.ref(d.str())
		p.touch = s.decodeTouch(&d)
		p.referrer = s.strs.ref(d.str())
		p.device = s.decodeDevice(&d)
		p.tab = d.u64()
		p.seq = d.varint()
		p.value = d.f64()
		p.orderKey = d.u64()
		if version >= 2 {
			p.user = s.strs.ref(d.str())
		}
		s.insertPending(vi, v, pi)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errors.New("trailing bytes")
	}
	if through > s.offset {
		if s.skip == nil {
			s.skip = make(map[int32]int64)
		}
		s.skip[vi] = through
		s.skipMax = max(s.skipMax, through)
	}
	if v.pendHead != 0 {
		s.scheduleSettle(vi, v, s.pend.at(v.pendHead-1).t)
	}
	if flags&recPurged != 0 && through <= s.offset {
		// Purged before the meta record's offset: gone. (Purged after
		// it, in a torn checkpoint, it stays until the replay purges it
		// again at the same point.)
		s.releaseVisitor(vi, v)
		return nil
	}
	s.reschedule(vi, v)
	return nil
}

func (s *Sessionizer) decodeTouch(d *decoder) uint32 {
	if d.byte() == 0 {
		return 0
	}
	src := Source{Source: d.str(), Medium: d.str(), Campaign: d.str(), Term: d.str(), Content: d.str(), ClickIDKind: d.str()}
	return s.touchRef(&src)
}

func (s *Sessionizer) decodeDevice(d *decoder) uint32 {
	if d.byte() == 0 {
		return 0
	}
	class, browser, os := d.str(), d.str(), d.str()
	b := append(s.hashBuf[:0], class...)
	b = append(b, 0)
	b = append(b, browser...)
	b = append(b, 0)
	b = append(b, os...)
	s.hashBuf = b
	if id := s.devices.lookup(b); id != 0 {
		return id
	}
	return s.devices.add(string(b), deviceVal{class: class, browser: browser, os: os})
}

// encoder writes the compact changelog format: varints, fixed 64-bit words,
// and strings that are written once per record and referred back to by
// number afterwards (paths, sources and devices repeat a lot in a visitor's
// pending events).
type encoder struct {
	b    []byte
	seen []string
}

func (e *encoder) reset() { e.b, e.seen = e.b[:0], e.seen[:0] }

// bytes returns a copy of the encoded record.
func (e *encoder) bytes() []byte { return append([]byte(nil), e.b...) }

func (e *encoder) byte(c byte)      { e.b = append(e.b, c) }
func (e *encoder) raw(b []byte)     { e.b = append(e.b, b...) }
func (e *encoder) uvarint(x uint64) { e.b = binary.AppendUvarint(e.b, x) }
func (e *encoder) varint(x int64)   { e.b = binary.AppendVarint(e.b, x) }
func (e *encoder) u64(x uint64)     { e.b = binary.LittleEndian.AppendUint64(e.b, x) }
func (e *encoder) f64(x float64)    { e.u64(math.Float64bits(x)) }

// str writes 0 for "", 2*len then the bytes for a new string, 2*i+1 for the
// i-th string already written.
func (e *encoder) str(s string) {
	if s == "" {
		e.uvarint(0)
		return
	}
	for i, x := range e.seen {
		if x == s {
			e.uvarint(uint64(2*i + 1))
			return
		}
	}
	e.seen = append(e.seen, s)
	e.uvarint(uint64(2 * len(s)))
	e.b = append(e.b, s...)
}

type decoder struct {
	b    []byte
	seen []string
	err  error
}

var errShort = errors.New("record too short")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) raw(n int) []byte {
	if len(d.b) < n {
		d.fail(errShort)
		return make([]byte, n)
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail(errShort)
		return 0
	}
	x := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return x
}

func (d *decoder) f64() float64 { return math.Float64frombits(d.u64()) }

func (d *decoder) str() string {
	tag := d.uvarint()
	switch {
	case tag == 0:
		return ""
	case tag%2 == 1:
		i := tag / 2
		if i >= uint64(len(d.seen)) {
			d.fail(errors.New("bad string reference"))
			return ""
		}
		return d.seen[i]
	}
	n := tag / 2
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	d.seen = append(d.seen, s)
	return s
}
