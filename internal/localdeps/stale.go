package localdeps

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// What a process makes for itself carries its process id, "<prefix><pid>-..." for a directory
// and "<prefix>_<pid>_..." for a database, so that the next process can remove what a killed
// one left behind.

// TempDir creates a directory in the system's temporary directory named prefix, this process's
// id and a random suffix, after removing the directories of prefix whose processes are gone.
// The caller removes its own.
func TempDir(prefix string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, dir := range dirs {
		if pid, ok := ownerPID(strings.TrimPrefix(filepath.Base(dir), prefix)); ok && !processAlive(pid) {
			_ = os.RemoveAll(dir)
		}
	}
	return os.MkdirTemp("", prefix+strconv.Itoa(os.Getpid())+"-")
}

// RemoveStaleDatabases drops the databases on the MongoDB server at uri named
// "<prefix>_<pid>_..." whose processes are gone (killed before their cleanup ran), so that a
// long-lived server does not fill up. It does what it can within ctx and reports nothing.
func RemoveStaleDatabases(ctx context.Context, uri, prefix string) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		return
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	names, err := client.ListDatabaseNames(ctx, map[string]any{})
	if err != nil {
		return
	}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, prefix+"_")
		if pid, own := ownerPID(rest); ok && own && !processAlive(pid) {
			_ = client.Database(name).Drop(ctx)
		}
	}
}

// ownerPID returns the process id that starts s ("<pid>-..." or "<pid>_..."), the process that
// made a directory or database, unless it is this process.
func ownerPID(s string) (int, bool) {
	end := strings.IndexAny(s, "-_")
	if end < 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(s[:end])
	if err != nil || pid == os.Getpid() {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether a process with pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
