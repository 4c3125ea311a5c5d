package processor

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/shoptrail/shoptrail"
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

// A written batch's events are cleared when it is emptied: the worker
// decodes into its slots without resetting them (decode wants zero ones).
func TestBatchResetClearsEvents(t *testing.T) {
	b := newBatch("t", 0, 8, 0)
	d := newEventDecoder()
	for i := range 3 {
		b.Events = extend(b.Events, 8)
		data := fmt.Appendf(nil, `{"v":1,"site":"shop","messageId":"m%d","type":"track","event":"Product Added","anonymousId":"a","userId":"u",`+
			`"timestamp":"2026-11-01T10:00:00Z","context":{"page":{"path":"/p"}},"properties":{"sku":"s"}}`, i)
		if err := d.decode(data, &b.Events[i]); err != nil {
			t.Fatal(err)
		}
	}
	b.reset()
	for i, e := range b.Events[:cap(b.Events)] {
		if !reflect.ValueOf(e).IsZero() {
			t.Fatalf("slot %d after reset: %+v, want zero", i, e)
		}
	}
	// Decoding a page view into a slot that held an identified track event
	// gives what decoding it into a fresh event gives.
	page := []byte(`{"v":1,"site":"shop","messageId":"p1","type":"page","anonymousId":"b","timestamp":"2026-11-01T10:01:00Z","context":{}}`)
	b.Events = extend(b.Events, 8)
	var fresh shoptrail.Event
	if err := d.decode(page, &b.Events[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.decode(page, &fresh); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b.Events[0], fresh) {
		t.Fatalf("decoded into a reused slot: %+v, want %+v", b.Events[0], fresh)
	}
}

// roomier moves the rows into the spare's larger room and hands back their
// old room cleared, or leaves both as they are.
func TestRoomier(t *testing.T) {
	rows := append(make([]string, 0, 2), "a", "b")
	old := rows[:2]
	spare := make([]string, 0, 10)
	rows, spare = roomier(rows, spare)
	if !slices.Equal(rows, []string{"a", "b"}) || cap(rows) != 10 || len(spare) != 0 || cap(spare) != 2 {
		t.Fatalf("into more room: rows %v (cap %d), spare %v (cap %d)", rows, cap(rows), spare, cap(spare))
	}
	if old[0] != "" || old[1] != "" {
		t.Fatalf("the old room still holds %q", old)
	}
	rows, spare = roomier(rows, spare)
	if !slices.Equal(rows, []string{"a", "b"}) || cap(rows) != 10 || cap(spare) != 2 {
		t.Fatalf("with less room spare: rows %v (cap %d), spare cap %d", rows, cap(rows), cap(spare))
	}
}
