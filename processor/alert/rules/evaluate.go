package rules

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
)

// Decision is one alert a signal causes: a rule matched and the alert goes
// to one destination.
type Decision struct {
	AlertID     string
	Rule        *Rule
	Destination *Destination
	// Subject is who the alert is about: the signal's key (customer id, or
	// "anon:" and the anonymous id).
	Subject string
	// HeldOut: the subject is in the rule's hold-out share and gets no alert.
	HeldOut  bool
	FollowUp string
}

// Evaluate returns the decisions for a signal, in rule order then
// destination order. Signals of unknown types or sites match nothing.
func (s *Set) Evaluate(sig *shoptrail.Signal) []Decision {
	var out []Decision
	for _, id := range []string{sig.Site, "*"} {
		site := s.Sites[id]
		if site == nil {
			continue
		}
		for _, r := range site.Rules {
			if !r.Matches(sig) {
				continue
			}
			subject := sig.Key()
			held := HeldOut(sig.Site, r.Name, subject, r.HoldOut)
			fu := ""
			if r.Type == TypeCartAbandoned {
				fu = r.SuggestFollowUp(sig)
			}
			for _, dn := range r.destinations(tier(sig)) {
				out = append(out, Decision{
					AlertID: AlertID(sig.ID, r.Name, dn), Rule: r, Destination: s.Destinations[dn],
					Subject: subject, HeldOut: held, FollowUp: fu,
				})
			}
		}
	}
	return out
}

// destinations routes by tier: TierRoute[tier] if set, else To.
func (r *Rule) destinations(tier string) []string {
	if d, ok := r.TierRoute[tier]; ok && tier != "" {
		return d
	}
	return r.To
}

// tier is the customer's tier: the signal's customer view, or for a tier
// change without one the tier moved into.
func tier(sig *shoptrail.Signal) string {
	if sig.Customer == nil {
		if sig.Type == shoptrail.SignalTierChanged && sig.Transition != nil {
			return sig.Transition.To
		}
		return ""
	}
	return sig.Customer.Tier
}

// Matches tells whether the signal is one the rule alerts on.
func (r *Rule) Matches(sig *shoptrail.Signal) bool {
	switch r.Type {
	case TypeCartAbandoned:
		if sig.Type != shoptrail.SignalCartAbandoned || sig.Cart == nil {
			return false
		}
		byValue := r.HasMin && sig.Cart.Value >= r.MinValue
		byTier := len(r.Tiers) > 0 && slices.Contains(r.Tiers, tier(sig))
		if !r.HasMin && len(r.Tiers) == 0 {
			return true
		}
		return byValue || byTier
	case TypeCustomerStage:
		if sig.Type != shoptrail.SignalStageChanged || sig.Transition == nil {
			return false
		}
		if !slices.Contains(r.Stages, sig.Transition.To) {
			return false
		}
		return len(r.Tiers) == 0 || slices.Contains(r.Tiers, tier(sig))
	case TypeCustomerTier:
		if sig.Type != shoptrail.SignalTierChanged || sig.Transition == nil {
			return false
		}
		tr := sig.Transition
		return (len(r.Tiers) == 0 || slices.Contains(r.Tiers, tr.To)) &&
			(len(r.FromTiers) == 0 || slices.Contains(r.FromTiers, tr.From))
	}
	return false
}

// SuggestFollowUp names the follow-up for an abandoned cart: a phone call
// from FollowUp.PhoneCall (or for a tier in PhoneCallTiers), a personal
// email from FollowUp.PersonalEmail, else an automatic email. Without
// thresholds every cart gets an automatic email.
func (r *Rule) SuggestFollowUp(sig *shoptrail.Signal) string {
	if sig.Cart == nil {
		return ""
	}
	v, f := sig.Cart.Value, r.FollowUp
	switch {
	case slices.Contains(f.PhoneCallTiers, tier(sig)) && tier(sig) != "":
		return FollowUpPhoneCall
	case f.PhoneCall > 0 && v >= f.PhoneCall:
		return FollowUpPhoneCall
	case f.PersonalEmail > 0 && v >= f.PersonalEmail:
		return FollowUpPersonalEmail
	}
	return FollowUpAutoEmail
}

// HeldOut tells whether a subject is in a rule's hold-out share: FNV-1a of
// site, rule and subject, mixed by SplitMix64's finalizer (FNV alone leaves
// the high bits of similar ids like "c1", "c2" alike), as a fraction of
// 2^64, below share. Deterministic, so replays and every alerter agree.
func HeldOut(site, rule, subject string, share float64) bool {
	if share <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(site))
	h.Write([]byte{0})
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(subject))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x)/float64(1<<64) < share
}

// AlertID is the id of the alert a signal causes for a rule at a
// destination: 32 hex characters of SHA-256 over the three. It is the
// webhook-id of every attempt.
func AlertID(signalID, rule, destination string) string {
	h := sha256.New()
	for _, s := range []string{signalID, rule, destination} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// DigestID is the id of a digest: rule, group, local day and destination.
func DigestID(rule, group, day, destination string) string {
	return AlertID("digest\x00"+day+"\x00"+group, rule, destination)
}

// CooldownKey is the key of a subject's cooldown for a rule.
func CooldownKey(site, rule, subject string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(site))
	h.Write([]byte{0})
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(subject))
	return h.Sum64()
}

// Next returns t if it is outside the quiet hours in loc, else the moment
// they end.
func (q *QuietHours) Next(t time.Time, loc *time.Location) time.Time {
	if q == nil {
		return t
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	midnight := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
	at := func(day, min int) time.Time {
		d := midnight.AddDate(0, 0, day)
		return time.Date(d.Year(), d.Month(), d.Day(), min/60, min%60, 0, 0, loc)
	}
	if q.From < q.To {
		if m >= q.From && m < q.To {
			return at(0, q.To)
		}
		return t
	}
	// Spans midnight: quiet from From to 24:00 and from 00:00 to To.
	if m >= q.From {
		return at(1, q.To)
	}
	if m < q.To {
		return at(0, q.To)
	}
	return t
}

// WebhookKey decodes a Standard Webhooks secret: "whsec_" and base64 of
// the key (24 to 64 bytes).
func WebhookKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New("the webhook secret must start with whsec_ (Standard Webhooks)")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("the webhook secret after whsec_ is not base64: %w", err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the webhook secret's key is %d bytes; want 24 to 64", len(key))
	}
	return key, nil
}
