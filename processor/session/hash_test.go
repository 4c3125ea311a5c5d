package session

import (
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestXXH64 pins xxh64 to XXH64 (seed 0) as the reference implementation
// computes it, across every length class of the algorithm (below 4, 8 and
// 32 bytes, and several 32-byte stripes). The changelog keeps these
// hashes, so the output must never change with the implementation.
func TestXXH64(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"abc", 0x44bc2cf5ad770999},
		{"message digest", 0x066ed728fceeb3be},
		{"abcdefghijklmnopqrstuvwxyz", 0xcfe1f278fa89835c},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 0xaaa46907d3047814},
		{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", 0xe04a477f19ee145d},
	} {
		if got := xxh64(c.in); got != c.want {
			t.Errorf("xxh64(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

// TestXXH64SameAsBefore: the module gives what the hand-written XXH64 the
// processor used before gave (kept below, for this comparison only), for
// every length up to 300 bytes: hashes in existing changelogs stay valid.
func TestXXH64SameAsBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 300; n++ {
		for k := 0; k < 20; k++ {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			if got, want := xxh64(string(b)), handXXH64(string(b)); got != want {
				t.Fatalf("length %d: %#x, the hand-written version gave %#x", n, got, want)
			}
		}
	}
}

func handXXH64(s string) uint64 {
	const (
		p1 uint64 = 11400714785074694791
		p2 uint64 = 14029467366897019727
		p3 uint64 = 1609587929392839161
		p4 uint64 = 9650029242287828579
		p5 uint64 = 2870177450012600261
	)
	n := len(s)
	var h uint64
	i := 0
	if n >= 32 {
		prime1, prime2 := p1, p2 // variables: the sums wrap around
		v1 := prime1 + prime2
		v2 := prime2
		v3 := uint64(0)
		v4 := -prime1
		for ; i+32 <= n; i += 32 {
			v1 = handRound(v1, handLE64(s, i))
			v2 = handRound(v2, handLE64(s, i+8))
			v3 = handRound(v3, handLE64(s, i+16))
			v4 = handRound(v4, handLE64(s, i+24))
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = handMerge(h, v1)
		h = handMerge(h, v2)
		h = handMerge(h, v3)
		h = handMerge(h, v4)
	} else {
		h = p5
	}
	h += uint64(n)
	for ; i+8 <= n; i += 8 {
		h ^= handRound(0, handLE64(s, i))
		h = bits.RotateLeft64(h, 27)*p1 + p4
	}
	if i+4 <= n {
		h ^= uint64(handLE32(s, i)) * p1
		h = bits.RotateLeft64(h, 23)*p2 + p3
		i += 4
	}
	for ; i < n; i++ {
		h ^= uint64(s[i]) * p5
		h = bits.RotateLeft64(h, 11) * p1
	}
	h ^= h >> 33
	h *= p2
	h ^= h >> 29
	h *= p3
	h ^= h >> 32
	return h
}

func handRound(acc, in uint64) uint64 {
	acc += in * 14029467366897019727
	acc = bits.RotateLeft64(acc, 31)
	return acc * 11400714785074694791
}

func handMerge(acc, v uint64) uint64 {
	acc ^= handRound(0, v)
	return acc*11400714785074694791 + 9650029242287828579
}

func handLE64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func handLE32(s string, i int) uint32 {
	_ = s[i+3]
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}
