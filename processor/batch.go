package processor

import (
	"context"
	"slices"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/commerce"
	"github.com/shoptrail/shoptrail/processor/customer"
	"github.com/shoptrail/shoptrail/processor/session"
)

// Batch is what one flush of a partition writes: the raw events and what
// the sessionizer derived from them. Every row has a deterministic key, so
// writing a batch twice (after a crash, or when a partition moves to another
// processor and replays) leaves the tables as if it was written once.
type Batch struct {
	// Topic and Partition are the Kafka source of the batch.
	Topic     string
	Partition int

	// Events are the decoded events, with their Kafka offsets in Offsets
	// (same length).
	Events  []shoptrail.Event
	Offsets []int64
	// Commerce are the typed e-commerce properties of the events that have
	// any (track calls with properties), in event order, and CommerceOf[i]
	// is the index in Commerce of event i's, -1 for none (same length as
	// Events; read them with CommerceAt). Most events are page calls, and
	// a slot is 328 bytes: a slot for every event was a tenth of the
	// processor's live heap in the pipeline benchmark.
	Commerce   []commerce.Props
	CommerceOf []int32

	Sessions    []session.Session
	Assignments []session.Assignment
	Links       []session.IdentityLink
	Loss        []LossRow
	// DeadLetters are messages that could not be decoded; a Sink adds the
	// rows ClickHouse refuses.
	DeadLetters []DeadLetter
	// Abandonments are cart_abandonments rows (flagged or recovered).
	Abandonments []AbandonmentRow
	// Orders and OrderUpdates are rows of orders and order_updates.
	Orders       []OrderRow
	OrderUpdates []OrderUpdateRow
	// Customers, Transitions and CustomerOrders are rows of customers,
	// customer_transitions and customer_orders (the customer stage).
	Customers      []customer.Row
	Transitions    []customer.Transition
	CustomerOrders []customer.Order

	// Written records which tables a Sink has written already, so that a
	// retry after a transient error skips them. Sinks set and read it.
	Written uint32

	// owner and seq order a partition worker's batches: the writer writes
	// them in seq order (groupWriter). owner 0: no order.
	owner, seq uint64
}

// DefaultBatchSize is the default of Config.BatchSize. At a partition's
// usual rates BatchInterval ends a batch first, and the batches of all
// partitions that are ready at the same time go into one insert; a
// partition catching up on a backlog fills batches this large. Larger
// inserts cost ClickHouse less per event (a part per table and insert,
// merged later): 25,000 against 10,000 took 25-39 % less ClickHouse CPU
// per event in four alternating pairs of the pipeline benchmark.
const DefaultBatchSize = 25000

// DefaultWrites is the default of Config.Writes. With one insert at a
// time, the partitions' workers stalled whenever ClickHouse worked on a
// large insert (their batches in flight all waiting for it), leaving a
// core idle: with two at once the pipeline benchmark kept 96.5-97.5 % of
// the two cores busy against 94.6-96.2 % (six alternating pairs; two were
// ahead in seven of nine pairs before).
const DefaultWrites = 2

// preallocEvents is the most events a new batch has room for before it
// grows: a partition that never fills more keeps smaller batches.
const preallocEvents = 10000

// newBatch returns a batch with room for size events, at most room (and at
// least preallocEvents): growing a slice of events (large structs full of
// pointers) while the garbage collector runs costs far more than
// allocating it once, and a batch keeps what it grew to (at most the batch
// size: reset truncates its events without freeing them). room is what the
// partition's batch before grew to, so a busy partition grows its first
// batch only.
func newBatch(topic string, partition, size, room int) *Batch {
	b := &Batch{Topic: topic, Partition: partition}
	b.makeRoom(size, room)
	return b
}

// makeRoom gives b's events room for size events, at most room (and at
// least preallocEvents), and a quarter of that to their commerce
// properties.
func (b *Batch) makeRoom(size, room int) {
	n := min(size, max(room, preallocEvents))
	b.Events = make([]shoptrail.Event, 0, n)
	b.Offsets = make([]int64, 0, n)
	b.CommerceOf = make([]int32, 0, n)
	b.Commerce = make([]commerce.Props, 0, max(n/4, 1))
}

// extend returns s one element longer, with the slot past its length as it
// was (zero in a batch's events: see reset). A full s grows straight to room
// for size elements rather than in append's 1.25x steps, each of which
// copies every element so far: a batch of 25,000 events that starts with
// room for 10,000 allocated and copied some 70 MB on its way up.
func extend[T any](s []T, size int) []T {
	n := len(s)
	if n == cap(s) {
		s = slices.Grow(s, max(size-n, 1))
	}
	return s[:n+1]
}

// Rows is the number of rows of the batch, over all tables.
func (b *Batch) Rows() int {
	return len(b.Events) + len(b.Sessions) + len(b.Assignments) + len(b.Links) + len(b.Loss) + len(b.DeadLetters) +
		len(b.Abandonments) + len(b.Orders) + len(b.OrderUpdates) + len(b.Customers) + len(b.Transitions) + len(b.CustomerOrders)
}

// maxKeptCap is the largest capacity a batch keeps between uses: a burst
// (a backlog of events settling at once) must not pin its size in memory.
const maxKeptCap = 1 << 15

// reset empties b for reuse, keeping the capacity of its slices unless
// they grew beyond maxKeptCap.
func (b *Batch) reset() {
	// Events: at most BatchSize, cleared here (in one pass, on the writer's
	// goroutine) so that the strings they held go at once and the worker
	// decodes into zero slots.
	clear(b.Events)
	b.Events = b.Events[:0]
	b.Offsets = b.Offsets[:0]
	// Commerce: as Events; each Props keeps its products' room.
	b.Commerce = b.Commerce[:0]
	b.CommerceOf = b.CommerceOf[:0]
	b.Sessions = resetSlice(b.Sessions)
	b.Assignments = resetSlice(b.Assignments)
	b.Links = resetSlice(b.Links)
	b.Loss = resetSlice(b.Loss)
	b.DeadLetters = resetSlice(b.DeadLetters)
	b.Abandonments = resetSlice(b.Abandonments)
	b.Orders = resetSlice(b.Orders)
	b.OrderUpdates = resetSlice(b.OrderUpdates)
	b.Customers = resetSlice(b.Customers)
	b.Transitions = resetSlice(b.Transitions)
	b.CustomerOrders = resetSlice(b.CustomerOrders)
	b.Written = 0
}

func resetSlice[T any](s []T) []T {
	if cap(s) > maxKeptCap {
		return nil
	}
	clear(s)
	return s[:0]
}

// LossRow is one row of the delivery_loss table: beacon events received and
// lost per site, browser and page, summed over the Kafka offsets
// [Bucket, Bucket+LossBucketSize) of one partition, up to Through.
type LossRow struct {
	Site, Browser, Path string
	Partition           int
	Bucket              int64
	// Day is the day of the partition's watermark when the bucket began:
	// it only places the row in a monthly partition of the table.
	Day            time.Time
	Received, Lost int64
	// Through is the last offset whose events are counted: the version of
	// the row. A bucket's rows are rewritten with growing sums.
	Through int64
}

// DeadLetter is a message or row that could not be stored, kept with the
// reason.
type DeadLetter struct {
	// Table is where the row was meant to go; empty for a Kafka message
	// that could not be decoded.
	Table string
	// RowKey identifies the row in Table (message id, session id), or the
	// message by "partition/offset".
	RowKey    string
	Topic     string
	Partition int
	Offset    int64
	// Time is the row's own time (event time, session start) or the Kafka
	// message's timestamp.
	Time time.Time
	// Code is ClickHouse's exception code, 0 when the client refused the
	// row or the message did not decode.
	Code    int32
	Error   string
	Payload string
}

// Sink stores batches, several at once (the batches of several partitions
// written together make fewer, larger inserts). Write must be idempotent:
// after a crash or a rebalance the same rows are written again. It returns
// an error only when the batches could not be stored and may be retried
// (the server is down, slow, out of memory, or has too many parts); rows
// that can never be stored go to their batch's dead letters instead. On
// error, nothing of the batches counts as stored and the processor commits
// nothing past them. A Sink may record in Batch.Written what it stored, to
// skip it when the same batch is retried.
type Sink interface {
	Write(ctx context.Context, batches []*Batch) error
}

// addCommerce adds the e-commerce properties of e, the batch's last
// event, reusing a slot's room for products, and returns them (the zero
// Props, not to be changed, when e has none).
func (b *Batch) addCommerce(d *eventDecoder, e *shoptrail.Event) *commerce.Props {
	if !hasCommerce(e) {
		b.CommerceOf = append(b.CommerceOf, -1)
		return &noCommerce
	}
	// Doubling: the events with properties are a share of the batch.
	b.Commerce = extend(b.Commerce, max(2*len(b.Commerce), 256))
	p := &b.Commerce[len(b.Commerce)-1]
	d.commerce(e, p)
	b.CommerceOf = append(b.CommerceOf, int32(len(b.Commerce)-1))
	return p
}

// noCommerce are the properties of an event without any.
var noCommerce commerce.Props

// CommerceAt returns the typed e-commerce properties of event i, nil when
// it has none.
func (b *Batch) CommerceAt(i int) *commerce.Props {
	if i < len(b.CommerceOf) {
		if j := b.CommerceOf[i]; j >= 0 {
			return &b.Commerce[j]
		}
	}
	return nil
}
