package main

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/supportchat/supportchat/internal/config"
)

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
