package stack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/jackc/pgx/v5"
)

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
