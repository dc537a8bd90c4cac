package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/mongodb"
	"github.com/supportchat/supportchat/internal/presence"
	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/tenant"
)

// purgeRedisTimeout bounds each Redis command of a purge: a SCAN or a pipeline of UNLINKs of
// hundreds of keys, wider than the service's per-request bound.
const purgeRedisTimeout = 5 * time.Second

// purgeTenant erases every trace of tenant id, which must no longer be configured, from
// MongoDB and Redis, and prints what it deleted: a line per MongoDB collection, the Redis keys
// and members of shared sets, and the total. Counts printed before an error stand: running it
// again finishes the purge.
func purgeTenant(ctx context.Context, id string, getenv func(string) string, stdout io.Writer) error {
	if !tenant.ValidID(id) {
		return fmt.Errorf("tenant id %q: want 2 to 63 of a-z, 0-9 and -", id)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	configured, err := tenant.Configured(cfg.TenantsDir, id)
	switch {
	case err != nil:
		return fmt.Errorf("cannot tell whether tenant %s is still configured: %w", id, err)
	case configured:
		return fmt.Errorf("tenant %s is still configured: it has a file in %s (CHAT_TENANTS_DIR); remove the file, then purge", id, cfg.TenantsDir)
	}

	db, err := mongodb.Open(ctx, cfg.MongoURI, cfg.MongoDatabase, mongodb.Options{Timeout: cfg.MongoTimeout})
	if err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = db.Close(cctx)
	}()
	rdb, err := redisconn.Open(cfg.RedisURL, redisconn.Options{Mode: cfg.RedisMode, Timeout: purgeRedisTimeout})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer func() { _ = rdb.Close() }()
	// Both must answer before anything is deleted, so that a purge is not left half done for
	// want of one of them.
	if err := db.Ping(ctx); err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}

	var total int64
	docs, err := db.PurgeTenant(ctx, id)
	for _, coll := range slices.Sorted(maps.Keys(docs)) {
		fmt.Fprintf(stdout, "mongodb %s %d\n", coll, docs[coll])
		total += docs[coll]
	}
	if err != nil {
		return err
	}
	keys, err := redisconn.PurgeTenant(ctx, rdb, id)
	fmt.Fprintf(stdout, "redis keys %d\n", keys)
	total += keys
	if err != nil {
		return err
	}
	members, err := presence.New(rdb, time.Now).ForgetTenant(ctx, id)
	fmt.Fprintf(stdout, "redis members %d\n", members)
	total += members
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "total %d\n", total)
	return err
}
