package stack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// ChildEnv names the variable that makes ServeChildIfAsked run FerretDB on the SQLite
// directory it gives.
const ChildEnv = "SUPPORTCHAT_BENCH_FERRETDB_DIR"

// ChildPostgreSQLEnv names the variable that makes ServeChildIfAsked run FerretDB with its
// PostgreSQL backend on the database of the URL it gives.
const ChildPostgreSQLEnv = "SUPPORTCHAT_BENCH_FERRETDB_POSTGRESQL_URL"

// uriPrefix starts the line by which the child tells its parent where it listens.
const uriPrefix = "ferretdb-uri "

// ServeChildIfAsked runs FerretDB and exits when this process was started by Start or
// StartFerretDB as its FerretDB child (ChildEnv or ChildPostgreSQLEnv is set), and returns at
// once otherwise. Call it first in main or TestMain. The child serves on a free port of
// 127.0.0.1, prints its URI on stdout, and exits when its stdin closes (the parent ended).
func ServeChildIfAsked() {
	dir, pgURL := os.Getenv(ChildEnv), os.Getenv(ChildPostgreSQLEnv)
	if dir == "" && pgURL == "" {
		return
	}
	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	if pgURL != "" {
		config.Handler, config.PostgreSQLURL = "postgresql", pgURL
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb child:", err)
			os.Exit(1)
		}
		config.Handler, config.SQLiteURL = "sqlite", "file:"+dir+"/"
	}
	f, err := ferretdb.New(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb child:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	fmt.Println(uriPrefix + f.MongoDBURI())
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	<-done
	os.Exit(0)
}

// ferretChild is a running FerretDB child process.
type ferretChild struct {
	uri   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// FerretDBOptions configure a FerretDB child.
type FerretDBOptions struct {
	// SQLiteDir holds the SQLite files of the SQLite backend, used unless PostgreSQLURL is set.
	SQLiteDir string
	// PostgreSQLURL names the PostgreSQL database (which must exist) of the PostgreSQL backend.
	PostgreSQLURL string
	// Stderr receives the child's log (errors only). Default os.Stderr.
	Stderr io.Writer
}

// StartFerretDB starts this binary again as a FerretDB child configured by o, as Start does,
// and returns its URI and how to stop it. The program's main must call ServeChildIfAsked
// first.
func StartFerretDB(o FerretDBOptions) (uri string, stop func(), err error) {
	c, err := startFerretDB(o)
	if err != nil {
		return "", nil, err
	}
	return c.uri, c.stop, nil
}

// startFerretDB starts this binary again as a FerretDB child configured by o.
func startFerretDB(o FerretDBOptions) (*ferretChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = os.Environ()
	if o.PostgreSQLURL != "" {
		cmd.Env = append(cmd.Env, ChildPostgreSQLEnv+"="+o.PostgreSQLURL)
	} else {
		cmd.Env = append(cmd.Env, ChildEnv+"="+o.SQLiteDir)
	}
	cmd.Stderr = o.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = childAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &ferretChild{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if uri, ok := strings.CutPrefix(sc.Text(), uriPrefix); ok {
				lines <- uri
			}
		}
		close(lines)
	}()
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	select {
	case uri, ok := <-lines:
		if !ok {
			c.stop()
			return nil, fmt.Errorf("child %s exited without serving (does main or TestMain call stack.ServeChildIfAsked?)", exe)
		}
		c.uri = uri
		return c, nil
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("child %s did not serve within 30s (does main or TestMain call stack.ServeChildIfAsked?)", exe)
	}
}

// stop closes the child's stdin, so it shuts down, and kills it if it has not within 10s.
func (c *ferretChild) stop() {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
