package processor

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/shoptrail/shoptrail/processor/session"
)

// LossBucketSize is the number of Kafka offsets of one partition whose
// beacon loss is summed into one delivery_loss row per site, browser and
// page.
//
// The sessionizer's loss records are sums over whatever ran between two
// Drain calls, and where those calls fall depends on batching, which differs
// between a run and its replay after a crash. Summing by fixed offset ranges
// instead makes every row a deterministic function of the partition's
// events: the processor drains at each bucket boundary, carries the open
// bucket's sums in its checkpoint, and rewrites the bucket's rows with
// growing sums (versioned by the last offset counted), so a replay rewrites
// the same rows and nothing is counted twice.
const LossBucketSize = 100_000

type lossKey struct{ site, browser, path string }

// lossAcc sums the loss records of the open bucket.
type lossAcc struct {
	bucket int64 // first offset of the open bucket; -1 before any
	day    time.Time
	sums   map[lossKey]*[2]int64 // received, lost
}

func newLossAcc() lossAcc { return lossAcc{bucket: -1, sums: map[lossKey]*[2]int64{}} }

func bucketOf(offset int64) int64 { return offset - offset%LossBucketSize }

// add folds loss records into the open bucket.
func (a *lossAcc) add(recs []session.LossRecord) {
	for i := range recs {
		r := &recs[i]
		k := lossKey{r.Site, r.Browser, r.Path}
		s := a.sums[k]
		if s == nil {
			s = new([2]int64)
			a.sums[k] = s
		}
		s[0] += r.Received
		s[1] += r.Lost
	}
}

// rows appends the open bucket's rows, counted through offset through.
func (a *lossAcc) rows(dst []LossRow, partition int, through int64) []LossRow {
	for k, s := range a.sums {
		dst = append(dst, LossRow{
			Site: k.site, Browser: k.browser, Path: k.path, Partition: partition,
			Bucket: a.bucket, Day: a.day, Received: s[0], Lost: s[1], Through: through,
		})
	}
	return dst
}

// start opens the bucket of offset, dated day.
func (a *lossAcc) start(offset int64, day time.Time) {
	a.bucket = bucketOf(offset)
	y, m, d := day.UTC().Date()
	a.day = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	clear(a.sums)
}

// encode serializes the open bucket for the checkpoint.
func (a *lossAcc) encode() []byte {
	b := binary.AppendVarint(nil, a.bucket)
	b = binary.AppendVarint(b, a.day.Unix())
	b = binary.AppendUvarint(b, uint64(len(a.sums)))
	for k, s := range a.sums {
		for _, str := range []string{k.site, k.browser, k.path} {
			b = binary.AppendUvarint(b, uint64(len(str)))
			b = append(b, str...)
		}
		b = binary.AppendVarint(b, s[0])
		b = binary.AppendVarint(b, s[1])
	}
	return b
}

var errBadLoss = errors.New("malformed loss state")

// decode restores what encode wrote.
func (a *lossAcc) decode(b []byte) error {
	varint := func() int64 {
		x, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return x
	}
	uvarint := func() uint64 {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return x
	}
	str := func() string {
		n := uvarint()
		if n > uint64(len(b)) {
			b = nil
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	if len(b) == 0 {
		return errBadLoss
	}
	a.bucket = varint()
	a.day = time.Unix(varint(), 0).UTC()
	n := uvarint()
	clear(a.sums)
	for i := uint64(0); i < n && b != nil; i++ {
		k := lossKey{str(), str(), str()}
		a.sums[k] = &[2]int64{varint(), varint()}
	}
	if b == nil {
		return errBadLoss
	}
	return nil
}
