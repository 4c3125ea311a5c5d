package processor

import (
	"slices"
	"testing"
)

// TestMove: release's move hands the held rows to an empty batch slice by
// trading the slices (the held side goes on with the batch's empty room),
// and appends them to a batch slice that has rows already.
func TestMove(t *testing.T) {
	room := make([]int, 0, 8)
	held := []int{1, 2, 3}
	dst, src := move(room, held)
	if !slices.Equal(dst, []int{1, 2, 3}) || len(src) != 0 || cap(src) != 8 {
		t.Fatalf("into an empty slice: dst %v, src %v (cap %d)", dst, src, cap(src))
	}
	src = append(src, 4)
	if !slices.Equal(dst, []int{1, 2, 3}) {
		t.Fatalf("the held side's next row changed the batch's: %v", dst)
	}
	dst, src = move(dst, src)
	if !slices.Equal(dst, []int{1, 2, 3, 4}) || !slices.Equal(src, []int{4}) {
		t.Fatalf("onto rows: dst %v, src %v", dst, src)
	}
	if dst, src := move[int](nil, nil); dst != nil || len(src) != 0 {
		t.Fatalf("nothing: dst %v, src %v", dst, src)
	}
}

// A new batch has the room the batch before it grew to, within
// [preallocEvents, the batch size]: a busy partition grows its first batch
// only.
func TestNewBatchRoom(t *testing.T) {
	for _, c := range []struct{ size, room, want int }{
		{25000, 0, preallocEvents},
		{25000, 17000, 17000},
		{25000, 40000, 25000},
		{4, 0, 4},
		{4, 25000, 4},
	} {
		b := newBatch("t", 0, c.size, c.room)
		if cap(b.Events) != c.want || cap(b.Offsets) != c.want || cap(b.CommerceOf) != c.want {
			t.Errorf("newBatch(size %d, room %d): room for %d events, %d offsets, %d commerce indexes; want %d",
				c.size, c.room, cap(b.Events), cap(b.Offsets), cap(b.CommerceOf), c.want)
		}
	}
}
