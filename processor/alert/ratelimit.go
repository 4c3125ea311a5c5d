package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Rate limits that hold across restarts and across several alerters need
// one order of sends that every alerter agrees on. A Kafka partition gives
// one: before a send to a rate-limited destination, an alerter appends a
// claim to the one-partition topic <kafka.topic>.ratelimit and reads the
// topic up to it. Every alerter reads the same claims in the same order and
// applies the same rule — a claim is granted if fewer than the limit's
// granted claims for that destination lie in the window before it — so all
// agree which claims won, and only a granted claim's alert is sent. A
// restarted alerter reads the claims again (the topic's retention must
// exceed the longest window: one day is plenty). The cost is one produce
// and its read-back per send, paid only by rate-limited destinations, the
// chat robots, which are slow anyway (20 a minute).

type claim struct {
	ID      string `json:"id"` // alerter id and a sequence: unique
	Dest    string `json:"dest"`
	AtMilli int64  `json:"at"` // the claimer's clock
	Rate    int    `json:"rate"`
	PerMS   int64  `json:"per"`
}

type claimResult struct {
	granted bool
	next    time.Time
}

// rateLog is the shared claims log.
type rateLog struct {
	a      *Alerter
	topic  string
	writer *kafka.Writer
	// transport is the writer's own, closed on exit: the default one keeps
	// idle connections (and their goroutines) for the life of the process.
	transport *kafka.Transport
	seq       atomic.Int64

	mu      sync.Mutex
	granted map[string][]time.Time // per destination, in log order
	waiting map[string]chan claimResult
	caught  chan struct{} // closed once the reader passed the end seen at start
}

func newRateLog(a *Alerter) *rateLog {
	topic := a.cfg.RateLimitTopic
	tr := &kafka.Transport{}
	return &rateLog{a: a, topic: topic, transport: tr,
		writer: &kafka.Writer{Addr: kafka.TCP(a.cfg.Brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond, AllowAutoTopicCreation: true, Balancer: partitionZero{}, Transport: tr},
		granted: map[string][]time.Time{}, waiting: map[string]chan claimResult{}, caught: make(chan struct{})}
}

// run tails the claims log until ctx ends.
func (l *rateLog) run(ctx context.Context) error {
	defer func() {
		l.writer.Close()
		l.transport.CloseIdleConnections()
	}()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: l.a.cfg.Brokers, Topic: l.topic, Partition: 0,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.a.log.Warn("cannot read the rate-limit claims", "topic", l.topic, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		var c claim
		if json.Unmarshal(m.Value, &c) != nil || c.Dest == "" {
			continue
		}
		l.apply(c)
	}
}

// apply decides a claim, the same way in every alerter.
func (l *rateLog) apply(c claim) {
	at := time.UnixMilli(c.AtMilli)
	per := time.Duration(c.PerMS) * time.Millisecond
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.granted[c.Dest]
	// Drop what no window can reach any more (claims come in about time
	// order; a day of slack covers skewed clocks).
	i := 0
	for i < len(g) && g[i].Before(at.Add(-per-24*time.Hour)) {
		i++
	}
	g = g[i:]
	n := 0
	var oldest time.Time
	for _, t := range g {
		if t.After(at.Add(-per)) && !t.After(at) {
			if n == 0 {
				oldest = t
			}
			n++
		}
	}
	res := claimResult{granted: n < c.Rate}
	if res.granted {
		g = append(g, at)
	} else {
		res.next = oldest.Add(per)
	}
	l.granted[c.Dest] = g
	if ch, ok := l.waiting[c.ID]; ok {
		ch <- res
		delete(l.waiting, c.ID)
	}
}

// reserve claims a send to dest at now; granted or not, it tells when to
// try again.
func (l *rateLog) reserve(ctx context.Context, dest string, rate int, per time.Duration, now time.Time) (bool, time.Time, error) {
	c := claim{ID: l.a.cfg.ID + "/" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/" + strconv.FormatInt(l.seq.Add(1), 10),
		Dest: dest, AtMilli: now.UnixMilli(), Rate: rate, PerMS: per.Milliseconds()}
	ch := make(chan claimResult, 1)
	l.mu.Lock()
	l.waiting[c.ID] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.waiting, c.ID)
		l.mu.Unlock()
	}()
	b, _ := json.Marshal(c)
	if err := l.writer.WriteMessages(ctx, kafka.Message{Key: []byte(dest), Value: b}); err != nil {
		return false, now.Add(time.Second), fmt.Errorf("cannot write a rate-limit claim: %w", err)
	}
	select {
	case res := <-ch:
		if res.granted {
			return true, now, nil
		}
		return false, res.next, nil
	case <-ctx.Done():
		return false, now, ctx.Err()
	case <-time.After(30 * time.Second):
		return false, now.Add(time.Second), fmt.Errorf("the rate-limit claim was not read back within 30s")
	}
}

// partitionZero writes every claim to partition 0: one order for all.
type partitionZero struct{}

func (partitionZero) Balance(kafka.Message, ...int) int { return 0 }
