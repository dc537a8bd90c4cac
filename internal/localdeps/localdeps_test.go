package localdeps

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestMain(m *testing.M) {
	ServeFerretDBChildIfAsked()
	os.Exit(m.Run())
}

func TestFerretDBServesInProcessAndAsAChild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(FerretDBOptions) (*FerretDB, error)
	}{
		{"in process", StartFerretDB},
		{"child process", StartFerretDBChild},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f, err := tc.start(FerretDBOptions{SQLiteDir: filepath.Join(t.TempDir(), "new")})
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer f.Close()
			client, err := mongo.Connect(options.Client().ApplyURI(f.URI()))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = client.Disconnect(ctx) }()
			coll := client.Database("db").Collection("c")
			if _, err := coll.InsertOne(ctx, bson.M{"_id": "a", "n": 1}); err != nil {
				t.Fatalf("InsertOne on %s = %v", f.URI(), err)
			}
			var got struct{ N int }
			if err := coll.FindOne(ctx, bson.M{"_id": "a"}).Decode(&got); err != nil || got.N != 1 {
				t.Errorf("FindOne = %+v, %v; want n 1", got, err)
			}
		})
	}
}

func TestTempDirRemovesOnlyTheDirectoriesOfGoneProcesses(t *testing.T) {
	prefix := "localdeps-test-" + strconv.Itoa(os.Getpid()) + "-"
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(os.TempDir(), prefix+strconv.Itoa(gone.Process.Pid)+"-x")
	alive := filepath.Join(os.TempDir(), prefix+strconv.Itoa(os.Getppid())+"-x")
	for _, dir := range []string{dead, alive} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	dir, err := TempDir(prefix)
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if want := prefix + strconv.Itoa(os.Getpid()) + "-"; filepath.Base(dir)[:len(want)] != want {
		t.Errorf("TempDir(%q) = %s, want a name starting %s", prefix, dir, want)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory of a gone process is still there: Stat = %v", err)
	}
	if _, err := os.Stat(alive); err != nil {
		t.Errorf("the directory of a live process was removed: Stat = %v", err)
	}
}

func TestRedisStopsAndStartsOnItsPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := StartRedis()
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	defer r.Stop()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q) = %v", r.URL(), err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING = %v", err)
	}
	r.Stop()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING with the server stopped = nil error")
	}
	if err := r.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Errorf("PING after Start = %v", err)
	}
}
