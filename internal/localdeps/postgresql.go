package localdeps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgreSQLURL is the PostgreSQL of the development and CI machines: loopback, trust
// authentication.
const DefaultPostgreSQLURL = "postgres://postgres@127.0.0.1:5432/postgres"

// ErrNoPostgreSQL says no PostgreSQL server answers, or none lets us in: a test or benchmark
// skips its PostgreSQL variant rather than failing.
var ErrNoPostgreSQL = errors.New("no PostgreSQL")

// EnsurePostgreSQLDatabase creates database name on the PostgreSQL server of base (whose path
// names a database to connect to for that) unless it exists, and returns the URL of name. It
// returns an error wrapping ErrNoPostgreSQL when no PostgreSQL answers there or lets us in.
func EnsurePostgreSQLDatabase(ctx context.Context, base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%w answers at %s", ErrNoPostgreSQL, addr)
	}
	_ = c.Close()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("%w: PostgreSQL at %s refused the connection: %w", ErrNoPostgreSQL, addr, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("postgresql: %w", err)
	}
	if !exists {
		// Two processes may race to create it; the loser's error is harmless.
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil && !strings.Contains(err.Error(), "already exists") {
			return "", fmt.Errorf("postgresql: create database %s: %w", name, err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}

// CreatePostgreSQLDatabase creates a fresh database, named prefix_pid_nanos, on the PostgreSQL
// server of base as EnsurePostgreSQLDatabase does, and returns its URL and how to drop it.
func CreatePostgreSQLDatabase(ctx context.Context, base, prefix string) (dbURL string, drop func() error, err error) {
	name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
	dbURL, err = EnsurePostgreSQLDatabase(ctx, base, name)
	if err != nil {
		return "", nil, err
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
	return dbURL, drop, nil
}
