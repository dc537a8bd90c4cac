package events

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
)

// Bounds of one replay (a resume with Last-Event-ID): it reads the tenant's stream a page at a
// time, and gives up with ErrReplayBudget once it has looked at ReplayEntries entries, or would
// return more than ReplayBytes of payloads, without reaching where the live stream starts.
// Beyond that, listing again with updated_since costs the service no more than the replay.
const (
	ReplayPage    = 100
	ReplayEntries = 2000
	ReplayBytes   = 1 << 20
)

// ErrGone says that an event id is no longer in (or never was in) the tenant's replay window.
var ErrGone = errors.New("event is outside the replay window")

// ErrReplayBudget says that a replay stopped at its budget (ReplayEntries, ReplayBytes) before
// reaching the position it was asked to reach: the caller tells the client to resync.
var ErrReplayBudget = errors.New("replay exceeds its budget")

// replayScript reads one page of a replay in Redis, so that a customer's page carries only
// what they may see. It returns false when the entry ARGV[1] is not in the stream KEYS[1]:
// trimmed, or never there. Otherwise it looks at up to ARGV[2] entries after it and keeps those
// of the customer ARGV[3] and of the whole tenant (every entry when ARGV[3] is ""), stopping
// before the entry that would take the kept entries' values past ARGV[4] bytes. It returns the
// id of the last entry looked at (ARGV[1] when none), how many it looked at, the kept entries
// as XRANGE returns them, the size of their values, and 1 when it stopped at the byte bound.
const replayScript = `
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then
  return false
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
local kept, last, bytes, limit = {}, ARGV[1], 0, tonumber(ARGV[4])
for i, e in ipairs(entries) do
  local f, customer, size = e[2], '', 0
  for j = 1, #f, 2 do
    if f[j] == 'c' then customer = f[j + 1] end
    size = size + #f[j + 1]
  end
  if ARGV[3] == '' or customer == '' or customer == ARGV[3] then
    if bytes + size > limit then
      return {last, i - 1, kept, bytes, 1}
    end
    bytes = bytes + size
    kept[#kept + 1] = e
  end
  last = e[1]
end
return {last, #entries, kept, bytes, 0}`

// page is one read of a replay.
type page struct {
	records []Record
	// last is the id of the last entry looked at, scanned how many were looked at.
	last    string
	scanned int
	// bytes is the size of the records' values; full says the byte bound stopped the page.
	bytes int
	full  bool
}

// Replay calls emit with the events after the event id that caller may see, a page (up to
// ReplayPage entries of the stream) at a time, as each page is read, until it has read up to
// until or the stream's end; it returns the id of the last entry it read. A customer's pages
// are filtered in Redis, so the events of other customers never leave it. Replay returns
// ErrGone when id is not in the stream (trimmed, never issued, or Redis lost the stream),
// also when the stream is trimmed past the replay's position while it reads; ErrReplayBudget
// when it reaches its budget first; and emit's error when emit fails.
func (b *Bus) Replay(ctx context.Context, tenantID string, caller chat.Caller, id, until string, emit func([]Record) error) (string, error) {
	if ms, seq, ok := ParseID(id); !ok || ms == math.MaxUint64 && seq == math.MaxUint64 {
		return "", ErrGone // the largest id has no successor to read from; no stream assigns it
	}
	customer := ""
	if !caller.IsAdmin() {
		customer = caller.ID
	}
	pos, scanned, bytes := id, 0, 0
	for {
		count := min(ReplayPage, ReplayEntries-scanned)
		p, err := b.page(ctx, tenantID, customer, pos, count, ReplayBytes-bytes)
		if err != nil {
			return "", err
		}
		if len(p.records) > 0 {
			if err := emit(p.records); err != nil {
				return "", err
			}
		}
		pos, scanned, bytes = p.last, scanned+p.scanned, bytes+p.bytes
		switch {
		case !Less(pos, until):
			return pos, nil // where the caller's live events start
		case p.full:
			return "", ErrReplayBudget
		case p.scanned < count:
			return pos, nil // the stream's end
		case scanned >= ReplayEntries:
			return "", ErrReplayBudget
		}
	}
}

// page reads up to count entries after id that the customer may see ("" for an admin), whose
// payloads take up to limit bytes.
func (b *Bus) page(ctx context.Context, tenantID, customer, id string, count, limit int) (page, error) {
	res, err := b.replay.Run(ctx, b.rdb, []string{Key(tenantID)}, id, count, customer, limit).Slice()
	if errors.Is(err, redis.Nil) {
		return page{}, ErrGone
	}
	if err != nil {
		return page{}, err
	}
	if len(res) != 5 {
		return page{}, fmt.Errorf("replay script answered %d values, want 5", len(res))
	}
	last, _ := res[0].(string)
	scanned, _ := res[1].(int64)
	kept, _ := res[2].([]any)
	bytes, _ := res[3].(int64)
	full, _ := res[4].(int64)
	if last == "" {
		return page{}, errors.New("replay script answered no position")
	}
	msgs := make([]redis.XMessage, 0, len(kept))
	for _, e := range kept {
		m, err := xmessage(e)
		if err != nil {
			return page{}, err
		}
		msgs = append(msgs, m)
	}
	return page{records: records(msgs), last: last, scanned: int(scanned), bytes: int(bytes), full: full == 1}, nil
}

// xmessage converts a stream entry as a script returns it ({id, {field, value, ...}}).
func xmessage(v any) (redis.XMessage, error) {
	e, _ := v.([]any)
	if len(e) != 2 {
		return redis.XMessage{}, fmt.Errorf("replay script answered an entry of %d values, want 2", len(e))
	}
	id, _ := e[0].(string)
	fields, _ := e[1].([]any)
	m := redis.XMessage{ID: id, Values: make(map[string]any, len(fields)/2)}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		m.Values[k] = fields[i+1]
	}
	return m, nil
}
