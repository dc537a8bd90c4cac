package events

import (
	"bytes"
	"context"
)

// eraseScan is how many stream entries one step of EraseEvents reads.
const eraseScan = 500

// EraseEvents deletes a customer's events from the tenant's stream, so that no replay shows
// them again: all of them when convIDs is nil, else those whose payload names one of the
// conversations convIDs. It reads the stream a step at a time and returns how many entries it
// deleted.
func (b *Bus) EraseEvents(ctx context.Context, tenantID, customerID string, convIDs []string) (int64, error) {
	key := Key(tenantID)
	var total int64
	start := "-"
	for {
		msgs, err := b.rdb.XRangeN(ctx, key, start, "+", eraseScan).Result()
		if err != nil {
			return total, err
		}
		var ids []string
		for _, r := range records(msgs) {
			if r.CustomerID == customerID && namesAny(r.Admin, convIDs) {
				ids = append(ids, r.ID)
			}
		}
		if len(ids) > 0 {
			n, err := b.rdb.XDel(ctx, key, ids...).Result()
			if err != nil {
				return total, err
			}
			total += n
		}
		if len(msgs) < eraseScan {
			return total, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// namesAny reports whether the JSON payload names one of the conversations ids as a string,
// or ids is nil.
func namesAny(payload []byte, ids []string) bool {
	if ids == nil {
		return true
	}
	for _, id := range ids {
		if bytes.Contains(payload, []byte(`"`+id+`"`)) {
			return true
		}
	}
	return false
}
