package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgreSQL says no PostgreSQL server answers at the URL given: a benchmark skips its
// PostgreSQL backend rather than failing.
var ErrNoPostgreSQL = errors.New("no PostgreSQL")

// CreatePostgreSQLDatabase creates a fresh database, named prefix_pid_nanos, on the PostgreSQL
// server of base (whose path names a database to connect to for that) and returns its URL and
// how to drop it. It returns an error wrapping ErrNoPostgreSQL when no PostgreSQL answers there.
func CreatePostgreSQLDatabase(ctx context.Context, base, prefix string) (dbURL string, drop func() error, err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("%w answers at %s", ErrNoPostgreSQL, addr)
	}
	_ = c.Close()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("%w: PostgreSQL at %s refused the connection: %w", ErrNoPostgreSQL, addr, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("postgresql: create database %s: %w", name, err)
	}
	drop = func() error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(dctx, base)
		if err == nil {
			defer func() { _ = c.Close(dctx) }()
			_, err = c.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		if err != nil {
			return fmt.Errorf("postgresql: drop database %s: %w", name, err)
		}
		return nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// RunPostgreSQL runs the SQL script in file on FerretDB's PostgreSQL database
// (Options.PostgreSQLURL).
func (s *Stack) RunPostgreSQL(ctx context.Context, file string) error {
	if s.PostgreSQLURL == "" {
		return errors.New("FerretDB does not run on PostgreSQL")
	}
	script, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, s.PostgreSQLURL)
	if err != nil {
		return fmt.Errorf("postgresql: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, string(script)); err != nil {
		return fmt.Errorf("postgresql: %s: %w", file, err)
	}
	return nil
}

// RedactURL returns raw without its password.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
