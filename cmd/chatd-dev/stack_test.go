package main

import (
	"bytes"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"testing"

	"github.com/supportchat/supportchat/internal/config"
)

func TestQuietFerretDBDropsOnlyResponseDumps(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(quietFerretDB{slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})}).With("name", "conn")
	log.Warn("Response header: length: 146, id: 10, response_to: 22, opcode: OP_MSG")
	log.Warn(`Response message:` + "\n" + `{"ok": 0.0, "errmsg": "no such command: 'endSessions'"}`)
	log.Error("Failed to sync file")
	log.Info("listening")

	got := out.String()
	if strings.Contains(got, "Response") || strings.Contains(got, "endSessions") {
		t.Errorf("a response dump got through:\n%s", got)
	}
	if !strings.Contains(got, "Failed to sync file") || !strings.Contains(got, "name=conn") {
		t.Errorf("FerretDB's own error is missing:\n%s", got)
	}
}

func TestLocalDefaults(t *testing.T) {
	tests := []struct {
		name string
		user map[string]string
		want map[string]string
	}{
		{"listeners on this machine and webhooks to it", nil, map[string]string{
			"CHAT_ADDR": defaultAddr, "CHAT_METRICS_ADDR": defaultMetricsAddr, "CHAT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
		}},
		{"the user's variables win", map[string]string{"CHAT_ADDR": ":8081", "CHAT_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8"}, map[string]string{
			"CHAT_METRICS_ADDR": defaultMetricsAddr,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := localDefaults(func(k string) string { return tt.user[k] })
			if !maps.Equal(got, tt.want) {
				t.Errorf("localDefaults(%v) = %v, want %v", tt.user, got, tt.want)
			}
		})
	}
	cfg, err := config.Load(func(k string) string { return localDefaults(func(string) string { return "" })[k] })
	if err != nil || len(cfg.WebhookAllowedNetworks) != 2 || !cfg.WebhookAllowedNetworks[0].Contains(netip.MustParseAddr("127.0.0.1")) || !cfg.WebhookAllowedNetworks[1].Contains(netip.IPv6Loopback()) {
		t.Errorf("config.Load(the defaults) = %v, %v; want loopback for IPv4 and IPv6", cfg.WebhookAllowedNetworks, err)
	}
}
