// Package session turns a partition's events into sessions, attributes each
// session to a traffic source and a GA4 default channel group, stitches
// anonymous visitors to customers and measures beacon loss. It is pure:
// no I/O, no goroutines, no clock; time is the events' own, driven forward
// by a watermark.
//
// # Attribution and channels
//
// Attribute derives a Source (source, medium, campaign, term, content,
// click id kind) from a hit's utm parameters, ad click id or referrer;
// Channel maps source, medium and campaign to GA4's default channel group.
// The data is embedded: sources.csv (source categories: GA4's list plus
// this market's search engines, social and video apps, marketplaces and B2B
// platforms), referrers.csv (referrer host patterns) and clickids.csv; the
// rules are the table channelRules. Every session carries RulesVersion.
//
// # Sessions
//
// One Sessionizer serves one Kafka partition. Feed it every message in
// order with Add (undecodable ones as an empty Event, so the offset still
// counts); Drain collects what came out. An event waits, per visitor, until
// the watermark (the newest event time seen minus Config.AllowedLateness)
// passes the whole second after it; then the visitor's waiting events are
// applied in event-time order. So sessions come out exactly as if computed
// from sorted data, however the events were shuffled within the allowed
// lateness: a late-arriving event that bridges a gap merges two sessions,
// one with a new campaign splits one, and an event carrying a customer id
// links the visitor from its own place in event time: the sessions it falls
// in and after carry the id, an earlier session closed by the timeout does
// not. Events behind the watermark on arrival are Late: assigned to no
// session, counted, never dropped (a late event carrying a customer id still
// links the visitor, at once).
//
// A session ends after Config.Timeout without events, at
// Config.MaxLength, or when an event's traffic source (source, medium,
// campaign, term, content or click id kind) differs from the session's and
// is not direct (unless Config.NoCampaignSplit). It is emitted once no on-time event can change it
// any more: when the watermark passes its last event plus the timeout (or
// its start plus the max length), rounded up to the second. Session ids are
// SessionID(site, visitor key, first message id), so a replay yields the
// same ids.
//
// # Driving it
//
// Per partition, on one goroutine:
//
//	s, _ := session.New(cfg)
//	s.Restore(changelogRecords)             // a fresh partition: none
//	resume consuming at s.Offset()+1
//	loop:
//	    for each fetched message: s.Add(m.Offset, &event)
//	    if the partition has been at its end a while: s.Advance(time.Now())
//	    s.Drain(&out)                        // sessions, assignments, links, loss
//	    at a checkpoint: out.Sessions = s.Open(out.Sessions) // provisional rows
//	    store out (ClickHouse), then
//	    recs := s.Checkpoint(recs[:0])       // changed visitors, tombstones, meta last
//	    write recs to the changelog topic, to the same partition number
//	    commit offset s.Offset()+1
//
// Advance must only follow the wall clock when the consumer has caught up:
// on a backlog it would make the backlog late.
//
// Outputs map to rows one to one: a Session per sessions row (key: session
// id; Open's provisional rows, Final false, come before the session's final
// row, so the last row written wins); an Assignment per event (key: message id; Assigned rows carry the
// session id and the event's beacon loss, Duplicate rows repeat the
// session id, Late and Invalid rows have none); an IdentityLink per
// identity_links row (key: site, anonymous id, user id; keep the earliest
// FirstSeen); LossRecords are sums per site, browser and page path. A
// replay after a crash re-emits identical rows, so tables keyed as above
// (ReplacingMergeTree) collapse them.
//
// # State
//
// Checkpoint returns the changelog records of what changed since the last
// one: per visitor (key site NUL "a:" anonymous id, or site NUL "u:" user
// id) a compact binary record of its open session, its waiting events and
// its small long-lived record; for a visitor forgotten after
// Config.VisitorRetention its last record marked purged, and a tombstone
// (nil Value) one checkpoint later; and MetaKey last (watermark and offset).
// The long-lived record holds whether the visitor had a session, its
// customer id, its tabs' sequence numbers and its first touch (the start,
// channel and source of its first session, carried by its first
// IdentityLink); a record written before first touches were kept (version
// 2) restores without one.
// Restore loads the compacted topic into a new Sessionizer, which then
// continues exactly as the original would have (tested: restore plus
// continue equals never stopped). If the process dies while writing a
// checkpoint, some visitor records are newer than the meta record: those
// visitors skip the replayed events they already applied (Stats.Replayed),
// so nothing is applied twice; their outputs for those events were stored
// before the checkpoint began. Sums across visitors, such as LossRecords,
// cannot be rebuilt exactly in that case; the per-event loss on the
// Assigned assignments can.
//
// # Cost
//
// Config.MaxVisitors and Config.MaxStateBytes cap the state: at a cap the
// least recently seen visitors are evicted, retained records first (see
// Config); StateBytes is the estimate the byte cap applies to.
//
// Memory is about 270 bytes of heap per open session (1,000,000 open
// sessions; see BenchmarkOpenSessionMemory), about 145 bytes per visitor
// record kept between sessions, and about 120 bytes per waiting event (there
// are about the partition's live event rate times the allowed lateness). The per-event cost
// is about 1.5 µs (BenchmarkSessionizer), most of it cache misses on the
// visitor's state.
package session
