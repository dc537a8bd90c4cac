package localdeps

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// A FerretDB child is this binary started again with the variables below set, which
// ServeFerretDBChildIfAsked turns into a FerretDB server. The benchmarks run FerretDB so, to
// keep its allocations out of -benchmem figures and its garbage out of the service's GC, as a
// real MongoDB would.
const (
	childSQLiteEnv     = "SUPPORTCHAT_FERRETDB_CHILD_SQLITE_DIR"
	childPostgreSQLEnv = "SUPPORTCHAT_FERRETDB_CHILD_POSTGRESQL_URL"
	childLogLevelEnv   = "SUPPORTCHAT_FERRETDB_CHILD_LOG_LEVEL"
)

// childURIPrefix starts the line by which the child tells its parent where it listens.
const childURIPrefix = "ferretdb-uri "

// childStartTimeout bounds how long a child may take to serve, childStopTimeout how long it may
// take to stop before it is killed.
const (
	childStartTimeout = 30 * time.Second
	childStopTimeout  = 10 * time.Second
)

// ServeFerretDBChildIfAsked runs FerretDB and exits when this process was started by
// StartFerretDBChild, and returns at once otherwise. Call it first in the main or TestMain of
// every program that starts a FerretDB child. The child serves on a free port of 127.0.0.1,
// prints its URI on stdout, logs on stderr, and exits when its stdin closes (the parent ended).
func ServeFerretDBChildIfAsked() {
	o := FerretDBOptions{SQLiteDir: os.Getenv(childSQLiteEnv), PostgreSQLURL: os.Getenv(childPostgreSQLEnv), Log: os.Stderr}
	if o.SQLiteDir == "" && o.PostgreSQLURL == "" {
		return
	}
	if err := o.LogLevel.UnmarshalText([]byte(os.Getenv(childLogLevelEnv))); err != nil {
		o.LogLevel = slog.LevelError
	}
	f, err := StartFerretDB(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb child:", err)
		os.Exit(1)
	}
	fmt.Println(childURIPrefix + f.URI())
	_, _ = io.Copy(io.Discard, os.Stdin)
	f.Close()
	os.Exit(0)
}

// StartFerretDBChild starts this binary again as a FerretDB child configured by o (its log
// goes to o.Log), and returns once it serves. The program's main or TestMain must call
// ServeFerretDBChildIfAsked first. Close stops the child.
func StartFerretDBChild(o FerretDBOptions) (*FerretDB, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childLogLevelEnv+"="+o.LogLevel.String())
	if o.PostgreSQLURL != "" {
		cmd.Env = append(cmd.Env, childPostgreSQLEnv+"="+o.PostgreSQLURL)
	} else {
		cmd.Env = append(cmd.Env, childSQLiteEnv+"="+o.SQLiteDir)
	}
	cmd.Stderr = o.Log
	cmd.SysProcAttr = ChildAttr()
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
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	f := &FerretDB{stop: func() {
		// Closing stdin asks the child to stop; it is killed if it has not within the bound.
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(childStopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}}
	uris := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if uri, ok := strings.CutPrefix(sc.Text(), childURIPrefix); ok {
				uris <- uri
			}
		}
		close(uris)
	}()
	select {
	case uri, ok := <-uris:
		if ok {
			f.uri = uri
			return f, nil
		}
		f.Close()
		return nil, fmt.Errorf("child %s exited without serving (does main or TestMain call localdeps.ServeFerretDBChildIfAsked?)", exe)
	case <-time.After(childStartTimeout):
		f.Close()
		return nil, fmt.Errorf("child %s did not serve within %s (does main or TestMain call localdeps.ServeFerretDBChildIfAsked?)", exe, childStartTimeout)
	}
}
