package alert

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// tracker knows, per partition, which read offsets still wait for
// outcomes; an offset is committed only when it and every offset before it
// are done.
type tracker struct {
	mu    sync.Mutex
	parts map[int]*partTrack
}

type partTrack struct {
	topic   string
	offs    []int64 // read, not yet committed, ascending
	waiting map[int64]int
	last    int64 // highest offset read
	read    bool
}

func newTracker() *tracker { return &tracker{parts: map[int]*partTrack{}} }

// fresh tells whether an offset is new to this alerter (not a message read
// again after a rebalance while its first reading is still in flight).
func (t *tracker) fresh(partition int, offset int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	return p == nil || !p.read || offset > p.last
}

// add registers a read message waiting for n outcomes.
func (t *tracker) add(m kafka.Message, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[m.Partition]
	if p == nil {
		p = &partTrack{topic: m.Topic, waiting: map[int64]int{}}
		t.parts[m.Partition] = p
	}
	p.offs = append(p.offs, m.Offset)
	p.waiting[m.Offset] = n
	p.last, p.read = m.Offset, true
}

func (t *tracker) done(partition int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.parts[partition]; p != nil {
		if n, ok := p.waiting[offset]; ok && n > 0 {
			p.waiting[offset] = n - 1
		}
	}
}

// committable returns, per partition, the last message whose offset and
// all before it are done, and forgets them.
func (t *tracker) committable() []kafka.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []kafka.Message
	for part, p := range t.parts {
		i := 0
		for i < len(p.offs) && p.waiting[p.offs[i]] == 0 {
			delete(p.waiting, p.offs[i])
			i++
		}
		if i > 0 {
			out = append(out, kafka.Message{Topic: p.topic, Partition: part, Offset: p.offs[i-1]})
			p.offs = append(p.offs[:0], p.offs[i:]...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}

// committer commits what is done every RecordInterval, and once more when
// ctx ends (after the recorder's last flush).
func (a *Alerter) committer(ctx context.Context, r *kafka.Reader) {
	t := time.NewTicker(a.cfg.RecordInterval)
	defer t.Stop()
	commit := func(ctx context.Context) {
		ms := a.track.committable()
		if len(ms) == 0 {
			return
		}
		if err := r.CommitMessages(ctx, ms...); err != nil {
			// The outcomes are stored; a replay finds them and sends nothing.
			a.log.Warn("cannot commit signal offsets", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			commit(fctx)
			cancel()
			return
		case <-t.C:
			commit(ctx)
		}
	}
}
