package collector

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestPartitionIndex: the collector partitions exactly as kafka-go's Hash
// balancer, the pipeline's one partitioner.
func TestPartitionIndex(t *testing.T) {
	h := &kafka.Hash{}
	for _, n := range []int{1, 3, 4, 12} {
		parts := make([]int, n)
		for i := range parts {
			parts[i] = i
		}
		for i := 0; i < 2000; i++ {
			key := []byte("visitor-" + strings.Repeat("z", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i))
			if got, want := partitionIndex(key, n), h.Balance(kafka.Message{Key: key}, parts...); got != want {
				t.Fatalf("key %q, %d partitions: got %d, want %d", key, n, got, want)
			}
		}
	}
}

func TestCleanURL(t *testing.T) {
	c := &cleaner{extra: map[string]bool{"page": true}}
	f := func(in string, referrer bool, want string) {
		t.Helper()
		if got := c.cleanURL(in, referrer, nil); got != want {
			t.Errorf("cleanURL(%q, %v)\n got %q\nwant %q", in, referrer, got, want)
		}
	}
	// Nothing to clean: unchanged.
	f("https://shop.example/products/resistor-10k", false, "https://shop.example/products/resistor-10k")
	// utm and click ids stay, other parameters and the fragment go.
	f("https://shop.example/?utm_source=baidu&session=abc&gclid=Cj0K#top", false, "https://shop.example/?utm_source=baidu&gclid=Cj0K")
	// The site's own parameters stay.
	f("https://shop.example/list?page=2&sort=price", false, "https://shop.example/list?page=2")
	// Credentials in the URL go.
	f("https://user:secret@shop.example/a", false, "https://shop.example/a")
	// Search terms stay in referrers only.
	f("https://www.baidu.com/s?wd=resistor&rsv_spt=1", true, "https://www.baidu.com/s?wd=resistor")
	f("https://shop.example/search?q=resistor", false, "https://shop.example/search")
	// Emails, phones and tokens are redacted.
	f("https://shop.example/?utm_content=bob%40example.com", false, "https://shop.example/?utm_content=%5Bemail%5D")
	f("https://shop.example/users/bob@example.com/orders", false, "https://shop.example/users/[email]/orders")
	f("https://shop.example/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", false, "https://shop.example/reset/[token]")
	f("https://shop.example/confirm/4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", false, "https://shop.example/confirm/[token]")
	f("https://shop.example/?utm_term=%2B86%20138%200013%208000", false, "https://shop.example/?utm_term=%5Bphone%5D")
	// A long slug is no token.
	f("https://shop.example/products/metal-film-resistor-10k-ohm-1-percent", false, "https://shop.example/products/metal-film-resistor-10k-ohm-1-percent")
	// Everything kept: the same string; empty pairs go.
	f("https://shop.example/p?utm_source=a&utm_medium=b", false, "https://shop.example/p?utm_source=a&utm_medium=b")
	f("https://shop.example/p?utm_source=a&&x=1&", false, "https://shop.example/p?utm_source=a")
	f("https://shop.example/p?x=1&utm_source=a", false, "https://shop.example/p?utm_source=a")
	// Click ids are not phones.
	f("https://shop.example/?qz_gdt=1234567890123", false, "https://shop.example/?qz_gdt=1234567890123")
}

func TestCorrectTime(t *testing.T) {
	recv := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f := func(orig, sent time.Time, want time.Time, wantClamped bool) {
		t.Helper()
		got, clamped := correctTime(orig, sent, recv, maxAge)
		if !got.Equal(want) || clamped != wantClamped {
			t.Errorf("correctTime(%v, %v) = %v %v, want %v %v", orig, sent, got, clamped, want, wantClamped)
		}
	}
	// Device clock 2 h ahead: corrected by the skew.
	f(recv.Add(2*time.Hour-10*time.Second), recv.Add(2*time.Hour), recv.Add(-10*time.Second), false)
	// 3 days behind: corrected.
	f(recv.Add(-72*time.Hour-5*time.Second), recv.Add(-72*time.Hour), recv.Add(-5*time.Second), false)
	// 1970 without sentAt: clamped.
	f(time.Unix(0, 0).UTC(), time.Time{}, recv, true)
	// 2100 without sentAt: clamped.
	f(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, recv, true)
	// An event queued 10 days on the device: clamped.
	f(recv.Add(-240*time.Hour), recv, recv, true)
	// No client time: the receive time.
	f(time.Time{}, time.Time{}, recv, false)
}

// FuzzCleanURL: cleaning never panics, drops fragments, and is idempotent.
func FuzzCleanURL(f *testing.F) {
	f.Add("https://shop.example/?utm_source=baidu&session=abc&gclid=Cj0K#top")
	f.Add("https://u:p@shop.example/users/bob@example.com?utm_term=%2B86%20138%200013%208000&&")
	f.Add("/relative/path?q=1")
	c := &cleaner{extra: map[string]bool{"page": true}}
	f.Fuzz(func(t *testing.T, s string) {
		for _, ref := range []bool{false, true} {
			once := c.cleanURL(s, ref, &urlInfo{})
			if strings.Contains(once, "#") {
				t.Fatalf("cleanURL(%q) = %q keeps a fragment", s, once)
			}
			if twice := c.cleanURL(once, ref, nil); twice != once {
				t.Fatalf("not idempotent: %q -> %q -> %q", s, once, twice)
			}
		}
	})
}
