package session

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
}

func newInterner[V any]() *interner[V] {
	return &interner[V]{
		ids:  make(map[string]uint32),
		keys: make([]string, 1),
		vals: make([]V, 1),
		refs: make([]uint32, 1),
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
		delete(t.ids, t.keys[id])
		var zero V
		t.keys[id], t.vals[id] = "", zero
		t.free = append(t.free, id)
	}
}

func (t *interner[V]) key(id uint32) string { return t.keys[id] }
func (t *interner[V]) val(id uint32) *V     { return &t.vals[id] }
func (t *interner[V]) len() int             { return len(t.ids) }

// strTab interns plain strings: page paths, referrers, user ids.
type strTab struct{ *interner[struct{}] }

func newStrTab() strTab { return strTab{newInterner[struct{}]()} }

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

// slab stores values in fixed chunks addressed by an int32 index, reusing
// freed slots: no per-value allocation, no pointer per value, and chunks
// that never move, so a *T stays valid while its slot is live.
type slab[T any] struct {
	chunks [][]T
	n      int32 // slots ever handed out
	free   []int32
}

const slabChunkBits = 10

func (s *slab[T]) alloc() int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return i
	}
	if int(s.n>>slabChunkBits) == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, 1<<slabChunkBits))
	}
	i := s.n
	s.n++
	return i
}

func (s *slab[T]) at(i int32) *T {
	return &s.chunks[i>>slabChunkBits][i&(1<<slabChunkBits-1)]
}

// release zeroes slot i and makes it available again.
func (s *slab[T]) release(i int32) {
	var zero T
	*s.at(i) = zero
	s.free = append(s.free, i)
}

// live is the number of slots in use.
func (s *slab[T]) live() int { return int(s.n) - len(s.free) }
