package shoptrail

import (
	"testing"
	"time"
)

func TestSitesCartAbandonAfter(t *testing.T) {
	s, err := NewSites([]Site{{ID: "a", WriteKeys: []string{"k1"}, CartAbandonAfter: "30m"}, {ID: "b", WriteKeys: []string{"k2"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := s.CartAbandonAfter()
	if len(got) != 1 || got["a"] != 30*time.Minute {
		t.Fatalf("CartAbandonAfter() = %v", got)
	}
	for _, bad := range []string{"soon", "10s", "1000h", "-1h"} {
		if _, err := NewSites([]Site{{ID: "a", WriteKeys: []string{"k1"}, CartAbandonAfter: bad}}); err == nil {
			t.Errorf("cartAbandonAfter %q accepted", bad)
		}
	}
}
