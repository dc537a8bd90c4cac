package telemetry

import (
	"context"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/supportchat/supportchat/internal/tenant"
)

// tenantProcessor is a span processor that tags every span started under a context carrying a
// tenant with the tenant's id (TenantKey), so traces can be filtered per storefront. A span that
// starts before the tenant is known (the HTTP server span) gets the attribute from the HTTP layer.
type tenantProcessor struct{}

var _ sdktrace.SpanProcessor = tenantProcessor{}

// OnStart sets chat.tenant.id from parent when it carries a tenant.
func (tenantProcessor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	if t, err := tenant.FromContext(parent); err == nil {
		s.SetAttributes(TenantKey.String(t.ID))
	}
}

// OnEnd does nothing.
func (tenantProcessor) OnEnd(sdktrace.ReadOnlySpan) {}

// Shutdown does nothing.
func (tenantProcessor) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing.
func (tenantProcessor) ForceFlush(context.Context) error { return nil }
