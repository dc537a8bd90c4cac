// Command chatd-dev runs the whole Support Chat stack in one process for a newcomer: MongoDB wire
// protocol through embedded FerretDB (SQLite files under ./.chatd-dev/), Redis (a private
// redis-server child, or embedded miniredis when none is installed), a development OIDC issuer
// per tenant on loopback, demo conversations, the API on CHAT_ADDR (default 127.0.0.1:8080) and
// the metrics on CHAT_METRICS_ADDR (default 127.0.0.1:9090). It prints a customer and an admin
// token per tenant and a curl command that works as printed.
//
// Nothing here is linked into chatd: production trusts only the issuers tenant files name.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata"

	"github.com/supportchat/supportchat/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Logs go to stderr so the tokens and curl stay readable on stdout.
	logs := server.NewProcessLog(os.Stderr)
	server.SetProcessGlobals(logs.Logger)
	err := run(ctx, os.Args[1:], os.Getenv, logs, os.Stdout, os.Stderr)
	stop()
	_ = logs.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "chatd-dev:", err)
		os.Exit(1)
	}
}

// run starts the stack and serves until ctx ends; the service logs to logs.
func run(ctx context.Context, args []string, getenv func(string) string, logs *server.ProcessLog, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("chatd-dev takes no arguments; configure it with CHAT_* variables (docs/OPERATIONS.md)")
	}
	s := &stack{getenv: getenv, logs: logs, stdout: stdout, stderr: stderr}
	defer s.Close()
	return s.Run(ctx)
}
