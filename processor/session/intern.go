package session

import "math/bits"

// interner keeps one copy of each distinct key (a string, or a tuple joined
// with NUL bytes) with a payload, under a small integer id, and counts the
// references to it: sessions, pending events and tab records hold ids
// instead of strings, and an entry is freed when its last holder lets go, so
// the table stays as large as the live state, not as the history. Id 0 is
// reserved for "none". Not safe for concurrent use.
type interner[V any] struct {
	ids  map[string]uint32
	keys []string
	vals []V
	refs []uint32
	free []uint32
	// bytes estimates the heap the live entries hold: keyMult times the
	// key's length (payloads with strings of their own hold them again)
	// plus entryBytes for the map entry and the slices' slots.
	bytes   int64
	keyMult int64
}

// entryBytes is the estimated fixed heap cost of an interned entry.
const entryBytes = 96

func newInterner[V any](keyMult int64) *interner[V] {
	return &interner[V]{
		ids:     make(map[string]uint32),
		keys:    make([]string, 1),
		vals:    make([]V, 1),
		refs:    make([]uint32, 1),
		keyMult: keyMult,
	}
}

// lookup returns the id of key with one more reference, or 0 if key is not
// interned. The conversion string(key) does not allocate.
func (t *interner[V]) lookup(key []byte) uint32 {
	id, ok := t.ids[string(key)]
	if ok {
		t.refs[id]++
	}
	return id
}

// add interns a new key with its payload and one reference.
func (t *interner[V]) add(key string, v V) uint32 {
	var id uint32
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
		t.keys[id], t.vals[id], t.refs[id] = key, v, 1
	} else {
		id = uint32(len(t.keys))
		t.keys = append(t.keys, key)
		t.vals = append(t.vals, v)
		t.refs = append(t.refs, 1)
	}
	t.ids[key] = id
	t.bytes += int64(len(key))*t.keyMult + entryBytes
	return id
}

func (t *interner[V]) inc(id uint32) {
	if id != 0 {
		t.refs[id]++
	}
}

func (t *interner[V]) dec(id uint32) {
	if id == 0 {
		return
	}
	if t.refs[id]--; t.refs[id] == 0 {
		t.bytes -= int64(len(t.keys[id]))*t.keyMult + entryBytes
		delete(t.ids, t.keys[id])
		var zero V
		t.keys[id], t.vals[id] = "", zero
		t.free = append(t.free, id)
	}
}

func (t *interner[V]) val(id uint32) *V { return &t.vals[id] }

// strTab interns plain strings: page paths, referrers, user ids.
type strTab struct{ *interner[struct{}] }

func newStrTab() strTab { return strTab{newInterner[struct{}](1)} }

// ref returns the id of s with one more reference; "" is 0.
func (t strTab) ref(s string) uint32 {
	if s == "" {
		return 0
	}
	if id, ok := t.ids[s]; ok {
		t.refs[id]++
		return id
	}
	return t.add(s, struct{}{})
}

func (t strTab) str(id uint32) string { return t.keys[id] }

// slab stores values in fixed chunks addressed by an int32 index: no
// per-value allocation, no pointer per value, and chunks that never move, so
// a *T stays valid while its slot is live. It hands out the lowest free slot
// of the lowest chunk with room, so that live values gather in the low
// chunks after a peak, and it frees a chunk's memory when the chunk empties
// (keeping one empty chunk, so that a count hovering at a chunk boundary
// does not allocate and free over and over).
type slab[T any] struct {
	chunks [][]T
	free   [][slabWords]uint64 // per chunk: a 1 bit per free slot
	used   []int32             // per chunk: live slots
	hint   int                 // no chunk below hint has a free slot
	empty  int                 // an allocated chunk without live slots, or -1
	live   int
}

const (
	slabChunkBits = 10
	slabChunk     = 1 << slabChunkBits
	slabWords     = slabChunk / 64
)

func (s *slab[T]) alloc() int32 {
	for c := s.hint; ; c++ {
		if c == len(s.chunks) {
			s.chunks = append(s.chunks, nil)
			var all [slabWords]uint64
			for w := range all {
				all[w] = ^uint64(0)
			}
			s.free = append(s.free, all)
			s.used = append(s.used, 0)
			if len(s.chunks) == 1 {
				s.empty = -1
			}
		}
		if s.used[c] == slabChunk {
			continue
		}
		s.hint = c
		if s.chunks[c] == nil {
			s.chunks[c] = make([]T, slabChunk)
		}
		if c == s.empty {
			s.empty = -1
		}
		f := &s.free[c]
		for w := range f {
			if x := f[w]; x != 0 {
				b := bits.TrailingZeros64(x)
				f[w] = x &^ (1 << b)
				s.used[c]++
				s.live++
				return int32(c<<slabChunkBits | w<<6 | b)
			}
		}
		panic("slab: chunk count out of step with its bitmap")
	}
}

func (s *slab[T]) at(i int32) *T {
	return &s.chunks[i>>slabChunkBits][i&(slabChunk-1)]
}

// valid tells whether i is a live slot.
func (s *slab[T]) valid(i int32) bool {
	c := int(i >> slabChunkBits)
	if i < 0 || c >= len(s.chunks) || s.chunks[c] == nil {
		return false
	}
	o := i & (slabChunk - 1)
	return s.free[c][o>>6]&(1<<(o&63)) == 0
}

// release zeroes slot i and makes it available again.
func (s *slab[T]) release(i int32) {
	var zero T
	*s.at(i) = zero
	c := int(i >> slabChunkBits)
	o := i & (slabChunk - 1)
	s.free[c][o>>6] |= 1 << (o & 63)
	s.used[c]--
	s.live--
	if c < s.hint {
		s.hint = c
	}
	if s.used[c] == 0 {
		if s.empty < 0 {
			s.empty = c
		} else if s.empty != c {
			s.chunks[c] = nil
		}
	}
}

// cap is one past the highest index ever handed out.
func (s *slab[T]) cap() int32 { return int32(len(s.chunks) << slabChunkBits) }
