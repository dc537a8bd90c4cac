package presence

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// forgetBatch is how many members of the lapse queue ForgetTenant reads at a time.
const forgetBatch = 500

// ForgetTenant removes the tenant from the sorted sets presence shares between tenants: its
// admins' pending lapses (chat:presence:lapses) and its support schedule (chat:support:due).
// The tenant's own keys (chat:{<tenant>}...) are not touched: redisconn.PurgeTenant deletes
// those. It returns how many members it removed.
func (s *Store) ForgetTenant(ctx context.Context, tenantID string) (int64, error) {
	if tenantID == "" {
		return 0, errors.New("forget tenant: no tenant id")
	}
	removed, err := s.rdb.ZRem(ctx, dueKey, tenantID).Result()
	if err != nil {
		return 0, fmt.Errorf("forget tenant's support schedule: %w", err)
	}
	// The members are "<tenant>\x00<admin>": compared by prefix, not matched as a pattern.
	prefix := lapseMember(tenantID, "")
	var cursor uint64
	for {
		kv, next, err := s.rdb.ZScan(ctx, lapsesKey, cursor, "", forgetBatch).Result()
		if err != nil {
			return removed, fmt.Errorf("forget tenant's lapses: %w", err)
		}
		var members []any
		for i := 0; i < len(kv); i += 2 { // member, score, member, score...
			if strings.HasPrefix(kv[i], prefix) {
				members = append(members, kv[i])
			}
		}
		if len(members) > 0 {
			n, err := s.rdb.ZRem(ctx, lapsesKey, members...).Result()
			removed += n
			if err != nil {
				return removed, fmt.Errorf("forget tenant's lapses: %w", err)
			}
		}
		if cursor = next; cursor == 0 {
			return removed, nil
		}
	}
}
