package repart

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkMerger: facts of 4 sources, a few minutes apart within each
// checkpoint, merged 50,000 at a time (as many as wait between two
// checkpoints in the pipeline benchmark) under their watermarks: ns per
// fact through Add and Release.
//
//	go test -run '^$' -bench Merger ./processor/repart/
func BenchmarkMerger(b *testing.B) {
	const sources, perRound = 4, 50000
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var facts []Fact
	for i := range perRound {
		src := i % sources
		at := t0.Add(time.Duration(rng.Int64N(int64(5 * time.Minute))))
		facts = append(facts, order(src, int64(i), fmt.Sprintf("c%d", rng.IntN(2000)), at, 10))
	}
	b.ReportAllocs()
	b.ResetTimer()
	var out []Fact
	for range b.N {
		m := New(sources)
		for i := range facts {
			m.Add(facts[i], int64(i))
		}
		for src := range sources {
			m.Add(wmark(src, t0.Add(10*time.Minute)), perRound+int64(src))
		}
		out, _ = m.Release(out[:0])
		if len(out) != perRound {
			b.Fatalf("released %d facts, want %d", len(out), perRound)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRound), "ns/fact")
}
