package redisconn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/redisconn"
	"github.com/supportchat/supportchat/internal/testenv"
)

func TestLoggerWritesJSONAtMostOncePerInterval(t *testing.T) {
	var out bytes.Buffer
	clk := testenv.NewClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	l := redisconn.NewLogger(slog.New(slog.NewJSONHandler(&out, nil)), 10*time.Second, clk.Now)
	ctx := context.Background()
	for i := range 5 {
		l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", i, "connection refused")
		clk.Advance(time.Second)
	}
	clk.Advance(10 * time.Second)
	l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", 9, "connection refused")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2 (the first, then one after the interval):\n%s", len(lines), out.String())
	}
	var second struct {
		Level      string `json:"level"`
		Detail     string `json:"detail"`
		Suppressed int    `json:"suppressed"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatalf("line is not JSON: %q", lines[1])
	}
	if second.Level != "WARN" || second.Suppressed != 4 || !strings.Contains(second.Detail, "after 9 attempts") {
		t.Errorf("second line = %+v, want a warning with the 9th attempt and 4 suppressed", second)
	}
}
