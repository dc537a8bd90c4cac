// Command chatd is the Support Chat service.
//
//	chatd serve                   run the API (configured by CHAT_* and OTEL_* variables)
//	chatd tenants validate DIR    check a folder of tenant files
//	chatd tenants purge ID        erase all data of a tenant no longer in CHAT_TENANTS_DIR
//	chatd version                 print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // business hours need time zones even on images without /usr/share/zoneinfo

	"github.com/supportchat/supportchat/internal/config"
	"github.com/supportchat/supportchat/internal/server"
	"github.com/supportchat/supportchat/internal/tenant"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	logs := server.NewProcessLog(os.Stdout)
	server.SetProcessGlobals(logs.Logger)
	err := run(ctx, os.Args[1:], os.Getenv, logs, os.Stdout, os.Stderr)
	stop()
	_ = logs.Close()
	os.Exit(exitCode(err, os.Stderr))
}

// errUsage reports a command line chatd does not understand.
var errUsage = errors.New(`usage: chatd serve | chatd tenants validate DIR | chatd tenants purge ID | chatd version`)

// errInvalid reports that validation found problems, already printed.
var errInvalid = errors.New("invalid tenant files")

// run is chatd: it parses args and runs one subcommand until ctx ends; the service logs to logs.
func run(ctx context.Context, args []string, getenv func(string) string, logs *server.ProcessLog, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "serve":
		cfg, err := config.Load(getenv)
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		logs.Level.Set(cfg.LogLevel)
		return server.Run(ctx, cfg, server.Options{Version: version, Getenv: getenv, Logger: logs.Logger})
	case len(args) == 3 && args[0] == "tenants" && args[1] == "validate":
		return validateTenants(args[2], stdout, stderr) //nolint:gosec // len(args) == 3 above
	case len(args) == 3 && args[0] == "tenants" && args[1] == "purge":
		return purgeTenant(ctx, args[2], getenv, stdout) //nolint:gosec // len(args) == 3 above
	case len(args) == 1 && args[0] == "version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	}
	return errUsage
}

// validateTenants prints every error of the tenant files in dir and returns errInvalid, or
// prints a one-line summary.
func validateTenants(dir string, stdout, stderr io.Writer) error {
	tenants, errs := tenant.ValidateDir(dir)
	if len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintln(stderr, err)
		}
		return errInvalid
	}
	_, err := fmt.Fprintln(stdout, tenant.Summary(tenants))
	return err
}

// exitCode reports err (unless already reported) and returns the process exit code.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, err)
		return 2
	case errors.Is(err, errInvalid):
		return 1
	}
	fmt.Fprintln(stderr, "chatd:", err)
	return 1
}
