package redisconn

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// TenantKeyPatterns returns the SCAN patterns of every key of a tenant: the service's keys are
// "chat:{<tenant>}..." (the tenant's hash tag: its cache, presence, support, event stream and
// limits) and "chat:{<tenant>:<subject>}..." (the limits of one caller, each on a slot of its
// own). The closing brace or the colon after the id keeps the keys of tenant "acme-2" out of
// those of "acme". Glob characters of the id are escaped.
func TenantKeyPatterns(tenantID string) []string {
	id := GlobQuote(tenantID)
	return []string{"chat:{" + id + "}*", "chat:{" + id + ":*"}
}

// PurgeTenant deletes every key of the tenant (TenantKeyPatterns) and returns how many it
// deleted (UnlinkMatching). Run it only for a tenant no replica serves any more: a key written
// meanwhile may be left behind (running it again deletes it).
func PurgeTenant(ctx context.Context, rdb redis.UniversalClient, tenantID string) (int64, error) {
	if tenantID == "" {
		return 0, errors.New("purge tenant keys: no tenant id")
	}
	var deleted int64
	for _, pattern := range TenantKeyPatterns(tenantID) {
		n, err := UnlinkMatching(ctx, rdb, pattern)
		deleted += n
		if err != nil {
			return deleted, fmt.Errorf("purge tenant keys: %w", err)
		}
	}
	return deleted, nil
}
