package alert

import "time"

// Clock is the alerter's time: retries, quiet hours, rate limits and
// cooldown expiry read it. Tests inject one they advance by hand, so a
// receiver down for ten minutes takes no ten minutes.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WallClock is the real clock.
var WallClock Clock = wallClock{}
