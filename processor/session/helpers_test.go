package session

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

const site = "shop1"

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// at returns t0 plus minutes.
func at(minutes float64) time.Time {
	return t0.Add(time.Duration(minutes * float64(time.Minute)))
}

// evOpt modifies a test event.
type evOpt func(*shoptrail.Event)

func withRef(ref string) evOpt { return func(e *shoptrail.Event) { e.Context.Page.Referrer = ref } }
func withUTM(source, medium, campaign string) evOpt {
	return func(e *shoptrail.Event) {
		e.Context.Campaign.Source, e.Context.Campaign.Medium, e.Context.Campaign.Name = source, medium, campaign
	}
}
func withUser(id string) evOpt { return func(e *shoptrail.Event) { e.UserID = id } }
func withProps(p string) evOpt { return func(e *shoptrail.Event) { e.Properties = []byte(p) } }
func withTab(tab string, seq int64) evOpt {
	return func(e *shoptrail.Event) { e.Context.Delivery.Tab, e.Context.Delivery.Seq = tab, seq }
}
func withDevice(class, browser, os string) evOpt {
	return func(e *shoptrail.Event) { e.Context.Device = shoptrail.Device{Class: class, Browser: browser, OS: os} }
}
func asBot() evOpt { return func(e *shoptrail.Event) { e.Context.Bot.IsBot = true } }

func page(anon, id string, t time.Time, path string, opts ...evOpt) *shoptrail.Event {
	e := &shoptrail.Event{
		V: shoptrail.EventVersion, Site: site, MessageID: id, Type: shoptrail.TypePage,
		AnonymousID: anon, Timestamp: t, ReceivedAt: t,
	}
	e.Context.Page.Path = path
	e.Context.Page.URL = "https://www.shop.example" + path
	for _, o := range opts {
		o(e)
	}
	return e
}

func track(anon, id string, t time.Time, name, path string, opts ...evOpt) *shoptrail.Event {
	e := page(anon, id, t, path, opts...)
	e.Type, e.Event = shoptrail.TypeTrack, name
	return e
}

// run feeds events in the given order (offsets 0, 1, ...) and returns what
// came out, after a Flush if flush is set.
func run(t testing.TB, cfg Config, flush bool, events ...*shoptrail.Event) (*Sessionizer, Output) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		s.Add(int64(i), e)
	}
	if flush {
		s.Flush()
	}
	var out Output
	s.Drain(&out)
	return s, out
}

// sessionsByStart returns the sessions sorted by start, then id.
func sessionsByStart(ss []Session) []Session {
	ss = slices.Clone(ss)
	slices.SortFunc(ss, func(a, b Session) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.SessionID, b.SessionID)
	})
	return ss
}

// assignmentsByID maps message ids to their assignments, in output order.
func assignmentsByID(as []Assignment) map[string][]Assignment {
	m := make(map[string][]Assignment)
	for _, a := range as {
		m[a.MessageID] = append(m[a.MessageID], a)
	}
	return m
}

func sessionDiff(a, b Session) string {
	if a == b {
		return ""
	}
	return fmt.Sprintf("\n got  %+v\n want %+v", a, b)
}
