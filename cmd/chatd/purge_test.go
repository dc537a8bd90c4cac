package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/tenant"
	"github.com/supportchat/supportchat/internal/testenv"
)

// The tenants of the purge tests: their ids share a prefix, so a purge of the first that
// matched by prefix would take the second's data too.
const (
	purged = "shop-a"
	kept   = "shop-a-2"
)

// purgeEnv is the environment of a chatd on the database and Redis of a test, with the
// tenants of both purge tests in a folder of their own; it returns the environment and the
// folder.
func purgeEnv(t *testing.T) (env map[string]string, dir string) {
	t.Helper()
	uri, database := testenv.MustMongo(t)
	rds := testenv.StartRedis(t)
	dir = t.TempDir()
	for _, id := range []string{purged, kept} {
		if err := os.WriteFile(filepath.Join(dir, id+".yaml"), []byte(tenantYAML(id, "https://"+id+".example/issuer")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]string{
		"CHAT_MONGODB_URI":      uri,
		"CHAT_MONGODB_DATABASE": database,
		"CHAT_REDIS_URL":        rds.URL(),
		"CHAT_TENANTS_DIR":      dir,
		"OTEL_SDK_DISABLED":     "true",
	}, dir
}

// seedThroughTheService writes data of both tenants the way the service does: conversations,
// their logs, views, list generations and event streams, settings, admins, presence and the
// support block; then what the service's code paths here do not reach: a per-caller limit
// key, and a document of a collection this version does not have (later ones add some).
func seedThroughTheService(t *testing.T, env map[string]string) {
	t.Helper()
	ctx := context.Background()
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	app, err := server.New(ctx, cfg, server.Options{
		Version: "test", Getenv: getenv, Logger: slog.New(slog.DiscardHandler), Webhooks: server.WebhookTuning{Off: true},
		Tuning: server.Tuning{RedisTimeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := app.DB.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{purged, kept} {
		tn, err := app.Tenants.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		tctx := tenant.NewContext(ctx, tn)
		customer := chat.WithCaller(tctx, chat.Caller{ID: "cust-1", Role: chat.RoleCustomer, Name: "Casey"})
		admin := chat.WithCaller(tctx, chat.Caller{ID: "admin-1", Role: chat.RoleAdmin, Name: "Alex"})
		for i := range 3 {
			sum, err := app.Chat.Start(customer, chat.StartInput{Message: fmt.Sprintf("hello %d", i)})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if _, err := app.Chat.Send(admin, sum.ID, chat.SendInput{Body: "hi"}); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		app.Chat.NoteAdmin(admin)
		prompt := "back soon"
		if _, err := app.Chat.PutSettings(admin, chat.Overrides{AwayPrompt: &prompt}); err != nil {
			t.Fatalf("PutSettings: %v", err)
		}
		if _, err := app.Chat.SetPresence(admin, chat.AdminOnline); err != nil {
			t.Fatalf("SetPresence: %v", err)
		}
		if err := app.Redis.Set(ctx, "chat:{"+id+":cust-1}:limit:w", "1", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := rawDB(t, env).Collection("audit").InsertOne(ctx, bson.M{"tenant_id": id, "action": "export"}); err != nil {
			t.Fatal(err)
		}
	}
}

// rawDB returns the test's database, to look behind the store.
func rawDB(t *testing.T, env map[string]string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(env["CHAT_MONGODB_URI"]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(env["CHAT_MONGODB_DATABASE"])
}

// tenantData is what a tenant has: documents by collection, its Redis keys, and its members
// of the sets shared by tenants.
type tenantData struct {
	Docs    map[string]int64
	Keys    []string
	Members int64
}

// dataOf returns what each tenant has in the database and in Redis, found without the
// service's help: every document of every collection with that tenant_id, every key whose
// hash tag is the tenant's or one of its callers', every member naming the tenant.
func dataOf(t *testing.T, env map[string]string) map[string]*tenantData {
	t.Helper()
	ctx := context.Background()
	data := map[string]*tenantData{purged: {Docs: map[string]int64{}}, kept: {Docs: map[string]int64{}}}
	db := rawDB(t, env)
	names, err := db.ListCollectionNames(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		for id, d := range data {
			n, err := db.Collection(name).CountDocuments(ctx, bson.M{"tenant_id": id})
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				d.Docs[name] = n
			}
		}
	}
	opts, err := redis.ParseURL(env["CHAT_REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for id, d := range data {
			if strings.Contains(k, "{"+id+"}") || strings.Contains(k, "{"+id+":") {
				d.Keys = append(d.Keys, k)
			}
		}
	}
	for _, d := range data {
		slices.Sort(d.Keys)
	}
	lapses, err := rdb.ZRange(ctx, "chat:presence:lapses", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	due, err := rdb.ZRange(ctx, "chat:support:due", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append(lapses, due...) {
		for id, d := range data {
			if m == id || strings.HasPrefix(m, id+"\x00") {
				d.Members++
			}
		}
	}
	return data
}

// TestTenantsPurge seeds two tenants through the service, removes the first one's file and
// purges it: all its documents, keys and members go, what chatd prints counts them exactly,
// and the other tenant keeps everything.
func TestTenantsPurge(t *testing.T) {
	env, dir := purgeEnv(t)
	seedThroughTheService(t, env)
	before := dataOf(t, env)
	for _, want := range []string{"conversations", "entries", "settings", "admins", "audit"} {
		if before[purged].Docs[want] == 0 {
			t.Fatalf("seeded documents of %s = %v, want some in %s", purged, before[purged].Docs, want)
		}
	}
	for _, want := range []string{":events", ":gen:", ":presence:online", ":support:", ":cust-1}:limit:"} {
		if !strings.Contains(strings.Join(before[purged].Keys, " "), want) {
			t.Fatalf("seeded keys of %s = %q, want one with %s", purged, before[purged].Keys, want)
		}
	}
	if before[purged].Members == 0 {
		t.Fatalf("seeded no members of the shared sets for %s", purged)
	}

	if err := os.Remove(filepath.Join(dir, purged+".yaml")); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runChatd(context.Background(), []string{"tenants", "purge", purged}, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("tenants purge = %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	t.Logf("chatd tenants purge %s:\n%s", purged, stdout.String())
	// The output: one line per collection, the keys, the members and the total.
	printed := map[string]int64{}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 {
			t.Fatalf("output line %q is not \"<what> <count>\"", line)
		}
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("output line %q is not \"<what> <count>\"", line)
		}
		printed[strings.Join(f[:len(f)-1], " ")] = n
	}
	want := map[string]int64{
		"redis keys":    int64(len(before[purged].Keys)),
		"redis members": before[purged].Members,
	}
	total := want["redis keys"] + want["redis members"]
	for coll, n := range before[purged].Docs {
		want["mongodb "+coll] = n
		total += n
	}
	want["total"] = total
	if diff := cmp.Diff(want, printed); diff != "" {
		t.Errorf("printed counts differ from what was seeded (-seeded +printed):\n%s", diff)
	}
	if last := lines[len(lines)-1]; last != fmt.Sprintf("total %d", total) {
		t.Errorf("last line = %q, want the total", last)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr = %q, want nothing", stderr.String())
	}

	after := dataOf(t, env)
	if d := after[purged]; len(d.Docs) != 0 || len(d.Keys) != 0 || d.Members != 0 {
		t.Errorf("left of %s after the purge: %+v", purged, d)
	}
	if diff := cmp.Diff(before[kept], after[kept]); diff != "" {
		t.Errorf("%s changed by the purge of %s (-before +after):\n%s", kept, purged, diff)
	}
}

// TestTenantsPurgeRefuses checks that a purge refuses, deleting nothing, a tenant that still
// has a file (an invalid one included), an id that is not one, and a folder it cannot read;
// and that the command needs its id.
func TestTenantsPurgeRefuses(t *testing.T) {
	env, dir := purgeEnv(t)
	seedThroughTheService(t, env)
	before := dataOf(t, env)
	if err := os.WriteFile(filepath.Join(dir, purged+".yaml"), []byte("id: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := func(k string) string {
		if k == "CHAT_TENANTS_DIR" {
			return filepath.Join(dir, "missing")
		}
		return env[k]
	}
	for _, tc := range []struct {
		name   string
		id     string
		getenv func(string) string
		says   string
	}{
		{"configured, the file invalid", purged, func(k string) string { return env[k] }, "still configured"},
		{"configured, the file valid", kept, func(k string) string { return env[k] }, "still configured"},
		{"not an id", "Shop_A", func(k string) string { return env[k] }, "want 2 to 63"},
		{"a pattern", "shop-*", func(k string) string { return env[k] }, "want 2 to 63"},
		{"tenants folder unreadable", purged, missing, "cannot tell"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runChatd(context.Background(), []string{"tenants", "purge", tc.id}, tc.getenv, &stdout, &stderr)
			if code := exitCode(err, &stderr); code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("stderr = %q, want it to say %q", stderr.String(), tc.says)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
	if diff := cmp.Diff(before, dataOf(t, env)); diff != "" {
		t.Errorf("refused purges changed data (-before +after):\n%s", diff)
	}
	for _, args := range [][]string{{"tenants", "purge"}, {"tenants", "purge", purged, kept}} {
		if code := exitCode(runChatd(context.Background(), args, func(k string) string { return env[k] }, io.Discard, io.Discard), io.Discard); code != 2 {
			t.Errorf("chatd %v exits %d, want 2", args, code)
		}
	}
}
