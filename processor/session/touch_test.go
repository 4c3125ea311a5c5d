package session

import (
	"slices"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

// day is minutes in a day, for at.
const day = 24 * 60

// TestFirstTouch: a visitor comes from Baidu's organic results, browses,
// leaves, comes back three days later direct and signs up. Its link to the
// customer carries the first visit: its start, Organic Search, baidu.
func TestFirstTouch(t *testing.T) {
	s, out := run(t, Config{}, true,
		page("a", "a1", at(0), "/", withRef("https://www.baidu.com/s?wd=resistor")),
		page("a", "a2", at(2), "/p/1"),
		page("a", "a3", at(3*day), "/"),
		track("a", "a4", at(3*day+1), shoptrail.EventSignedUp, "/signup", withUser("cust-1")),
		track("a", "a5", at(3*day+2), shoptrail.EventOrderCompleted, "/checkout", withUser("cust-1"),
			withProps(`{"order_id":"o1","revenue":30}`)),
	)
	want := []IdentityLink{{Site: site, AnonymousID: "a", UserID: "cust-1", FirstSeen: at(3*day + 1),
		FirstTouchAt: at(0), FirstChannel: ChannelOrganicSearch, FirstSource: "baidu"}}
	if !slices.Equal(out.Links, want) {
		t.Errorf("links\n got  %+v\n want %+v", out.Links, want)
	}
	ss := sessionsByStart(out.Sessions)
	if len(ss) != 2 || ss[0].Channel != ChannelOrganicSearch || ss[0].UserID != "" || ss[1].Channel != ChannelDirect || !ss[1].Returning {
		t.Errorf("sessions %+v", ss)
	}
	// The record holds the touch's reference until it is purged.
	s.Advance(at(3*day + 2).Add(DefaultVisitorRetention + time.Hour))
	if st := s.Stats(); st.Visitors != 0 || len(s.touches.ids) != 0 || s.touches.bytes != 0 {
		t.Errorf("after the purge: %d visitors, %d touches interned (%d bytes)", st.Visitors, len(s.touches.ids), s.touches.bytes)
	}
}

// TestFirstTouchLateLink: a late event carrying the customer id links the
// visitor at once, with its first touch and the watermark it arrived
// behind.
func TestFirstTouchLateLink(t *testing.T) {
	_, out := run(t, Config{}, true,
		page("a", "a1", at(0), "/", withUTM("newsletter", "email", "spring")),
		page("b", "b1", at(20), "/"),
		page("a", "a2", at(1), "/login", withUser("cust-1")), // 19 minutes behind: late
	)
	want := []IdentityLink{{Site: site, AnonymousID: "a", UserID: "cust-1", FirstSeen: at(1),
		FirstTouchAt: at(0), FirstChannel: ChannelEmail, FirstSource: "newsletter", Arrived: at(15)}}
	if !slices.Equal(out.Links, want) {
		t.Errorf("links\n got  %+v\n want %+v", out.Links, want)
	}
}

// oldRecords were written by Checkpoint before visitors kept their first
// touch (snapshot version 2): visitor a had one session, from Baidu at
// at(0) to at(2), closed at the checkpoint (watermark at(40)).
var oldRecords = []StateRecord{
	{Key: "shop1\x00a:a", Value: []byte("\x02\x02\x98\xb6\x8b\xbe\x06\x01\x00\x00\x00\x00\x00")},
	{Key: "\x00meta", Value: []byte("\x02\x02\x80\u05fe\x92\xaae\x80\x80Ք\xaae")},
}

// TestFirstTouchRestoreVersion2: a visitor restored from a record written
// before first touches were kept is a returning visitor without a first
// touch: its link carries none (the customer stage then keeps what it
// knows of the customer's own sessions, as before). Its next checkpoint
// is written in the current version and restores the same.
func TestFirstTouchRestoreVersion2(t *testing.T) {
	s, _ := New(Config{})
	if err := s.Restore(oldRecords); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Visitors != 1 || st.OpenSessions != 0 || s.Offset() != 1 || !s.Watermark().Equal(at(40)) {
		t.Fatalf("restored %+v, offset %d", st, s.Offset())
	}
	s.Add(2, page("a", "a3", at(3*day), "/"))
	s.Add(3, track("a", "a4", at(3*day+1), shoptrail.EventSignedUp, "/signup", withUser("cust-1")))
	recs := s.Checkpoint(nil)
	for _, r := range recs {
		if r.Value[0] != snapshotVersion {
			t.Errorf("record %q written in version %d", r.Key, r.Value[0])
		}
	}
	r, _ := New(Config{})
	if err := r.Restore(recs); err != nil {
		t.Fatal(err)
	}
	var o1, o2 Output
	for _, x := range []*Sessionizer{s, r} {
		x.Flush()
	}
	s.Drain(&o1)
	r.Drain(&o2)
	want := []IdentityLink{{Site: site, AnonymousID: "a", UserID: "cust-1", FirstSeen: at(3*day + 1)}}
	if !slices.Equal(o1.Links, want) {
		t.Errorf("links\n got  %+v\n want %+v", o1.Links, want)
	}
	if len(o1.Sessions) != 1 || !o1.Sessions[0].Returning || o1.Sessions[0].UserID != "cust-1" ||
		!slices.Equal(o1.Sessions, o2.Sessions) {
		t.Errorf("sessions\n %+v\n %+v", o1.Sessions, o2.Sessions)
	}
}

// TestFirstTouchRestored: a visitor's first touch survives a restore: the
// link after it carries the touch, and the touch's reference is counted.
func TestFirstTouchRestored(t *testing.T) {
	s, _ := New(Config{})
	s.Add(0, page("a", "a1", at(0), "/", withRef("https://www.baidu.com/")))
	s.Add(1, page("b", "b1", at(45), "/"))
	var out Output
	s.Drain(&out)
	if len(out.Sessions) != 1 {
		t.Fatalf("sessions %+v", out.Sessions)
	}
	r, _ := New(Config{})
	if err := r.Restore(s.Checkpoint(nil)); err != nil {
		t.Fatal(err)
	}
	r.Add(2, page("a", "a2", at(3*day), "/login", withUser("cust-1")))
	r.Flush()
	r.Drain(&out)
	want := []IdentityLink{{Site: site, AnonymousID: "a", UserID: "cust-1", FirstSeen: at(3 * day),
		FirstTouchAt: at(0), FirstChannel: ChannelOrganicSearch, FirstSource: "baidu"}}
	if !slices.Equal(out.Links, want) {
		t.Errorf("links\n got  %+v\n want %+v", out.Links, want)
	}
	r.Advance(at(3 * day).Add(DefaultVisitorRetention + time.Hour))
	if len(r.touches.ids) != 0 {
		t.Errorf("%d touches interned after the purge", len(r.touches.ids))
	}
}
